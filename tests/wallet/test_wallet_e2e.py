"""The wallet end to end: the real bot polls the emulator; a simulated worker earns, checks the
balance, enters a bank account, withdraws; operators mark paid / failed; the worker is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import workers
from bot.config import WalletSettings
from bot.i18n import t, won
from bot.sandbox import Sandbox, create_sample_project
from bot.simulate import SimWorker
from bot.wallet import ledger, payout_accounts, payouts
from bot.wallet.models import Withdrawal, WithdrawalStatus
from bot.workers.models import Worker, WorkerStatus

MIN = 100


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = await Sandbox.start(tmp_path, wallet=WalletSettings(MIN_WITHDRAWAL=MIN, PAYOUT_NOTIFY_SECONDS=0.1))
    try:
        yield sandbox
    finally:
        await sandbox.close()


def _newest(box: Sandbox, uid: int) -> int:
    return max((m.message_id for m in box.emulator.transcript(uid)), default=0)


async def _bot_says(box: Sandbox, uid: int, expect: str, *, after: int = 0, timeout: float = 10) -> Any:
    """The first bot message (new or edited) after ``after`` whose text contains ``expect``."""

    def found() -> Any:
        for m in box.emulator.transcript(uid):
            if m.from_bot and not m.deleted and m.message_id > after and expect in (m.text or ""):
                return m
        return None

    return await box.emulator.wait_for(found, timeout)


async def _send(box: Sandbox, uid: int, text: str, expect: str) -> Any:
    before = _newest(box, uid)
    await box.emulator.send_text(uid, text)
    return await _bot_says(box, uid, expect, after=before)


def _buttons(message: Any) -> list[str]:
    markup = message.reply_markup or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def _worker_id(box: Sandbox, uid: int) -> int:
    with box.db.session() as s:
        return workers.get_by_tg(s, uid).id  # type: ignore[union-attr]


async def test_earn_check_balance_withdraw_and_get_paid(box: Sandbox, tmp_path: Path) -> None:
    create_sample_project(box.db, tmp_path / "images", count=5, overlap=1, price=60)
    sim = SimWorker.create(box.emulator, "민지", "ko")
    await sim.start()
    assert await sim.work() == 5
    uid, emu = sim.user_id, box.emulator

    shown = await _send(box, uid, t("menu.balance", "ko"), t("wallet.balance.title", "ko"))
    assert t("wallet.balance.available", "ko", amount=won(300)) in shown.text
    assert t("wallet.activity.earning", "ko", day=t("wallet.activity.today", "ko"), count=5, amount="+" + won(300)) in shown.text
    assert _buttons(shown) == [t("wallet.balance.withdraw_button", "ko")]

    # first withdrawal: bank by button, a wrong account number, then a right one
    before = _newest(box, uid)
    await emu.tap(uid, shown.message_id, text=t("wallet.balance.withdraw_button", "ko"))
    ask = await _bot_says(box, uid, t("wallet.withdraw.ask_bank", "ko"), after=before)
    before = _newest(box, uid)
    await emu.tap(uid, ask.message_id, text="신한")
    await _bot_says(box, uid, t("wallet.withdraw.ask_number", "ko", bank="신한"), after=before)
    await _send(box, uid, "12-34", t("wallet.withdraw.bad_number", "ko"))
    amount_screen = await _send(box, uid, "110-123-456789", t("wallet.withdraw.ask_amount", "ko", available=won(300), minimum=won(MIN)))
    assert t("wallet.withdraw.account_saved", "ko", bank="신한", masked="****6789") in [m.text for m in emu.transcript(uid)]
    assert not any("456789" in (m.text or "") for m in emu.transcript(uid) if m.from_bot), "account number shown unmasked"

    # a typed amount that is too big is refused, then "all" is chosen
    await _send(box, uid, "1,000원", t("wallet.withdraw.insufficient", "ko", available=won(300)))
    before = _newest(box, uid)
    await emu.tap(uid, amount_screen.message_id, text=t("wallet.withdraw.all_button", "ko", amount=won(300)))
    confirm_text = t("wallet.withdraw.confirm", "ko", amount=won(300), bank="신한", masked="****6789")
    confirm = await _bot_says(box, uid, confirm_text, after=before)

    # a double tap on "confirm" withdraws once
    label = t("wallet.withdraw.confirm_button", "ko")
    await asyncio.gather(emu.tap(uid, confirm.message_id, text=label), emu.tap(uid, confirm.message_id, text=label))
    requested = t("wallet.withdraw.requested", "ko", amount=won(300), bank="신한", masked="****6789")
    await _bot_says(box, uid, requested, after=confirm.message_id - 1)
    w = _worker_id(box, uid)
    with box.db.session() as s:
        (wd,) = s.execute(select(Withdrawal).where(Withdrawal.worker_id == w)).scalars().all()
        assert (wd.amount, wd.status, wd.account_number) == (300, WithdrawalStatus.OPEN, "110123456789")
        assert ledger.balance(s, w).available == 0

    # one open request at a time
    await _send(box, uid, "/withdraw", t("wallet.withdraw.open_exists", "ko", amount=won(300), bank="신한", masked="****6789"))

    # the operator pays it: the bot tells the worker, once
    before = _newest(box, uid)
    box.db.call(payouts.mark_paid, [wd.id])
    box.db.call(payouts.mark_paid, [wd.id])
    paid = t("wallet.notice.paid", "ko", amount=won(300), bank="신한", masked="****6789")
    await _bot_says(box, uid, paid, after=before)
    await asyncio.sleep(0.5)  # several notifier rounds
    assert sum(1 for m in emu.transcript(uid) if m.text == paid) == 1
    with box.db.session() as s:
        assert s.get(Withdrawal, wd.id).notified is True  # type: ignore[union-attr]
        assert payouts.consistency_problems(s) == []

    shown = await _send(box, uid, "/balance", t("wallet.balance.title", "ko"))
    assert t("wallet.activity.payout", "ko", day=t("wallet.activity.today", "ko"), amount=won(300)) in shown.text


async def test_failed_payout_returns_money_and_reaches_a_worker_who_was_away(box: Sandbox) -> None:
    sim = SimWorker.create(box.emulator, "Alex", "en")
    await sim.start()
    uid, emu = sim.user_id, box.emulator
    w = _worker_id(box, uid)
    with box.db.session() as s:
        ledger.credit_earning(s, worker_id=w, answer_id=1, amount=500)
        payout_accounts.save(s, w, bank="KB국민", number="123456789012")

    # the account is known: /withdraw goes straight to the amount; a typed amount below the minimum is refused
    await _send(box, uid, "/withdraw", t("wallet.withdraw.ask_amount", "en", available=won(500), minimum=won(MIN)))
    await _send(box, uid, "50", t("wallet.withdraw.below_minimum", "en", minimum=won(MIN), available=won(500)))
    confirm = await _send(box, uid, "200", t("wallet.withdraw.confirm", "en", amount=won(200), bank="KB국민", masked="****9012"))
    await emu.tap(uid, confirm.message_id, text=t("wallet.withdraw.confirm_button", "en"))
    await _bot_says(
        box, uid, t("wallet.withdraw.requested", "en", amount=won(200), bank="KB국민", masked="****9012"), after=confirm.message_id - 1
    )

    # the worker blocks the bot; the transfer fails; the notice waits for them
    emu.block(uid)
    with box.db.session() as s:
        wd = s.execute(select(Withdrawal).where(Withdrawal.worker_id == w)).scalars().one()
    box.db.call(payouts.fail, [wd.id], reason="account closed")

    def unreachable() -> bool:
        with box.db.session() as s:
            return s.get(Worker, w).status == WorkerStatus.UNREACHABLE  # type: ignore[union-attr]

    await emu.wait_for(unreachable, timeout=10)
    with box.db.session() as s:
        assert s.get(Withdrawal, wd.id).notified is False  # type: ignore[union-attr]
        assert ledger.balance(s, w).available == 500  # the money is back at once

    # they come back (a fresh bot process, so nothing is cached) and are told
    emu.unblock(uid)
    await box.restart_bot()
    before = _newest(box, uid)
    await emu.send_text(uid, "/start")
    failed = t("wallet.notice.failed", "en", amount=won(200), bank="KB국민", masked="****9012", reason="account closed")
    await _bot_says(box, uid, failed, after=before)

    def notified() -> bool:
        with box.db.session() as s:
            return s.execute(select(func.count(Withdrawal.id)).where(Withdrawal.notified.is_(True))).scalar_one() == 1  # type: ignore[attr-defined]

    await emu.wait_for(notified, timeout=10)
    assert sum(1 for m in emu.transcript(uid) if m.text == failed) == 1


async def test_menu_button_leaves_the_withdraw_flow(box: Sandbox) -> None:
    sim = SimWorker.create(box.emulator, "민수", "ko")
    await sim.start()
    uid = sim.user_id
    w = _worker_id(box, uid)
    box.db.call(lambda s: ledger.credit_earning(s, worker_id=w, answer_id=9, amount=150))
    await _send(box, uid, "/withdraw", t("wallet.withdraw.ask_bank", "ko"))
    # "Help" from the menu is handled as help, not taken as a bank name
    await _send(box, uid, t("menu.help", "ko"), t("help.text", "ko").split("\n")[0])
    assert box.db.call(payout_accounts.view, w) is None
    # below the minimum there is no withdraw button, and /withdraw says why
    box.db.call(lambda s: payout_accounts.save(s, w, bank="우리", number="1002123456789"))
    await _send(box, uid, "/withdraw", t("wallet.withdraw.ask_amount", "ko", available=won(150), minimum=won(MIN)))
    confirm = await _send(box, uid, "150", t("wallet.withdraw.confirm", "ko", amount=won(150), bank="우리", masked="****6789"))
    await box.emulator.tap(uid, confirm.message_id, text=t("wallet.withdraw.cancel_button", "ko"))
    await _bot_says(box, uid, t("wallet.withdraw.cancelled", "ko"), after=confirm.message_id - 1)
    assert box.db.call(ledger.balance, w).available == 150
