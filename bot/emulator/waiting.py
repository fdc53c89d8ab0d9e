"""Waiting for state changes without polling loops.

``Emulator.wait_for(predicate)`` re-evaluates the predicate only when
something it could depend on has changed. While the predicate runs, the
emulator records which chats it reads (``transcript``, ``last_message``, ...);
the waiter then sleeps until one of those chats changes. A predicate that
reads anything else (stats, callback answers, or state outside the emulator)
is woken by every change. A slow fallback tick re-checks anyway (every
second, or every quarter second for predicates that read no chat), for
predicates that also look at state the emulator cannot see, such as the
bot's database.

With hundreds of simulated users each waiting for their own chat, a bot
call wakes one waiter instead of all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

ANY_CHANGE: Hashable = object()  # dependency marker: wake on every change
FALLBACK_RECHECK_S = 1.0  # predicates that read chats: they are woken by those chats' changes
UNTRACKED_RECHECK_S = 0.25  # predicates that read no chat (stats, or state outside the emulator)


class ChangeNotifier:
    def __init__(self) -> None:
        self._by_key: dict[Hashable, set[asyncio.Future[None]]] = {}
        self._any: set[asyncio.Future[None]] = set()
        self._tracking: set[Hashable] | None = None

    def track(self, key: Hashable) -> None:
        """Note that the predicate being evaluated depends on ``key``."""
        if self._tracking is not None:
            self._tracking.add(key)

    def notify(self, key: Hashable | None = None) -> None:
        """Something changed (in chat ``key``, or somewhere else when None)."""
        woken: list[asyncio.Future[None]] = []
        if self._any:
            woken.extend(self._any)
            self._any.clear()
        if key is not None:
            waiters = self._by_key.pop(key, None)
            if waiters:
                woken.extend(waiters)
        for future in woken:
            if not future.done():
                future.set_result(None)

    def evaluate(self, predicate: Callable[[], T]) -> tuple[T, set[Hashable]]:
        previous, self._tracking = self._tracking, set()
        try:
            value = predicate()
            return value, self._tracking
        finally:
            self._tracking = previous

    async def wait_until(self, predicate: Callable[[], T | None], timeout: float, on_timeout: Callable[[], str] | None = None) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value, deps = self.evaluate(predicate)
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                detail = on_timeout() if on_timeout else ""
                raise TimeoutError(f"condition {_describe(predicate)} not met within {timeout:g} s{detail}")
            tracked = bool(deps) and ANY_CHANGE not in deps
            await self._sleep(loop, deps, min(remaining, FALLBACK_RECHECK_S if tracked else UNTRACKED_RECHECK_S))

    async def _sleep(self, loop: asyncio.AbstractEventLoop, deps: set[Hashable], delay: float) -> None:
        future: asyncio.Future[None] = loop.create_future()
        keys = [] if (not deps or ANY_CHANGE in deps) else list(deps)
        if keys:
            for key in keys:
                self._by_key.setdefault(key, set()).add(future)
        else:
            self._any.add(future)
        timer = loop.call_later(delay, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            if keys:
                for key in keys:
                    waiters = self._by_key.get(key)
                    if waiters is not None:
                        waiters.discard(future)
                        if not waiters:
                            del self._by_key[key]
            else:
                self._any.discard(future)


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _describe(predicate: Callable[..., Any]) -> str:
    code = getattr(predicate, "__code__", None)
    name = getattr(predicate, "__qualname__", repr(predicate))
    if code is not None:
        return f"{name} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"
    return name
