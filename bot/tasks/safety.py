"""Hostile input stays data: spreadsheet cells, dataset paths and control characters.

Workers control their names, usernames, bank names and account holders; operators load
manifests that somebody else may have written. These helpers are the one place the product
decides how such text is neutralised before it reaches a spreadsheet, the file system or a
terminal. Plain Python on purpose (no aiogram, no Rich): the bot, the admin CLI and the
import/export code share them. See docs/security.md for the threat model.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from bot.plain_text import FORMULA_TRIGGERS, ascii_digits, csv_cell, printable

__all__ = [
    "FORMULA_TRIGGERS",
    "NotARegularFile",
    "PathOutsideDataset",
    "ascii_digits",
    "confined_path",
    "csv_cell",
    "printable",
]


class PathOutsideDataset(ValueError):
    """A manifest names a file outside its folder (absolute path, ``..`` or a symlink).

    The message never says whether the outside file exists, so a manifest cannot be used to
    probe the operator's file system.
    """


class NotARegularFile(ValueError):
    """A named pipe, device or socket listed as a file: refused without opening it (a FIFO
    would block the loader forever, a device could be read without end)."""


_DIRS: dict[str, tuple[int, int, str]] = {}  # folder as named -> (st_dev, st_ino, real path)
_DIRS_LOCK = threading.Lock()
_DIRS_MAX = 4096


def real_dir(folder: str) -> str:
    """``os.path.realpath(folder)`` for an existing folder, remembered by the folder's identity.

    A manifest of 300,000 rows names a few folders 300,000 times; resolving each component of
    each path again (one ``lstat`` per component) was the largest cost of checking paths. The
    remembered answer is used only while ``os.stat(folder)`` (which follows every symlink) still
    gives the same device and inode: a folder has exactly one real path, so a component swapped
    for a symlink to somewhere else changes the identity and the path is resolved again.
    """
    try:
        st = os.stat(folder)
    except OSError:
        return os.path.realpath(folder)
    held = _DIRS.get(folder)
    if held is not None and held[0] == st.st_dev and held[1] == st.st_ino:
        return held[2]
    real = os.path.realpath(folder)
    with _DIRS_LOCK:
        if len(_DIRS) >= _DIRS_MAX:
            _DIRS.clear()
        _DIRS[folder] = (st.st_dev, st.st_ino, real)
    return real


def _real_file(candidate: str) -> str:
    """The real path of ``candidate``: its folder through :func:`real_dir`, then the last
    component resolved only when it is itself a symlink (or names ``.``/``..``)."""
    head, tail = os.path.split(candidate)
    if not tail or tail in (".", ".."):
        return os.path.realpath(candidate)
    joined = os.path.join(real_dir(head or "."), tail)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


def confined_path(base: Path, name: str, allow_outside: Sequence[Path] = ()) -> Path:
    """The real path of ``name`` (relative to ``base``, or absolute), if it stays inside ``base``
    or one of ``allow_outside`` once every symlink is resolved.

    Raises :class:`PathOutsideDataset` when it does not, and :class:`NotARegularFile` when it
    exists but is a FIFO, device, socket or folder. A missing file inside the folder is
    returned as is: the caller reports "not found" (which reveals nothing about other folders).
    """
    if "\x00" in name:
        raise PathOutsideDataset(f"{printable(name)!r} is not a file name")
    folders = [real_dir(os.fspath(base))] + [real_dir(os.fspath(p)) for p in allow_outside]
    candidate = name if os.path.isabs(name) else os.path.join(os.fspath(base), name)
    real = _real_file(os.path.normpath(candidate) if ".." not in candidate.split(os.sep) else candidate)
    if not any(real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders):
        raise PathOutsideDataset(f"{printable(name)!r} is outside the dataset folder (use --allow-outside DIR to permit a folder)")
    try:
        mode = os.stat(real).st_mode  # stat, never open: opening a FIFO blocks
    except FileNotFoundError:
        return Path(real)
    except OSError as exc:
        raise NotARegularFile(f"{printable(name)!r} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "not a regular file"
        raise NotARegularFile(f"{printable(name)!r} is {kind}")
    return Path(real)
