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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def confined_path(base: Path, name: str, allow_outside: Sequence[Path] = ()) -> Path:
    """The real path of ``name`` (relative to ``base``, or absolute), if it stays inside ``base``
    or one of ``allow_outside`` once every symlink is resolved.

    Raises :class:`PathOutsideDataset` when it does not, and :class:`NotARegularFile` when it
    exists but is a FIFO, device, socket or folder. A missing file inside the folder is
    returned as is: the caller reports "not found" (which reveals nothing about other folders).
    """
    folders = [Path(os.path.realpath(base))] + [Path(os.path.realpath(p)) for p in allow_outside]
    if "\x00" in name:
        raise PathOutsideDataset(f"{printable(name)!r} is not a file name")
    candidate = Path(name) if os.path.isabs(name) else Path(base) / name
    real = Path(os.path.realpath(candidate))
    if not any(_inside(real, folder) for folder in folders):
        raise PathOutsideDataset(f"{printable(name)!r} is outside the dataset folder (use --allow-outside DIR to permit a folder)")
    try:
        mode = os.stat(real).st_mode  # stat, never open: opening a FIFO blocks
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise NotARegularFile(f"{printable(name)!r} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "not a regular file"
        raise NotARegularFile(f"{printable(name)!r} is {kind}")
    return real
