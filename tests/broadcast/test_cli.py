"""``crowdpin admin broadcast``: PROJECT --text (dry run, send, detach), status, cancel, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from admin import broadcast as cli
from bot.broadcast import service
from bot.broadcast.models import Broadcast, BroadcastStatus
from bot.config import get_settings
from bot.db import Database
from tests.broadcast.fakes import make_project, make_workers

runner = CliRunner()
root = typer.Typer()
root.add_typer(cli.app, name="broadcast")  # mounted as admin/cli.py mounts it


@pytest.fixture
def env(db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_API_BASE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _broadcasts(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(Broadcast)).scalar_one())


class Out:
    """A CLI result whose output has Rich's line wrapping undone (words joined by one space)."""

    def __init__(self, result) -> None:  # type: ignore[no-untyped-def]
        self.exit_code = result.exit_code
        self.raw = result.output
        self.output = " ".join(result.output.split())


def invoke(*args: str) -> Out:
    get_settings.cache_clear()
    return Out(runner.invoke(root, ["broadcast", *args]))


def test_dry_run_counts_and_sends_nothing(env: Database) -> None:
    project = make_project(env, "Shapes")
    make_workers(env, 7)
    result = invoke("Shapes", "--text", "New batch", "--to", "all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 7 recipients (all)" in result.output
    result = invoke(str(project.id), "--text", "New batch", "--to", "active-days:3", "--dry-run")
    assert result.exit_code == 0 and "7 recipients" in result.output
    assert _broadcasts(env) == 0


def test_bad_input_is_a_clear_error_and_writes_nothing(env: Database, tmp_path: Path) -> None:
    make_project(env, "Shapes")
    make_workers(env, 2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for args, message in [
        (("Nope", "--text", "hi", "--detach"), "no project 'Nope'"),
        (("Shapes", "--text", "hi", "--to", "friends", "--detach"), "unknown audience"),
        (("Shapes", "--text", " ", "--detach"), "empty"),
        (("Shapes", "--text", "hi", "--photo", str(bad), "--detach"), "not a readable image"),
        (("Shapes", "--text", "hi", "--to", "friends", "--dry-run"), "unknown audience"),
        (("Shapes", "--text", "hi"), "BOT_TOKEN is not set"),
        (("Shapes", "--text", "hi", "--lanes", "0"), "--lanes"),
    ]:
        result = invoke(*args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    assert _broadcasts(env) == 0


def test_detach_then_status_then_cancel(env: Database) -> None:
    make_project(env, "Shapes")
    make_workers(env, 4)
    result = invoke("Shapes", "--text", "Batch 3", "--to", "qualified", "--detach")
    assert result.exit_code == 0, result.output
    assert "broadcast #1 queued for 4 workers" in result.output
    with env.session() as s:
        b = s.get(Broadcast, 1)
        assert (b.status, b.runner, b.audience, b.text) == (BroadcastStatus.PENDING, None, "qualified", "Batch 3")

    result = invoke("status", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.raw)
    assert (data["status"], data["total"], data["remaining"], data["sent"]) == ("pending", 4, 4, 0)
    result = invoke("status", "1")
    assert result.exit_code == 0 and "pending" in result.output and "qualified" in result.output

    result = invoke("cancel", "1")
    assert result.exit_code == 0 and "cancelled: 0 sent, 4 will not be sent" in result.output
    assert env.call(service.progress, 1).status == BroadcastStatus.CANCELLED
    result = invoke("cancel", "1")
    assert result.exit_code == 2 and "already cancelled" in result.output
    for cmd in ("status", "cancel"):
        result = invoke(cmd, "99")
        assert result.exit_code == 2 and "no broadcast with id 99" in result.output
    result = invoke("list")
    assert result.exit_code == 0 and "cancelled" in result.output


def test_send_through_the_emulator_with_flood_control(env: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from bot.emulator.runner import start_background

    photo = tmp_path / "batch.png"
    Image.new("RGB", (80, 60), "teal").save(photo)
    emu = start_background(flood_control=True)
    try:
        users = [emu.run(lambda e, i=i: e.create_user(first_name=f"u{i}", language_code="en")).id for i in range(6)]
        for uid in users:
            emu.run(lambda e, uid=uid: e.send_text(uid, "/start"))
        project = make_project(env, "Shapes")
        from bot import workers

        with env.session() as s:
            for uid in users:
                workers.register(s, tg_id=uid, name="u", language_code="en")
        emu.run(lambda e: e.block(users[2]))
        emu.run(lambda e: e.stats.reset())
        monkeypatch.setenv("BOT_TOKEN", emu.token)
        monkeypatch.setenv("TELEGRAM_API_BASE", emu.base_url)
        result = invoke(str(project.id), "--text", "Fresh photos!", "--photo", str(photo))
        assert result.exit_code == 0, result.output
        assert "done — sent 5, failed 0, blocked 1" in result.output
        stats = emu.run(lambda e: e.stats.to_dict())
        assert stats["http_429"] == 0 and stats["uploads"] == 1
        for uid in users:
            got = emu.run(lambda e, uid=uid: e.sent_messages(uid))
            notes = [m for m in got if m.caption == "Fresh photos!"]
            assert len(notes) == (0 if uid == users[2] else 1)
            if notes:
                assert notes[0].photo_file_id and notes[0].reply_markup["inline_keyboard"][0][0]["callback_data"] == f"go:{project.id}"
        data = json.loads(invoke("status", "1", "--json").raw)
        assert (data["status"], data["sent"], data["blocked"], data["remaining"]) == ("done", 5, 1, 0)
        # resume of a finished broadcast sends nothing more
        result = invoke("resume", "1")
        assert "done" in result.output
        assert sum(emu.run(lambda e: e.stats.to_dict())["sent_messages"].values()) == 5
    finally:
        emu.stop()


def test_admin_cli_registers_broadcast() -> None:
    from admin.cli import app as admin_app

    result = runner.invoke(admin_app, ["broadcast", "--help"])
    assert result.exit_code == 0
    for word in ("send", "status", "cancel", "resume"):
        assert word in result.output
