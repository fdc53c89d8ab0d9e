"""``crowdpin demo``: the whole product on one machine, with no Telegram token.

Starts the Bot API emulator, a sample project of generated images, the real bot against it,
and a few simulated workers who label everything; prints what they see and do, then the
collected labels, and exits.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from bot.sandbox import Sandbox, create_sample_project, truth_label
from bot.simulate import Screen, SimWorker
from bot.tasks.models import Task
from bot.wallet.ledger import balance

NAMES = [("민지", "ko"), ("재호", "ko"), ("Alex", "en"), ("서연", "ko"), ("Sam", "en"), ("도윤", "ko")]


def _chooser(box: Sandbox, truth: dict[str, str], accuracy: float, rng: random.Random):
    """A worker who is right with probability ``accuracy`` (the truth comes from the task the
    button belongs to, as a careful person would see it in the photo)."""

    def choose(screen: Screen) -> str | None:
        labels = screen.labels()
        right = truth.get(box.db.call(_external_id, screen.assignment_id or 0) or "")
        if right is None or rng.random() > accuracy:
            return rng.choice(labels)
        return right

    return choose


def _external_id(session, assignment_id: int) -> str | None:
    from bot.tasks.models import Assignment

    return session.execute(
        select(col(Task.external_id)).join(Assignment, col(Assignment.task_id) == col(Task.id)).where(col(Assignment.id) == assignment_id)
    ).scalar()


async def run_demo(workers: int = 3, tasks: int = 12, overlap: int = 3, verbose: bool = True) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="crowdpin-demo-"))
    print(f"crowdpin demo — sandbox in {workdir}")
    box = await Sandbox.start(workdir)
    try:
        print(f"Bot API emulator at {box.server.base_url} (token {box.token})")
        project, samples = create_sample_project(box.db, workdir / "images", count=tasks, overlap=min(overlap, workers))
        print(f"Project #{project.id} “{project.name}”: {len(samples)} images, overlap {project.overlap}, ₩{project.price} per answer\n")
        truth = {s.external_id: truth_label(s) for s in samples}
        sims = []
        for i in range(workers):
            name, lang = NAMES[i % len(NAMES)]
            rng = random.Random(i)
            sim = SimWorker.create(box.emulator, name, lang, chooser=_chooser(box, truth, 0.9, rng))
            sims.append(sim)
        for sim in sims:
            await sim.start()
            if verbose:
                print(f"{sim.name}: /start → “{sim.last_text().splitlines()[0]}”")
        await asyncio.gather(*(sim.work(verbose=verbose) for sim in sims))
        if verbose:
            for sim in sims:
                print(f"{sim.name}: “{sim.last_text().splitlines()[0]}”")
        print("\nCollected labels (aggregated, with confidence):")
        rows = box.db.call(_collected, project.id)
        correct = 0
        for result in rows:
            ok = result.label == truth.get(result.external_id)
            correct += ok
            mark = "" if ok else f"  ✗ truth: {truth[result.external_id]}"
            print(
                f"  {result.external_id}: {result.label}  ({result.method}, confidence {result.confidence:.2f}, {result.n_answers} answers){mark}"
            )
        print(f"\n{correct}/{len(rows)} images labelled correctly.")
        for sim in sims:
            worker_id = box.db.call(_worker_id, sim.user_id)
            bal = box.db.call(balance, worker_id)
            print(f"  {sim.name}: {sim.answered} answers, balance ₩{bal.available:,}")
        return 0 if rows else 1
    finally:
        await box.close()


def _collected(session, project_id: int) -> list:
    from bot.tasks.aggregate import aggregate_project

    return list(aggregate_project(session, project_id, "auto"))


def _worker_id(session, tg_id: int) -> int:
    from bot.workers import get_by_tg

    worker = get_by_tg(session, tg_id)
    assert worker is not None and worker.id is not None
    return worker.id
