"""Builders for wallet tests: workers and earnings straight in the ledger (no Telegram)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot import workers
from bot.db import Database
from bot.wallet import ledger


def new_workers(db: Database, n: int, start: int = 5000) -> list[int]:
    ids = []
    with db.session() as s:
        for i in range(n):
            worker, _ = workers.register(s, tg_id=start + i, name=f"w{i}")
            ids.append(worker.id)  # type: ignore[arg-type]
    return ids


def earn(s: Session, worker_id: int, answer_id: int, amount: int, *, hold_days: int = 0, now: datetime | None = None) -> bool:
    return ledger.credit_earning(s, worker_id=worker_id, answer_id=answer_id, amount=amount, hold_days=hold_days, now=now)
