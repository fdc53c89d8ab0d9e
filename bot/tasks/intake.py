"""Creating tasks from stored images. Idempotent: (project, external_id) is unique, and adding
the same pair again returns the existing task instead of a duplicate."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from bot.tasks.models import Image, Project, Task, TaskKind, TaskStatus


def add_task(
    session: Session,
    project: Project,
    image: Image,
    *,
    external_id: str,
    kind: TaskKind = TaskKind.NORMAL,
    prelabel: str | None = None,
    mask_rle: str | None = None,
    golden: str | None = None,
    explanation: str | None = None,
    status: TaskStatus = TaskStatus.OPEN,
    prediction_json: str | None = None,
) -> tuple[Task, bool]:
    existing = (
        session.execute(select(Task).where(col(Task.project_id) == project.id, col(Task.external_id) == external_id)).scalars().first()
    )
    if existing is not None:
        return existing, False
    assert project.id is not None and image.id is not None
    task = Task(
        project_id=project.id,
        image_id=image.id,
        external_id=external_id,
        kind=kind.value,
        prelabel=prelabel,
        mask_rle=mask_rle,
        golden=golden,
        explanation=explanation,
        status=status.value,
        prediction_json=prediction_json,
    )
    session.add(task)
    session.flush()
    return task, True
