"""``crowdpin demo``: the whole product on one machine, with no Telegram token.

Starts the Bot API emulator, a sample project of generated images, the real bot against it,
and a few simulated workers who label everything; prints what they see and do, then the
collected labels, and exits.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import select

from bot.sample import SampleImage
from bot.sandbox import Sandbox, create_sample_project, truth_label
from bot.simulate import Screen, SimWorker
from bot.tasks.models import Answer, Task
from bot.wallet.ledger import balance

NAMES = [("민지", "ko"), ("재호", "ko"), ("Alex", "en"), ("서연", "ko"), ("Sam", "en"), ("도윤", "ko")]


def _chooser(truth: dict[str, str], accuracy: float, rng: random.Random, by_file: dict[str, str]):  # type: ignore[no-untyped-def]
    def choose(screen: Screen) -> str | None:
        labels = screen.labels()
        right = by_file.get(screen.photo_file_id or "")
        if right is None or rng.random() > accuracy:
            return rng.choice(labels)
        return right

    return choose


async def run_demo(workers: int = 3, tasks: int = 12, overlap: int = 3, verbose: bool = True) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="crowdpin-demo-"))
    print(f"crowdpin demo — sandbox in {workdir}")
    box = await Sandbox.start(workdir)
    try:
        print(f"Bot API emulator at {box.server.base_url} (token {box.token})")
        project, samples = create_sample_project(box.db, workdir / "images", count=tasks, overlap=min(overlap, workers))
        print(f"Project #{project.id} “{project.name}”: {len(samples)} images, overlap {project.overlap}, ₩{project.price} per answer\n")
        truth = {s.external_id: truth_label(s) for s in samples}
        by_file = _FileTruth(box, samples)
        sims = []
        for i in range(workers):
            name, lang = NAMES[i % len(NAMES)]
            rng = random.Random(i)
            sim = SimWorker.create(box.emulator, name, lang, chooser=_chooser(truth, 0.9, rng, by_file))
            sims.append(sim)
        for sim in sims:
            await sim.start()
            if verbose:
                print(f"{sim.name}: /start → “{sim.last_text().splitlines()[0]}”")
        await asyncio.gather(*(sim.work(verbose=verbose) for sim in sims))
        if verbose:
            for sim in sims:
                print(f"{sim.name}: “{sim.last_text().splitlines()[0]}”")
        print("\nCollected labels (majority of answers):")
        rows = box.db.call(_collected)
        correct = 0
        for external_id, votes in rows:
            top, n = Counter(votes).most_common(1)[0]
            ok = top == truth.get(external_id)
            correct += ok
            print(f"  {external_id}: {top}  ({n}/{len(votes)} agree){'' if ok else '  ✗ truth: ' + truth[external_id]}")
        print(f"\n{correct}/{len(rows)} images labelled correctly by the majority.")
        for sim in sims:
            worker_id = box.db.call(_worker_id, sim.user_id)
            bal = box.db.call(balance, worker_id)
            print(f"  {sim.name}: {sim.answered} answers, balance ₩{bal.available:,}")
        return 0 if rows else 1
    finally:
        await box.close()


class _FileTruth(dict):  # type: ignore[type-arg]
    """photo file_id -> true label, filled from the database as images get uploaded."""

    def __init__(self, box: Sandbox, samples: list[SampleImage]) -> None:
        super().__init__()
        self.box = box
        self.truth = {s.external_id: truth_label(s) for s in samples}

    def get(self, file_id: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if file_id not in self:
            for fid, external_id in self.box.db.call(_file_ids):
                self[fid] = self.truth.get(external_id)
        return super().get(file_id, default)


def _file_ids(session) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    from bot.tasks.models import Image

    rows = session.execute(select(Image.tg_file_id, Task.external_id).join(Task, Task.image_id == Image.id)).all()
    return [(fid, ext) for fid, ext in rows if fid]


def _collected(session) -> list[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    votes: dict[str, list[str]] = defaultdict(list)
    for external_id, value in session.execute(
        select(Task.external_id, Answer.value).join(Answer, Answer.task_id == Task.id).order_by(Task.id, Answer.id)
    ):
        votes[external_id].append(value)
    return sorted(votes.items())


def _worker_id(session, tg_id: int) -> int:  # type: ignore[no-untyped-def]
    from bot.tasks.workers import get_by_tg

    worker = get_by_tg(session, tg_id)
    assert worker is not None and worker.id is not None
    return worker.id
