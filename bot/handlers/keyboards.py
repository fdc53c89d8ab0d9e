"""Keyboards sized for a first-time smartphone user: few, wide buttons with short words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    WebAppInfo,
)

from bot.autoseg.overlay import CANDIDATE_MARKS
from bot.handlers.callbacks import Act, LangCb, TaskCb
from bot.i18n import LOCALES, t
from bot.tasks.magic_pin import CELLS, GRID_COLS, SIGN_BACK, SIGN_NEG, SIGN_POS, pack, pick_value


def main_menu(lang: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=t("menu.get_task", lang))],
            [KeyboardButton(text=t("menu.balance", lang)), KeyboardButton(text=t("menu.help", lang))],
        ],
        resize_keyboard=True,
        is_persistent=True,
        input_field_placeholder=t("menu.placeholder", lang),
    )


def menu_texts(key: str) -> frozenset[str]:
    """The button text in every locale: a Korean worker may still have an English keyboard."""
    return frozenset(t(key, lang) for lang in LOCALES)


def language_picker() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="🇰🇷 한국어", callback_data=LangCb(code="ko").pack()),
                InlineKeyboardButton(text="🇬🇧 English", callback_data=LangCb(code="en").pack()),
            ]
        ]
    )


_SEP = TaskCb.__separator__

# An inline keyboard either as aiogram's model or as its Bot API JSON. The task keyboard is
# rebuilt for every answer and goes out as JSON (see ``bot.telegram.session.call_json``), so it is
# made as JSON; :func:`markup` turns it into the model where an aiogram method needs one.
Keyboard = InlineKeyboardMarkup | dict[str, Any]


def _data(act: Act, aid: int, v: int = 0) -> str:
    """``TaskCb(a=act, id=aid, v=v).pack()``, without building the model."""
    return _SEP.join((TaskCb.__prefix__, act.value, str(aid), str(v)))


def _btn(text: str, act: Act, aid: int, v: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=TaskCb(a=act, id=aid, v=v).pack())


def as_json(keyboard: Keyboard) -> dict[str, Any]:
    """The Bot API JSON of an inline keyboard of callback buttons."""
    if isinstance(keyboard, dict):
        return keyboard
    return {"inline_keyboard": [[_button_json(button) for button in row] for row in keyboard.inline_keyboard]}


def _button_json(button: InlineKeyboardButton) -> dict[str, Any]:
    if button.web_app is not None:
        return {"text": button.text, "web_app": {"url": button.web_app.url}}
    return {"text": button.text, "callback_data": button.callback_data}


def precise_url(base: str, assignment_id: int) -> str:
    """The ✏️ Precise button's address: ``WEBAPP_URL`` naming the assignment (``?a=``)."""
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, urlencode({"a": assignment_id})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


def precise(url: str | None, lang: str) -> list[InlineKeyboardButton]:
    """The ✏️ Precise button opening the Mini App at ``url`` (none without a URL: WEBAPP_URL unset)."""
    if not url:
        return []
    return [InlineKeyboardButton(text=t("masks.webapp.button", lang), web_app=WebAppInfo(url=url))]


def markup(keyboard: Keyboard) -> InlineKeyboardMarkup:
    if isinstance(keyboard, InlineKeyboardMarkup):
        return keyboard
    return InlineKeyboardMarkup.model_validate(keyboard)


def _rows(buttons: list[Any], per_row: int) -> list[list[Any]]:
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def classify(labels: list[str], aid: int, lang: str) -> dict[str, Any]:
    """One wide button per label (two per row when there are many), then Skip / Report."""
    per_row = 1 if len(labels) <= 4 else 2
    buttons = [{"text": label, "callback_data": _data(Act.LABEL, aid, i)} for i, label in enumerate(labels)]
    rows = _rows(buttons, per_row)
    rows.append(
        [
            {"text": t("task.skip", lang), "callback_data": _data(Act.SKIP, aid)},
            {"text": t("task.report", lang), "callback_data": _data(Act.REPORT, aid)},
        ]
    )
    return {"inline_keyboard": rows}


def report_reasons(aid: int, lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_btn(t("task.report_broken", lang), Act.REPORT_REASON, aid, 0)],
            [_btn(t("task.report_offensive", lang), Act.REPORT_REASON, aid, 1)],
            [_btn(t("task.report_back", lang), Act.BACK, aid)],
        ]
    )


def _skip_report(aid: int, lang: str) -> list[InlineKeyboardButton]:
    return [_btn(t("task.skip", lang), Act.SKIP, aid), _btn(t("task.report", lang), Act.REPORT, aid)]


def confirm_mask(aid: int, lang: str, *, can_answer: bool = True, extra: Sequence[InlineKeyboardButton] = ()) -> InlineKeyboardMarkup:
    """Correct / Wrong side by side (v = 1 / 0), ``extra`` (e.g. ✏️ Precise), then Skip / Report."""
    rows = []
    if can_answer:
        rows.append([_btn(t("masks.correct", lang), Act.CONFIRM, aid, 1), _btn(t("masks.wrong", lang), Act.CONFIRM, aid, 0)])
        if extra:
            rows.append(list(extra))
    rows.append(_skip_report(aid, lang))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def confirm_box(aid: int, lang: str, *, can_answer: bool = True, extra: Sequence[InlineKeyboardButton] = ()) -> InlineKeyboardMarkup:
    """Correct (wide, the common answer), then Wrong box / Wrong class side by side, ``extra``
    (✏️ Precise: drag the box's corners), then Skip / Report."""
    rows = []
    if can_answer:
        rows.append([_btn(t("boxes.correct", lang), Act.BOX, aid, 0)])
        rows.append([_btn(t("boxes.wrong_box", lang), Act.BOX, aid, 1), _btn(t("boxes.wrong_class", lang), Act.BOX, aid, 2)])
        if extra:
            rows.append(list(extra))
    rows.append(_skip_report(aid, lang))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _cells(aid: int, rev: int) -> list[list[InlineKeyboardButton]]:
    buttons = [_btn(cell, Act.CELL, aid, pack(rev, i, len(CELLS))) for i, cell in enumerate(CELLS)]
    return _rows(buttons, GRID_COLS)


def pin_grid(aid: int, rev: int, lang: str, *, extra: Sequence[InlineKeyboardButton] = ()) -> InlineKeyboardMarkup:
    """Magic pin, first look: one button per grid cell (4 per row), ``extra`` (e.g. ✏️ Precise),
    No such object, Skip / Report."""
    rows = _cells(aid, rev)
    if extra:
        rows.append(list(extra))
    rows.append([_btn(t("masks.pin.none", lang), Act.NONE, aid)])
    rows.append(_skip_report(aid, lang))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def pin_mask(
    aid: int,
    rev: int,
    lang: str,
    *,
    candidates: int,
    pickable: Sequence[int],
    can_add: bool,
    extra: Sequence[InlineKeyboardButton] = (),
) -> InlineKeyboardMarkup:
    """Magic pin, the candidates are shown: one button per pickable candidate (its colour and
    number, side by side; a lone candidate gets a wide Keep), Try another cell / Add a point,
    ``extra`` (a row of further ways to answer, e.g. a web app), No such object, Skip / Report.
    """
    rows = []
    if candidates == 1 and 0 in pickable:
        rows.append([_btn(t("masks.pin.keep", lang), Act.PICK, aid, pick_value(rev, 0))])
    elif candidates > 1:
        picks = [i for i in pickable if 0 <= i < min(candidates, len(CANDIDATE_MARKS))]
        rows.append(
            [_btn(t("masks.pin.pick", lang, mark=CANDIDATE_MARKS[i], number=i + 1), Act.PICK, aid, pick_value(rev, i)) for i in picks]
        )
    second = [_btn(t("masks.pin.retry", lang), Act.RETRY, aid, rev)]
    if can_add:
        second.append(_btn(t("masks.pin.add", lang), Act.ADD, aid, pack(rev, SIGN_POS, 3)))
    rows.append(second)
    if extra:
        rows.append(list(extra))
    rows.append([_btn(t("masks.pin.none", lang), Act.NONE, aid)])
    rows.append(_skip_report(aid, lang))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def pin_choose(aid: int, rev: int, lang: str, *, pickable: Sequence[int]) -> InlineKeyboardMarkup:
    """Magic pin, before the first added point: which outline to fix (the picture's colours and
    numbers again, with a pencil, so they are not taken for picks), and Back."""
    fixes = [i for i in pickable if 0 <= i < len(CANDIDATE_MARKS)]
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_btn(t("masks.pin.fix", lang, mark=CANDIDATE_MARKS[i], number=i + 1), Act.FIX, aid, pick_value(rev, i)) for i in fixes],
            [_btn(t("masks.pin.back", lang), Act.ADD, aid, pack(rev, SIGN_BACK, 3))],
        ]
    )


def pin_add(aid: int, rev: int, lang: str, *, positive: bool) -> InlineKeyboardMarkup:
    """Magic pin, adding a point: the cells, a +/- switch (the active side ticked), Back."""
    rows = _cells(aid, rev)
    plus, minus = t("masks.pin.mode_add", lang), t("masks.pin.mode_remove", lang)
    rows.append(
        [
            _btn(("✔ " if positive else "") + plus, Act.ADD, aid, pack(rev, SIGN_POS, 3)),
            _btn(("✔ " if not positive else "") + minus, Act.ADD, aid, pack(rev, SIGN_NEG, 3)),
        ]
    )
    rows.append([_btn(t("masks.pin.back", lang), Act.ADD, aid, pack(rev, SIGN_BACK, 3))])
    return InlineKeyboardMarkup(inline_keyboard=rows)
