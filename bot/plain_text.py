"""Text that a hostile worker or a stranger's manifest controls, made harmless: spreadsheet
cells, control characters, digits.

A top-level module with no dependencies so every layer can use it (the wallet may not import
``bot.tasks``); :mod:`bot.tasks.safety` re-exports it next to the path checks. See
docs/security.md for the threat model.
"""

from __future__ import annotations

import re
import unicodedata

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
    ``int()`` fails or a bank would. NFKC turns fullwidth ``１２`` and superscript ``²³`` into
    plain digits; anything still not ASCII 0-9 (Arabic-Indic digits, zero-width or
    direction-override characters) is refused.
    """
    normalized = unicodedata.normalize("NFKC", text)
    if normalized and normalized.isascii() and normalized.isdigit():
        return normalized
    return None
