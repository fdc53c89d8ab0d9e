"""The browser sandbox: a Telegram-like chat page over the Bot API emulator
(``crowdpin demo --web``). The page server is :mod:`bot.webchat.server`; the page itself is
plain HTML, CSS and JavaScript in ``static/`` (package data, no build step)."""

from bot.webchat.server import WebChat, serve

__all__ = ["WebChat", "serve"]
