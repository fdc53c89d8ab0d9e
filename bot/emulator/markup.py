"""Reply markup limits and inline button lookup.

The spec check (validation.py) already guarantees the shape of a keyboard;
this module enforces what the spec only states in prose and what bots trip
over in practice: callback_data of 1-64 bytes, at most 8 buttons per row and
100 in total, exactly one action per inline button, sane URLs (https for web_app buttons).
"""

from __future__ import annotations

from typing import Any

from .errors import (
    BUTTON_DATA_INVALID,
    BUTTON_URL_INVALID,
    MARKUP_TOO_LONG,
    TEXT_BUTTONS_UNALLOWED,
    ApiError,
    ButtonNotFound,
    bad_request,
)
from .webapp import check_web_app_url

MAX_CALLBACK_DATA_BYTES = 64
MAX_BUTTONS_PER_ROW = 8
MAX_BUTTONS_TOTAL = 100
# Fields of InlineKeyboardButton that do not choose what the button does.
_NON_ACTION_FIELDS = frozenset({"text", "icon_custom_emoji_id", "style"})
_URL_SCHEMES = ("http://", "https://", "tg://")


def check_reply_markup(markup: dict[str, Any] | None) -> None:
    """Raise :class:`ApiError` for keyboards Telegram would refuse."""
    if not markup:
        return
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if sum(len(row) for row in rows) > MAX_BUTTONS_TOTAL * 3:
            raise ApiError(400, MARKUP_TOO_LONG)
        for row in rows:
            for button in row:
                if not button.get("text"):
                    raise bad_request('can\'t parse keyboard button: Field "text" must be non-empty')


def _check_inline_keyboard(rows: list[list[dict[str, Any]]]) -> None:
    total = 0
    for row in rows:
        if len(row) > MAX_BUTTONS_PER_ROW:
            raise ApiError(400, f"{MARKUP_TOO_LONG}: at most {MAX_BUTTONS_PER_ROW} buttons per row")
        total += len(row)
        for button in row:
            _check_inline_button(button)
    if total > MAX_BUTTONS_TOTAL:
        raise ApiError(400, f"{MARKUP_TOO_LONG}: at most {MAX_BUTTONS_TOTAL} buttons")


def _check_inline_button(button: dict[str, Any]) -> None:
    if not button.get("text", "").strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [key for key in button if key not in _NON_ACTION_FIELDS]
    if not actions:
        raise ApiError(400, TEXT_BUTTONS_UNALLOWED)
    if len(actions) > 1:
        raise bad_request(
            "can't parse inline keyboard button: exactly one of the optional fields must be used, got " + ", ".join(sorted(actions))
        )
    if "callback_data" in button:
        size = len(button["callback_data"].encode("utf-8"))
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise ApiError(400, BUTTON_DATA_INVALID)
    if "url" in button and not button["url"].startswith(_URL_SCHEMES):
        raise ApiError(400, BUTTON_URL_INVALID)
    if "web_app" in button:  # the emulator's chats are private, where Telegram allows web_app buttons
        check_web_app_url((button["web_app"] or {}).get("url"))


def find_callback_button(markup: dict[str, Any] | None, *, text: str | None = None, data: str | None = None) -> dict[str, Any]:
    """The callback button on a message matching ``text`` or ``data``, else :class:`ButtonNotFound`."""
    if (text is None) == (data is None):
        raise ValueError("pass exactly one of text= or data=")
    buttons = [b for row in (markup or {}).get("inline_keyboard", []) for b in row]
    for button in buttons:
        if (text is not None and button.get("text") == text) or (data is not None and button.get("callback_data") == data):
            if "callback_data" not in button:
                raise ButtonNotFound(f"button {button.get('text')!r} has no callback_data (it is {sorted(button)})")
            return button
    available = ", ".join(f"{b.get('text')!r}->{b.get('callback_data')!r}" for b in buttons) or "no inline buttons"
    wanted = f"text={text!r}" if text is not None else f"data={data!r}"
    raise ButtonNotFound(f"no inline button with {wanted}; the message has: {available}")
