"""Broadcast tables: one row per recipient so a crash resumes without double sends."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.clock import utcnow


class BroadcastStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed; at most one per recipient can be in flight at a crash
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int | None = Field(default=None, foreign_key="project.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    photo_path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    photo_file_id: str | None = Field(default=None, max_length=256)
    audience: str = Field(default="all", max_length=32)
    status: str = Field(default=BroadcastStatus.PENDING, max_length=16, index=True)
    created_by: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    status_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    status_message_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # Who is delivering it right now: one runner per broadcast, renewed while it works, so a
    # crashed runner's broadcast is taken over when the lease runs out (or at once when the
    # runner was a process on this host that no longer exists).
    runner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = None
    started_at: datetime | None = None


class BroadcastRecipient(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("broadcast_id", "worker_id", name="uq_broadcast_worker"),
        Index("ix_recipient_queue", "broadcast_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id")
    worker_id: int = Field(foreign_key="worker.id")
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=RecipientStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    error: str | None = Field(default=None, max_length=512)
    message_id: int | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime | None = None  # back-off after a transient error
