"""Callback data that leaves the handlers: the wire format other layers must agree on.

* ``NextCb``, the "Start tasks" button of announcements, is sent by broadcasts from the bot and
  from the admin CLI (``bot.telegram.broadcast_transport``) and handled by the worker router;
* the task buttons' prefix lets the gate skip loading FSM state for a tap (``gate.TapAwareFSM``)
  without importing the handlers.

The handlers' own callback data classes are in ``bot.handlers.callbacks`` (``TaskCb`` is
declared with :data:`TASK_PREFIX`).
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

TASK_PREFIX = "t"  # TaskCb: every button of a task (label, skip, report, magic pin...)
TASK_TAP_PREFIX = TASK_PREFIX + ":"  # how a packed TaskCb starts


class NextCb(CallbackData, prefix="go"):
    """ "Start tasks" button of announcements: open the project's next task."""

    project: int = 0
