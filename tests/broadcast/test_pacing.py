"""The pace: a global rate, one message per second per chat, a global pause after a 429 —
in fake time for the local pacer, and against the real Redis for the shared one."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.broadcast.pacing import LocalPacer, RedisPacer, shared_pacer
from tests.broadcast.fakes import FakeClock


async def _timed(clock: FakeClock, pacer: LocalPacer, chat_id: int, log: list[tuple[int, float]]) -> None:
    await pacer.acquire(chat_id)
    log.append((chat_id, clock()))


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window - 1e-9) for i, t in enumerate(times))


async def test_global_rate_is_even_spacing_with_a_small_burst_only() -> None:
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, burst=3, clock=clock, sleep=clock.sleep)
    log: list[tuple[int, float]] = []
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(100)))
    times = sorted(t for _, t in log)
    assert times[:3] == [0.0, 0.0, 0.0]  # the burst
    gaps = [b - a for a, b in zip(times[2:], times[3:])]
    assert min(gaps) == pytest.approx(0.04) and max(gaps) == pytest.approx(0.04)
    assert _max_in_window(times) == 25 + 2  # never more than rate + burst - 1 in any second
    # idle for a while: the saved-up time is capped at the burst
    clock.now += 10
    log.clear()
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(200, 206)))
    later = sorted(t for _, t in log)
    assert [round(b - a, 6) for a, b in zip(later, later[1:])] == [0.0, 0.0, 0.04, 0.04, 0.04]


async def test_strict_pace_with_burst_one() -> None:
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, burst=1, clock=clock, sleep=clock.sleep)
    log: list[tuple[int, float]] = []
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(50)))
    times = sorted(t for _, t in log)
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.04] * 49


async def test_a_late_sender_catches_up_to_the_configured_rate() -> None:
    """One sender whose own work per message alternates 70 ms / 5 ms (37.5 ms on average,
    under the 40 ms interval): with catch-up it sustains 25/s; a strict pace would give ~18/s."""
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, burst=3, clock=clock, sleep=clock.sleep)
    stamps: list[float] = []

    async def sender() -> None:
        for i in range(200):
            await pacer.acquire(i)
            stamps.append(clock())
            await clock.sleep(0.07 if i % 2 == 0 else 0.005)

    await clock.drive(sender())
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate == pytest.approx(25, rel=0.03)
    assert _max_in_window(stamps) <= 27


async def test_one_message_per_second_per_chat_without_holding_back_others() -> None:
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, clock=clock, sleep=clock.sleep)
    log: list[tuple[int, float]] = []
    # two broadcasts to the same 30 chats at once, sharing one pacer
    jobs = [_timed(clock, pacer, chat, log) for chat in range(30)] + [_timed(clock, pacer, chat, log) for chat in range(30)]
    await clock.drive(*jobs)
    per_chat: dict[int, list[float]] = {}
    for chat, at in log:
        per_chat.setdefault(chat, []).append(at)
    assert all(len(v) == 2 for v in per_chat.values())
    assert min(b - a for a, b in (sorted(v) for v in per_chat.values())) >= 1.0 - 1e-9
    times = sorted(t for _, t in log)
    assert _max_in_window(times) <= 27
    # 60 messages at 25/s take ~2.4 s, not 30 s: a busy chat does not stall the queue
    assert times[-1] - times[0] < 3.0


async def test_pause_stops_every_sender_including_those_already_waiting() -> None:
    clock = FakeClock()
    pacer = LocalPacer(10, 1.0, clock=clock, sleep=clock.sleep)
    log: list[tuple[int, float]] = []

    async def hit_429_at_first_send() -> None:
        await pacer.acquire(1)
        log.append((1, clock()))
        await pacer.pause(5.0)

    await clock.drive(hit_429_at_first_send(), *(_timed(clock, pacer, chat, log) for chat in range(2, 8)))
    first = log[0][1]
    others = sorted(t for chat, t in log if chat != 1)
    assert log[0][0] == 1
    # the others had reserved slots at 0.1, 0.2...; the pause voided them: nothing before +5 s
    assert others[0] >= first + 5.0 - 1e-9
    assert min(b - a for a, b in zip(others, others[1:])) >= 0.1 - 1e-9


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="BROADCAST_RATE"):
        LocalPacer(0)
    with pytest.raises(ValueError, match="PER_CHAT"):
        LocalPacer(10, -1)


async def test_shared_pacer_is_one_per_process_and_settings() -> None:
    a = shared_pacer(25, 1.0)
    assert shared_pacer(25, 1.0) is a
    assert shared_pacer(20, 1.0) is not a


@pytest.mark.redis
async def test_redis_pacer_gives_two_replicas_one_global_pace(redis_url: str) -> None:
    import uuid

    prefix = f"crowdpin:test:{uuid.uuid4().hex[:8]}"
    a = RedisPacer.from_url(redis_url, rate=40, per_chat_interval=1.0, prefix=prefix)
    b = RedisPacer.from_url(redis_url, rate=40, per_chat_interval=1.0, prefix=prefix)
    stamps: list[tuple[str, int, float]] = []

    async def replica(name: str, pacer: RedisPacer, chats: range) -> None:
        for chat in chats:
            await pacer.acquire(chat)
            stamps.append((name, chat, time.monotonic()))

    try:
        started = time.monotonic()
        await asyncio.gather(replica("a", a, range(0, 20)), replica("b", b, range(100, 120)))
        elapsed = time.monotonic() - started
        times = sorted(t for *_, t in stamps)
        # 40 messages at 40/s in total (burst 3): ~0.95 s, not ~0.5 s as two separate paces would give
        assert elapsed >= 37 / 40 - 0.05
        assert len({n for n, *_ in stamps}) == 2
        # any 11 messages span at least 8 intervals (10 minus the burst; asyncio jitter allowed)
        assert min(times[i + 10] - times[i] for i in range(len(times) - 10)) >= 8 / 40 - 0.03

        # a 429 seen by replica a pauses replica b as well
        await a.pause(0.5)
        assert await b.paused_for() > 0.3
        t0 = time.monotonic()
        await b.acquire(999)
        assert time.monotonic() - t0 >= 0.4

        # one chat: one message per second, across replicas
        t0 = time.monotonic()
        await a.acquire(7)
        await b.acquire(7)
        assert time.monotonic() - t0 >= 0.9
    finally:
        import redis

        r = redis.Redis.from_url(redis_url)
        for key in r.scan_iter(f"{{{prefix}}}*"):
            r.delete(key)
        await a.close()
        await b.close()
