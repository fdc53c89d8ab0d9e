"""Bot API method implementations, registered by their canonical (spec) name.

Each handler gets the emulator, the calling bot's state, the parameters as
validated and coerced against the spec, and the multipart file parts (for
``attach://`` references inside JSON-serialised objects). It returns the
``result`` of the answer or raises :class:`~bot.emulator.errors.ApiError`.
Handlers may be coroutines (getUpdates long-polls).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..emulator import Emulator
    from ..state import BotState
    from ..validation import UploadedFile

Handler = Callable[
    ["Emulator", "BotState", dict[str, Any], "Mapping[str, UploadedFile]"],
    Any | Awaitable[Any],
]
METHODS: dict[str, Handler] = {}


H = TypeVar("H", bound=Handler)


def method(*names: str) -> Callable[[H], H]:
    """Register a handler for one or more Bot API methods (the function keeps its own type)."""

    def register(handler: H) -> H:
        for name in names:
            METHODS[name] = handler
        return handler

    return register


def _load() -> None:
    from . import messages, misc, updates  # noqa: F401  (registration side effects)


_load()
