"""Ledger tables. Append-only: rows are inserted, never updated or deleted.

A transaction (``LedgerTxn``) carries a unique idempotency key tied to its cause
("answer:42", "payout:7:paid"), so repeating an operation can never double it; its entries
sum to zero across accounts (double entry).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from bot.clock import utcnow


class EntryKind(StrEnum):
    EARNING = "earning"
    BONUS = "bonus"
    REVERSAL = "reversal"
    WITHDRAWAL = "withdrawal"
    PAYOUT = "payout"
    PAYOUT_FAILURE = "payout_failure"


class WithdrawalStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    FAILED = "failed"


class LedgerTxn(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=128, unique=True)
    kind: str = Field(max_length=16)
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    memo: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class LedgerEntry(SQLModel, table=True):
    __table_args__ = (Index("ix_ledger_account_available", "account", "available_at"),)

    id: int | None = Field(default=None, primary_key=True)
    txn_id: int = Field(foreign_key="ledgertxn.id", index=True)
    account: str = Field(max_length=64)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))  # KRW, signed
    available_at: datetime = Field(default_factory=utcnow)  # hold period: pending until then
    created_at: datetime = Field(default_factory=utcnow)


class PayoutAccount(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    worker_id: int = Field(foreign_key="worker.id", unique=True)
    bank: str = Field(max_length=64)
    account_number: str = Field(max_length=64)
    holder: str = Field(default="", max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class Withdrawal(SQLModel, table=True):
    """A payout request. Its money moves in the ledger in the same transaction as each status
    change (``withdrawal:<id>``, ``payout:<id>:paid``, ``payout:<id>:failed``).

    ``notified`` / ``notify_claimed_until``: the admin CLI cannot talk to Telegram, so a paid or
    failed request waits with ``notified = False`` until the bot tells the worker; a sender claims
    it for a short time first, so two bot replicas do not both send it and a crashed sender's
    claim runs out and the message is sent again (at least once).
    """

    __table_args__ = (
        # At most one open request per worker, enforced by the database too (partial index).
        Index(
            "uq_withdrawal_one_open",
            "worker_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    worker_id: int = Field(foreign_key="worker.id", index=True)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=WithdrawalStatus.OPEN, max_length=16, index=True)
    bank: str = Field(max_length=64)
    account_number: str = Field(max_length=64)
    holder: str = Field(default="", max_length=128)
    reason: str | None = Field(default=None, max_length=512)
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    notified: bool = Field(default=False)
    notify_claimed_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
