"""What a handler needs besides the update: the app's services and the worker who sent it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.db import Database

if TYPE_CHECKING:
    from bot.handlers.metrics import Metrics


@dataclass(slots=True)
class WorkerCtx:
    id: int
    tg_id: int
    name: str
    lang: str
    status: str
    is_new: bool = False


@dataclass(slots=True)
class App:
    """Services shared by all handlers, built once in ``bot.app``."""

    settings: Settings
    db: Database
    media_dir: Path
    metrics: "Metrics | None" = None
    extras: dict = field(default_factory=dict)

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def is_admin(self, tg_id: int) -> bool:
        return tg_id in self.settings.telegram.admin_ids
