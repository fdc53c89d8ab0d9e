"""Mini Apps (Web Apps) in the emulator: ``web_app`` buttons, and their launch data signed
exactly as Telegram signs it.

Telegram opens a ``web_app`` button's page with the launch data in the URL fragment
(``#tgWebAppData=<initData>&tgWebAppVersion=...&tgWebAppPlatform=...&tgWebAppThemeParams=...``).
``initData`` is a query string (``query_id``, ``user`` as JSON, ``auth_date``, ``chat_type``,
``chat_instance``) with ``hash`` = hex HMAC-SHA256 of its other fields (sorted, ``key=value``,
joined by newlines) keyed by HMAC-SHA256(key="WebAppData", msg=<bot token>), as
https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app describes.
The bot checks it with its real check (aiogram's ``safe_parse_webapp_init_data``): no bypass.

Not emulated: the Ed25519 ``signature`` field (third-party validation) needs Telegram's private
key; a bot checking the HMAC, as crowdpin does, does not read it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .errors import ApiError, ButtonNotFound, bad_request

WEB_APP_VERSION = "9.1"
PLATFORM = "crowdpin-emulator"  # not a Telegram client's name: the page does not load telegram-web-app.js
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Telegram's default light theme, as a client passes it in tgWebAppThemeParams
THEME = {
    "bg_color": "#ffffff",
    "text_color": "#000000",
    "hint_color": "#707579",
    "link_color": "#3390ec",
    "button_color": "#3390ec",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#f4f4f5",
}


def check_web_app_url(url: Any) -> None:
    """Telegram accepts only HTTPS Mini App URLs. Like Telegram's test environment, the emulator
    also accepts plain HTTP on a loopback address, where a local bot serves its page."""
    if not isinstance(url, str) or not url:
        raise bad_request("BUTTON_URL_INVALID")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise ApiError(400, f"Bad Request: inline keyboard button Web App URL '{url}' is invalid: Only HTTPS links are allowed")


def sign_init_data(token: str, fields: dict[str, str]) -> str:
    """``fields`` as Telegram's signed ``initData`` query string (with ``hash``)."""
    data_check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, data_check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def init_data_fields(user: dict[str, Any], auth_date: int, chat_instance: str, query_id: str | None = None) -> dict[str, str]:
    """The launch data a private chat's inline ``web_app`` button gives its page."""
    return {
        "query_id": query_id or "AA" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
        "user": json.dumps({**user, "allows_write_to_pm": True}, ensure_ascii=False, separators=(",", ":")),
        "auth_date": str(auth_date),
        "chat_type": "private",
        "chat_instance": chat_instance,
    }


def launch_url(page_url: str, init_data: str, theme: dict[str, str] | None = None) -> str:
    """The page's URL as a Telegram client opens it: the launch parameters in the fragment."""
    fragment = urlencode(
        {
            "tgWebAppData": init_data,
            "tgWebAppVersion": WEB_APP_VERSION,
            "tgWebAppPlatform": PLATFORM,
            "tgWebAppThemeParams": json.dumps(theme or THEME, separators=(",", ":")),
        },
        quote_via=quote,
    )
    return page_url.split("#", 1)[0] + "#" + fragment


def find_web_app_button(markup: dict[str, Any] | None, text: str | None = None) -> dict[str, Any]:
    """The ``web_app`` button on a message (by its text, or the only/first one)."""
    buttons = [b for row in (markup or {}).get("inline_keyboard", []) for b in row]
    for button in buttons:
        if "web_app" in button and (text is None or button.get("text") == text):
            return button
    available = ", ".join(repr(b.get("text")) for b in buttons if "web_app" in b) or "none"
    wanted = f" with text {text!r}" if text is not None else ""
    raise ButtonNotFound(f"no web_app button{wanted} on the message; web_app buttons: {available}")
