"""The packaged Bot API spec: generated from the official source, complete enough to validate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from bot.emulator.methods import METHODS
from bot.emulator.spec import ArrayRef, ObjectRef, ScalarRef, load_spec, parse_type_expr, read_packaged_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT.parent / "shared" / "telegram-bot-api" / "api.json"


def _trim_script() -> ModuleType:
    path = REPO_ROOT / "scripts" / "trim_botapi_spec.py"
    spec = importlib.util.spec_from_file_location("trim_botapi_spec", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SOURCE.is_file(), reason="../shared/telegram-bot-api/api.json is not present")
def test_packaged_spec_is_generated_from_the_source() -> None:
    script = _trim_script()
    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    source_licence = (SOURCE.parent / "LICENSE").read_text(encoding="utf-8")
    packaged = (REPO_ROOT / "bot" / "emulator" / "botapi_spec.json").read_text(encoding="utf-8")
    assert packaged == script.render(script.trim(source, source_licence)), "run scripts/trim_botapi_spec.py"
    licence = (REPO_ROOT / "bot" / "emulator" / "BOTAPI_SPEC_LICENSE").read_text(encoding="utf-8")
    assert licence == source_licence
    assert json.loads(packaged)["license"] == source_licence  # the notice travels with the data


def test_packaged_spec_has_no_prose_and_every_method_and_type() -> None:
    raw = read_packaged_spec()
    assert raw["version"].startswith("Bot API ")
    for group in ("methods", "types"):
        for entry in raw[group].values():
            assert set(entry) <= {"fields", "returns", "subtypes"}  # no prose, no links
            for field in entry.get("fields", []):
                assert set(field) <= {"name", "types", "required", "const"}
    for name in ("getUpdates", "sendMessage", "sendPhoto", "editMessageMedia", "answerCallbackQuery", "setWebhook"):
        assert name in raw["methods"]
    text_field = next(f for f in raw["methods"]["sendMessage"]["fields"] if f["name"] == "text")
    assert text_field == {"name": "text", "types": ["String"], "required": True}
    photo_type = next(f for f in raw["types"]["InputMediaPhoto"]["fields"] if f["name"] == "type")
    assert photo_type["const"] == "photo"  # the discriminator value the source only states in prose


def test_every_implemented_method_exists_in_the_spec() -> None:
    spec = load_spec()
    assert sorted(name for name in METHODS if name not in spec.methods) == []


def test_type_expressions_parse_into_references() -> None:
    assert parse_type_expr("Array of Array of InlineKeyboardButton") == ArrayRef(ArrayRef(ObjectRef("InlineKeyboardButton")))
    assert parse_type_expr("Integer") == ScalarRef("Integer")
    spec = load_spec()
    assert spec.method("SENDMESSAGE") is spec.methods["sendMessage"]  # method names are case-insensitive
    chat_id = spec.methods["sendMessage"].fields["chat_id"]
    assert chat_id.required and [str(t) for t in chat_id.types] == ["Integer", "String"]
    assert spec.type("InputMedia").subtypes is not None
