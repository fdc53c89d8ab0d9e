"""The pace: a global rate, one message per second per chat, a global pause after a 429 —
in fake time for the local pacer, and against the real Redis for the shared one."""

from __future__ import annotations

import asyncio
import itertools
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


async def test_sustained_rate_with_a_peak_well_under_telegrams_limit() -> None:
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, clock=clock, sleep=clock.sleep)  # credit 1 s, peak 28/s
    log: list[tuple[int, float]] = []
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(1000)))
    times = sorted(t for _, t in log)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(1 / 28)  # never faster than the peak
    assert _max_in_window(times) <= 28
    # the long run is the configured rate: 1000 messages in 999/25 s minus the 1 s credit
    assert times[-1] - times[0] == pytest.approx(999 / 25 - 1.0, abs=0.05)
    assert gaps[-1] == pytest.approx(0.04)  # once the credit is used, exactly 25/s
    # idle for a while: the credit is back, but capped at one second's worth
    clock.now += 60
    log.clear()
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(2000, 2300)))
    later = sorted(t for _, t in log)
    assert later[-1] - later[0] == pytest.approx(299 / 25 - 1.0, abs=0.05)
    assert _max_in_window(later) <= 28


async def test_strict_pace_without_credit() -> None:
    clock = FakeClock()
    pacer = LocalPacer(25, 1.0, credit=0, peak_factor=1.0, clock=clock, sleep=clock.sleep)
    log: list[tuple[int, float]] = []
    await clock.drive(*(_timed(clock, pacer, chat, log) for chat in range(50)))
    times = sorted(t for _, t in log)
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.04] * 49


async def test_a_sender_that_stalls_catches_up_to_the_configured_rate() -> None:
    """A sender that stalls for 0.5 s every 150 messages (a disk flush, a busy CPU): the credit
    lets it catch up at the peak, so it loses (almost) no time; a strict pace loses all of it."""

    async def span(stall: float, **kw: float) -> float:
        clock = FakeClock()
        pacer = LocalPacer(25, 1.0, clock=clock, sleep=clock.sleep, **kw)
        stamps: list[float] = []

        async def sender() -> None:
            for i in range(600):
                await pacer.acquire(i)
                stamps.append(clock())
                if i % 150 == 149:
                    await clock.sleep(stall)

        await clock.drive(sender())
        assert _max_in_window(stamps) <= 28
        return stamps[-1] - stamps[0]

    assert await span(0.5) - await span(0.0) < 0.1
    strict = {"credit": 0.0, "peak_factor": 1.0}
    assert await span(0.5, **strict) - await span(0.0, **strict) == pytest.approx(3 * (0.5 - 0.04), abs=0.02)


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
    assert _max_in_window(times) <= 28
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
    # the others had reserved slots; the pause voided them: nothing before +5 s, and then
    # exactly the configured rate (no catch-up burst right after a 429)
    assert others[0] >= first + 5.0 - 1e-9
    assert min(b - a for a, b in itertools.pairwise(others)) >= 0.1 - 1e-9


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="BROADCAST_RATE"):
        LocalPacer(0)
    with pytest.raises(ValueError, match="PER_CHAT"):
        LocalPacer(10, -1)
    with pytest.raises(ValueError, match="peak_factor"):
        LocalPacer(10, 1, peak_factor=0.5)


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
        await asyncio.gather(replica("a", a, range(20)), replica("b", b, range(100, 120)))
        elapsed = time.monotonic() - started
        times = sorted(t for *_, t in stamps)
        # 40 messages with 40/s (peak 44.8/s, 1 s credit) in total: ~0.87 s; two separate paces
        # would take ~0.43 s
        assert elapsed >= 39 / 44.8 - 0.05
        assert len({n for n, *_ in stamps}) == 2
        # any 11 messages span at least 10 peak intervals (asyncio jitter allowed)
        assert min(times[i + 10] - times[i] for i in range(len(times) - 10)) >= 10 / 44.8 - 0.03

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
