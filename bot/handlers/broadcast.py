"""Operators announce new tasks from Telegram, and the bot's background broadcast worker.

``/broadcast`` (operators in ADMIN_IDS only): pick a project and who gets it (or give them as
``/broadcast PROJECT [all|qualified|active-days:N]``), send the text or a photo with a caption,
look at the preview and confirm. The confirmed broadcast is queued in the database; the
background worker (started with the dispatcher) sends it, editing the operator's status
message at most every few seconds. The same worker sends broadcasts queued by
``crowdpin admin broadcast ... --detach`` and resumes any broadcast whose runner died.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, TelegramObject

from bot.broadcast import lease, service
from bot.broadcast.audience import Audience, AudienceError
from bot.broadcast.delivery import Delivery, RunResult
from bot.broadcast.models import BroadcastStatus
from bot.broadcast.pacing import shared_pacer
from bot.clock import utcnow
from bot.handlers.broadcast_transport import AiogramTransport, start_keyboard
from bot.handlers.context import App
from bot.i18n import t
from bot.tasks import projects
from bot import workers

log = structlog.get_logger("crowdpin.broadcast")
router = Router(name="broadcast")

STATUS_EVERY = 3.0  # seconds between edits of an operator's status message
POLL_EVERY = 2.0  # seconds between looks for broadcasts to send
ERROR_COOLDOWN = 60.0  # after a fatal error (token revoked...), wait before trying that broadcast again
ACTIVE_DAYS = 7  # the "recently active" button


class BcCb(CallbackData, prefix="bc"):
    a: str  # p project, a audience, ok confirm, no cancel, stop
    v: int = 0


class Form(StatesGroup):
    content = State()
    confirm = State()


async def is_operator(event: TelegramObject, app: App | None = None, event_from_user: Any = None) -> bool:
    return app is not None and event_from_user is not None and app.is_admin(event_from_user.id)


router.message.filter(is_operator)
router.callback_query.filter(is_operator)


def error_text(exc: Exception, lang: str) -> str:
    """A translated message for the known cases, the domain's own words for the rest."""
    code = getattr(exc, "code", "")
    if code:
        return t(f"broadcast.err_{code}", lang, **getattr(exc, "params", {}))
    return t("broadcast.error", lang, reason=str(exc))


def _kb(rows: list[list[tuple[str, BcCb]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=cb.pack()) for text, cb in row] for row in rows]
    )


def _audience_label(spec: str, lang: str) -> str:
    aud = Audience.parse(spec)
    if aud.kind == "active-days":
        return t("broadcast.audience_active", lang, days=aud.days)
    return t(f"broadcast.audience_{aud.kind}", lang)


def audience_keyboard(lang: str) -> InlineKeyboardMarkup:
    return _kb(
        [
            [(t("broadcast.audience_all", lang), BcCb(a="a", v=0))],
            [(t("broadcast.audience_qualified", lang), BcCb(a="a", v=-1))],
            [(t("broadcast.audience_active", lang, days=ACTIVE_DAYS), BcCb(a="a", v=ACTIVE_DAYS))],
        ]
    )


def _spec_from_button(v: int) -> str:
    return "all" if v == 0 else "qualified" if v < 0 else f"active-days:{v}"


# --------------------------------------------------------------------------- the operator's flow


@router.message(Command("broadcast"))
async def on_broadcast(message: Message, command: CommandObject, app: App, lang: str, state: FSMContext) -> None:
    await state.clear()
    args = (command.args or "").split()
    if args:
        try:
            project = await app.db.run(projects.find, args[0])
        except projects.ProjectNotFound:
            await message.answer(t("broadcast.err_no_project", lang, ref=args[0]))
            return
        try:
            spec = str(Audience.parse(args[1])) if len(args) > 1 else None
        except AudienceError:
            await message.answer(t("broadcast.err_audience", lang, spec=args[1]))
            return
        await state.update_data(project=project.id)
        if spec is None:
            await message.answer(t("broadcast.choose_audience", lang), reply_markup=audience_keyboard(lang))
            return
        await state.update_data(audience=spec)
        await state.set_state(Form.content)
        await message.answer(t("broadcast.ask_content", lang))
        return
    active = await app.db.run(projects.active)
    if not active:
        await message.answer(t("broadcast.no_projects", lang))
        return
    rows = [[(p.name[:60], BcCb(a="p", v=p.id or 0))] for p in active[:20]]
    text = t("broadcast.usage", lang) + "\n\n" + t("broadcast.choose_project", lang)
    await message.answer(text, reply_markup=_kb(rows))


@router.callback_query(BcCb.filter(F.a == "p"))
async def on_project(query: CallbackQuery, callback_data: BcCb, lang: str, state: FSMContext) -> None:
    await state.clear()
    await state.update_data(project=callback_data.v)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(t("broadcast.choose_audience", lang), reply_markup=audience_keyboard(lang))


@router.callback_query(BcCb.filter(F.a == "a"))
async def on_audience(query: CallbackQuery, callback_data: BcCb, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    await query.answer()
    if "project" not in data or not isinstance(query.message, Message):
        if isinstance(query.message, Message):
            await query.message.edit_text(t("broadcast.expired", lang))
        return
    await state.update_data(audience=_spec_from_button(callback_data.v))
    await state.set_state(Form.content)
    await query.message.edit_text(t("broadcast.ask_content", lang))


@router.message(Form.content, Command("cancel"))
@router.message(Form.confirm, Command("cancel"))
async def on_cancel_command(message: Message, lang: str, state: FSMContext) -> None:
    await state.clear()
    await message.answer(t("broadcast.cancelled", lang))


@router.message(Form.content, F.photo | F.text)
async def on_content(message: Message, app: App, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    photo_id = message.photo[-1].file_id if message.photo else None
    text = (message.caption if photo_id else message.text) or ""
    try:
        clean = service.check_text(text, with_photo=photo_id is not None)
        count = await app.db.run(service.count_recipients, data["project"], data["audience"])
    except service.BroadcastError as exc:
        await message.answer(error_text(exc, lang))
        return  # still waiting for content: the operator can simply send a better one
    if count == 0:
        await message.answer(t("broadcast.err_nobody", lang))
        return
    button = start_keyboard(_preview_button(data["project"], lang))
    if photo_id:
        await message.answer_photo(photo_id, caption=clean, reply_markup=button, parse_mode=None)
    else:
        await message.answer(clean, reply_markup=button, parse_mode=None)
    await state.update_data(text=clean, photo=photo_id, count=count)
    await state.set_state(Form.confirm)
    await message.answer(
        t("broadcast.preview", lang, count=count, audience=_audience_label(data["audience"], lang)),
        reply_markup=_kb([[(t("broadcast.confirm", lang, count=count), BcCb(a="ok")), (t("broadcast.cancel", lang), BcCb(a="no"))]]),
    )


def _preview_button(project_id: int, lang: str) -> Any:
    from bot.broadcast.transport import Button

    return Button(t("broadcast.start_button", lang), project_id)


@router.callback_query(BcCb.filter(F.a == "no"))
async def on_no(query: CallbackQuery, lang: str, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(t("broadcast.cancelled", lang))


@router.callback_query(BcCb.filter(F.a == "ok"))
async def on_confirm(query: CallbackQuery, app: App, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    if await state.get_state() != Form.confirm.state or "text" not in data:
        await message.edit_text(t("broadcast.expired", lang))
        return
    await state.clear()  # a second tap finds no state: no second broadcast
    try:
        broadcast = await app.db.run(
            service.create,
            data["project"],
            data["text"],
            audience=data["audience"],
            photo_file_id=data.get("photo"),
            created_by=query.from_user.id,
            status_chat_id=message.chat.id,
        )
    except service.BroadcastError as exc:
        await message.edit_text(error_text(exc, lang))
        return
    await app.db.run(service.set_status_message, broadcast.id, message.chat.id, message.message_id)
    progress = await app.db.run(service.progress, broadcast.id)
    await message.edit_text(
        render_status(progress, lang, app.settings.broadcast.broadcast_rate), reply_markup=stop_keyboard(broadcast.id, lang)
    )
    worker = app.extras.get("broadcast_worker")
    if isinstance(worker, BroadcastWorker):
        worker.wake()


@router.callback_query(BcCb.filter(F.a == "stop"))
async def on_stop(query: CallbackQuery, callback_data: BcCb, app: App, lang: str) -> None:
    try:
        await app.db.run(service.cancel, callback_data.v)
    except service.BroadcastError as exc:
        await query.answer(error_text(exc, lang)[:190])
        return
    await query.answer(t("broadcast.stopped", lang, id=callback_data.v))
    progress = await app.db.run(service.progress, callback_data.v)
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(render_status(progress, lang, app.settings.broadcast.broadcast_rate))


# --------------------------------------------------------------------------- status message


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_status(p: service.Progress, lang: str, fallback_rate: float) -> str:
    running = p.status in (BroadcastStatus.PENDING, BroadcastStatus.RUNNING)
    return t(
        "broadcast.status",
        lang,
        id=p.broadcast_id,
        state=t(f"broadcast.state_{p.status}", lang),
        sent=p.sent,
        failed=p.failed,
        blocked=p.blocked,
        remaining=p.remaining,
        rate=f"{p.rate:.1f}",
        eta=_duration(p.eta_seconds(fallback_rate) if running else 0),
    )


def stop_keyboard(broadcast_id: int, lang: str) -> InlineKeyboardMarkup:
    return _kb([[(t("broadcast.stop", lang), BcCb(a="stop", v=broadcast_id))]])


class StatusReporter:
    """Edits one operator's status message, at most every ``every`` seconds and only on change."""

    def __init__(self, bot: Bot, app: App, broadcast_id: int, chat_id: int, message_id: int, lang: str, every: float = STATUS_EVERY) -> None:
        self.bot, self.app, self.broadcast_id = bot, app, broadcast_id
        self.chat_id, self.message_id, self.lang, self.every = chat_id, message_id, lang, every
        self._last_text = ""
        self._last_at = 0.0
        self.edits = 0

    async def update(self, *, final: bool = False) -> None:
        if not final and time.monotonic() - self._last_at < self.every:
            return
        p = await self.app.db.run(service.progress, self.broadcast_id)
        text = render_status(p, self.lang, self.app.settings.broadcast.broadcast_rate)
        if text == self._last_text:
            return
        live = p.status in (BroadcastStatus.PENDING, BroadcastStatus.RUNNING) and not final
        try:
            await self.bot.edit_message_text(
                text=text,
                chat_id=self.chat_id,
                message_id=self.message_id,
                reply_markup=stop_keyboard(self.broadcast_id, self.lang) if live else None,
            )
            self.edits += 1
        except TelegramAPIError as exc:  # deleted message, not modified...: not worth failing for
            log.info("broadcast.status_edit_failed", error=str(exc))
        self._last_text, self._last_at = text, time.monotonic()

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), self.every)
            await self.update(final=done.is_set())


# --------------------------------------------------------------------------- background worker


class BroadcastWorker:
    """Sends every broadcast that needs a runner: queued ones, and those whose runner died.

    All deliveries of the process share one pacer (in Redis when REDIS_URL is set, so all
    replicas share it); several replicas may run this worker, the lease keeps one runner per
    broadcast.
    """

    def __init__(self, app: App, bot: Bot, *, poll: float = POLL_EVERY, status_every: float = STATUS_EVERY) -> None:
        self.app = app
        self.bot = bot
        self.poll = poll
        self.status_every = status_every
        settings = app.settings.broadcast
        self.pacer = shared_pacer(
            settings.broadcast_rate, settings.per_chat_interval, redis_url=app.settings.redis.redis_url, bot_id=str(bot.id)
        )
        self.transport = AiogramTransport(bot)
        self._running: dict[int, tuple[Delivery, asyncio.Task[RunResult]]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._cooldown: dict[int, float] = {}
        self.results: list[RunResult] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="broadcast-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Let every delivery finish its in-flight message and release its broadcast."""
        self._stopping = True
        self._wake.set()
        for delivery, _ in self._running.values():
            delivery.stop()
        tasks = [task for _, task in self._running.values()]
        if self._task is not None:
            tasks.append(self._task)  # type: ignore[arg-type]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                for bid in await self.app.db.run(lease.runnable, utcnow()):
                    if bid not in self._running and not self._stopping and self._cooldown.get(bid, 0) <= time.monotonic():
                        self._spawn(bid)
            except Exception as exc:  # noqa: BLE001 - a DB hiccup must not end the worker
                log.error("broadcast.worker_error", error=str(exc))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def _spawn(self, broadcast_id: int) -> None:
        delivery = Delivery(self.app.db, self.transport, self.pacer, runner=lease.new_runner_id("bot"))
        task = asyncio.create_task(self._run(delivery, broadcast_id), name=f"broadcast-{broadcast_id}")
        self._running[broadcast_id] = (delivery, task)
        task.add_done_callback(lambda _t, bid=broadcast_id: self._running.pop(bid, None))

    async def _run(self, delivery: Delivery, broadcast_id: int) -> RunResult:
        broadcast = await self.app.db.run(service.get, broadcast_id)
        reporter = None
        if broadcast.status_chat_id and broadcast.status_message_id:
            lang = self.app.settings.telegram.default_locale
            if broadcast.created_by:
                operator = await self.app.db.run(workers.get_by_tg, broadcast.created_by)
                lang = operator.lang if operator is not None else lang
            reporter = StatusReporter(
                self.bot, self.app, broadcast_id, broadcast.status_chat_id, broadcast.status_message_id, lang, self.status_every
            )
        done = asyncio.Event()
        side = asyncio.create_task(reporter.run(done)) if reporter else None
        try:
            result = await delivery.run(broadcast_id)
        except Exception as exc:
            log.exception("broadcast.run_crashed", broadcast_id=broadcast_id, error=str(exc))
            raise
        finally:
            done.set()
            if side is not None:
                with contextlib.suppress(Exception):
                    await side
        self.results.append(result)
        if result.status == "error":
            self._cooldown[broadcast_id] = time.monotonic() + ERROR_COOLDOWN
        return result


def _find_app(dispatcher: Dispatcher, kwargs: dict[str, Any]) -> App | None:
    app = kwargs.get("app") or dispatcher.workflow_data.get("app")
    if isinstance(app, App):
        return app
    for middleware in dispatcher.update.outer_middleware:  # WorkerMiddleware carries it
        candidate = getattr(middleware, "app", None)
        if isinstance(candidate, App):
            return candidate
    return None


@router.startup()
async def _start_worker(bot: Bot, dispatcher: Dispatcher, **kwargs: Any) -> None:
    app = _find_app(dispatcher, kwargs)
    if app is None:
        log.warning("broadcast.worker_not_started", reason="no App in the dispatcher")
        return
    worker = BroadcastWorker(app, bot)
    app.extras["broadcast_worker"] = worker
    worker.start()
    log.info("broadcast.worker_started")


@router.shutdown()
async def _stop_worker(dispatcher: Dispatcher, **kwargs: Any) -> None:
    app = _find_app(dispatcher, kwargs)
    worker = app.extras.pop("broadcast_worker", None) if app is not None else None
    if isinstance(worker, BroadcastWorker):
        await worker.stop()
