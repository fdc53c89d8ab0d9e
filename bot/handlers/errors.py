"""Nothing a worker does may crash the bot: log with context, answer kindly in their language."""

from __future__ import annotations

import structlog
from aiogram import Bot, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import ErrorEvent

from bot import workers
from bot.handlers.middlewares import WorkerCtx
from bot.i18n import t
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.bot")
router = Router(name="errors")


@router.error()
async def on_error(event: ErrorEvent, bot: Bot, app: App | None = None, lang: str = "ko", worker: WorkerCtx | None = None) -> bool:
    update = event.update
    exc = event.exception
    user = None
    chat_id = None
    if update.message is not None:
        user, chat_id = update.message.from_user, update.message.chat.id
    elif update.callback_query is not None:
        user = update.callback_query.from_user
        chat_id = update.callback_query.message.chat.id if update.callback_query.message else user.id
    if isinstance(exc, TelegramForbiddenError):
        log.info("worker.unreachable", update_id=update.update_id, tg_id=getattr(user, "id", None))
        if app is not None and worker is not None:
            await app.db.run(workers.mark_unreachable, worker.id)
        return True
    log.error(
        "update.failed",
        update_id=update.update_id,
        tg_id=getattr(user, "id", None),
        error=f"{exc.__class__.__name__}: {exc}",
        exc_info=exc,
    )
    if app is not None and app.metrics is not None:
        app.metrics.errors.inc()
    try:
        if update.callback_query is not None:
            await bot.answer_callback_query(update.callback_query.id, text=t("error.generic", lang))
        elif chat_id is not None:
            await bot.send_message(chat_id, t("error.generic", lang))
    except Exception as notify_exc:  # noqa: BLE001 - the apology itself failed; already logged above
        log.warning("update.apology_failed", error=str(notify_exc))
    return True
