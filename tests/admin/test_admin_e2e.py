"""End to end through the real bot and the Bot API emulator: admin commands in Telegram, and the
COCO round trip (load -> workers confirm masks in the chat -> export -> pycocotools)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from sqlalchemy import select

import bot.app
from bot.config import get_settings
from bot.handlers.admin import projects_text, stats_text
from bot.handlers.admin import router as admin_router
from bot.i18n import t
from bot.sandbox import Sandbox, create_sample_project
from bot.simulate import Screen, SimWorker
from bot.tasks.models import Answer, Assignment, Task
from tests.admin.conftest import Cli
from tests.admin.helpers import coco_file, samples

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
WAIT = 30.0


async def _replies(box: Sandbox, sim: SimWorker, text: str, at_least: int = 0) -> list[str]:
    """What the bot says after ``text``: send it, then /help as a marker, and collect the
    messages that arrive before the marker's reply settles (and at least ``at_least`` of
    them: a reply expected to come is waited for, not bet on a 0.5 s margin)."""
    before = max((m.message_id for m in box.emulator.transcript(sim.user_id)), default=0)
    await box.emulator.send_text(sim.user_id, text)
    await box.emulator.send_text(sim.user_id, "/help")
    help_text = t("help.text", sim.lang)

    def replies() -> list[str]:
        return [m.text or m.caption or "" for m in sim.bot_messages() if m.message_id > before and m.text != help_text]

    await box.emulator.wait_for(lambda: any(m.text == help_text and m.message_id > before for m in sim.bot_messages()), timeout=WAIT)
    await box.emulator.wait_for(lambda: len(replies()) >= at_least, timeout=WAIT)
    await asyncio.sleep(0.5)  # updates run concurrently: let a slower (or a second) reply to ``text`` land too
    return replies()


async def test_stats_and_projects_only_for_admins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await Sandbox.start(tmp_path, run_bot=False)
    try:
        boss = SimWorker.create(box.emulator, "Boss", "en")
        worker = SimWorker.create(box.emulator, "민지", "ko")
        box.settings.telegram.admin_ids = frozenset({boss.user_id})
        await box.start_bot()
        create_sample_project(box.db, tmp_path / "images", count=3, overlap=1, price=10, name="Shapes")
        await worker.start()
        assert await worker.work(limit=2) == 2

        # The operator sees the same figures as the admin CLI computes.
        got = await _replies(box, boss, "/stats", at_least=1)
        with box.db.read_session() as s:
            expected = stats_text(s, "en")
        assert got == [expected]
        assert "#1 Shapes" in expected and "2/3 done" in expected  # overlap 1: two answers, two tasks done
        assert "2 answers" in expected and "₩20" in expected and "민지" in expected
        got = await _replies(box, boss, "/projects", at_least=1)
        with box.db.read_session() as s:
            assert got == [projects_text(s, "en")]
        assert "Shapes" in got[0] and "classify" in got[0]

        # Anyone else gets exactly what the bot says without the admin module (another feature
        # may own a /stats of its own for workers): no sign the admin commands exist.
        commands = ("/stats", "/projects", "/stats@crowdpin_bot", "/projects extra words")
        with_admin = {command: await _replies(box, worker, command) for command in commands}
        admin_texts = [t(key, lang) for key in ("admin.stats.title", "admin.projects.title") for lang in ("ko", "en")]
        assert not any(a in r for replies in with_admin.values() for r in replies for a in admin_texts), with_admin
        all_routers = bot.app.extra_routers
        monkeypatch.setattr(bot.app, "extra_routers", lambda: [r for r in all_routers() if r is not admin_router])
        await box.restart_bot()
        without_admin = {command: await _replies(box, worker, command) for command in commands}
        assert with_admin == without_admin
    finally:
        await box.close()


def _external_id(box: Sandbox, screen: Screen) -> str:
    with box.db.read_session() as s:
        task_id = s.execute(select(Assignment.task_id).where(Assignment.id == screen.assignment_id)).scalar_one()
        return s.execute(select(Task.external_id).where(Task.id == task_id)).scalar_one()


async def test_coco_round_trip_through_the_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = await Sandbox.start(tmp_path)
    try:
        monkeypatch.setenv("DATABASE_URL", box.settings.database.database_url)
        monkeypatch.setenv("MEDIA_DIR", str(box.settings.media.media_dir))
        monkeypatch.delenv("LOG_LEVEL", raising=False)
        get_settings.cache_clear()
        from typer.testing import CliRunner

        cli = Cli(CliRunner())
        folder = tmp_path / "dataset"
        shapes = samples(folder / "images", count=4)
        coco_path, data = coco_file(folder, shapes, rle_every=2)  # two polygons, two RLE

        created = await asyncio.to_thread(
            cli,
            "project",
            "create",
            "--name",
            "Outlines",
            "--type",
            "confirm-mask",
            "--overlap",
            "2",
            "--price",
            "20",
            "--question-ko",
            "영역이 정확한가요?",
            "--question-en",
            "Is the area exact?",
        )
        pid = created.stdout.strip().splitlines()[-1]
        loaded = await asyncio.to_thread(cli, "load", pid, str(coco_path))
        assert "4 task(s) added" in loaded.stdout

        first = data["images"][0]["file_name"] + f"#{data['annotations'][0]['id']}"

        def chooser_for(sim: SimWorker):  # type: ignore[no-untyped-def]
            def choose(screen: Screen) -> str:
                wrong = _external_id(box, screen) == first
                return t("masks.wrong" if wrong else "masks.correct", sim.lang)

            return choose

        sims = [SimWorker.create(box.emulator, name, lang) for name, lang in (("하늘", "ko"), ("Sam", "en"))]
        for sim in sims:
            sim.chooser = chooser_for(sim)
            await sim.start()
        done = await asyncio.gather(*(sim.work() for sim in sims))
        assert done == [4, 4]
        with box.db.read_session() as s:
            values = sorted(s.execute(select(Answer.value)).scalars())
        assert values == ["no"] * 2 + ["yes"] * 6

        out = tmp_path / "export" / "results.json"
        exported = await asyncio.to_thread(cli, "export", pid, "--what", "results", "--format", "coco", "--out", str(out))
        assert "wrote 3 results" in exported.stdout
        source, result = COCO(str(coco_path)), COCO(str(out))
        by_external = {ann["external_id"]: ann for ann in result.anns.values()}
        assert first not in by_external and len(by_external) == 3  # the rejected mask is not a result
        for ann in data["annotations"]:
            external_id = source.imgs[ann["image_id"]]["file_name"] + f"#{ann['id']}"
            if external_id == first:
                continue
            mine = by_external[external_id]
            assert np.array_equal(result.annToMask(mine), source.annToMask(ann)), external_id  # pixel for pixel
            assert result.cats[mine["category_id"]]["name"] == source.cats[ann["category_id"]]["name"]
            assert result.imgs[mine["image_id"]]["file_name"] == source.imgs[ann["image_id"]]["file_name"]
            assert mine["n_answers"] == 2 and mine["label"] == "yes"
        answers_out = tmp_path / "export" / "answers.jsonl"
        await asyncio.to_thread(cli, "export", pid, "--what", "answers", "--format", "jsonl", "--out", str(answers_out))
        rows = [json.loads(line) for line in answers_out.read_text().splitlines()]
        assert len(rows) == 8 and all(r["worker"].startswith("w_") for r in rows)
        assert not any(name in answers_out.read_text() for name in ("하늘", "Sam"))
    finally:
        get_settings.cache_clear()
        await box.close()
