"""``crowdpin demo``: the whole product on one machine, with no Telegram token.

Starts the Bot API emulator, a sample project of generated images, the real bot against it,
and a few simulated workers who label everything; prints what they see and do, then the
collected labels, and exits.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from bot.i18n import t
from bot.sample import SampleImage, deepest_cell
from bot.sandbox import Sandbox, create_mask_project, create_sample_project, truth_label
from bot.simulate import Screen, SimWorker
from bot.tasks.models import BOX_VALUES, Project, Task
from bot.wallet.ledger import balance

NAMES = [("민지", "ko"), ("재호", "ko"), ("Alex", "en"), ("서연", "ko"), ("Sam", "en"), ("도윤", "ko")]


@dataclass
class DemoProjects:
    """The sample projects a newcomer sees, with what a careful worker would answer."""

    classify: Project
    confirm: Project
    pin: Project
    boxes: Project | None = None  # a model's boxes to validate (confirm-box)
    samples: dict[int, list[SampleImage]] = field(default_factory=dict)  # project id -> images
    truth: dict[tuple[int, str], str] = field(default_factory=dict)  # (project id, external id) -> answer
    n_boxes: int = 0

    def projects(self) -> list[Project]:
        return [p for p in (self.classify, self.confirm, self.pin, self.boxes) if p is not None]

    def describe(self, p: Project) -> str:
        size = f"{self.n_boxes} model boxes" if p is self.boxes else f"{len(self.samples[p.id or 0])} images"
        return f"#{p.id} “{p.name}” ({p.type}): {size}"


def load_sample_projects(box: Sandbox, workdir: Path, *, tasks: int = 12, overlap: int = 3, mask_tasks: int = 6) -> DemoProjects:
    """Classify, confirm-mask, Magic Pin and confirm-box projects over generated shapes (claimed
    in that order: the easy one first, then the masks, then a model's boxes to validate).

    Truth per task: the shape's name (classify); "yes", or "no" for every third mask, which is
    shifted off its shape (confirm-mask); the cell deepest inside the shape (Magic Pin); the
    generated verdict of each predicted box (confirm-box, ``mask_tasks`` boxes loaded from a
    COCO file as an ML team would).
    """
    classify, shapes = create_sample_project(box.db, workdir / "classify" / "images", count=tasks, overlap=overlap)
    confirm, masked = create_mask_project(
        box.db,
        workdir / "confirm" / "images",
        type="confirm-mask",
        count=mask_tasks,
        seed=21,
        wrong_every=3,
        name="Shapes: is the mask right?",
    )
    pin, pinned = create_mask_project(
        box.db, workdir / "pin" / "images", type="magic-pin", count=mask_tasks, seed=33, name="Shapes: Magic Pin"
    )
    assert classify.id is not None and confirm.id is not None and pin.id is not None
    out = DemoProjects(classify, confirm, pin, samples={classify.id: shapes, confirm.id: masked, pin.id: pinned})
    for sample in shapes:
        out.truth[classify.id, sample.external_id] = truth_label(sample)
    for i, sample in enumerate(masked):
        out.truth[confirm.id, sample.external_id] = "no" if i % 3 == 2 else "yes"
    for sample in pinned:
        out.truth[pin.id, sample.external_id] = deepest_cell(sample)
    if mask_tasks > 0:
        _load_boxes(box, workdir / "boxes", mask_tasks, out)
    return out


def _load_boxes(box: Sandbox, folder: Path, n: int, out: DemoProjects) -> None:
    """A confirm-box project from a generated COCO detection file (right, wrong-box and
    wrong-class predictions), with each task's true verdict."""
    import math

    from bot import sample_boxes
    from bot.tasks import datasets, projects

    preds = sample_boxes.generate(folder, math.ceil(n / 2), per_image=2, shares=(0.34, 0.33), seed=5, small_every=3)[:n]
    source = sample_boxes.write_coco(folder, preds)
    with box.db.session() as session:
        project = projects.create(
            session,
            name="Shapes: a model's boxes",
            type="confirm-box",
            price=10,
            overlap=1,
            question_ko="노란 상자가 도형 하나를 딱 맞게 감싸고, 이름도 맞나요?",
            question_en="Is the yellow box tight around one shape, and is the name right?",
        )
    assert project.id is not None
    datasets.load(box.db, project.id, source, media_dir=None, copy=False, show_score=True)
    for external_id, _, pred in box.db.call(sample_boxes.tasks_truth, project.id, preds).values():
        out.truth[project.id, external_id] = pred.truth
    out.boxes, out.n_boxes = project, len(preds)


def _chooser(box: Sandbox, demo: DemoProjects, accuracy: float, rng: random.Random):
    """A worker who is right with probability ``accuracy`` (the truth comes from the task the
    button belongs to, as a careful person would see it in the photo). On Magic Pin: taps the
    cell on the object, then keeps the first (best) outline."""

    def choose(screen: Screen) -> str | None:
        found = box.db.call(_task_of, screen.assignment_id or 0)
        if found is None:
            return None
        project_id, external_id = found
        right = demo.truth.get((project_id, external_id))
        texts = [text for text, _ in screen.buttons]
        if project_id == demo.pin.id:
            picks = [text for text, data in screen.buttons if data.startswith("t:p:")]
            if picks:
                return picks[0]
            return right if right in texts else None
        if project_id == demo.confirm.id:
            yes, no = (t(key, _lang_of(texts)) for key in ("masks.correct", "masks.wrong"))
            say_yes = (right == "yes") == (rng.random() <= accuracy)
            return yes if say_yes else no
        if demo.boxes is not None and project_id == demo.boxes.id:
            verdicts = {t(f"boxes.{v}", lang): v for v in BOX_VALUES for lang in ("ko", "en") if t(f"boxes.{v}", lang) in texts}
            if not verdicts:
                return None
            pick = right if right in verdicts.values() and rng.random() <= accuracy else rng.choice(sorted(verdicts.values()))
            return next(text for text, v in verdicts.items() if v == pick)
        labels = screen.labels()
        if right is None or rng.random() > accuracy:
            return rng.choice(labels)
        return right

    return choose


def _lang_of(texts: list[str]) -> str:
    return "ko" if t("masks.correct", "ko") in texts else "en"


def _task_of(session, assignment_id: int) -> tuple[int, str] | None:
    from bot.tasks.models import Assignment

    row = session.execute(
        select(col(Task.project_id), col(Task.external_id))
        .join(Assignment, col(Assignment.task_id) == col(Task.id))
        .where(col(Assignment.id) == assignment_id)
    ).first()
    return (row[0], row[1] or "") if row is not None else None


async def run_demo(workers: int = 3, tasks: int = 12, overlap: int = 3, verbose: bool = True, mask_tasks: int = 6) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="crowdpin-demo-"))
    print(f"crowdpin demo — sandbox in {workdir}", flush=True)
    box = await Sandbox.start(workdir)
    try:
        print(f"Bot API emulator at {box.server.base_url} (token {box.token})")
        demo = load_sample_projects(box, workdir, tasks=tasks, overlap=min(overlap, workers), mask_tasks=mask_tasks)
        project = demo.classify
        for p in demo.projects():
            print(f"Project {demo.describe(p)}, overlap {p.overlap}, ₩{p.price} per answer")
        print()
        truth = {s.external_id: truth_label(s) for s in demo.samples[project.id or 0]}
        sims = []
        for i in range(workers):
            name, lang = NAMES[i % len(NAMES)]
            rng = random.Random(i)
            sim = SimWorker.create(box.emulator, name, lang, chooser=_chooser(box, demo, 0.9, rng))
            sims.append(sim)
        for sim in sims:
            await sim.start()
            if verbose:
                print(f"{sim.name}: /start → “{sim.last_text().splitlines()[0]}”")
        await asyncio.gather(*(sim.work(verbose=verbose) for sim in sims))
        if verbose:
            for sim in sims:
                print(f"{sim.name}: “{sim.last_text().splitlines()[0]}”")
        print("\nCollected labels (aggregated, with confidence):")
        rows = box.db.call(_collected, project.id)
        correct = 0
        for result in rows:
            ok = result.label == truth.get(result.external_id)
            correct += ok
            mark = "" if ok else f"  ✗ truth: {truth[result.external_id]}"
            print(
                f"  {result.external_id}: {result.label}  ({result.method}, confidence {result.confidence:.2f}, {result.n_answers} answers){mark}"
            )
        print(f"\n{correct}/{len(rows)} images labelled correctly.")
        _print_mask_results(box, demo)
        for sim in sims:
            worker_id = box.db.call(_worker_id, sim.user_id)
            bal = box.db.call(balance, worker_id)
            print(f"  {sim.name}: {sim.answered} answers, balance ₩{bal.available:,}")
        return 0 if rows else 1
    finally:
        await box.close()


def _print_mask_results(box: Sandbox, demo: DemoProjects) -> None:
    """Confirm-mask verdicts against the truth, and Magic Pin masks against the true masks."""
    import json

    from bot.autoseg import rle as coco_rle
    from bot.sample import true_mask

    answers = box.db.call(_answers, demo.confirm.id or 0)
    right = sum(value == demo.truth.get((demo.confirm.id or 0, ext)) for ext, value, _ in answers)
    print(f"\nIs the mask right? {right}/{len(answers)} verdicts agree with the truth.")
    by_id = {s.external_id: s for s in demo.samples[demo.pin.id or 0]}
    pins = box.db.call(_answers, demo.pin.id or 0)
    ious = [
        coco_rle.mask_iou(coco_rle.decode(json.loads(mask)), true_mask(by_id[ext])) for ext, value, mask in pins if value == "mask" and mask
    ]
    mean = sum(ious) / len(ious) if ious else 0.0
    print(f"Magic Pin: {len(ious)} objects outlined with one tap and one pick, mean IoU with the true outline {mean:.2f}.")
    if demo.boxes is not None and demo.boxes.id is not None:
        verdicts = box.db.call(_answers, demo.boxes.id)
        agree = sum(value == demo.truth.get((demo.boxes.id, ext)) for ext, value, _ in verdicts)
        print(f"A model's boxes: {agree}/{len(verdicts)} verdicts agree with the truth.")
    print()


def _answers(session, project_id: int) -> list[tuple[str, str, str | None]]:
    from bot.tasks.models import Answer

    rows = session.execute(
        select(col(Task.external_id), col(Answer.value), col(Answer.mask_rle))
        .join(Answer, col(Answer.task_id) == col(Task.id))
        .where(col(Answer.project_id) == project_id)
        .order_by(col(Answer.id))
    ).all()
    return [(row[0] or "", row[1], row[2]) for row in rows]


def _collected(session, project_id: int) -> list:
    from bot.tasks.aggregate import aggregate_project

    return list(aggregate_project(session, project_id, "auto"))


def _worker_id(session, tg_id: int) -> int:
    from bot.workers import get_by_tg

    worker = get_by_tg(session, tg_id)
    assert worker is not None and worker.id is not None
    return worker.id


async def run_web_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8088,
    workdir: Path | None = None,
    tasks: int = 6,
    mask_tasks: int = 4,
    lang: str = "ko",
    ready: asyncio.Event | None = None,
) -> int:
    """``crowdpin demo --web``: the sandbox with a person as the worker, in a browser.

    Starts the emulator, the bot and the sample projects, serves the chat page
    (:mod:`bot.webchat`) and prints its address; runs until cancelled (Ctrl-C).
    """
    from bot.webchat import serve

    workdir = workdir or Path(tempfile.mkdtemp(prefix="crowdpin-web-"))
    workdir.mkdir(parents=True, exist_ok=True)
    box = await Sandbox.start(workdir, webapp=True)  # the Mini App too: mask tasks carry ✏️ Precise
    chat = None
    try:
        demo = load_sample_projects(box, workdir, tasks=tasks, overlap=1, mask_tasks=mask_tasks)
        try:
            chat = await serve(box.server.base_url, host=host, port=port, default_lang=lang)
        except OSError as err:
            print(f"cannot serve the page on {host}:{port} ({err.strerror or err}); try another --port, or --port 0 for any free one")
            return 2
        print("crowdpin sandbox — play a worker in your browser")
        for p in demo.projects():
            print(f"  project {demo.describe(p)}, ₩{p.price} per answer")
        print(f"  data: {workdir} (SQLite {workdir / 'crowdpin.db'})")
        print(f"  Bot API emulator: {box.server.base_url}")
        print(f"\nOpen {chat.url} — press Ctrl-C to stop.", flush=True)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
        return 0
    finally:
        if chat is not None:
            await chat.close()
        await box.close()
