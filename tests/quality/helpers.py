"""Builders for quality tests: projects with known truth, and answers written straight to the DB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from bot import workers
from bot.clock import utcnow
from bot.db import Database
from bot.sample import generate
from bot.tasks import intake, media, projects
from bot.tasks.models import Answer, Assignment, AssignmentStatus, Project, Task, TaskKind
from bot.work import answers


def make_project(
    db: Database,
    folder: Path,
    *,
    count: int = 6,
    golden: int = 0,
    training: int = 0,
    labels: tuple[str, ...] = ("a", "b", "c"),
    type: str = "classify",
    task_masks: list[str | None] | None = None,
    **fields,  # type: ignore[no-untyped-def]
) -> Project:
    """A project with ``count`` normal tasks, then ``golden`` golden and ``training`` training tasks.

    Golden and training answers cycle through the labels; the truth of a normal task ``i`` is
    ``labels[i % len(labels)]`` (tests use it as the ground truth).
    """
    n = count + golden + training
    samples = generate(folder, count=max(n, 1))
    with db.session() as s:
        project = projects.create(s, name=f"q{folder.name}", type=type, labels=list(labels) if type == "classify" else [], **fields)
        truth_values = list(labels) if type == "classify" else ["yes", "no"]
        for i, sample in enumerate(samples[:n]):
            image, _ = media.store_image(s, media.check_image(sample.path), media_dir=None, copy=False)
            if i < count:
                kind, gold, ext = TaskKind.NORMAL, None, f"t{i}"
            elif i < count + golden:
                kind, gold, ext = TaskKind.GOLDEN, truth_values[i % len(truth_values)], f"g{i}"
            else:
                kind, gold, ext = TaskKind.TRAINING, truth_values[i % len(truth_values)], f"tr{i}"
            mask = task_masks[i] if task_masks and i < len(task_masks) else None
            intake.add_task(
                s,
                project,
                image,
                external_id=ext,
                kind=kind,
                golden=gold,
                mask_rle=mask,
                explanation=f"because {gold}" if gold else None,
            )
    return project


def make_workers(db: Database, n: int, base: int = 5000) -> list[int]:
    ids = []
    with db.session() as s:
        for i in range(n):
            worker, _ = workers.register(s, tg_id=base + i, name=f"w{i}")
            ids.append(worker.id)  # type: ignore[arg-type]
    return ids


def put_answer(s: Session, task: Task, worker_id: int, value: str, *, mask_rle: str | None = None, status: str = "accepted") -> Answer:
    """An answered assignment + answer row, bypassing leasing (for aggregation tests only)."""
    now = utcnow()
    a = Assignment(
        task_id=task.id,
        worker_id=worker_id,
        project_id=task.project_id,  # type: ignore[arg-type]
        status=AssignmentStatus.ANSWERED,
        leased_at=now,
        expires_at=now + timedelta(minutes=5),
        closed_at=now,
    )
    s.add(a)
    s.flush()
    ans = Answer(
        assignment_id=a.id,
        task_id=task.id,
        worker_id=worker_id,
        project_id=task.project_id,  # type: ignore[arg-type]
        value=value,
        mask_rle=mask_rle,
        status=status,
        created_at=now,
        is_golden=task.kind == TaskKind.GOLDEN,
        correct=None if task.golden is None else value == task.golden,
    )
    s.add(ans)
    s.flush()
    return ans


class Driver:
    """One worker going through the real domain loop with a controlled clock."""

    def __init__(self, db: Database, worker_id: int, now=None) -> None:  # type: ignore[no-untyped-def]
        from bot.clock import utcnow as _now

        self.db = db
        self.worker_id = worker_id
        self.now = now or _now()

    def next(self, project_id: int | None = None):  # type: ignore[no-untyped-def]
        from bot.tasks import service

        return self.db.call(service.next_task, self.worker_id, project_id=project_id, now=self.now)

    def answer(self, card, value: str, seconds: float = 5.0):  # type: ignore[no-untyped-def]
        self.now += timedelta(seconds=seconds)
        return self.db.call(answers.submit_answer, self.worker_id, card.assignment_id, value, now=self.now)

    def skip(self, card):  # type: ignore[no-untyped-def]
        from bot.tasks import service

        self.now += timedelta(seconds=2)
        return self.db.call(service.skip, self.worker_id, card.assignment_id, now=self.now)

    def wait(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def truth_of(db: Database, task_id: int) -> str | None:
    with db.session() as s:
        task = s.get(Task, task_id)
        return task.golden if task else None
