"""Hostile input stays data: spreadsheet cells, dataset paths and control characters.

Workers control their names, usernames, bank names and account holders; operators load
manifests that somebody else may have written. These helpers are the one place the product
decides how such text is neutralised before it reaches a spreadsheet, the file system or a
terminal. Plain Python on purpose (no aiogram, no Rich): the bot, the admin CLI and the
import/export code share them. See docs/security.md for the threat model.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path

# OWASP "CSV injection": a cell starting with one of these is read as a formula by Excel,
# LibreOffice or Google Sheets (tab and CR can hide the trigger behind white space).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

# Characters that rewrite what a terminal or a reader sees rather than show themselves:
# C0/C1 controls (ESC starts ANSI and OSC 8 sequences) and the bidirectional overrides and
# isolates that reorder text ("Trojan Source").
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI + "]")
_WHITESPACE_CONTROLS = re.compile("[\t\n\r\x0b\x0c]")


def csv_cell(value: object) -> object:
    """``value`` as safe to put in a CSV cell a spreadsheet will open.

    Text starting with ``= + - @``, tab or carriage return gets a leading single quote (OWASP's
    rule), so a worker named ``=HYPERLINK(...)`` is shown, not run. Numbers (and text that is
    exactly a plain number such as ``-5``, which a spreadsheet cannot run) are unchanged, as is
    anything that is not a string.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_TRIGGERS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def printable(text: object) -> str:
    """``text`` without control characters: tabs and line breaks become spaces, ESC, other
    C0/C1 controls and bidirectional overrides are removed."""
    value = "" if text is None else str(text)
    return _CONTROLS.sub("", _WHITESPACE_CONTROLS.sub(" ", value))


def ascii_digits(text: str) -> str | None:
    """``text`` after NFKC normalisation if it is made of ASCII digits only, else None.

    ``str.isdigit`` accepts superscripts (``²³``), Arabic-Indic and fullwidth digits, on which
    ``int()`` fails or a bank would; NFKC turns fullwidth ``１２`` into ``12``, and anything
    still not ASCII 0-9 is refused.
    """
    normalized = unicodedata.normalize("NFKC", text)
    if normalized and normalized.isascii() and normalized.isdigit():
        return normalized
    return None


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
