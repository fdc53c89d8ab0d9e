"""Operator figures on SQLite and PostgreSQL, the CLI table, and the single-file HTML report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from admin import report_html
from bot.db import Database
from bot.tasks import stats
from bot.tasks.export import Pseudonyms
from bot.tasks.models import Answer, Assignment, Image, Task
from bot.workers.models import Worker
from tests.admin.conftest import Cli
from tests.admin.helpers import classify_project

T0 = datetime(2025, 3, 1, 10, 5, tzinfo=UTC)


def _scenario(db: Database) -> dict[str, int]:
    """Two projects; project A: 4 normal tasks (overlap 2), 1 golden, answers at known times."""
    a = classify_project(db, name="A", overlap=2, price=10)
    b = classify_project(db, name="B", overlap=1, price=5)
    with db.session() as s:
        image = Image(sha256="0" * 64, path="/x.jpg", width=10, height=10)
        s.add(image)
        s.flush()
        tasks = [Task(project_id=a.id, image_id=image.id, external_id=f"t{i}") for i in range(4)]  # type: ignore[arg-type]
        golden = Task(project_id=a.id, image_id=image.id, external_id="g", kind="golden", golden="cat")  # type: ignore[arg-type]
        broken = Task(project_id=b.id, image_id=image.id, external_id="x", status="broken")  # type: ignore[arg-type]
        s.add_all([*tasks, golden, broken])
        kim = Worker(tg_id=1, name="<b>Kim</b>", username="kim")
        lee = Worker(tg_id=2, name="Lee")
        s.add_all([kim, lee])
        s.flush()

        def answer(task: Task, worker: Worker, value: str, seconds: float, at: datetime, correct: bool | None = None) -> None:
            assignment = Assignment(
                task_id=task.id,
                worker_id=worker.id,
                project_id=task.project_id,
                status="answered",  # type: ignore[arg-type]
                leased_at=at - timedelta(seconds=seconds),
                expires_at=at + timedelta(minutes=5),
            )
            s.add(assignment)
            s.flush()
            s.add(
                Answer(
                    assignment_id=assignment.id,
                    task_id=task.id,
                    worker_id=worker.id,
                    project_id=task.project_id,  # type: ignore[arg-type]
                    reward=10,
                    value=value,
                    seconds=seconds,
                    is_golden=task.kind == "golden",
                    correct=correct,
                    created_at=at,
                )
            )

        # Kim: 3 answers + golden (right); Lee: 2 answers + golden (wrong). Hours 10:xx and 12:xx.
        answer(tasks[0], kim, "cat", 1.0, T0)
        answer(tasks[0], lee, "cat", 3.0, T0 + timedelta(minutes=30))
        answer(tasks[1], kim, "dog", 7.0, T0 + timedelta(minutes=40))
        answer(tasks[1], lee, "dog", 150.0, T0 + timedelta(hours=2))
        answer(tasks[2], kim, "cat", 4.0, T0 + timedelta(hours=2, minutes=5))
        answer(golden, kim, "cat", 2.0, T0 + timedelta(hours=2, minutes=6), correct=True)
        answer(golden, lee, "dog", 2.5, T0 + timedelta(hours=2, minutes=7), correct=False)
        for t in tasks[:2]:
            t.status = "done"
            s.add(t)
    return {"a": a.id, "b": b.id, "kim": kim.id, "lee": lee.id}  # type: ignore[dict-item]


def test_progress_leaderboard_and_series(any_db: Database) -> None:
    ids = _scenario(any_db)
    now = T0 + timedelta(hours=2, minutes=30)
    with any_db.read_session() as s:
        a, b = stats.project_progress(s, now=now)
        leaders = stats.leaderboard(s, ids["a"])
        hourly = stats.answers_per_hour(s, ids["a"])
        histogram = dict(stats.seconds_histogram(s, ids["a"]))
        only_b = stats.project_progress(s, ids["b"], now=now)
    assert (a.name, a.tasks_total, a.tasks_done, a.control_tasks, a.tasks_broken) == ("A", 4, 2, 1, 0)
    assert (b.tasks_total, b.tasks_broken, b.answers, b.median_seconds) == (1, 1, 0, None)
    assert (a.answers, a.workers, a.earned) == (7, 2, 70)
    assert a.answers_last_hour == 4 and a.answers_24h == 7
    assert a.median_seconds == 3.0  # of 1, 2, 2.5, 3, 4, 7, 150
    assert a.percent_done == 50.0
    assert [(r.name, r.answers, r.earned, r.golden_total, r.golden_correct) for r in leaders] == [
        ("<b>Kim</b>", 4, 40, 1, 1),
        ("Lee", 3, 30, 1, 0),
    ]
    assert leaders[0].mean_seconds == pytest.approx((1 + 7 + 4 + 2) / 4)
    assert hourly == [(datetime(2025, 3, 1, 10, tzinfo=UTC), 3), (datetime(2025, 3, 1, 12, tzinfo=UTC), 4)]
    assert histogram == {"0–2s": 1, "2–5s": 4, "5–10s": 1, "10–20s": 0, "20–40s": 0, "40–60s": 0, "60–120s": 0, ">120s": 1}
    assert [p.id for p in only_b] == [ids["b"]]


def test_even_count_median_is_the_mean_of_the_middle_two(db: Database) -> None:
    _scenario(db)
    with db.session() as s:
        s.execute(Answer.__table__.delete().where(Answer.seconds == 150.0))  # type: ignore[attr-defined]
    with db.read_session() as s:
        assert stats.median_seconds(s) == pytest.approx((2.5 + 3.0) / 2)  # of 1, 2, 2.5, 3, 4, 7


def test_html_report_is_one_self_contained_file(db: Database) -> None:
    ids = _scenario(db)
    with db.read_session() as s:
        report = stats.report(s, now=T0 + timedelta(hours=3))
    html = report_html.render(report, pseudonym=Pseudonyms("k"))
    assert html.count("<svg") == 3
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<link""", html, re.I)  # nothing fetched from anywhere
    assert "Kim" not in html and Pseudonyms("k")(ids["kim"]) in html  # pseudonyms by default
    revealed = report_html.render(report)
    assert "&lt;b&gt;Kim&lt;/b&gt;" in revealed and "<b>Kim</b>" not in revealed  # names are escaped
    assert "target 8" in html  # A: 4 tasks x overlap 2; B's only task is broken
    empty = report_html.render(stats.Report(generated_at=T0, projects=[], leaders=[], hourly=[], seconds_histogram=[]))
    assert "no answers yet" in empty and "no projects" in empty


def test_stats_cli_prints_tables_and_writes_html(cli: Cli, db: Database, tmp_path: Path) -> None:
    _scenario(db)
    result = cli("stats", "--html", str(tmp_path / "r.html"))
    assert "Progress" in result.stdout and "Leaderboard" in result.stdout
    assert "2 / 4" in result.stdout and "₩70" in result.stdout and "Kim" in result.stdout
    text = (tmp_path / "r.html").read_text()
    assert text.startswith("<!doctype html>") and text.count("<svg") == 3 + 2  # + one reliability chart per project
    assert text.count("no curve until 10 golden tasks have answers") == 2
    one = cli("stats", "A")
    assert "₩70" in one.stdout and "₩0" not in one.stdout  # project B (₩0 earned) is left out


def test_reliability_chart_of_golden_tasks(cli: Cli, db: Database, tmp_path: Path) -> None:
    """A project with enough golden tasks gets its reliability curve: one dot per confidence bin,
    the calibrated diagonal, the ECE; all inline."""
    import random

    from sqlmodel import select

    from tests.quality.helpers import make_project, make_workers, put_answer

    project = make_project(db, tmp_path / "imgs", count=40, golden=30)
    w = make_workers(db, 6)
    rng = random.Random(2)
    with db.session() as s:
        for i, t in enumerate(s.exec(select(Task).where(Task.project_id == project.id).order_by(Task.id)).all()):
            truth = t.golden or "abc"[i % 3]
            for worker_id in rng.sample(w, 3):
                put_answer(s, t, worker_id, truth if rng.random() < 0.8 else rng.choice("abc"))
    with db.read_session() as s:
        report = stats.add_reliability(s, stats.report(s, project.id))
    (curve,) = report.reliability
    assert curve.golden == 30 and curve.method == "dawid_skene" and not curve.note  # 35 answers per worker
    assert sum(b.n for b in curve.bins) == 30 and 0.0 <= curve.ece <= 1.0
    svg = report_html.reliability_chart(curve)
    assert svg.count("<circle") == sum(1 for b in curve.bins if b.n)
    assert 'class="target"' in svg and f"ECE {curve.ece:.3f}" in svg
    html = report_html.render(report)
    assert "Confidence you can trust" in html and html.count("<svg") == 4
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<link""", html, re.I)
    with db.read_session() as s:
        shares = stats.add_reliability(s, stats.report(s, project.id), "majority_vote")
    assert shares.reliability[0].golden == 0 and "vote share" in shares.reliability[0].note
    with db.read_session() as s:
        viacrowdkit = stats.add_reliability(s, stats.report(s, project.id), "crowdkit:GLAD")
    assert viacrowdkit.reliability[0].method == "dawid_skene"  # what auto exports, checked instead
