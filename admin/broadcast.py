"""``crowdpin admin broadcast ...``: tell workers about new tasks, at Telegram's pace.

    crowdpin admin broadcast PROJECT --text TEXT [--photo FILE] [--to all|qualified|active-days:N] [--dry-run] [--detach]
    crowdpin admin broadcast status ID
    crowdpin admin broadcast cancel ID
    crowdpin admin broadcast resume ID
    crowdpin admin broadcast list

Without ``--detach`` this process sends the broadcast itself (BOT_TOKEN, TELEGRAM_API_BASE)
with a progress bar; with it, the running bot's background worker sends it. Either way the
delivery state is in the database, so an interrupted send is resumed by ``resume ID`` or,
once its lease has run out, by the running bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from admin.common import fail, open_db
from admin.progress import err_console, out_console
from admin.terminal import term_safe
from bot.broadcast import lease, service
from bot.broadcast.audience import SPEC_HELP
from bot.broadcast.delivery import Delivery, RunResult
from bot.broadcast.pacing import new_pacer
from bot.config import Settings, get_settings
from bot.db import Database

if TYPE_CHECKING:
    from aiogram import Bot


class _ProjectFirstGroup(TyperGroup):
    """``broadcast PROJECT --text ...`` is ``broadcast send PROJECT --text ...``: a first word
    that is not a sub-command (status, cancel...) or an option is the project."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: the Context of typer's own click
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["send", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ProjectFirstGroup,
    help="Announce new tasks to workers: PROJECT --text TEXT, or status / cancel / resume / list ID.",
    no_args_is_help=True,
)


def _lanes_ok(lanes: int) -> int:
    if not 1 <= lanes <= 8:
        fail("--lanes must be between 1 and 8")
    return lanes


@app.command("send")
def send(
    project: str = typer.Argument(..., help="Project id or exact name."),
    text: str = typer.Option(..., "--text", help="The message (the caption when there is a photo)."),
    photo: Path | None = typer.Option(None, "--photo", help="An image to send with the text (uploaded once)."),
    to: str = typer.Option("all", "--to", help=f"Who gets it: {SPEC_HELP}."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the recipients; send nothing."),
    detach: bool = typer.Option(False, "--detach", help="Leave the sending to the running bot."),
    lanes: int = typer.Option(1, "--lanes", help="Messages in flight at once (each adds one possible duplicate per crash)."),
) -> None:
    """Send TEXT (and PHOTO) with a "Start tasks" button to the workers of PROJECT."""
    settings = get_settings()
    _lanes_ok(lanes)
    with open_db(settings) as db:
        if dry_run:
            try:
                count = db.call(service.count_recipients, project, to)
                if photo is not None:
                    service.check_photo(photo)
                service.check_text(text, with_photo=photo is not None)
            except service.BroadcastError as exc:
                fail(str(exc), 2)
            out_console.print(f"dry run: {count} recipients ({to}) for project {project}; nothing sent", highlight=False)
            return
        if not detach and not settings.telegram.bot_token:
            fail("BOT_TOKEN is not set: set it, or use --detach to let the running bot send it", 2)
        runner = None if detach else lease.new_runner_id("cli")
        try:
            broadcast = db.call(service.create, project, text, audience=to, photo_path=photo, runner=runner)
        except service.BroadcastError as exc:
            fail(str(exc), 2)
        total = db.call(service.progress, broadcast.id).total
        if detach:
            out_console.print(
                f"broadcast #{broadcast.id} queued for {total} workers; the running bot sends it "
                f"(follow: crowdpin admin broadcast status {broadcast.id})",
                highlight=False,
            )
            return
        err_console.print(f"broadcast #{broadcast.id}: {total} recipients", highlight=False)
        assert runner is not None and broadcast.id is not None
        result = asyncio.run(_deliver(settings, db, broadcast.id, runner, lanes))
    _finish(result)


@app.command("resume")
def resume(
    broadcast_id: int = typer.Argument(..., help="Broadcast id."),
    lanes: int = typer.Option(1, "--lanes", help="Messages in flight at once."),
) -> None:
    """Continue an interrupted broadcast from where it stopped (the one in-flight message is resent)."""
    settings = get_settings()
    _lanes_ok(lanes)
    if not settings.telegram.bot_token:
        fail("BOT_TOKEN is not set", 2)
    with open_db(settings) as db:
        try:
            db.call(service.get, broadcast_id)
        except service.BroadcastError as exc:
            fail(str(exc), 2)
        result = asyncio.run(_deliver(settings, db, broadcast_id, lease.new_runner_id("cli"), lanes))
    _finish(result)


@app.command("status")
def status(
    broadcast_id: int = typer.Argument(..., help="Broadcast id."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """Sent, failed, blocked, remaining, rate and time left of a broadcast."""
    settings = get_settings()
    with open_db(settings) as db:
        try:
            p = db.call(service.progress, broadcast_id)
            b = db.call(service.get, broadcast_id)
            failures = db.call(service.failures, broadcast_id)
        except service.BroadcastError as exc:
            fail(str(exc), 2)
    eta = p.eta_seconds(settings.broadcast.broadcast_rate) if p.remaining and p.status != "cancelled" else 0.0
    data: dict[str, Any] = {
        "id": broadcast_id,
        "status": p.status,
        "project_id": p.project_id,
        "audience": p.audience,
        "total": p.total,
        "sent": p.sent,
        "failed": p.failed,
        "blocked": p.blocked,
        "pending": p.pending,
        "sending": p.sending,
        "remaining": p.remaining,
        "rate_per_s": round(p.rate, 2),
        "eta_s": round(eta, 1),
        "runner": b.runner,
        "started_at": p.started_at.isoformat() if p.started_at else None,
        "finished_at": p.finished_at.isoformat() if p.finished_at else None,
        "failures": [{"chat_id": c, "reason": r} for c, r in failures],
    }
    if as_json:
        out_console.print_json(json.dumps(data))
        return
    table = Table(title=f"broadcast #{broadcast_id}", show_header=False)
    for key in (
        "status",
        "project_id",
        "audience",
        "total",
        "sent",
        "failed",
        "blocked",
        "remaining",
        "rate_per_s",
        "eta_s",
        "runner",
        "started_at",
        "finished_at",
    ):
        table.add_row(key, "-" if data[key] is None else term_safe(data[key]))
    out_console.print(table)
    for item in data["failures"]:
        out_console.print(f"failed: chat {item['chat_id']}: {term_safe(item['reason'])}", highlight=False)


@app.command("cancel")
def cancel(broadcast_id: int = typer.Argument(..., help="Broadcast id.")) -> None:
    """Stop a broadcast; whoever is sending it stops before the next message."""
    with open_db() as db:
        try:
            db.call(service.cancel, broadcast_id)
            p = db.call(service.progress, broadcast_id)
        except service.BroadcastError as exc:
            fail(str(exc), 2)
    out_console.print(f"broadcast #{broadcast_id} cancelled: {p.sent} sent, {p.remaining} will not be sent", highlight=False)


@app.command("list")
def list_broadcasts(limit: int = typer.Option(10, "--limit", help="How many, newest first.")) -> None:
    """The latest broadcasts with their state."""
    with open_db() as db:
        rows = [(b, db.call(service.progress, b.id)) for b in db.call(service.recent, limit)]
    table = Table()
    for column in ("id", "status", "project", "audience", "sent/failed/blocked", "left", "created (UTC)"):
        table.add_column(column, no_wrap=column in ("id", "status", "sent/failed/blocked"))
    for b, p in rows:
        table.add_row(
            str(b.id),
            b.status,
            str(b.project_id),
            b.audience,
            f"{p.sent}/{p.failed}/{p.blocked}",
            str(p.remaining),
            b.created_at.strftime("%m-%d %H:%M"),
        )
    out_console.print(table)


# --------------------------------------------------------------------------- sending here


def make_bot(settings: Settings) -> Bot:
    """A bot for sending from this process (imported here: aiogram costs seconds to import,
    and status / cancel / dry runs do not talk to Telegram)."""
    from aiogram import Bot

    from bot.telegram.session import make_session

    return Bot(token=settings.telegram.bot_token or "", session=make_session(settings.telegram.telegram_api_base))


async def _deliver(settings: Settings, db: Database, broadcast_id: int, runner: str, lanes: int) -> RunResult:
    from bot.telegram.broadcast_transport import AiogramTransport

    bot = make_bot(settings)
    token = settings.telegram.bot_token or ""
    pacer = new_pacer(
        settings.broadcast.broadcast_rate,
        settings.broadcast.per_chat_interval,
        redis_url=settings.redis.redis_url,
        bot_id=token.split(":")[0],
    )
    delivery = Delivery(db, AiogramTransport(bot), pacer, runner=runner, lanes=lanes)
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            err_console.print("stopping after the message in flight (Ctrl-C again to abort)")
            delivery.stop()
        else:
            run.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_interrupt)
    run = asyncio.create_task(delivery.run(broadcast_id))
    try:
        with Progress(
            TextColumn("[bold]broadcast #{task.fields[bid]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]} · blocked {task.fields[blocked]} · {task.fields[rate]}/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        ) as bar:
            task = bar.add_task("send", total=None, bid=broadcast_id, sent=0, failed=0, blocked=0, rate="0.0")
            while True:
                p = await db.run(service.progress, broadcast_id)
                bar.update(task, total=p.total, completed=p.done, sent=p.sent, failed=p.failed, blocked=p.blocked, rate=f"{p.rate:.1f}")
                if run.done():
                    break
                await asyncio.wait({run}, timeout=0.5)
        return await run
    finally:
        await bot.session.close()
        close = getattr(pacer, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


def _finish(result: RunResult) -> None:
    summary = (
        f"broadcast #{result.broadcast_id}: {result.status} — sent {result.sent}, failed {result.failed}, "
        f"blocked {result.blocked} in this run"
    )
    if result.recovered:
        summary += f"; {result.recovered} in-flight message(s) of the interrupted run resent"
    if result.http_429:
        summary += f"; {result.http_429}× 429 from Telegram"
    out_console.print(summary, highlight=False)
    if result.status == "error":
        fail(f"{result.error}; nothing was marked failed — fix it and run: crowdpin admin broadcast resume {result.broadcast_id}")
    if result.status == "busy":
        fail(
            f"broadcast #{result.broadcast_id} is being sent by another runner (see: crowdpin admin broadcast status {result.broadcast_id})"
        )
    if result.status == "stopped":
        err_console.print(f"stopped: resume with `crowdpin admin broadcast resume {result.broadcast_id}` (a running bot also picks it up)")
