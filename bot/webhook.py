"""Webhook mode: several stateless replicas behind a load balancer (or one port shared with
SO_REUSEPORT). Each replica answers Telegram at once and handles the update in the background;
Redis keeps one user's updates in order across replicas and drops re-deliveries.

With ``WEBAPP_URL`` set it also serves the Mini App under ``/app/``. Also serves ``/healthz`` (the process is alive), ``/readyz`` (the database and Redis answer)
and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot.app import dispatcher_for, freeze_startup_heap, make_app, make_bot, make_database, set_commands
from bot.config import Settings
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.webhook")


def _ping_db(session: Any) -> None:
    session.execute(text("SELECT 1"))


def open_leases(session: Any) -> int:
    return int(session.execute(text("SELECT count(*) FROM assignment WHERE status = 'leased'")).scalar_one())


class StrictRequestHandler(SimpleRequestHandler):
    """aiogram's handler, except that a body that is not a JSON object gets 400 (and one log
    line) instead of a 500 with a traceback. The secret is checked first, as before: without
    it the answer is 401 whatever the body."""

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if self.verify_secret(request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), bot):
            try:
                update = bot.session.json_loads(await request.text())  # aiohttp keeps the body for the handler
            except (ValueError, UnicodeDecodeError):
                update = None
            if not isinstance(update, dict):
                log.warning("webhook.bad_body", length=request.content_length)
                return web.json_response({"ok": False, "error": "the body must be a JSON object (a Telegram Update)"}, status=400)
        return await super().handle(request)


def metrics_allowed(request: web.Request, token: str | None) -> bool:
    """Without METRICS_TOKEN anyone who reaches the port may read /metrics (counts, no personal
    data); with it, only "Authorization: Bearer <token>" (compared in constant time)."""
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def build_web_app(
    app: App, bot: Bot, dp: Dispatcher, *, secret: str | None, path: str, metrics_token: str | None = None
) -> web.Application:
    web_app = web.Application()
    StrictRequestHandler(dispatcher=dp, bot=bot, handle_in_background=True, secret_token=secret).register(web_app, path=path)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(app.db.run(_ping_db), 3)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"error: {exc.__class__.__name__}"
        redis = app.redis
        if redis is not None:
            try:
                await asyncio.wait_for(redis.ping(), 3)
                checks["redis"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["redis"] = f"error: {exc.__class__.__name__}"
        ok = all(v == "ok" for v in checks.values())
        return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        assert app.metrics is not None
        if not metrics_allowed(request, metrics_token):
            return web.Response(status=401, text="metrics need Authorization: Bearer <METRICS_TOKEN>")
        try:
            app.metrics.open_leases.set(await asyncio.wait_for(app.db.run(open_leases), 3))
        except Exception as exc:  # noqa: BLE001 - metrics must still answer when the DB is slow
            log.warning("metrics.open_leases_failed", error=str(exc))
        body = generate_latest(app.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/metrics", metrics)
    if app.settings.webapp.webapp_url:  # the Mini App's page and API under /app/ (docs/miniapp.md)
        from bot.webapp import add_webapp_routes

        add_webapp_routes(web_app, app, bot)

    async def on_startup(_: web.Application) -> None:
        await dp.emit_startup(bot=bot, dispatcher=dp, **dp.workflow_data)

    async def on_shutdown(_: web.Application) -> None:
        await dp.emit_shutdown(bot=bot, dispatcher=dp, **dp.workflow_data)
        await bot.session.close()
        redis = app.redis
        if redis is not None:
            await redis.aclose()

    web_app.on_startup.append(on_startup)
    web_app.on_shutdown.append(on_shutdown)
    return web_app


def webhook_secret(settings: Settings) -> str:
    """WEBHOOK_SECRET, or one derived from the token so that every replica agrees on it."""
    if settings.webhook.webhook_secret:
        return settings.webhook.webhook_secret
    token = settings.telegram.bot_token or ""
    return hashlib.sha256(f"crowdpin-webhook:{token}".encode()).hexdigest()[:48]


async def serve(settings: Settings, *, register_webhook: bool = True, reuse_port: bool = False) -> None:
    """Run one webhook replica until cancelled."""
    hook = settings.webhook
    secret = webhook_secret(settings)
    db = make_database(settings)
    app = make_app(settings, db)
    bot = make_bot(settings, metrics=app.metrics)
    dp = dispatcher_for(app)
    web_app = build_web_app(app, bot, dp, secret=secret, path=hook.webhook_path, metrics_token=hook.metrics_token)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, hook.webhook_host, hook.webhook_port, reuse_port=reuse_port)
    await site.start()
    if not hook.metrics_token and hook.webhook_host in ("0.0.0.0", "::", ""):
        log.warning("metrics.public", host=hook.webhook_host, hint="set METRICS_TOKEN, or WEBHOOK_HOST to a private address")
    try:
        if register_webhook:
            if not hook.webhook_url:
                raise SystemExit("WEBHOOK_URL is not set (the public URL Telegram should POST to)")
            await bot.set_webhook(
                hook.webhook_url.rstrip("/") + hook.webhook_path,
                secret_token=secret,
                allowed_updates=dp.resolve_used_update_types(),
                drop_pending_updates=False,
            )
            await set_commands(bot)
        log.info("bot.started", mode="webhook", port=hook.webhook_port, path=hook.webhook_path)
        freeze_startup_heap()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        db.dispose()


def run_webhook(settings: Settings) -> None:
    if not settings.telegram.bot_token:
        raise SystemExit("BOT_TOKEN is not set")
    try:
        asyncio.run(serve(settings, reuse_port=True))
    except KeyboardInterrupt:
        pass
