"""A local Telegram Bot API server for end-to-end tests, benchmarks and the no-token sandbox.

The real bot talks to it over real HTTP (``TelegramAPIServer.from_base(server.base_url)``),
exactly as it would talk to a self-hosted ``telegram-bot-api``; every call is validated
against the official Bot API spec and Telegram's limits. Tests play the users (write,
tap buttons, block the bot) and the network (flood control, faults) through the Python
API of :class:`Emulator`, other processes through the HTTP control API under ``/_emu/``
(see :class:`~bot.emulator.client.EmulatorClient` and ``docs/emulator.md``).

    emu = Emulator()
    token = emu.add_bot(username="crowdpin_bot")
    async with EmulatorServer(emu) as server:
        user = emu.create_user(first_name="Min", language_code="ko")
        await emu.send_text(user.id, "/start")
        reply = await emu.wait_for(lambda: emu.last_message(user.id))
"""

from .emulator import Emulator
from .errors import ApiError, ButtonNotFound, EmulatorError
from .server import EmulatorServer
from .state import EmulatedUser, TranscriptMessage
from .stats import EmulatorStats

__all__ = [
    "ApiError",
    "ButtonNotFound",
    "EmulatedUser",
    "Emulator",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorStats",
    "TranscriptMessage",
]
