"""The bot's identity and settings, callback answers and files."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import QUERY_TOO_OLD, ApiError, bad_request
from ..state import BotState
from ..validation import UploadedFile
from . import method

if TYPE_CHECKING:
    from ..emulator import Emulator

CALLBACK_ANSWER_TEXT_LIMIT = 200
MAX_COMMANDS = 100
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")

Files = Mapping[str, UploadedFile]


@method("getMe")
def get_me(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    return {
        **bot.account.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut", "close")
def log_out(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    return True


@method("setMyDescription", "setMyShortDescription", "setMyName", "setChatMenuButton", "setMyDefaultAdministratorRights")
def acknowledge(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    """Settings that only change what Telegram's apps display: accepted, nothing to emulate."""
    return True


@method("answerCallbackQuery")
def answer_callback_query(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    query = emu.callback_queries.get(p["callback_query_id"])
    if (
        query is None
        or query.token != bot.token
        or query.answer is not None  # answering twice
        or emu.clock() - query.created_at > emu.callback_query_timeout
    ):
        raise ApiError(400, QUERY_TOO_OLD)
    text = p.get("text")
    if text is not None and len(text) > CALLBACK_ANSWER_TEXT_LIMIT:
        raise bad_request("MESSAGE_TOO_LONG")
    answer = {
        "text": text,
        "show_alert": bool(p.get("show_alert", False)),
        "url": p.get("url"),
        "cache_time": p.get("cache_time", 0),
    }
    emu.record_callback_answer(query, answer)
    return True


def _commands_key(p: dict[str, Any]) -> tuple[str, str]:
    scope = p.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), p.get("language_code", "")


@method("setMyCommands")
def set_my_commands(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    commands = p["commands"]
    if len(commands) > MAX_COMMANDS:
        raise bad_request("too many commands")
    for command in commands:
        if not _COMMAND_RE.fullmatch(command["command"]):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command["description"]) <= 256:
            raise bad_request("command description must be 1-256 characters long")
    bot.commands[_commands_key(p)] = [dict(c) for c in commands]
    return True


@method("getMyCommands")
def get_my_commands(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> list[dict[str, Any]]:
    return list(bot.commands.get(_commands_key(p), []))


@method("deleteMyCommands")
def delete_my_commands(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    bot.commands.pop(_commands_key(p), None)
    return True


@method("getFile")
def get_file(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    return emu.files.get_file(bot.id, p["file_id"])
