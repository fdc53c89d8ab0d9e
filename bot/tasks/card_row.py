"""The row a task card is drawn from: the task, its image and the worker's progress today.

Shared by :func:`bot.tasks.service.card_for` (a SELECT of its own) and the PostgreSQL claim in
:mod:`bot.tasks.leasing`, which reads the same columns in the statement that takes the task, so a
tap that leases the next task needs no separate round trip for its card.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlmodel import col

from bot.tasks.models import Answer, AnswerStatus, Image, Task


def _today(column: Any, worker: str, since: str) -> Any:
    return (
        select(column)
        .where(
            col(Answer.worker_id) == bindparam(worker),
            col(Answer.created_at) >= bindparam(since),
            col(Answer.status) == AnswerStatus.ACCEPTED.value,
        )
        .scalar_subquery()
    )


def columns(worker: str = "worker_id", since: str = "since") -> list[Any]:
    """The card's columns (``task`` joined to ``image``), with the worker and the start of their
    day as the named bind parameters, in the order card_for reads them: task id, kind, prelabel,
    mask, project id; image id, sha256, path, phone path, Telegram file id, width, height; the
    worker's answers and earnings today."""
    return [
        col(Task.id),
        col(Task.kind),
        col(Task.prelabel),
        col(Task.mask_rle),
        col(Task.project_id),
        col(Image.id),
        col(Image.sha256),
        col(Image.path),
        col(Image.phone_path),
        col(Image.tg_file_id),
        col(Image.width),
        col(Image.height),
        _today(func.count(col(Answer.id)), worker, since),
        _today(func.coalesce(func.sum(col(Answer.reward)), 0), worker, since),
    ]
