"""The bot-side text of quality: notices, training feedback, /stats."""

from __future__ import annotations

from bot.handlers import quality as ui
from bot.i18n import t
from bot.tasks.quality import Notice, ProjectStats, TrainingFeedback
from bot.tasks.service import AnswerOutcome, NoTask, NoTaskReason, Submitted


def _sub(notice: Notice | None) -> Submitted:
    return Submitted(answer_id=1, reward=10, task_done=False, notice=notice)


def test_a_stopping_notice_replaces_the_next_message() -> None:
    failed = Notice("quality.exam.failed", {"correct": 1, "total": 5, "score": 20, "needed": 80, "minutes": 30}, stops=True)
    outcome = AnswerOutcome(
        _sub(failed), NoTask(NoTaskReason.QUALITY, "quality.exam.cooldown", Notice("quality.exam.cooldown", {"minutes": 30}, True))
    )
    assert ui.prepare(outcome, "en") is None
    assert isinstance(outcome.next, NoTask) and outcome.next.notice is failed


def test_a_warning_pops_up_over_the_next_task() -> None:
    warning = Notice("quality.fast.warning", {"seconds": "2", "left": 3})
    outcome = AnswerOutcome(_sub(warning), None)
    assert ui.prepare(outcome, "ko") == t("quality.fast.warning", "ko", seconds="2", left=3)
    assert ui.prepare(AnswerOutcome(_sub(None), None), "en") is None
    assert ui.prepare(AnswerOutcome(True, None), "en") is None
    long = Notice("quality.training.explanation", {"text": "x" * 500})
    text = ui.prepare(AnswerOutcome(_sub(long), None), "en")
    assert text is not None and len(text) == ui.ALERT_LIMIT


def test_feedback_text() -> None:
    ok = TrainingFeedback(True, "cat", "Pointy ears.", "classify")
    assert ui.feedback_text(ok, "en") == "✅ Correct!\n💡 Pointy ears."
    wrong = TrainingFeedback(False, "no", None, "confirm-mask")
    assert ui.feedback_text(wrong, "ko") == t("quality.training.wrong", "ko", answer="아니요")


def test_stats_text() -> None:
    rows = [
        ProjectStats(1, "Shapes", "work", 40, 6, 0.8, 2, 9),
        ProjectStats(2, "Cars", "failed", 0, 5, None, None, 0),
    ]
    text = ui.stats_text(rows, "en").splitlines()
    assert text == [
        t("quality.stats.header", "en"),
        t("quality.stats.project", "en", project="Shapes", answers=40),
        t("quality.stats.accuracy", "en", accuracy=80, rank=2, of=9),
        t("quality.stats.project", "en", project="Cars", answers=0),
        t("quality.stats.unmeasured", "en"),
        t("quality.stats.stage_failed", "en"),
    ]
    assert ui.stats_text([], "ko").endswith(t("quality.stats.empty", "ko"))
