"""The bot wired to a local Bot API emulator in one process: the no-token demo, the end-to-end
tests and the benchmarks all run the real dispatcher over real HTTP through this."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher

from bot.app import make_app, make_database, make_dispatcher
from bot.config import DatabaseSettings, MediaSettings, Settings, TelegramSettings, WebAppSettings
from bot.db import Database
from bot.emulator import Emulator, EmulatorServer
from bot.sample import SHAPE_NAMES, SampleImage, generate
from bot.tasks import intake, media, projects
from bot.tasks.models import Project, TaskKind
from bot.telegram.draining import DRAIN_SECONDS
from bot.telegram.runtime import App
from bot.telegram.session import make_session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_settings(workdir: Path, base_url: str, token: str, **overrides: Any) -> Settings:
    """Settings for a bot in ``workdir`` talking to the emulator at ``base_url``."""
    database_url = overrides.pop("database_url", f"sqlite:///{workdir / 'crowdpin.db'}")
    admin_ids = overrides.pop("admin_ids", frozenset())
    return Settings(
        telegram=TelegramSettings(BOT_TOKEN=token, TELEGRAM_API_BASE=base_url, ADMIN_IDS=admin_ids),
        database=DatabaseSettings(DATABASE_URL=database_url),
        media=MediaSettings(MEDIA_DIR=workdir / "media"),
        **overrides,
    )


@dataclass
class BotProcess:
    """One running bot (dispatcher + polling task) against the emulator."""

    app: App
    bot: Bot
    dp: Dispatcher
    task: asyncio.Task[Any]
    webapp: Any = None  # the Mini App's server (aiohttp AppRunner) when WEBAPP_URL is set

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.dp.stop_polling()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, DRAIN_SECONDS + 5)  # the updates in flight finish first
        if self.webapp is not None:
            await self.webapp.cleanup()
        await self.bot.session.close()


@dataclass
class Sandbox:
    """Emulator + database + bot, started and stopped together."""

    workdir: Path
    emulator: Emulator
    server: EmulatorServer
    token: str
    settings: Settings
    db: Database
    bots: list[BotProcess] = field(default_factory=list)

    @classmethod
    async def start(
        cls, workdir: Path | None = None, *, flood_control: bool = False, run_bot: bool = True, webapp: bool = False, **overrides: Any
    ) -> Sandbox:
        """``webapp=True`` also serves the Mini App on a free local port (its URL is the
        settings' ``webapp.webapp_url``), so task messages carry the ✏️ Precise button."""
        workdir = workdir or Path(tempfile.mkdtemp(prefix="crowdpin-sandbox-"))
        if webapp and "webapp" not in overrides:
            port = _free_port()
            overrides["webapp"] = WebAppSettings(WEBAPP_URL=f"http://127.0.0.1:{port}/app/", WEBAPP_HOST="127.0.0.1", WEBAPP_PORT=port)
        emulator = Emulator(flood_control=flood_control)
        token = emulator.add_bot(username="crowdpin_bot")
        server = EmulatorServer(emulator, host="127.0.0.1", port=0)
        await server.start()
        settings = sandbox_settings(workdir, server.base_url, token, **overrides)
        db = make_database(settings)
        box = cls(workdir=workdir, emulator=emulator, server=server, token=token, settings=settings, db=db)
        if run_bot:
            await box.start_bot()
        return box

    async def start_bot(self) -> BotProcess:
        app = make_app(self.settings, self.db)
        bot = Bot(token=self.token, session=make_session(self.server.base_url))
        dp = make_dispatcher(app)
        webapp = None
        if self.settings.webapp.webapp_url:
            from bot.webapp import start_webapp_server

            webapp = await start_webapp_server(app, bot, self.settings.webapp.webapp_host, self.settings.webapp.webapp_port)
        task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5))
        process = BotProcess(app=app, bot=bot, dp=dp, task=task, webapp=webapp)
        self.bots.append(process)
        return process

    async def stop_bot(self) -> None:
        while self.bots:
            await self.bots.pop().stop()

    async def restart_bot(self) -> BotProcess:
        await self.stop_bot()
        return await self.start_bot()

    async def close(self) -> None:
        await self.stop_bot()
        await self.server.stop()
        self.db.dispose()

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def create_sample_project(
    db: Database,
    folder: Path,
    *,
    count: int = 12,
    overlap: int = 3,
    price: int = 10,
    seed: int = 7,
    name: str = "Shapes (demo)",
    golden_every: int = 0,
    **fields: Any,
) -> tuple[Project, list[SampleImage]]:
    """A classify project over generated shape images; labels are bilingual button texts."""
    samples = generate(folder, count=count, seed=seed)
    labels = [f"{ko} · {en}" for ko, en in zip(SHAPE_NAMES["ko"], SHAPE_NAMES["en"], strict=True)]
    media_dir = db_media_dir(folder)
    with db.session() as session:
        project = projects.create(
            session,
            name=name,
            type="classify",
            labels=labels,
            price=price,
            overlap=overlap,
            question_ko="이 사진 속 도형은 무엇인가요?",
            question_en="Which shape is in the photo?",
            **fields,
        )
        for i, sample in enumerate(samples):
            image, _ = media.store_image(session, media.check_image(sample.path), media_dir=media_dir, copy=False)
            label = labels[list(SHAPE_NAMES["en"]).index(sample.shape)]
            golden = golden_every and i % golden_every == golden_every - 1
            intake.add_task(
                session,
                project,
                image,
                external_id=sample.external_id,
                kind=TaskKind.GOLDEN if golden else TaskKind.NORMAL,
                golden=label if golden else None,
            )
    return project, samples


def create_mask_project(
    db: Database,
    folder: Path,
    *,
    type: str = "confirm-mask",
    count: int = 6,
    overlap: int = 1,
    price: int = 10,
    seed: int = 7,
    name: str | None = None,
    masks: bool = True,
    wrong_every: int = 0,
    **fields: Any,
) -> tuple[Project, list[SampleImage]]:
    """A confirm-mask or magic-pin project over generated shapes whose true masks are known.

    Confirm-mask tasks carry the true mask (COCO RLE JSON) and the shape's name as prelabel;
    every ``wrong_every``-th mask is shifted off the shape (the right answer is then "no");
    ``masks=False`` leaves tasks without a mask, so the bot generates one.
    """
    import numpy as np

    from bot.autoseg import rle as coco_rle
    from bot.sample import true_mask

    samples = generate(folder, count=count, seed=seed)
    confirm = type == "confirm-mask"
    questions = {
        "confirm-mask": ("표시된 영역이 도형과 딱 맞나요?", "Does the highlighted area match the shape?"),
        "magic-pin": ("도형을 찾아 눌러 주세요.", "Find the shape and tap it."),  # the chat adds its grid hint
    }[type]
    with db.session() as session:
        project = projects.create(
            session,
            name=name or f"Shapes ({type})",
            type=type,
            price=price,
            overlap=overlap,
            question_ko=questions[0],
            question_en=questions[1],
            **fields,
        )
        for i, sample in enumerate(samples):
            image, _ = media.store_image(session, media.check_image(sample.path), media_dir=db_media_dir(folder), copy=False)
            mask_json = None
            if confirm and masks:
                mask = true_mask(sample)
                if wrong_every and i % wrong_every == wrong_every - 1:
                    mask = np.roll(mask, (mask.shape[0] // 3, mask.shape[1] // 3), axis=(0, 1))
                mask_json = json.dumps(coco_rle.encode(mask), separators=(",", ":"))
            intake.add_task(
                session,
                project,
                image,
                external_id=sample.external_id,
                prelabel=truth_label(sample) if confirm else None,
                mask_rle=mask_json,
            )
    return project, samples


def db_media_dir(folder: Path) -> Path:
    return folder.parent / "media"


def truth_label(sample: SampleImage) -> str:
    i = list(SHAPE_NAMES["en"]).index(sample.shape)
    return f"{SHAPE_NAMES['ko'][i]} · {SHAPE_NAMES['en'][i]}"
