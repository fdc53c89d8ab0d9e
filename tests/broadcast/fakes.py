"""Test doubles for broadcast delivery: a scripted transport and a fake clock for the pacer."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot import workers
from bot.broadcast.transport import Button, Delivered, Photo, TransportError
from bot.db import Database
from bot.tasks import projects
from bot.tasks.models import Project


class FakeClock:
    """Virtual time: ``sleep`` parks the caller until :meth:`drive` moves time to its wake-up."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + max(0.0, seconds), next(self._seq), fut))
        await fut

    async def drive(self, *aws: Any) -> list[Any]:
        """Run ``aws`` to completion, jumping time forward whenever every task is asleep."""
        tasks = [asyncio.ensure_future(a) for a in aws]
        while not all(t.done() for t in tasks):
            for _ in range(50):
                await asyncio.sleep(0)
            if self._waiters:
                when, _, fut = heapq.heappop(self._waiters)
                self.now = max(self.now, when)
                fut.set_result(None)
        return [t.result() for t in tasks]


@dataclass
class Sent:
    chat_id: int
    text: str
    button: Button | None
    photo: Photo | None
    at: float


@dataclass
class FakeTransport:
    """Records every send; ``script[chat_id]`` lists exceptions to raise on successive attempts
    (``None`` = succeed), ``hook`` runs before each send (to cancel, block, crash...)."""

    script: dict[int, list[TransportError | None]] = field(default_factory=dict)
    hook: Callable[[int, int], Any] | None = None  # (chat_id, call number) -> awaitable or None
    sent: list[Sent] = field(default_factory=list)
    calls: Counter[int] = field(default_factory=Counter)
    attempts_at: list[tuple[int, float]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def _go(self, chat_id: int, text: str, button: Button | None, photo: Photo | None) -> Delivered:
        self.calls[chat_id] += 1
        n = sum(self.calls.values())
        self.attempts_at.append((chat_id, time.monotonic()))
        if self.hook is not None:
            maybe = self.hook(chat_id, n)
            if asyncio.iscoroutine(maybe):
                await maybe
        plan = self.script.get(chat_id)
        if plan:
            error = plan.pop(0)
            if error is not None:
                raise error
        self.sent.append(Sent(chat_id, text, button, photo, time.monotonic()))
        file_id = None
        if photo is not None:
            file_id = photo.file_id or f"file-{next(self._ids)}"
        return Delivered(message_id=next(self._ids), file_id=file_id)

    async def send_message(self, chat_id: int, text: str, button: Button | None) -> Delivered:
        return await self._go(chat_id, text, button, None)

    async def send_photo(self, chat_id: int, photo: Photo, caption: str, button: Button | None) -> Delivered:
        return await self._go(chat_id, caption, button, photo)

    def received(self) -> Counter[int]:
        return Counter(s.chat_id for s in self.sent)


def make_project(db: Database, name: str = "Shapes", **fields: Any) -> Project:
    with db.session() as s:
        return projects.create(s, name=name, labels=["a", "b"], **fields)


def make_workers(db: Database, n: int, *, first_tg: int = 5000, lang: str = "ko") -> list[tuple[int, int]]:
    """(worker id, tg id) of ``n`` new active workers."""
    out = []
    with db.session() as s:
        for i in range(n):
            w, _ = workers.register(s, tg_id=first_tg + i, name=f"w{i}", language_code=lang)
            out.append((w.id, w.tg_id))
    return out
