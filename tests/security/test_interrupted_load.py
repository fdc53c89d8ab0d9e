"""Item 7 of issue 18: a load killed half-way serves nothing, and the next run cleans up.

Before the fix, after a SIGKILL during ``admin load`` the batches already written were being
handed out to workers, and ``.part`` files stayed in the media folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from bot.db import Database
from bot.tasks import datasets, media, service, stats
from bot.tasks.models import Task
from bot.tasks.service import NoTask, TaskCard
from tests.admin.helpers import classify_project, jpeg
from tests.domain.helpers import make_workers

ROOT = Path(__file__).resolve().parents[2]

KILLED_LOADER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from bot.db import Database
    from bot.tasks import datasets

    real = datasets._write_one
    written = 0

    def write_then_die(*args, **kwargs):
        global written
        result = real(*args, **kwargs)
        written += 1
        if written == 2:  # two batches committed, then the power goes out
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    datasets._write_one = write_then_die
    url, project_id, folder, media_dir = sys.argv[1:]
    db = Database(url)
    real_write = datasets.write
    datasets.write = lambda *args, **kwargs: real_write(*args, batch_rows=10, **kwargs)
    datasets.load(db, int(project_id), Path(folder), media_dir=Path(media_dir), copy=True)
    """
)


def _statuses(db: Database) -> dict[str, int]:
    with db.read_session() as s:
        return dict(s.execute(select(Task.status, func.count()).group_by(Task.status)).all())  # type: ignore[arg-type]


def test_a_killed_load_serves_nothing_and_the_next_run_finishes_it(db: Database, sqlite_url: str, tmp_path: Path) -> None:
    project = classify_project(db, overlap=1)
    assert project.id is not None
    folder, media_dir = tmp_path / "imgs", tmp_path / "media"
    for i in range(30):
        jpeg(folder / f"{i:02d}.jpg", seed=i)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_LOADER, sqlite_url, str(project.id), str(folder), str(media_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _statuses(db) == {"loading": 20}  # two batches were written...
    (worker,) = make_workers(db, 1)
    assert isinstance(db.call(service.next_task, worker), NoTask)  # ...and none is served
    with db.read_session() as s:
        (progress,) = stats.project_progress(s, project.id)
    assert progress.tasks_total == 0

    # A copy the kill interrupted: its writer (a pid that no longer runs) is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    leftover = media_dir / "originals" / "ab" / f"{'ab' * 32}.jpg.{int(gone.stdout)}.1.part"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a file")
    in_progress = media_dir / "originals" / "ab" / f"{'cd' * 32}.jpg.{os.getpid()}.1.part"  # a live copy: kept
    in_progress.write_bytes(b"being written")

    summary = datasets.load(db, project.id, folder, media_dir=media_dir, copy=True)
    assert (summary.created, summary.already_loaded, summary.resumed) == (10, 20, 20)
    assert summary.partial_files_removed == 1 and not leftover.exists() and in_progress.exists()
    assert _statuses(db) == {"open": 30}
    card = db.call(service.next_task, worker)
    assert isinstance(card, TaskCard)


def test_old_partial_files_go_even_if_their_pid_is_alive(tmp_path: Path) -> None:
    part = tmp_path / "phone" / "ab" / f"{'ab' * 32}.{os.getpid()}.7.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x")
    assert media.remove_partial_copies(tmp_path) == 0 and part.exists()
    assert media.remove_partial_copies(tmp_path, now=part.stat().st_mtime + media.PARTIAL_MAX_AGE_S + 1) == 1
    assert not part.exists()
