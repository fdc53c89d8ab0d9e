"""The resumable delivery loop over a broadcast's recipient rows.

Each recipient row moves ``pending -> sending -> sent | failed | blocked`` (or back to
``pending`` with a back-off time after a transient error). A row is marked ``sending`` in a
committed transaction *before* its message goes out, and marked with the result in the same
transaction that marks the next row ``sending`` — one commit per message.

What a crash can leave behind (document of record, see docs/broadcast.md):

* A lane has at most ONE message in flight, and it is exactly the lane's row in ``sending``.
  With the default single lane, a crash (SIGKILL, power loss) leaves at most one row in
  ``sending``. Whether Telegram delivered that message is unknowable — there is no idempotency
  key in the Bot API — so the runner that takes the broadcast over (see :mod:`lease`) puts the
  row back to ``pending`` and sends it again: at most one duplicate per crash, never a loss.
* Rows already ``sent`` / ``failed`` / ``blocked`` are final and never sent again; ``pending``
  rows were never sent. So the restart resumes exactly where the crash stopped.

``lanes > 1`` sends that many messages concurrently (useful only when the round trip to
Telegram is longer than 1/rate); each lane adds one possible duplicate per crash.

The pace (global rate, one message per second per chat, global pause after a 429) comes from
a :mod:`pacing` pacer shared by every broadcast of the process (or of all replicas via Redis).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Integer, String, bindparam, exists, func, or_, select, update
from sqlmodel import Session, col

from bot import workers
from bot.broadcast import lease
from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from bot.broadcast.pacing import Pacer
from bot.broadcast.transport import Button, Delivered, Fatal, Forbidden, Photo, RateLimited, SendFailed, Transport
from bot.clock import utcnow
from bot.db import Database, rowcount
from bot.db.tables import table
from bot.i18n import t
from bot.workers.models import Worker, WorkerStatus

log = structlog.get_logger("crowdpin.broadcast")

MAX_429_IN_A_ROW = 20  # for one message; then it goes back to the queue with a back-off


# --------------------------------------------------------------------------- database steps


@dataclass(frozen=True, slots=True)
class QueuedRow:
    id: int
    worker_id: int
    chat_id: int
    lang: str
    worker_status: str
    attempts: int  # before this attempt


@dataclass(frozen=True, slots=True)
class Batch:
    rows: list[QueuedRow]
    next_wake: datetime | None  # earliest back-off end among the pending rows not yet due
    pending_left: int  # pending rows not yet due (0 and no rows: nothing left to do)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, written when the lane starts its next row."""

    row_id: int
    worker_id: int
    status: RecipientStatus
    message_id: int | None = None
    error: str | None = None
    retry_at: datetime | None = None  # with status PENDING: try again after this


@dataclass(frozen=True, slots=True)
class StepResult:
    owned: bool  # False: cancelled, finished, or another runner holds the broadcast
    started: bool  # the requested row was pending and is now ``sending``


def _due(now: datetime) -> Any:
    return or_(col(BroadcastRecipient.next_attempt_at).is_(None), col(BroadcastRecipient.next_attempt_at) <= now)


def load_batch(session: Session, broadcast_id: int, now: datetime, limit: int = 100) -> Batch:
    rows = session.execute(
        select(
            col(BroadcastRecipient.id),
            col(BroadcastRecipient.worker_id),
            col(BroadcastRecipient.chat_id),
            col(Worker.lang),
            col(Worker.status),
            col(BroadcastRecipient.attempts),
        )
        .join(Worker, col(Worker.id) == col(BroadcastRecipient.worker_id))
        .where(
            col(BroadcastRecipient.broadcast_id) == broadcast_id,
            col(BroadcastRecipient.status) == RecipientStatus.PENDING,
            _due(now),
        )
        .order_by(col(BroadcastRecipient.id))
        .limit(limit)
    ).all()
    later_count, later_min = session.execute(
        select(func.count(), func.min(col(BroadcastRecipient.next_attempt_at))).where(
            col(BroadcastRecipient.broadcast_id) == broadcast_id,
            col(BroadcastRecipient.status) == RecipientStatus.PENDING,
            col(BroadcastRecipient.next_attempt_at) > now,
        )
    ).one()
    if later_min is not None and later_min.tzinfo is None:  # SQLite aggregate loses the type
        later_min = datetime.fromisoformat(str(later_min)).replace(tzinfo=now.tzinfo)
    return Batch(
        rows=[QueuedRow(int(i), int(w), int(c), lang or "ko", st, int(a)) for i, w, c, lang, st, a in rows],
        next_wake=later_min,
        pending_left=int(later_count),
    )


# The two statements of every message, built once: Core statements on the tables with bound
# parameters skip the ORM's per-call statement building and session synchronisation, which
# were most of the cost of a step (a step is on the critical path of every message).
_R = table(BroadcastRecipient)
_B = table(Broadcast)
_TIME = _R.c.updated_at.type

_FINISH = (
    update(_R)
    .where(_R.c.id == bindparam("rid"), _R.c.status == RecipientStatus.SENDING.value)
    .values(
        status=bindparam("st"),
        updated_at=bindparam("now", type_=_TIME),
        next_attempt_at=bindparam("retry_at", type_=_TIME),
        message_id=func.coalesce(bindparam("mid", type_=Integer), _R.c.message_id),
        error=func.coalesce(bindparam("err", type_=String), _R.c.error),
    )
)

_START = (
    update(_R)
    .where(
        _R.c.id == bindparam("rid"),
        _R.c.status == RecipientStatus.PENDING.value,
        or_(_R.c.next_attempt_at.is_(None), _R.c.next_attempt_at <= bindparam("now", type_=_TIME)),
        exists()
        .where(_B.c.id == bindparam("bid"), _B.c.runner == bindparam("runner"), _B.c.status == BroadcastStatus.RUNNING.value)
        .correlate(None),
    )
    .values(status=RecipientStatus.SENDING.value, attempts=_R.c.attempts + 1, updated_at=bindparam("now", type_=_TIME))
)


def _apply(session: Session, outcome: Outcome, now: datetime) -> None:
    result = session.execute(
        _FINISH,
        {
            "rid": outcome.row_id,
            "st": str(outcome.status.value),
            "now": now,
            "retry_at": outcome.retry_at,
            "mid": outcome.message_id,
            "err": outcome.error[:512] if outcome.error is not None else None,
        },
    )
    if not rowcount(result):
        # another runner took the broadcast over and put the row back: it will be sent again
        log.warning("broadcast.row_taken_over", row_id=outcome.row_id, outcome=str(outcome.status))
        return
    if outcome.status == RecipientStatus.BLOCKED:
        workers.mark_unreachable(session, outcome.worker_id, reason="blocked the bot")


def _owned(session: Session, broadcast_id: int, runner: str) -> bool:
    owner = session.execute(select(_B.c.status, _B.c.runner).where(_B.c.id == broadcast_id)).first()
    return owner is not None and owner[0] == BroadcastStatus.RUNNING and owner[1] == runner


def step(session: Session, broadcast_id: int, runner: str, now: datetime, finish: Outcome | None, start_id: int | None) -> StepResult:
    """Record one result and claim the next row, in one transaction (one commit per message).

    The claim only succeeds while this runner holds the running broadcast, so a cancel or a
    take-over stops the claims at once; ownership is read separately only when a claim fails.
    """
    if finish is not None:
        _apply(session, finish, now)
    if start_id is None:
        return StepResult(_owned(session, broadcast_id, runner), False)
    started = rowcount(session.execute(_START, {"rid": start_id, "now": now, "bid": broadcast_id, "runner": runner}))
    if started:
        return StepResult(True, True)
    return StepResult(_owned(session, broadcast_id, runner), False)


def store_file_id(session: Session, broadcast_id: int, file_id: str) -> None:
    session.execute(update(Broadcast).where(col(Broadcast.id) == broadcast_id).values(photo_file_id=file_id))


def try_finish(session: Session, broadcast_id: int, runner: str, now: datetime) -> bool:
    """Mark the broadcast done when no row is pending or in flight."""
    unfinished = session.execute(
        select(func.count()).where(
            col(BroadcastRecipient.broadcast_id) == broadcast_id,
            col(BroadcastRecipient.status).in_((RecipientStatus.PENDING, RecipientStatus.SENDING)),
        )
    ).scalar_one()
    if unfinished:
        return False
    done = rowcount(
        session.execute(
            update(Broadcast)
            .where(col(Broadcast.id) == broadcast_id, col(Broadcast.runner) == runner, col(Broadcast.status) == BroadcastStatus.RUNNING)
            .values(status=BroadcastStatus.DONE, finished_at=now, runner=None, lease_until=None)
        )
    )
    return bool(done)


@dataclass(frozen=True, slots=True)
class Message:
    text: str
    project_id: int | None
    photo_path: Path | None
    photo_file_id: str | None


def load_message(session: Session, broadcast_id: int) -> Message:
    b = session.get(Broadcast, broadcast_id)
    if b is None:
        raise LookupError(f"no broadcast with id {broadcast_id}")
    return Message(b.text, b.project_id, Path(b.photo_path) if b.photo_path else None, b.photo_file_id)


# --------------------------------------------------------------------------- the loop


@dataclass
class RunResult:
    broadcast_id: int
    status: str  # done | cancelled | stopped | lost | busy | error
    recovered: int = 0  # rows a previous runner left in ``sending`` (resent)
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    retried: int = 0
    http_429: int = 0
    error: str | None = None


def backoff(attempts: int, base: float, cap: float = 300.0) -> float:
    """2^n back-off: 1st retry after ``base``, then 2x, 4x... capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


@dataclass
class Delivery:
    """Runs one broadcast to the end (or until cancelled, stopped, or taken over)."""

    db: Database
    transport: Transport
    pacer: Pacer
    runner: str = field(default_factory=lambda: lease.new_runner_id("bot"))
    lanes: int = 1
    lease_seconds: float = 30.0
    max_attempts: int = 4
    backoff_base: float = 2.0
    batch_size: int = 100
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    idle_poll: float = 1.0  # how long a lane waits for back-off rows before looking again

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ValueError("lanes must be at least 1")
        self._stopping = False
        self._lost = False
        self._fatal: str | None = None
        self._queue: collections.deque[QueuedRow] = collections.deque()
        self._refill = asyncio.Lock()
        self._upload = asyncio.Lock()
        self._wake: datetime | None = None
        self._more_later = False
        self._message: Message | None = None
        self._file_id: str | None = None
        self._result: RunResult | None = None

    # -- control

    def stop(self) -> None:
        """Graceful stop: every lane finishes the message it has in flight, then the lease is
        released so another runner continues at once (no duplicate)."""
        self._stopping = True

    @property
    def halted(self) -> bool:
        return self._stopping or self._lost or self._fatal is not None

    # -- run

    async def run(self, broadcast_id: int) -> RunResult:
        result = self._result = RunResult(broadcast_id, "busy")
        taken = await self.db.run(lease.take_over, broadcast_id, self.runner, utcnow(), self.lease_seconds)
        if not taken.taken:
            result.status = "busy" if taken.status in lease.LIVE else str(taken.status)
            log.info("broadcast.not_taken", broadcast_id=broadcast_id, holder=taken.holder, status=taken.status)
            return result
        result.recovered = taken.recovered
        if taken.recovered:
            log.warning("broadcast.resent_in_flight", broadcast_id=broadcast_id, rows=taken.recovered)
        self._message = await self.db.run(load_message, broadcast_id)
        self._file_id = self._message.photo_file_id
        log.info("broadcast.started", broadcast_id=broadcast_id, runner=self.runner, lanes=self.lanes)
        heartbeat = asyncio.create_task(self._heartbeat(broadcast_id))
        try:
            await asyncio.gather(*(self._lane(broadcast_id) for _ in range(self.lanes)))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if self._fatal is not None:
            await self.db.run(lease.release, broadcast_id, self.runner)
            result.status, result.error = "error", self._fatal
        elif self._lost:
            status = (await self.db.run(lambda s: s.get(Broadcast, broadcast_id))).status
            result.status = "cancelled" if status == BroadcastStatus.CANCELLED else "lost"
        elif await self.db.run(try_finish, broadcast_id, self.runner, utcnow()):
            result.status = "done"
        else:
            await self.db.run(lease.release, broadcast_id, self.runner)
            result.status = "stopped"
        log.info(
            "broadcast.finished_run",
            broadcast_id=broadcast_id,
            status=result.status,
            sent=result.sent,
            failed=result.failed,
            blocked=result.blocked,
            http_429=result.http_429,
        )
        return result

    async def _heartbeat(self, broadcast_id: int) -> None:
        while not self.halted:
            await asyncio.sleep(self.lease_seconds / 3)
            if not await self.db.run(lease.renew, broadcast_id, self.runner, utcnow(), self.lease_seconds):
                self._lost = True

    async def _next_row(self, broadcast_id: int) -> QueuedRow | None:
        async with self._refill:
            if not self._queue and not self.halted:
                batch = await self.db.run(load_batch, broadcast_id, utcnow(), self.batch_size)
                self._queue.extend(batch.rows)
                self._wake, self._more_later = batch.next_wake, batch.pending_left > 0
            return self._queue.popleft() if self._queue else None

    async def _lane(self, broadcast_id: int) -> None:
        finish: Outcome | None = None
        try:
            while not self.halted:
                row = await self._next_row(broadcast_id)
                if row is None:
                    if finish is not None:  # record it first: it may be a retry due soon
                        await self.db.run(step, broadcast_id, self.runner, utcnow(), finish, None)
                        finish = None
                        continue
                    if not self._more_later:
                        return
                    wait = self.idle_poll
                    if self._wake is not None:
                        wait = min(wait, max(0.0, (self._wake - utcnow()).total_seconds()))
                    await self.sleep(wait)
                    continue
                res = await self.db.run(step, broadcast_id, self.runner, utcnow(), finish, row.id)
                finish = None
                if not res.owned:
                    self._lost = True
                    return
                if not res.started:
                    continue  # stale queue entry: done meanwhile, or its back-off is not over
                finish = await self._deliver(row)
        finally:
            if finish is not None:
                await asyncio.shield(self.db.run(step, broadcast_id, self.runner, utcnow(), finish, None))

    # -- one message

    async def _deliver(self, row: QueuedRow) -> Outcome:
        result = self._result
        assert result is not None and self._message is not None
        attempt = row.attempts + 1
        if row.worker_status == WorkerStatus.UNREACHABLE:
            result.blocked += 1
            return Outcome(row.id, row.worker_id, RecipientStatus.BLOCKED, error="worker is unreachable")
        if row.worker_status != WorkerStatus.ACTIVE:
            result.failed += 1
            return Outcome(row.id, row.worker_id, RecipientStatus.FAILED, error=f"worker is {row.worker_status}")
        in_send = False
        try:
            for _ in range(MAX_429_IN_A_ROW):
                await self.pacer.acquire(row.chat_id)
                try:
                    in_send = True
                    delivered = await self._send(row)
                except RateLimited as exc:
                    in_send = False
                    result.http_429 += 1
                    log.warning("broadcast.rate_limited", retry_after=exc.retry_after, chat_id=row.chat_id)
                    await self.pacer.pause(exc.retry_after)
                    continue
                result.sent += 1
                return Outcome(row.id, row.worker_id, RecipientStatus.SENT, message_id=delivered.message_id, error=None)
            raise SendFailed("rate limited again and again", retryable=True)
        except asyncio.CancelledError:
            if not in_send:  # cancelled before the request went out: nothing was delivered
                await asyncio.shield(self.db.run(_requeue, row.id, utcnow()))
            raise
        except Forbidden as exc:
            result.blocked += 1
            log.info("broadcast.blocked", chat_id=row.chat_id, worker_id=row.worker_id)
            return Outcome(row.id, row.worker_id, RecipientStatus.BLOCKED, error=exc.reason)
        except Fatal as exc:
            self._fatal = exc.reason
            log.error("broadcast.fatal", reason=exc.reason)
            return Outcome(row.id, row.worker_id, RecipientStatus.PENDING, error=exc.reason)
        except SendFailed as exc:
            if exc.retryable and attempt < self.max_attempts:
                result.retried += 1
                at = utcnow() + timedelta(seconds=backoff(attempt, self.backoff_base))
                log.info("broadcast.retry", chat_id=row.chat_id, attempt=attempt, reason=exc.reason)
                return Outcome(row.id, row.worker_id, RecipientStatus.PENDING, error=exc.reason, retry_at=at)
            result.failed += 1
            log.warning("broadcast.failed", chat_id=row.chat_id, attempts=attempt, reason=exc.reason)
            return Outcome(row.id, row.worker_id, RecipientStatus.FAILED, error=exc.reason)

    async def _send(self, row: QueuedRow) -> Delivered:
        msg = self._message
        assert msg is not None
        button = Button(t("broadcast.start_button", row.lang), msg.project_id) if msg.project_id else None
        if msg.photo_path is None and msg.photo_file_id is None:
            return await self.transport.send_message(row.chat_id, msg.text, button)
        if self._file_id is None:
            async with self._upload:
                if self._file_id is None:  # the first photo goes up as a file, once
                    assert msg.photo_path is not None
                    delivered = await self.transport.send_photo(row.chat_id, Photo(path=msg.photo_path), msg.text, button)
                    if delivered.file_id:
                        self._file_id = delivered.file_id
                        assert self._result is not None
                        await self.db.run(store_file_id, self._result.broadcast_id, delivered.file_id)
                    return delivered
        return await self.transport.send_photo(row.chat_id, Photo(file_id=self._file_id), msg.text, button)


def _requeue(session: Session, row_id: int, now: datetime) -> None:
    session.execute(
        update(BroadcastRecipient)
        .where(col(BroadcastRecipient.id) == row_id, col(BroadcastRecipient.status) == RecipientStatus.SENDING)
        .values(status=RecipientStatus.PENDING, attempts=col(BroadcastRecipient.attempts) - 1, updated_at=now)
    )
