"""One source of "now" (aware UTC), so tests can move time without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC) + _offset


def day_start(now: datetime, tz: str = "Asia/Seoul") -> datetime:
    """Midnight of ``now``'s local day in ``tz``, as aware UTC: "today" is the worker's day."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def advance(seconds: float) -> None:
    """Move the clock forward (tests: expire leases, hold periods, cool-downs)."""
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
