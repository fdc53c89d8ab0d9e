"""Projects: the rules of a project's settings, and creating, changing and finding projects.

Every caller (the admin CLI, the chat commands, the sandbox, the tests) goes through
:func:`create`, :func:`update` and :func:`find`, so a setting is checked in one place: SQLModel
table models do not validate on construction, and a project with ``exam_pass=5`` or an empty
label list would otherwise be stored as given.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Row
from sqlmodel import Session, col

from bot.db.hot import execute, hot
from bot.db.tables import table
from bot.tasks.models import BOX_VALUES, CONFIRM_VALUES, PIN_MASK, PIN_NONE, Answer, Project, ProjectStatus, ProjectType

MAX_LABELS = 20  # buttons that fit on a phone screen
MAX_LABEL_BYTES = 40  # a label travels in the button's text; keep it short
MEDIA_MODES = {"copy": "copy", "reference": "ref", "ref": "ref"}  # the column holds 8 characters


class ProjectError(ValueError):
    """A project setting that cannot work (no labels for a classify project, bad overlap...),
    or a project that does not exist. The message names the setting."""


class ProjectNotFound(ProjectError):
    """No project with that id or name."""

    def __init__(self, ref: str | int) -> None:
        super().__init__(f"no project with id or name {ref!r}")
        self.ref = ref


class ProjectSettings(BaseModel):
    """Every setting an operator may choose, with its limits (the table's columns minus id, name,
    type, status, labels and created_at; a test keeps the two in step)."""

    model_config = ConfigDict(extra="forbid")

    question_ko: str = Field(default="", max_length=1024)  # shown in a photo caption (1024 max)
    question_en: str = Field(default="", max_length=1024)
    instructions_ko: str = Field(default="", max_length=4096)  # one message (4096 max)
    instructions_en: str = Field(default="", max_length=4096)
    price: int = Field(default=10, ge=0, le=1_000_000)  # KRW per accepted answer
    overlap: int = Field(default=3, ge=1, le=1000)  # maximum answers per task
    min_overlap: int = Field(default=1, ge=1, le=1000)  # with a confidence target: always collected
    confidence_target: float | None = Field(default=None, gt=0.0, lt=1.0)  # None: fixed overlap
    lease_seconds: int = Field(default=600, ge=10, le=7 * 86_400)
    # The task an answer leases for the next round is held this long until the worker taps it
    # (then it gets the full lease): a worker who answers and leaves does not stall the batch.
    idle_lease_seconds: int = Field(default=120, ge=0, le=7 * 86_400)  # 0: the full lease
    stuck_after_seconds: int = Field(default=1800, ge=0, le=30 * 86_400)  # unseen this long: gone
    golden_share: float = Field(default=0.0, ge=0.0, le=1.0)
    hold_days: int = Field(default=0, ge=0, le=365)
    training_required: bool = False
    exam_size: int = Field(default=0, ge=0, le=1000)
    exam_pass: float = Field(default=0.8, ge=0.0, le=1.0)
    exam_cooldown_minutes: int = Field(default=60, ge=0)
    exam_max_attempts: int = Field(default=3, ge=0, le=1000)  # 0: unlimited
    min_golden_for_block: int = Field(default=0, ge=0)
    accuracy_threshold: float | None = Field(default=None, ge=0.0, le=1.0)  # None: chance + block_margin
    block_confidence: float | None = Field(default=0.95, gt=0.5, lt=1.0)  # None: no accuracy rule
    block_margin: float = Field(default=0.05, ge=0.0, le=0.5)
    min_seconds: float = Field(default=0.0, ge=0.0)
    fast_strikes_warn: int = Field(default=3, ge=0)
    fast_strikes_block: int = Field(default=6, ge=0)
    daily_cap: int = Field(default=0, ge=0)
    max_skips_in_row: int = Field(default=0, ge=0)
    media_mode: Literal["copy", "ref"] = "copy"  # copy (into MEDIA_DIR) | ref (images stay put)

    @field_validator("media_mode", mode="before")
    @classmethod
    def _media_mode(cls, value: object) -> object:
        if isinstance(value, str):
            mode = value.strip().lower()
            if mode not in MEDIA_MODES:
                raise ValueError("media_mode is copy or reference")
            return MEDIA_MODES[mode]
        return value

    @model_validator(mode="after")
    def _overlaps(self) -> ProjectSettings:
        if self.min_overlap > self.overlap:
            raise ValueError(f"min_overlap ({self.min_overlap}) cannot exceed overlap ({self.overlap})")
        return self


SETTINGS = frozenset(ProjectSettings.model_fields)


def check_settings(values: dict[str, Any]) -> ProjectSettings:
    """``values`` checked against :class:`ProjectSettings`; a :class:`ProjectError` naming every
    bad setting otherwise."""
    unknown = sorted(set(values) - SETTINGS)
    if unknown:
        raise ProjectError(f"unknown project setting {unknown[0]!r}; settable: {', '.join(sorted(SETTINGS))}")
    try:
        return ProjectSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ProjectError(f"invalid project settings: {problems}") from None


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def settings_of(project: Project) -> ProjectSettings:
    """The project's current settings (as stored; not re-validated)."""
    return ProjectSettings.model_construct(**{key: getattr(project, key) for key in SETTINGS})


def check_name(name: str) -> str:
    clean = (name or "").strip()
    if not clean:
        raise ProjectError("name: a project needs a name")
    if len(clean) > 200:
        raise ProjectError("name: at most 200 characters")
    return clean


def check_type(type: str) -> ProjectType:
    try:
        return ProjectType(type)
    except ValueError:
        raise ProjectError(f"unknown project type {type!r}; use one of: {', '.join(t.value for t in ProjectType)}") from None


def check_labels(ptype: ProjectType, labels: list[str] | None) -> list[str]:
    """The labels, stripped; classify projects need at least two, each fitting a button."""
    clean = [label.strip() for label in (labels or []) if label.strip()]
    if ptype == ProjectType.CLASSIFY and len(clean) < 2:
        raise ProjectError("labels: a classify project needs at least two labels (e.g. cat,dog)")
    if len(set(clean)) != len(clean):
        raise ProjectError("labels: labels must be unique")
    if any(len(label.encode()) > MAX_LABEL_BYTES for label in clean):
        raise ProjectError(f"labels: a label must fit a button: at most {MAX_LABEL_BYTES} bytes")
    if len(clean) > MAX_LABELS:
        raise ProjectError(f"labels: at most {MAX_LABELS} labels fit on a phone screen")
    return clean


def labels(project: Project) -> list[str]:
    return list(json.loads(project.labels_json or "[]"))


def answer_values(project: Project) -> list[str]:
    """The answers a task of this project can get, in a fixed order (for votes and posteriors)."""
    if project.type == ProjectType.CLASSIFY:
        return labels(project)
    if project.type == ProjectType.CONFIRM_MASK:
        return list(CONFIRM_VALUES)
    if project.type == ProjectType.CONFIRM_BOX:
        return list(BOX_VALUES)
    return [PIN_MASK, PIN_NONE]


def create(session: Session, *, name: str, type: str = ProjectType.CLASSIFY, labels: list[str] | None = None, **settings: Any) -> Project:
    """A new project; every setting checked first (:class:`ProjectError` and nothing written)."""
    ptype = check_type(type)
    checked = check_settings(settings)
    clean = check_labels(ptype, labels)
    name = check_name(name)
    if session.execute(select(col(Project.id)).where(col(Project.name) == name)).first():
        raise ProjectError(f"a project named {name!r} already exists")
    given = {key: getattr(checked, key) for key in settings}
    project = Project(name=name, type=ptype.value, labels_json=json.dumps(clean, ensure_ascii=False), **given)
    session.add(project)
    session.flush()
    return project


def update(session: Session, ref: int | str, *, labels: list[str] | None = None, **changes: Any) -> Project:
    """Change some settings (and the labels, before the first answer) of an existing project.

    The new values are checked together with the ones that stay (``min_overlap`` against
    ``overlap``...); on any problem nothing changes.
    """
    if not changes and labels is None:
        raise ProjectError("nothing to change")
    project = find(session, ref)
    merged = check_settings({**settings_of(project).model_dump(), **changes})
    if labels is not None:
        answered = session.execute(select(col(Answer.id)).where(col(Answer.project_id) == project.id).limit(1)).first()
        if answered is not None:
            raise ProjectError("labels: cannot change after the first answer (it would change what answers mean)")
        project.labels_json = json.dumps(check_labels(ProjectType(project.type), labels), ensure_ascii=False)
    for key in changes:
        setattr(project, key, getattr(merged, key))
    session.add(project)
    session.flush()
    return project


def find(session: Session, ref: int | str) -> Project:
    """The project with id ``ref``, else the one named exactly ``ref`` (a name may be all digits);
    :class:`ProjectNotFound` when there is none."""
    project: Project | None = None
    key = ref if isinstance(ref, int) else str(ref).strip()
    if isinstance(key, int) or key.isdigit():
        project = session.get(Project, int(key))
    if project is None and isinstance(key, str):
        project = session.execute(select(Project).where(col(Project.name) == key)).scalars().first()
    if project is None:
        raise ProjectNotFound(ref)
    return project


def get(session: Session, project_id: int) -> Project | None:
    return session.get(Project, project_id)


# --- read-only snapshots for the answer loop ------------------------------------------------------
# Every answer needs its project's settings. Loading a SQLModel object through the ORM costs
# several times the SELECT, so the hot path reads the row with Core and maps it to a snapshot
# kept per distinct row content: a changed setting is a different row, hence a new snapshot at
# once (never a stale price), and unchanged rows cost one dict lookup. Snapshots are detached
# and shared between threads: treat them as read-only.
_TABLE = table(Project)
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
    return list(session.execute(select(Project).where(col(Project.status) == ProjectStatus.ACTIVE).order_by(col(Project.id))).scalars())


def set_status(session: Session, project_id: int, status: ProjectStatus) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise ProjectError(f"no project with id {project_id}")
    project.status = status.value
    session.add(project)
    session.flush()
    return project
