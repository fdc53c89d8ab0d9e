"""``crowdpin admin reject-worker WORKER``: reject a cheater's answers and take their pay back;
``crowdpin admin unblock-worker WORKER --project P``: let a blocked worker back into a project.

Answers turn from accepted to rejected (never deleted); each paid answer gets a reversal in the
ledger (``reversal:<answer id>``: pending pay is cancelled, available pay taken back as far as the
balance allows, the rest reported as shortfall). Tasks that lose answers go back to the pool when
they no longer meet their overlap or confidence. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select
from sqlmodel import col

from admin.common import fail, open_db, resolve_project
from admin.progress import bar, err_console, out_console
from admin.terminal import term_safe
from bot.db import Database
from bot.tasks import quality
from bot.work import rejection
from bot.workers.models import Worker


def resolve_worker(db: Database, ref: str) -> Worker:
    """``ref`` is a worker id, ``tg:<telegram user id>`` or ``@username``."""
    with db.read_session() as session:
        worker = None
        text = ref.strip()
        if text.lower().startswith("tg:") and text[3:].strip().isdigit():
            worker = session.execute(select(Worker).where(col(Worker.tg_id) == int(text[3:]))).scalars().first()
        elif text.startswith("@") and len(text) > 1:
            worker = session.execute(select(Worker).where(col(Worker.username) == text[1:])).scalars().first()
        elif text.isdigit():
            worker = session.get(Worker, int(text))
        else:
            fail(f"cannot read worker {ref!r}: use a worker id, tg:<telegram id> or @username")
        if worker is None:
            fail(f"no worker {ref!r}")
        session.expunge(worker)
        return worker


def reject_worker_command(
    worker: str = typer.Argument(..., help="Worker id, tg:<telegram user id> or @username."),
    project: str = typer.Option(None, "--project", "-p", help="Only this project (id or name); default: all.", show_default=False),
    reason: str = typer.Option("", "--reason", help="Why; kept in the ledger memo and the logs."),
    block: bool = typer.Option(True, "--block/--no-block", help="Also close the project(s) to the worker."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be rejected."),
) -> None:
    """Reject all accepted answers of a worker and reverse their pay (before payout)."""
    with open_db() as db:
        found = resolve_worker(db, worker)
        assert found.id is not None
        project_id = resolve_project(db, project).id if project else None
        with db.read_session() as session:
            count, amount = rejection.pending_rejection(session, found.id, project_id)
        scope = f"project {project}" if project else "all projects"
        err_console.print(
            f"worker {found.id} ({term_safe(found.name)}): {count:,} accepted answers in {term_safe(scope)}, paid ₩{amount:,}"
        )
        if dry_run:
            return
        if count == 0 and not block:
            err_console.print("nothing to reject")
            return
        if not yes and not typer.confirm(f"Reject {count:,} answers and reverse ₩{amount:,}?", default=False):
            raise typer.Exit(1)
        with bar("rejecting answers", total=count) as update:
            report = db.call(
                rejection.reject_worker,
                found.id,
                project_id=project_id,
                reason=reason,
                block_worker=block,
                progress=update,
            )
    table = Table(title=f"Rejected: worker {found.id}")
    for column in ("answers", "reversed", "shortfall", "tasks reopened", "projects"):
        table.add_column(column)
    table.add_row(
        f"{report.answers:,}",
        f"₩{report.reversed:,}",
        f"₩{report.shortfall:,}",
        f"{report.tasks_reopened:,}",
        ", ".join(str(p) for p in report.projects) or "-",
    )
    out_console.print(table)


def unblock_worker_command(
    worker: str = typer.Argument(..., help="Worker id, tg:<telegram user id> or @username."),
    project: str = typer.Option(..., "--project", "-p", help="The project (id or name) the worker is blocked in."),
) -> None:
    """Let a worker blocked by a quality rule (or by reject-worker) back to work in a project.

    Strike counters start again from zero; the golden-answer history stays, so the accuracy rule
    still sees the worker's record. Answers rejected earlier stay rejected.
    """
    with open_db() as db:
        found = resolve_worker(db, worker)
        target = resolve_project(db, project)
        changed = db.call(quality.unblock, found.id, target.id)
    if not changed:
        fail(f"worker {found.id} is not blocked in project {target.name!r}")
    out_console.print(f"worker {found.id} ({term_safe(found.name)}) may work in project {term_safe(repr(target.name))} again")
