"""The worker's side: welcome, language, help, and the one-tap labeling loop."""

from __future__ import annotations

import structlog
from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from bot import workers
from bot.handlers import keyboards, presenter
from bot.handlers import quality as quality_ui
from bot.handlers.callbacks import Act, LangCb, NextCb, TaskCb
from bot.handlers.keyboards import menu_texts
from bot.handlers.middlewares import WorkerCtx, WorkerDirectory
from bot.i18n import t
from bot.tasks import service
from bot.tasks.service import NoTask, NoTaskReason, Refusal, Submitted, TaskCard
from bot.telegram.runtime import App
from bot.work import answers

log = structlog.get_logger("crowdpin.bot")
router = Router(name="worker")
# The task buttons, checked before every other router: a tap on a label is most of the bot's
# traffic, and each router an update passes through costs dispatch work. No other router
# handles these actions (magic-pin and mask buttons use other ``Act`` values).
taps = Router(name="worker-taps")

REPORT_REASONS = ("broken", "offensive")


@router.message(CommandStart())
async def on_start(message: Message, worker: WorkerCtx, lang: str) -> None:
    key = "welcome.new" if worker.is_new else "welcome.back"
    await message.answer(t(key, lang, name=worker.name or "🙂"), reply_markup=keyboards.main_menu(lang))


@router.message(Command("help"))
@router.message(F.text.in_(menu_texts("menu.help")))
async def on_help(message: Message, lang: str) -> None:
    await message.answer(t("help.text", lang), reply_markup=keyboards.main_menu(lang))


@router.message(Command("language"))
async def on_language(message: Message) -> None:
    await message.answer(t("language.choose"), reply_markup=keyboards.language_picker())


@router.callback_query(LangCb.filter())
async def on_language_chosen(query: CallbackQuery, callback_data: LangCb, app: App, worker: WorkerCtx, directory: WorkerDirectory) -> None:
    lang = callback_data.code if callback_data.code in ("ko", "en") else "ko"
    await app.db.run(workers.set_language, worker.id, lang)
    directory.put(WorkerCtx(worker.id, worker.tg_id, worker.name, lang, worker.status))
    await query.answer()
    if query.message is not None:
        await query.bot.send_message(query.message.chat.id, t("language.set", lang), reply_markup=keyboards.main_menu(lang))  # type: ignore[union-attr]


async def _show_next(bot: Bot, app: App, chat_id: int, nxt: TaskCard | NoTask, lang: str, edit_message_id: int | None) -> None:
    if isinstance(nxt, TaskCard):
        await presenter.show(bot, app, chat_id, nxt, lang, edit_message_id=edit_message_id)
        return
    if nxt.reason == NoTaskReason.BANNED:
        text = t("task.banned", lang, reason=nxt.detail or "-")
    elif nxt.notice is not None:  # a quality rule or stage (exam cool-down, daily cap...)
        text = quality_ui.notice_text(nxt.notice, lang)
    else:
        text = t("task.all_done", lang)
    if edit_message_id is not None:
        # The old task stays visible but loses its buttons, so it cannot be tapped again.
        try:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=edit_message_id, reply_markup=None)
        except Exception as exc:  # noqa: BLE001 - cosmetic; the lease is closed anyway
            log.info("task.unkeyboard_failed", error=str(exc))
    await bot.send_message(chat_id, text, reply_markup=keyboards.main_menu(lang))


@router.message(F.text.in_(menu_texts("menu.get_task")))
@router.message(Command("task"))
async def on_get_task(message: Message, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    nxt = await app.db.run(service.next_task, worker.id, lang=lang, tz=app.tz)
    await _show_next(bot, app, message.chat.id, nxt, lang, None)


@router.callback_query(NextCb.filter())
async def on_start_tasks(query: CallbackQuery, callback_data: NextCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    await query.answer()
    project_id = callback_data.project or None
    nxt = await app.db.run(service.next_task, worker.id, lang=lang, project_id=project_id, tz=app.tz)
    if isinstance(nxt, NoTask) and project_id is not None:
        nxt = await app.db.run(service.next_task, worker.id, lang=lang, tz=app.tz)
    chat_id = query.message.chat.id if query.message else query.from_user.id
    await _show_next(bot, app, chat_id, nxt, lang, None)


def refusal_text(refusal: Refusal, lang: str) -> str:
    return t(f"refuse.{refusal.value}", lang)


async def finish(
    query: CallbackQuery,
    bot: Bot,
    app: App,
    worker: WorkerCtx,
    lang: str,
    assignment_id: int,
    action: str,
    value: str = "",
    mask_rle: str | None = None,
) -> service.AnswerOutcome:
    """Record the action, stop the button spinner and show the next task in the same message."""
    message = query.message
    chat_id = message.chat.id if message else query.from_user.id
    message_id = message.message_id if message else None
    outcome = await app.db.run_grouped(
        answers.act_and_next,
        worker.id,
        assignment_id,
        action,
        value,
        lang=lang,
        chat_id=chat_id,
        message_id=message_id,
        mask_rle=mask_rle,
        tz=app.tz,
    )
    if isinstance(outcome.result, Refusal):
        log.info("task.refused", assignment_id=assignment_id, reason=outcome.result.value, action=action)
        await query.answer(refusal_text(outcome.result, lang), show_alert=False)
        return outcome
    if app.metrics is not None and isinstance(outcome.result, Submitted):
        app.metrics.answers.inc()
    notice = None
    if action == "report":
        notice = t("task.report_thanks", lang)
    alert = quality_ui.prepare(outcome, lang)  # a rule warning or exam result pops up over the next task
    answer_cb = presenter.spawn(presenter.answer_callback_soon(bot, query.id, alert or notice, alert is not None))
    await show_outcome(bot, app, chat_id, message_id, outcome, lang)
    await answer_cb
    return outcome


async def show_outcome(bot: Bot, app: App, chat_id: int, message_id: int | None, outcome: service.AnswerOutcome, lang: str) -> None:
    """After an accepted action: practice feedback if any, then the next task, edited into the
    task's message (a button tap and the Mini App's Keep both end here)."""
    assert outcome.next is not None
    if await quality_ui.show_training_feedback(bot, chat_id, message_id, outcome.result, lang):
        message_id = None  # the practice photo keeps its feedback; the next task comes below it
    await _show_next(bot, app, chat_id, outcome.next, lang, message_id)


@taps.callback_query(TaskCb.filter(F.a == Act.LABEL))
async def on_label(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    # The label travels as an index; the domain maps it to the project's labels and refuses others.
    await finish(query, bot, app, worker, lang, callback_data.id, "label", str(callback_data.v))


@taps.callback_query(TaskCb.filter(F.a == Act.SKIP))
async def on_skip(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    await finish(query, bot, app, worker, lang, callback_data.id, "skip")


@taps.callback_query(TaskCb.filter(F.a == Act.REPORT))
async def on_report(query: CallbackQuery, callback_data: TaskCb, app: App, worker: WorkerCtx, lang: str) -> None:
    status = await app.db.run(_lease_status, worker.id, callback_data.id)
    if status is not None:
        await query.answer(refusal_text(status, lang))
        return
    await query.answer()
    if query.message is not None:
        await query.message.edit_reply_markup(reply_markup=keyboards.report_reasons(callback_data.id, lang))  # type: ignore[union-attr]


@taps.callback_query(TaskCb.filter(F.a == Act.BACK))
async def on_report_back(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    nxt = await app.db.run(service.next_task, worker.id, lang=lang, tz=app.tz)
    await query.answer()
    if isinstance(nxt, TaskCard) and nxt.assignment_id == callback_data.id and query.message is not None:
        rendered = await presenter.render(app, nxt, lang)
        await query.message.edit_reply_markup(reply_markup=keyboards.markup(rendered.keyboard))  # type: ignore[union-attr]


@taps.callback_query(TaskCb.filter(F.a == Act.REPORT_REASON))
async def on_report_reason(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    reason = REPORT_REASONS[callback_data.v] if 0 <= callback_data.v < len(REPORT_REASONS) else "broken"
    await finish(query, bot, app, worker, lang, callback_data.id, "report", reason)


def _lease_status(session, worker_id: int, assignment_id: int) -> Refusal | None:
    found = service._open_assignment(session, worker_id, assignment_id, service.utcnow())
    return found if isinstance(found, Refusal) else None


@router.callback_query()
async def on_unknown_button(query: CallbackQuery, lang: str) -> None:
    """Any tap no router took (a forged or out-of-range value, an old format): answer it so the
    client's spinner stops, and change nothing."""
    await query.answer(t("refuse.unknown", lang))
