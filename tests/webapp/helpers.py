"""Shared by the Mini App tests: a sandbox serving the page, a worker with an open task, and
plain HTTP calls to the page's API with launch data the emulator signed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
from sqlalchemy import func, select

from bot.sample import SampleImage, true_mask
from bot.sandbox import Sandbox, create_mask_project
from bot.simulate import Screen, SimWorker
from bot.tasks.models import Answer, Assignment, Task
from bot.wallet.models import LedgerEntry

WAIT = 30.0


@dataclass
class Opened:
    """A worker's task message and the Mini App opened from its ✏️ Precise button."""

    sim: SimWorker
    screen: Screen
    url: str
    init_data: str

    @property
    def assignment_id(self) -> int:
        assert self.screen.assignment_id is not None
        return self.screen.assignment_id

    @property
    def page(self) -> str:
        return self.url.split("#", 1)[0]

    @property
    def api(self) -> str:
        parts = urlsplit(self.page)
        return f"{parts.scheme}://{parts.netloc}{parts.path}api/"


@asynccontextmanager
async def webapp_sandbox(
    workdir: Path, *, type: str = "magic-pin", count: int = 3, **project: Any
) -> AsyncIterator[tuple[Sandbox, list[SampleImage]]]:
    (workdir / "sandbox").mkdir(parents=True, exist_ok=True)
    box = await Sandbox.start(workdir / "sandbox", webapp=True)
    try:
        _, samples = create_mask_project(box.db, workdir / "images", type=type, count=count, **project)
        yield box, samples
    finally:
        await box.close()


async def open_task(box: Sandbox, name: str, lang: str = "en") -> Opened:
    sim = SimWorker.create(box.emulator, name, lang)
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    opened = box.emulator.open_web_app(sim.user_id, screen.message_id)
    return Opened(sim, screen, opened["url"], opened["init_data"])


def sample_of(box: Sandbox, samples: list[SampleImage], assignment_id: int) -> SampleImage:
    with box.db.session() as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        task = s.get(Task, assignment.task_id)
        assert task is not None
        return next(x for x in samples if x.external_id == task.external_id)


def truth_of(box: Sandbox, samples: list[SampleImage], assignment_id: int) -> np.ndarray:
    """The true object mask of the photo this assignment shows (what the tests score against)."""
    return true_mask(sample_of(box, samples, assignment_id))


async def call(
    opened: Opened, method: str, path: str, body: dict[str, Any] | None = None, *, init_data: str | None = None
) -> tuple[int, Any]:
    data = opened.init_data if init_data is None else init_data
    headers = {"Authorization": f"tma {data}"} if data else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, opened.api + path, json=body, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()


def counts(box: Sandbox) -> dict[str, int]:
    """What an answer changes: answers, ledger entries, open leases' states."""
    with box.db.session() as s:
        return {
            "answers": s.execute(select(func.count(Answer.id))).scalar_one(),
            "ledger": s.execute(select(func.count(LedgerEntry.id))).scalar_one(),
            "states": len([x for x in s.execute(select(Assignment.state_json)).scalars() if x]),
            "statuses": hash(tuple(s.execute(select(Assignment.status).order_by(Assignment.id)).scalars())),
        }


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def fragment_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).fragment)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
