"""``crowdpin admin stats [PROJECT] [--html PATH]``: progress per project and a worker leaderboard."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlmodel import Session

from admin import report_html
from admin.common import open_db, pseudonym_secret, resolve_project
from admin.progress import err_console, out_console
from admin.terminal import term_safe
from bot.config import get_settings
from bot.tasks import stats, stuck
from bot.tasks.export import Pseudonyms
from bot.tasks.models import Project
from bot.tasks.stuck import StuckTask


def stats_command(
    project: str = typer.Argument(None, help="Project id or name (default: all projects).", show_default=False),
    html: Path = typer.Option(None, "--html", help="Also write a single-file HTML report with charts.", show_default=False),
    top: int = typer.Option(10, "--top", help="Workers in the leaderboard."),
    reveal_workers: bool = typer.Option(False, "--reveal-workers", help="Show worker names in the HTML report (default: pseudonyms)."),
) -> None:
    """Done / total, answers per hour, median time per task and money earned; then the leaderboard."""
    settings = get_settings()
    with open_db(settings) as db:
        project_id = resolve_project(db, project).id if project else None
        with err_console.status("counting..."):
            with db.read_session() as session:
                report = stats.report(session, project_id, leaders=max(top, 1))
                stuck_rows = _stuck(session, [p.id for p in report.projects])
                if html is not None:
                    stats.add_reliability(session, report, settings.quality.aggregation)
        secret = pseudonym_secret(db, settings) if html is not None and not reveal_workers else None
    table = Table(title="Progress")
    for column in ("id", "project", "status", "done / total", "answers", "last hour", "per hour (24h)", "median s", "earned"):
        table.add_column(column)
    for p in report.projects:
        table.add_row(
            str(p.id),
            term_safe(p.name),
            p.status,
            f"{p.tasks_done:,} / {p.tasks_total:,} ({p.percent_done:.0f}%)",
            f"{p.answers:,}",
            f"{p.answers_last_hour:,}",
            f"{p.answers_per_hour_24h:.1f}",
            "-" if p.median_seconds is None else f"{p.median_seconds:.1f}",
            f"₩{p.earned:,}",
        )
    out_console.print(table)
    if stuck_rows:
        out_console.print(_stuck_table(stuck_rows))
    board = Table(title="Leaderboard")
    for column in ("#", "worker", "answers", "earned", "golden accuracy", "mean s"):
        board.add_column(column)
    for i, row in enumerate(report.leaders[:top], start=1):
        accuracy = "-" if row.golden_accuracy is None else f"{100 * row.golden_accuracy:.0f}% ({row.golden_total})"
        name = term_safe(row.name + (f" @{row.username}" if row.username else ""))
        board.add_row(str(i), name, f"{row.answers:,}", f"₩{row.earned:,}", accuracy, f"{row.mean_seconds:.1f}")
    out_console.print(board)
    if html is not None:
        pseudonym = None if secret is None else Pseudonyms(secret)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(report_html.render(report, pseudonym=pseudonym), encoding="utf-8")
        typer.echo(f"report written to {html}")


def _stuck(session: Session, project_ids: list[int]) -> list[tuple[int, StuckTask]]:
    """Open tasks that cannot reach their overlap with the workers still eligible (read only)."""
    out = []
    for project_id in project_ids:
        project = session.get(Project, project_id)
        if project is not None:
            out += [(project_id, row) for row in stuck.sweep(session, project, finish=False).stuck]
    return out


STUCK_SHOWN = 30
_REASONS = {"no_workers": "no worker left", "few_workers": "too few workers"}


def _stuck_table(rows: list[tuple[int, StuckTask]]) -> Table:
    table = Table(
        title=f"Stuck tasks ({len(rows):,})",
        caption="eligible: workers seen recently who may still answer it; close with: crowdpin admin project finish PROJECT",
    )
    for column in ("project", "task", "answers", "missing", "eligible", "confidence", "reason"):
        table.add_column(column)
    for project_id, row in rows[:STUCK_SHOWN]:
        conf = "-" if row.confidence is None else f"{row.confidence:.2f}"
        table.add_row(
            str(project_id),
            row.external_id,
            str(row.answers),
            str(row.needed),
            str(row.eligible),
            conf,
            _REASONS.get(row.reason, row.reason),
        )
    if len(rows) > STUCK_SHOWN:
        table.caption = f"... and {len(rows) - STUCK_SHOWN:,} more; {table.caption}"
    return table
