"""The worker table: one row per Telegram user who ever wrote to the bot.

Workers are their own module because both the labeling domain (``bot.tasks``: who answered)
and the money domain (``bot.wallet``: whose account) refer to them, and neither may import
the other.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from bot.clock import utcnow


class WorkerStatus(StrEnum):
    ACTIVE = "active"
    BANNED = "banned"  # blocked by an operator or a quality rule
    UNREACHABLE = "unreachable"  # the worker blocked the bot (403)


class Worker(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    tg_id: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    name: str = Field(default="", max_length=256)
    username: str | None = Field(default=None, max_length=64)
    lang: str = Field(default="ko", max_length=8)
    status: str = Field(default=WorkerStatus.ACTIVE, max_length=16, index=True)
    status_reason: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)
    last_active_at: datetime = Field(default_factory=utcnow, index=True)
