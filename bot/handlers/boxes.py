"""Confirm-box tasks in the chat: the predicted box on the photo, ✅ Correct / ❌ Wrong box / 🏷 Wrong class.

The picture (box, dimmed context boxes, a zoomed inset for small boxes) is the same for every
worker of a task: made once on the pictures' pool, its file id remembered per task. The answer
goes through the shared ``finish()``, so pay-once, golden, quality rules and dynamic overlap
are exactly those of the other task types.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery

from bot.handlers import keyboards, presenter
from bot.handlers import worker as worker_loop
from bot.handlers.callbacks import Act, TaskCb
from bot.handlers.middlewares import WorkerCtx
from bot.handlers.presenter import Rendered
from bot.i18n import t
from bot.tasks.boxes import box_view
from bot.tasks.models import BOX_VALUES
from bot.tasks.pictures import image_ref
from bot.tasks.service import TaskCard
from bot.telegram.runtime import App

router = Router(name="boxes")


def _remember(app: App, key: tuple[str, str]) -> Callable[[str], None]:
    def put(file_id: str) -> None:
        app.overlay_file_ids[key] = file_id

    return put


@presenter.renderer("confirm-box")
async def render_box(app: App, card: TaskCard, lang: str) -> Rendered:
    view = await app.db.run(box_view, card.task_id)
    lines = [] if card.question else [t("boxes.question", lang)]
    if view is None:  # a task without a box (should not load; a hand-edited database)
        file_id, upload = await presenter.phone_photo(app, card)
        return Rendered(
            caption=presenter.caption(card, lang, *lines, t("boxes.unreadable", lang)),
            keyboard=keyboards.confirm_box(card.assignment_id, lang, can_answer=False),
            file_id=file_id,
            upload=upload,
            cache_image_id=card.image_id if upload is not None else None,
        )
    if view.label:
        lines.append(t("boxes.object", lang, object=view.label))
    if view.prediction.show_score and view.prediction.score is not None:
        lines.append(t("boxes.score", lang, score=round(view.prediction.score * 100)))
    key = (card.image_sha256, f"box:{card.task_id}")
    file_id = app.overlay_file_ids.get(key)
    upload = None
    if file_id is None:
        upload = await app.pictures.run(app.pictures.box_jpeg, image_ref(card), view.prediction.box, view.others)
    return Rendered(
        caption=presenter.caption(card, lang, *lines),
        keyboard=keyboards.confirm_box(card.assignment_id, lang, extra=presenter.precise(app, card, lang)),
        file_id=file_id,
        upload=upload,
        on_file_id=_remember(app, key),
    )


@router.callback_query(TaskCb.filter(F.a == Act.BOX))
async def on_box(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    # An index out of range becomes a value no project accepts, so the domain refuses it.
    v = callback_data.v
    value = BOX_VALUES[v] if 0 <= v < len(BOX_VALUES) else f"#{v}"
    await worker_loop.finish(query, bot, app, worker, lang, callback_data.id, "answer", value)
