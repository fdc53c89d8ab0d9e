"""The Magic Pin Mini App: a page inside Telegram where a worker taps the object exactly (not a
grid cell), adds negative points or draws a box, and keeps the mask (docs/miniapp.md).

``auth`` checks Telegram's signed launch data; ``server`` holds the aiohttp routes (the page,
its API) mounted on the webhook server or on a small server of their own in polling mode;
``static/`` is the page itself (plain HTML, CSS and JavaScript shipped as package data).
"""

from bot.webapp.auth import AuthError, LaunchUser, check_init_data
from bot.webapp.server import PREFIX, add_webapp_routes, precise_url, start_webapp_server

__all__ = ["PREFIX", "AuthError", "LaunchUser", "add_webapp_routes", "check_init_data", "precise_url", "start_webapp_server"]
