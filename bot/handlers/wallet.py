"""The worker's money in the chat: ``/balance`` and ``/withdraw``.

``/withdraw`` is a short FSM: bank (buttons or typed) -> account number (first time only) ->
amount (buttons or typed) -> one confirmation screen. Nothing is written until the confirm
tap, and the domain re-checks everything then (minimum, available money, one open request),
so a stale or doubled tap can never withdraw twice.

Paid / failed notices are sent by a background job (``bot.jobs.payout_notices``): the admin CLI
that closes a request cannot talk to Telegram.
"""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import (
    TelegramBadRequest,
)
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.clock import utcnow
from bot.handlers.keyboards import main_menu, menu_texts
from bot.handlers.middlewares import WorkerCtx
from bot.i18n import LOCALES, catalog, t, won
from bot.telegram.buttons import CallbackInt
from bot.telegram.runtime import App
from bot.wallet import activity, ledger, payout_accounts, withdrawals
from bot.wallet.activity import Activity
from bot.wallet.models import EntryKind, Withdrawal
from bot.wallet.payout_accounts import PayoutAccountError
from bot.wallet.withdrawals import WithdrawRefusal

log = structlog.get_logger("crowdpin.wallet")
router = Router(name="wallet")

# Proper names, the same in both locales; anything else can be typed.
BANKS = ("KB국민", "신한", "우리", "하나", "NH농협", "IBK기업", "카카오뱅크", "토스뱅크", "케이뱅크", "SC제일")
RECENT_LINES = 5


class WalletCb(CallbackData, prefix="w"):
    """``a``: wd (start), bank (v = index in BANKS), amt (v = KRW), ok (v = KRW), acct, no."""

    a: str
    v: CallbackInt = 0


class Withdraw(StatesGroup):
    bank = State()
    number = State()
    amount = State()


def _menu_labels() -> frozenset[str]:
    """Every main-menu button text in every locale: tapping one leaves the withdraw flow."""
    return frozenset(v for lang in LOCALES for k, v in catalog(lang).items() if k.startswith("menu."))


def _leaves_flow(text: str | None) -> bool:
    return not text or text.startswith("/") or text in _menu_labels()


async def _escape(message: Message, state: FSMContext) -> None:
    """A command or a menu button in the middle of the flow: drop the flow, let others handle it."""
    if _leaves_flow(message.text):
        await state.clear()
        raise SkipHandler


# --- /balance ------------------------------------------------------------------------------


def _signed(amount: int) -> str:
    return ("+" if amount > 0 else "−" if amount < 0 else "") + won(abs(amount))


def _day(d: date, today: date, lang: str) -> str:
    if d == today:
        return t("wallet.activity.today", lang)
    if (today - d).days == 1:
        return t("wallet.activity.yesterday", lang)
    return t("wallet.activity.date", lang, month=d.month, day=d.day)


def activity_line(line: Activity, today: date, lang: str, tz: str) -> str:
    day = _day(line.day, today, lang)
    amount = won(line.amount) if line.kind == EntryKind.PAYOUT else _signed(line.amount)
    if line.kind == EntryKind.EARNING and line.pending_until is not None:
        until = line.pending_until.astimezone(ZoneInfo(tz)).date()
        return "• " + t("wallet.activity.earning_pending", lang, day=day, count=line.count, amount=amount, until=_day(until, today, lang))
    return "• " + t(f"wallet.activity.{line.kind}", lang, day=day, count=line.count, amount=amount, note=line.note or "-")


def _balance_view(session: Any, worker_id: int, tz: str, minimum: int) -> tuple[ledger.Balance, withdrawals.Quote, list[Activity]]:
    now = utcnow()
    return (
        ledger.balance(session, worker_id, now=now, tz=tz),
        withdrawals.quote(session, worker_id, minimum=minimum, now=now),
        activity.recent(session, worker_id, limit=RECENT_LINES, tz=tz, now=now),
    )


def balance_text(bal: ledger.Balance, quote: withdrawals.Quote, lines: list[Activity], lang: str, tz: str) -> str:
    out = [t("wallet.balance.title", lang), t("wallet.balance.available", lang, amount=won(bal.available))]
    if bal.pending:
        out.append(t("wallet.balance.pending", lang, amount=won(bal.pending)))
    out.append(t("wallet.balance.today", lang, amount=won(bal.today)))
    out.append(t("wallet.balance.lifetime", lang, amount=won(bal.lifetime)))
    if quote.open_request is not None:
        w = quote.open_request
        out.append(t("wallet.balance.open_request", lang, amount=won(w.amount), bank=w.bank, masked=payout_accounts.mask(w.account_number)))
    elif not quote.can_withdraw:
        out.append(t("wallet.balance.min_hint", lang, minimum=won(quote.minimum)))
    out.append("")
    if lines:
        today = utcnow().astimezone(ZoneInfo(tz)).date()
        out.append(t("wallet.balance.recent", lang))
        out.extend(activity_line(line, today, lang, tz) for line in lines)
    else:
        out.append(t("wallet.balance.nothing_yet", lang))
    return "\n".join(out)


@router.message(Command("balance"))
@router.message(F.text.in_(menu_texts("menu.balance")))
async def on_balance(message: Message, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await state.clear()
    bal, quote, lines = await app.db.run(_balance_view, worker.id, app.tz, app.settings.wallet.min_withdrawal)
    markup = None
    if quote.can_withdraw:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=t("wallet.balance.withdraw_button", lang), callback_data=WalletCb(a="wd").pack())]]
        )
    await message.answer(balance_text(bal, quote, lines, lang, app.tz), reply_markup=markup or main_menu(lang))


# --- /withdraw -----------------------------------------------------------------------------


def _kb(rows: list[list[tuple[str, WalletCb]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=cb.pack()) for text, cb in row] for row in rows]
    )


def _bank_keyboard() -> InlineKeyboardMarkup:
    buttons = [(bank, WalletCb(a="bank", v=i)) for i, bank in enumerate(BANKS)]
    return _kb([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def _amount_keyboard(available: int, minimum: int, lang: str) -> InlineKeyboardMarkup:
    rows = [[(t("wallet.withdraw.all_button", lang, amount=won(available)), WalletCb(a="amt", v=available))]]
    if available > minimum:
        rows.append([(won(minimum), WalletCb(a="amt", v=minimum))])
    rows.append([(t("wallet.withdraw.cancel_button", lang), WalletCb(a="no"))])
    return _kb(rows)


def _confirm_keyboard(amount: int, lang: str) -> InlineKeyboardMarkup:
    return _kb(
        [
            [(t("wallet.withdraw.confirm_button", lang), WalletCb(a="ok", v=amount))],
            [(t("wallet.withdraw.change_account_button", lang), WalletCb(a="acct"))],
            [(t("wallet.withdraw.cancel_button", lang), WalletCb(a="no"))],
        ]
    )


def _open_text(w: Withdrawal, lang: str) -> str:
    return t("wallet.withdraw.open_exists", lang, amount=won(w.amount), bank=w.bank, masked=payout_accounts.mask(w.account_number))


async def _quote(app: App, worker: WorkerCtx) -> withdrawals.Quote:
    return await app.db.run(withdrawals.quote, worker.id, minimum=app.settings.wallet.min_withdrawal)


async def start_withdraw(bot: Bot, chat_id: int, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await state.clear()
    quote = await _quote(app, worker)
    if quote.open_request is not None:
        await bot.send_message(chat_id, _open_text(quote.open_request, lang))
        return
    if quote.available < quote.minimum:
        await bot.send_message(
            chat_id, t("wallet.withdraw.below_minimum", lang, minimum=won(quote.minimum), available=won(quote.available))
        )
        return
    if quote.account is None:
        await ask_bank(bot, chat_id, lang, state)
        return
    await ask_amount(bot, chat_id, quote, lang, state)


async def ask_bank(bot: Bot, chat_id: int, lang: str, state: FSMContext) -> None:
    await state.set_state(Withdraw.bank)
    await bot.send_message(chat_id, t("wallet.withdraw.ask_bank", lang), reply_markup=_bank_keyboard())


async def ask_amount(bot: Bot, chat_id: int, quote: withdrawals.Quote, lang: str, state: FSMContext) -> None:
    await state.set_state(Withdraw.amount)
    await bot.send_message(
        chat_id,
        t("wallet.withdraw.ask_amount", lang, available=won(quote.available), minimum=won(quote.minimum)),
        reply_markup=_amount_keyboard(quote.available, quote.minimum, lang),
    )


async def bank_chosen(bot: Bot, chat_id: int, bank: str, lang: str, state: FSMContext) -> None:
    await state.update_data(bank=bank)
    await state.set_state(Withdraw.number)
    await bot.send_message(chat_id, t("wallet.withdraw.ask_number", lang, bank=bank))


async def amount_chosen(bot: Bot, chat_id: int, amount: int, app: App, worker: WorkerCtx, lang: str) -> None:
    """Check the amount against what is available now and show the one confirmation screen."""
    quote = await _quote(app, worker)
    if quote.open_request is not None:
        await bot.send_message(chat_id, _open_text(quote.open_request, lang))
        return
    if quote.account is None:
        await bot.send_message(chat_id, t("wallet.withdraw.no_account", lang))
        return
    if amount < quote.minimum:
        await bot.send_message(
            chat_id, t("wallet.withdraw.below_minimum", lang, minimum=won(quote.minimum), available=won(quote.available))
        )
        return
    if amount > quote.available:
        await bot.send_message(chat_id, t("wallet.withdraw.insufficient", lang, available=won(quote.available)))
        return
    await bot.send_message(
        chat_id,
        t("wallet.withdraw.confirm", lang, amount=won(amount), bank=quote.account.bank, masked=quote.account.masked),
        reply_markup=_confirm_keyboard(amount, lang),
    )


@router.message(Command("withdraw"))
async def on_withdraw(message: Message, bot: Bot, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await start_withdraw(bot, message.chat.id, app, worker, lang, state)


@router.callback_query(WalletCb.filter(F.a == "wd"))
async def on_withdraw_button(query: CallbackQuery, bot: Bot, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await query.answer()
    await start_withdraw(bot, _chat(query), app, worker, lang, state)


def _chat(query: CallbackQuery) -> int:
    return query.message.chat.id if query.message else query.from_user.id


async def _drop_buttons(query: CallbackQuery, text: str | None = None) -> None:
    """The screen that was tapped loses its buttons (and may say what happened), so it cannot be tapped again."""
    if query.message is None:
        return
    with contextlib.suppress(TelegramBadRequest):
        if text is None:
            await query.message.edit_reply_markup(reply_markup=None)  # type: ignore[union-attr]
        else:
            await query.message.edit_text(text, reply_markup=None)  # type: ignore[union-attr]


@router.callback_query(WalletCb.filter(F.a == "bank"))
async def on_bank_button(query: CallbackQuery, callback_data: WalletCb, bot: Bot, lang: str, state: FSMContext) -> None:
    if not 0 <= callback_data.v < len(BANKS):
        await query.answer(t("wallet.withdraw.expired", lang))
        return
    await query.answer()
    await _drop_buttons(query)
    await bank_chosen(bot, _chat(query), BANKS[callback_data.v], lang, state)


@router.message(StateFilter(Withdraw.bank))
async def on_bank_text(message: Message, bot: Bot, lang: str, state: FSMContext) -> None:
    await _escape(message, state)
    try:
        bank = payout_accounts.clean_bank(message.text or "")
    except PayoutAccountError:
        await message.answer(t("wallet.withdraw.bad_bank", lang))
        return
    await bank_chosen(bot, message.chat.id, bank, lang, state)


@router.message(StateFilter(Withdraw.number))
async def on_number_text(message: Message, bot: Bot, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await _escape(message, state)
    bank = (await state.get_data()).get("bank")
    if not bank:
        await ask_bank(bot, message.chat.id, lang, state)
        return
    try:
        view = await app.db.run(payout_accounts.save, worker.id, bank=bank, number=message.text or "", holder=worker.name)
    except PayoutAccountError as exc:
        await message.answer(t(f"wallet.withdraw.{exc.code}", lang))
        return
    log.info("wallet.account_saved", bank=view.bank, account=view.masked)
    await message.answer(t("wallet.withdraw.account_saved", lang, bank=view.bank, masked=view.masked))
    quote = await _quote(app, worker)
    if quote.open_request is not None or quote.available < quote.minimum:
        await state.clear()
        return
    await ask_amount(bot, message.chat.id, quote, lang, state)


@router.callback_query(WalletCb.filter(F.a == "amt"))
async def on_amount_button(query: CallbackQuery, callback_data: WalletCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    await query.answer()
    await _drop_buttons(query)
    await amount_chosen(bot, _chat(query), callback_data.v, app, worker, lang)


@router.message(StateFilter(Withdraw.amount))
async def on_amount_text(message: Message, bot: Bot, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    await _escape(message, state)
    amount = withdrawals.parse_amount(message.text or "")
    if amount is None:
        await message.answer(t("wallet.withdraw.bad_amount", lang))
        return
    await amount_chosen(bot, message.chat.id, amount, app, worker, lang)


@router.callback_query(WalletCb.filter(F.a == "acct"))
async def on_change_account(query: CallbackQuery, bot: Bot, lang: str, state: FSMContext) -> None:
    await query.answer()
    await _drop_buttons(query)
    await ask_bank(bot, _chat(query), lang, state)


@router.callback_query(WalletCb.filter(F.a == "no"))
async def on_cancel(query: CallbackQuery, lang: str, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    await _drop_buttons(query, t("wallet.withdraw.cancelled", lang))


@router.callback_query(WalletCb.filter(F.a == "ok"))
async def on_confirm(query: CallbackQuery, callback_data: WalletCb, app: App, worker: WorkerCtx, lang: str, state: FSMContext) -> None:
    minimum = app.settings.wallet.min_withdrawal
    got = await app.db.run(withdrawals.request, worker.id, callback_data.v, minimum=minimum, chat_id=_chat(query))
    if isinstance(got, WithdrawRefusal):
        quote = await _quote(app, worker)
        if got == WithdrawRefusal.ALREADY_OPEN and quote.open_request is not None:
            text = _open_text(quote.open_request, lang)
        else:
            text = t(f"wallet.withdraw.{got.value}", lang, minimum=won(minimum), available=won(quote.available))
        log.info("wallet.withdraw_refused", reason=got.value, amount=callback_data.v)
        await query.answer(text, show_alert=True)
        await _drop_buttons(query)
        return
    await state.clear()
    await query.answer()
    log.info("wallet.withdraw_requested", withdrawal_id=got.id, amount=got.amount)
    await _drop_buttons(
        query,
        t("wallet.withdraw.requested", lang, amount=won(got.amount), bank=got.bank, masked=payout_accounts.mask(got.account_number)),
    )
