"""The magic-pin state machine and mask helpers on the domain functions (no Telegram)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from bot import clock
from bot.autoseg import Box, Candidate, Point, set_segmenter
from bot.autoseg import rle as coco_rle
from bot.autoseg.overlay import cell_center
from bot.db import Database
from bot.sample import SampleImage, true_mask
from bot.tasks import magic_pin, service
from bot.tasks.magic_pin import CELLS, SIGN_BACK, SIGN_NEG, SIGN_POS, Phase, PinMask, PinRefusal, PinState, Step, pack, pick_value
from bot.tasks.models import Answer, Assignment, Task
from bot.tasks.service import Refusal, Submitted, TaskCard
from bot.wallet.ledger import balance, ledger_total
from bot.work import answers as work_answers
from tests.masks.candidate_backend import PickedRings, Rings, SegmentOnly, ring_masks
from tests.masks.helpers import best_cell, iou_with_truth, make_project, make_workers, outside_cell

CELL_BASE = len(CELLS)


def _lease(db: Database, worker_id: int) -> TaskCard:
    card = db.call(service.next_task, worker_id)
    assert isinstance(card, TaskCard)
    return card


def _rgb(sample: SampleImage) -> np.ndarray:
    return np.asarray(PILImage.open(sample.path).convert("RGB"))


def _do(db: Database, worker_id: int, aid: int, action: str, v: int, sample: SampleImage) -> TaskCard:
    """Decide, segment like the handler does, commit."""
    step = db.call(magic_pin.pin_step, worker_id, aid, action, v)
    assert isinstance(step, Step), step
    if step.segment is not None:
        step.state.candidates = magic_pin.candidates_for_cells(_rgb(sample), step.segment, (320, 240), step.state.base)
    card = db.call(magic_pin.commit_step, worker_id, step)
    assert isinstance(card, TaskCard), card
    return card


def _add_mode(db: Database, worker_id: int, aid: int, state: PinState, sign: int, sample: SampleImage, fix: int = 0) -> TaskCard:
    """ "Add a point" from the candidates; where the bot asks which outline to fix, ``fix``."""
    card = _do(db, worker_id, aid, "add", pack(state.rev, sign, 3), sample)
    chosen = PinState.from_dict(card.state)
    if chosen.phase == Phase.CHOOSE:
        card = _do(db, worker_id, aid, "fix", pick_value(chosen.rev, fix), sample)
    return card


def _sample_of(samples: list[SampleImage], card: TaskCard) -> SampleImage:
    return next(s for s in samples if s.path.resolve() == Path(card.image_path).resolve())


def test_pin_keep_records_a_good_mask_and_pays_once(any_db: Database, tmp_path: Path) -> None:
    db = any_db
    _, samples = make_project(db, tmp_path / "imgs", price=25)
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    assert PinState.from_dict(card.state).phase == Phase.GRID
    card = _do(db, w, card.assignment_id, "cell", pack(0, best_cell(sample), CELL_BASE), sample)
    state = PinState.from_dict(card.state)
    assert state.phase == Phase.MASK and state.rev == 1 and state.area > 0
    assert state.mask is not None and state.mask["size"] == [240, 320]

    outcome = db.call(work_answers.keep_and_next, w, card.assignment_id, pick_value(state.rev, 0))
    assert isinstance(outcome.result, Submitted) and outcome.result.reward == 25
    again = db.call(work_answers.keep_and_next, w, card.assignment_id, pick_value(state.rev, 0))
    assert again.result == Refusal.ALREADY and again.next is None
    with db.session() as s:
        answers = list(s.execute(select(Answer)).scalars())
        assert balance(s, w).today == 25
        assert ledger_total(s) == 0
    assert len(answers) == 1 and answers[0].value == "mask"
    assert iou_with_truth(answers[0].mask_rle or "", sample) > 0.9


def test_stale_forged_and_foreign_taps_change_nothing(any_db: Database, tmp_path: Path) -> None:
    db = any_db
    make_project(db, tmp_path / "imgs")
    w1, w2 = make_workers(db, 2)
    card = _lease(db, w1)
    aid = card.assignment_id
    with db.session() as s:
        before = s.get(Assignment, aid).state_json  # type: ignore[union-attr]
    assert db.call(magic_pin.pin_step, w2, aid, "cell", 5) == Refusal.NOT_YOURS
    assert db.call(magic_pin.pin_step, w1, 999_999, "cell", 5) == Refusal.UNKNOWN
    assert db.call(magic_pin.pin_step, w1, aid, "cell", -1) == Refusal.INVALID
    assert db.call(magic_pin.pin_step, w1, aid, "dance", 0) == Refusal.INVALID
    assert db.call(magic_pin.pin_step, w1, aid, "cell", pack(3, 5, CELL_BASE)) == PinRefusal.STALE  # wrong revision
    assert db.call(magic_pin.pin_step, w1, aid, "retry", 0) == PinRefusal.STALE  # nothing to retry yet
    assert db.call(magic_pin.pin_step, w1, aid, "add", pack(0, SIGN_POS, 3)) == PinRefusal.STALE  # no mask yet
    assert db.call(magic_pin.kept_mask, w1, aid, 0) == PinRefusal.STALE
    assert db.call(magic_pin.kept_mask, w2, aid, 0) == Refusal.NOT_YOURS
    with db.session() as s:
        assert s.get(Assignment, aid).state_json == before  # type: ignore[union-attr]
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 0


def test_double_tap_commits_once(any_db: Database, tmp_path: Path) -> None:
    """Two taps decided on the same state: the first commit wins, the second is stale."""
    db = any_db
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    v = pack(0, best_cell(sample), CELL_BASE)
    first = db.call(magic_pin.pin_step, w, card.assignment_id, "cell", v)
    second = db.call(magic_pin.pin_step, w, card.assignment_id, "cell", v)
    assert isinstance(first, Step) and isinstance(second, Step)
    for step in (first, second):
        step.state.candidates = magic_pin.candidates_for_cells(_rgb(sample), step.segment or [], (320, 240))
    assert isinstance(db.call(magic_pin.commit_step, w, first), TaskCard)
    assert db.call(magic_pin.commit_step, w, second) == PinRefusal.STALE
    # and the same button again, now that the state moved on
    assert db.call(magic_pin.pin_step, w, card.assignment_id, "cell", v) == PinRefusal.STALE


def test_add_points_retry_and_back(any_db: Database, tmp_path: Path) -> None:
    db = any_db
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    aid = card.assignment_id
    card = _do(db, w, aid, "cell", pack(0, best_cell(sample), CELL_BASE), sample)
    first = PinState.from_dict(card.state)
    # add a point: the classical segmenter refines a chosen outline, so with several outlines
    # it asks which one first; then the ADD phase over the same masks, then switch to "remove"
    card = _do(db, w, aid, "add", pack(first.rev, SIGN_POS, 3), sample)
    state = PinState.from_dict(card.state)
    assert state.phase == (Phase.CHOOSE if len(first.pickable()) > 1 else Phase.ADD)
    if state.phase == Phase.CHOOSE:
        card = _do(db, w, aid, "fix", pick_value(state.rev, 0), sample)
        state = PinState.from_dict(card.state)
    assert state.phase == Phase.ADD and state.positive and state.mask == first.mask and state.base == 0
    step = db.call(magic_pin.pin_step, w, aid, "add", pack(state.rev, SIGN_NEG, 3))
    assert isinstance(step, Step) and not step.redraw and not step.state.positive
    card = db.call(magic_pin.commit_step, w, step)
    state = PinState.from_dict(card.state)  # type: ignore[union-attr]
    # a negative point on the background keeps the object and records the point
    card = _do(db, w, aid, "cell", pack(state.rev, outside_cell(sample), CELL_BASE), sample)
    state = PinState.from_dict(card.state)
    assert state.phase == Phase.MASK and state.positive
    assert state.points == [(CELLS[best_cell(sample)], True), (CELLS[outside_cell(sample)], False)]
    assert iou_with_truth(json.dumps(state.mask), sample) > 0.9
    # add mode, then Back: the same mask, MASK phase again
    card = _do(db, w, aid, "add", pack(state.rev, SIGN_POS, 3), sample)
    card = _do(db, w, aid, "add", pack(state.rev + 1, SIGN_BACK, 3), sample)
    back = PinState.from_dict(card.state)
    assert back.phase == Phase.MASK and back.mask == state.mask and back.points == state.points
    # try another cell: a clean grid
    card = _do(db, w, aid, "retry", back.rev, sample)
    fresh = PinState.from_dict(card.state)
    assert fresh.phase == Phase.GRID and fresh.points == [] and fresh.mask is None and fresh.rev == back.rev + 1
    assert db.call(magic_pin.kept_mask, w, aid, pick_value(fresh.rev, 0)) == PinRefusal.STALE


def test_point_rules(db: Database, tmp_path: Path) -> None:
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    aid = card.assignment_id
    first = best_cell(sample)
    card = _do(db, w, aid, "cell", pack(0, first, CELL_BASE), sample)
    state = PinState.from_dict(card.state)
    card = _add_mode(db, w, aid, state, SIGN_NEG, sample)
    state = PinState.from_dict(card.state)
    # a negative point on the only positive cell would leave no positive point
    assert db.call(magic_pin.pin_step, w, aid, "cell", pack(state.rev, first, CELL_BASE)) == PinRefusal.NO_POSITIVE
    # fill up to the limit with positive points on other cells
    card = _do(db, w, aid, "add", pack(state.rev, SIGN_POS, 3), sample)
    others = [i for i in range(len(CELLS)) if i != first]
    for i in others[: magic_pin.MAX_POINTS - 1]:
        state = PinState.from_dict(card.state)
        if state.phase == Phase.MASK:
            card = _do(db, w, aid, "add", pack(state.rev, SIGN_POS, 3), sample)
            state = PinState.from_dict(card.state)
        step = db.call(magic_pin.pin_step, w, aid, "cell", pack(state.rev, i, CELL_BASE))
        assert isinstance(step, Step)
        step.state.candidates = [PinMask(coco_rle.encode(np.zeros((240, 320), bool)), 0)]  # pixels do not matter here
        card = db.call(magic_pin.commit_step, w, step)  # type: ignore[assignment]
    state = PinState.from_dict(card.state)
    assert len(state.points) == magic_pin.MAX_POINTS
    assert db.call(magic_pin.pin_step, w, aid, "add", pack(state.rev, SIGN_POS, 3)) == PinRefusal.LIMIT
    # an empty mask cannot be kept, but "no such object" can always be answered
    assert db.call(magic_pin.kept_mask, w, aid, pick_value(state.rev, 0)) == PinRefusal.EMPTY
    outcome = db.call(work_answers.act_and_next, w, aid, "answer", service.PIN_NONE)
    assert isinstance(outcome.result, Submitted)
    with db.session() as s:
        assert s.execute(select(Answer.value)).scalar_one() == "none"


def test_expired_lease_refuses_pin_steps(db: Database, tmp_path: Path) -> None:
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    step = db.call(magic_pin.pin_step, w, card.assignment_id, "cell", pack(0, best_cell(sample), CELL_BASE))
    assert isinstance(step, Step)
    clock.advance(3600)
    (other,) = make_workers(db, 1, base=8000)
    taken = _lease(db, other)  # the lapsed task went back to the pool and its only slot is taken
    assert taken.task_id == card.task_id
    assert db.call(magic_pin.commit_step, w, step) == Refusal.EXPIRED
    assert db.call(magic_pin.pin_step, w, card.assignment_id, "cell", 0) == Refusal.EXPIRED


def test_a_lapsed_pin_lease_with_a_free_slot_is_taken_back(db: Database, tmp_path: Path) -> None:
    """No lost work: nobody took the slot, so the late step is stored and the lease renewed."""
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    step = db.call(magic_pin.pin_step, w, card.assignment_id, "cell", pack(0, best_cell(_sample_of(samples, card)), CELL_BASE))
    assert isinstance(step, Step)
    clock.advance(3600)
    assert isinstance(db.call(magic_pin.commit_step, w, step), TaskCard)
    with db.session() as s:
        assignment = s.get(Assignment, card.assignment_id)
        assert assignment is not None and assignment.status == "leased" and assignment.state_json is not None


def test_pin_actions_refused_on_other_project_types(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", type="confirm-mask")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    assert db.call(magic_pin.pin_step, w, card.assignment_id, "cell", 0) == Refusal.INVALID
    assert db.call(magic_pin.kept_mask, w, card.assignment_id, 0) == Refusal.INVALID
    # magic-pin values are not confirm-mask answers, and the other way round
    assert db.call(work_answers.submit_answer, w, card.assignment_id, "none") == Refusal.INVALID
    assert isinstance(db.call(work_answers.submit_answer, w, card.assignment_id, "yes"), Submitted)


def test_state_json_garbage_reads_as_a_fresh_grid() -> None:
    for text in (None, "", "not json", "[1,2]", '{"phase":"dance"}', '{"points":[[1]]}', '{"rev":"x"}'):
        state = PinState.from_json(text)
        assert state.phase == Phase.GRID and state.points == [] and state.mask is None
    state = PinState(
        phase=Phase.ADD,
        points=[("B2", True), ("C3", False)],
        positive=False,
        candidates=[PinMask({"size": [1, 1], "counts": "01"}, 1), PinMask({"size": [1, 1], "counts": "1"}, 0)],
        rev=7,
    )
    assert PinState.from_json(state.to_json()) == state
    # a state written before candidates existed (version 1: one mask) reads as one candidate
    old = '{"v":1,"rev":3,"phase":"mask","points":[["C3",true]],"positive":true,"mask":{"size":[1,1],"counts":"01"},"area":1}'
    assert PinState.from_json(old).candidates == [PinMask({"size": [1, 1], "counts": "01"}, 1)]
    for broken in ('{"candidates":[{"mask":"x","area":1}]}', '{"candidates":[{"area":1}]}', '{"candidates":7}'):
        assert PinState.from_json(broken) == PinState()


def test_segmentation_is_upsampled_to_the_original_size(tmp_path: Path) -> None:
    from bot.sample import generate

    sample = generate(tmp_path, count=1, seed=11)[0]
    rgb = _rgb(sample)
    small, small_area = magic_pin.segment_cells(rgb, [(CELLS[best_cell(sample)], True)], (320, 240))
    big, big_area = magic_pin.segment_cells(rgb, [(CELLS[best_cell(sample)], True)], (1280, 960))
    assert big["size"] == [960, 1280] and small["size"] == [240, 320]
    assert abs(big_area / (16 * small_area) - 1) < 0.02
    truth_big = magic_pin.upsample_mask(true_mask(sample), (1280, 960))
    assert coco_rle.mask_iou(coco_rle.decode(big), truth_big) > 0.9


def test_mask_helpers() -> None:
    assert magic_pin.parse_prelabel("cat") == ("cat", None)
    assert magic_pin.parse_prelabel("cat [10, 20, 110.5, 220]") == ("cat", (10.0, 20.0, 110.5, 220.0))
    assert magic_pin.parse_prelabel("[30,40,10,20]") == ("", (10.0, 20.0, 30.0, 40.0))
    assert magic_pin.parse_prelabel("[5,5,5,9]") == ("", None)  # empty box: ignored
    assert magic_pin.parse_prelabel(None) == ("", None)
    good = json.dumps(coco_rle.encode(np.eye(4, dtype=bool)))
    assert magic_pin.parse_mask(good)["size"] == [4, 4]
    for bad in ("nope", "[]", '{"size": [4, 4]}', '{"size": [4, 4], "counts": [3, 2]}'):
        with pytest.raises(ValueError):
            magic_pin.parse_mask(bad)
    m = np.zeros((10, 10), bool)
    m[2:8, 3:7] = True
    up = magic_pin.upsample_mask(m, (40, 40))
    assert up.shape == (40, 40) and abs(int(up.sum()) - 16 * int(m.sum())) <= 4  # corners round off
    assert magic_pin.display_mask(json.dumps(coco_rle.encode(up)), (10, 10)).tolist() == m.tolist()


def test_auto_mask_is_stored_once(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", type="confirm-mask", masks=False)
    with db.session() as s:
        task_id = s.execute(select(Task.id).order_by(Task.id)).scalars().first()
    first = db.call(magic_pin.store_auto_mask, task_id, '{"size":[1,1],"counts":"01"}')
    second = db.call(magic_pin.store_auto_mask, task_id, '{"size":[1,1],"counts":"1"}')
    assert first == second == '{"size":[1,1],"counts":"01"}'


@pytest.fixture
def rings() -> Iterator[None]:
    """A plugged-in segmenter that offers three known candidates per pin."""
    set_segmenter(Rings())
    yield
    set_segmenter(None)


def _picked_once(db: Database, w: int, aid: int, pick: int, again: int, *, reward: int, expected: np.ndarray) -> None:
    """Pick, then pick ``again``: one answer, with exactly the ``expected`` mask, paid once."""
    outcome = db.call(work_answers.keep_and_next, w, aid, pick)
    assert isinstance(outcome.result, Submitted) and outcome.result.reward == reward
    assert db.call(work_answers.keep_and_next, w, aid, again).result == Refusal.ALREADY
    with db.session() as s:
        (answer,) = s.execute(select(Answer)).scalars()
        assert balance(s, w).today == reward and ledger_total(s) == 0
    assert coco_rle.decode(json.loads(answer.mask_rle or "")).tolist() == expected.tolist()


def test_a_pick_keeps_exactly_the_candidate_picked_and_pays_once(any_db: Database, tmp_path: Path, rings: None) -> None:
    db = any_db
    _, samples = make_project(db, tmp_path / "imgs", price=15)
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    aid = card.assignment_id
    cell = CELLS[best_cell(sample)]
    state = PinState.from_dict(_do(db, w, aid, "cell", pack(0, best_cell(sample), CELL_BASE), sample).state)
    expected = ring_masks((240, 320), [(*cell_center(cell, 320, 240), True)])
    assert [coco_rle.decode(c.rle).tolist() for c in state.candidates] == [m.tolist() for m in expected]
    assert state.pickable() == [0, 1, 2]
    for i in range(3):
        assert db.call(magic_pin.kept_mask, w, aid, pick_value(state.rev, i)) == json.dumps(state.candidates[i].rle, separators=(",", ":"))
    assert db.call(magic_pin.kept_mask, w, aid, pick_value(state.rev - 1, 1)) == PinRefusal.STALE
    assert db.call(magic_pin.kept_mask, w, aid, -2) == Refusal.INVALID
    _picked_once(db, w, aid, pick_value(state.rev, 1), pick_value(state.rev, 2), reward=15, expected=expected[1])


def test_a_pick_beyond_the_candidates_shown_is_refused(db: Database, tmp_path: Path) -> None:
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    set_segmenter(SegmentOnly())  # a back end with segment() alone: one candidate
    try:
        state = PinState.from_dict(_do(db, w, card.assignment_id, "cell", pack(0, best_cell(sample), CELL_BASE), sample).state)
    finally:
        set_segmenter(None)
    assert len(state.candidates) == 1
    assert db.call(magic_pin.kept_mask, w, card.assignment_id, pick_value(state.rev, 1)) == Refusal.INVALID
    assert db.call(magic_pin.kept_mask, w, card.assignment_id, pick_value(state.rev, 2)) == Refusal.INVALID
    assert isinstance(db.call(magic_pin.kept_mask, w, card.assignment_id, pick_value(state.rev, 0)), str)


class _Listed:
    """A back end that returns the masks it is given, as candidates."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks

    def segment_candidates(self, image: np.ndarray, points: object, box: object = None, k: int = 3) -> list[Candidate]:
        return [Candidate(m, 1.0) for m in self.masks[:k]]

    def segment(self, image: np.ndarray, points: object, box: object = None) -> np.ndarray:
        return self.masks[0]


def test_empty_candidates_are_not_offered_unless_nothing_else_is_left(tmp_path: Path) -> None:
    rgb = np.zeros((240, 320, 3), np.uint8)
    empty, some = np.zeros((240, 320), bool), np.zeros((240, 320), bool)
    some[50:90, 60:100] = True
    try:
        set_segmenter(_Listed([empty, some, empty]))
        assert [m.tolist() for m in magic_pin.candidates_phone(rgb, [("B2", True)])] == [some.tolist()]
        set_segmenter(_Listed([empty, empty]))
        (only,) = magic_pin.candidates_phone(rgb, [("B2", True)])
        assert not only.any()
    finally:
        set_segmenter(None)


class _HollowFirst(PickedRings):
    """PickedRings whose first pin's second outline is empty: the worker is shown rings 1 and
    3, numbered 1 and 2."""

    def segment_candidates(
        self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3, *, base: int = 0
    ) -> list[Candidate]:
        found = super().segment_candidates(image, points, box, k, base=base)
        if len(points) == 1 and len(found) > 1:
            found[1] = Candidate(np.zeros_like(found[1].mask), found[1].score)
        return found


def test_the_outline_chosen_by_its_number_is_the_one_refined_after_an_empty_candidate() -> None:
    """Numbers skip empty candidates: the worker's outline 2 is the segmenter's third ring, and
    it is that ring the later points refine, in the chat and in the Mini App."""
    rgb = np.zeros((240, 320, 3), np.uint8)
    backend = _HollowFirst()
    set_segmenter(backend)
    try:
        cell, later = ("B2", True), [("B2", True), ("A1", False)]
        ((px, py, _),) = magic_pin.cell_pixels([cell], 320, 240)
        shown = magic_pin.candidates_phone(rgb, [cell])
        rings3 = ring_masks((240, 320), [(px, py, True)])
        assert [m.tolist() for m in shown] == [rings3[0].tolist(), rings3[2].tolist()]
        refined = magic_pin.candidates_phone(rgb, later, base=1)  # the worker chose outline 2
        assert backend.bases[-1] == 2
        assert refined[0].tolist() == ring_masks((240, 320), magic_pin.cell_pixels(later, 320, 240))[2].tolist()
        exact = magic_pin.exact_candidates(rgb, [(px, py, True), (10.0, 10.0, False)], None, base=1)
        assert backend.bases[-1] == 2 and exact[0][int(py), int(px)]
        magic_pin.candidates_phone(rgb, later, base=0)
        assert backend.bases[-1] == 0  # nothing chosen: outline 1, as before
        calls: list[int] = []

        class Counted(Rings):  # a back end that takes no base: nothing to map, one call
            def segment_candidates(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3) -> list[Candidate]:
                calls.append(len(points))
                return super().segment_candidates(image, points, box, k)

        set_segmenter(Counted())
        magic_pin.candidates_phone(rgb, later, base=1)
        assert calls == [2]
    finally:
        set_segmenter(None)


def test_confirm_mask_made_on_the_fly_is_the_first_candidate(tmp_path: Path, rings: None) -> None:
    rgb = np.zeros((240, 320, 3), np.uint8)
    made = coco_rle.decode(magic_pin.auto_mask(rgb, (640, 480), None))
    assert made.tolist() == magic_pin.upsample_mask(ring_masks((240, 320), [(160.0, 120.0, True)])[0], (640, 480)).tolist()


def test_add_a_point_asks_which_outline_and_the_points_refine_that_one(any_db: Database, tmp_path: Path) -> None:
    """#16: a worker who likes outline 3 but must fix it gets outline 3 refined, not outline 1."""
    backend = PickedRings()
    set_segmenter(backend)
    try:
        db = any_db
        _, samples = make_project(db, tmp_path / "imgs", price=12)
        w, other = make_workers(db, 2)
        card = _lease(db, w)
        sample = _sample_of(samples, card)
        aid = card.assignment_id
        pin, background = CELLS[best_cell(sample)], CELLS[outside_cell(sample)]
        first = PinState.from_dict(_do(db, w, aid, "cell", pack(0, best_cell(sample), CELL_BASE), sample).state)
        assert first.phase == Phase.MASK and first.pickable() == [0, 1, 2]

        # "Add a point": the same picture, asked which outline (no new picture to upload)
        step = db.call(magic_pin.pin_step, w, aid, "add", pack(first.rev, SIGN_NEG, 3))
        assert isinstance(step, Step) and not step.redraw and step.segment is None
        assert step.state.phase == Phase.CHOOSE and step.state.candidates == first.candidates and not step.state.positive
        choose = PinState.from_dict(db.call(magic_pin.commit_step, w, step).state)  # type: ignore[union-attr]
        # forged, stale, foreign and out-of-phase choices change nothing
        assert db.call(magic_pin.pin_step, w, aid, "fix", pick_value(choose.rev - 1, 2)) == PinRefusal.STALE
        assert db.call(magic_pin.pin_step, other, aid, "fix", pick_value(choose.rev, 2)) == Refusal.NOT_YOURS
        assert db.call(magic_pin.pin_step, w, aid, "fix", -3) == Refusal.INVALID
        assert db.call(magic_pin.pin_step, w, aid, "cell", pack(choose.rev, 3, CELL_BASE)) == PinRefusal.STALE
        assert db.call(magic_pin.kept_mask, w, aid, pick_value(choose.rev, 0)) == PinRefusal.STALE
        # Back: the candidates again, without a new picture; Add asks again
        back = db.call(magic_pin.pin_step, w, aid, "add", pack(choose.rev, SIGN_BACK, 3))
        assert isinstance(back, Step) and not back.redraw and back.state.phase == Phase.MASK
        assert isinstance(db.call(magic_pin.commit_step, w, back), TaskCard)
        again = PinState.from_dict(_do(db, w, aid, "add", pack(choose.rev + 1, SIGN_NEG, 3), sample).state)
        assert again.phase == Phase.CHOOSE

        # fix 3: the grid over outline 3 alone, the sign chosen before is kept
        step = db.call(magic_pin.pin_step, w, aid, "fix", pick_value(again.rev, 2))
        assert isinstance(step, Step) and step.redraw and step.state.phase == Phase.ADD
        adding = PinState.from_dict(db.call(magic_pin.commit_step, w, step).state)  # type: ignore[union-attr]
        assert adding.base == 2 and adding.fixing == 2 and not adding.positive
        # a ➖ on the background: new candidates from both points, refining outline 3
        refined = PinState.from_dict(_do(db, w, aid, "cell", pack(adding.rev, outside_cell(sample), CELL_BASE), sample).state)
        assert refined.phase == Phase.MASK and refined.base == 2 and refined.points == [(pin, True), (background, False)]
        assert backend.bases[-1] == 2
        expected = ring_masks((240, 320), [(*cell_center(pin, 320, 240), True), (*cell_center(background, 320, 240), False)])
        assert coco_rle.decode(refined.candidates[0].rle).tolist() == expected[2].tolist()
        # the next "Add a point" refines on from the points: no question, the best outline drawn
        more = PinState.from_dict(_do(db, w, aid, "add", pack(refined.rev, SIGN_POS, 3), sample).state)
        assert more.phase == Phase.ADD and more.fixing == 0 and more.base == 2
        back_again = PinState.from_dict(_do(db, w, aid, "add", pack(more.rev, SIGN_BACK, 3), sample).state)

        _picked_once(db, w, aid, pick_value(back_again.rev, 0), pick_value(back_again.rev, 0), reward=12, expected=expected[2])
    finally:
        set_segmenter(None)


def test_without_a_segmenter_that_refines_a_pick_add_goes_straight_to_the_grid(db: Database, tmp_path: Path, rings: None) -> None:
    """Rings takes no ``base``: asking which outline would be a question that changes nothing."""
    _, samples = make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _lease(db, w)
    sample = _sample_of(samples, card)
    state = PinState.from_dict(_do(db, w, card.assignment_id, "cell", pack(0, best_cell(sample), CELL_BASE), sample).state)
    assert len(state.pickable()) == 3
    step = db.call(magic_pin.pin_step, w, card.assignment_id, "add", pack(state.rev, SIGN_POS, 3))
    assert isinstance(step, Step) and step.redraw and step.state.phase == Phase.ADD and step.state.fixing == 0


def test_the_state_keeps_the_outline_being_fixed() -> None:
    state = PinState(
        phase=Phase.CHOOSE, points=[("B2", True)], candidates=[PinMask({"size": [1, 1], "counts": "01"}, 1)] * 3, rev=4, base=2
    )
    assert PinState.from_json(state.to_json()) == state and state.fixing == 2
    assert PinState.from_json('{"phase":"add","base":7}') == PinState()  # no such outline: a fresh grid
    assert PinState.from_json('{"phase":"add","rev":2}').base == 0  # written before base existed
