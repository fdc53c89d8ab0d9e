"""``crowdpin admin export PROJECT --what answers|results --format csv|jsonl|coco --out PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from admin.common import fail, open_db, pseudonym_secret, resolve_project
from admin.progress import bar
from bot.config import get_settings
from bot.tasks import export as exporting
from bot.tasks.models import ProjectType


def export_command(
    project: str = typer.Argument(..., help="Project id or name."),
    what: exporting.What = typer.Option(
        None,
        "--what",
        help="answers: one row per answer; results: one row per task (default: results for yolo, label-studio and confirm-box coco, else answers).",
        show_default=False,
    ),
    fmt: exporting.Format = typer.Option(
        exporting.Format.CSV,
        "--format",
        help="csv, jsonl, coco (masks, or verified boxes), yolo (a folder; confirm-box) or label-studio (verdicts beside the predictions).",
    ),
    out: Path = typer.Option(..., "--out", help="File to write (replaced atomically when complete)."),
    reveal_workers: bool = typer.Option(False, "--reveal-workers", help="Add real worker ids and names (default: pseudonyms only)."),
    method: str = typer.Option(
        None,
        "--method",
        help="Results: auto, majority_vote, weighted_vote, dawid_skene or crowdkit:<Class> (default: AGGREGATION, auto).",
        show_default=False,
    ),
    include_rejected: bool = typer.Option(
        False, "--include-rejected", help="Verified sets: also the rejected and unverified predictions, flagged with the crowd's verdict."
    ),
) -> None:
    """Stream a project's answers or aggregated results to a file; memory stays flat."""
    settings = get_settings()
    with open_db(settings) as db:
        target = resolve_project(db, project)
        assert target.id is not None
        if what is None:
            boxes = fmt == exporting.Format.COCO and target.type == ProjectType.CONFIRM_BOX
            verified_set = fmt in (exporting.Format.YOLO, exporting.Format.LABEL_STUDIO) or boxes
            what = exporting.What.RESULTS if verified_set else exporting.What.ANSWERS
        try:
            with bar(f"exporting {what.value}") as update:
                summary = exporting.export(
                    db,
                    target.id,
                    what=what,
                    fmt=fmt,
                    out=out,
                    secret=pseudonym_secret(db, settings),
                    reveal_workers=reveal_workers,
                    method=method or settings.quality.aggregation,
                    progress=update,
                    include_rejected=include_rejected,
                )
        except exporting.ExportError as exc:
            fail(str(exc))
    rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
    typer.echo(f"wrote {summary.rows} {what.value} row(s) to {summary.path} in {summary.seconds:.1f}s ({rate:,.0f} rows/s)")
