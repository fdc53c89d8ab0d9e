"""Settings, one class per section, read from the environment and an optional `.env` file.

Variable names are flat (``BOT_TOKEN``, ``DATABASE_URL``...) because that is what operators
type into a shell or a container spec; the grouping exists only in code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_COMMON = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class TelegramSettings(BaseSettings):
    """How to reach Telegram (or a self-hosted / local Bot API server)."""

    model_config = _COMMON

    bot_token: str | None = Field(default=None, alias="BOT_TOKEN")
    telegram_api_base: str | None = Field(default=None, alias="TELEGRAM_API_BASE")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset(), alias="ADMIN_IDS")
    default_locale: str = Field(default="ko", alias="DEFAULT_LOCALE")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(";", ",").split(",") if part.strip())
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in ("ko", "en"):
            raise ValueError("DEFAULT_LOCALE must be 'ko' or 'en'")
        return value


class DatabaseSettings(BaseSettings):
    """Where the data lives. SQLite in the working directory unless told otherwise."""

    model_config = _COMMON

    database_url: str = Field(default="sqlite:///crowdpin.db", alias="DATABASE_URL")
    db_pool_size: int = Field(default=10, alias="DB_POOL_SIZE")
    # Threads running database work off the event loop (PostgreSQL; SQLite always uses one).
    # Four keep a replica busy while transactions wait on PostgreSQL's round trips (two left it
    # at about 0.8 of a core); many more cost CPU in GIL hand-offs (docs/scale_out.md).
    db_threads: int = Field(default=4, ge=1, alias="DB_THREADS")
    db_echo: bool = Field(default=False, alias="DB_ECHO")
    # Taps that reach the database while it is busy share one transaction and one COMMIT
    # (bot.db.engine.Database.run_grouped), on both engines unless set to false.
    db_group_commit: bool | None = Field(default=None, alias="DB_GROUP_COMMIT")


class RedisSettings(BaseSettings):
    """Redis turns on cross-process FSM storage, event isolation, de-duplication and pacing."""

    model_config = _COMMON

    redis_url: str | None = Field(default=None, alias="REDIS_URL")


class WebhookSettings(BaseSettings):
    """Webhook mode for replicas behind a load balancer."""

    model_config = _COMMON

    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL")
    webhook_path: str = Field(default="/telegram/webhook", alias="WEBHOOK_PATH")
    webhook_secret: str | None = Field(default=None, alias="WEBHOOK_SECRET")
    webhook_host: str = Field(default="0.0.0.0", alias="WEBHOOK_HOST")
    webhook_port: int = Field(default=8080, alias="WEBHOOK_PORT")
    # /metrics is served on the webhook's host and port; with METRICS_TOKEN set it answers only
    # requests with "Authorization: Bearer <token>" (Prometheus: authorization.credentials).
    metrics_token: str | None = Field(default=None, alias="METRICS_TOKEN")


class WebAppSettings(BaseSettings):
    """The Magic Pin Mini App (docs/miniapp.md): exact taps and boxes in a page inside Telegram.

    Unset ``WEBAPP_URL`` turns it off: no ✏️ Precise button, no page. In webhook mode the page
    is served by the webhook server; in polling mode by a small server on WEBAPP_HOST:WEBAPP_PORT.
    """

    model_config = _COMMON

    # the page's public address (https in production, behind a reverse proxy), e.g. https://pin.example.com/app/
    webapp_url: str | None = Field(default=None, alias="WEBAPP_URL")
    webapp_host: str = Field(default="127.0.0.1", alias="WEBAPP_HOST")
    webapp_port: int = Field(default=8090, alias="WEBAPP_PORT")
    # launch data (Telegram.WebApp.initData) older than this many seconds is refused
    webapp_max_age: int = Field(default=24 * 3600, gt=0, alias="WEBAPP_MAX_AGE")

    @field_validator("webapp_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")):
            raise ValueError("WEBAPP_URL must be an http(s) URL (Telegram requires https), e.g. https://pin.example.com/app/")
        return value


class MediaSettings(BaseSettings):
    """Where project images and phone-sized copies are kept."""

    model_config = _COMMON

    media_dir: Path = Field(default=Path("crowdpin-data/media"), alias="MEDIA_DIR")
    phone_long_side: int = Field(default=1280, alias="PHONE_LONG_SIDE")
    max_image_pixels: int = Field(default=40_000_000, alias="MAX_IMAGE_PIXELS")
    max_image_bytes: int = Field(default=30 * 1024 * 1024, alias="MAX_IMAGE_BYTES")


class WalletSettings(BaseSettings):
    """Money rules. Amounts are whole KRW."""

    model_config = _COMMON

    min_withdrawal: int = Field(default=10_000, alias="MIN_WITHDRAWAL")
    payout_notify_seconds: float = Field(default=15.0, gt=0, alias="PAYOUT_NOTIFY_SECONDS")  # paid/failed notices
    # Key of worker pseudonyms in exports. Unset: a random key is made on first use and kept in
    # the database (bot.tasks.pseudonym_key), so pseudonyms are stable and cannot be reversed.
    pseudonym_secret: str | None = Field(default=None, alias="PSEUDONYM_SECRET")


class BroadcastSettings(BaseSettings):
    """Sending pace, below Telegram's ~30 messages/s to different chats."""

    model_config = _COMMON

    broadcast_rate: float = Field(default=25.0, alias="BROADCAST_RATE")
    per_chat_interval: float = Field(default=1.0, alias="BROADCAST_PER_CHAT_INTERVAL")


class AutosegSettings(BaseSettings):
    """The segmenter behind Magic Pin (``bot.autoseg``)."""

    model_config = _COMMON

    # classical, or package.module:Attr for a plugged-in model (docs/autoseg.md)
    backend: str = Field(default="classical", alias="AUTOSEG_BACKEND")


AGGREGATION_METHODS = ("auto", "majority_vote", "weighted_vote", "dawid_skene")  # bot.tasks.aggregate.METHODS


class AggregationSettings(BaseSettings):
    """How exports turn answers into one label per task (docs/quality.md)."""

    model_config = _COMMON

    # a built-in method, or crowdkit:<Class> with the optional extra crowdpin[crowdkit]
    aggregation: str = Field(default="auto", alias="AGGREGATION")
    # how often the bot looks for tasks that can no longer reach their overlap (bot.tasks.stuck)
    stuck_sweep_seconds: float = Field(default=60.0, gt=0, alias="STUCK_SWEEP_SECONDS")

    @field_validator("aggregation")
    @classmethod
    def _known_method(cls, value: str) -> str:
        value = value.strip()
        if value in AGGREGATION_METHODS:
            return value
        prefix, _, name = value.partition(":")
        if prefix == "crowdkit" and name.isidentifier():
            return value
        raise ValueError(
            f"AGGREGATION must be one of {', '.join(AGGREGATION_METHODS)} or crowdkit:<Class> (e.g. crowdkit:GLAD), not {value!r}"
        )


class Settings(BaseSettings):
    """All sections together; build it once with :func:`get_settings`."""

    model_config = _COMMON

    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    webapp: WebAppSettings = Field(default_factory=WebAppSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    wallet: WalletSettings = Field(default_factory=WalletSettings)
    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings)
    autoseg: AutosegSettings = Field(default_factory=AutosegSettings)
    quality: AggregationSettings = Field(default_factory=AggregationSettings)  # not "aggregation": that is the variable
    timezone: str = Field(default="Asia/Seoul", alias="TIMEZONE")  # what "today" means
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")  # set or not: see log_level_given
    log_json: bool = Field(default=False, alias="LOG_JSON")

    @property
    def log_level_given(self) -> bool:
        """True when LOG_LEVEL came from the environment or ``.env`` (the admin CLI logs only
        warnings unless told otherwise, so its stdout stays for results)."""
        return "log_level" in self.model_fields_set


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
