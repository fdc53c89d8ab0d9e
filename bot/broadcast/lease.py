"""One runner per broadcast at a time.

A runner (the CLI sending itself, or the bot's background worker in some replica) holds a lease
on the broadcast that it renews while it works. Another runner may take the broadcast over when
the lease has run out, or at once when the holder was a process on this host that no longer
exists (the CLI was killed and restarted). Taking over turns the dead runner's ``sending`` rows
back to ``pending``: each is the one message that dead runner may have had in flight, so each
is sent again — at most one duplicate per in-flight message per crash.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from bot.db import rowcount

LIVE = (BroadcastStatus.PENDING, BroadcastStatus.RUNNING)


def new_runner_id(kind: str = "bot") -> str:
    """``host:pid:kind:random``: host and pid let a restart on this host see the holder is dead."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}:{secrets.token_hex(3)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_is_dead(runner: str) -> bool:
    """True only when certain: the holder ran on this host and its process is gone."""
    parts = runner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    return pid != os.getpid() and not _pid_alive(pid)


@dataclass(frozen=True, slots=True)
class TakeOver:
    taken: bool
    recovered: int = 0  # rows found in ``sending`` and put back to ``pending`` (resent)
    holder: str | None = None  # who holds it when not taken
    status: str | None = None


def take_over(session: Session, broadcast_id: int, runner: str, now: datetime, lease_seconds: float) -> TakeOver:
    broadcast = session.execute(select(Broadcast).where(col(Broadcast.id) == broadcast_id).with_for_update()).scalars().first()
    if broadcast is None:
        return TakeOver(False, status="missing")
    if broadcast.status not in LIVE:
        return TakeOver(False, holder=broadcast.runner, status=broadcast.status)
    holder = broadcast.runner
    if holder not in (None, runner):
        lease_valid = broadcast.lease_until is not None and broadcast.lease_until > now
        if lease_valid and not holder_is_dead(holder):
            return TakeOver(False, holder=holder, status=broadcast.status)
    recovered = 0
    if holder != runner:
        # the previous holder is gone: its in-flight rows are resent (see module doc)
        recovered = rowcount(
            session.execute(
                update(BroadcastRecipient)
                .where(col(BroadcastRecipient.broadcast_id) == broadcast_id, col(BroadcastRecipient.status) == RecipientStatus.SENDING)
                .values(status=RecipientStatus.PENDING, updated_at=now)
            )
        )
    broadcast.runner = runner
    broadcast.lease_until = now + timedelta(seconds=lease_seconds)
    broadcast.status = BroadcastStatus.RUNNING
    broadcast.started_at = broadcast.started_at or now
    session.add(broadcast)
    session.flush()
    return TakeOver(True, recovered=int(recovered or 0), status=BroadcastStatus.RUNNING)


def renew(session: Session, broadcast_id: int, runner: str, now: datetime, lease_seconds: float) -> bool:
    """Extend the lease; False when the broadcast was cancelled or another runner has it."""
    result = session.execute(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.runner) == runner, col(Broadcast.status) == BroadcastStatus.RUNNING)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    return bool(rowcount(result))


def release(session: Session, broadcast_id: int, runner: str) -> None:
    """Give the broadcast up (graceful stop) so another runner may continue at once."""
    session.execute(
        update(Broadcast).where(col(Broadcast.id) == broadcast_id, col(Broadcast.runner) == runner).values(runner=None, lease_until=None)
    )


def runnable(session: Session, now: datetime, limit: int = 20) -> list[int]:
    """Broadcasts a background worker may try to take: unowned, expired, or held by the dead.

    Live broadcasts are few, so the lease rules are applied in Python (dead-holder check needs
    the OS anyway); :func:`take_over` re-checks them under a row lock.
    """
    rows = session.execute(
        select(col(Broadcast.id), col(Broadcast.runner), col(Broadcast.lease_until))
        .where(col(Broadcast.status).in_(LIVE))
        .order_by(col(Broadcast.id))
        .limit(limit)
    ).all()
    out = []
    for bid, holder, until in rows:
        if holder is None or until is None or until <= now or holder_is_dead(holder):
            out.append(int(bid))
    return out
