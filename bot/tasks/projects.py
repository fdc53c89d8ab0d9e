"""Project creation and lookup, shared by the admin CLI and the bot."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

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
