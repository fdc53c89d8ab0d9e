"""What workers see of quality control: ``/stats``, rule notices and training feedback.

The domain (``bot.tasks.quality``) decides; this module only turns its :class:`Notice` and
:class:`TrainingFeedback` into text. The worker loop (``bot.handlers.worker``) calls
:func:`prepare` and :func:`show_training_feedback` around each answer.
"""

from __future__ import annotations

import structlog
from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.handlers.middlewares import WorkerCtx
from bot.i18n import t
from bot.tasks import quality
from bot.tasks.models import ProjectType
from bot.tasks.quality import Notice, TrainingFeedback
from bot.tasks.service import AnswerOutcome, NoTask, NoTaskReason, Submitted
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.bot")
router = Router(name="quality")

ALERT_LIMIT = 200  # Telegram's limit for a callback answer


def notice_text(notice: Notice, lang: str) -> str:
    return t(notice.key, lang, **notice.params)


def answer_label(value: str | None, project_type: str, lang: str) -> str:
    if value is None:
        return "-"
    if project_type == ProjectType.CLASSIFY:
        return value
    return t(f"quality.answer.{value}", lang)


def feedback_text(feedback: TrainingFeedback, lang: str) -> str:
    if feedback.correct:
        lines = [t("quality.training.correct", lang)]
    else:
        lines = [t("quality.training.wrong", lang, answer=answer_label(feedback.right_answer, feedback.project_type, lang))]
    if feedback.explanation:
        lines.append(t("quality.training.explanation", lang, text=feedback.explanation))
    return "\n".join(lines)


def prepare(outcome: AnswerOutcome, lang: str) -> str | None:
    """Decide where the answer's notice goes; returns the text for a pop-up, if any.

    A notice that stops work becomes the message shown instead of a next task (it says more
    than the next claim's notice, e.g. the exam score); a notice that does not stop work (a
    warning, a passed exam) pops up over the next task.
    """
    result = outcome.result
    if not isinstance(result, Submitted) or result.notice is None:
        return None
    nxt = outcome.next
    if isinstance(nxt, NoTask):
        if result.notice.stops:
            nxt.reason, nxt.notice, nxt.detail = NoTaskReason.QUALITY, result.notice, result.notice.key
            return None
        if nxt.notice is not None and nxt.notice.key == result.notice.key:
            return None
    text = notice_text(result.notice, lang)
    return text if len(text) <= ALERT_LIMIT else text[: ALERT_LIMIT - 1] + "…"


async def show_training_feedback(bot: Bot, chat_id: int, message_id: int | None, result: object, lang: str) -> bool:
    """Turn the answered practice message into its feedback (photo kept, buttons gone).

    Returns True when it did, so the next task goes out as a new message below it.
    """
    feedback = result.training_feedback if isinstance(result, Submitted) else None
    if feedback is None or message_id is None:
        return False
    try:
        await bot.edit_message_caption(
            chat_id=chat_id, message_id=message_id, caption=feedback_text(feedback, lang)[:1024], reply_markup=None
        )
    except Exception as exc:  # noqa: BLE001 - without the edit the next task simply replaces it
        log.info("quality.feedback_edit_failed", error=str(exc))
        try:
            await bot.send_message(chat_id, feedback_text(feedback, lang))
        except Exception as exc2:  # noqa: BLE001
            log.info("quality.feedback_send_failed", error=str(exc2))
        return False
    return True


def stats_text(stats: list[quality.ProjectStats], lang: str) -> str:
    if not stats:
        return t("quality.stats.header", lang) + "\n" + t("quality.stats.empty", lang)
    lines = [t("quality.stats.header", lang)]
    for row in stats:
        lines.append(t("quality.stats.project", lang, project=row.project, answers=row.answers))
        if row.accuracy is not None and row.rank is not None:
            lines.append(t("quality.stats.accuracy", lang, accuracy=quality.pct(row.accuracy), rank=row.rank, of=row.ranked))
        else:
            lines.append(t("quality.stats.unmeasured", lang))
        stage_line = t(f"quality.stats.stage_{row.stage}", lang) if row.stage in {s.value for s in quality.Stage} else ""
        if stage_line:
            lines.append(stage_line)
    return "\n".join(lines)[:4096]


@router.message(Command("stats"))
async def on_stats(message: Message, app: App, worker: WorkerCtx, lang: str) -> None:
    stats = await app.db.run(quality.worker_stats, worker.id)
    await message.answer(stats_text(stats, lang))
