"""Delivery over recipient rows: resume after a crash, 429 pause, 403, retries, photos, cancel."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import clock
from bot.broadcast import delivery as dl
from bot.broadcast import lease, service
from bot.broadcast.delivery import Delivery
from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from bot.broadcast.pacing import LocalPacer
from bot.broadcast.transport import Fatal, Forbidden, RateLimited, SendFailed
from bot.db import Database
from bot.workers.models import Worker, WorkerStatus
from tests.broadcast.fakes import FakeTransport, make_project, make_workers

FAST = {"rate": 2000.0, "per_chat_interval": 0.0}


def _pacer(**kw: float) -> LocalPacer:
    return LocalPacer(**{**FAST, **kw})


def _rows(db: Database, bid: int) -> list[BroadcastRecipient]:
    with db.session() as s:
        return list(
            s.execute(select(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == bid).order_by(BroadcastRecipient.id)).scalars()
        )


def _create(db: Database, project_id: int, text: str = "New batch!", **kw) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return service.create(s, project_id, text, **kw).id  # type: ignore[return-value]


async def test_everyone_gets_exactly_one_message_with_the_start_button(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 12)
    make_workers(db, 1, first_tg=9000, lang="en")
    bid = _create(db, project.id)
    transport = FakeTransport()
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert result.status == "done" and result.sent == 13
    got = transport.received()
    assert set(got) == {tg for _, tg in people} | {9000} and set(got.values()) == {1}
    by_chat = {s.chat_id: s for s in transport.sent}
    assert by_chat[people[0][1]].button is not None and by_chat[people[0][1]].button.project_id == project.id
    assert by_chat[people[0][1]].button.text == "▶️ 작업 시작"
    assert by_chat[9000].button.text == "▶️ Start tasks"
    rows = _rows(db, bid)
    assert {r.status for r in rows} == {RecipientStatus.SENT} and all(r.message_id for r in rows)
    prog = db.call(service.progress, bid)
    assert (prog.status, prog.sent, prog.remaining) == (BroadcastStatus.DONE, 13, 0)
    # running it again sends nothing
    again = await Delivery(db, transport, _pacer()).run(bid)
    assert again.status == BroadcastStatus.DONE and len(transport.sent) == 13


async def test_restart_after_crash_resends_only_the_row_left_sending(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 10)
    crashed = transport = FakeTransport()
    stuck = asyncio.Event()

    async def hang_on_fifth(chat_id: int, n: int) -> None:
        if n == 5:
            stuck.set()
            await asyncio.sleep(3600)  # the request is out; the process dies before the answer

    crashed.hook = hang_on_fifth
    bid = _create(db, project.id)
    first = Delivery(db, crashed, _pacer(), lease_seconds=30)
    task = asyncio.create_task(first.run(bid))
    await asyncio.wait_for(stuck.wait(), 10)
    task.cancel()  # "SIGKILL": no chance to record anything
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = _rows(db, bid)
    assert [r.status for r in rows].count(RecipientStatus.SENDING) == 1
    assert [r.status for r in rows].count(RecipientStatus.SENT) == 4
    in_flight = next(r.chat_id for r in rows if r.status == RecipientStatus.SENDING)

    # a new runner cannot take it while the dead runner's lease is valid (it might be alive)...
    transport = FakeTransport()
    busy = await Delivery(db, transport, _pacer()).run(bid)
    assert busy.status == "busy" and not transport.sent
    # ...and takes it over once the lease has run out
    clock.advance(31)
    second = await Delivery(db, transport, _pacer()).run(bid)
    assert second.status == "done" and second.recovered == 1
    total = crashed.received() + transport.received()
    assert set(total) == {tg for _, tg in people}  # nobody lost
    # the one in-flight message is the only one that can arrive twice
    assert {chat for chat, n in total.items() if n > 1} <= {in_flight}
    assert transport.received()[in_flight] == 1 and len(transport.sent) == 6


async def test_a_dead_runner_on_this_host_is_taken_over_at_once(db: Database) -> None:
    import socket

    project = make_project(db)
    make_workers(db, 3)
    dead = f"{socket.gethostname()}:999999:cli:abc"  # no such pid
    bid = _create(db, project.id, runner=dead)
    with db.session() as s:
        first = (
            s.execute(select(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == bid).order_by(BroadcastRecipient.id))
            .scalars()
            .first()
        )
        first.status = RecipientStatus.SENDING
    assert lease.holder_is_dead(dead)
    assert db.call(lease.runnable, clock.utcnow()) == [bid]
    transport = FakeTransport()
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert (result.status, result.recovered, len(transport.sent)) == ("done", 1, 3)
    # another host's runner with a valid lease is left alone
    bid2 = _create(db, project.id, runner="elsewhere:1:bot:x")
    assert not lease.holder_is_dead("elsewhere:1:bot:x")
    assert db.call(lease.runnable, clock.utcnow()) == []
    assert (await Delivery(db, FakeTransport(), _pacer()).run(bid2)).status == "busy"


async def test_429_pauses_all_sending_then_retries_the_same_message(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 8)
    victim = people[2][1]
    transport = FakeTransport(script={victim: [RateLimited(0.4)]})
    pacer = _pacer(rate=200)
    other_project = make_project(db, name="Other")
    others = make_workers(db, 6, first_tg=7000)
    b1 = _create(db, project.id, audience="all")
    b2 = _create(db, other_project.id, audience="all")
    # two broadcasts at once sharing the process pacer: the 429 seen by one pauses both
    r1, r2 = await asyncio.gather(Delivery(db, transport, pacer).run(b1), Delivery(db, transport, pacer).run(b2))
    assert r1.status == r2.status == "done"
    assert r1.http_429 + r2.http_429 == 1
    hit = next(t for chat, t in transport.attempts_at if chat == victim)
    after = [t for _, t in transport.attempts_at if t > hit]
    assert after and min(after) - hit >= 0.4 - 0.02
    # the rate-limited message was sent once afterwards; everyone got one message per broadcast
    got = transport.received()
    assert set(got.values()) == {2} and len(got) == len(people) + len(others)
    assert all(r.status == RecipientStatus.SENT for r in _rows(db, b1))


async def test_403_marks_blocked_and_the_worker_unreachable(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 4)
    (wid, tg) = people[1]
    transport = FakeTransport(script={tg: [Forbidden("Forbidden: bot was blocked by the user")]})
    bid = _create(db, project.id)
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert (result.status, result.sent, result.blocked) == ("done", 3, 1)
    assert transport.calls[tg] == 1  # never retried
    row = next(r for r in _rows(db, bid) if r.chat_id == tg)
    assert row.status == RecipientStatus.BLOCKED and "blocked" in (row.error or "")
    with db.session() as s:
        worker = s.get(Worker, wid)
        assert worker.status == WorkerStatus.UNREACHABLE
    # the next broadcast does not even address them
    b2 = _create(db, project.id, text="again")
    assert {r.chat_id for r in _rows(db, b2)} == {t for _, t in people} - {tg}


async def test_transient_errors_are_retried_with_backoff_then_failed_with_reason(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 5)
    flaky, broken, bad = people[0][1], people[1][1], people[2][1]
    server_error = SendFailed("Telegram server says - Bad Gateway", retryable=True)
    transport = FakeTransport(
        script={
            flaky: [server_error, server_error, None],
            broken: [server_error] * 10,
            bad: [SendFailed("Bad Request: chat not found", retryable=False)],
        }
    )
    bid = _create(db, project.id)
    result = await Delivery(db, transport, _pacer(), max_attempts=3, backoff_base=0.05, idle_poll=0.02).run(bid)
    assert result.status == "done"
    rows = {r.chat_id: r for r in _rows(db, bid)}
    assert rows[flaky].status == RecipientStatus.SENT and transport.calls[flaky] == 3
    assert rows[broken].status == RecipientStatus.FAILED and transport.calls[broken] == 3
    assert rows[broken].attempts == 3 and rows[broken].error == "Telegram server says - Bad Gateway"
    assert rows[bad].status == RecipientStatus.FAILED and transport.calls[bad] == 1
    assert rows[bad].error == "Bad Request: chat not found"
    # back-off: the retries of `broken` were spaced by at least 0.05 s then 0.1 s
    times = [t for chat, t in transport.attempts_at if chat == broken]
    assert times[1] - times[0] >= 0.05 - 0.01 and times[2] - times[1] >= 0.1 - 0.01
    assert db.call(service.failures, bid) == [(broken, "Telegram server says - Bad Gateway"), (bad, "Bad Request: chat not found")]


async def test_a_photo_is_uploaded_once_then_sent_by_file_id(db: Database, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "batch.jpg"
    Image.new("RGB", (64, 48), "orange").save(photo)
    project = make_project(db)
    people = make_workers(db, 6)
    blocked_first = people[0][1]
    transport = FakeTransport(script={blocked_first: [Forbidden("Forbidden: bot was blocked by the user")]})
    bid = _create(db, project.id, text="Caption", photo_path=photo)
    result = await Delivery(db, transport, _pacer(), lanes=3).run(bid)
    assert result.status == "done" and result.sent == 5
    uploads = [s for s in transport.sent if s.photo and s.photo.path is not None]
    assert len(uploads) == 1 and uploads[0].photo.path == photo.resolve()
    by_id = [s for s in transport.sent if s.photo and s.photo.file_id]
    assert len(by_id) == 4 and len({s.photo.file_id for s in by_id}) == 1
    assert transport.calls[blocked_first] == 1  # its failed upload was not retried
    assert all(s.text == "Caption" for s in transport.sent)
    with db.session() as s:
        assert s.get(Broadcast, bid).photo_file_id == by_id[0].photo.file_id


async def test_cancel_stops_before_the_next_message(db: Database) -> None:
    project = make_project(db)
    make_workers(db, 20)
    bid = _create(db, project.id)

    def cancel_at_third(chat_id: int, n: int) -> None:
        if n == 3:
            db.call(service.cancel, bid)

    transport = FakeTransport(hook=cancel_at_third)
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert result.status == "cancelled"
    assert len(transport.sent) == 3  # the one in flight completes and is recorded
    prog = db.call(service.progress, bid)
    assert (prog.status, prog.sent, prog.sending, prog.pending) == (BroadcastStatus.CANCELLED, 3, 0, 17)
    with pytest.raises(service.BroadcastError, match="already cancelled"):
        db.call(service.cancel, bid)


async def test_fatal_error_stops_without_marking_anyone(db: Database) -> None:
    project = make_project(db)
    people = make_workers(db, 5)
    transport = FakeTransport(script={people[2][1]: [Fatal("Unauthorized")]})
    bid = _create(db, project.id)
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert result.status == "error" and result.error == "Unauthorized"
    prog = db.call(service.progress, bid)
    assert (prog.sent, prog.failed, prog.pending, prog.sending) == (2, 0, 3, 0)
    with db.session() as s:
        b = s.get(Broadcast, bid)
        assert b.status == BroadcastStatus.RUNNING and b.runner is None  # resumable at once
    rest = await Delivery(db, FakeTransport(), _pacer()).run(bid)
    assert rest.status == "done" and rest.sent == 3


async def test_graceful_stop_releases_without_in_flight_rows(db: Database) -> None:
    project = make_project(db)
    make_workers(db, 30)
    bid = _create(db, project.id)
    delivery = Delivery(db, FakeTransport(), _pacer(rate=100))

    async def stop_soon() -> None:
        await asyncio.sleep(0.1)
        delivery.stop()

    result, _ = await asyncio.gather(delivery.run(bid), stop_soon())
    assert result.status == "stopped"
    prog = db.call(service.progress, bid)
    assert prog.sending == 0 and 0 < prog.sent < 30
    assert db.call(lease.runnable, clock.utcnow()) == [bid]


async def test_workers_banned_or_unreachable_after_creation_are_skipped(db: Database) -> None:
    from bot import workers

    project = make_project(db)
    people = make_workers(db, 3)
    bid = _create(db, project.id)
    db.call(workers.ban, people[0][0], "spam")
    db.call(workers.mark_unreachable, people[1][0])
    transport = FakeTransport()
    result = await Delivery(db, transport, _pacer()).run(bid)
    assert set(transport.received()) == {people[2][1]}
    rows = {r.chat_id: r.status for r in _rows(db, bid)}
    assert rows[people[0][1]] == RecipientStatus.FAILED and rows[people[1][1]] == RecipientStatus.BLOCKED
    assert result.sent == 1


@pytest.mark.postgres
async def test_delivery_and_recovery_on_postgres(pg_db: Database) -> None:
    project = make_project(pg_db)
    people = make_workers(pg_db, 6)
    transport = FakeTransport(
        script={people[0][1]: [SendFailed("Bad Gateway"), None], people[1][1]: [Forbidden("Forbidden: bot was blocked by the user")]}
    )
    bid = _create(pg_db, project.id)
    with pg_db.session() as s:
        row = s.execute(select(BroadcastRecipient).where(BroadcastRecipient.chat_id == people[3][1])).scalars().one()
        row.status = RecipientStatus.SENDING  # left by a crashed runner
    result = await Delivery(pg_db, transport, _pacer(), backoff_base=0.05, idle_poll=0.02, lanes=2).run(bid)
    assert result.status == "done" and result.recovered == 1
    prog = pg_db.call(service.progress, bid)
    assert (prog.sent, prog.blocked, prog.failed, prog.remaining) == (5, 1, 0, 0)
    assert set(transport.received().values()) == {1}


def test_backoff_doubles_and_is_capped() -> None:
    assert [dl.backoff(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert dl.backoff(30, 2.0) == 300.0


async def test_rate_limited_forever_goes_back_to_the_queue(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "MAX_429_IN_A_ROW", 3)
    project = make_project(db)
    people = make_workers(db, 2)
    tg = people[0][1]
    transport = FakeTransport(script={tg: [RateLimited(0.01)] * 3 + [None]})
    bid = _create(db, project.id)
    started = time.monotonic()
    result = await Delivery(db, transport, _pacer(), backoff_base=0.05, idle_poll=0.02).run(bid)
    assert result.status == "done" and result.http_429 == 3 and result.retried == 1
    assert transport.received()[tg] == 1 and time.monotonic() - started < 5
