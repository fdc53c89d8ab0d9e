"""Keyboards sized for a first-time smartphone user: few, wide buttons with short words."""

from __future__ import annotations

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.handlers.callbacks import Act, LangCb, TaskCb
from bot.i18n import LOCALES, t


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


def _btn(text: str, act: Act, aid: int, v: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=TaskCb(a=act, id=aid, v=v).pack())


def _rows(buttons: list[InlineKeyboardButton], per_row: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def classify(labels: list[str], aid: int, lang: str) -> InlineKeyboardMarkup:
    """One wide button per label (two per row when there are many), then Skip / Report."""
    per_row = 1 if len(labels) <= 4 else 2
    buttons = [_btn(label, Act.LABEL, aid, i) for i, label in enumerate(labels)]
    rows = _rows(buttons, per_row)
    rows.append([_btn(t("task.skip", lang), Act.SKIP, aid), _btn(t("task.report", lang), Act.REPORT, aid)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def report_reasons(aid: int, lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_btn(t("task.report_broken", lang), Act.REPORT_REASON, aid, 0)],
            [_btn(t("task.report_offensive", lang), Act.REPORT_REASON, aid, 1)],
            [_btn(t("task.report_back", lang), Act.BACK, aid)],
        ]
    )
