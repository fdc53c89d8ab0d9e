"""A faster way for aiogram's types to remember their bot, applied once at start-up.

Every aiogram object (an update, its user, chat, message, photo sizes, each keyboard button:
about seventeen for one tap) keeps its bot in a pydantic private attribute. pydantic sets
private attributes by resolving each one's default through its field machinery, wrapped
once per class level, before aiogram's ``model_post_init`` overwrites the value with the bot
from the validation context. That is half the CPU of parsing an update. For every aiogram
class whose only private attribute is ``_bot``, :func:`install` sets the attribute directly,
with the same result (``obj.bot`` is the context's bot, or None).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiogram.client.context_controller import BotContextController

_installed = False
# aiogram's own post-init, kept for tests/telegram/test_aiogram_internals.py to compare against
ORIGINAL_POST_INIT = BotContextController.model_post_init


def _post_init(self: BotContextController, context: Any) -> None:
    object.__setattr__(self, "__pydantic_private__", {"_bot": context.get("bot") if context else None})


def _subclasses(cls: type[BotContextController]) -> Iterator[type[BotContextController]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def install() -> int:
    """Patch every loaded aiogram type that qualifies; returns how many (0 when already done)."""
    global _installed
    if _installed:
        return 0
    patched = 0
    for cls in {BotContextController, *_subclasses(BotContextController)}:
        if set(getattr(cls, "__private_attributes__", {})) == {"_bot"}:
            setattr(cls, "model_post_init", _post_init)  # noqa: B010 - a patch of aiogram's class, not an attribute write
            patched += 1
    _installed = True
    return patched
