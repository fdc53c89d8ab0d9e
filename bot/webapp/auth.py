"""Who is calling: Telegram's signed launch data (``Telegram.WebApp.initData``), checked.

Telegram signs the launch data with HMAC-SHA256 keyed by the bot token; aiogram's
``safe_parse_webapp_init_data`` checks that signature. On top of it the launch data must be
fresh (``auth_date`` no older than ``WEBAPP_MAX_AGE``, not from the future) and name a user.
Every API request carries it (``Authorization: tma <initData>``), so a page left open past the
limit, a forged or a replayed-from-elsewhere request is refused with 401 and changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiogram.utils.web_app import safe_parse_webapp_init_data

AUTH_SCHEME = "tma"  # "Authorization: tma <initData>", the scheme Telegram's docs use
MAX_INIT_DATA_BYTES = 8192  # real launch data is well under 1 kB
CLOCK_SKEW_S = 60  # launch data "from the future" by more than this is refused


class AuthError(Exception):
    """The launch data cannot be trusted; ``reason`` is short and safe to show a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LaunchUser:
    tg_id: int
    first_name: str
    language_code: str | None
    auth_date: int


def init_data_from_header(header: str | None) -> str:
    if not header:
        raise AuthError("missing launch data")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != AUTH_SCHEME or not value.strip():
        raise AuthError(f"use 'Authorization: {AUTH_SCHEME} <initData>'")
    return value.strip()


def check_init_data(token: str, init_data: str, *, max_age: int, now: float | None = None) -> LaunchUser:
    """The user the launch data was signed for, or :class:`AuthError`."""
    if len(init_data) > MAX_INIT_DATA_BYTES:
        raise AuthError("launch data too long")
    try:
        parsed = safe_parse_webapp_init_data(token, init_data)
    except ValueError:
        raise AuthError("bad signature") from None
    except Exception:  # noqa: BLE001 - a correctly signed but malformed payload (pydantic)
        raise AuthError("malformed launch data") from None
    if parsed.user is None:
        raise AuthError("no user in launch data")
    auth_date = int(parsed.auth_date.timestamp())
    now = time.time() if now is None else now
    if auth_date > now + CLOCK_SKEW_S:
        raise AuthError("launch data from the future")
    if now - auth_date > max_age:
        raise AuthError("launch data expired: reopen the page from the chat")
    return LaunchUser(parsed.user.id, parsed.user.first_name, parsed.user.language_code, auth_date)
