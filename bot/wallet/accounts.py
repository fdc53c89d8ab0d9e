"""Ledger account names. Worker money lives in ``worker:<id>``; the rest are platform books."""

from __future__ import annotations

LABELING_EXPENSE = "platform:labeling"  # source of earnings; its balance is minus what was earned
BONUS_EXPENSE = "platform:bonus"
PAYOUTS_OPEN = "payouts:open"  # requested withdrawals waiting for the bank transfer
PAID_OUT = "payouts:paid"  # money that left to workers' bank accounts


def worker_account(worker_id: int) -> str:
    return f"worker:{worker_id}"
