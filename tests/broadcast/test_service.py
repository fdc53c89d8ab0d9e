"""Audience selection and broadcast creation: bad input gets a clear error and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import clock, workers
from bot.broadcast import service
from bot.broadcast.audience import Audience, AudienceError
from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus
from bot.db import Database
from bot.tasks.models import WorkerProject
from tests.broadcast.fakes import make_project, make_workers


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_audience_spec_parsing() -> None:
    assert Audience.parse("all") == Audience("all")
    assert Audience.parse(" Qualified ") == Audience("qualified")
    assert Audience.parse("active-days:7") == Audience("active-days", 7)
    assert str(Audience.parse("active-days:7")) == "active-days:7"
    for bad, msg in [("everyone", "unknown audience"), ("active-days:x", "whole number"), ("active-days:0", "between")]:
        with pytest.raises(AudienceError, match=msg):
            Audience.parse(bad)


def test_audiences_pick_the_right_workers(db: Database) -> None:
    plain = make_project(db, "plain")
    trained = make_project(db, "trained", training_required=True)
    people = make_workers(db, 6)
    ids = [w for w, _ in people]
    db.call(workers.ban, ids[0], "spam")  # never addressed
    db.call(workers.mark_unreachable, ids[1])  # blocked the bot: never addressed
    with db.session() as s:
        s.add(WorkerProject(worker_id=ids[2], project_id=trained.id, stage="work"))
        s.add(WorkerProject(worker_id=ids[3], project_id=trained.id, stage="training"))
        s.add(WorkerProject(worker_id=ids[4], project_id=plain.id, stage="blocked", blocked_reason="quality"))
    # ten days later only ids[4] and ids[5] have been active again
    clock.advance(10 * 86400)
    with db.session() as s:
        workers.register(s, tg_id=people[4][1], name="w4")  # touches last_active_at
        workers.register(s, tg_id=people[5][1], name="w5")

    def chats(project_id: int, spec: str) -> set[int]:
        with db.session() as s:
            b = service.create(s, project_id, "hi", audience=spec)
            return set(s.execute(select(BroadcastRecipient.chat_id).where(BroadcastRecipient.broadcast_id == b.id)).scalars())

    tg = [t for _, t in people]
    assert chats(plain.id, "all") == {tg[2], tg[3], tg[4], tg[5]}
    assert chats(trained.id, "qualified") == {tg[2]}
    assert chats(plain.id, "qualified") == {tg[2], tg[3], tg[5]}  # no training: all but blocked here
    assert chats(plain.id, "active-days:3") == {tg[4], tg[5]}
    assert db.call(service.count_recipients, "trained", "qualified") == 1
    assert db.call(service.count_recipients, str(plain.id), "active-days:30") == 4


def test_bad_input_is_refused_and_writes_nothing(db: Database, tmp_path: Path) -> None:
    project = make_project(db)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    cases = [
        ({"project_ref": 999, "text": "hi"}, "no project 999"),
        ({"project_ref": "nope", "text": "hi"}, "no project 'nope'"),
        ({"project_ref": project.id, "text": "   "}, "empty"),
        ({"project_ref": project.id, "text": "x" * 4097}, "at most 4096"),
        ({"project_ref": project.id, "text": "x" * 1025, "photo_path": tmp_path / "a.png"}, "at most 1024"),
        ({"project_ref": project.id, "text": "hi", "photo_path": not_image}, "not a readable image"),
        ({"project_ref": project.id, "text": "hi", "photo_path": tmp_path / "missing.png"}, "cannot read"),
        ({"project_ref": project.id, "text": "hi", "audience": "friends"}, "unknown audience"),
        ({"project_ref": project.id, "text": "hi"}, "nobody to send to"),
    ]
    for kwargs, message in cases:
        with pytest.raises(service.BroadcastError, match=message):
            with db.session() as s:
                service.create(s, **kwargs)
    assert _count(db, Broadcast) == 0 and _count(db, BroadcastRecipient) == 0
    # emoji count as two UTF-16 units, as Telegram counts them
    make_workers(db, 1)
    with pytest.raises(service.BroadcastError, match="4098 characters"):
        db.call(service.create, project.id, "😀" * 2049)
    ok = db.call(service.create, project.id, "😀" * 2048)
    assert ok.status == BroadcastStatus.PENDING and ok.runner is None


def test_closed_project_and_status_of_unknown_broadcast(db: Database) -> None:
    from bot.tasks import projects
    from bot.tasks.models import ProjectStatus

    project = make_project(db)
    make_workers(db, 2)
    db.call(projects.set_status, project.id, ProjectStatus.CLOSED)
    with pytest.raises(service.BroadcastError, match="closed"):
        db.call(service.create, project.id, "hi")
    with pytest.raises(service.BroadcastError, match="no broadcast with id 42"):
        db.call(service.progress, 42)
    with pytest.raises(service.BroadcastError, match="no broadcast with id 42"):
        db.call(service.cancel, 42)


def test_progress_counts_rate_and_eta(db: Database) -> None:
    from sqlalchemy import update

    project = make_project(db)
    make_workers(db, 10)
    b = db.call(service.create, project.id, "hi", runner="r", lease_seconds=30)
    assert b.status == BroadcastStatus.RUNNING
    with db.session() as s:
        ids = list(s.execute(select(BroadcastRecipient.id).order_by(BroadcastRecipient.id)).scalars())
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.id.in_(ids[:4])).values(status="sent", updated_at=clock.utcnow()))
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.id == ids[4]).values(status="blocked", updated_at=clock.utcnow()))
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.id == ids[5]).values(status="sending"))
    clock.advance(5)
    p = db.call(service.progress, b.id)
    assert (p.total, p.sent, p.blocked, p.failed, p.sending, p.pending, p.remaining) == (10, 4, 1, 0, 1, 4, 5)
    assert p.rate == pytest.approx(1.0, rel=0.05)  # 5 deliveries over the 5 s since it started
    assert p.eta_seconds(25.0) == pytest.approx(5.0, rel=0.05)
