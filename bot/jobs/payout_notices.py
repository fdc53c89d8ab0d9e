"""The background job that tells workers their withdrawal was paid or failed.

Operators close requests with the admin CLI, which cannot talk to Telegram, so closed requests
wait in the database (``bot.wallet.payouts.claim_notices``) until this job delivers them, every
``PAYOUT_NOTIFY_SECONDS``.
"""

from __future__ import annotations

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError

from bot import workers
from bot.i18n import t, won
from bot.jobs.periodic import PeriodicJob
from bot.telegram.runtime import App
from bot.wallet import payouts

log = structlog.get_logger("crowdpin.wallet")

NOTICE_BATCH = 20


def notice_text(notice: payouts.Notice) -> str:
    return t(
        f"wallet.notice.{notice.status}",
        notice.lang,
        amount=won(notice.amount),
        bank=notice.bank,
        masked=notice.masked,
        reason=notice.reason or "-",
    )


async def deliver_notices(bot: Bot, app: App, *, limit: int = NOTICE_BATCH) -> int:
    """Tell workers about closed requests; returns how many were delivered.

    Delivery is at least once: the database is marked after Telegram accepted the message. A
    worker who blocked the bot is marked unreachable and told when they come back; a passing
    error (network, flood control) releases the claim for the next round.
    """
    delivered = 0
    for notice in await app.db.run(payouts.claim_notices, limit=limit):
        try:
            await bot.send_message(notice.chat_id, notice_text(notice))
        except TelegramForbiddenError:
            log.info("wallet.notice_blocked", withdrawal_id=notice.withdrawal_id)
            await app.db.run(workers.mark_unreachable, notice.worker_id)
            await app.db.run(payouts.release_notice, notice.withdrawal_id)
            continue
        except TelegramBadRequest as exc:  # chat gone for good: retrying cannot help
            log.warning("wallet.notice_undeliverable", withdrawal_id=notice.withdrawal_id, error=str(exc))
            await app.db.run(payouts.mark_notified, notice.withdrawal_id)
            continue
        except Exception as exc:  # noqa: BLE001 - network, 429, 5xx: try again next round
            log.warning("wallet.notice_retry", withdrawal_id=notice.withdrawal_id, error=str(exc))
            await app.db.run(payouts.release_notice, notice.withdrawal_id)
            break
        await app.db.run(payouts.mark_notified, notice.withdrawal_id)
        delivered += 1
        log.info("wallet.notice_sent", withdrawal_id=notice.withdrawal_id, status=notice.status)
    return delivered


class PayoutNotifier(PeriodicJob):
    """Looks for closed requests every ``interval`` seconds and tells their workers."""

    name = "wallet-notifier"
    error_event = "wallet.notifier_error"
    log = log

    def __init__(self, app: App, bot: Bot, *, interval: float) -> None:
        super().__init__(interval=interval)
        self.app = app
        self.bot = bot

    async def tick(self) -> object:
        return await deliver_notices(self.bot, self.app)
