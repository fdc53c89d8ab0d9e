"""What lets ``admin load`` stream a large manifest instead of holding it (issue 18, item 7).

A 300,000-row CSV used to be read, checked and planned whole: every row, every checked image
and every prepared row alive at once (about 3 KB a row, 0.9 GB of RSS). The loader now works
on chunks of :data:`CHUNK_ROWS` rows and keeps across chunks only what must outlive a chunk:

* :class:`SeenIds`, the external ids met so far (duplicates inside the source are found across
  chunk boundaries, and reported with the row that used the id first), about 170 bytes a row;
* :class:`LoadTasks`, the ids of the tasks this load wrote or took over, 8 bytes a row: they
  are published in one commit when the load has finished (:meth:`LoadTasks.publish`) and
  deleted when it is refused or fails (:meth:`LoadTasks.discard`), so a load written chunk
  by chunk is still invisible until it has finished, and leaves nothing behind when refused.

Content duplicates across chunks need no memory here: earlier chunks are already in the
database (as ``loading`` tasks), where the per-chunk content lookup finds them.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from sqlalchemy import delete, update
from sqlmodel import col

from bot.db import Database, rowcount
from bot.tasks.models import Task, TaskStatus

CHUNK_ROWS = 2000
"""Rows read, checked, validated and written together; peak memory scales with this, not the source."""

_ID_CHUNK = 500  # IN (...) lists stay far below SQLite's and PostgreSQL's parameter limits
_WHERE = struct.Struct("<IQ")  # (index of the file name, row number), packed next to the content digest

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items; reads ``items`` no further than the list it yields."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class SeenIds:
    """External ids met so far in one load, each with where it was first met and a digest of its
    content: enough to tell a harmless repeat (same content: a duplicate) from a clash (another
    row already uses the id), without keeping the rows. One ``bytes`` of 28 per id."""

    __slots__ = ("_at", "_files", "_names")

    def __init__(self) -> None:
        self._at: dict[str, bytes] = {}
        self._files: dict[str, int] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._at)

    def first(self, external_id: str) -> tuple[str, int, bytes] | None:
        """``(file, row, content digest)`` of the row that used ``external_id`` first, or None."""
        packed = self._at.get(external_id)
        if packed is None:
            return None
        file_index, row = _WHERE.unpack_from(packed)
        return self._names[file_index], row, packed[_WHERE.size :]

    def add(self, external_id: str, file: str, row: int, content: bytes) -> None:
        index = self._files.get(file)
        if index is None:
            index = self._files[file] = len(self._names)
            self._names.append(file)
        self._at[external_id] = _WHERE.pack(index, row) + content


class LoadTasks:
    """Ids of the tasks one load wrote (``created``) or took over from a killed load of the same
    rows (``adopted``). Only these are published at the end: a killed load's leftovers that the
    new source does not name stay invisible, since that load may have been refused later on."""

    __slots__ = ("adopted", "created")

    def __init__(self) -> None:
        self.created = array("q")
        self.adopted = array("q")

    def __len__(self) -> int:
        return len(self.created) + len(self.adopted)

    def publish(self, db: Database, project_id: int) -> int:
        """Make the load's tasks visible to workers in ONE transaction (one commit): a load is
        invisible until it has finished. Returns how many tasks became visible."""
        published = 0
        with db.session() as session:
            for ids in _id_chunks(self.created, self.adopted):
                published += rowcount(
                    session.execute(
                        update(Task)
                        .where(col(Task.project_id) == project_id, col(Task.id).in_(ids), col(Task.status) == TaskStatus.LOADING.value)
                        .values(status=TaskStatus.OPEN.value)
                    )
                )
        return published

    def discard(self, db: Database, project_id: int) -> int:
        """Delete the tasks this load created (still ``loading``: never served, never answered), in
        one transaction. Adopted tasks were there before the load and stay as they were. Images
        stay too: they are never deleted (a concurrent load may be about to use them), and the
        next load reuses them by content hash."""
        removed = 0
        with db.session() as session:
            for ids in _id_chunks(self.created):
                removed += rowcount(
                    session.execute(
                        delete(Task).where(
                            col(Task.project_id) == project_id, col(Task.id).in_(ids), col(Task.status) == TaskStatus.LOADING.value
                        )
                    )
                )
        del self.created[:]
        return removed


def _id_chunks(*arrays: Sequence[int]) -> Iterator[list[int]]:
    for ids in arrays:
        for start in range(0, len(ids), _ID_CHUNK):
            yield list(ids[start : start + _ID_CHUNK])
