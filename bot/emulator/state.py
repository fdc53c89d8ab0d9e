"""The emulator's world: users, bots, private chats and their transcripts, callback queries.

Everything is indexed for the hot path of a benchmark with hundreds of
simulated users: a chat holds its messages in a dict keyed by message id
(insertion order is id order), snapshots handed to tests are cached until the
message changes, and a chat's transcript list is cached until the chat does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def clone(value: Any) -> Any:
    """Copy plain JSON data (much faster than ``copy.deepcopy``), so tests cannot alter the emulator's state."""
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    return value


# Update types a bot gets when it does not choose (Bot API: all but these three).
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass(slots=True)
class EmulatedUser:
    """A Telegram account played by the emulator (a person, or a bot's own account)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> dict[str, Any]:
        """The Bot API ``User`` object."""
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code and not self.is_bot:
            data["language_code"] = self.language_code
        return data

    def private_chat(self) -> dict[str, Any]:
        """The Bot API ``Chat`` object of the private chat with this user."""
        data: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    """One message of a chat as a test sees it: current content, edits applied, deletion marked."""

    message_id: int
    from_bot: bool
    text: str | None
    caption: str | None
    photo_file_id: str | None  # file_id of the largest size
    photo: list[dict[str, Any]] | None  # the PhotoSize list
    reply_markup: dict[str, Any] | None
    deleted: bool
    edited: bool
    date: int
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    document: dict[str, Any] | None = None
    media_group_id: str | None = None
    reply_to_message_id: int | None = None
    edit_count: int = 0

    @property
    def content(self) -> str:
        """Text or caption, whichever the message has ("" if neither)."""
        return self.text if self.text is not None else (self.caption or "")

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        """Rows of inline buttons (empty if the message has no inline keyboard)."""
        return list((self.reply_markup or {}).get("inline_keyboard", []))

    @property
    def button_texts(self) -> list[str]:
        return [button.get("text", "") for row in self.buttons for button in row]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptMessage:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(slots=True)
class StoredMessage:
    """A message as the emulator keeps it; mutated in place by edits and deletion."""

    message_id: int
    from_bot: bool
    sender: dict[str, Any]
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None
    reply_markup: dict[str, Any] | None = None
    media_group_id: str | None = None
    reply_to: StoredMessage | None = None
    edit_date: int | None = None
    edit_count: int = 0
    deleted: bool = False
    _snapshot: TranscriptMessage | None = None

    def changed(self) -> None:
        self._snapshot = None

    @property
    def inline_markup(self) -> dict[str, Any] | None:
        """The inline keyboard, the only markup Telegram echoes back and lets a bot edit."""
        markup = self.reply_markup
        return markup if markup and "inline_keyboard" in markup else None

    def to_api(self, chat: dict[str, Any], *, with_reply: bool = True) -> dict[str, Any]:
        """The Bot API ``Message`` object."""
        data: dict[str, Any] = {"message_id": self.message_id, "from": self.sender, "chat": chat, "date": self.date}
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.media_group_id:
            data["media_group_id"] = self.media_group_id
        if with_reply and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_api(chat, with_reply=False)
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        if self.photo is not None:
            data["photo"] = self.photo
        if self.document is not None:
            data["document"] = self.document
        if self.caption:
            data["caption"] = self.caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        if self.inline_markup is not None:
            data["reply_markup"] = self.inline_markup
        return data

    def snapshot(self) -> TranscriptMessage:
        if self._snapshot is None:
            self._snapshot = TranscriptMessage(
                message_id=self.message_id,
                from_bot=self.from_bot,
                text=self.text,
                caption=self.caption,
                photo_file_id=self.photo[-1]["file_id"] if self.photo else None,
                photo=clone(self.photo),
                reply_markup=clone(self.reply_markup),
                deleted=self.deleted,
                edited=self.edit_count > 0,
                date=self.date,
                entities=clone(self.entities),
                caption_entities=clone(self.caption_entities),
                document=clone(self.document),
                media_group_id=self.media_group_id,
                reply_to_message_id=self.reply_to.message_id if self.reply_to else None,
                edit_count=self.edit_count,
            )
        return self._snapshot


@dataclass(slots=True)
class ChatState:
    """A bot's private chat with one user."""

    user: EmulatedUser
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    version: int = 0  # bumped on every change, so waiters can ask "anything new?"
    started: bool = False  # the user has written to the bot, so the bot may write back
    blocked: bool = False
    _transcript: list[TranscriptMessage] | None = None

    @property
    def chat_id(self) -> int:
        return self.user.id

    def api_chat(self) -> dict[str, Any]:
        return self.user.private_chat()

    def add(self, message: StoredMessage) -> StoredMessage:
        self.messages[message.message_id] = message
        return message

    def allocate_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def live(self, message_id: int) -> StoredMessage | None:
        message = self.messages.get(message_id)
        return None if message is None or message.deleted else message

    def touch(self) -> None:
        """Record a change: invalidates the cached transcript and bumps the version."""
        self.version += 1
        self._transcript = None

    def transcript(self) -> list[TranscriptMessage]:
        if self._transcript is None:
            self._transcript = [m.snapshot() for m in self.messages.values()]
        return self._transcript


@dataclass(slots=True)
class CallbackQueryState:
    id: str
    token: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float
    answer: dict[str, Any] | None = None


@dataclass(slots=True)
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


class BotState:
    """One bot account: its chats, its update queue, its webhook and commands."""

    def __init__(self, token: str, account: EmulatedUser) -> None:
        self.token = token
        self.account = account
        self.chats: dict[int, ChatState] = {}
        self.updates: deque[dict[str, Any]] = deque()
        self.next_update_id = 100_000_001
        self.allowed_updates: frozenset[str] | None = None  # None = Telegram's default set
        self.webhook: WebhookConfig | None = None
        self.webhook_inflight: dict[Any, deque[dict[str, Any]]] = {}  # claimed by the webhook deliverer
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.active_poll: asyncio.Future[str] | None = None  # the pending getUpdates long poll
        self.on_update: list[Callable[[], None]] = []  # run when an update is queued (poller, webhook)

    @property
    def id(self) -> int:
        return self.account.id

    def chat(self, user: EmulatedUser) -> ChatState:
        chat = self.chats.get(user.id)
        if chat is None:
            chat = self.chats[user.id] = ChatState(user=user)
        return chat

    def wants(self, update_type: str) -> bool:
        if self.allowed_updates is None:
            return update_type not in DEFAULT_EXCLUDED_UPDATES
        return update_type in self.allowed_updates

    def enqueue(self, update_type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Queue an update (unless the bot filtered that type out) and wake whoever waits."""
        if not self.wants(update_type):
            return None
        update = {"update_id": self.next_update_id, update_type: payload}
        self.next_update_id += 1
        self.updates.append(update)
        self.signal_updates()
        return update

    def signal_updates(self) -> None:
        for callback in list(self.on_update):
            callback()

    def confirm(self, offset: int) -> None:
        """getUpdates ``offset``: forget updates below it (negative: keep only the last -offset)."""
        if offset < 0:
            while len(self.updates) > -offset:
                self.updates.popleft()
            return
        while self.updates and self.updates[0]["update_id"] < offset:
            self.updates.popleft()

    @property
    def pending_update_count(self) -> int:
        return len(self.updates) + sum(len(q) for q in self.webhook_inflight.values())
