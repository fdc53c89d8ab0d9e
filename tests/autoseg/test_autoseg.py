"""Tests for bot.autoseg: segmenter, plug-in point, RLE, overlays and grid."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot import autoseg
from bot.autoseg import rle
from bot.autoseg.overlay import (
    cell_center,
    cell_labels,
    cell_of,
    draw_grid,
    overlay_jpeg,
    render_overlay,
)

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "autoseg-dev" / "grabcut"

# pycocotools 2.0.x warns under numpy 2 (its __array__ call); not our code.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _textured_bg(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            90 + 40 * np.sin(xx / 7.0),
            120 + 30 * np.cos(yy / 5.0),
            70 + 25 * np.sin((xx + yy) / 9.0),
        ],
        axis=2,
    )
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def disc_scene() -> tuple[np.ndarray, np.ndarray]:
    h, w = 240, 320
    img = _textured_bg(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - 190) ** 2 + (yy - 120) ** 2 <= 60**2
    rng = np.random.default_rng(1)
    col = np.clip(np.array([220, 60, 50]) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    img[disc] = col[disc]
    return img, disc


@pytest.fixture(scope="module")
def two_discs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two touching discs of similar colours: one pin takes both, a negative pin splits them."""
    h, w = 200, 320
    img = _textured_bg(h, w, seed=3)
    yy, xx = np.mgrid[0:h, 0:w]
    a = (xx - 110) ** 2 + (yy - 100) ** 2 <= 50**2
    b = ((xx - 205) ** 2 + (yy - 100) ** 2 <= 50**2) & ~a
    img[a] = (30, 90, 230)
    img[b] = (80, 70, 210)
    return img, a, b


# ---------------------------------------------------------------- segmenter
def test_one_pin_on_disc(disc_scene) -> None:
    img, disc = disc_scene
    m = autoseg.segment(img, [(190, 120, True)])
    assert m.shape == img.shape[:2] and m.dtype == bool
    assert _iou(m, disc) > 0.9


def test_deterministic(disc_scene) -> None:
    img, _ = disc_scene
    pts = [(190, 120, True), (40, 40, False)]
    a = autoseg.segment(img, pts)
    b = autoseg.segment(img.copy(), list(pts))
    assert np.array_equal(a, b)


def test_box_mode(disc_scene) -> None:
    img, disc = disc_scene
    m = autoseg.segment(img, [], box=(120, 50, 260, 190))
    assert m.shape == disc.shape
    assert _iou(m, disc) > 0.88
    assert not m[:, :115].any()  # nothing outside the box


def test_negative_point_removes_region(two_discs) -> None:
    img, a, b = two_discs
    both = autoseg.segment(img, [(110, 100, True)])
    assert _iou(both, a | b) > 0.8  # same colour, touching: one pin takes both
    only_a = autoseg.segment(img, [(110, 100, True), (215, 100, False)])
    assert only_a[100, 110]
    assert not only_a[100, 215]
    assert (only_a & b).sum() < 0.2 * b.sum()
    assert (only_a & a).sum() > 0.9 * a.sum()


def test_small_and_odd_inputs() -> None:
    img = np.zeros((7, 5, 3), np.uint8)
    img[2:5, 1:4] = 255
    m = autoseg.segment(img, [(2, 3, True), (100, -3, False)])  # out-of-range tap clamped
    assert m.shape == (7, 5) and m.dtype == bool
    with pytest.raises(ValueError):
        autoseg.segment(img, [])
    with pytest.raises(ValueError):
        autoseg.segment(img.astype(np.float32), [(1, 1, True)])
    with pytest.raises(ValueError):
        autoseg.segment(img[:, :, 0:2], [(1, 1, True)])


def test_plugin_point(disc_scene) -> None:
    img, _ = disc_scene

    class Fake:
        calls = 0

        def segment(self, image, points, box=None):
            Fake.calls += 1
            m = np.zeros(image.shape[:2], bool)
            m[0, 0] = True
            return m

    fake = Fake()
    assert isinstance(fake, autoseg.Segmenter)
    autoseg.set_segmenter(fake)
    try:
        assert autoseg.get_segmenter() is fake
        m = autoseg.segment(img, [(1, 1, True)])
        assert m.sum() == 1 and Fake.calls == 1
    finally:
        autoseg.set_segmenter(None)
    assert type(autoseg.get_segmenter()).__name__ == "ClassicalSegmenter"
    seg = autoseg.load_backend("bot.autoseg.classical:ClassicalSegmenter")
    assert type(seg).__name__ == "ClassicalSegmenter"
    with pytest.raises(RuntimeError):
        autoseg.load_backend("onnx:/nonexistent/sam.onnx")


def test_import_is_cheap() -> None:
    code = "import sys, bot.autoseg, bot.autoseg.rle; print('cv2' in sys.modules, 'aiogram' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_no_aiogram_in_package() -> None:
    for p in (REPO / "bot" / "autoseg").rglob("*.py"):
        assert "aiogram" not in p.read_text(), p


# ---------------------------------------------------------------- RLE
def test_rle_matches_pycocotools() -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for t in range(60):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        if t % 3 == 0:
            m = np.zeros((h, w), bool)
            m[rng.integers(0, h) :, rng.integers(0, w) :] = True
        else:
            m = rng.random((h, w)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        mine = rle.encode(m)
        assert mine["size"] == [h, w]
        assert mine["counts"] == ref["counts"].decode("ascii")
        assert np.array_equal(rle.decode(mine), m)
        assert np.array_equal(mask_utils.decode({"size": [h, w], "counts": mine["counts"].encode()}), m)
        assert rle.rle_area(mine) == int(mask_utils.area(ref)) == rle.mask_area(m)
    big = np.zeros((700, 900), bool)
    big[10:650, 3:897] = True
    big[300:310, 400:800] = False
    ref = mask_utils.encode(np.asfortranarray(big.astype(np.uint8)))
    assert rle.encode(big)["counts"] == ref["counts"].decode()
    assert np.array_equal(rle.decode({"size": ref["size"], "counts": ref["counts"]}), big)  # bytes ok


def test_rle_edge_cases() -> None:
    for m in (np.zeros((3, 4), bool), np.ones((3, 4), bool), np.zeros((0, 0), bool)):
        assert np.array_equal(rle.decode(rle.encode(m)), m)
    assert rle.decode({"size": [2, 2], "counts": [1, 2, 1]}).tolist() == [[False, True], [True, False]]
    with pytest.raises(ValueError):
        rle.decode({"size": [2, 2], "counts": [1, 2]})


def test_mask_utils() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert rle.mask_area(m) == 18
    assert rle.mask_bbox(m) == (3, 2, 9, 5)
    assert rle.mask_bbox(np.zeros((3, 3), bool)) is None
    n = np.zeros_like(m)
    n[2:5, 6:12] = True
    assert rle.mask_iou(m, n) == pytest.approx(9 / 27)
    ign = np.zeros_like(m)
    ign[:, 9:] = True
    assert rle.mask_iou(m, n, ignore=ign) == pytest.approx(9 / 18)


def test_polygons_to_mask() -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    poly = [[10.0, 10.0, 50.0, 12.0, 45.0, 40.0, 12.0, 35.0]]
    mine = rle.polygons_to_mask(poly, 60, 70)
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 60, 70))).astype(bool)
    assert abs(int(mine.sum()) - int(ref.sum())) <= 0.05 * ref.sum()
    assert rle.mask_iou(mine, ref) > 0.93
    assert not rle.polygons_to_mask([[1, 1, 2, 2]], 5, 5).any()  # degenerate


# ---------------------------------------------------------------- overlays, grid
def test_overlay_jpeg_sizes(disc_scene) -> None:
    img, disc = disc_scene
    data = overlay_jpeg(img, disc, [(190, 120, True), (20, 20, False)])
    out = Image.open(io.BytesIO(data))
    assert out.format == "JPEG" and out.size == (320, 240)
    big = np.zeros((1500, 2400, 3), np.uint8)
    bm = np.zeros((1500, 2400), bool)
    bm[500:1000, 800:1600] = True
    out = Image.open(io.BytesIO(overlay_jpeg(big, bm, [(1200, 750, True)])))
    assert max(out.size) == 1280 and out.size == (1280, 800)
    # fill is visible inside, contour is bright, outside is untouched-ish
    arr = np.asarray(render_overlay(big, bm, []))
    assert arr[400, 640].sum() > 100 and arr[100, 100].sum() < 10
    with pytest.raises(ValueError):
        render_overlay(img, np.zeros((5, 5), bool))


def test_pin_colours(disc_scene) -> None:
    img = np.full((200, 300, 3), 128, np.uint8)
    arr = np.asarray(render_overlay(img, None, [(80, 100, True), (220, 100, False)])).astype(int)
    g = arr[95:106, 75:86].reshape(-1, 3).mean(axis=0)
    r = arr[95:106, 215:226].reshape(-1, 3).mean(axis=0)
    assert g[1] > g[0] + 40 and r[0] > r[1] + 40
    assert abs(arr[10, 10] - 128).max() <= 2  # no mask: photo untouched away from pins


def test_grid_cells() -> None:
    assert cell_labels(2, 3) == [["A1", "A2", "A3"], ["B1", "B2", "B3"]]
    w, h = 400, 300
    assert cell_center("A1", w, h) == (50.0, 37.5)
    assert cell_center("D4", w, h) == (350.0, 262.5)
    assert cell_center("b3", w, h) == (250.0, 112.5)
    for lab in itertools.chain.from_iterable(cell_labels(4, 4)):
        x, y = cell_center(lab, w, h)
        assert cell_of(x, y, w, h) == lab
    assert cell_of(-5, 10_000, w, h) == "D1"
    with pytest.raises(ValueError):
        cell_center("E1", w, h)
    with pytest.raises(ValueError):
        cell_center("A0", w, h)


def test_draw_grid() -> None:
    img = np.full((600, 900, 3), 30, np.uint8)
    g = draw_grid(img)
    assert g.size == (900, 600) and g.mode == "RGB"
    arr = np.asarray(g).astype(int)
    assert arr[300, 225].sum() > 90 * 3 and arr[100, 100].sum() == 90  # line drawn, cells untouched
    big = draw_grid(np.zeros((2000, 3000, 3), np.uint8))
    assert max(big.size) == 1280


# ---------------------------------------------------------------- dev set (optional)
def test_dev_set_smoke() -> None:
    if not (DEV / "images").is_dir():
        pytest.skip(f"dev set not found at {DEV} (../shared/autoseg-dev/grabcut)")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import autoseg_eval

    stems = ["flower", "music", "stone2", "book"]
    ious = []
    for stem in stems:
        imgs = [p for p in (DEV / "images").iterdir() if p.stem == stem]
        if not imgs:
            continue
        img, gt = autoseg_eval.load_pair(imgs[0], DEV / "masks" / f"{stem}.png", 1280)
        obj, valid = gt == 255, gt != 128
        _, x, y = autoseg_eval._deepest(obj)
        ious.append(autoseg_eval.iou(autoseg.segment(img, [(x, y, True)]), obj, valid))
    if not ious:
        pytest.skip("dev images not found")
    assert np.mean(ious) > 0.85, ious


# ---------------------------------------------------------------- refinement cache
def test_refinement_cache_does_not_change_results(two_discs) -> None:
    """Later clicks refine the earlier result (cached per image); the answer must not
    depend on the cache: a cold segmenter, a warm one and one without a cache agree."""
    from bot.autoseg.classical import ClassicalSegmenter

    img, _a, _b = two_discs
    clicks = [(110, 100, True), (215, 100, False), (140, 60, True)]
    warm = ClassicalSegmenter()
    for k in range(1, len(clicks) + 1):  # the bot's order: one more tap each time
        got = warm.segment(img, clicks[:k])
        cold = ClassicalSegmenter().segment(img.copy(), clicks[:k])
        nocache = ClassicalSegmenter(cache_size=0).segment(img, clicks[:k])
        assert np.array_equal(got, cold) and np.array_equal(got, nocache), k
    assert not got[100, 215] and got[100, 110]


def test_refinement_cache_keys_on_pixels(disc_scene, two_discs) -> None:
    from bot.autoseg.classical import ClassicalSegmenter

    seg = ClassicalSegmenter(cache_size=2)
    img1, disc = disc_scene
    img2, _, _ = two_discs
    m1 = seg.segment(img1, [(190, 120, True), (20, 20, False)])
    seg.segment(img2, [(110, 100, True), (20, 20, False)])
    altered = img1.copy()
    altered[disc] = 255 - altered[disc]  # same shape, other pixels: must not hit the cache
    assert np.array_equal(seg.segment(img1, [(190, 120, True), (20, 20, False)]), m1)
    assert _iou(seg.segment(altered, [(190, 120, True), (20, 20, False)]), disc) > 0.5


# ---------------------------------------------------------------- box mode: tightness prior, second start
def test_box_tightness_prior_recovers_a_thin_part() -> None:
    """A disc with a thin, low-contrast "leg" down to the box's bottom edge: plain GrabCut
    drops the leg (shrinking bias), so the rows through the central part of the box below
    the disc miss the object; the tightness prior (pinpointing) puts them back."""
    from bot.autoseg.classical import ClassicalSegmenter, _tight_lines

    h, w = 240, 320
    img = _textured_bg(h, w, seed=5)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - 160) ** 2 + (yy - 90) ** 2 <= 45**2
    leg = (abs(xx - 160) <= 3) & (yy >= 90) & (yy <= 200) & ~disc
    rng = np.random.default_rng(2)
    img[disc] = np.clip(np.array([220, 60, 50]) + rng.normal(0, 10, (disc.sum(), 3)), 0, 255).astype(np.uint8)
    img[leg] = np.clip(np.array([130, 100, 70]) + rng.normal(0, 10, (leg.sum(), 3)), 0, 255).astype(np.uint8)
    obj = disc | leg
    box = (115, 45, 206, 201)  # tight around disc + leg

    plain = ClassicalSegmenter(box_tight=0, box_restart=0).segment(img, [], box)
    rows, _, _ = _tight_lines(plain, box, 0.8)
    assert rows.size > 20 and (plain & leg).sum() < 0.2 * leg.sum()  # the case the prior is for

    m = ClassicalSegmenter().segment(img, [], box)
    rows, cols, _ = _tight_lines(m, box, 0.8)
    assert rows.size == 0 and cols.size == 0  # every central row and column crosses the object
    assert (m & leg).sum() > 0.7 * leg.sum()
    assert _iou(m, obj) > 0.95 > _iou(plain, obj)
    assert np.array_equal(m, ClassicalSegmenter().segment(img.copy(), [], box))  # deterministic


def test_box_second_start_when_the_box_holds_unseen_background() -> None:
    """The background inside the box (a grey table) does not occur outside it: GrabCut
    from the box alone takes the table as object.  The second start (inner band of the box
    background at first, then released) learns it; the lower GrabCut energy picks it."""
    from bot.autoseg.classical import ClassicalSegmenter

    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(4)
    img = _textured_bg(h, w, seed=9)
    inside = np.zeros((h, w), bool)
    inside[15:225, 17:303] = True
    img[inside] = np.clip(np.array([200, 200, 190]) + rng.normal(0, 6, (inside.sum(), 3)), 0, 255).astype(np.uint8)
    ell = ((xx - 160) / 130.0) ** 2 + ((yy - 120) / 95.0) ** 2 <= 1
    img[ell] = np.clip(np.array([200, 50, 60]) + rng.normal(0, 10, (ell.sum(), 3)), 0, 255).astype(np.uint8)
    box = (17, 15, 303, 225)
    assert _iou(ClassicalSegmenter(box_restart=0).segment(img, [], box), ell) < 0.8
    assert _iou(ClassicalSegmenter().segment(img, [], box), ell) > 0.95


def test_box_a_small_object_is_cut_at_the_working_scale() -> None:
    """A small, low-contrast object in a large photo: on its own 40-pixel crop GrabCut drops
    it (the smoothness term grows with the boundary's length in pixels, the colour term with
    the area, so at a few hundred pixels "all background" is cheaper); enlarged to the working
    scale, as every large box already is, it is kept (row 80, box_upscale)."""
    from bot.autoseg.classical import ClassicalSegmenter, _resize_to

    h, w = 480, 640
    img = _textured_bg(h, w, seed=0)
    yy, xx = np.mgrid[0:h, 0:w]
    obj = ((xx - 300) / 1.6) ** 2 + (yy - 200) ** 2 <= 10**2
    rng = np.random.default_rng(0)
    img[obj] = np.clip(np.array([130, 100, 70]) + rng.normal(0, 10, (obj.sum(), 3)), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(obj)
    box = (xs.min() - 2, ys.min() - 2, xs.max() + 3, ys.max() + 3)

    assert _iou(ClassicalSegmenter(box_upscale=False).segment(img, [], box), obj) < 0.1  # the case
    m = ClassicalSegmenter().segment(img, [], box)
    assert m.shape == (h, w) and m.dtype == bool
    assert _iou(m, obj) > 0.95
    assert not m[: box[1]].any() and not m[box[3] :].any() and not m[:, : box[0]].any() and not m[:, box[2] :].any()
    assert np.array_equal(m, ClassicalSegmenter().segment(img.copy(), [], box))  # deterministic
    # a large crop is only ever shrunk, a small one is enlarged to exactly the working side
    assert _resize_to(img, 320).shape == (240, 320, 3)
    assert _resize_to(img[:40, :60], 320).shape == (40, 60, 3)
    assert _resize_to(img[:40, :60], 320, up=True).shape == (213, 320, 3)


def test_box_mode_tight_box(disc_scene) -> None:
    """A box with no margin (a detector's): the object is not cut at the box's edges."""
    img, disc = disc_scene
    m = autoseg.segment(img, [], box=(130, 60, 251, 181))
    assert _iou(m, disc) > 0.9


def test_gmm_loglik_matches_grabcut_models(disc_scene) -> None:
    """Our reading of OpenCV's GMM layout: the object model prefers the object's pixels."""
    import cv2

    from bot.autoseg.classical import GC_PR_BGD, GC_PR_FGD, gmm_loglik

    img, disc = disc_scene
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    gc = np.where(disc, GC_PR_FGD, GC_PR_BGD).astype(np.uint8)
    bgm, fgm = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, gc, None, bgm, fgm, 1, cv2.GC_INIT_WITH_MASK)
    llr = gmm_loglik(bgr, fgm) - gmm_loglik(bgr, bgm)
    assert (llr[disc] > 0).mean() > 0.95 and (llr[~disc] < 0).mean() > 0.95


# ---------------------------------------------------------------- later clicks: reach of a click
def test_click_reach_scales_with_the_error_region() -> None:
    """A later click re-labels its geodesic cell only within ``refine_cell`` times its
    distance to the previous mask's boundary (about the size of the region it corrects)."""
    from bot.autoseg.classical import _click_reach

    h, w = 200, 300
    yy, xx = np.mgrid[0:h, 0:w]
    prev = (xx - 100) ** 2 + (yy - 100) ** 2 <= 40**2
    reach = _click_reach(prev, 150, 100, 4.0, 3.0)  # 10 px outside the mask
    assert reach[100, 150] and reach[100, 150 + 38] and not reach[100, 150 + 45]
    assert not reach[100, 150 - 45] and reach[100, 150 - 38]
    # a click right at the boundary still reaches its minimum radius
    tiny = _click_reach(prev, 140, 100, 4.0, 3.0)
    assert tiny[100, 142] and not tiny[100, 150]
    # inside the mask (a negative click): the distance to the mask's outside counts
    inner = _click_reach(prev, 100, 100, 2.0, 3.0)  # 40 px deep -> radius ~80
    assert inner[100, 175] and not inner[100, 190]


def test_later_click_does_not_flood_far_regions(two_discs) -> None:
    """The refinement chain with the click reach: a negative click removes the other disc
    and a later positive click inside the kept disc leaves the removed one out."""
    from bot.autoseg.classical import ClassicalSegmenter

    img, a, b = two_discs
    seg = ClassicalSegmenter()
    seg.segment(img, [(110, 100, True)])
    m2 = seg.segment(img, [(110, 100, True), (215, 100, False)])
    m3 = seg.segment(img, [(110, 100, True), (215, 100, False), (90, 80, True)])
    for m in (m2, m3):
        assert _iou(m, a) > 0.85 and (m & b).sum() < 0.1 * b.sum()
