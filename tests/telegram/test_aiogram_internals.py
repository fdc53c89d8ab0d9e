"""aiogram internals the bot's fast paths depend on. aiogram is pinned to one minor version in
pyproject.toml; when an upgrade changes any of these, this file fails and says what to re-check
(the patch in bot/telegram/fast_types.py, the JSON lane in bot/telegram/session.py, the gate's
FSM middleware in bot/telegram/gate.py, the router detach in bot/app.py ``_include``)."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import aiogram
from aiogram import Bot, Dispatcher, Router
from aiogram.client.context_controller import BotContextController
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.methods import AnswerCallbackQuery, EditMessageMedia
from aiogram.methods.base import Response
from aiogram.types import Update

from bot.app import _include
from bot.telegram import fast_types
from bot.telegram.session import BotApiSession

ROOT = Path(__file__).resolve().parents[2]


def _update() -> dict:
    return {
        "update_id": 1,
        "callback_query": {
            "id": "1",
            "from": {"id": 5, "is_bot": False, "first_name": "w"},
            "chat_instance": "ci",
            "data": "t:l:3:0",
            "message": {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"}},
        },
    }


def test_aiogram_is_pinned_to_the_minor_version_installed() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"aiogram\b", d)]
    found = re.fullmatch(r"aiogram>=(\d+)\.(\d+)(?:\.\d+)?,<(\d+)\.(\d+)", spec.replace(" ", ""))
    assert found, f"pin aiogram to one minor version (>=3.N,<3.N+1), found {spec!r}"
    major, minor, up_major, up_minor = map(int, found.groups())
    assert (up_major, up_minor) == (major, minor + 1), f"{spec!r} allows more than one minor version"
    installed = tuple(int(part) for part in aiogram.__version__.split(".")[:2])
    assert installed == (major, minor), (
        f"aiogram {aiogram.__version__} is installed but {spec!r} is pinned: re-check the internals below, then move the pin"
    )


def test_types_keep_their_bot_in_one_private_attribute_set_by_model_post_init() -> None:
    assert set(BotContextController.__private_attributes__) == {"_bot"}
    assert len(inspect.signature(fast_types.ORIGINAL_POST_INIT).parameters) == 2  # (self, context)
    bot = Bot("42:TEST")
    # aiogram's own post-init and the fast one leave the same private state, with and without a bot
    for context in ({"bot": bot}, None):
        fast = Update.model_validate(_update(), context=context)
        slow = Update.model_construct()
        fast_types.ORIGINAL_POST_INIT(slow, context)
        assert slow.__pydantic_private__ == {"_bot": context["bot"] if context else None}
        assert fast.__pydantic_private__ == slow.__pydantic_private__
    fast_types.install()
    patched = [
        cls for cls in {BotContextController, *fast_types._subclasses(BotContextController)} if cls.model_post_init is fast_types._post_init
    ]
    assert len(patched) > 100, "aiogram types no longer share BotContextController's private attribute"


def test_session_fast_lane_uses_these_session_and_method_attributes() -> None:
    params = list(inspect.signature(AiohttpSession.check_response).parameters)
    assert params == ["self", "bot", "method", "status_code", "content"]
    for method, name in ((AnswerCallbackQuery, "answerCallbackQuery"), (EditMessageMedia, "editMessageMedia")):
        assert method.__api_method__ == name
        assert method.__returning__ is not None
        assert Response[method.__returning__] is not None
    session = BotApiSession()
    assert session.api.api_url(token="42:T", method="getMe").endswith("/bot42:T/getMe")
    for attribute in ("create_session", "json_dumps", "json_loads", "timeout", "middleware"):
        assert hasattr(session, attribute), attribute


def test_gate_swaps_aiogram_fsm_middleware_with_these_attributes() -> None:
    assert list(inspect.signature(FSMContextMiddleware.resolve_event_context).parameters)[:3] == ["self", "bot", "data"]
    dp = Dispatcher()
    fsm = dp.fsm
    assert isinstance(fsm, FSMContextMiddleware)
    assert fsm in list(dp.update.outer_middleware)
    for attribute in ("storage", "strategy", "events_isolation"):
        assert hasattr(fsm, attribute), attribute
    assert list(inspect.signature(Dispatcher.feed_update).parameters)[:3] == ["self", "bot", "update"]


def test_a_router_moves_from_a_stopped_dispatcher_to_a_new_one() -> None:
    router, old, new = Router(name="r"), Dispatcher(), Dispatcher()
    old.include_router(router)
    assert "_parent_router" in vars(router) and router.parent_router is old
    _include(new, router)  # sets the private _parent_router: aiogram has no public detach
    assert router.parent_router is new
    assert router not in old.sub_routers and router in new.sub_routers
