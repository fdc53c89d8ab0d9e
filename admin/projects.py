"""``crowdpin admin project ...``: create, list, show, change, pause, resume and close projects."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from admin.common import fail, open_db, resolve_project
from admin.progress import err_console, out_console
from admin.terminal import term_safe
from bot.tasks import projects, stats
from bot.tasks.models import ProjectStatus, ProjectType

app = typer.Typer(help="Create and manage labeling projects.", no_args_is_help=True)

_TYPES = ", ".join(t.value for t in ProjectType)
# Settings an operator may change (bot.tasks.projects checks them); the rest (id, created_at,
# status, labels) have their own commands.
SETTABLE = projects.SETTINGS


def _opt(help_text: str) -> Any:
    return typer.Option(None, help=help_text, show_default=False)


def _parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` for any project setting without a dedicated option (checked by the domain)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            fail(f"--set needs KEY=VALUE, got {pair!r}")
        out[key] = None if value.strip().lower() in ("none", "null", "") else value.strip()
    return out


def _split_labels(labels: str | None) -> list[str]:
    return [part.strip() for part in (labels or "").split(",") if part.strip()]


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Unique project name."),
    type: str = typer.Option(ProjectType.CLASSIFY.value, "--type", help=f"Project type: {_TYPES}."),
    labels: str = typer.Option("", "--labels", help="Comma-separated labels (classify: at least two)."),
    price: int = typer.Option(10, "--price", help="KRW paid per accepted answer."),
    overlap: int = typer.Option(3, "--overlap", help="Answers collected per task (maximum)."),
    question_ko: str = typer.Option("", "--question-ko", help="Question shown with each task, in Korean."),
    question_en: str = typer.Option("", "--question-en", help="Question in English."),
    instructions_ko: str = typer.Option("", "--instructions-ko", help="Instructions in Korean."),
    instructions_en: str = typer.Option("", "--instructions-en", help="Instructions in English."),
    lease_seconds: int = typer.Option(600, "--lease-seconds", "--lease", help="Seconds a worker holds a task."),
    golden_share: float = typer.Option(0.0, "--golden-share", help="Share of control (golden) tasks shown, 0..1."),
    min_overlap: int = _opt("With a confidence target: answers always collected."),
    confidence_target: float = _opt("Stop collecting answers once this confidence is reached (0..1)."),
    training_required: bool = typer.Option(
        None, "--training-required/--no-training-required", help="Workers practise first.", show_default=False
    ),
    exam_size: int = _opt("Golden tasks in the entry exam (0: no exam)."),
    exam_pass: float = _opt("Share of the exam to get right, 0..1."),
    hold_days: int = _opt("Days earnings stay pending before they can be withdrawn."),
    media_mode: str = _opt("copy (into MEDIA_DIR, default) or reference (images stay where they are)."),
    set_: list[str] = typer.Option([], "--set", help="Any other project setting as KEY=VALUE (repeatable)."),
) -> None:
    """Create a project; its id is printed alone on the last line."""
    fields: dict[str, Any] = {
        "price": price,
        "overlap": overlap,
        "question_ko": question_ko,
        "question_en": question_en,
        "instructions_ko": instructions_ko,
        "instructions_en": instructions_en,
        "lease_seconds": lease_seconds,
        "golden_share": golden_share,
    }
    optional = {
        "min_overlap": min_overlap,
        "confidence_target": confidence_target,
        "training_required": training_required,
        "exam_size": exam_size,
        "exam_pass": exam_pass,
        "hold_days": hold_days,
        "media_mode": media_mode,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    fields.update(_parse_set(set_))
    with open_db() as db:
        try:
            with db.session() as session:
                project_id = projects.create(session, name=name, type=type, labels=_split_labels(labels), **fields).id
        except projects.ProjectError as exc:
            fail(str(exc))
    typer.echo(f"created {type} project {name.strip()!r}")
    typer.echo(str(project_id))


@app.command("set")
def set_settings(
    project: str = typer.Argument(..., help="Project id or name."),
    price: int = _opt("KRW per accepted answer."),
    overlap: int = _opt("Answers per task."),
    question_ko: str = _opt("Question in Korean."),
    question_en: str = _opt("Question in English."),
    instructions_ko: str = _opt("Instructions in Korean."),
    instructions_en: str = _opt("Instructions in English."),
    lease_seconds: int = typer.Option(None, "--lease-seconds", "--lease", help="Seconds a worker holds a task.", show_default=False),
    golden_share: float = _opt("Share of control tasks, 0..1."),
    labels: str = _opt("New comma-separated labels (only before the first answer)."),
    set_: list[str] = typer.Option([], "--set", help="Any project setting as KEY=VALUE (repeatable)."),
) -> None:
    """Change settings of an existing project; unspecified settings stay as they are."""
    given = {
        "price": price,
        "overlap": overlap,
        "question_ko": question_ko,
        "question_en": question_en,
        "instructions_ko": instructions_ko,
        "instructions_en": instructions_en,
        "lease_seconds": lease_seconds,
        "golden_share": golden_share,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    changes.update(_parse_set(set_))
    if not changes and labels is None:
        fail("nothing to change (give at least one option)")
    with open_db() as db:
        target = resolve_project(db, project)
        try:
            with db.session() as session:
                assert target.id is not None
                projects.update(session, target.id, labels=None if labels is None else _split_labels(labels), **changes)
        except projects.ProjectError as exc:
            fail(str(exc))
    typer.echo(f"project {target.id} updated: {', '.join(sorted(changes) + (['labels'] if labels is not None else []))}")


def _status_command(status: ProjectStatus, verb: str) -> Any:
    def command(project: str = typer.Argument(..., help="Project id or name.")) -> None:
        with open_db() as db:
            target = resolve_project(db, project)
            db.call(projects.set_status, target.id, status)
        typer.echo(f"project {target.id} {verb}")

    command.__doc__ = f"Mark a project {status.value}."
    return command


app.command("pause", help="Stop handing out the project's tasks (answers in progress still count).")(
    _status_command(ProjectStatus.PAUSED, "paused")
)
app.command("resume", help="Hand out the project's tasks again.")(_status_command(ProjectStatus.ACTIVE, "resumed"))
app.command("close", help="Close the project for good: no more tasks are handed out.")(_status_command(ProjectStatus.CLOSED, "closed"))


@app.command("finish")
def finish(project: str = typer.Argument(..., help="Project id or name.")) -> None:
    """Close the batch now: no more tasks handed out, live leases end, every task with answers
    is finished with what it has and aggregated as the export will (tasks nobody answered stay
    without a result)."""
    from bot.tasks import stuck

    with open_db() as db:
        target = resolve_project(db, project)
        with err_console.status("finishing and aggregating..."):
            with db.session() as session:
                assert target.id is not None
                fresh = projects.find(session, target.id)
                done = stuck.finish_project(session, fresh)
    mean = "-" if done.mean_confidence is None else f"{done.mean_confidence:.3f}"
    typer.echo(
        f"project {done.project_id} finished: {done.tasks_finished} open tasks finished with the answers they have, "
        f"{done.leases_ended} leases ended, {done.tasks_unanswered} tasks without answers; "
        f"{done.labelled} tasks labelled (mean confidence {mean}); export with: crowdpin admin export {done.project_id}"
    )


@app.command("list")
def list_projects() -> None:
    """All projects with their progress."""
    with open_db() as db:
        with db.read_session() as session:
            rows = stats.project_progress(session)
    table = Table(title="Projects")
    for column in ("id", "name", "type", "status", "done / total", "answers", "price", "overlap"):
        table.add_column(column, justify="right" if column in ("id", "answers", "price", "overlap") else "left")
    for p in rows:
        table.add_row(
            str(p.id),
            term_safe(p.name),
            p.type,
            p.status,
            f"{p.tasks_done} / {p.tasks_total}",
            str(p.answers),
            f"₩{p.price}",
            str(p.overlap),
        )
    out_console.print(table)


@app.command("show")
def show(project: str = typer.Argument(..., help="Project id or name.")) -> None:
    """Every setting of a project, and its progress."""
    with open_db() as db:
        target = resolve_project(db, project)
        with db.read_session() as session:
            (progress,) = stats.project_progress(session, target.id)
    table = Table(title=f"Project {target.id}: {term_safe(target.name)}", show_header=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_row("type", target.type)
    table.add_row("status", target.status)
    table.add_row("labels", term_safe(", ".join(projects.labels(target))) or "-")
    for key in sorted(SETTABLE):
        table.add_row(key, "" if getattr(target, key) is None else term_safe(getattr(target, key)))
    table.add_row("created_at", target.created_at.isoformat())
    table.add_row(
        "tasks", f"{progress.tasks_done} done / {progress.tasks_total} ({progress.tasks_broken} broken, {progress.control_tasks} control)"
    )
    table.add_row("answers", f"{progress.answers} from {progress.workers} workers, ₩{progress.earned:,} earned")
    out_console.print(table)
