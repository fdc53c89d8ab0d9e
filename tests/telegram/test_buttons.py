"""Callback data shared across layers keeps one wire format."""

from __future__ import annotations

from bot.handlers.callbacks import Act, NextCb, TaskCb
from bot.telegram import buttons
from bot.telegram.gate import is_task_tap


def test_task_buttons_start_with_the_prefix_the_gate_looks_for() -> None:
    packed = TaskCb(a=Act.LABEL, id=7, v=1).pack()
    assert packed.startswith(buttons.TASK_TAP_PREFIX)
    assert not NextCb(project=3).pack().startswith(buttons.TASK_TAP_PREFIX)


def test_gate_tells_task_taps_from_other_buttons() -> None:
    from aiogram.types import Update

    def update(data: str) -> Update:
        return Update.model_validate(
            {
                "update_id": 1,
                "callback_query": {"id": "1", "from": {"id": 5, "is_bot": False, "first_name": "w"}, "chat_instance": "c", "data": data},
            }
        )

    assert is_task_tap(update(TaskCb(a=Act.SKIP, id=1).pack()))
    assert not is_task_tap(update(NextCb(project=1).pack()))
    assert not is_task_tap(update("tx:1"))  # another prefix that merely starts with "t"


def test_start_button_is_the_one_the_worker_router_handles() -> None:
    assert NextCb is buttons.NextCb
    assert NextCb.unpack(NextCb(project=12).pack()).project == 12
