"""A worker's standing in a project and the quality controls around each claim and answer.

Stages (``WorkerProject.stage``)::

    training ──(all training tasks done)──> exam ──(score >= exam_pass)──> work
                                              └──(score <  exam_pass)──> failed ─(cool-down)─> exam
    work ──(accuracy rule / fast answers)──> blocked        (per project; an operator lifts it)

* Training tasks (kind ``training``) show the right answer and the project's explanation after
  each try and pay nothing.
* The exam is ``exam_size`` golden tasks the worker has not seen, unpaid; a retry after the
  cool-down uses other golden tasks (a worker never gets the same task twice).
* In paid work a golden task is handed out instead of a normal one with probability
  ``golden_share`` (doubled, up to one in two, until the worker has ``min_golden_for_block``
  golden answers: new workers are measured quickly, before their answers weigh much).
* Accuracy on golden answers (exam included) is smoothed: (K + correct) / (2K + total), K = 0.5.

Rules, each producing a :class:`Notice` the bot shows (i18n key + parameters):

* the posterior accuracy rule (``bot.tasks.worker_quality``; docs/quality.md): blocked when
  P(accuracy <= floor) > ``block_confidence`` given golden answers and the worker's agreement in
  the export's Dawid–Skene fit (floor: ``accuracy_threshold``, else chance + ``block_margin``),
  not before ``min_golden_for_block`` golden answers; and the constant-answer rule;
* at most ``exam_max_attempts`` exams (0: no limit): then the worker stays out of the project;
* answers faster than ``min_seconds``: each is a strike, each answer at normal speed forgives one;
  a warning at ``fast_strikes_warn`` strikes, blocked at ``fast_strikes_block``;
* ``daily_cap`` answers per local day in the project: no more tasks there today;
* ``max_skips_in_row`` skips in a row: a pause of ``exam_cooldown_minutes``.

Dynamic overlap: after every answer on a normal task its label posterior is recomputed from the
answers so far, each weighted by its worker's current golden accuracy (see
``bot.tasks.quality_math``). With a ``confidence_target`` the task is done — handed out no more —
once it has ``min_overlap`` answers and the posterior reaches the target, or at ``overlap``.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from bot.clock import day_start, utcnow
from bot.db.hot import Carried, execute, hot
from bot.db.tables import table
from bot.tasks import leasing, worker_quality
from bot.tasks.models import (
    PIN_MASK,
    Answer,
    AnswerStatus,
    Project,
    ProjectType,
    Task,
    TaskFacts,
    TaskKind,
    TaskStatus,
    WorkerProject,
)
from bot.tasks.projects import answer_values
from bot.tasks.quality_math import best, posterior, smoothed_accuracy, vote_weight, weight_accuracy

log = structlog.get_logger("crowdpin.quality")

# Golden tasks are drawn at random so a worker cannot tell them apart by position; the simulator
# and tests seed this generator for reproducible runs.
rng = random.Random()


class Stage(StrEnum):
    TRAINING = "training"
    EXAM = "exam"
    WORK = "work"
    FAILED = "failed"  # exam failed; retry after the cool-down
    BLOCKED = "blocked"


class BlockReason(StrEnum):
    ACCURACY = "accuracy"
    CONSTANT = "constant"
    FAST = "fast"
    OPERATOR = "operator"


@dataclass(slots=True)
class Notice:
    """Something to tell the worker: an i18n key in ``bot/i18n/locales/*/quality.toml`` + params.

    ``stops`` is True when work in the project stops (block, cap, pause, failed exam).
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)
    stops: bool = False


@dataclass(slots=True)
class TrainingFeedback:
    correct: bool | None
    right_answer: str | None
    explanation: str | None
    project_type: str = ProjectType.CLASSIFY


@dataclass(slots=True)
class AfterAnswer:
    notice: Notice | None = None
    training_feedback: TrainingFeedback | None = None
    paid: bool = True


def pct(value: float) -> int:
    return int(round(value * 100))


def accuracy_of(wp: Standing) -> float:
    return smoothed_accuracy(wp.golden_correct, wp.golden_total)


# --- standing -----------------------------------------------------------------------------------


def first_stage(project: Project) -> Stage:
    if project.training_required:
        return Stage.TRAINING
    if project.exam_size > 0:
        return Stage.EXAM
    return Stage.WORK


# The standing is read and written with Core statements on the session's connection: this runs
# on every claim and answer, and the ORM's execute path costs several times the statement. The
# standing handed out is a :class:`Standing`, a detached copy of one row; change it with ``_set``.
# Within one transaction the copy is remembered (``_txn_cache``), so the answer and the next
# claim read the row once; every write goes through ``_set`` / ``_bump``, which refresh it.
_WP = table(WorkerProject)
_FIND_WP = hot(select(_WP).where(_WP.c.worker_id == bindparam("worker_id"), _WP.c.project_id == bindparam("project_id")))


@dataclass(slots=True)
class Standing:
    """One ``worker_project`` row (see :class:`bot.tasks.models.WorkerProject`)."""

    id: int
    worker_id: int
    project_id: int
    stage: str
    exam_correct: int
    exam_total: int
    exam_attempts: int
    cooldown_until: datetime | None
    golden_correct: int
    golden_total: int
    fast_strikes: int
    skips_in_row: int
    answers_total: int
    blocked_reason: str | None
    updated_at: datetime


def _txn_cache(session: Session) -> dict[tuple[int, int], Standing]:
    txn = session.get_transaction()
    held = session.info.get("crowdpin.standing")
    if held is None or held[0] is not txn:
        held = session.info["crowdpin.standing"] = (txn, {})
    return held[1]


def _holder(session: Session, row: Any) -> Standing:
    """The transaction's copy of the row: the remembered one brought up to date, or a new one."""
    cache = _txn_cache(session)
    wp = cache.get((row["worker_id"], row["project_id"]))
    if wp is None:
        wp = cache[(row["worker_id"], row["project_id"])] = Standing(**row)
    else:
        for key, value in row.items():
            setattr(wp, key, value)
    return wp


def find_standing(session: Session, worker_id: int, project_id: int) -> Standing | None:
    cached = _txn_cache(session).get((worker_id, project_id))
    if cached is not None:
        return cached
    row = execute(session, _FIND_WP, {"worker_id": worker_id, "project_id": project_id}).mappings().first()
    return _holder(session, row) if row is not None else None


def standing(session: Session, worker_id: int, project: Project, now: datetime | None = None) -> Standing:
    """The worker's row for the project, created at the project's first stage on first contact."""
    assert project.id is not None
    wp = find_standing(session, worker_id, project.id)
    if wp is not None:
        return wp
    now = now or utcnow()
    values = {
        "worker_id": worker_id,
        "project_id": project.id,
        "stage": first_stage(project).value,
        "updated_at": now,
        "exam_correct": 0,
        "exam_total": 0,
        "exam_attempts": 0,
        "golden_correct": 0,
        "golden_total": 0,
        "fast_strikes": 0,
        "skips_in_row": 0,
        "answers_total": 0,
    }
    try:
        with session.begin_nested():  # a concurrent first claim may have inserted it already
            row = execute(session, insert(_WP).values(**values).returning(*_WP.c)).mappings().one()
    except IntegrityError:
        found = find_standing(session, worker_id, project.id)
        assert found is not None
        return found
    return _holder(session, row)


def _set(session: Session, wp: Standing, now: datetime, **values: Any) -> None:
    """Update the row; counters change as SQL expressions (atomic against a concurrent answer of
    the same worker) and ``wp`` gets the row as written."""
    row = execute(session, update(_WP).where(_WP.c.id == wp.id).values(updated_at=now, **values).returning(*_WP.c)).mappings().one()
    for key, value in row.items():
        setattr(wp, key, value)


def block(session: Session, wp: Standing, reason: BlockReason, now: datetime, accuracy: float | None = None) -> None:
    """``accuracy``: what the accuracy rule judged, when it blocks (else the golden answers')."""
    _set(session, wp, now, stage=Stage.BLOCKED.value, blocked_reason=reason.value)
    log.warning(
        "quality.blocked",
        worker_id=wp.worker_id,
        project_id=wp.project_id,
        reason=reason.value,
        accuracy=round(accuracy_of(wp) if accuracy is None else accuracy, 3),
        golden=wp.golden_total,
        fast_strikes=wp.fast_strikes,
    )


def unblock(session: Session, worker_id: int, project_id: int, now: datetime | None = None) -> bool:
    """Operator action: back to work with fresh strike counters (golden history is kept)."""
    wp = find_standing(session, worker_id, project_id)
    if wp is None or wp.stage != Stage.BLOCKED:
        return False
    _set(session, wp, now or utcnow(), stage=Stage.WORK.value, blocked_reason=None, fast_strikes=0, skips_in_row=0)
    return True


def blocked_notice(session: Session, project: Project, wp: Standing, verdict: worker_quality.Verdict | None = None) -> Notice:
    """Why the worker is blocked, in their words. The accuracy it quotes is the one the rule
    judged (golden answers and agreement with the crowd, ``verdict`` or read again from the
    project's crowd evidence), not the golden answers alone: a worker with no golden answer
    would read "50 %, 38 % needed" beside a block."""
    reason = wp.blocked_reason or BlockReason.OPERATOR.value
    if reason not in {r.value for r in BlockReason}:
        reason = BlockReason.OPERATOR.value
    params = {"threshold": pct(worker_quality.floor_of(project)), "project": project.name}
    if reason == BlockReason.ACCURACY.value:  # the only notice that quotes the accuracy
        params["accuracy"] = pct((verdict or _verdict(session, project, wp)).accuracy)
    return Notice(f"quality.blocked.{reason}", params, stops=True)


def _minutes_left(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds() / 60))


# --- claiming -----------------------------------------------------------------------------------


def _has_tasks(session: Session, project: Project, kind: TaskKind) -> bool:
    found = execute(
        session,
        select(col(Task.id))
        .where(col(Task.project_id) == project.id, col(Task.kind) == kind.value, col(Task.status) == TaskStatus.OPEN.value)
        .limit(1),
    ).first()
    return found is not None


def answers_today(session: Session, worker_id: int, project_id: int, now: datetime, tz: str) -> int:
    """Answers in the project since local midnight; training answers do not count."""
    return int(
        execute(
            session,
            select(func.count(col(Answer.id)))
            .join(Task, col(Task.id) == col(Answer.task_id))
            .where(
                col(Answer.worker_id) == worker_id,
                col(Answer.project_id) == project_id,
                col(Answer.created_at) >= day_start(now, tz),
                col(Task.kind) != TaskKind.TRAINING.value,
            ),
        ).scalar_one()
    )


SEEN_EVERY = timedelta(seconds=5)


def golden_probability(project: Project, wp: Standing) -> float:
    share = project.golden_share
    if share <= 0:
        return 0.0
    if wp.golden_total < project.min_golden_for_block:
        return max(share, min(0.5, 2 * share))
    return share


def claim(
    session: Session,
    project: Project,
    worker_id: int,
    *,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
    chat_id: int | None = None,
    message_id: int | None = None,
    idle: bool = False,
) -> leasing.NewLease | Notice | None:
    """Lease the task this worker should get next in ``project``: a training task, an exam task,
    a golden or a normal task. A :class:`Notice` says why the worker gets nothing here.
    ``chat_id``/``message_id``: the message that will show the lease, when known."""
    now = now or utcnow()
    # card_since: on PostgreSQL the claim reads the task's card too (one round trip, not three)
    shown: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id, "idle": idle, "card_since": day_start(now, tz)}
    wp = standing(session, worker_id, project, now)
    if wp.stage == Stage.BLOCKED:
        return blocked_notice(session, project, wp)
    if wp.stage == Stage.FAILED:
        if exam_attempts_left(project, wp) == 0:
            return Notice("quality.exam.no_attempts", {"attempts": wp.exam_attempts}, stops=True)
        if wp.cooldown_until is not None and wp.cooldown_until > now:
            return Notice("quality.exam.cooldown", {"minutes": _minutes_left(wp.cooldown_until, now)}, stops=True)
        _set(session, wp, now, stage=Stage.EXAM.value, exam_correct=0, exam_total=0, cooldown_until=None)
    if wp.stage == Stage.WORK and wp.cooldown_until is not None and wp.cooldown_until > now:
        return Notice("quality.skips.pause", {"minutes": _minutes_left(wp.cooldown_until, now)}, stops=True)
    if wp.stage == Stage.TRAINING:
        assignment = leasing.claim_in_project(session, project, worker_id, kind=TaskKind.TRAINING, now=now, **shown)
        if assignment is not None:
            return assignment
        next_stage = Stage.EXAM if project.exam_size > 0 else Stage.WORK
        _set(session, wp, now, stage=next_stage.value)
    if wp.stage == Stage.EXAM:
        if not _has_tasks(session, project, TaskKind.GOLDEN):
            log.warning("quality.exam_without_golden", project_id=project.id)
            _set(session, wp, now, stage=Stage.WORK.value)
        else:
            assignment = leasing.claim_in_project(session, project, worker_id, kind=TaskKind.GOLDEN, now=now, **shown)
            if assignment is not None:
                return assignment
            return Notice("quality.exam.unavailable", stops=True)
    if project.daily_cap > 0 and answers_today(session, worker_id, wp.project_id, now, tz) >= project.daily_cap:
        return Notice("quality.daily_cap", {"cap": project.daily_cap}, stops=True)
    kinds = [TaskKind.NORMAL]
    if rng.random() < golden_probability(project, wp):
        kinds.insert(0, TaskKind.GOLDEN)
    for kind in kinds:
        assignment = leasing.claim_in_project(session, project, worker_id, kind=kind, now=now, **shown)
        if assignment is not None:
            return assignment
    if wp.updated_at < now - SEEN_EVERY:  # asking and finding nothing is being present (bot.tasks.stuck)
        _set(session, wp, now)
    return None


# --- after an answer / a skip -------------------------------------------------------------------


def is_exam_answer(session: Session, project: Project, task: TaskFacts, worker_id: int) -> bool:
    if task.kind != TaskKind.GOLDEN:
        return False
    assert project.id is not None
    wp = find_standing(session, worker_id, project.id)
    return wp is not None and wp.stage == Stage.EXAM


def pays(session: Session, project: Project, task: TaskFacts, worker_id: int) -> bool:
    """Training and exam answers are not paid work."""
    return task.kind != TaskKind.TRAINING and not is_exam_answer(session, project, task, worker_id)


_BUMPS: dict[tuple[bool, bool, bool | None], Any] = {}


def _bump_statement(golden: bool, exam: bool, fast: bool | None) -> Any:
    """The counters update for one answer, built once per shape (``fast`` None: no speed rule)."""
    key = (golden, exam, fast)
    statement = _BUMPS.get(key)
    if statement is None:
        c = _WP.c
        values: dict[str, Any] = {"answers_total": c.answers_total + 1, "skips_in_row": 0, "updated_at": bindparam("b_now")}
        if golden:
            values.update(golden_total=c.golden_total + 1, golden_correct=c.golden_correct + bindparam("b_right"))
        if exam:
            values.update(exam_total=c.exam_total + 1, exam_correct=c.exam_correct + bindparam("b_right"))
        if fast is True:
            values["fast_strikes"] = c.fast_strikes + 1
        elif fast is False:
            values["fast_strikes"] = case((c.fast_strikes > 0, c.fast_strikes - 1), else_=0)
        statement = _BUMPS[key] = hot(
            update(_WP)
            .where(c.worker_id == bindparam("b_worker_id"), c.project_id == bindparam("b_project_id"))
            .values(**values)
            .returning(*c)
        )
    return statement


def after_answer(
    session: Session,
    project: Project,
    task: TaskFacts,
    worker_id: int,
    correct: bool | None,
    seconds: float,
    *,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
    carry: list[Carried] | None = None,
) -> AfterAnswer:
    """Update the worker's counters and apply the project's rules to one recorded answer.
    ``carry``: earlier writes of the answer that ride on the counters' UPDATE (PostgreSQL)."""
    now = now or utcnow()
    if task.kind == TaskKind.TRAINING:
        return AfterAnswer(training_feedback=TrainingFeedback(correct, task.golden, task.explanation, project.type), paid=False)
    golden = task.kind == TaskKind.GOLDEN and correct is not None
    exam = False
    if golden:  # only an exam answer depends on the stage before this answer
        before = standing(session, worker_id, project, now)
        exam = before.stage == Stage.EXAM
    fast = project.min_seconds > 0 and seconds < project.min_seconds
    statement = _bump_statement(golden, exam, fast if project.min_seconds > 0 else None)
    params = {"b_worker_id": worker_id, "b_project_id": project.id, "b_now": now, "b_right": 1 if correct else 0}
    row = execute(session, statement, params, carry=carry).mappings().first()
    if row is None:  # no standing yet (a lease made outside ``claim``): create it, then count
        standing(session, worker_id, project, now)
        row = execute(session, statement, params).mappings().one()
    wp = _holder(session, row)
    out = AfterAnswer(paid=not exam)
    if exam and wp.exam_total >= project.exam_size:
        out.notice = _finish_exam(session, project, wp, now)
    if wp.stage not in (Stage.WORK, Stage.EXAM):
        return out
    rule = _apply_rules(session, project, wp, fast=fast, golden=golden, now=now, tz=tz)
    if rule is not None and (out.notice is None or rule.stops):
        out.notice = rule
    return out


def exam_attempts_left(project: Project, wp: Standing) -> int | None:
    """Exams the worker may still start in the project; None: no limit (``exam_max_attempts`` 0)."""
    if project.exam_max_attempts <= 0:
        return None
    return max(0, project.exam_max_attempts - wp.exam_attempts)


JUDGE_EVERY = 10  # besides every golden answer, the accuracy rule looks again every this many answers


def _verdict(session: Session, project: Project, wp: Standing) -> worker_quality.Verdict:
    """The accuracy rule's reading of the worker: golden record and the project's crowd evidence."""
    evidence = worker_quality.crowd_evidence(session, project).get(wp.worker_id)
    return worker_quality.judge(project, evidence, wp.golden_correct, wp.golden_total)


def judge_worker(session: Session, project: Project, wp: Standing) -> worker_quality.Verdict | None:
    """The posterior accuracy rule and the constant-answer rule (``bot.tasks.worker_quality``):
    the verdict when it blocks, else None."""
    if project.block_confidence is None or wp.golden_total < project.min_golden_for_block:
        return None
    verdict = _verdict(session, project, wp)
    if verdict.reason is None:
        return None
    log.info(
        "quality.judged",
        worker_id=wp.worker_id,
        project_id=wp.project_id,
        reason=verdict.reason,
        accuracy=round(verdict.accuracy, 3),
        p_useless=round(verdict.p_useless, 4),
        floor=round(verdict.floor, 3),
    )
    return verdict


def _finish_exam(session: Session, project: Project, wp: Standing, now: datetime) -> Notice:
    score = wp.exam_correct / wp.exam_total if wp.exam_total else 0.0
    params = {"score": pct(score), "needed": pct(project.exam_pass), "correct": wp.exam_correct, "total": wp.exam_total}
    attempts = col(WorkerProject.exam_attempts) + 1
    if score >= project.exam_pass:
        _set(session, wp, now, stage=Stage.WORK.value, exam_attempts=attempts)
        log.info("quality.exam_passed", worker_id=wp.worker_id, project_id=wp.project_id, score=round(score, 3))
        return Notice("quality.exam.passed", params)
    until = now + timedelta(minutes=max(0, project.exam_cooldown_minutes))
    _set(session, wp, now, stage=Stage.FAILED.value, cooldown_until=until, exam_attempts=attempts)
    left = exam_attempts_left(project, wp)
    log.info("quality.exam_failed", worker_id=wp.worker_id, project_id=wp.project_id, score=round(score, 3), attempts_left=left)
    if left == 0:
        return Notice("quality.exam.failed_final", {**params, "attempts": wp.exam_attempts}, stops=True)
    return Notice("quality.exam.failed", {**params, "minutes": max(0, project.exam_cooldown_minutes)}, stops=True)


def _apply_rules(session: Session, project: Project, wp: Standing, *, fast: bool, golden: bool, now: datetime, tz: str) -> Notice | None:
    if wp.stage == Stage.WORK and (golden or wp.answers_total % JUDGE_EVERY == 0):
        verdict = judge_worker(session, project, wp)
        if verdict is not None and verdict.reason is not None:
            block(session, wp, BlockReason(verdict.reason), now, verdict.accuracy)
            return blocked_notice(session, project, wp, verdict)
    if fast and project.fast_strikes_block > 0 and wp.fast_strikes >= project.fast_strikes_block:
        block(session, wp, BlockReason.FAST, now)
        return blocked_notice(session, project, wp)
    if fast and project.fast_strikes_warn > 0 and wp.fast_strikes == project.fast_strikes_warn:
        return Notice(
            "quality.fast.warning",
            {"seconds": f"{project.min_seconds:g}", "left": max(0, project.fast_strikes_block - wp.fast_strikes)},
        )
    if wp.stage == Stage.WORK and project.daily_cap > 0:
        if answers_today(session, wp.worker_id, wp.project_id, now, tz) >= project.daily_cap:
            return Notice("quality.daily_cap", {"cap": project.daily_cap}, stops=True)
    return None


def after_skip(session: Session, project_id: int, worker_id: int, *, now: datetime | None = None) -> Notice | None:
    """Count a skip; too many in a row pause the worker in the project for the cool-down."""
    now = now or utcnow()
    project = session.get(Project, project_id)
    if project is None:
        return None
    wp = standing(session, worker_id, project, now)
    _set(session, wp, now, skips_in_row=col(WorkerProject.skips_in_row) + 1)
    if project.max_skips_in_row <= 0 or wp.skips_in_row < project.max_skips_in_row:
        return None
    minutes = max(1, project.exam_cooldown_minutes)
    _set(session, wp, now, skips_in_row=0, cooldown_until=now + timedelta(minutes=minutes))
    log.info("quality.skip_pause", worker_id=worker_id, project_id=project_id, minutes=minutes)
    return Notice("quality.skips.pause", {"minutes": minutes}, stops=True)


# --- dynamic overlap ----------------------------------------------------------------------------


def confidence_rows(task_id: Any, *lead: Any) -> Any:
    """What settling a task reads: its accepted answers (value, mask) with their workers' golden
    record (correct, total). ``lead``: columns before those, when it is part of a larger
    statement (the answer's recording on PostgreSQL, ``bot.work.answers``)."""
    return (
        select(*lead, col(Answer.value), col(Answer.mask_rle), col(WorkerProject.golden_correct), col(WorkerProject.golden_total))
        .outerjoin(
            WorkerProject,
            (col(WorkerProject.worker_id) == col(Answer.worker_id)) & (col(WorkerProject.project_id) == col(Answer.project_id)),
        )
        .where(col(Answer.task_id) == task_id, col(Answer.status) == AnswerStatus.ACCEPTED.value)
    )


_CONFIDENCE_ROWS = hot(confidence_rows(bindparam("task_id")))
ConfidenceRow = tuple[str, str | None, int | None, int | None]  # value, mask_rle, golden correct, golden total


def task_confidence(
    session: Session, project: Project, task_id: int, rows: list[ConfidenceRow] | None = None
) -> tuple[str | None, float, int]:
    """(label, posterior, accepted answers) of a task from its answers so far (``rows``: those
    answers, read already by the caller, as :func:`confidence_rows` gives them)."""
    if rows is None:
        rows = execute(session, _CONFIDENCE_ROWS, {"task_id": task_id}).all()
    if not rows:
        return None, 0.0, 0
    labels = answer_values(project)
    n = max(2, len(labels))
    probs = posterior(((str(r[0]), vote_weight(weight_accuracy(int(r[2] or 0), int(r[3] or 0)), n)) for r in rows), labels)
    label, confidence = best(probs, labels)
    if project.type == ProjectType.MAGIC_PIN and label == PIN_MASK:
        confidence *= _mask_agreement([r[1] for r in rows if r[0] == PIN_MASK and r[1]])
    return label, confidence, len(rows)


def _mask_agreement(masks: list[str]) -> float:
    """Mean IoU of the kept masks with their per-pixel majority: 1.0 when they all coincide."""
    import numpy as np

    from bot.autoseg import rle

    decoded = []
    for text in masks:
        try:
            decoded.append(rle.decode(json.loads(text)))
        except (ValueError, KeyError, TypeError):
            continue
    if not decoded:
        return 0.0
    shape = decoded[0].shape
    decoded = [m for m in decoded if m.shape == shape]
    vote = np.sum(decoded, axis=0) * 2 >= len(decoded)
    return float(np.mean([rle.mask_iou(m, vote) for m in decoded]))


def _settle_statement(done: bool, reopen: bool, counted: bool) -> Any:
    """Parameters are ``s_*``: the UPDATE can ride inside another statement on a table with
    columns of the same names, which SQLAlchemy reserves (:class:`bot.db.hot.Carried`)."""
    values: dict[str, Any] = {"result": bindparam("s_result"), "confidence": bindparam("s_confidence")}
    if counted:
        values["answers_count"] = col(Task.answers_count) + 1
    if done:  # a broken task stays broken
        values["status"] = case((col(Task.status) == TaskStatus.OPEN.value, TaskStatus.DONE.value), else_=col(Task.status))
    elif reopen:
        values["status"] = case((col(Task.status) == TaskStatus.DONE.value, TaskStatus.OPEN.value), else_=col(Task.status))
    return update(Task).where(col(Task.id) == bindparam("s_task_id")).values(**values)


_SETTLE = {
    (done, reopen, counted): hot(_settle_statement(done, reopen, counted))
    for done in (False, True)
    for reopen in (False, True)
    for counted in (False, True)
}
_SETTLE_CTE = {shape: (statement.cte("settle"),) for shape, statement in _SETTLE.items()}  # to ride on a later statement


def settle_task(
    session: Session,
    project: Project,
    task_id: int,
    *,
    reopen: bool = False,
    counted: bool = False,
    carry: list[Carried] | None = None,
    rows: list[ConfidenceRow] | None = None,
) -> bool:
    """Recompute the online result of a normal task and close it when it has enough; True if done.

    Fixed overlap (no ``confidence_target``): done at ``overlap`` answers. Dynamic: done at
    ``min_overlap`` answers with the posterior at the target, or at ``overlap``. ``reopen``
    (after answers were rejected) puts a done task that no longer qualifies back in the pool.
    ``counted``: a new answer was just recorded, so the task's answer count goes up by one in
    the same statement. ``carry``: the task's UPDATE is appended there, to be sent with a later
    statement of the transaction (:func:`bot.db.hot.execute`), instead of now. ``rows``: the
    task's answers, read already (see :func:`task_confidence`).
    """
    label, confidence, count = task_confidence(session, project, task_id, rows)
    target = project.confidence_target
    if target is None:
        done = count >= project.overlap
    else:
        done = count >= project.overlap or (count >= max(1, project.min_overlap) and confidence >= target)
    shape = (done, reopen, counted)
    params = {"s_task_id": task_id, "s_result": label, "s_confidence": confidence if count else None}
    if carry is not None:
        carry.append(Carried(_SETTLE_CTE[shape], _SETTLE[shape], params))
    else:
        execute(session, _SETTLE[shape], params)
    return done


# --- the worker's view --------------------------------------------------------------------------


@dataclass(slots=True)
class ProjectStats:
    project_id: int
    project: str
    stage: str
    answers: int
    golden_total: int
    accuracy: float | None  # smoothed golden accuracy; None before the first golden answer
    rank: int | None  # 1 = best accuracy in the project among workers with golden answers
    ranked: int  # how many workers are ranked


def worker_stats(session: Session, worker_id: int) -> list[ProjectStats]:
    """Per project the worker has worked in: stage, answers, accuracy and rank by accuracy.

    The rank compares smoothed accuracies exactly in integers, (2c + 1) / (2t + 2), so equal
    accuracies share a rank on both database engines.
    """
    rows = session.execute(
        select(WorkerProject, col(Project.name))
        .join(Project, col(Project.id) == col(WorkerProject.project_id))
        .where(col(WorkerProject.worker_id) == worker_id)
        .order_by(col(WorkerProject.project_id))
    ).all()
    out = []
    for wp, name in rows:
        accuracy = rank = None
        ranked = 0
        if wp.golden_total > 0:
            other = _WP.alias("other")
            mine_num, mine_den = 2 * wp.golden_correct + 1, 2 * wp.golden_total + 2
            better, ranked = session.execute(
                select(
                    func.coalesce(
                        func.sum(
                            case(((2 * other.c.golden_correct + 1) * mine_den > mine_num * (2 * other.c.golden_total + 2), 1), else_=0)
                        ),
                        0,
                    ),
                    func.count(),
                ).where(other.c.project_id == wp.project_id, other.c.golden_total > 0)
            ).one()
            accuracy, rank, ranked = accuracy_of(wp), int(better) + 1, int(ranked)
        out.append(ProjectStats(wp.project_id, str(name), wp.stage, wp.answers_total, wp.golden_total, accuracy, rank, ranked))
    return out
