"""Project rules in the domain (``bot.tasks.projects``): every setting is checked on create and
update, the message names the setting, and a refused change writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.tasks import projects, service
from bot.tasks.models import Project, ProjectType
from bot.tasks.projects import ProjectError, ProjectNotFound, ProjectSettings
from bot.tasks.service import TaskCard
from bot.work import answers
from tests.domain.helpers import make_project, make_workers

# One bad value per setting: (setting, value). Each must be refused with the setting's name.
BAD_VALUES: list[tuple[str, Any]] = [
    ("question_ko", "?" * 1025),
    ("question_en", "?" * 1025),
    ("instructions_ko", "x" * 4097),
    ("instructions_en", "x" * 4097),
    ("price", -1),
    ("price", "ten"),
    ("overlap", 0),
    ("min_overlap", 0),
    ("confidence_target", 1.0),
    ("confidence_target", 0.0),
    ("lease_seconds", 9),
    ("idle_lease_seconds", -1),
    ("stuck_after_seconds", -1),
    ("golden_share", 1.5),
    ("hold_days", -1),
    ("training_required", "perhaps"),
    ("exam_size", -1),
    ("exam_pass", 5),
    ("exam_cooldown_minutes", -1),
    ("exam_max_attempts", -1),
    ("min_golden_for_block", -1),
    ("accuracy_threshold", 1.2),
    ("block_confidence", 0.4),
    ("block_confidence", 1.0),
    ("block_margin", 0.7),
    ("min_seconds", -0.5),
    ("fast_strikes_warn", -1),
    ("fast_strikes_block", -1),
    ("daily_cap", -1),
    ("max_skips_in_row", -1),
    ("media_mode", "symlink"),
]


def _count(db: Database) -> int:
    with db.read_session() as s:
        return int(s.execute(select(func.count(Project.id))).scalar_one())


def test_settings_model_covers_every_column_with_the_same_defaults() -> None:
    fixed = {"id", "name", "type", "status", "labels_json", "created_at"}
    assert set(ProjectSettings.model_fields) == set(Project.model_fields) - fixed
    defaults = ProjectSettings()
    for key in ProjectSettings.model_fields:
        assert getattr(defaults, key) == Project.model_fields[key].default, key


def test_every_setting_is_checked_on_create_and_named_in_the_error(db: Database) -> None:
    assert {key for key, _ in BAD_VALUES} == projects.SETTINGS  # no setting left untested
    for key, value in BAD_VALUES:
        with pytest.raises(ProjectError, match=key), db.session() as s:
            projects.create(s, name="x", labels=["a", "b"], **{key: value})
    assert _count(db) == 0


def test_cross_field_rule_and_media_mode_spellings(db: Database) -> None:
    with pytest.raises(ProjectError, match=r"min_overlap \(3\) cannot exceed overlap \(2\)"), db.session() as s:
        projects.create(s, name="x", labels=["a", "b"], overlap=2, min_overlap=3)
    with db.session() as s:
        ref = projects.create(s, name="ref", labels=["a", "b"], media_mode=" Reference ")
        copy = projects.create(s, name="copy", labels=["a", "b"], media_mode="COPY", price="15")
        assert (ref.media_mode, copy.media_mode, copy.price) == ("ref", "copy", 15)


def test_unknown_settings_type_name_and_labels_are_refused(db: Database) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "labels": ["a", "b"], "status": "closed"}, "unknown project setting 'status'"),
        ({"name": "x", "labels": ["a", "b"], "type": "polygon"}, "unknown project type 'polygon'"),
        ({"name": "  ", "labels": ["a", "b"]}, "name"),
        ({"name": "n" * 201, "labels": ["a", "b"]}, "name"),
        ({"name": "x", "labels": ["only"]}, "at least two labels"),
        ({"name": "x", "labels": ["a", "a"]}, "labels must be unique"),
        ({"name": "x", "labels": ["a", "b" * 41]}, "at most 40 bytes"),
        ({"name": "x", "labels": [str(i) for i in range(21)]}, "at most 20 labels"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(ProjectError, match=needle), db.session() as s:
            projects.create(s, **kwargs)
    assert _count(db) == 0
    with db.session() as s:
        created = projects.create(s, name=" Cats ", labels=[" cat ", "dog", ""])
        assert (created.name, projects.labels(created)) == ("Cats", ["cat", "dog"])
        masks = projects.create(s, name="masks", type=ProjectType.CONFIRM_MASK)  # no labels needed
        assert projects.labels(masks) == []
    with pytest.raises(ProjectError, match="already exists"), db.session() as s:
        projects.create(s, name="Cats", labels=["a", "b"])


def test_update_checks_the_merged_settings_and_changes_nothing_on_error(db: Database) -> None:
    with db.session() as s:
        pid = projects.create(s, name="p", labels=["a", "b"], overlap=3, min_overlap=2).id
    refused: list[tuple[dict[str, Any], str]] = [
        ({"overlap": 1}, r"min_overlap \(2\) cannot exceed overlap \(1\)"),
        ({"price": -5, "golden_share": 0.1}, "price"),
        ({"nonsense": 1}, "unknown project setting 'nonsense'"),
        ({}, "nothing to change"),
        ({"labels": ["solo"]}, "at least two labels"),
    ]
    for changes, needle in refused:
        with pytest.raises(ProjectError, match=needle), db.session() as s:
            projects.update(s, pid, **changes)
    with db.read_session() as s:
        p = s.get(Project, pid)
        assert p is not None and (p.overlap, p.price, p.golden_share, projects.labels(p)) == (3, 10, 0.0, ["a", "b"])
    with db.session() as s:
        projects.update(s, "p", price="30", golden_share=0.1, labels=["x", "y", "z"], media_mode="reference")
    with db.read_session() as s:
        p = s.get(Project, pid)
        assert p is not None
        assert (p.price, p.golden_share, json.loads(p.labels_json), p.media_mode) == (30, 0.1, ["x", "y", "z"], "ref")


def test_labels_cannot_change_after_the_first_answer(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=2)
    (w,) = make_workers(db, 1)
    card = db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    db.call(answers.submit_answer, w, card.assignment_id, "a")
    with pytest.raises(ProjectError, match="labels: cannot change after the first answer"), db.session() as s:
        projects.update(s, project.id, labels=["x", "y"])
    with db.session() as s:
        projects.update(s, project.id, price=99)  # other settings still change
    with db.read_session() as s:
        p = s.get(Project, project.id)
        assert p is not None and projects.labels(p) == ["a", "b", "c"] and p.price == 99


def test_find_by_id_or_exact_name(db: Database) -> None:
    with db.session() as s:
        first = projects.create(s, name="Birds", labels=["a", "b"])
        numeric = projects.create(s, name="2024", labels=["a", "b"])
    with db.read_session() as s:
        assert projects.find(s, first.id).name == "Birds"
        assert projects.find(s, str(first.id)).name == "Birds"
        assert projects.find(s, " Birds ").id == first.id
        assert projects.find(s, "2024").id == numeric.id  # no project 2024 by id: the name matches
        for missing in ("birds", 999, "999", "Nope"):
            with pytest.raises(ProjectNotFound) as caught:
                projects.find(s, missing)
            assert caught.value.ref == missing and "no project with id or name" in str(caught.value)
