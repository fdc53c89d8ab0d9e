"""The quality paths on PostgreSQL: golden shuffling with large ids, standings, rank, dynamic overlap."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.db import Database
from bot.tasks import quality
from bot.tasks.models import Task, TaskKind
from bot.tasks.service import Submitted, TaskCard
from tests.quality.helpers import Driver, make_project, make_workers

pytestmark = pytest.mark.postgres


def test_golden_claims_rank_and_overlap_on_postgres(pg_db: Database, tmp_path: Path) -> None:
    make_project(
        pg_db,
        tmp_path / "imgs",
        count=2,
        golden=3,
        golden_share=1.0,
        overlap=3,
        min_overlap=2,
        confidence_target=0.9,
        exam_size=1,
        exam_pass=0.0,
    )
    with pg_db.session() as s:  # ids far beyond 2**31 / 1e6: the shuffle must not overflow INTEGER
        golden = list(s.execute(select(Task.id).where(Task.kind == TaskKind.GOLDEN.value)).scalars())
        for i, task_id in enumerate(golden):
            s.execute(update(Task).where(Task.id == task_id).values(id=50_000_000 + i))
    ws = make_workers(pg_db, 2)
    for w in ws:
        d = Driver(pg_db, w)
        kinds = []
        while isinstance(card := d.next(), TaskCard):
            kinds.append(card.kind)
            truth = card.kind == "golden" and pg_db.call(lambda s, tid=card.task_id: s.get(Task, tid).golden)
            result = d.answer(card, truth or "a")
            assert isinstance(result, Submitted)
        assert kinds.count("golden") == 3 and kinds.count("normal") == 2
    with pg_db.session() as s:
        tasks = list(s.execute(select(Task).where(Task.kind == TaskKind.NORMAL.value)).scalars())
        assert {(t.status, t.answers_count, t.result) for t in tasks} == {("done", 2, "a")}
        stats = quality.worker_stats(s, ws[0])
        assert [(row.rank, row.ranked, row.golden_total) for row in stats] == [(1, 2, 3)]
