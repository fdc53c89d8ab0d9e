"""The crowd model behind the accuracy rule, fitted off the answer path (``BackgroundFits``):
a tap reads the last fit and never waits for one, the fit runs on its own thread, a failed fit
costs nothing, and golden answers newer than the fit still count."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.db import Database
from bot.tasks import quality, worker_quality
from bot.tasks.models import Project, Task, TaskKind
from bot.tasks.service import Submitted, TaskCard
from tests.quality.helpers import Driver, make_project, make_workers, put_answer, truth_of

WRONG = {"a": "b", "b": "c", "c": "a"}


@pytest.fixture
def fits(db: Database) -> Iterator[worker_quality.BackgroundFits]:
    background = worker_quality.BackgroundFits(db.read_session, min_seconds=3600.0)
    background.serve(db.engine)
    yield background
    background.close()


def _evidence(db: Database, project_id: int) -> dict[int, worker_quality.Evidence]:
    def read(s: Session) -> dict[int, worker_quality.Evidence]:
        project = s.get(Project, project_id)
        assert project is not None
        return worker_quality.crowd_evidence(s, project)

    return db.call(read)


def _answer_all(db: Database, project_id: int, workers: list[int], value_of: dict[int, str]) -> None:
    with db.session() as s:
        tasks = s.exec(select(Task).where(Task.project_id == project_id, Task.kind == TaskKind.NORMAL.value)).all()
        for task in tasks:
            for w in workers:
                put_answer(s, task, w, value_of.get(w, "a"))


def test_a_tap_reads_the_last_fit_and_a_thread_makes_the_next(
    db: Database, tmp_path: Path, fits: worker_quality.BackgroundFits, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(db, tmp_path / "imgs", count=5)
    assert project.id is not None
    ws = make_workers(db, 3)
    _answer_all(db, project.id, ws, {})
    threads: list[str] = []
    real_fit = worker_quality._fit

    def spy(session: Session, p: Project) -> dict[int, worker_quality.Evidence]:
        threads.append(threading.current_thread().name)
        return real_fit(session, p)

    monkeypatch.setattr(worker_quality, "_fit", spy)
    assert _evidence(db, project.id) == {}  # nothing fitted yet: the caller does not wait
    fits.wait()
    assert fits.fits == 1 and threads and all(name.startswith("crowdpin-fit") for name in threads)
    held = _evidence(db, project.id)
    assert sorted(held) == sorted(ws) and all(e.total == 5 for e in held.values())
    inline = db.call(lambda s: real_fit(s, s.get(Project, project.id)))
    assert held == inline  # the same model as the inline fit

    # More answers: a fresh fit is not redone before min_seconds (the old one is served) ...
    (late,) = make_workers(db, 1, base=9000)
    _answer_all(db, project.id, [late], {})
    assert late not in _evidence(db, project.id)
    fits.wait()
    assert fits.fits == 1
    # ... and is redone once the fit is stale; the stale one is served meanwhile.
    fits.min_seconds = 0.0
    fits.cost_factor = 0.0
    assert late not in _evidence(db, project.id)
    fits.wait()
    assert fits.fits == 2 and _evidence(db, project.id)[late].total == 5


def test_a_failed_fit_is_logged_and_asked_for_again(
    db: Database, tmp_path: Path, fits: worker_quality.BackgroundFits, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(db, tmp_path / "imgs", count=3)
    assert project.id is not None
    ws = make_workers(db, 2)
    _answer_all(db, project.id, ws, {})
    real_fit = worker_quality._fit

    def broken(session: Session, p: Project) -> dict[int, worker_quality.Evidence]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(worker_quality, "_fit", broken)
    assert _evidence(db, project.id) == {}
    fits.wait()
    assert fits.fits == 0
    monkeypatch.setattr(worker_quality, "_fit", real_fit)
    assert _evidence(db, project.id) == {}  # not stuck as "pending": asked again
    fits.wait()
    assert fits.fits == 1 and sorted(_evidence(db, project.id)) == sorted(ws)


def test_golden_answers_newer_than_the_fit_still_block(db: Database, tmp_path: Path, fits: worker_quality.BackgroundFits) -> None:
    """The same chance worker as in test_rules: blocked at the sixth wrong golden answer, though
    every judgement reads a fit made before the answer being judged."""
    quality.rng.seed(12345)
    fits.min_seconds = 0.0
    fits.cost_factor = 0.0
    make_project(db, tmp_path / "imgs", count=2, golden=30, golden_share=1.0)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    answered = 0
    while True:
        card = d.next()
        assert isinstance(card, TaskCard)
        truth = truth_of(db, card.task_id)
        assert truth is not None
        result = d.answer(card, WRONG[truth])
        fits.wait()
        answered += 1
        assert isinstance(result, Submitted)
        if result.notice is not None:
            assert result.notice.key == "quality.blocked.accuracy"
            break
        assert answered < 10, "never blocked"
    assert answered == 6
    assert fits.fits >= 5


def test_close_gives_the_inline_fit_back(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=3)
    assert project.id is not None
    ws = make_workers(db, 2)
    _answer_all(db, project.id, ws, {})
    background = worker_quality.BackgroundFits(db.read_session)
    background.serve(db.engine)
    background.close()
    assert sorted(_evidence(db, project.id)) == sorted(ws)  # inline again: fitted on the spot
    assert background.fits == 0
    # a tap that still holds the closed object (it was in flight during shutdown) is answered
    assert background.evidence(project.id) == {}
