"""Callback data that leaves the handlers: the wire format other layers must agree on.

* ``NextCb``, the "Start tasks" button of announcements, is sent by broadcasts from the bot and
  from the admin CLI (``bot.telegram.broadcast_transport``) and handled by the worker router;
* the task buttons' prefix lets the gate skip loading FSM state for a tap (``gate.TapAwareFSM``)
  without importing the handlers.

The handlers' own callback data classes are in ``bot.handlers.callbacks`` (``TaskCb`` is
declared with :data:`TASK_PREFIX`).
"""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

MAX_CALLBACK_INT = 2**63 - 1
CallbackId = Annotated[int, Field(ge=0, le=MAX_CALLBACK_INT)]
"""A database id in callback data: a forged ``t:l:9223372036854775808:0`` fails to parse (the
tap is answered "unknown button") instead of overflowing a 64-bit database column."""
CallbackInt = Annotated[int, Field(ge=-MAX_CALLBACK_INT - 1, le=MAX_CALLBACK_INT)]
"""Any other number in callback data: 64-bit, so it never overflows either; whether the value
is one of the offered choices is the handler's business ("not one of the choices")."""

TASK_PREFIX = "t"  # TaskCb: every button of a task (label, skip, report, magic pin...)
TASK_TAP_PREFIX = TASK_PREFIX + ":"  # how a packed TaskCb starts


class NextCb(CallbackData, prefix="go"):
    """ "Start tasks" button of announcements: open the project's next task."""

    project: CallbackId = 0
