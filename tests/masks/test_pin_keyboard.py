"""The magic-pin candidates keyboard: what is offered for 0-3 candidates, the room for one more
way to answer, and callback data within Telegram's 64 bytes at any id and revision."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton

from bot.handlers import keyboards
from bot.handlers.callbacks import Act, TaskCb
from bot.i18n import t
from bot.tasks.magic_pin import MAX_CANDIDATES, SIGN_BACK, pick_value, unpack


def _texts(markup: keyboards.Keyboard) -> list[list[str]]:
    return [[b["text"] for b in row] for row in keyboards.as_json(markup)["inline_keyboard"]]


def _data(markup: keyboards.Keyboard) -> list[str]:
    return [b["callback_data"] for row in keyboards.as_json(markup)["inline_keyboard"] for b in row if "callback_data" in b]


def test_three_candidates_get_three_numbers_in_one_row() -> None:
    kb = keyboards.pin_mask(7, 4, "ko", candidates=3, pickable=[0, 1, 2], can_add=True)
    rows = _texts(kb)
    assert rows[0] == ["🟨 1", "🟦 2", "🟧 3"]
    assert rows[1:] == [
        [t("masks.pin.retry", "ko"), t("masks.pin.add", "ko")],
        [t("masks.pin.none", "ko")],
        [t("task.skip", "ko"), t("task.report", "ko")],
    ]
    picks = [TaskCb.unpack(d) for d in _data(kb)[:3]]
    assert [(p.a, p.id) for p in picks] == [(Act.PICK, 7)] * 3
    assert [unpack(p.v, MAX_CANDIDATES) for p in picks] == [(4, 0), (4, 1), (4, 2)]


def test_one_candidate_is_kept_with_one_wide_button_and_an_empty_one_not_at_all() -> None:
    one = keyboards.pin_mask(7, 4, "en", candidates=1, pickable=[0], can_add=True)
    assert _texts(one)[0] == [t("masks.pin.keep", "en")]
    assert TaskCb.unpack(_data(one)[0]) == TaskCb(a=Act.PICK, id=7, v=pick_value(4, 0))
    empty = keyboards.pin_mask(7, 4, "en", candidates=1, pickable=[], can_add=False)
    assert _texts(empty)[0] == [t("masks.pin.retry", "en")]
    assert all(TaskCb.unpack(d).a != Act.PICK for d in _data(empty))
    two = keyboards.pin_mask(7, 4, "en", candidates=2, pickable=[0, 1], can_add=True)
    assert _texts(two)[0] == ["🟨 1", "🟦 2"]


def test_one_more_way_to_answer_gets_its_own_row() -> None:
    extra = InlineKeyboardButton(text="✏️", callback_data="x")
    kb = keyboards.pin_mask(7, 4, "en", candidates=3, pickable=[0, 1, 2], can_add=True, extra=[extra])
    assert _texts(kb)[2] == ["✏️"] and _texts(kb)[3] == [t("masks.pin.none", "en")]


def test_callback_data_fits_64_bytes_at_the_largest_ids() -> None:
    kb = keyboards.pin_mask(2**63 - 1, 10**9, "ko", candidates=3, pickable=[0, 1, 2], can_add=True)
    assert max(len(d.encode()) for d in _data(kb)) <= 64


def test_choosing_the_outline_to_fix_offers_the_pickable_numbers_with_a_pencil_and_back() -> None:
    kb = keyboards.pin_choose(7, 4, "en", pickable=[0, 2])
    assert _texts(kb) == [["✏️ 🟨 1", "✏️ 🟧 3"], [t("masks.pin.back", "en")]]
    fixes = [TaskCb.unpack(d) for d in _data(kb)]
    assert [(f.a, f.id) for f in fixes[:2]] == [(Act.FIX, 7)] * 2
    assert [unpack(f.v, MAX_CANDIDATES) for f in fixes[:2]] == [(4, 0), (4, 2)]
    assert fixes[2].a == Act.ADD and unpack(fixes[2].v, 3) == (4, SIGN_BACK)
    # the pencil tells a fix from a pick, in both languages
    assert all(
        text not in _texts(keyboards.pin_mask(7, 4, "ko", candidates=3, pickable=[0, 1, 2], can_add=True))[0]
        for text in _texts(keyboards.pin_choose(7, 4, "ko", pickable=[0, 1, 2]))[0]
    )
    big = keyboards.pin_choose(2**63 - 1, 10**9, "ko", pickable=[0, 1, 2])
    assert max(len(d.encode()) for d in _data(big)) <= 64
