"""The ``crowdpin`` command: run the bot, the sandbox demo, the emulator, migrations, admin."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from bot.config import get_settings
from bot.logs import setup_logging

cli = typer.Typer(
    help="crowdpin: data labeling as bite-size tasks in a Telegram chat.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


ADMIN_HELP = "Operate crowdpin: projects, datasets, exports, payouts, broadcasts."


def _attach_admin(argv: list[str]) -> None:
    """The operators' commands import the whole domain (SQLAlchemy, numpy...: most of a second),
    so they are loaded only when the command line is ``crowdpin admin ...``; for anything else a
    stand-in with the same name and help keeps ``crowdpin --help`` complete and fast."""
    if argv[:1] == ["admin"]:
        from admin.cli import app as admin_app

        cli.add_typer(admin_app, name="admin")
        return
    placeholder = typer.Typer(help=ADMIN_HELP, no_args_is_help=True)

    @placeholder.command(hidden=True)
    def _unused() -> None:  # pragma: no cover - only listed, never run: argv was not "admin"
        """never shown"""

    cli.add_typer(placeholder, name="admin")


@cli.command()
def run(
    webhook: bool = typer.Option(False, "--webhook", help="Serve a webhook (for replicas) instead of long polling."),
) -> None:
    """Run the bot with the settings from the environment (long polling by default)."""
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    if webhook:
        from bot.webhook import run_webhook

        run_webhook(settings)
        return
    if not settings.telegram.bot_token:
        typer.echo("BOT_TOKEN is not set: starting the local sandbox instead (crowdpin demo).", err=True)
        from bot.demo import run_demo

        setup_logging("WARNING")
        raise SystemExit(asyncio.run(run_demo(workers=3, tasks=12, overlap=3)))
    from bot.app import run_polling

    asyncio.run(run_polling(settings))


@cli.command()
def demo(
    workers: int = typer.Option(3, help="How many simulated workers label the sample project."),
    tasks: int | None = typer.Option(None, help="Images in the classify sample project (default 12; with --web 3)."),
    overlap: int = typer.Option(3, help="Answers collected per image."),
    quiet: bool = typer.Option(False, help="Print only the summary."),
    mask_tasks: int | None = typer.Option(
        None, "--mask-tasks", help="Images in each of the confirm-mask and Magic Pin projects (default 6; with --web 3)."
    ),
    web: bool = typer.Option(False, "--web", help="Play the worker yourself in a Telegram-like chat in your browser (runs until Ctrl-C)."),
    host: str = typer.Option("127.0.0.1", "--host", help="--web: interface of the chat page."),
    port: int = typer.Option(8088, "--port", help="--web: port of the chat page (0: any free port)."),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="--web: keep the sandbox's database and images here (default: a new temporary folder)."
    ),
    lang: str = typer.Option("ko", "--lang", help="--web: the page's first language (ko or en; the page has a toggle)."),
) -> None:
    """No token needed: start the emulator, the sample projects (classify, confirm-mask, Magic
    Pin, confirm-box), the bot and simulated workers; or, with --web, a chat page where you are
    the worker."""
    setup_logging("WARNING")
    if web:
        from bot.demo import run_web_demo

        try:
            code = asyncio.run(run_web_demo(host=host, port=port, workdir=workdir, tasks=tasks or 3, mask_tasks=mask_tasks or 3, lang=lang))
        except KeyboardInterrupt:
            typer.echo("\nsandbox stopped.")
            return
        raise SystemExit(code)
    from bot.demo import run_demo

    raise SystemExit(
        asyncio.run(run_demo(workers=workers, tasks=tasks or 12, overlap=overlap, verbose=not quiet, mask_tasks=mask_tasks or 6))
    )


@cli.command()
def emulator(
    port: int = typer.Option(8081, "--port", help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    flood_control: bool = typer.Option(False, "--flood-control", help="Answer 429 like Telegram when sending too fast."),
) -> None:
    """Start the local Telegram Bot API emulator (prints its base URL and a test token)."""
    from bot.emulator.runner import serve_forever

    serve_forever(host=host, port=port, flood_control=flood_control)


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply the migrations to DATABASE_URL (SQLite or PostgreSQL)."""
    from bot.db.engine import normalize_url
    from bot.db.migrate import upgrade

    url = get_settings().database.database_url
    upgrade(url, revision)
    typer.echo(f"database at {normalize_url(url).split('@')[-1]} is at {revision}")


def main() -> None:
    _attach_admin(sys.argv[1:])
    cli()


if __name__ == "__main__":
    main()
