"""Confirm-box end to end: the real bot polls the emulator over HTTP; workers tap the verdicts."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from bot.autoseg.box_overlay import BOX_RGB
from bot.i18n import t
from bot.sample_boxes import RIGHT, WRONG_BOX
from bot.sandbox import Sandbox
from bot.simulate import Screen, SimWorker
from bot.tasks import datasets
from bot.tasks import export as exporting
from bot.tasks.models import Answer, Assignment, Task, TaskStatus
from bot.wallet.accounts import LABELING_EXPENSE
from bot.wallet.ledger import account_balance, ledger_total
from tests.boxes.helpers import box_project, dataset, task_truth
from tests.masks.test_masks_e2e import press

VERDICT_KEYS = {"correct": "boxes.correct", "wrong_box": "boxes.wrong_box", "wrong_class": "boxes.wrong_class"}


def _task_id(box: Sandbox, assignment_id: int) -> int:
    with box.db.session() as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        return assignment.task_id


async def test_confirm_box_round_through_the_bot(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    source, preds = dataset(tmp_path / "ds", "coco", images=2, per_image=3, size=(640, 480))
    project = box_project(box.db, overlap=2, price=12, question_en="Box right?", question_ko="상자가 맞나요?")
    datasets.load(box.db, project.id, source, media_dir=None, copy=False, show_score=True)  # type: ignore[arg-type]
    truth = task_truth(box.db, preds)
    photos: dict[int, set[str]] = {}
    screens: list[Screen] = []

    def judge(screen: Screen) -> str:
        tid = _task_id(box, screen.assignment_id or 0)
        pred = truth[tid]
        photos.setdefault(tid, set()).add(screen.photo_file_id or "")
        screens.append(screen)
        assert t("boxes.object", "en", object=pred.label) in screen.caption
        assert t("boxes.score", "en", score=round(pred.score * 100)) in screen.caption
        return t(VERDICT_KEYS[pred.truth], "en")

    sims = [SimWorker.create(box.emulator, f"w{i}", "en", chooser=judge) for i in range(2)]
    for sim in sims:
        await sim.start()
    done = await asyncio.gather(*(sim.work() for sim in sims))
    assert done == [6, 6]
    texts = [text for text, _ in screens[0].buttons]
    assert texts == [t(k, "en") for k in ("boxes.correct", "boxes.wrong_box", "boxes.wrong_class", "task.skip", "task.report")]
    assert all(len(data.encode()) <= 64 for s in screens for _, data in s.buttons)
    with box.db.session() as s:
        answers = list(s.execute(select(Answer)).scalars())
        assert set(s.execute(select(Task.status)).scalars()) == {TaskStatus.DONE}
        assert account_balance(s, LABELING_EXPENSE) == -12 * 12 and ledger_total(s) == 0
    assert len(answers) == 12 and all(a.reward == 12 for a in answers)
    assert all(a.value == truth[a.task_id].truth for a in answers)
    # one picture per task, uploaded once, the second worker gets it by file id
    assert all(len(ids) == 1 for ids in photos.values()) and len({i for ids in photos.values() for i in ids}) == 6
    # the picture shows the predicted box in yellow along its edge
    tid, pred = next((tid, p) for tid, p in truth.items() if p.box[2] > 30)
    shown = np.asarray(PILImage.open(io.BytesIO(box.emulator.file_bytes(next(iter(photos[tid]))))).convert("RGB"), dtype=np.int16)
    x, y, _w, h = (round(v) for v in pred.box)
    edge = shown[y + h // 2, x : x + 3]  # the box's left edge, half-way down
    assert (np.abs(edge - np.array(BOX_RGB)).sum(axis=1) < 90).any(), edge
    # the verified set: exactly the boxes the workers called correct
    out = tmp_path / "verified.json"
    exporting.export(box.db, project.id, what="results", fmt="coco", out=out, secret="s")
    exported = json.loads(out.read_text())
    assert len(exported["annotations"]) == sum(p.truth == RIGHT for p in truth.values())
    assert all(a["crowd"]["answers"] == 2 for a in exported["annotations"])


async def test_forged_verdicts_and_repeats_are_refused_and_paid_once(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    source, _preds = dataset(tmp_path / "ds", "yolo", images=1, per_image=2)
    project = box_project(box.db, overlap=1, price=9)
    datasets.load(box.db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    a = SimWorker.create(box.emulator, "a", "en")
    b = SimWorker.create(box.emulator, "b", "en")
    for sim in (a, b):
        await sim.start()
    sa, sb = await a.request_task(), await b.request_task()
    assert sa is not None and sb is not None and sa.assignment_id != sb.assignment_id
    answer = await press(box, a, sa.message_id, data=f"t:x:{sa.assignment_id}:7")
    assert answer["text"] == t("refuse.invalid", "en")
    answer = await press(box, b, sb.message_id, data=f"t:x:{sa.assignment_id}:0")
    assert answer["text"] == t("refuse.not_yours", "en")
    await press(box, a, sa.message_id, text=t("boxes.wrong_box", "en"))
    answer = await press(box, a, sa.message_id, data=f"t:x:{sa.assignment_id}:0")  # a replayed tap on the old task
    assert answer["text"] == t("refuse.already", "en")
    with box.db.session() as s:
        rows = list(s.execute(select(Answer)).scalars())
        assert account_balance(s, LABELING_EXPENSE) == -9
    assert [(r.value, r.reward) for r in rows] == [(WRONG_BOX, 9)]
