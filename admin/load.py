"""``crowdpin admin load PROJECT SOURCE``: images, manifests and COCO files into a project."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.table import Table

from admin.common import fail, open_db, resolve_project
from admin.progress import err_console, stages
from admin.terminal import term_safe
from bot.config import get_settings
from bot.tasks import datasets

SHOWN_PROBLEMS = 20


def _default_report(source: Path, project_id: int) -> Path:
    stem = re.sub(r"[^\w.-]+", "_", source.resolve().name) or "source"
    return Path.cwd() / f"load-report-p{project_id}-{stem}.csv"


def _print_problems(problems: list[datasets.Problem]) -> None:
    table = Table(title=f"{len(problems)} bad row(s)", title_justify="left")
    table.add_column("file")
    table.add_column("row", justify="right")
    table.add_column("problem")
    for p in problems[:SHOWN_PROBLEMS]:
        table.add_row(term_safe(p.file), "" if p.row is None else str(p.row), term_safe(p.problem))
    err_console.print(table)
    if len(problems) > SHOWN_PROBLEMS:
        err_console.print(f"... and {len(problems) - SHOWN_PROBLEMS} more (see the report file)")


def load_command(
    project: str = typer.Argument(..., help="Project id or name."),
    source: Path = typer.Argument(
        ..., help="A folder of images, a .csv/.jsonl manifest, a COCO .json, a YOLO folder (or its data.yaml), or Label Studio JSON."
    ),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Load the good rows and write a report of the bad ones."),
    report: Path = typer.Option(None, "--report", help="Where to write the bad-rows report (CSV).", show_default=False),
    copy: bool = typer.Option(
        None,
        "--copy/--reference",
        help="Copy images into MEDIA_DIR, or reference them where they are (default: the project's media_mode).",
        show_default=False,
    ),
    images_root: Path = typer.Option(None, "--images-root", help="COCO: folder that file_name paths start from.", show_default=False),
    threads: int = typer.Option(None, "--threads", help="Image checks in parallel (default: 2 per core).", show_default=False),
    allow_outside: list[Path] = typer.Option(
        [],
        "--allow-outside",
        help="Also accept files under this folder (repeatable). By default every image and mask must be inside the source's folder.",
        show_default=False,
    ),
    fmt: str = typer.Option(
        None, "--format", help="csv, jsonl, json, folder, coco, yolo or label-studio (default: detected).", show_default=False
    ),
    coco_gt: Path = typer.Option(
        None, "--coco-gt", help="COCO results list: the ground-truth file with its images and categories.", show_default=False
    ),
    min_score: float = typer.Option(None, "--min-score", help="Only predictions scored at least this (0..1).", show_default=False),
    max_score: float = typer.Option(None, "--max-score", help="Only predictions scored at most this (0..1).", show_default=False),
    sample: int = typer.Option(None, "--sample", help="A random sample of N predictions (a quick audit).", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample (the same seed picks the same sample)."),
    show_score: bool = typer.Option(False, "--show-score", help="Confirm-box: show workers the model's score."),
) -> None:
    """Check every image and row, then add the tasks. All-or-nothing unless --skip-bad; reloading adds no duplicates."""
    settings = get_settings()
    limits = datasets.Limits(max_pixels=settings.media.max_image_pixels, max_bytes=settings.media.max_image_bytes)
    try:
        selection = datasets.Selection(min_score=min_score, max_score=max_score, sample=sample, seed=seed)
    except ValueError as exc:
        fail(str(exc))
    with open_db(settings) as db:
        target = resolve_project(db, project)
        assert target.id is not None
        try:
            with stages({"check": "checking images", "write": "writing tasks"}) as update:
                summary = datasets.load(
                    db,
                    target.id,
                    source,
                    copy=copy,
                    media_dir=settings.media.media_dir,
                    skip_bad=skip_bad,
                    images_root=images_root,
                    limits=limits,
                    progress=update,
                    threads=threads,
                    allow_outside=allow_outside,
                    fmt=fmt,
                    coco_gt=coco_gt,
                    selection=selection,
                    show_score=show_score,
                )
        except datasets.DatasetError as exc:
            fail(str(exc))
        except datasets.LoadRejected as exc:
            _print_problems(exc.problems)
            if report is not None:
                datasets.write_report(exc.problems, report)
                err_console.print(f"report: {term_safe(report)}")
            fail(f"nothing was loaded: {len(exc.problems)} bad row(s). Fix them, or use --skip-bad to load the rest.")
    if summary.bad:
        _print_problems(summary.bad)
        path = datasets.write_report(summary.bad, report or _default_report(source, target.id))
        err_console.print(f"[yellow]skipped {len(summary.bad)} bad row(s); report: {term_safe(path)}[/]")
    elif report is not None:
        datasets.write_report([], report)
    typer.echo(
        f"project {target.id}: {summary.created} task(s) added, {summary.already_loaded} already loaded, "
        f"{summary.duplicates} duplicate(s), {len(summary.bad)} bad, {summary.left_out} left out by score/sample; "
        f"images: {summary.images_new} new, {summary.images_reused} already stored"
    )
