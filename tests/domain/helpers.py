"""Small builders for domain tests (no Telegram)."""

from __future__ import annotations

from pathlib import Path

from bot import workers
from bot.db import Database
from bot.sample import generate
from bot.tasks import intake, media, projects
from bot.tasks.models import Project


def make_project(db: Database, folder: Path, *, count: int = 5, overlap: int = 2, price: int = 10, **fields) -> Project:  # type: ignore[no-untyped-def]
    samples = generate(folder, count=count)
    with db.session() as s:
        project = projects.create(s, name=f"p{folder.name}", labels=["a", "b", "c"], overlap=overlap, price=price, **fields)
        for sample in samples:
            image, _ = media.store_image(s, media.check_image(sample.path), media_dir=None, copy=False)
            intake.add_task(s, project, image, external_id=sample.external_id)
    return project


def make_workers(db: Database, n: int) -> list[int]:
    ids = []
    with db.session() as s:
        for i in range(n):
            worker, _ = workers.register(s, tg_id=1000 + i, name=f"w{i}")
            ids.append(worker.id)
    return ids
