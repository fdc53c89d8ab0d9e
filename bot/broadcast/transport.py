"""What delivery needs from Telegram, and the only errors it has to tell apart.

The domain never imports aiogram: ``bot.telegram.broadcast_transport`` implements
:class:`Transport` and maps aiogram's exceptions onto the ones below, and tests use fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Button:
    """The "Start tasks" button: the transport turns it into the callback the worker loop handles."""

    text: str
    project_id: int


@dataclass(frozen=True, slots=True)
class Photo:
    """Either a file to upload (first send) or the ``file_id`` Telegram gave back for it."""

    file_id: str | None = None
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: int
    file_id: str | None = None  # of the largest photo size, when a photo was sent


class Transport(Protocol):
    async def send_message(self, chat_id: int, text: str, button: Button | None) -> Delivered: ...

    async def send_photo(self, chat_id: int, photo: Photo, caption: str, button: Button | None) -> Delivered: ...


class TransportError(Exception):
    """Base of what a transport may raise; anything else is a bug and propagates."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(TransportError):
    """429: Telegram wants *all* sending to stop for ``retry_after`` seconds. Not delivered."""

    def __init__(self, retry_after: float, reason: str = "Too Many Requests") -> None:
        super().__init__(reason)
        self.retry_after = float(retry_after)


class Forbidden(TransportError):
    """403: the user blocked the bot (or deleted the account); never message them again."""


class SendFailed(TransportError):
    """Anything else. ``retryable`` errors (5xx, network) are tried again with back-off; the
    others (400: chat not found, bad caption...) will fail the same way again."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.retryable = retryable


class Fatal(TransportError):
    """The bot itself cannot send (401 bad token...): stop the whole broadcast, mark nobody."""
