"""Message catalogs (ko, en). Everything the bot says is looked up here.

Catalogs are TOML files, one per locale per area (``locales/ko/core.toml``,
``locales/en/wallet.toml``...), so that features add their own strings without touching each
other's files. Keys are dotted paths; values use ``str.format`` placeholders. A test checks
that both locales have the same keys with the same placeholders.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("ko", "en")
DEFAULT_LOCALE = "ko"
_ROOT = Path(__file__).with_name("locales")


def _flatten(prefix: str, node: dict[str, Any], out: dict[str, str]) -> None:
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(path, value, out)
        else:
            out[path] = str(value)


@cache
def catalog(locale: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for file in sorted((_ROOT / locale).glob("*.toml")):
        with file.open("rb") as fh:
            _flatten("", tomllib.load(fh), out)
    return out


def normalize_locale(code: str | None, default: str = DEFAULT_LOCALE) -> str:
    """Telegram's ``language_code`` ("en-US", "ko") to one of our locales."""
    if code:
        base = code.split("-")[0].split("_")[0].lower()
        if base in LOCALES:
            return base
    return default


def t(key: str, locale: str = DEFAULT_LOCALE, /, **params: Any) -> str:
    """Translate ``key``; falls back to Korean, then to the key itself (never raises)."""
    text = catalog(locale).get(key) or catalog(DEFAULT_LOCALE).get(key)
    if text is None:
        return key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def won(amount: int) -> str:
    """KRW with thousands separators, as both locales write it: ₩12,340."""
    return f"₩{amount:,}"
