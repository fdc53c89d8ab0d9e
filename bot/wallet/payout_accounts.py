"""The bank account a worker is paid to: entered once, stored, and only ever shown masked.

The full number is needed by operators for the bank transfer (``payouts export``); in the chat
and in logs it appears as ``****5678`` so a glance at someone's phone or a log line does not
leak it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.plain_text import ascii_digits, printable
from bot.wallet.models import PayoutAccount

# Korean bank account numbers are 10-14 digits, often written with dashes; allow some slack
# for other banks but refuse anything that is clearly not an account number.
MIN_DIGITS = 8
MAX_DIGITS = 20
MAX_BANK = 64
MAX_HOLDER = 128
_SEPARATORS = re.compile(r"[ \-.]")
# Letters and digits of any script (신한, KB국민, Deutsche Bank), spaces and the punctuation
# bank names use. No "=", "+", "@", brackets or control characters: the bank name ends up in
# the operators' spreadsheet and terminal.
_BANK = re.compile(r"[^\W_][\w .,&'()/\-·]*")


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
    """A bank name: starts with a letter or digit, then letters, digits, spaces and . , & ' ( ) / - ·"""
    bank = " ".join(unicodedata.normalize("NFKC", text or "").split())
    if not bank or len(bank) > MAX_BANK:
        raise PayoutAccountError("bad_bank", f"bank name must be 1-{MAX_BANK} characters")
    if bank.startswith("/"):
        raise PayoutAccountError("bad_bank", "a command is not a bank name")
    if not _BANK.fullmatch(bank):
        raise PayoutAccountError("bad_bank", "a bank name is letters, digits, spaces and . , & ' ( ) / - only")
    return bank


def clean_number(text: str) -> str:
    """ASCII digits only: "110-123-456789" -> "110123456789".

    Fullwidth digits are normalised (NFKC); superscripts, Arabic-Indic digits, zero-width and
    direction-override characters are refused, so the number the bank gets is the one shown.
    """
    number = ascii_digits(_SEPARATORS.sub("", unicodedata.normalize("NFKC", text or "")))
    if number is None or not (MIN_DIGITS <= len(number) <= MAX_DIGITS):
        raise PayoutAccountError("bad_number", f"account number must be {MIN_DIGITS}-{MAX_DIGITS} digits (dashes and spaces allowed)")
    return number


def clean_holder(text: str) -> str:
    """The account holder's name as shown to operators: control characters removed, one line."""
    return " ".join(printable(text or "").split())[:MAX_HOLDER]


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
    holder = clean_holder(holder)
    account = get(session, worker_id)
    if account is None:
        account = PayoutAccount(worker_id=worker_id, bank=bank, account_number=number, holder=holder, created_at=now or utcnow())
    else:
        account.bank, account.account_number, account.holder = bank, number, holder
    session.add(account)
    session.flush()
    return AccountView(bank=bank, masked=mask(number), holder=holder)
