"""The classical back end's segment_candidates: the candidate API's contract (shape, dtype,
best first, distinct, deterministic, k respected) and what the windows around a pin are for:
a small object is not grown into its surroundings."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest

from bot.autoseg import Candidate, segment, segment_candidates, set_segmenter
from bot.autoseg.classical import ClassicalSegmenter, _Proposal, rank_proposals


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


@pytest.fixture(autouse=True)
def _classical() -> Iterator[None]:
    set_segmenter(ClassicalSegmenter())
    yield
    set_segmenter(None)


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 480x640 table top (a smooth gradient with noise) holding a large plate and, on it, a
    small cup (under 1 % of the photo): a pin on the cup should give the cup, not the plate."""
    rng = np.random.default_rng(7)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 0.05 * xx, 100 + 0.04 * yy, 80 + 0.0 * xx], axis=2)
    plate = (xx - 300) ** 2 / 200**2 + (yy - 250) ** 2 / 150**2 <= 1
    cup = (xx - 340) ** 2 + (yy - 230) ** 2 <= 28**2
    img[plate] = (200, 200, 190)
    img[cup] = (40, 60, 170)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return img, plate, cup


SCENE = _scene()


def test_candidates_contract_shape_dtype_order_distinct() -> None:
    img, _, _ = SCENE
    cands = segment_candidates(img, [(340, 230, True)], k=3)
    assert 1 <= len(cands) <= 3
    assert all(isinstance(c, Candidate) and c.mask.dtype == bool and c.mask.shape == img.shape[:2] for c in cands)
    assert all(c.mask.any() for c in cands)
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            assert _iou(cands[i].mask, cands[j].mask) <= 0.9


def test_small_object_first_candidate_is_the_object_not_its_surroundings() -> None:
    img, plate, cup = SCENE
    cands = segment_candidates(img, [(340, 230, True)], k=3)
    assert _iou(cands[0].mask, cup) > 0.8
    assert cands[0].mask.sum() < 1.5 * cup.sum()
    # the larger object the cup stands on is offered too, as another candidate
    assert max(_iou(c.mask, plate) for c in cands) > 0.7 or max(_iou(c.mask, plate | cup) for c in cands) > 0.7


def test_segment_is_the_first_candidate() -> None:
    img, _, _ = SCENE
    for pts, box in (([(340, 230, True)], None), ([(340, 230, True), (150, 250, True)], None), ([], (90, 90, 510, 410))):
        cands = segment_candidates(img, pts, box=box, k=3)
        assert np.array_equal(segment(img, pts, box=box), cands[0].mask)


def test_k_is_respected_and_a_prefix() -> None:
    img, _, _ = SCENE
    three = segment_candidates(img, [(340, 230, True)], k=3)
    one = segment_candidates(img, [(340, 230, True)], k=1)
    two = segment_candidates(img, [(340, 230, True)], k=2)
    assert len(one) == 1 and len(two) <= 2
    assert np.array_equal(one[0].mask, three[0].mask)
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(two, three))


def test_candidates_are_deterministic_and_cache_independent() -> None:
    img, _, _ = SCENE
    pts = [(340, 230, True)]
    runs = []
    for seg in (ClassicalSegmenter(), ClassicalSegmenter(), ClassicalSegmenter(cache_size=0)):
        set_segmenter(seg)
        runs.append(segment_candidates(img.copy(), pts, k=3))
        runs.append(segment_candidates(img.copy(), pts, k=3))  # warm
    for other in runs[1:]:
        assert len(other) == len(runs[0])
        assert all(np.array_equal(a.mask, b.mask) and a.score == b.score for a, b in zip(runs[0], other))


def test_later_clicks_give_the_refined_mask_first_and_distinct_alternatives() -> None:
    img, _, _ = SCENE
    pts = [(340, 230, True), (300, 330, False)]
    cands = segment_candidates(img, pts, k=3)
    assert np.array_equal(cands[0].mask, segment(img, pts))
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            assert _iou(cands[i].mask, cands[j].mask) <= 0.9
    assert not cands[0].mask[330, 300]  # the negative pin is background


def test_a_positive_click_outside_the_first_candidate_grows_it_to_the_larger_object() -> None:
    img, plate, cup = SCENE
    first = segment(img, [(340, 230, True)])
    assert _iou(first, cup) > 0.8  # the pin alone: the cup
    grown = segment(img, [(340, 230, True), (150, 250, True)])  # "no, the plate it stands on"
    assert _iou(grown, plate | cup) > 0.9


def test_later_clicks_refine_the_candidate_the_worker_picked() -> None:
    """``base``: the worker picked the plate among the cup pin's candidates, then added a ➖
    point on the plate's rim: the refinement starts from the plate. Without the pick it starts
    from the first candidate, the cup, which the point does not touch."""
    img, plate, cup = SCENE
    pin = [(340, 230, True)]
    cands = segment_candidates(img, pin, k=3)
    j = max(range(len(cands)), key=lambda i: _iou(cands[i].mask, plate | cup))
    assert j > 0 and _iou(cands[j].mask, plate | cup) > 0.7
    pts = [*pin, (130, 250, False)]
    from_first = segment_candidates(img, pts, k=3)
    from_pick = segment_candidates(img, pts, k=3, base=j)
    assert _iou(from_first[0].mask, cup) > 0.8
    assert _iou(from_pick[0].mask, plate | cup) > 0.9
    assert not from_pick[0].mask[250, 130]  # the ➖ point is background
    runs = []
    for seg in (ClassicalSegmenter(), ClassicalSegmenter(cache_size=0)):  # the same cold, warm and without a cache
        set_segmenter(seg)
        runs += [segment_candidates(img, pts, k=3, base=j)[0].mask, segment_candidates(img, pts, k=3, base=j)[0].mask]
    assert all(np.array_equal(m, from_pick[0].mask) for m in runs)
    # a base the pin did not offer refines as without one; a negative one is refused
    assert np.array_equal(segment_candidates(img, pts, k=3, base=7)[0].mask, from_first[0].mask)
    with pytest.raises(ValueError, match="base must be"):
        segment_candidates(img, pts, base=-1)


def test_a_later_click_reuses_the_pins_candidates_instead_of_segmenting_its_windows_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Mini App and the chat ask for a pin's candidates, then for the refinement of a
    second tap. The refinement must start from the cached state of the pin: a miss segments
    the pin's three windows again (about 250 ms of a 330 ms second tap). The photo's size
    (481 × 321, working copy 320 × 214) and the pin (y = 230) are chosen so that ``y * h / H0``
    and ``y * (h / H0)`` differ in the last bit: the two paths once scaled the pin each their
    own way, and their cache keys differed."""
    import bot.autoseg.classical as classical

    img = SCENE[0][:321, :481].copy()
    assert 230 * 214 / 321 != 230 * (214 / 321)  # the premise: the two roundings differ here
    calls: list[int] = []
    real = classical.pin_proposals
    monkeypatch.setattr(classical, "pin_proposals", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    pin = [(340.0, 230.0, True)]
    segment_candidates(img, pin, k=3)
    assert len(calls) == 1
    refined = segment_candidates(img, [*pin, (350.0, 240.0, True)], k=1)
    assert len(calls) == 1, "the second tap segmented the pin's windows again"
    set_segmenter(ClassicalSegmenter(cache_size=0))  # and the cache changes nothing
    assert np.array_equal(segment_candidates(img, [*pin, (350.0, 240.0, True)], k=1)[0].mask, refined[0].mask)


def _prop(scale: int, family: int, rows: slice, separation: float, contrast: float = 1.0, stability: float = 0.5) -> _Proposal:
    mask = np.zeros((40, 40), bool)
    mask[rows, 5:35] = True
    return _Proposal(mask, scale, 0.0, separation, contrast, 0.8, stability=stability, family=family)


def test_each_other_window_offers_its_better_separated_proposal() -> None:
    """Per window: the GrabCut mask (family 0) or the prior region (1), whichever separates
    better from its ring; the first is always a GrabCut mask, whatever the priors score."""
    props = [
        _prop(0, 0, slice(18, 22), 0.9, stability=0.9),  # the first (small window)
        _prop(0, 1, slice(17, 23), 1.0, contrast=9.0, stability=1.0),  # scores higher, but a prior
        _prop(1, 0, slice(10, 30), 0.3),  # window 1: GrabCut's mask separates worse ...
        _prop(1, 1, slice(12, 28), 0.6),  # ... than its prior region
        _prop(2, 0, slice(0, 40), 0.7),  # whole photo: GrabCut's mask separates better
        _prop(2, 1, slice(2, 38), 0.2),
    ]
    ranked = rank_proposals(props, 3, 0.9, per_window=True)
    assert [(p.scale, p.family) for p in ranked] == [(0, 0), (2, 0), (1, 1)]
    assert all(a.score > b.score for a, b in pairwise(ranked))  # best first
    # without per_window the same pool spends two places on the small window
    assert [(p.scale, p.family) for p in rank_proposals(props, 3, 0.9)][:2] == [(0, 1), (0, 0)]


def test_a_window_whose_better_proposal_repeats_a_candidate_offers_its_other_one() -> None:
    props = [
        _prop(0, 0, slice(10, 30), 0.9, stability=0.9),  # the first
        _prop(1, 0, slice(0, 40), 0.2),
        _prop(1, 1, slice(10, 30), 0.95),  # better separated, but the first again (IoU 1)
    ]
    ranked = rank_proposals(props, 3, 0.9, per_window=True)
    assert [(p.scale, p.family) for p in ranked] == [(0, 0), (1, 0)]
    assert all(_iou(a.mask, b.mask) <= 0.9 for i, a in enumerate(ranked) for b in ranked[i + 1 :])


def test_later_clicks_on_a_small_object_are_refined_on_a_crop_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zoom-In (RITM): a later click is refined on the box around the mask and the clicks,
    grown 1.4 times and brought to the working resolution, not on the whole photo, where the
    cup would be 14 pixels wide. Cold, warm and cache-less segmenters agree."""
    import bot.autoseg.classical as classical

    img, _, cup = SCENE
    yy, xx = np.mgrid[0:480, 0:640]
    ring = (np.hypot(xx - 340, yy - 230) <= 34) & ~cup  # the plate just around the cup
    pts = [(340, 230, True), (330, 205, True)]
    seen: list[tuple[int, ...]] = []
    real = classical._refine_click
    monkeypatch.setattr(classical, "_refine_click", lambda small, *a: seen.append(small.shape) or real(small, *a))
    m = ClassicalSegmenter().segment(img, pts)
    assert seen == [(320, 320, 3)]  # the crop around the cup, enlarged to the working side
    x0, y0, x1, y1 = classical._zoom_region(segment(img, pts[:1]), pts, 1.4)
    assert (x1 - x0, y1 - y0) == pytest.approx((80, 80), abs=4) and x0 <= 312 and x1 >= 368
    assert not m[:y0].any() and not m[y1:].any() and not m[:, :x0].any() and not m[:, x1:].any()
    assert _iou(m, cup) > 0.9 and not (m & ring).any()
    for seg in (ClassicalSegmenter(), ClassicalSegmenter(cache_size=0)):
        seg.segment(img, pts[:1])
        assert np.array_equal(seg.segment(img, pts), m)
    # the case: on the whole photo the same second click re-learns the colours from a
    # 14-pixel cup and the table, and the mask floods
    assert _iou(ClassicalSegmenter(zoom=0).segment(img, pts), cup) < 0.5
