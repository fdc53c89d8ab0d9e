"""Rich progress bars for long admin commands, on stderr so stdout stays scriptable.

Domain code reports progress through plain callbacks (``progress(stage, done, total)`` or
``progress(done, total)``) and never imports Rich; these helpers turn such callbacks into bars.
Other admin modules (payouts, broadcasts...) can reuse :func:`bar` and :func:`stages`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err_console = Console(stderr=True)
"""Messages for people (progress, warnings, tables of problems); stdout is for results."""

out_console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def bar(description: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """One bar; yields ``update(done, total)``."""
    with _progress() as progress:
        task = progress.add_task(description, total=total)

        def update(done: int, new_total: int) -> None:
            progress.update(task, completed=done, total=new_total)

        yield update


@contextmanager
def stages(labels: dict[str, str]) -> Iterator[Callable[[str, int, int], None]]:
    """One bar per named stage, created when the stage first reports; yields ``update(stage, done, total)``."""
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(labels.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update
