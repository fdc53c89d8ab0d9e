"""Flood control as Telegram applies it to message sending.

Telegram allows a bot roughly one message per second in a chat (with short
bursts) and about thirty per second overall, and answers anything faster
with ``429 Too Many Requests: retry after N``. Both limits are token buckets:
``rate`` tokens per second, up to ``burst`` saved up. Only sending methods
are limited (sendMessage, sendPhoto, sendMediaGroup, copyMessage, ...), not
edits or callback answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import too_many_requests

DEFAULT_PER_CHAT_PER_S = 1.0
DEFAULT_GLOBAL_PER_S = 30.0
DEFAULT_PER_CHAT_BURST = 3


@dataclass(slots=True)
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, now: float, amount: float = 1.0) -> float:
        self.refill(now)
        missing = amount - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.rate

    def take(self, amount: float = 1.0) -> None:
        self.tokens -= amount


@dataclass(slots=True)
class FloodControl:
    """Per-chat and per-bot send limits; :meth:`acquire` raises the 429 Telegram would send."""

    enabled: bool = False
    per_chat_per_s: float = DEFAULT_PER_CHAT_PER_S
    global_per_s: float = DEFAULT_GLOBAL_PER_S
    per_chat_burst: int = DEFAULT_PER_CHAT_BURST
    _chats: dict[tuple[str, int], TokenBucket] = field(default_factory=dict)
    _bots: dict[str, TokenBucket] = field(default_factory=dict)

    def configure(
        self,
        enabled: bool,
        per_chat_per_s: float = DEFAULT_PER_CHAT_PER_S,
        global_per_s: float = DEFAULT_GLOBAL_PER_S,
        per_chat_burst: int | None = None,
    ) -> None:
        if per_chat_per_s <= 0 or global_per_s <= 0:
            raise ValueError("flood control rates must be positive")
        self.enabled = enabled
        self.per_chat_per_s = per_chat_per_s
        self.global_per_s = global_per_s
        if per_chat_burst is not None:
            self.per_chat_burst = max(1, per_chat_burst)
        self._chats.clear()
        self._bots.clear()

    def acquire(self, token: str, chat_id: int, now: float) -> None:
        """Take one send slot for ``chat_id``, or raise 429 with ``retry_after``."""
        if not self.enabled:
            return
        chat = self._chats.get((token, chat_id))
        if chat is None:
            burst = float(self.per_chat_burst)
            chat = self._chats[(token, chat_id)] = TokenBucket(self.per_chat_per_s, burst, burst, now)
        bot = self._bots.get(token)
        if bot is None:
            bot = self._bots[token] = TokenBucket(self.global_per_s, self.global_per_s, self.global_per_s, now)
        wait = max(chat.wait_time(now), bot.wait_time(now))
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait)))
        chat.take()
        bot.take()
