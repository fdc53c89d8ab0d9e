"""``crowdpin admin ...``: the operators' Typer app. Sub-commands live in sibling modules.

Each area registers itself below with one line; keep this file to wiring only.
"""

from __future__ import annotations

import typer

from admin import bonus, broadcast, export, load, payouts, projects, stats
from admin import quality as quality_admin
from bot.config import get_settings
from bot.logs import setup_logging

app = typer.Typer(help="Operate crowdpin: projects, datasets, exports, payouts, broadcasts.", no_args_is_help=True)


@app.callback()
def _setup() -> None:
    """Logs go to stderr at WARNING unless LOG_LEVEL says otherwise, so stdout stays for results."""
    settings = get_settings()
    setup_logging(settings.log_level if settings.log_level_given else "WARNING", settings.log_json)


# --- registrations: one line per area -------------------------------------------------------
app.add_typer(projects.app, name="project")
app.command("load")(load.load_command)
app.command("export")(export.export_command)
app.command("stats")(stats.stats_command)
app.add_typer(broadcast.app, name="broadcast")
app.add_typer(payouts.app, name="payouts")
app.command("bonus")(bonus.bonus_command)
app.command("reject-worker")(quality_admin.reject_worker_command)
app.command("unblock-worker")(quality_admin.unblock_worker_command)
