"""Factories: settings -> database, bot, dispatcher (with its jobs). The CLI, tests and
benchmarks all build the bot here, so what is tested is what runs."""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.types import BotCommand, TelegramObject, Update

from bot import autoseg
from bot.config import Settings
from bot.db import Database
from bot.db.migrate import upgrade
from bot.handlers import admin, boxes, broadcast, errors, masks, quality, wallet, worker
from bot.handlers.middlewares import DedupMiddleware, SeenUpdates, WorkerDirectory, WorkerMiddleware
from bot.jobs import start_jobs
from bot.telegram import fast_types
from bot.telegram.draining import DrainingDispatcher
from bot.telegram.gate import GatedDispatcher, RedisGate, use_tap_aware_fsm
from bot.telegram.metrics import Metrics
from bot.telegram.runtime import App
from bot.telegram.session import make_session

log = structlog.get_logger("crowdpin.bot")

COMMANDS = {
    "ko": [
        ("task", "작업 받기"),
        ("balance", "내 잔액"),
        ("withdraw", "출금하기"),
        ("stats", "내 정확도"),
        ("help", "도움말"),
        ("language", "언어 바꾸기"),
    ],
    "en": [
        ("task", "Get a task"),
        ("balance", "My balance"),
        ("withdraw", "Withdraw"),
        ("stats", "My accuracy"),
        ("help", "Help"),
        ("language", "Language"),
    ],
}


def make_database(settings: Settings, *, migrate: bool = True) -> Database:
    if migrate:
        upgrade(settings.database.database_url)
    return Database(
        settings.database.database_url,
        pool_size=settings.database.db_pool_size,
        echo=settings.database.db_echo,
        threads=settings.database.db_threads,
        group_commit=settings.database.db_group_commit,
    )


def make_bot(settings: Settings, token: str | None = None, metrics: Metrics | None = None) -> Bot:
    token = token or settings.telegram.bot_token
    if not token:
        raise SystemExit("BOT_TOKEN is not set (or run `crowdpin demo` for the local sandbox)")
    session = make_session(settings.telegram.telegram_api_base, metrics)
    return Bot(token=token, session=session, default=DefaultBotProperties())


class TimingMiddleware(BaseMiddleware):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        try:
            return await handler(event, data)
        finally:
            assert isinstance(event, Update)
            self.metrics.updates.labels(event.event_type).inc()
            self.metrics.latency.observe(time.perf_counter() - started)


def make_dispatcher(
    app: App,
    *,
    seen: Any | None = None,
    storage: Any | None = None,
    events_isolation: Any | None = None,
    gate: RedisGate | None = None,
) -> DrainingDispatcher:
    """The bot's dispatcher. With a ``gate`` (Redis, several replicas) updates are admitted
    before aiogram's middlewares: once each, one per user at a time; without, one process
    drops repeated update ids itself (``seen``)."""
    kwargs: dict[str, Any] = {}
    if storage is not None:
        kwargs["storage"] = storage
    if events_isolation is not None:
        kwargs["events_isolation"] = events_isolation
    kwargs["in_flight"] = app.in_flight
    fast_types.install()
    # both wait for the updates in flight before any shutdown hook runs (bot.telegram.draining)
    dp = GatedDispatcher(gate=gate, **kwargs) if gate is not None else DrainingDispatcher(**kwargs)
    use_tap_aware_fsm(dp)
    dp["app"] = app  # startup hooks and handlers receive the App as ``app``
    if app.metrics is not None:
        dp.update.outer_middleware(TimingMiddleware(app.metrics))
    if gate is None:
        dp.update.outer_middleware(DedupMiddleware(seen or SeenUpdates()))
    directory = WorkerDirectory()
    dp.update.outer_middleware(WorkerMiddleware(app, directory))
    for router in (worker.taps, errors.router, *extra_routers(), worker.router):
        _include(dp, router)

    async def on_startup(bot: Bot) -> None:
        app.jobs = start_jobs(app, bot)

    async def on_shutdown() -> None:
        jobs, app.jobs = app.jobs, None
        if jobs is not None:
            await jobs.stop()
        app.pictures.close()

    dp.startup.register(on_startup)
    dp.shutdown.register(on_shutdown)
    return dp


def _include(dp: Dispatcher, router: Router) -> None:
    """Attach a module-level router, detaching it from a dispatcher that has been shut down.

    Routers are module singletons (decorators register on import); a restarted bot in the same
    process (tests, the sandbox) needs them on its new dispatcher. Only one live dispatcher per
    process may own them, which is how the bot runs.
    """
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None  # aiogram has no public detach
    dp.include_router(router)


def extra_routers() -> list[Router]:
    """Feature routers checked after the task taps and before the worker loop's catch-alls."""
    return [admin.router, wallet.router, masks.router, boxes.router, quality.router, broadcast.router]


async def set_commands(bot: Bot) -> None:
    for lang, items in COMMANDS.items():
        commands = [BotCommand(command=c, description=d) for c, d in items]
        await bot.set_my_commands(commands, language_code=None if lang == "ko" else lang)


def make_app(settings: Settings, db: Database) -> App:
    media_dir = settings.media.media_dir
    media_dir.mkdir(parents=True, exist_ok=True)
    autoseg.configure(settings.autoseg.backend)
    return App(settings=settings, db=db, media_dir=media_dir, metrics=Metrics())


def dispatcher_for(app: App) -> Dispatcher:
    """The dispatcher with Redis storage, isolation and de-duplication when ``REDIS_URL`` is set."""
    url = app.settings.redis.redis_url
    if not url:
        return make_dispatcher(app)
    from bot.telegram.redis_support import redis_components

    parts = redis_components(url)
    app.redis = parts.redis
    return make_dispatcher(app, storage=parts.storage, gate=parts.gate)


def freeze_startup_heap() -> None:
    """Move everything built at start-up (modules, aiogram's routers and types, SQLAlchemy's
    compiled statements) out of the garbage collector's reach.

    A full collection walks every tracked object: with the bot's heap it stopped the event
    loop for 80-250 ms every few thousand answers, and every worker tapping at that moment
    waited for it (the paced round's p95). These objects live as long as the process, so
    scanning them again can never free anything (CPython's ``gc.freeze`` advice for servers).
    """
    gc.collect()
    gc.freeze()


async def run_polling(settings: Settings, *, token: str | None = None) -> None:
    db = make_database(settings)
    app = make_app(settings, db)
    bot = make_bot(settings, token, app.metrics)
    dp = dispatcher_for(app)
    webapp = None
    if settings.webapp.webapp_url:  # the Mini App's page, on a server of its own (docs/miniapp.md)
        from bot.webapp import start_webapp_server

        webapp = await start_webapp_server(app, bot, settings.webapp.webapp_host, settings.webapp.webapp_port)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await set_commands(bot)
        me = await bot.get_me()
        log.info("bot.started", username=me.username, mode="polling", database=db.url.split("@")[-1])
        freeze_startup_heap()
        await dp.start_polling(bot, handle_signals=True, close_bot_session=True)
    finally:
        if webapp is not None:
            await webapp.cleanup()
        db.dispose()
