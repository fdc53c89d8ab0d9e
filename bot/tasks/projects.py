"""Project creation and lookup, shared by the admin CLI and the bot."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Row
from sqlmodel import Session

from bot.db.hot import execute, hot
from bot.tasks.models import CONFIRM_VALUES, PIN_MASK, PIN_NONE, Project, ProjectStatus, ProjectType


class ProjectError(ValueError):
    """A project setting that cannot work (no labels for a classify project, bad overlap...)."""


def labels(project: Project) -> list[str]:
    return list(json.loads(project.labels_json or "[]"))


def answer_values(project: Project) -> list[str]:
    """The answers a task of this project can get, in a fixed order (for votes and posteriors)."""
    if project.type == ProjectType.CLASSIFY:
        return labels(project)
    if project.type == ProjectType.CONFIRM_MASK:
        return list(CONFIRM_VALUES)
    return [PIN_MASK, PIN_NONE]


def create(session: Session, *, name: str, type: str = ProjectType.CLASSIFY, labels: list[str] | None = None, **fields: Any) -> Project:
    try:
        ptype = ProjectType(type)
    except ValueError:
        raise ProjectError(f"unknown project type {type!r}; use one of: {', '.join(t.value for t in ProjectType)}") from None
    clean = [label.strip() for label in (labels or []) if label.strip()]
    if ptype == ProjectType.CLASSIFY and len(clean) < 2:
        raise ProjectError("a classify project needs at least two labels (--labels a,b)")
    if len(set(clean)) != len(clean):
        raise ProjectError("labels must be unique")
    if any(len(label.encode()) > 40 for label in clean):
        raise ProjectError("a label must fit a button: at most 40 bytes")
    if len(clean) > 20:
        raise ProjectError("at most 20 labels fit on a phone screen")
    if session.execute(select(Project.id).where(Project.name == name)).first():
        raise ProjectError(f"a project named {name!r} already exists")
    project = Project(name=name, type=ptype.value, labels_json=json.dumps(clean, ensure_ascii=False), **fields)
    if project.min_overlap > project.overlap:
        raise ProjectError("min overlap cannot exceed overlap")
    session.add(project)
    session.flush()
    return project


def get(session: Session, project_id: int) -> Project | None:
    return session.get(Project, project_id)


# --- read-only snapshots for the answer loop ------------------------------------------------------
# Every answer needs its project's settings. Loading a SQLModel object through the ORM costs
# several times the SELECT, so the hot path reads the row with Core and maps it to a snapshot
# kept per distinct row content: a changed setting is a different row, hence a new snapshot at
# once (never a stale price), and unchanged rows cost one dict lookup. Snapshots are detached
# and shared between threads: treat them as read-only.
_TABLE = Project.__table__  # type: ignore[attr-defined]
PROJECT_COLUMNS = tuple(_TABLE.c)
_ROW_BY_ID = hot(select(*PROJECT_COLUMNS).where(_TABLE.c.id == bindparam("project_id")))
_ACTIVE_ROWS = hot(select(*PROJECT_COLUMNS).where(_TABLE.c.status == ProjectStatus.ACTIVE.value).order_by(_TABLE.c.id))
_ACTIVE_ROW = hot(_ACTIVE_ROWS.where(_TABLE.c.id == bindparam("project_id")))
_SNAPSHOTS: dict[tuple[Any, ...], Project] = {}
_SNAPSHOTS_MAX = 1024


def snapshot(values: tuple[Any, ...] | Row[Any]) -> Project:
    """The read-only project for a row of :data:`PROJECT_COLUMNS` (in that order)."""
    key = tuple(values)
    project = _SNAPSHOTS.get(key)
    if project is None:
        if len(_SNAPSHOTS) >= _SNAPSHOTS_MAX:
            _SNAPSHOTS.clear()
        project = Project(**{column.key: value for column, value in zip(PROJECT_COLUMNS, key)})
        _SNAPSHOTS[key] = project
    return project


def read(session: Session, project_id: int) -> Project | None:
    """A read-only snapshot of the project (see :func:`snapshot`), or None."""
    row = execute(session, _ROW_BY_ID, {"project_id": project_id}).first()
    return snapshot(row) if row is not None else None


def active_snapshots(session: Session, project_id: int | None = None) -> list[Project]:
    """Read-only snapshots of the active projects (or of the one, if active), by id."""
    if project_id is None:
        rows = execute(session, _ACTIVE_ROWS).all()
    else:
        rows = execute(session, _ACTIVE_ROW, {"project_id": project_id}).all()
    return [snapshot(row) for row in rows]


def active(session: Session) -> list[Project]:
    return list(
        session.execute(select(Project).where(Project.status == ProjectStatus.ACTIVE).order_by(Project.id)).scalars()
    )


def set_status(session: Session, project_id: int, status: ProjectStatus) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise ProjectError(f"no project with id {project_id}")
    project.status = status.value
    session.add(project)
    session.flush()
    return project
