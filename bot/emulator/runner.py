"""Running the emulator as a program (``crowdpin emulator``, ``python -m bot.emulator``) or in a thread.

:func:`serve_forever` is what a person uses to run the bot against the
emulator by hand; :func:`start_background` runs one on its own thread and
event loop for synchronous code such as a benchmark harness.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from .emulator import Emulator
from .server import EmulatorServer

T = TypeVar("T")

# A fixed token for hand-run sessions, so the bot's environment survives emulator restarts.
# It is only ever valid against the emulator.
DEFAULT_TEST_TOKEN = "7000000001:AAEmulatorTestTokenForCrowdpinBot00"


def banner(base_url: str, token: str, version: str) -> str:
    return "\n".join(
        [
            f"crowdpin Bot API emulator ({version}) listening on {base_url}",
            f"test bot token: {token}",
            "run the bot against it with:",
            f"  TELEGRAM_API_BASE={base_url} BOT_TOKEN={token} crowdpin run",
            f"control API: {base_url}/_emu/ (see docs/emulator.md); Ctrl-C to stop",
        ]
    )


async def _serve(host: str, port: int, token: str | None, flood_control: bool, out: TextIO) -> None:
    emulator = Emulator(flood_control=flood_control)
    token = emulator.add_bot(username="crowdpin_bot", token=token or DEFAULT_TEST_TOKEN)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with EmulatorServer(emulator, host=host, port=port) as server:
        print(banner(server.base_url, token, emulator.spec.version), file=out, flush=True)
        await stop.wait()
    print("emulator stopped", file=out, flush=True)


def serve_forever(host: str = "127.0.0.1", port: int = 8081, token: str | None = None, flood_control: bool = False) -> None:
    """Start the emulator with one bot, print its base URL and token, and run until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, token, flood_control, sys.stdout))


class BackgroundEmulator:
    """An emulator served from its own thread; :meth:`run` executes code on its loop."""

    def __init__(
        self, emulator: Emulator, server: EmulatorServer, token: str, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.emulator = emulator
        self.server = server
        self.token = token
        self._loop = loop
        self._thread = thread

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def run(self, fn: Callable[[Emulator], T]) -> Any:
        """Call ``fn(emulator)`` on the emulator's loop (awaiting it if it returns a coroutine)."""

        async def invoke() -> Any:
            result = fn(self.emulator)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result()

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> BackgroundEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_background(host: str = "127.0.0.1", port: int = 0, token: str | None = None, flood_control: bool = False) -> BackgroundEmulator:
    """Start an emulator with one bot on a daemon thread; returns once it is listening."""
    ready: concurrent.futures.Future[BackgroundEmulator] = concurrent.futures.Future()
    loop = asyncio.new_event_loop()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            emulator = Emulator(flood_control=flood_control)
            bot_token = emulator.add_bot(username="crowdpin_bot", token=token)
            server = EmulatorServer(emulator, host=host, port=port)
            loop.run_until_complete(server.start())
            ready.set_result(BackgroundEmulator(emulator, server, bot_token, loop, thread))
        except BaseException as err:  # noqa: BLE001 - report any start-up failure to the caller
            ready.set_exception(err)
            return
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="bot-api-emulator", daemon=True)
    thread.start()
    return ready.result(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.emulator", description="Local Telegram Bot API emulator.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="TCP port (default 8081; 0 picks a free one)")
    parser.add_argument("--token", default=None, help=f"bot token to serve (default {DEFAULT_TEST_TOKEN})")
    parser.add_argument("--flood-control", action="store_true", help="answer 429 like Telegram when sending too fast")
    args = parser.parse_args(argv)
    serve_forever(host=args.host, port=args.port, token=args.token, flood_control=args.flood_control)
    return 0
