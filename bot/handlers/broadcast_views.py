"""What operators see of a broadcast: its buttons, error texts and the status message.

Shared by the ``/broadcast`` router (``bot.handlers.broadcast``) and the background job that
keeps the operator's status message current (``bot.jobs.broadcasts``).
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.broadcast import service
from bot.broadcast.audience import Audience
from bot.broadcast.models import BroadcastStatus
from bot.i18n import t
from bot.telegram.buttons import CallbackInt

ACTIVE_DAYS = 7  # the "recently active" button


class BcCb(CallbackData, prefix="bc"):
    a: str  # p project, a audience, ok confirm, no cancel, stop
    v: CallbackInt = 0


def error_text(exc: Exception, lang: str) -> str:
    """A translated message for the known cases, the domain's own words for the rest."""
    code = getattr(exc, "code", "")
    if code:
        return t(f"broadcast.err_{code}", lang, **getattr(exc, "params", {}))
    return t("broadcast.error", lang, reason=str(exc))


def keyboard(rows: list[list[tuple[str, BcCb]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=cb.pack()) for text, cb in row] for row in rows]
    )


def audience_label(spec: str, lang: str) -> str:
    aud = Audience.parse(spec)
    if aud.kind == "active-days":
        return t("broadcast.audience_active", lang, days=aud.days)
    return t(f"broadcast.audience_{aud.kind}", lang)


def audience_keyboard(lang: str) -> InlineKeyboardMarkup:
    return keyboard(
        [
            [(t("broadcast.audience_all", lang), BcCb(a="a", v=0))],
            [(t("broadcast.audience_qualified", lang), BcCb(a="a", v=-1))],
            [(t("broadcast.audience_active", lang, days=ACTIVE_DAYS), BcCb(a="a", v=ACTIVE_DAYS))],
        ]
    )


def spec_from_button(v: int) -> str:
    return "all" if v == 0 else "qualified" if v < 0 else f"active-days:{v}"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_status(p: service.Progress, lang: str, fallback_rate: float) -> str:
    running = p.status in (BroadcastStatus.PENDING, BroadcastStatus.RUNNING)
    return t(
        "broadcast.status",
        lang,
        id=p.broadcast_id,
        state=t(f"broadcast.state_{p.status}", lang),
        sent=p.sent,
        failed=p.failed,
        blocked=p.blocked,
        remaining=p.remaining,
        rate=f"{p.rate:.1f}",
        eta=duration(p.eta_seconds(fallback_rate) if running else 0),
    )


def stop_keyboard(broadcast_id: int, lang: str) -> InlineKeyboardMarkup:
    return keyboard([[(t("broadcast.stop", lang), BcCb(a="stop", v=broadcast_id))]])
