"""The floor of the answer loop: a bare aiogram 3 bot with no database and no domain code.

Run by ``answer_loop.py --floor`` and ``scale_out.py`` in its own process against the same
emulator and the same simulated workers as crowdpin, so ``cpu_vs_floor`` (crowdpin's CPU per
answer divided by this bot's) says what the product adds on top of the framework, whatever the
host's speed. It speaks just enough of crowdpin's protocol for the workers in ``_harness``:
any text gets a photo task, a tap on a label (``t:l:<assignment>:<label>``) answers the
callback and edits the photo message in place into the next task, with aiogram's own method
models and its default long polling (or its webhook handler with ``--webhook-port``).

Not part of the product; kept beside the benchmarks that use it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
from pathlib import Path

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("a", "b", "c")


def _photo_bytes() -> bytes:
    """One of crowdpin's sample photos, so uploads weigh the same as the product's."""
    sys.path.insert(0, str(ROOT))
    import tempfile

    from bot.sample import generate

    with tempfile.TemporaryDirectory() as tmp:
        return generate(Path(tmp), count=1)[0].path.read_bytes()


class FloorBot:
    """Hands out an ever-increasing assignment number per tap: the workers only check that the
    task changed, and a real bot must learn the next task from somewhere, here for free."""

    def __init__(self, photo: bytes) -> None:
        self.photo = photo
        self.file_id: str | None = None
        self.assignments = itertools.count(1)
        self.router = Router()
        self.router.message(F.text)(self.on_text)
        self.router.callback_query(F.data.startswith("t:l:"))(self.on_tap)

    def keyboard(self) -> InlineKeyboardMarkup:
        aid = next(self.assignments)
        labels = [InlineKeyboardButton(text=label, callback_data=f"t:l:{aid}:{i}") for i, label in enumerate(LABELS)]
        tail = [
            InlineKeyboardButton(text="Skip", callback_data=f"t:s:{aid}"),
            InlineKeyboardButton(text="Report", callback_data=f"t:r:{aid}"),
        ]
        return InlineKeyboardMarkup(inline_keyboard=[labels, tail])

    @staticmethod
    def caption(n: int) -> str:
        return f"Which class is this?\nTask {n} · 10 KRW"

    async def on_text(self, message: Message) -> None:
        photo = self.file_id or BufferedInputFile(self.photo, filename="task.jpg")
        sent = await message.answer_photo(photo=photo, caption=self.caption(0), reply_markup=self.keyboard())
        if self.file_id is None and sent.photo:
            self.file_id = sent.photo[-1].file_id

    async def on_tap(self, query: CallbackQuery) -> None:
        await query.answer()
        message = query.message
        if not isinstance(message, Message) or self.file_id is None:
            return
        markup = self.keyboard()
        await message.edit_media(InputMediaPhoto(media=self.file_id, caption=self.caption(1)), reply_markup=markup)


def make(token: str, api_base: str) -> tuple[Bot, Dispatcher]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
    bot = Bot(token, session=session)
    dp = Dispatcher()
    dp.include_router(FloorBot(_photo_bytes()).router)
    return bot, dp


async def run_polling(token: str, api_base: str) -> None:
    bot, dp = make(token, api_base)
    await bot.delete_webhook(drop_pending_updates=False)
    gc.collect()
    gc.freeze()  # crowdpin does the same at start-up; the floor must not pay for what it skips
    await dp.start_polling(bot, handle_signals=True, close_bot_session=True)


async def run_webhook(token: str, api_base: str, port: int, secret: str) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    bot, dp = make(token, api_base)
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(app, path="/webhook")
    setup_application(app, dp, bot=bot)
    gc.collect()
    gc.freeze()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
    await bot.set_webhook(f"http://127.0.0.1:{port}/webhook", secret_token=secret or None)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--token", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--webhook-port", type=int, default=0, help="serve a webhook instead of long polling")
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    try:
        if args.webhook_port:
            asyncio.run(run_webhook(args.token, args.api_base, args.webhook_port, args.secret))
        else:
            asyncio.run(run_polling(args.token, args.api_base))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
