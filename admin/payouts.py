"""``crowdpin admin payouts ...``: the operators' side of withdrawals.

    crowdpin admin payouts list [--status open|paid|failed|all]
    crowdpin admin payouts export --out FILE          # open requests as CSV for the bank transfer
    crowdpin admin payouts mark-paid ID...            # the transfer went out
    crowdpin admin payouts fail ID... --reason TEXT   # it bounced: the money returns to the worker
    crowdpin admin payouts check                      # requests and ledger agree (exit 1 if not)

``mark-paid`` and ``fail`` are idempotent (running them twice changes nothing the second time)
and all-or-nothing per run (an unknown id or one in the wrong state changes nothing). The bot
tells each worker in the chat once it sees the closed request.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from admin.common import fail as die
from admin.common import open_db
from admin.progress import bar, err_console, out_console
from admin.terminal import term_safe
from bot.wallet import payouts
from bot.wallet.payout_accounts import mask
from bot.wallet.payouts import PayoutError

app = typer.Typer(help="Withdrawal requests: list, export for the bank, mark paid or failed.", no_args_is_help=True)

STATUSES = ("open", "paid", "failed", "all")


def _won(amount: int) -> str:
    return f"₩{amount:,}"


@app.command("list")
def list_command(
    status: str = typer.Option("open", "--status", help="open, paid, failed or all."),
) -> None:
    """Requests with their worker, amount and (masked) account."""
    if status not in STATUSES:
        die(f"--status must be one of: {', '.join(STATUSES)}")
    with open_db() as db, db.read_session() as s:
        rows = payouts.list_requests(s, None if status == "all" else status)
    table = Table(title=f"withdrawals ({status})")
    for column in ("id", "worker", "name", "amount", "bank", "account", "status", "requested", "reason"):
        table.add_column(column, justify="right" if column in ("id", "worker", "amount") else "left")
    total = 0
    for w, name in rows:
        total += w.amount
        table.add_row(
            str(w.id),
            str(w.worker_id),
            term_safe(name),
            _won(w.amount),
            term_safe(w.bank),
            mask(w.account_number),
            w.status,
            w.created_at.strftime("%Y-%m-%d %H:%M"),
            term_safe(w.reason or ""),
        )
    out_console.print(table)
    out_console.print(f"{len(rows)} request(s), {_won(total)}")


@app.command("export")
def export_command(
    out: Path = typer.Option(..., "--out", help="CSV file to write (full account numbers: keep it safe)."),
) -> None:
    """Open requests as CSV for the bank transfer. Read-only: nothing changes in the database."""
    with open_db() as db:
        with db.read_session() as s:
            count, _ = payouts.count_open(s)
        with db.read_session() as s, bar("exporting", total=count) as update:
            done = 0

            def tick() -> None:
                nonlocal done
                done += 1
                update(done, max(count, done))

            written, total = payouts.write_csv(payouts.export_rows(s), out, on_row=tick)
    err_console.print(f"wrote {written} open request(s), {_won(total)}, to {out}")
    out_console.print(str(out))


def _ids(ids: list[int]) -> list[int]:
    bad = [i for i in ids if i <= 0]
    if bad:
        die(f"withdrawal ids are positive numbers, got: {', '.join(map(str, bad))}")
    return ids


@app.command("mark-paid")
def mark_paid_command(ids: list[int] = typer.Argument(..., help="Withdrawal ids (see: payouts list).")) -> None:
    """Record that the bank transfer went out; the worker is told in the chat."""
    with open_db() as db:
        try:
            result = db.call(payouts.mark_paid, _ids(ids))
        except PayoutError as exc:
            die(f"{exc}; nothing was changed")
    _report(result, "paid")


@app.command("fail")
def fail_command(
    ids: list[int] = typer.Argument(..., help="Withdrawal ids (see: payouts list)."),
    reason: str = typer.Option(..., "--reason", help="Why it failed; the worker is told this."),
) -> None:
    """The transfer failed: the money returns to the worker's available balance."""
    with open_db() as db:
        try:
            result = db.call(payouts.fail, _ids(ids), reason=reason)
        except PayoutError as exc:
            die(f"{exc}; nothing was changed")
    _report(result, "failed")


def _report(result: payouts.BatchResult, status: str) -> None:
    if result.changed:
        out_console.print(f"marked {status}: {' '.join(map(str, result.changed))} ({_won(result.amount)})")
    if result.unchanged:
        out_console.print(f"already {status}, unchanged: {' '.join(map(str, result.unchanged))}")


@app.command("check")
def check_command() -> None:
    """Check that every request's status matches the ledger and that the books balance."""
    with open_db() as db, db.read_session() as s:
        problems = payouts.consistency_problems(s)
        open_count, open_total = payouts.count_open(s)
    for problem in problems:
        err_console.print(f"[red]problem:[/] {term_safe(problem)}", highlight=False)
    if problems:
        raise typer.Exit(1)
    out_console.print(f"ok: {open_count} open request(s), {_won(open_total)}; ledger balances")
