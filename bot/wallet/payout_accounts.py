"""The bank account a worker is paid to: entered once, stored, and only ever shown masked.

The full number is needed by operators for the bank transfer (``payouts export``); in the chat
and in logs it appears as ``****5678`` so a glance at someone's phone or a log line does not
leak it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.wallet.models import PayoutAccount

# Korean bank account numbers are 10-14 digits, often written with dashes; allow some slack
# for other banks but refuse anything that is clearly not an account number.
MIN_DIGITS = 8
MAX_DIGITS = 20
MAX_BANK = 64
_SEPARATORS = re.compile(r"[\s\-.]")


class PayoutAccountError(ValueError):
    """Input that cannot be a bank name or an account number; ``code`` names the i18n message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AccountView:
    bank: str
    masked: str  # "****5678"
    holder: str


def clean_bank(text: str) -> str:
    bank = " ".join(text.split())
    if not bank or len(bank) > MAX_BANK:
        raise PayoutAccountError("bad_bank", f"bank name must be 1-{MAX_BANK} characters")
    if bank.startswith("/"):
        raise PayoutAccountError("bad_bank", "a command is not a bank name")
    return bank


def clean_number(text: str) -> str:
    """Digits only: "110-123-456789" -> "110123456789"."""
    number = _SEPARATORS.sub("", text or "")
    if not number.isdigit() or not (MIN_DIGITS <= len(number) <= MAX_DIGITS):
        raise PayoutAccountError("bad_number", f"account number must be {MIN_DIGITS}-{MAX_DIGITS} digits (dashes and spaces allowed)")
    return number


def mask(number: str) -> str:
    """Only the last four digits are ever shown."""
    return "****" + number[-4:] if len(number) > 4 else "****"


def get(session: Session, worker_id: int) -> PayoutAccount | None:
    return session.execute(select(PayoutAccount).where(col(PayoutAccount.worker_id) == worker_id)).scalars().first()


def view(session: Session, worker_id: int) -> AccountView | None:
    account = get(session, worker_id)
    if account is None:
        return None
    return AccountView(bank=account.bank, masked=mask(account.account_number), holder=account.holder)


def save(session: Session, worker_id: int, *, bank: str, number: str, holder: str = "", now: datetime | None = None) -> AccountView:
    """Create or replace the worker's account; validation happens before anything is written.

    Open withdrawals keep the account they were requested with (copied onto the request), so
    changing it never redirects money already on its way.
    """
    bank = clean_bank(bank)
    number = clean_number(number)
    holder = " ".join(holder.split())[:128]
    account = get(session, worker_id)
    if account is None:
        account = PayoutAccount(worker_id=worker_id, bank=bank, account_number=number, holder=holder, created_at=now or utcnow())
    else:
        account.bank, account.account_number, account.holder = bank, number, holder
    session.add(account)
    session.flush()
    return AccountView(bank=bank, masked=mask(number), holder=holder)
