"""``crowdpin admin project ...`` through the real Typer app, on the test database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.clock import utcnow
from bot.db import Database
from bot.tasks.models import Project, Task
from bot.tasks.service import TaskCard
from tests.admin.conftest import Cli
from tests.quality.helpers import Driver, make_project, make_workers


def _project(db: Database, project_id: int) -> Project:
    with db.read_session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        return project


def test_create_prints_id_alone_on_last_line_and_stores_every_setting(cli: Cli, db: Database) -> None:
    result = cli(
        "project",
        "create",
        "--name",
        "Cats",
        "--type",
        "classify",
        "--labels",
        "cat, dog,bird",
        "--price",
        "15",
        "--overlap",
        "5",
        "--question-ko",
        "무엇인가요?",
        "--question-en",
        "What is it?",
        "--instructions-ko",
        "사진을 보세요",
        "--instructions-en",
        "Look",
        "--lease-seconds",
        "120",
        "--golden-share",
        "0.2",
        "--min-overlap",
        "2",
        "--confidence-target",
        "0.9",
        "--training-required",
        "--exam-size",
        "4",
        "--exam-pass",
        "0.75",
        "--hold-days",
        "7",
        "--media-mode",
        "reference",
        "--set",
        "daily_cap=300",
        "--set",
        "min-seconds=1.5",
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.isdigit()
    p = _project(db, int(last))
    assert (p.name, p.type, json.loads(p.labels_json)) == ("Cats", "classify", ["cat", "dog", "bird"])
    assert (p.price, p.overlap, p.min_overlap, p.confidence_target) == (15, 5, 2, 0.9)
    assert (p.question_ko, p.question_en, p.instructions_ko, p.instructions_en) == ("무엇인가요?", "What is it?", "사진을 보세요", "Look")
    assert (p.lease_seconds, p.golden_share, p.training_required, p.exam_size, p.exam_pass, p.hold_days) == (120, 0.2, True, 4, 0.75, 7)
    assert (p.media_mode, p.daily_cap, p.min_seconds) == ("ref", 300, 1.5)
    second = cli("project", "create", "--name", "Masks", "--type", "confirm-mask")
    assert int(second.stdout.strip().splitlines()[-1]) == p.id + 1  # type: ignore[operator]


def test_bad_settings_are_refused_with_a_clear_message_and_nothing_created(cli: Cli, db: Database) -> None:
    cases = [
        (["--name", "x", "--type", "bogus"], "unknown project type"),
        (["--name", "x", "--labels", "only-one"], "at least two labels"),
        (["--name", "x", "--labels", "a,b", "--golden-share", "1.5"], "golden_share"),
        (["--name", "x", "--labels", "a,b", "--price", "-3"], "price"),
        (["--name", "x", "--labels", "a,b", "--overlap", "0"], "overlap"),
        (["--name", "x", "--labels", "a,b", "--lease-seconds", "1"], "lease_seconds"),
        (["--name", "x", "--labels", "a,b", "--overlap", "2", "--min-overlap", "3"], "min_overlap"),
        (["--name", "x", "--labels", "a,b", "--set", "nonsense=1"], "unknown project setting"),
        (["--name", "x", "--labels", "a,b", "--confidence-target", "1.5"], "confidence_target"),
    ]
    for args, needle in cases:
        result = cli("project", "create", *args, ok=False)
        assert result.exit_code == 1, (args, result.stdout)
        assert needle in result.stderr, (args, result.stderr)
    with db.read_session() as s:
        assert s.execute(select(func.count(Project.id))).scalar_one() == 0
    cli("project", "create", "--name", "x", "--labels", "a,b")
    dup = cli("project", "create", "--name", "x", "--labels", "a,b", ok=False)
    assert dup.exit_code == 1 and "already exists" in dup.stderr


def test_list_show_pause_resume_close_and_set(cli: Cli, db: Database) -> None:
    pid = int(cli("project", "create", "--name", "Birds", "--labels", "a,b").stdout.split()[-1])
    listed = cli("project", "list").stdout
    assert "Birds" in listed and "classify" in listed and "active" in listed
    shown = cli("project", "show", str(pid)).stdout
    assert "lease_seconds" in shown and "600" in shown and "a, b" in shown
    assert "Birds" in cli("project", "show", "Birds").stdout  # by name too
    cli("project", "pause", str(pid))
    assert _project(db, pid).status == "paused"
    cli("project", "resume", "Birds")
    assert _project(db, pid).status == "active"
    cli("project", "set", str(pid), "--price", "30", "--golden-share", "0.1", "--labels", "x,y,z", "--set", "hold_days=2")
    p = _project(db, pid)
    assert (p.price, p.golden_share, json.loads(p.labels_json), p.hold_days) == (30, 0.1, ["x", "y", "z"], 2)
    bad = cli("project", "set", str(pid), "--price", "-1", ok=False)
    assert bad.exit_code == 1 and _project(db, pid).price == 30
    cli("project", "close", str(pid))
    assert _project(db, pid).status == "closed"
    missing = cli("project", "show", "999", ok=False)
    assert missing.exit_code == 1 and "no project" in missing.stderr


def test_stats_show_stuck_tasks_and_finish_closes_the_batch(cli: Cli, db: Database, tmp_path: Path) -> None:
    """Two workers answered and left two hours ago; overlap 3 can never be reached: stats name the
    stuck tasks with the reason, and ``project finish`` finishes them with the answers they have."""
    project = make_project(db, tmp_path / "imgs", count=2, overlap=3)
    assert project.id is not None
    long_ago = utcnow() - timedelta(hours=2)
    for worker_id in make_workers(db, 2):
        d = Driver(db, worker_id, long_ago)
        while isinstance(card := d.next(), TaskCard):
            d.answer(card, "a")
    shown = cli("stats", str(project.id)).stdout
    assert "Stuck tasks (2)" in shown and "no worker left" in shown and "t0" in shown and "t1" in shown
    assert {t.status for t in _tasks(db, project.id)} == {"open"}  # stats change nothing
    out = cli("project", "finish", str(project.id)).stdout
    assert "2 open tasks finished" in out and "2 tasks labelled" in out
    assert _project(db, project.id).status == "closed"
    assert {(t.status, t.answers_count) for t in _tasks(db, project.id)} == {("done", 2)}
    assert "Stuck tasks" not in cli("stats", str(project.id)).stdout
    missing = cli("project", "finish", "nope", ok=False)
    assert missing.exit_code == 1 and "no project" in missing.stderr


def _tasks(db: Database, project_id: int) -> list[Task]:
    with db.read_session() as s:
        return list(s.execute(select(Task).where(Task.project_id == project_id)).scalars())
