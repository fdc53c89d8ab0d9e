"""The emulator's state and logic, with no I/O: the Python API tests and the HTTP server drive.

:class:`Emulator` plays Telegram (bots, their update queues, chats and
files, validated Bot API calls) and the people on the other side (users who
write, tap buttons and block the bot) and the network (flood control,
faults). :class:`~bot.emulator.server.EmulatorServer` puts it on HTTP.

All methods must be called from the event loop the server runs on; other
threads and processes use the HTTP control API (``/_emu/...``).
"""

from __future__ import annotations

import inspect
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from .errors import (
    BOT_BLOCKED,
    CANT_INITIATE,
    CHAT_NOT_FOUND,
    NOT_FOUND,
    UNAUTHORIZED,
    ApiError,
    EmulatorError,
)
from .faults import Fault, FaultPlan
from .files import FileStore
from .flood import DEFAULT_GLOBAL_PER_S, DEFAULT_PER_CHAT_PER_S, FloodControl
from .formatting import utf16_len
from .markup import find_callback_button
from .methods import METHODS
from .spec import BotApiSpec, load_spec
from .state import BotState, CallbackQueryState, ChatState, EmulatedUser, StoredMessage, TranscriptMessage
from .stats import EmulatorStats
from .validation import UploadedFile, Validator
from .waiting import ANY_CHANGE, ChangeNotifier
from .webapp import find_web_app_button, init_data_fields, launch_url, sign_init_data

T = TypeVar("T")

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"
_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")
_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
FIRST_BOT_ID = 7_000_000_001
FIRST_USER_ID = 100_000_001


def make_token(bot_id: int) -> str:
    """A token in Telegram's format: ``<bot id>:<35 characters>``."""
    return f"{bot_id}:AA" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(33))


def command_entities(text: str) -> list[dict[str, Any]]:
    """``bot_command`` entities, as Telegram's clients attach them to ``/start`` and the like."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())} for m in _COMMAND_RE.finditer(text)
    ]


class Emulator:
    """A local Telegram: bots, users, chats, updates and the Bot API methods, in memory.

    ``flood_control`` turns Telegram's send limits on from the start;
    ``default_token`` registers a bot with that token right away.
    ``callback_query_timeout`` is how long a callback query can be answered;
    ``webhook_retry_delay`` the first back-off of a failed webhook delivery
    (doubling up to ``webhook_max_retry_delay``); ``clock`` the monotonic
    clock used for rates and ages (tests may pass a fake one).
    """

    def __init__(
        self,
        flood_control: bool = False,
        default_token: str | None = None,
        *,
        callback_query_timeout: float = 15.0,
        webhook_retry_delay: float = 1.0,
        webhook_max_retry_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        spec: BotApiSpec | None = None,
    ) -> None:
        self.spec = spec or load_spec()
        self.validator = Validator(self.spec)
        self.files = FileStore()
        self.flood = FloodControl(enabled=flood_control)
        self.faults = FaultPlan()
        self.notifier = ChangeNotifier()
        self.clock = clock
        self.callback_query_timeout = callback_query_timeout
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_max_retry_delay = webhook_max_retry_delay
        self.users: dict[int, EmulatedUser] = {}
        self.bots: dict[str, BotState] = {}
        self.callback_queries: dict[str, CallbackQueryState] = {}
        self._stats = EmulatorStats()
        self._webhook_listeners: list[Callable[[BotState], None]] = []
        self._recent_calls: deque[tuple[str, Any, str]] = deque(maxlen=12)
        self._next_bot_id = FIRST_BOT_ID
        self._next_user_id = FIRST_USER_ID
        self._next_group_id = 13_000_000_000_000_000
        if default_token is not None:
            self.add_bot(token=default_token)

    # -- bots and users -------------------------------------------------------

    def add_bot(self, username: str = "crowdpin_bot", *, token: str | None = None, first_name: str | None = None) -> str:
        """Register a bot account; returns its token (``"<id>:<secret>"``)."""
        if token is not None:
            if not _TOKEN_RE.fullmatch(token):
                raise EmulatorError(f"token {token!r} is not in Telegram's format <digits>:<20+ characters>")
            if token in self.bots:
                raise EmulatorError(f"a bot with token {token[:12]}... already exists")
            bot_id = int(token.split(":", 1)[0])
        else:
            bot_id = self._next_bot_id
            token = make_token(bot_id)
        self._next_bot_id = max(self._next_bot_id, bot_id) + 1
        account = EmulatedUser(
            id=bot_id,
            first_name=first_name or username.removesuffix("_bot").replace("_", " ").title() or "Bot",
            username=username,
            is_bot=True,
        )
        self.bots[token] = BotState(token, account)
        return token

    @property
    def default_token(self) -> str:
        """The first bot's token (what ``token=None`` means everywhere)."""
        if not self.bots:
            raise EmulatorError("no bot registered: call emu.add_bot() first")
        return next(iter(self.bots))

    def bot(self, token: str | None = None) -> BotState:
        if token is None:
            token = self.default_token
        bot = self.bots.get(token)
        if bot is None:
            raise EmulatorError(f"no bot with token {token[:12]}...")
        return bot

    def create_user(
        self,
        user_id: int | None = None,
        first_name: str = "Min",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "ko",
    ) -> EmulatedUser:
        """Create a Telegram user; their private chat with any bot has ``chat_id == user.id``."""
        if user_id is None:
            while self._next_user_id in self.users:
                self._next_user_id += 1
            user_id = self._next_user_id
            self._next_user_id += 1
        elif user_id in self.users:
            raise EmulatorError(f"user {user_id} already exists")
        if user_id <= 0:
            raise EmulatorError("user ids are positive")
        user = EmulatedUser(user_id, first_name, last_name, username, language_code)
        self.users[user_id] = user
        return user

    def user(self, user_id: int) -> EmulatedUser:
        user = self.users.get(user_id)
        if user is None:
            raise EmulatorError(f"no user {user_id}: create it with emu.create_user()")
        return user

    # -- what users do -------------------------------------------------------------

    async def send_text(
        self, user_id: int, text: str, token: str | None = None, *, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """The user sends ``text`` to the bot (``/commands`` get their entity); returns the Message."""
        if not text or not text.strip():
            raise EmulatorError("Telegram clients do not send empty messages")
        bot, chat = self._user_chat(user_id, token)
        message = StoredMessage(
            message_id=chat.allocate_id(),
            from_bot=False,
            sender=chat.user.to_api(),
            date=self.unix_time(),
            text=text,
            entities=command_entities(text),
            reply_to=chat.live(reply_to_message_id) if reply_to_message_id else None,
        )
        return self._user_message(bot, chat, message)

    async def send_photo(
        self, user_id: int, data: bytes, caption: str | None = None, token: str | None = None, *, filename: str = "photo.jpg"
    ) -> dict[str, Any]:
        """The user sends a photo (``data`` is an encoded image); returns the Message."""
        bot, chat = self._user_chat(user_id, token)
        photo = self.files.add_photo(bot.id, UploadedFile(filename, data, "image/jpeg"))
        message = StoredMessage(
            message_id=chat.allocate_id(),
            from_bot=False,
            sender=chat.user.to_api(),
            date=self.unix_time(),
            photo=photo,
            caption=caption or None,
        )
        return self._user_message(bot, chat, message)

    async def tap(
        self,
        user_id: int,
        message_id: int,
        text: str | None = None,
        data: str | None = None,
        token: str | None = None,
    ) -> str:
        """The user taps an inline button (by visible ``text`` or callback ``data``); returns the query id."""
        bot = self.bot(token)
        user = self.user(user_id)
        chat = bot.chats.get(user.id)
        message = chat.live(message_id) if chat is not None else None
        if chat is None or message is None:
            raise EmulatorError(f"no message {message_id} in the chat of user {user_id} (deleted or never sent)")
        if chat.blocked:
            raise EmulatorError(f"user {user_id} has blocked the bot; emu.unblock() first")
        button = find_callback_button(message.reply_markup, text=text, data=data)
        return self._callback_query(bot, chat, message, button["callback_data"])

    def open_web_app(
        self,
        user_id: int,
        message_id: int,
        text: str | None = None,
        token: str | None = None,
        *,
        auth_date: int | None = None,
    ) -> dict[str, Any]:
        """The user taps a ``web_app`` button (by ``text``, or the message's first one): returns
        ``{"url", "init_data", "query_id"}``, the page's URL as a Telegram client opens it, with
        launch data signed with the bot's token exactly as Telegram signs it.

        ``auth_date`` (unix time, default now) lets a test open the page with old launch data.
        """
        bot = self.bot(token)
        user = self.user(user_id)
        chat = bot.chats.get(user.id)
        message = chat.live(message_id) if chat is not None else None
        if chat is None or message is None:
            raise EmulatorError(f"no message {message_id} in the chat of user {user_id} (deleted or never sent)")
        if chat.blocked:
            raise EmulatorError(f"user {user_id} has blocked the bot; emu.unblock() first")
        button = find_web_app_button(message.reply_markup, text)
        fields = init_data_fields(
            user.to_api(),
            self.unix_time() if auth_date is None else auth_date,
            chat_instance=str(abs(hash((bot.id, chat.chat_id))) % 10**18),
        )
        init_data = sign_init_data(bot.token, fields)
        self._stats.web_apps_opened += 1
        return {"url": launch_url(button["web_app"]["url"], init_data), "init_data": init_data, "query_id": fields["query_id"]}

    async def send_callback_query(self, user_id: int, message_id: int, data: str, token: str | None = None) -> str:
        """A callback query with any ``data`` on a message, as a modified client could send it.

        :meth:`tap` only presses buttons that exist, as a real client does; this is for
        testing how the bot treats forged or stale callback data. Returns the query id.
        """
        bot = self.bot(token)
        chat = bot.chats.get(self.user(user_id).id)
        message = chat.live(message_id) if chat is not None else None
        if chat is None or message is None:
            raise EmulatorError(f"no message {message_id} in the chat of user {user_id} (deleted or never sent)")
        return self._callback_query(bot, chat, message, data)

    def block(self, user_id: int, token: str | None = None) -> None:
        """The user blocks the bot: every call to their chat answers 403 until :meth:`unblock`."""
        self._set_blocked(user_id, token, True)

    def unblock(self, user_id: int, token: str | None = None) -> None:
        self._set_blocked(user_id, token, False)

    # -- what tests look at ----------------------------------------------------------

    def transcript(self, chat_id: int, token: str | None = None) -> list[TranscriptMessage]:
        """Every message of the chat by message id, edits applied, deletions marked."""
        chat = self._chat_for_reading(chat_id, token)
        return list(chat.transcript()) if chat is not None else []

    def last_message(self, chat_id: int, from_bot: bool | None = True, token: str | None = None) -> TranscriptMessage | None:
        """The newest message not deleted (from the bot by default; ``from_bot=None`` for either side)."""
        chat = self._chat_for_reading(chat_id, token)
        if chat is None:
            return None
        for message in reversed(chat.messages.values()):
            if not message.deleted and (from_bot is None or message.from_bot == from_bot):
                return message.snapshot()
        return None

    def sent_messages(self, chat_id: int, token: str | None = None) -> list[TranscriptMessage]:
        """The bot's messages in the chat (deleted ones included, marked)."""
        return [m for m in self.transcript(chat_id, token) if m.from_bot]

    def chat_version(self, chat_id: int, token: str | None = None) -> int:
        """A counter bumped by every change in the chat (new message, edit, deletion)."""
        chat = self._chat_for_reading(chat_id, token)
        return chat.version if chat is not None else 0

    def callback_answer(self, callback_query_id: str) -> dict[str, Any] | None:
        """What the bot answered to a callback query (text, show_alert, url, cache_time) or None."""
        query = self.callback_queries.get(callback_query_id)
        if query is None:
            raise EmulatorError(f"no callback query {callback_query_id!r}")
        self.notifier.track((query.token, query.chat_id))
        return query.answer

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes a download of ``file_id`` returns."""
        stored = self.files.get(file_id)
        if stored is None:
            raise EmulatorError(f"no file {file_id!r}")
        return stored.content()

    def pending_updates(self, token: str | None = None) -> list[dict[str, Any]]:
        """Updates queued for the bot and not yet confirmed."""
        self.notifier.track(ANY_CHANGE)
        bot = self.bot(token)
        return list(bot.updates) + [u for q in bot.webhook_inflight.values() for u in q]

    @property
    def stats(self) -> EmulatorStats:
        self.notifier.track(ANY_CHANGE)
        return self._stats

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Wait until ``predicate()`` is truthy and return its value; TimeoutError says what happened.

        The predicate is re-evaluated when the chats it reads change (see
        :mod:`bot.emulator.waiting`), not in a sleep loop.
        """
        return await self.notifier.wait_until(predicate, timeout, self._timeout_report)

    async def wait_for_bot_message(
        self,
        chat_id: int,
        after_message_id: int | None = None,
        *,
        after_version: int | None = None,
        timeout: float = 5.0,
        token: str | None = None,
    ) -> TranscriptMessage:
        """Wait for a bot message newer than ``after_message_id`` (or any change after ``after_version``)."""
        if after_message_id is None and after_version is None:
            after_message_id = max((m.message_id for m in self.transcript(chat_id, token)), default=0)

        def arrived() -> TranscriptMessage | None:
            chat = self._chat_for_reading(chat_id, token)
            if chat is None:
                return None
            newest = self.last_message(chat_id, True, token)
            if after_message_id is not None and newest is not None and newest.message_id > after_message_id:
                return newest
            if after_version is not None and chat.version > after_version:
                return newest or self.last_message(chat_id, None, token)
            return None

        return await self.wait_for(arrived, timeout)

    # -- the network -------------------------------------------------------------------

    def set_flood_control(
        self,
        enabled: bool,
        per_chat_per_s: float = DEFAULT_PER_CHAT_PER_S,
        global_per_s: float = DEFAULT_GLOBAL_PER_S,
        per_chat_burst: int | None = None,
    ) -> None:
        """Switch Telegram's send limits on or off (token buckets; ``per_chat_burst`` defaults to 3)."""
        self.flood.configure(enabled, per_chat_per_s, global_per_s, per_chat_burst)

    def inject_fault(self, method: str | None, kind: str, count: int = 1, retry_after: int = 1, delay: float = 1.0) -> Fault:
        """Make the next ``count`` HTTP calls of ``method`` (None: any) fail.

        ``kind``: ``"429"`` (with ``retry_after``), ``"500"`` (JSON), ``"502"``
        (nginx HTML page, as Telegram's front end sends), ``"slow"`` (answer
        after ``delay`` seconds), ``"drop"`` (close the connection before
        executing), ``"drop_after"`` (execute, then close without answering).
        """
        return self.faults.inject(method, kind, count, retry_after, delay)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- the Bot API ---------------------------------------------------------------------

    async def call(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, UploadedFile] | None = None,
    ) -> Any:
        """Execute one Bot API call; returns its ``result`` or raises :class:`ApiError`."""
        spec = self.spec.method(method)
        name = spec.name if spec is not None else method
        params = params or {}
        files = files or {}
        try:
            bot = self.bots.get(token)
            if bot is None:
                raise ApiError(401, UNAUTHORIZED)
            if spec is None:
                raise ApiError(404, NOT_FOUND)
            self._stats.calls[name] += 1
            values = self.validator.validate(spec, params, files)
            handler = METHODS.get(name)
            if handler is None:
                raise ApiError(501, f"Not Implemented: the emulator does not implement {name}")
            result = handler(self, bot, values, files)
            if inspect.isawaitable(result):
                result = await result
            self._recent_calls.append((name, params.get("chat_id"), "ok"))
            return result
        except ApiError as err:
            self._stats.record_status(name, err.error_code)
            self._recent_calls.append((name, params.get("chat_id"), f"{err.error_code} {err.description}"))
            raise
        finally:
            self.notifier.notify(None)

    def record_fault(self, method: str, fault: Fault) -> None:
        """Count a fault the server played (5xx and 429 faults count as such answers too)."""
        self._stats.faults_injected += 1
        if fault.kind in ("429", "500", "502"):
            self._stats.record_status(method, int(fault.kind))

    def add_webhook_listener(self, listener: Callable[[BotState], None]) -> None:
        """Called with the bot whenever its webhook is set or deleted (the server delivers)."""
        self._webhook_listeners.append(listener)

    def remove_webhook_listener(self, listener: Callable[[BotState], None]) -> None:
        if listener in self._webhook_listeners:
            self._webhook_listeners.remove(listener)

    def release_pollers(self) -> None:
        """End every pending getUpdates long poll (with no updates), e.g. on shutdown."""
        for bot in self.bots.values():
            if bot.active_poll is not None and not bot.active_poll.done():
                bot.active_poll.set_result("shutdown")

    # -- helpers for the method handlers -------------------------------------------------

    def unix_time(self) -> int:
        return int(time.time())

    def writable_chat(self, bot: BotState, chat_id: int | str) -> ChatState:
        """The chat a bot call addresses, refusing as Telegram does (not found, blocked, ...)."""
        chat = self.readable_chat(bot, chat_id)
        if chat.blocked:
            raise ApiError(403, BOT_BLOCKED)
        if not chat.started:
            raise ApiError(403, CANT_INITIATE)
        return chat

    def readable_chat(self, bot: BotState, chat_id: int | str) -> ChatState:
        if isinstance(chat_id, str):
            try:
                chat_id = int(chat_id)
            except ValueError:
                raise ApiError(400, CHAT_NOT_FOUND) from None  # @usernames address channels/groups only
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, CHAT_NOT_FOUND)
        return chat

    def acquire_send_slot(self, bot: BotState, chat: ChatState) -> None:
        self.flood.acquire(bot.token, chat.chat_id, self.clock())

    def record_sent(self, bot: BotState, chat: ChatState, count: int = 1) -> None:
        chat.touch()
        self._stats.sent_messages[chat.chat_id] += count
        self._stats.messages_sent += count
        self.notifier.notify(self._key(bot, chat))

    def record_edit(self, bot: BotState, chat: ChatState, message: StoredMessage) -> None:
        message.edit_date = self.unix_time()
        message.edit_count += 1
        message.changed()
        chat.touch()
        self._stats.edits += 1
        self.notifier.notify(self._key(bot, chat))

    def record_delete(self, bot: BotState, chat: ChatState, message: StoredMessage) -> None:
        message.deleted = True
        message.changed()
        chat.touch()
        self._stats.deletions += 1
        self.notifier.notify(self._key(bot, chat))

    def record_callback_answer(self, query: CallbackQueryState, answer: dict[str, Any]) -> None:
        query.answer = answer
        self._stats.callback_answers += 1
        self.notifier.notify((query.token, query.chat_id))

    def record_upload(self, new: bool) -> None:
        self._stats.uploads += 1
        if new:
            self._stats.unique_uploads += 1

    def record_delivered(self, count: int) -> None:
        self._stats.updates_delivered += count

    def record_webhook_attempt(self, ok: bool) -> None:
        self._stats.webhook_attempts += 1
        if not ok:
            self._stats.webhook_failures += 1

    def next_media_group_id(self) -> str:
        self._next_group_id += 1
        return str(self._next_group_id)

    def webhook_changed(self, bot: BotState) -> None:
        if bot.active_poll is not None and not bot.active_poll.done() and bot.webhook is not None:
            bot.active_poll.set_result("webhook")
        for listener in list(self._webhook_listeners):
            listener(bot)

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _key(bot: BotState, chat: ChatState) -> Hashable:
        return (bot.token, chat.chat_id)

    def _chat_for_reading(self, chat_id: int, token: str | None) -> ChatState | None:
        bot = self.bot(token)
        self.notifier.track((bot.token, chat_id))
        return bot.chats.get(chat_id)

    def _user_chat(self, user_id: int, token: str | None) -> tuple[BotState, ChatState]:
        bot = self.bot(token)
        chat = bot.chat(self.user(user_id))
        if chat.blocked:  # writing to a blocked bot means pressing "Restart"
            self._set_blocked(user_id, bot.token, False)
        chat.started = True
        return bot, chat

    def _user_message(self, bot: BotState, chat: ChatState, message: StoredMessage) -> dict[str, Any]:
        chat.add(message)
        chat.touch()
        self._stats.user_messages += 1
        payload = message.to_api(chat.api_chat())
        self._queue(bot, "message", payload)
        self.notifier.notify(self._key(bot, chat))
        return payload

    def _callback_query(self, bot: BotState, chat: ChatState, message: StoredMessage, data: str) -> str:
        query_id = str(secrets.randbits(63))
        self.callback_queries[query_id] = CallbackQueryState(
            id=query_id,
            token=bot.token,
            user_id=chat.user.id,
            chat_id=chat.chat_id,
            message_id=message.message_id,
            data=data,
            created_at=self.clock(),
        )
        payload = {
            "id": query_id,
            "from": chat.user.to_api(),
            "message": message.to_api(chat.api_chat()),
            "chat_instance": str(abs(hash((bot.id, chat.chat_id))) % 10**18),
            "data": data,
        }
        self._stats.callback_queries += 1
        self._queue(bot, "callback_query", payload)
        self.notifier.notify(self._key(bot, chat))
        return query_id

    def _queue(self, bot: BotState, update_type: str, payload: dict[str, Any]) -> None:
        if bot.enqueue(update_type, payload) is not None:
            self._stats.updates_queued += 1

    def _set_blocked(self, user_id: int, token: str | None, blocked: bool) -> None:
        bot = self.bot(token)
        user = self.user(user_id)
        chat = bot.chat(user)
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        chat.touch()
        account = bot.account.to_api()
        old = {"status": "member", "user": account}
        new = {"status": "kicked", "user": account, "until_date": 0}
        self._queue(
            bot,
            "my_chat_member",
            {
                "chat": chat.api_chat(),
                "from": user.to_api(),
                "date": self.unix_time(),
                "old_chat_member": old if blocked else new,
                "new_chat_member": new if blocked else old,
            },
        )
        self.notifier.notify(self._key(bot, chat))

    def _timeout_report(self) -> str:
        lines = []
        if self._recent_calls:
            lines.append("recent Bot API calls (newest last):")
            lines += [f"  {name}(chat_id={chat_id}) -> {outcome}" for name, chat_id, outcome in self._recent_calls]
        else:
            lines.append("the bot has made no Bot API call yet (is it running against this emulator?)")
        for bot in self.bots.values():
            if bot.pending_update_count:
                how = "webhook" if bot.webhook else "getUpdates"
                lines.append(f"  bot @{bot.account.username}: {bot.pending_update_count} update(s) not yet fetched via {how}")
        return "\n" + "\n".join(lines)
