"""One sending pace for every broadcast of the bot: below Telegram's ~30 messages/s, at most one
message per second to a chat, and a global stop after a 429.

The global pace is a token bucket of ``rate`` tokens per second holding ``credit`` seconds of
them, drained no faster than ``peak = rate * peak_factor`` (25/s, 1 s, 28/s by default). Both
limits are kept as GCRA ("virtual scheduling"): one number each, the theoretical time of the next
message, so a sender *reserves* its slot (``max(now, tat - credit, peak_tat, paused_until)``)
and concurrent senders get successive slots without holding a lock while they wait.

Why a credit: a sender that fell behind (a slow commit, a busy CPU, a disk flush) catches up at
the peak rate instead of losing the time, so the sustained rate is the configured one. Why a
peak: the catch-up never looks like a burst to Telegram — no one-second window ever holds more
than 28 messages with the defaults, which is what keeps ``http_429`` at zero. After a 429 the
credit is dropped: sending resumes at exactly ``rate``.

A chat that is not ready yet (its last message was less than ``per_chat_interval`` ago) does not
reserve a global slot: its sender waits for the chat first, so one slow chat never holds back
the others and two broadcasts to the same workers still share the full rate.

:class:`LocalPacer` serves all broadcasts of one process; :class:`RedisPacer` keeps the same
state in Redis (with Redis' clock), so several bot replicas and the admin CLI share ONE pace.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger("crowdpin.broadcast")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


class Pacer(Protocol):
    async def acquire(self, chat_id: int) -> None:
        """Return when one message may be sent to ``chat_id`` now."""

    async def pause(self, seconds: float) -> None:
        """Stop every sender for ``seconds`` (a 429's ``retry_after``)."""


class LocalPacer:
    """The pace of one process. ``clock``/``sleep`` are injectable so tests run in fake time."""

    def __init__(
        self,
        rate: float = 25.0,
        per_chat_interval: float = 1.0,
        *,
        credit: float = 1.0,
        peak_factor: float = 1.12,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_chats: int = 100_000,
    ) -> None:
        _check(rate, per_chat_interval, credit, peak_factor)
        self.rate = rate
        self.interval = 1.0 / rate
        self.peak_interval = 1.0 / (rate * peak_factor)
        self.credit = credit
        self.per_chat_interval = per_chat_interval
        self.clock = clock
        self.sleep = sleep
        self.max_chats = max_chats
        self._tat = -math.inf  # average limiter
        self._peak_tat = -math.inf  # peak limiter
        self._paused_until = -math.inf
        self._chat_ready: dict[int, float] = {}

    def _reserve(self, chat_id: int, now: float) -> tuple[bool, float]:
        """(reserved, when): a slot at ``when``, or "wait until ``when`` and ask again"."""
        ready = self._chat_ready.get(chat_id, -math.inf)
        if ready > now:
            return False, ready
        start = max(now, self._tat - self.credit, self._peak_tat, self._paused_until)
        self._tat = max(self._tat, start) + self.interval
        self._peak_tat = start + self.peak_interval
        self._chat_ready[chat_id] = start + self.per_chat_interval
        if len(self._chat_ready) > self.max_chats:
            self._chat_ready = {c: t for c, t in self._chat_ready.items() if t > now}
        return True, start

    async def acquire(self, chat_id: int) -> None:
        while True:
            now = self.clock()
            reserved, when = self._reserve(chat_id, now)
            if when > now:
                await self.sleep(when - now)
            if reserved and self.clock() >= self._paused_until:
                return
            # not reserved (chat busy) or a 429 pause began while we waited: ask again

    async def pause(self, seconds: float) -> None:
        until = self.clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._tat = max(self._tat, until + self.credit)  # no catch-up burst after a 429
            log.warning("broadcast.paused", seconds=seconds)

    async def paused_for(self) -> float:
        return max(0.0, self._paused_until - self.clock())


def _check(rate: float, per_chat_interval: float, credit: float, peak_factor: float) -> None:
    if rate <= 0:
        raise ValueError("BROADCAST_RATE must be positive")
    if per_chat_interval < 0:
        raise ValueError("BROADCAST_PER_CHAT_INTERVAL cannot be negative")
    if credit < 0 or peak_factor < 1:
        raise ValueError("credit must be >= 0 and peak_factor >= 1")


# Times are integer microseconds of Redis' clock (TIME), so replicas with skewed clocks agree.
# Lua numbers are doubles: exact for integers below 2^53 (~285 years of microseconds), but
# tostring() would print them in exponent form, hence string.format("%.0f").
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local chat = tonumber(redis.call('GET', KEYS[3]) or '0')
if chat > now then
  return {0, chat - now}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local peak = tonumber(redis.call('GET', KEYS[4]) or '0')
local interval = tonumber(ARGV[1])
local per_chat = tonumber(ARGV[2])
local credit = tonumber(ARGV[3])
local peak_interval = tonumber(ARGV[4])
local start = math.max(now, tat - credit, peak, pause)
local nxt = math.max(tat, start) + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor(math.max(nxt - now, 0) / 1000) + 60000)
redis.call('SET', KEYS[4], string.format('%.0f', start + peak_interval), 'PX', math.floor((start + peak_interval - now) / 1000) + 1000)
if per_chat > 0 then
  redis.call('SET', KEYS[3], string.format('%.0f', start + per_chat), 'PX', math.floor((start + per_chat - now) / 1000) + 1000)
end
return {1, start - now}
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', until_), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  local floor_ = until_ + tonumber(ARGV[2])
  if floor_ > tat then
    redis.call('SET', KEYS[2], string.format('%.0f', floor_), 'PX', math.floor((floor_ - now) / 1000) + 60000)
  end
end
return 0
"""

_PAUSED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
if pause > now then return pause - now end
return 0
"""


class RedisPacer:
    """The same pace, shared through Redis by every process that uses the same ``prefix``.

    ``prefix`` should name the bot (Telegram's limits are per bot token), e.g.
    ``crowdpin:pace:<bot id>``.
    """

    def __init__(
        self,
        redis: Any,
        rate: float = 25.0,
        per_chat_interval: float = 1.0,
        *,
        credit: float = 1.0,
        peak_factor: float = 1.12,
        prefix: str = "crowdpin:pace",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        _check(rate, per_chat_interval, credit, peak_factor)
        self.redis = redis
        self.rate = rate
        self.interval_us = round(1_000_000 / rate)
        self.peak_interval_us = round(1_000_000 / (rate * peak_factor))
        self.credit_us = round(credit * 1_000_000)
        self.per_chat_us = round(per_chat_interval * 1_000_000)
        self.prefix = prefix
        self.sleep = sleep
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)
        self._paused_for = redis.register_script(_PAUSED_FOR)

    @classmethod
    def from_url(cls, url: str, rate: float = 25.0, per_chat_interval: float = 1.0, **kwargs: Any) -> RedisPacer:
        import redis.asyncio as aioredis

        return cls(aioredis.Redis.from_url(url), rate, per_chat_interval, **kwargs)

    @property
    def _keys(self) -> tuple[str, str, str]:
        # one hash tag: the script's keys must live in one slot on a Redis Cluster
        return f"{{{self.prefix}}}:tat", f"{{{self.prefix}}}:pause", f"{{{self.prefix}}}:peak"

    def _chat_key(self, chat_id: int) -> str:
        return f"{{{self.prefix}}}:chat:{chat_id}"

    async def acquire(self, chat_id: int) -> None:
        tat_key, pause_key, peak_key = self._keys
        while True:
            reserved, wait_us = await self._reserve(
                keys=[tat_key, pause_key, self._chat_key(chat_id), peak_key],
                args=[self.interval_us, self.per_chat_us, self.credit_us, self.peak_interval_us],
            )
            if wait_us > 0:
                await self.sleep(wait_us / 1_000_000)
            if reserved and await self.paused_for() <= 0:
                return

    async def pause(self, seconds: float) -> None:
        await self._pause(keys=[self._keys[1], self._keys[0]], args=[round(max(0.0, seconds) * 1_000_000), self.credit_us])
        log.warning("broadcast.paused", seconds=seconds, shared=True)

    async def paused_for(self) -> float:
        return int(await self._paused_for(keys=[self._keys[1]])) / 1_000_000

    async def close(self) -> None:
        await self.redis.aclose()


_shared: dict[tuple[Any, ...], Pacer] = {}


def shared_pacer(rate: float, per_chat_interval: float = 1.0, *, redis_url: str | None = None, bot_id: str = "") -> Pacer:
    """The process-wide pacer for these settings, so all broadcasts running here share it.

    Cached per event loop as well, because a Redis asyncio client belongs to the loop that
    opened its connections.
    """
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    key = (loop_id, rate, per_chat_interval, redis_url, bot_id)
    pacer = _shared.get(key)
    if pacer is None:
        pacer = _shared[key] = new_pacer(rate, per_chat_interval, redis_url=redis_url, bot_id=bot_id)
    return pacer


def new_pacer(rate: float, per_chat_interval: float = 1.0, *, redis_url: str | None = None, bot_id: str = "") -> Pacer:
    """A Redis pacer when ``redis_url`` is set (shared with every process of this bot), else local."""
    if redis_url:
        return RedisPacer.from_url(redis_url, rate, per_chat_interval, prefix=f"crowdpin:pace:{bot_id or 'bot'}")
    return LocalPacer(rate, per_chat_interval)
