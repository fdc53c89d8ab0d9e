"""``crowdpin admin bonus``: extra money for one worker, or for everyone who meets a rule.

    crowdpin admin bonus --campaign weekly-48 --amount 1000 --worker 17
    crowdpin admin bonus --campaign acc-p3-nov --amount 2000 --project 3 --min-accuracy 0.9 [--min-golden 10] [--dry-run]

Accuracy is smoothed, (0.5 + correct) / (1 + total) over the worker's golden tasks in the
project, so one lucky answer does not count as 100 %. The campaign names the cause: each
worker gets at most one bonus per campaign, so re-running (after a crash, or by mistake) never
pays twice.
"""

from __future__ import annotations

import typer
from rich.table import Table

from admin.common import fail as die
from admin.common import open_db, resolve_project
from admin.progress import bar, err_console, out_console
from admin.terminal import term_safe
from bot.wallet import bonus
from bot.wallet.bonus import BonusError
from bot.work import bonuses

BATCH = 200


def bonus_command(
    campaign: str = typer.Option(..., "--campaign", help="Name of the cause, e.g. weekly-2026-48 (one bonus per worker per campaign)."),
    amount: int = typer.Option(..., "--amount", help="KRW per worker."),
    worker: int | None = typer.Option(None, "--worker", help="One worker id."),
    project: str | None = typer.Option(None, "--project", help="Project id or name, for the accuracy rule."),
    min_accuracy: float | None = typer.Option(None, "--min-accuracy", help="Smoothed golden accuracy at least this (0-1)."),
    min_golden: int = typer.Option(0, "--min-golden", help="Only workers with at least this many golden answers."),
    note: str | None = typer.Option(None, "--note", help="Shown to the worker in /balance (default: the campaign)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show who would get it; pay nothing."),
) -> None:
    """Pay a bonus to one worker (--worker) or by rule (--project and --min-accuracy)."""
    try:
        campaign = bonus.check_campaign(campaign)
        amount = bonus.check_amount(amount)
    except BonusError as exc:
        die(str(exc))
    if (worker is None) == (project is None):
        die("give either --worker ID or --project P with --min-accuracy")
    with open_db() as db:
        if worker is not None:
            if min_accuracy is not None:
                die("--min-accuracy goes with --project, not --worker")
            if dry_run:
                out_console.print(f"would pay ₩{amount:,} to worker {worker} ({campaign})")
                return
            try:
                created = db.call(bonus.grant, worker, amount, campaign=campaign, memo=note)
            except BonusError as exc:
                die(str(exc))
            out_console.print(f"paid ₩{amount:,} to worker {worker}" if created else f"worker {worker} already got {campaign}; unchanged")
            return
        if min_accuracy is None:
            die("--project needs --min-accuracy (e.g. 0.9)")
        assert project is not None  # --worker or --project, checked above
        p = resolve_project(db, project)
        assert p.id is not None
        try:
            with db.read_session() as s:
                found = bonuses.by_accuracy(s, p.id, min_accuracy=min_accuracy, min_golden=min_golden)
        except BonusError as exc:
            die(str(exc))
        table = Table(title=f"{term_safe(campaign)}: accuracy ≥ {min_accuracy} in {term_safe(p.name)}")
        for column in ("worker", "name", "golden", "accuracy"):
            table.add_column(column)
        for c in found:
            table.add_row(str(c.worker_id), term_safe(c.name), f"{c.golden_correct}/{c.golden_total}", f"{c.accuracy:.3f}")
        err_console.print(table)
        if dry_run or not found:
            out_console.print(f"{'would pay' if dry_run else 'nobody qualifies;'} {len(found)} worker(s) × ₩{amount:,}")
            return
        paid = 0
        with bar("paying bonuses", total=len(found)) as update:
            for start in range(0, len(found), BATCH):
                chunk = found[start : start + BATCH]

                def pay(session, chunk=chunk):
                    return sum(bonus.grant(session, c.worker_id, amount, campaign=campaign, memo=note) for c in chunk)

                paid += db.call(pay)
                update(start + len(chunk), len(found))
        out_console.print(f"paid {paid} worker(s) ₩{amount:,} each; {len(found) - paid} already had {campaign}")
