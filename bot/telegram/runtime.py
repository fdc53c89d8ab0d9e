"""The bot's run-time state: services built once in ``bot.app`` and handed to every handler
(as ``app``) and to the background jobs.

Everything a running bot keeps between updates is a typed field here, not a module global, so
two bots in one process (tests, the sandbox's restarts) never share caches or file ids.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cache import LRUCache
from bot.config import Settings
from bot.db import Database
from bot.tasks.pictures import MaskPictures
from bot.telegram.draining import InFlight

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.jobs import Jobs
    from bot.telegram.metrics import Metrics

FILE_ID_CACHE = 4096  # file ids of grid pictures / mask overlays remembered per process


@dataclass(slots=True)
class App:
    """Services and state shared by all handlers of one running bot."""

    settings: Settings
    db: Database
    media_dir: Path
    metrics: Metrics | None = None
    # REDIS_URL: the client of the FSM storage (pinged by /readyz, closed on shutdown)
    redis: Redis | None = None
    # the background loops while the dispatcher runs (started and stopped by bot.app)
    jobs: Jobs | None = None
    # image id -> file_id this process uploaded (the database has it too, a moment later)
    image_file_ids: dict[int, str] = field(default_factory=dict)
    # image id -> lock held while its first upload is in flight (others wait for the file_id)
    upload_locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    # sha256 -> file_id of an image's plain grid picture (magic pin's first look); a restart or
    # a second replica uploads it once more, cheaper than a schema change for a first-look picture
    grid_file_ids: LRUCache[str, str] = field(default_factory=lambda: LRUCache(FILE_ID_CACHE))
    # (sha256, mask key) -> file_id of a confirm-mask overlay (the same for all workers of a task)
    overlay_file_ids: LRUCache[tuple[str, str], str] = field(default_factory=lambda: LRUCache(FILE_ID_CACHE))
    # magic-pin assignments whose previous tap is still being worked on in this process
    pins_in_flight: set[int] = field(default_factory=set)
    # the tasks handling updates and Mini App requests: a shutdown waits for them (bot.telegram.draining)
    in_flight: InFlight = field(default_factory=InFlight)
    pictures: MaskPictures = field(init=False)

    def __post_init__(self) -> None:
        self.pictures = MaskPictures(self.media_dir, self.settings.media.phone_long_side)

    @property
    def tz(self) -> str:
        return self.settings.timezone

    def is_admin(self, tg_id: int) -> bool:
        return tg_id in self.settings.telegram.admin_ids
