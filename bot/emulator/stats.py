"""Counters of what the bot did to the emulator, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmulatorStats:
    """Counters since start (or :meth:`reset`). All plain ints and dicts: cheap to read."""

    calls: Counter[str] = field(default_factory=Counter)  # Bot API calls per method (canonical name)
    errors: Counter[str] = field(default_factory=Counter)  # "sendMessage 400" -> count
    http_400: int = 0
    http_401: int = 0
    http_403: int = 0
    http_404: int = 0
    http_409: int = 0
    http_429: int = 0
    http_5xx: int = 0
    faults_injected: int = 0
    sent_messages: Counter[int] = field(default_factory=Counter)  # chat id -> messages the bot sent
    messages_sent: int = 0
    uploads: int = 0  # files the bot uploaded (multipart), as opposed to resending a file_id
    unique_uploads: int = 0  # of those, uploads whose content the emulator had not seen before
    edits: int = 0
    deletions: int = 0
    user_messages: int = 0
    callback_queries: int = 0
    callback_answers: int = 0
    web_apps_opened: int = 0  # web_app buttons opened (launch data signed)
    updates_queued: int = 0
    updates_delivered: int = 0
    webhook_attempts: int = 0
    webhook_failures: int = 0

    def record_status(self, method: str, status: int) -> None:
        attribute = f"http_{status}" if status < 500 else "http_5xx"
        if hasattr(self, attribute):
            setattr(self, attribute, getattr(self, attribute) + 1)
        self.errors[f"{method} {status}"] += 1

    def reset(self) -> None:
        fresh = EmulatorStats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Counter):
                value = {str(k): v for k, v in value.items()}
            data[name] = value
        return data
