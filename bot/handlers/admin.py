"""``/stats`` and ``/projects`` for operators (``ADMIN_IDS``), with the admin CLI's figures.

The router carries an admin filter on its message observer, so for anyone else these commands
are not handled here at all: the update falls through to the normal handlers exactly as an
unknown command would, and nothing hints that admin commands exist.
"""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.types import Message, User

from bot.i18n import t, won
from bot.tasks import stats
from bot.telegram.runtime import App

router = Router(name="admin")
MESSAGE_LIMIT = 4096
TOP_WORKERS = 10


class IsAdmin(Filter):
    """True only for a sender whose Telegram id is in ADMIN_IDS."""

    async def __call__(self, event: Any, app: App | None = None, event_from_user: User | None = None) -> bool:
        return app is not None and event_from_user is not None and app.is_admin(event_from_user.id)


router.message.filter(IsAdmin())


def _fit(lines: list[str], lang: str) -> str:
    """Join lines, cutting whole lines so the message stays under Telegram's 4096 characters."""
    tail = t("admin.truncated", lang)
    out: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > MESSAGE_LIMIT - len(tail) - 1:
            out.append(tail)
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def _status(status: str, lang: str) -> str:
    return t(f"admin.status.{status}", lang) if status in ("active", "paused", "closed") else status


def stats_text(session: Any, lang: str) -> str:
    progress = stats.project_progress(session)
    leaders = stats.leaderboard(session, limit=TOP_WORKERS)
    lines = [t("admin.stats.title", lang)]
    if not progress:
        lines.append(t("admin.stats.none", lang))
    for p in progress:
        median = t("admin.median_none", lang) if p.median_seconds is None else f"{p.median_seconds:.1f}s"
        lines.append(
            t(
                "admin.stats.project",
                lang,
                id=p.id,
                name=p.name,
                status=_status(p.status, lang),
                done=f"{p.tasks_done:,}",
                total=f"{p.tasks_total:,}",
                percent=f"{p.percent_done:.0f}",
                answers=f"{p.answers:,}",
                last_hour=f"{p.answers_last_hour:,}",
                per_hour=f"{p.answers_per_hour_24h:.1f}",
                median=median,
                earned=won(p.earned),
            )
        )
    lines.append("")
    lines.append(t("admin.stats.leaders", lang))
    if not leaders:
        lines.append(t("admin.stats.no_leaders", lang))
    for rank, row in enumerate(leaders, start=1):
        accuracy = (
            t("admin.stats.accuracy_none", lang)
            if row.golden_accuracy is None
            else f"{100 * row.golden_accuracy:.0f}% ({row.golden_total})"
        )
        name = row.name or f"#{row.worker_id}"
        lines.append(
            t("admin.stats.leader", lang, rank=rank, name=name, answers=f"{row.answers:,}", earned=won(row.earned), accuracy=accuracy)
        )
    return _fit(lines, lang)


def projects_text(session: Any, lang: str) -> str:
    progress = stats.project_progress(session)
    lines = [t("admin.projects.title", lang)]
    if not progress:
        lines.append(t("admin.projects.none", lang))
    for p in progress:
        lines.append(
            t(
                "admin.projects.row",
                lang,
                id=p.id,
                name=p.name,
                type=p.type,
                status=_status(p.status, lang),
                done=f"{p.tasks_done:,}",
                total=f"{p.tasks_total:,}",
                price=won(p.price),
                overlap=p.overlap,
            )
        )
    return _fit(lines, lang)


def _read(app: App, fn: Any, lang: str) -> str:
    with app.db.read_session() as session:
        return fn(session, lang)


@router.message(Command("stats"))
async def on_stats(message: Message, app: App, lang: str = "ko") -> None:
    # A read-only snapshot on the DB executor: never takes the write lock the workers need.
    text = await app.db.run_blocking(_read, app, stats_text, lang)
    await message.answer(text)


@router.message(Command("projects"))
async def on_projects(message: Message, app: App, lang: str = "ko") -> None:
    text = await app.db.run_blocking(_read, app, projects_text, lang)
    await message.answer(text)
