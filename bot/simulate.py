"""Simulated workers that use the bot exactly as a person would: through the emulator's users,
tapping the buttons they see. Used by the demo, the end-to-end tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.emulator import Emulator
from bot.i18n import t

Chooser = Callable[["Screen"], str | None]


@dataclass(slots=True)
class Screen:
    """What the worker sees of the newest task message: caption and button texts/data."""

    message_id: int
    caption: str
    buttons: list[tuple[str, str]]  # (text, callback_data)
    photo_file_id: str | None

    @property
    def assignment_id(self) -> int | None:
        for _, data in self.buttons:
            parts = data.split(":")
            if len(parts) >= 3 and parts[0] == "t":
                return int(parts[2])
        return None

    def labels(self) -> list[str]:
        return [text for text, data in self.buttons if data.startswith("t:l:")]

    def data_of(self, text: str) -> str:
        return next((data for label, data in self.buttons if label == text), "")


# Magic Pin buttons that change the task message (a cell, Try another cell, Add a point / + / -
# / Back) instead of answering it: after one, the same task is shown again, redrawn.
STEP_PREFIXES = ("t:g:", "t:t:", "t:a:")


def is_step(data: str) -> bool:
    return data.startswith(STEP_PREFIXES)


def _buttons(markup: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not markup:
        return []
    return [(button.get("text", ""), button.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for button in row]


@dataclass
class SimWorker:
    emu: Emulator
    user_id: int
    name: str
    lang: str = "ko"
    chooser: Chooser | None = None
    token: str | None = None
    log: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    answered: int = 0

    @classmethod
    def create(cls, emu: Emulator, name: str, lang: str = "ko", chooser: Chooser | None = None, token: str | None = None) -> SimWorker:
        user = emu.create_user(first_name=name, language_code=lang)
        return cls(emu=emu, user_id=user.id, name=name, lang=lang, chooser=chooser, token=token)

    def bot_messages(self) -> list[Any]:
        return [m for m in self.emu.transcript(self.user_id, token=self.token) if m.from_bot and not m.deleted]

    def screen(self) -> Screen | None:
        """The newest bot message that carries task buttons."""
        for message in reversed(self.bot_messages()):
            buttons = _buttons(message.reply_markup)
            if any(data.startswith("t:") for _, data in buttons):
                return Screen(message.message_id, message.caption or message.text or "", buttons, message.photo_file_id)
        return None

    def last_text(self) -> str:
        messages = self.bot_messages()
        return (messages[-1].text or messages[-1].caption or "") if messages else ""

    def _all_done_seen(self, after: int) -> bool:
        done_text = t("task.all_done", self.lang).split("\n")[0]
        return any(m.message_id > after and (m.text or "").startswith(done_text) for m in self.bot_messages())

    def _newest_id(self) -> int:
        messages = self.emu.transcript(self.user_id, token=self.token)
        return messages[-1].message_id if messages else 0

    async def start(self) -> None:
        before = self._newest_id()
        await self.emu.send_text(self.user_id, "/start", token=self.token)
        await self.emu.wait_for(lambda: any(m.message_id > before for m in self.bot_messages()), timeout=10)

    async def request_task(self) -> Screen | None:
        """Press "Get a task"; returns the task screen, or None when all is done."""
        before = self._newest_id()
        await self.emu.send_text(self.user_id, t("menu.get_task", self.lang), token=self.token)

        def shown() -> bool:
            s = self.screen()
            return (s is not None and s.message_id > before) or self._all_done_seen(before)

        await self.emu.wait_for(shown, timeout=10)
        if self._all_done_seen(before):
            return None
        return self.screen()

    async def tap(self, screen: Screen, text: str) -> Screen | None:
        """Tap a button and wait until the next task (or "all done") is shown."""
        old_assignment = screen.assignment_id
        before = self._newest_id()
        started = time.perf_counter()
        await self.emu.tap(self.user_id, screen.message_id, text=text, token=self.token)

        def advanced() -> bool:
            s = self.screen()
            if s is not None and s.assignment_id != old_assignment:
                return True
            return self._all_done_seen(before)

        await self.emu.wait_for(advanced, timeout=10)
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        if self._all_done_seen(before):
            return None
        return self.screen()

    async def step(self, screen: Screen, text: str) -> Screen | None:
        """Tap a button that redraws the same task (a Magic Pin cell...) and wait for the redraw."""
        old = screen.buttons
        await self.emu.tap(self.user_id, screen.message_id, text=text, token=self.token)

        def redrawn() -> bool:
            s = self.screen()
            return s is None or s.message_id != screen.message_id or s.buttons != old

        await self.emu.wait_for(redrawn, timeout=30)
        return self.screen()

    async def work(self, limit: int = 10_000, verbose: bool = False) -> int:
        """Label until no task is left (or ``limit``); returns how many answers were given."""
        screen = await self.request_task()
        while screen is not None and self.answered < limit:
            choice = self.chooser(screen) if self.chooser else (screen.labels() or [screen.buttons[0][0]])[0]
            if choice is None:
                choice = t("task.skip", self.lang)
            step = is_step(screen.data_of(choice))
            if choice != t("task.skip", self.lang) and not step:
                self.answered += 1
            if verbose:
                first = screen.caption.split("\n")[0]
                texts = [b for b, d in screen.buttons if not d.startswith("t:g:")]
                if len(texts) < len(screen.buttons):
                    texts.insert(0, "A1…D4")
                self.log.append(f"{self.name}: sees “{first}” {texts} → taps “{choice}”")
                print(self.log[-1], flush=True)
            screen = await (self.step(screen, choice) if step else self.tap(screen, choice))
        return self.answered
