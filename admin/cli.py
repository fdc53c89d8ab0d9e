"""``crowdpin admin ...``: the operators' Typer app. Sub-commands live in sibling modules."""

from __future__ import annotations

import typer

app = typer.Typer(help="Operate crowdpin: projects, datasets, exports, payouts, broadcasts.", no_args_is_help=True)
