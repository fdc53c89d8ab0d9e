"""Typed callback data. Every button carries the assignment it belongs to, so a tap is checked
against the database (owner, lease, state) and never trusted on its own. Packed size stays far
under Telegram's 64-byte limit: ``t:l:4294967295:19`` is 17 bytes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

from bot.telegram.buttons import TASK_PREFIX, CallbackId, CallbackInt, NextCb

__all__ = ["Act", "LangCb", "NextCb", "TaskCb"]  # NextCb: shared with broadcasts (bot.telegram.buttons)


class Act(StrEnum):
    LABEL = "l"  # v = label index
    CONFIRM = "c"  # v = 1 correct, 0 wrong
    SKIP = "s"
    REPORT = "r"  # open the report choices
    REPORT_REASON = "rr"  # v = 0 broken, 1 offensive
    BACK = "b"  # leave the report choices
    CELL = "g"  # magic pin: v = rev * 16 + grid cell index (rev: state revision drawn)
    PICK = "p"  # magic pin: keep candidate i; v = rev * 3 + i (bot.tasks.magic_pin.pick_value)
    KEEP = "k"  # magic pin, buttons drawn before candidates existed: keep candidate 0; v = rev
    RETRY = "t"  # magic pin: try another cell; v = rev
    ADD = "a"  # magic pin: v = rev * 3 + (0 back to the mask, 1 add area, 2 remove area)
    NONE = "n"  # magic pin: no such object
    FIX = "f"  # magic pin: the first pin's candidate i is the one to refine; v = rev * 3 + i
    BOX = "x"  # confirm-box: v = index in BOX_VALUES (0 correct, 1 wrong box, 2 wrong class)


class TaskCb(CallbackData, prefix=TASK_PREFIX):
    a: Act
    id: CallbackId
    v: CallbackInt = 0

    @classmethod
    def unpack(cls, value: str) -> TaskCb:
        """Parsed once per distinct string: every router's task-button filter unpacks the same
        data of a tap (a pydantic validation each). Instances are shared: do not mutate them."""
        hit = _UNPACKED.get(value)
        if hit is None:
            hit = super().unpack(value)
            if len(_UNPACKED) >= _UNPACKED_MAX:
                _UNPACKED.clear()
            _UNPACKED[value] = hit
        return hit


_UNPACKED: dict[str, TaskCb] = {}
_UNPACKED_MAX = 4096


class LangCb(CallbackData, prefix="lang"):
    code: str
