"""Structured logs: key=value for people at a terminal, JSON lines for machines (LOG_JSON=1)."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor


class _Stderr:
    """Whatever ``sys.stderr`` is at write time: loggers are cached on first use, and a stream
    captured then (a test runner's, a CliRunner's) may be closed by the time they write."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(level: str = "INFO", json: bool = False) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # basicConfig does nothing the second time; the level must still follow the last call
    # (``crowdpin run`` without a token hands over to the demo, which asks for WARNING).
    logging.getLogger().setLevel(level.upper())
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # Alembic narrates every plugin and migration at INFO: noise before the product's first
    # words on every start. Its warnings still show; DEBUG shows everything.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
