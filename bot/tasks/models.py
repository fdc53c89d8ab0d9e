"""Tables of the labeling domain: projects, images, tasks, assignments, answers.

Counters on ``Task`` (``taken``, ``answers_count``) exist so that a claim is one conditional
UPDATE that is atomic on SQLite and PostgreSQL alike; they are always changed in the same
transaction as the assignment row that justifies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.clock import utcnow

# Answer values of the mask task types (classify answers are the project's labels).
CONFIRM_VALUES = ("yes", "no")
PIN_MASK = "mask"  # a kept mask (its RLE travels with the answer)
PIN_NONE = "none"  # no such object
# Answer values of confirm-box: the predicted box and class are right / the box is wrong / the class is.
BOX_CORRECT, BOX_WRONG_BOX, BOX_WRONG_CLASS = "correct", "wrong_box", "wrong_class"
BOX_VALUES = (BOX_CORRECT, BOX_WRONG_BOX, BOX_WRONG_CLASS)


class ProjectType(StrEnum):
    CLASSIFY = "classify"
    CONFIRM_MASK = "confirm-mask"
    MAGIC_PIN = "magic-pin"
    CONFIRM_BOX = "confirm-box"


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    BROKEN = "broken"  # reported broken/offensive; not handed out again
    LOADING = "loading"  # written by a load that has not finished: invisible to workers and stats


class TaskKind(StrEnum):
    NORMAL = "normal"
    GOLDEN = "golden"  # control task with a known answer, looks like a normal one
    TRAINING = "training"  # shown with the right answer after each try


class AssignmentStatus(StrEnum):
    LEASED = "leased"
    ANSWERED = "answered"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    REPORTED = "reported"


class AnswerStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    type: str = Field(default=ProjectType.CLASSIFY, max_length=16)
    status: str = Field(default=ProjectStatus.ACTIVE, max_length=16, index=True)
    labels_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    question_ko: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    question_en: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    instructions_ko: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    instructions_en: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    price: int = Field(default=10, ge=0)  # KRW per accepted answer
    overlap: int = Field(default=3, ge=1)  # maximum answers per task
    min_overlap: int = Field(default=1, ge=1)  # with a confidence target: answers always collected
    confidence_target: float | None = Field(default=None)  # None: fixed overlap
    lease_seconds: int = Field(default=600, ge=10)
    idle_lease_seconds: int = Field(default=120, ge=0)  # the task leased by an answer, until tapped
    stuck_after_seconds: int = Field(default=1800, ge=0)  # a worker unseen this long has left
    golden_share: float = Field(default=0.0, ge=0.0, le=1.0)
    hold_days: int = Field(default=0, ge=0)
    # training and exam
    training_required: bool = Field(default=False)
    exam_size: int = Field(default=0, ge=0)
    exam_pass: float = Field(default=0.8)
    exam_cooldown_minutes: int = Field(default=60)
    exam_max_attempts: int = Field(default=3)  # 0: unlimited
    # quality rules (0 / None = off)
    min_golden_for_block: int = Field(default=0)
    accuracy_threshold: float | None = Field(default=None)
    block_confidence: float | None = Field(default=0.95)  # None: no accuracy rule
    block_margin: float = Field(default=0.05)  # "useful" = chance + margin (without a threshold)
    min_seconds: float = Field(default=0.0)
    fast_strikes_warn: int = Field(default=3)
    fast_strikes_block: int = Field(default=6)
    daily_cap: int = Field(default=0)
    max_skips_in_row: int = Field(default=0)
    media_mode: str = Field(default="copy", max_length=8)  # copy | reference
    created_at: datetime = Field(default_factory=utcnow)


class Image(SQLModel, table=True):
    """One image file, deduplicated by content hash; ``tg_file_id`` is set after the first upload."""

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, unique=True)
    path: str = Field(sa_column=Column(Text, nullable=False))
    width: int
    height: int
    phone_path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tg_file_id: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_task_project_external"),
        Index("ix_task_claim", "project_id", "status", "kind", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    image_id: int = Field(foreign_key="image.id", index=True)
    external_id: str = Field(max_length=256)
    kind: str = Field(default=TaskKind.NORMAL, max_length=16)
    status: str = Field(default=TaskStatus.OPEN, max_length=16)
    prelabel: str | None = Field(default=None, max_length=256)
    mask_rle: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # the model prediction the task validates: confirm-box box, score, source record (bot.tasks.boxes.Prediction)
    prediction_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    golden: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    explanation: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    taken: int = Field(default=0)  # live leases + answers; never above the task's overlap
    answers_count: int = Field(default=0)
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    confidence: float | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What recording an answer needs to know of its task: read with Core, not loaded by the ORM."""

    id: int
    kind: str
    golden: str | None = None
    explanation: str | None = None


class Assignment(SQLModel, table=True):
    """A lease of one task to one worker: the unit that is answered, and paid, exactly once."""

    __table_args__ = (
        UniqueConstraint("task_id", "worker_id", name="uq_assignment_task_worker"),
        Index("ix_assignment_lease", "status", "expires_at"),
        Index("ix_assignment_worker_status", "worker_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id")
    worker_id: int = Field(foreign_key="worker.id")
    project_id: int = Field(foreign_key="project.id", index=True)
    status: str = Field(default=AssignmentStatus.LEASED, max_length=16)
    leased_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    closed_at: datetime | None = None
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    message_id: int | None = Field(default=None)
    state_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # magic-pin progress


class Answer(SQLModel, table=True):
    __table_args__ = (Index("ix_answer_worker_created", "worker_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", unique=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    worker_id: int = Field(foreign_key="worker.id")
    project_id: int = Field(foreign_key="project.id", index=True)
    reward: int = Field(default=0)  # KRW credited for this answer (0 for training)
    value: str = Field(sa_column=Column(Text, nullable=False))
    mask_rle: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # confirm-box: the box the worker drew instead of the predicted one ("wrong_box" with a fix),
    # JSON [x, y, width, height] in the image's pixels (bot.tasks.boxes.fixed_box_json)
    box_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    seconds: float = Field(default=0.0)
    is_golden: bool = Field(default=False)
    correct: bool | None = Field(default=None)
    status: str = Field(default=AnswerStatus.ACCEPTED, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class WorkerProject(SQLModel, table=True):
    """A worker's standing in one project: training/exam progress and quality counters."""

    __table_args__ = (UniqueConstraint("worker_id", "project_id", name="uq_worker_project"),)

    id: int | None = Field(default=None, primary_key=True)
    worker_id: int = Field(foreign_key="worker.id")
    project_id: int = Field(foreign_key="project.id", index=True)
    stage: str = Field(default="work", max_length=16)  # training | exam | work | failed | blocked
    exam_correct: int = Field(default=0)
    exam_total: int = Field(default=0)
    exam_attempts: int = Field(default=0)  # exams finished (passed or failed)
    cooldown_until: datetime | None = None
    golden_correct: int = Field(default=0)
    golden_total: int = Field(default=0)
    fast_strikes: int = Field(default=0)
    skips_in_row: int = Field(default=0)
    answers_total: int = Field(default=0)
    blocked_reason: str | None = Field(default=None, max_length=256)
    updated_at: datetime = Field(default_factory=utcnow)


class ProblemReport(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    worker_id: int = Field(foreign_key="worker.id")
    reason: str = Field(default="broken", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
