"""Classical (no learned weights) interactive segmentation with OpenCV + numpy.

Pipeline (see docs/autoseg.md for what was measured):

1. Work on a copy whose long side is ``work_side`` px (GrabCut's max-flow time grows
   much faster than the pixel count, and objects of interest are large).
2. Seeds: a small disc around every pin (definite object / definite background), the
   outside of the box if one is given.
3. Prior from click geometry: geodesic distances (colour-difference path length on a
   smoothed Lab image) from the positive pins and from the "background" seeds
   (negative pins + image border, or the outside of the box).  Pixels geodesically
   closer to a positive pin start as "probably object", the rest as "probably
   background".
4. GrabCut (colour GMMs + contrast-sensitive graph cut) from that initial labelling, on
   a bilateral-filtered copy (texture flattened, edges kept).  Box mode: a second start
   (an inner band of the box background at first, then released) and the box's
   tightness prior (every row/column through the central 80 % of the box crosses the
   object, Lempitsky et al. 2009, enforced by "pinpointing" seeds) for both starts; the
   start with the lower GrabCut energy wins.
5. Clean-up: keep only the components that touch a positive pin (or, in box mode,
   the big ones), fill small holes.
6. Back to full size with an edge-aware upsampling (guided filter of the soft mask,
   guided by the full-size image).

Clicks after the first positive one do not start again: they refine the state the
earlier clicks left (their mask, geodesic fields), RITM-style - the click's geodesic
cell is re-labelled (within the click's reach: a few times its distance to the previous
mask's boundary) and one GrabCut iteration runs from there.  The result is a
function of the image and the ordered clicks; a small per-photo LRU keeps the earlier
states so that an Add-a-point tap costs one refinement, not the whole chain.

One positive pin (issue 16) is segmented in several windows around it (0.25 and 0.5 of
sqrt(W * H), then the whole photo), each by steps 2-6 with the window's border as the
border; the proposals (GrabCut's masks and the geodesic prior regions) are ranked by
measures that do not depend on a data set - colour separation against a ring, boundary
contrast, stability as the window grows, truncation by a window, boundary connectivity -
and ``segment_candidates`` returns up to three, best first, no two with IoU above 0.9;
``segment`` is the first.  Later clicks refine the first candidate.

Everything is deterministic: OpenCV's GrabCut seeds its k-means with a fixed RNG
state, which we reset before each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bot.cache import SharedLRU

from .base import Box, Candidate, Point

GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD = 0, 1, 2, 3


@dataclass(frozen=True)
class Params:
    work_side: int = 320
    smooth_sigma: float = 1.0
    geo_eps: float = 1.0  # spatial term of the geodesic step cost (Lab units per px)
    geo_passes: int = 2
    geo_tex: float = 0.0  # colour steps below this (Lab units) count as texture, cost 0
    border_weight: float = 1.0  # multiply border-seed distances (>1 = weaker border prior)
    fg_ratio: float = 1.25  # PR_FGD where d_fg < fg_ratio * d_bg
    seed_radius: float = 0.02  # of the work image's short side
    gc_iters: int = 3
    gc_tol: float = 0.0  # >0: stop GrabCut early once an iteration flips fewer than this fraction of pixels
    refine: str = "guided_gray"  # "guided_gray" | "guided" (colour guide) | "bilinear"
    guided_radius: float = 0.012  # of the full image's short side
    guided_eps: float = 1e-3
    fill_holes: float = 0.01  # fill holes smaller than this fraction of the object
    bg_hard: float = 0.0  # definite background where d_fg > bg_hard * d_bg (0 = off)
    fg_hard: float = 0.0  # definite object where fg_hard * d_fg < d_bg (0 = off)
    neg_carve: bool = False  # negative pins also remove their geodesic Voronoi cell
    box_crop: float = 0.15  # box mode: work on the box grown by this fraction (0 = whole image)
    box_band: float = 0.0  # box mode: inner band of the box (fraction of its size) is background
    coarse_side: int = 0  # >0: GrabCut first at this side, then a short pass at work_side
    fine_iters: int = 1  # GrabCut iterations of the work_side pass (two-stage only)
    prefilter: float = 15.0  # bilateral filter (colour sigma) of GrabCut's input; 0 = off
    incremental: bool = True  # clicks after the first refine the previous result (cached per image)
    refine_iters: int = 1  # GrabCut iterations of such a refinement
    # >0: a refinement changes only pixels within this distance of the click (fraction of
    # the short side) or in the click's re-labelled geodesic cell; the rest keeps the
    # previous labels as hard constraints (a click corrects the mask locally)
    refine_local: float = 0.0
    # >0: a later click re-labels its geodesic cell only within this many times its
    # distance to the previous mask's boundary (the size of the error region it corrects)
    refine_cell: float = 4.0
    refine_models: str = "fresh"  # "fresh" (k-means on the refined labels) | "previous" (carry the GMMs over)
    fine_band: float = 0.0  # two-stage: labels fixed farther than this (of the short side) from the coarse boundary
    # box mode, tightness prior (Lempitsky et al. 2009): every row and column through the
    # central ``box_tight`` part of the box must cross the object (0 = off)
    box_tight: float = 0.8
    tight_rounds: int = 2  # pinpointing rounds (each: seeds on the missed lines + GrabCut)
    tight_iters: int = 1  # GrabCut iterations per round
    tight_pick: str = "llr"  # seed on a missed line: "llr" (most object-like colour) | "geo" (geodesically nearest the mask)
    # box mode, second start: GrabCut again from the box with an inner band of this
    # fraction as background, the band then released; the lower GrabCut energy wins (0 = off)
    box_restart: float = 0.04
    restart_iters: int = 3  # GrabCut iterations of the second start (before the band is released)
    # box mode: a crop smaller than work_side is enlarged to it, so that every box is cut at
    # the same scale; at a few hundred pixels GrabCut's smoothness term outweighs the colour
    # term and a low-contrast object is dropped whole (row 80: COCO-MVal objects under 2 %
    # of the photo 0.585 -> 0.730)
    box_upscale: bool = True
    # candidates of a pin (issue 16): square windows of these fractions of sqrt(W * H)
    # around the positive pins, then the whole image; a window larger than cand_full_min
    # of the image is left to the whole image
    cand_scales: tuple[float, ...] = (0.25, 0.5)
    cand_full_min: float = 0.6
    cand_side: int = 160  # work side of a window (the whole image uses work_side)
    cand_iters: int = 2  # GrabCut iterations in a window
    cand_full_side: int = 0  # work side of the whole image's proposal (0: work_side)
    cand_full_iters: int = 0  # GrabCut iterations of the whole image's proposal (0: gc_iters)
    # >0: skip the whole image when the two largest windows' proposals agree (IoU at least
    # this) and neither is cut by its window: the object is small and whole (experiment)
    cand_agree: float = 0.0
    cand_max_iou: float = 0.9  # no two candidates overlap more than this
    # later clicks after a pin are refined on the box around the mask and the clicks, grown
    # zoom_expand times, at the working resolution (RITM's Zoom-In, row 82) when that box
    # spans at most this share of the image's long side (1.0: always; 0: the whole image,
    # as before row 82)
    zoom: float = 1.0
    zoom_expand: float = 1.4
    # with cand_window_alts False: every window's geodesic prior region (GrabCut's start) joins
    # the ranking as a proposal of its own, row 54's mix (rows 47, 54, 77: worse)
    cand_prior: bool = False
    # the alternatives to the first candidate: one per other window, its GrabCut mask or its
    # geodesic prior region, whichever separates better from its ring (row 79; the first is
    # always a GrabCut mask). False: the GrabCut masks alone, by score (rows 54-78)
    cand_window_alts: bool = True
    # experiment hooks kept for reproducing docs/autoseg.md (off by default):
    # {"box_init": "frac"/"otsu"/"q", "box_frac": .., "box_band_img": "all", "box_band_soft": 1,
    #  "fine_from": "init", "refine_init": "geo"/"union", "core": r, "core_neg_only": 1,
    #  "release_eval": 1}
    extra: dict = field(default_factory=dict)


class ClassicalSegmenter:
    """Geodesic-seeded GrabCut with edge-aware upsampling.  See the module docstring."""

    def __init__(self, cache_size: int = 32, **kwargs: Any) -> None:
        self.params = replace(Params(), **kwargs)
        self._cache: SharedLRU[object, _ClickState] | None = SharedLRU(cache_size) if cache_size > 0 else None

    def segment(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None) -> np.ndarray:
        return segment_classical(image, list(points), box, self.params, self._cache)

    def segment_candidates(
        self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3, *, base: int = 0
    ) -> list[Candidate]:
        return [Candidate(m, float(sc)) for m, sc in candidates_classical(image, list(points), box, k, self.params, self._cache, base)]

    def clear_cache(self) -> None:
        """Forget the per-photo states (benchmarks time cold calls with it)."""
        if self._cache is not None:
            self._cache.clear()


# ------------------------------------------------------------------ helpers
def _lab(img_rgb: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    f = img_rgb
    if sigma > 0:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    lab = cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab


def geodesic_distance(
    lab: np.ndarray, seeds: np.ndarray, eps: float = 1.0, passes: int = 2, init: np.ndarray | None = None, tex: float = 0.0
) -> np.ndarray:
    """Approximate geodesic distance from ``seeds`` (bool) on an 8-connected grid.

    Step cost between neighbours p, q: ``|Lab(p) - Lab(q)| + eps * |p - q|``.
    Raster sweeps (down, up) with exact in-row propagation by a min-plus prefix scan.
    ``init`` optionally gives starting distances (e.g. weighted border seeds).
    """
    return geodesic_distances(lab, [seeds], eps, passes, [init], tex)[0]


def geodesic_distances(
    lab: np.ndarray,
    seeds: Sequence[np.ndarray],
    eps: float = 1.0,
    passes: int = 2,
    inits: Sequence[np.ndarray | None] | None = None,
    tex: float = 0.0,
) -> list[np.ndarray]:
    """``geodesic_distance`` from several seed sets on the same image at once.

    The sweeps are a Python loop over rows with a dozen small numpy calls per row, so
    their cost is call overhead, not arithmetic: sweeping the fields stacked (K, W) per
    row costs about what one field costs, and the step costs are computed once.  The
    arithmetic per element is the same as for one field, so each result is identical
    to ``geodesic_distance`` of its seeds alone.
    """
    H, W = lab.shape[:2]
    K = len(seeds)
    inits = list(inits) if inits is not None else [None] * K
    s2 = np.float32(np.sqrt(2.0))

    def nrm(a: np.ndarray) -> np.ndarray:
        # the channels summed one by one: the same values as (a * a).sum(axis=-1), without
        # numpy's slow reduction over a last axis of length 3
        a = a * a
        d = a[..., 0] + a[..., 1]
        d += a[..., 2]
        d = np.sqrt(d, out=d)
        if tex > 0:  # ignore small (texture) differences, keep edges
            d = np.maximum(d - tex, 0.0)
        return d

    dh = nrm(lab[:, 1:] - lab[:, :-1]) + eps  # (H, W-1) between j-1 and j
    dv = nrm(lab[1:] - lab[:-1]) + eps  # (H-1, W)
    dd1 = nrm(lab[1:, 1:] - lab[:-1, :-1]) + eps * s2  # (i-1, j-1) -> (i, j)
    dd2 = nrm(lab[1:, :-1] - lab[:-1, 1:]) + eps * s2  # (i-1, j+1) -> (i, j)
    U = np.zeros((H, W), np.float32)
    U[:, 1:] = np.cumsum(dh, axis=1)

    # (H, K, W): row i of every field is one contiguous (K, W) block; one field: (H, W)
    D = np.empty((H, K, W) if K > 1 else (H, W), np.float32)
    for k, (sd, ini) in enumerate(zip(seeds, inits)):
        Dk = D[:, k] if K > 1 else D
        Dk[:] = np.inf if ini is None else ini.astype(np.float32)
        Dk[sd] = 0.0

    def hscan(row: np.ndarray, u: np.ndarray) -> np.ndarray:
        row = np.minimum.accumulate(row - u, axis=-1) + u
        return (np.minimum.accumulate((row + u)[..., ::-1], axis=-1)[..., ::-1]) - u

    for _ in range(passes):
        for i in range(H):  # down
            row = D[i]
            if i > 0:
                prev = D[i - 1]
                row = np.minimum(row, prev + dv[i - 1])
                row[..., 1:] = np.minimum(row[..., 1:], prev[..., :-1] + dd1[i - 1])
                row[..., :-1] = np.minimum(row[..., :-1], prev[..., 1:] + dd2[i - 1])
            D[i] = hscan(row, U[i])
        for i in range(H - 2, -1, -1):  # up
            row = D[i]
            nxt = D[i + 1]
            row = np.minimum(row, nxt + dv[i])
            row[..., :-1] = np.minimum(row[..., :-1], nxt[..., 1:] + dd1[i])
            row[..., 1:] = np.minimum(row[..., 1:], nxt[..., :-1] + dd2[i])
            D[i] = hscan(row, U[i])
    return [np.ascontiguousarray(D[:, k]) for k in range(K)] if K > 1 else [D]


def _disc_mask(shape: tuple[int, int], pts: list[tuple[float, float]], r: float) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    for x, y in pts:
        cv2.circle(m, (int(round(x)), int(round(y))), max(1, int(round(r))), 1, -1)
    return m.astype(bool)


def _components_touching(mask: np.ndarray, seeds: list[tuple[int, int]]) -> np.ndarray:
    import cv2

    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = {int(lab[y, x]) for x, y in seeds if mask[y, x]}
    keep.discard(0)
    if not keep:
        return mask
    return np.isin(lab, list(keep))


def _largest_components(mask: np.ndarray, min_frac: float = 0.2) -> np.ndarray:
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_frac * areas.max()) + 1
    return np.isin(lab, keep)


def _fill_small_holes(mask: np.ndarray, frac: float) -> np.ndarray:
    import cv2

    if frac <= 0:
        return mask
    inv = (~mask).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask
    H, W = mask.shape
    area = mask.sum()
    out = mask.copy()
    for k in range(1, n):
        x, y, w, h, a = stats[k]
        touches = x == 0 or y == 0 or x + w == W or y + h == H
        if not touches and a < frac * area:
            out[lab == k] = True
    return out


def guided_filter_gray(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (about 4x cheaper than the colour one)."""
    import cv2

    I = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    p = src.astype(np.float32)
    ks = (2 * r + 1, 2 * r + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ks, borderType=cv2.BORDER_REFLECT)

    mI, mp = box(I), box(p)
    a = (box(I * p) - mI * mp) / (box(I * I) - mI * mI + eps)
    b = mp - a * mI
    return box(a) * I + box(b)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Colour guided filter (He et al.) - edge-aware smoothing of ``src`` by ``guide``."""
    import cv2

    I = guide.astype(np.float32) / 255.0
    p = src.astype(np.float32)
    ks = (2 * r + 1, 2 * r + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ks, borderType=cv2.BORDER_REFLECT)

    mean_I = box(I)
    mean_p = box(p)
    mean_Ip = box(I * p[:, :, None])
    cov_Ip = mean_Ip - mean_I * mean_p[:, :, None]
    # 3x3 covariance of I in each window
    Ir, Ig, Ib = I[:, :, 0], I[:, :, 1], I[:, :, 2]
    mr, mg, mb = mean_I[:, :, 0], mean_I[:, :, 1], mean_I[:, :, 2]
    vrr = box(Ir * Ir) - mr * mr + eps
    vrg = box(Ir * Ig) - mr * mg
    vrb = box(Ir * Ib) - mr * mb
    vgg = box(Ig * Ig) - mg * mg + eps
    vgb = box(Ig * Ib) - mg * mb
    vbb = box(Ib * Ib) - mb * mb + eps
    # inverse of symmetric 3x3
    irr = vgg * vbb - vgb * vgb
    irg = vgb * vrb - vrg * vbb
    irb = vrg * vgb - vgg * vrb
    igg = vrr * vbb - vrb * vrb
    igb = vrb * vrg - vrr * vgb
    ibb = vrr * vgg - vrg * vrg
    det = vrr * irr + vrg * irg + vrb * irb
    cr, cg, cb = cov_Ip[:, :, 0], cov_Ip[:, :, 1], cov_Ip[:, :, 2]
    ar = (irr * cr + irg * cg + irb * cb) / det
    ag = (irg * cr + igg * cg + igb * cb) / det
    ab = (irb * cr + igb * cg + ibb * cb) / det
    b = mean_p - ar * mr - ag * mg - ab * mb
    a = np.dstack([box(ar), box(ag), box(ab)])
    return (a * I).sum(axis=2) + box(b)


# ------------------------------------------------------------------ main
def _expand_roi(x0: float, y0: float, x1: float, y1: float, frac: float, min_px: float, W: int, H: int) -> tuple[int, int, int, int]:
    mx = max(frac * (x1 - x0), min_px)
    my = max(frac * (y1 - y0), min_px)
    return (max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my))), min(W, int(np.ceil(x1 + mx))), min(H, int(np.ceil(y1 + my))))


def segment_classical(
    image: np.ndarray,
    points: list[Point],
    box: Box | None,
    P: Params,
    cache: SharedLRU[object, _ClickState] | None = None,
    base: int = 0,
) -> np.ndarray:
    H0, W0 = image.shape[:2]
    if P.incremental and box is None and any(p for _, _, p in points) and P.coarse_side <= 0:
        small = _resize_to(image, P.work_side)
        st = _click_state(small, _state_key(image, small), _scaled(points, image, small), P, cache, image, base)
        if st.full is not None:
            return st.full
        return st.proposals[0].mask if st.proposals else _to_full(image, st.mask, P)
    roi = (0, 0, W0, H0)
    if box is not None and P.box_crop > 0:
        roi = _expand_roi(*box, P.box_crop, 0.02 * max(H0, W0), W0, H0)
        for x, y, _ in points:  # never crop away a pin
            roi = (min(roi[0], int(x)), min(roi[1], int(y)), max(roi[2], int(x) + 1), max(roi[3], int(y) + 1))
    X0, Y0, X1, Y1 = roi
    crop = image[Y0:Y1, X0:X1]
    pts = [(x - X0, y - Y0, p) for x, y, p in points]
    cbox = None if box is None else (box[0] - X0, box[1] - Y0, box[2] - X0, box[3] - Y0)
    at_border = (False,) * 4
    if box is not None:
        at_border = (box[0] < 1, box[1] < 1, box[2] > W0 - 1, box[3] > H0 - 1)
    m = _segment_roi(np.ascontiguousarray(crop), pts, cbox, P, at_border)
    if roi == (0, 0, W0, H0):
        return m
    out = np.zeros((H0, W0), bool)
    out[Y0:Y1, X0:X1] = m
    return out


def _resize_to(image: np.ndarray, side: int, up: bool = False) -> np.ndarray:
    """``image`` with its long side at most ``side`` (``up``: exactly ``side``, enlarged
    bicubically when smaller)."""
    import cv2

    H0, W0 = image.shape[:2]
    s = side / max(H0, W0)
    if s == 1.0 or (s > 1.0 and not up):
        return image
    w, h = max(2, round(W0 * s)), max(2, round(H0 * s))
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if s < 1.0 else cv2.INTER_CUBIC)


def _gc_input(img_rgb: np.ndarray, pre: float) -> np.ndarray:
    """GrabCut's input: BGR, bilateral-filtered when ``pre`` > 0."""
    import cv2

    bgr = np.ascontiguousarray(img_rgb[:, :, ::-1])
    if pre > 0:
        # edge-preserving smoothing: flattens texture for the colour models and the
        # contrast term, keeps the edges (and makes the max-flow cheaper)
        bgr = cv2.bilateralFilter(bgr, 5, pre, 3)
    return bgr


def _grabcut(
    img_rgb: np.ndarray,
    gc: np.ndarray,
    iters: int,
    mode: int,
    bgm: np.ndarray | None = None,
    fgm: np.ndarray | None = None,
    tol: float = 0.0,
    pre: float = 0.0,
    bgr: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """In-place GrabCut on the label map ``gc``; returns the colour models or None.
    ``bgr``: GrabCut's input if already computed (``_gc_input``)."""
    import cv2

    if not ((gc == GC_PR_FGD).any() or (gc == GC_FGD).any()):
        return None
    bgm = np.zeros((1, 65), np.float64) if bgm is None else bgm.copy()
    fgm = np.zeros((1, 65), np.float64) if fgm is None else fgm.copy()
    cv2.setRNGSeed(0)
    if bgr is None:
        bgr = _gc_input(img_rgb, pre)
    try:
        if tol <= 0:
            cv2.grabCut(bgr, gc, None, bgm, fgm, iters, mode)
        else:
            # one iteration per call (the colour models carry over exactly through
            # bgm/fgm); stop once an iteration changes fewer than ``tol`` of the pixels
            for i in range(iters):
                before = gc & 1
                cv2.grabCut(bgr, gc, None, bgm, fgm, 1, mode if i == 0 else cv2.GC_EVAL)
                if np.count_nonzero(before != (gc & 1)) < tol * gc.size:
                    break
    except cv2.error:
        return None  # e.g. one of the classes is empty: keep the labelling as it is
    return bgm, fgm


def _segment_roi(
    image: np.ndarray,
    points: list[Point],
    box: Box | None,
    P: Params,
    at_border: tuple[bool, bool, bool, bool] = (False, False, False, False),
    want_state: bool = False,
):
    import cv2

    H0, W0 = image.shape[:2]
    two_stage = 0 < P.coarse_side < P.work_side and max(H0, W0) > P.coarse_side
    small = _resize_to(image, P.coarse_side if two_stage else P.work_side, up=box is not None and P.box_upscale)
    h, w = small.shape[:2]
    sx, sy = w / W0, h / H0
    pos = [(x * sx, y * sy) for x, y, p in points if p]
    neg = [(x * sx, y * sy) for x, y, p in points if not p]
    sbox = None if box is None else (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)

    lab = _lab(small, P.smooth_sigma) if pos else None
    r_seed = max(1.5, P.seed_radius * min(h, w))
    fg_seed = _disc_mask((h, w), pos, r_seed) if pos else np.zeros((h, w), bool)
    bg_seed = _disc_mask((h, w), neg, r_seed) if neg else np.zeros((h, w), bool)
    fg_seed &= ~bg_seed

    outside = _outside(sbox, (h, w))

    gc = np.full((h, w), GC_PR_BGD, np.uint8)
    d_fg = d_bg = None
    if pos:
        assert lab is not None
        bg_src = bg_seed.copy()
        init = None
        if sbox is not None:
            bg_src |= outside
        else:
            border = np.full((h, w), np.inf, np.float32)
            border[0, :] = border[-1, :] = 0.0
            border[:, 0] = border[:, -1] = 0.0
            init = border
        # both fields in one sweep (half the cost, the same values)
        d_fg, d_bg = geodesic_distances(lab, [fg_seed, bg_src], P.geo_eps, P.geo_passes, [None, init], tex=P.geo_tex)
        if init is not None and P.border_weight != 1.0:
            # re-weight: distance from border only (negatives keep weight 1)
            if bg_src.any():
                d_neg = geodesic_distance(lab, bg_src, P.geo_eps, P.geo_passes, tex=P.geo_tex)
                d_bor = geodesic_distance(lab, np.zeros_like(bg_src), P.geo_eps, P.geo_passes, init=init, tex=P.geo_tex)
                d_bg = np.minimum(d_neg, d_bor * P.border_weight)
            else:
                d_bg = d_bg * P.border_weight
        gc[d_fg < P.fg_ratio * d_bg] = GC_PR_FGD
        if P.bg_hard > 0:
            gc[d_fg > P.bg_hard * d_bg] = GC_BGD
        if P.fg_hard > 0:
            gc[d_fg * P.fg_hard < d_bg] = GC_FGD
    elif sbox is not None:
        inside = ~outside
        gc[inside] = GC_PR_FGD
        mode = P.extra.get("box_init", "rect")
        if mode != "rect" and outside.any():
            lab = _lab(small, P.smooth_sigma)
            d_out = geodesic_distance(lab, outside, P.geo_eps, P.geo_passes, tex=P.geo_tex)
            v = d_out[inside]
            if mode == "frac":
                thr = P.extra.get("box_frac", 0.3) * float(v.max())
            elif mode == "otsu":
                q = np.clip(v / max(float(v.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
                t, _ = cv2.threshold(q.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
                thr = t / 255.0 * float(v.max()) * P.extra.get("box_otsu_k", 1.0)
            else:
                thr = float(np.quantile(v, P.extra.get("box_q", 0.3)))
            gc[inside & (d_out < thr)] = GC_PR_BGD
    band = None
    if sbox is not None and not pos and P.box_band > 0:
        band = _box_band(sbox, (h, w), P.box_band, at_border, P.extra.get("box_band_img", "skip"))
        gc[band] = GC_PR_BGD if P.extra.get("box_band_soft") else GC_BGD
    if sbox is not None:
        gc[outside] = GC_BGD
    gc[fg_seed] = GC_FGD
    gc[bg_seed] = GC_BGD

    gc_init = gc.copy()
    bgr = _gc_input(small, P.prefilter)
    models = _grabcut(small, gc, P.gc_iters, cv2.GC_INIT_WITH_MASK, tol=P.gc_tol, bgr=bgr)
    m = (gc == GC_FGD) | (gc == GC_PR_FGD)
    m = _keep_components(m, pos, w, h)
    if sbox is not None and not pos and (P.box_restart > 0 or P.box_tight > 0):
        m, models = _box_refine(small, bgr, gc, gc_init, m, models, sbox, P, at_border)
    if neg and pos and P.neg_carve:
        # GrabCut keeps a region the colour model calls "object" even when a negative
        # pin sits on it (two touching objects of the same colour).  A negative pin
        # therefore also removes what is geodesically closer to it than to any
        # positive pin (the geodesic Voronoi cell of the negative pins).
        assert lab is not None and d_fg is not None
        d_neg = geodesic_distance(lab, bg_seed, P.geo_eps, P.geo_passes, tex=P.geo_tex)
        m &= ~(d_neg < d_fg)
        m = _keep_components(m, pos, w, h)

    if two_stage and models is not None and P.fine_iters > 0:
        # Coarse-to-fine: the coarse result and its colour models start a short GrabCut
        # at the working resolution (GC_EVAL: no k-means, models re-estimated from the
        # upsampled labels).  Far from the coarse boundary the labels are fixed, so the
        # max-flow only works in a band around it.
        fine = _resize_to(image, P.work_side)
        fh, fw = fine.shape[:2]
        if P.extra.get("fine_from") == "init":
            gc = cv2.resize(gc_init, (fw, fh), interpolation=cv2.INTER_NEAREST)
            up = (gc & 1).astype(np.uint8)
        else:
            up = cv2.resize(m.astype(np.uint8), (fw, fh), interpolation=cv2.INTER_NEAREST)
            gc = np.where(up > 0, GC_PR_FGD, GC_PR_BGD).astype(np.uint8)
        if P.fine_band > 0:
            b = max(1, int(round(P.fine_band * min(fh, fw))))
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * b + 1, 2 * b + 1))
            gc[cv2.erode(up, k) > 0] = GC_FGD
            gc[cv2.dilate(up, k) == 0] = GC_BGD
        fx, fy = fw / W0, fh / H0
        fpos = [(x * fx, y * fy) for x, y, p in points if p]
        fneg = [(x * fx, y * fy) for x, y, p in points if not p]
        fr = max(1.5, P.seed_radius * min(fh, fw))
        fbg = _disc_mask((fh, fw), fneg, fr) if fneg else np.zeros((fh, fw), bool)
        fbox = None if box is None else (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
        if fbox is not None:
            gc[_outside(fbox, (fh, fw))] = GC_BGD
            if band is not None:
                gc[_box_band(fbox, (fh, fw), P.box_band, at_border, P.extra.get("box_band_img", "skip"))] = GC_BGD
        if fpos:
            gc[_disc_mask((fh, fw), fpos, fr) & ~fbg] = GC_FGD
        gc[fbg] = GC_BGD
        if _grabcut(fine, gc, P.fine_iters, cv2.GC_EVAL, *models, tol=P.gc_tol, pre=P.prefilter) is not None:
            small, h, w, bg_seed = fine, fh, fw, fbg
            m = _keep_components((gc == GC_FGD) | (gc == GC_PR_FGD), fpos, fw, fh)
    m = _fill_small_holes(m, P.fill_holes)
    m &= ~bg_seed
    if want_state:
        return _ClickState(m, models, d_fg, d_bg, lab)

    m = _to_full(image, m, P)
    if box is not None:
        m &= ~_outside(box, (H0, W0))
    return m


def grabcut_energy(bgr: np.ndarray, m: np.ndarray, models: tuple[np.ndarray, np.ndarray], hard: np.ndarray) -> float:
    """GrabCut's energy of the labelling ``m`` under the colour models ``models``
    (Rother et al. 2004, as OpenCV builds its graph): -log of the GMM likelihood of each
    pixel's label (pixels in ``hard`` left out: fixed, the same for every labelling) plus,
    for every 8-neighbour pair with different labels, 50 exp(-beta |z_p - z_q|^2) / dist."""
    z = bgr.astype(np.float64)
    lb, lf = gmm_loglik(bgr, models[0]), gmm_loglik(bgr, models[1])
    free = ~hard
    data = -(lf[m & free].sum() + lb[~m & free].sum())
    pairs = [((0, 1), 1.0), ((1, 0), 1.0), ((1, 1), np.sqrt(2.0)), ((1, -1), np.sqrt(2.0))]
    diffs = []
    for (dy, dx), _ in pairs:
        a = z[dy:, max(0, dx) : z.shape[1] + min(0, dx)]
        b = z[: z.shape[0] - dy, max(0, -dx) : z.shape[1] - max(0, dx)]
        diffs.append(((a - b) ** 2).sum(axis=-1))
    total = sum(d.sum() for d in diffs)
    count = sum(d.size for d in diffs)
    beta = 0.0 if total <= 0 else 1.0 / (2.0 * total / count)
    smooth = 0.0
    for ((dy, dx), dist), d in zip(pairs, diffs):
        ma = m[dy:, max(0, dx) : m.shape[1] + min(0, dx)]
        mb = m[: m.shape[0] - dy, max(0, -dx) : m.shape[1] - max(0, dx)]
        smooth += (50.0 / dist * np.exp(-beta * d[ma != mb])).sum()
    return float(data + smooth)


def gmm_loglik(bgr: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Log-likelihood of every pixel under one of OpenCV GrabCut's colour GMMs.

    ``model`` is the (1, 65) array ``cv2.grabCut`` fills: 5 weights, 5 means (3), 5
    covariances (3x3, row-major), in the colour space of its input (BGR)."""
    K = 5
    v = model.ravel()
    coefs, means, covs = v[:K], v[K : 4 * K].reshape(K, 3), v[4 * K :].reshape(K, 3, 3)
    x = bgr.reshape(-1, 3).astype(np.float64)
    acc = np.zeros(x.shape[0])
    for k in range(K):
        if coefs[k] <= 0:
            continue
        det = float(np.linalg.det(covs[k]))
        if det <= 0:
            continue
        d = x - means[k]
        q = np.einsum("ij,ij->i", d @ np.linalg.inv(covs[k]), d)
        acc += coefs[k] / np.sqrt(det) * np.exp(-0.5 * q)
    return np.log(acc + 1e-300).reshape(bgr.shape[:2])


def _tight_lines(m: np.ndarray, box: Box, inner: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Rows and columns through the central ``inner`` part of ``box`` that ``m`` misses
    (within the box), and the box in whole pixels."""
    h, w = m.shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    t = (1.0 - inner) / 2.0
    r0, r1 = y0 + int(np.ceil(t * (y1 - y0))), y1 - int(np.ceil(t * (y1 - y0)))
    c0, c1 = x0 + int(np.ceil(t * (x1 - x0))), x1 - int(np.ceil(t * (x1 - x0)))
    inb = m[y0:y1, x0:x1]
    rows = np.arange(r0, r1)
    cols = np.arange(c0, c1)
    rows = rows[~inb[rows - y0].any(axis=1)] if rows.size else rows
    cols = cols[~inb[:, cols - x0].any(axis=0)] if cols.size else cols
    return rows, cols, (x0, y0, x1, y1)


def _box_refine(
    small: np.ndarray,
    bgr: np.ndarray,
    gc: np.ndarray,
    gc_init: np.ndarray,
    m: np.ndarray,
    models: tuple[np.ndarray, np.ndarray] | None,
    box: Box,
    P: Params,
    at_border: tuple[bool, bool, bool, bool],
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Box mode after the first GrabCut: a second start (``box_restart``) and the tightness
    prior (``box_tight``); of the starts, the labelling with the lower GrabCut energy wins."""
    import cv2

    h, w = gc.shape
    # the first start (None when GrabCut could not run: e.g. the box leaves no background)
    cands = [] if models is None else [(gc, m, models)]
    if P.box_restart > 0:
        # second start: an inner band of the box is background at first (GrabCut's colour
        # models then learn the background the box holds), then released so that both
        # starts solve the same problem (only the outside of the box is fixed)
        gc2 = gc_init.copy()
        band = _box_band(box, (h, w), P.box_restart, at_border, "all")
        gc2[band] = GC_BGD
        models2 = _grabcut(small, gc2, P.restart_iters, cv2.GC_INIT_WITH_MASK, bgr=bgr)
        if models2 is not None:
            gc2[band & (gc2 == GC_BGD)] = GC_PR_BGD
            if P.extra.get("release_eval"):
                models2 = _grabcut(small, gc2, 1, cv2.GC_EVAL, *models2, bgr=bgr) or models2
            else:
                models2 = _grabcut(small, gc2, 1, cv2.GC_INIT_WITH_MASK, bgr=bgr) or models2
            cands.append((gc2, _largest_components((gc2 == GC_FGD) | (gc2 == GC_PR_FGD)), models2))
    if not cands:
        return m, models
    out = []
    for g, mm, mod in cands:
        if P.box_tight > 0:
            mm, mod = _pinpoint(bgr, g, mm, mod, box, P)
        out.append((mm, mod))
    if len(out) == 1:
        return out[0]
    hard = gc_init == GC_BGD
    energies = [grabcut_energy(bgr, mm, mod, hard) for mm, mod in out]
    return out[int(np.argmin(energies))]


def _pinpoint(
    bgr: np.ndarray, gc: np.ndarray, m: np.ndarray, models: tuple[np.ndarray, np.ndarray], box: Box, P: Params
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Tightness prior of a box (Lempitsky, Kohli, Rother and Sharp, ICCV 2009).

    A box drawn around an object is tight: every row and every column through it crosses
    the object.  Only the central ``P.box_tight`` part of the box is constrained, so that a
    box drawn with a margin does not force the object out to its edges.  "Pinpointing":
    for every constrained line the mask misses, the pixel of that line (inside the box)
    where the object is most likely (colour log-likelihood ratio of GrabCut's models,
    smoothed a little) becomes a hard object seed, and GrabCut runs again from the current
    labels; repeated a few rounds or until every constrained line is crossed."""
    import cv2

    lab = None
    for _ in range(P.tight_rounds):
        rows, cols, (x0, y0, x1, y1) = _tight_lines(m, box, P.box_tight)
        if rows.size == 0 and cols.size == 0:
            break
        if P.tight_pick == "geo":
            if lab is None:
                lab = _lab(bgr[:, :, ::-1], P.smooth_sigma)
            llr = -geodesic_distance(lab, m, P.geo_eps, P.geo_passes)
        else:
            llr = gmm_loglik(bgr, models[1]) - gmm_loglik(bgr, models[0])
            llr = cv2.GaussianBlur(llr.astype(np.float32), (0, 0), 1.0)
        llr[gc == GC_BGD] = -np.inf  # never on a background seed (a negative pin)
        sub = llr[y0:y1, x0:x1]
        seeds = np.zeros(gc.shape, bool)
        for r in rows:
            j = int(np.argmax(sub[r - y0]))
            if np.isfinite(sub[r - y0, j]):
                seeds[r, x0 + j] = True
        for c in cols:
            i = int(np.argmax(sub[:, c - x0]))
            if np.isfinite(sub[i, c - x0]):
                seeds[y0 + i, c] = True
        if not seeds.any():
            break
        new_gc = np.where(m, GC_PR_FGD, GC_PR_BGD).astype(np.uint8)
        new_gc[gc == GC_BGD] = GC_BGD
        new_gc[gc == GC_FGD] = GC_FGD
        new_gc[seeds] = GC_FGD
        gc[:] = new_gc
        new = _grabcut(bgr, gc, P.tight_iters, cv2.GC_INIT_WITH_MASK, bgr=bgr)
        if new is None:
            break
        models = new
        m = (gc == GC_FGD) | (gc == GC_PR_FGD)
        m = _keep_with_seeds(m, gc == GC_FGD)
    return m, models


def _keep_with_seeds(m: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Box mode clean-up that keeps the big components and those holding a hard seed."""
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = set((np.flatnonzero(areas >= 0.2 * areas.max()) + 1).tolist())
    keep |= set(np.unique(lab[seeds & m]).tolist())
    keep.discard(0)
    return np.isin(lab, list(keep))


def _to_full(image: np.ndarray, m: np.ndarray, P: Params) -> np.ndarray:
    """Work-resolution mask -> ``image``'s size (edge-aware upsampling)."""
    import cv2

    H0, W0 = image.shape[:2]
    if m.shape == (H0, W0):
        return m
    # a mask made on an enlarged crop (box_upscale, zoom) is shrunk by area, not by sampling
    shrink = m.shape[0] > H0 or m.shape[1] > W0
    up = cv2.resize(m.astype(np.float32), (W0, H0), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if P.refine in ("guided", "guided_gray"):
        r = max(1, int(round(P.guided_radius * min(H0, W0))))
        gf = guided_filter if P.refine == "guided" else guided_filter_gray
        up = gf(image, up, r, P.guided_eps)
    return up >= 0.5


@dataclass
class _ClickState:
    """What a click-mode run leaves at the working resolution (cached per image and clicks)."""

    mask: np.ndarray
    models: tuple[np.ndarray, np.ndarray] | None
    d_fg: np.ndarray | None
    d_bg: np.ndarray | None
    lab: np.ndarray | None
    # first positive pin with candidates on (issue 16): the ranked proposals at the image's
    # size; ``mask`` is the first one at the working resolution, the geodesic fields are
    # computed when a later click needs them
    proposals: list[_Proposal] | None = None
    # zoomed refinement (``zoom``): the mask at the image's size; later clicks crop around it
    full: np.ndarray | None = None


def _click_state(
    small: np.ndarray,
    key: bytes,
    pts: tuple[Point, ...],
    P: Params,
    cache: SharedLRU[object, _ClickState] | None,
    image: np.ndarray | None = None,
    base: int = 0,
) -> _ClickState:
    """State after the clicks ``pts`` (in ``small``'s pixels).

    The first click (or every click up to the first positive one) runs the full pipeline.
    Each later click refines the state of the clicks before it (RITM-style: the previous
    mask is an input), so the result is a function of the image, the ordered clicks and
    ``base`` (the first pin's candidate the worker picked to refine) only; the cache just
    avoids recomputing the earlier states.
    """
    prev_pos = any(p for _, _, p in pts[:-1])
    refining = len(pts) >= 2 and prev_pos
    ck: tuple[object, ...] = (key, pts, base) if refining and base else (key, pts)
    if cache is not None:
        hit = cache.get(ck)
        if hit is not None:
            return hit
    if refining:
        prev = _click_state(small, key, pts[:-1], P, cache, image, base)
        zoom = _zoom_start(small, prev, pts, P, image, base)
        if zoom is not None and image is not None:
            st = _zoom_click(small, zoom, pts, P, image)
        else:
            if prev.proposals is not None:
                prev = _rescale_start(small, prev, pts[-1], base)
            st = _refine_click(small, prev, pts, P)
    elif P.cand_scales and image is not None:
        st = _proposal_state(image, small, pts, P)
    else:
        st = _segment_roi(small, list(pts), None, P, want_state=True)
    if cache is not None:
        cache.put(ck, st)
    return st


def _refine_click(small: np.ndarray, prev: _ClickState, pts: tuple[Point, ...], P: Params) -> _ClickState:
    """One more click on top of ``prev``: the click's geodesic cell is re-labelled, the
    previous colour models start a short GrabCut."""
    import cv2

    h, w = small.shape[:2]
    x, y, positive = pts[-1]
    r_seed = max(1.5, P.seed_radius * min(h, w))
    pos = [(px, py) for px, py, p in pts if p]
    neg = [(px, py) for px, py, p in pts if not p]
    if prev.d_fg is None and prev.proposals is not None:
        prev = replace(prev, **_geodesic_fields(small, pts[:-1], P))
    lab = prev.lab if prev.lab is not None else _lab(small, P.smooth_sigma)
    bg_seed = _disc_mask((h, w), neg, r_seed) if neg else np.zeros((h, w), bool)
    fg_seed = _disc_mask((h, w), pos, r_seed) & ~bg_seed
    d_new = geodesic_distance(lab, _disc_mask((h, w), [(x, y)], r_seed), P.geo_eps, P.geo_passes, tex=P.geo_tex)
    d_fg, d_bg = prev.d_fg, prev.d_bg
    gc = np.where(prev.mask, GC_PR_FGD, GC_PR_BGD).astype(np.uint8)
    # the click re-labels its geodesic cell only within its reach (see _click_reach)
    cell_lim = _click_reach(prev.mask, x, y, P.refine_cell, 2 * r_seed) if P.refine_cell > 0 else np.ones((h, w), bool)
    if positive:
        if d_bg is not None:
            gc[(d_new < P.fg_ratio * d_bg) & cell_lim] = GC_PR_FGD
        d_fg = d_new if d_fg is None else np.minimum(d_fg, d_new)
    else:
        if d_fg is not None:
            gc[(d_new * P.fg_ratio < d_fg) & prev.mask & cell_lim] = GC_PR_BGD
        d_bg = d_new if d_bg is None else np.minimum(d_bg, d_new)
    if P.extra.get("refine_init") == "geo" and d_fg is not None and d_bg is not None:
        gc = np.where(d_fg < P.fg_ratio * d_bg, GC_PR_FGD, GC_PR_BGD).astype(np.uint8)
    elif P.extra.get("refine_init") == "union" and d_fg is not None and d_bg is not None:
        gc[d_fg < P.fg_ratio * d_bg] = GC_PR_FGD
    core = P.extra.get("core", 0.0)
    if core > 0:
        # the part of the click's geodesic cell that is much closer to it than to the
        # other side's seeds is fixed for this refinement
        if positive and d_bg is not None and not P.extra.get("core_neg_only"):
            gc[d_new * core < d_bg] = GC_FGD
        elif not positive and prev.d_fg is not None:
            gc[(d_new * core < prev.d_fg)] = GC_BGD
    if P.refine_local > 0:
        yy, xx = np.ogrid[:h, :w]
        R = P.refine_local * min(h, w)
        near = (xx - x) ** 2 + (yy - y) ** 2 <= R * R
        near |= (gc & 1).astype(bool) != prev.mask  # the click's re-labelled cell
        gc[~near & prev.mask] = GC_FGD
        gc[~near & ~prev.mask] = GC_BGD
    gc[fg_seed] = GC_FGD
    gc[bg_seed] = GC_BGD
    if P.refine_models == "previous" and prev.models is not None:
        models = _grabcut(small, gc, P.refine_iters, cv2.GC_EVAL, *prev.models, pre=P.prefilter)
    else:
        # fresh colour models from the refined labels: already close to the answer, so
        # one iteration is enough (carrying the old models over made GrabCut "sticky":
        # it tends to undo the click, docs/autoseg.md)
        models = _grabcut(small, gc, P.refine_iters, cv2.GC_INIT_WITH_MASK, pre=P.prefilter)
    m = (gc == GC_FGD) | (gc == GC_PR_FGD)
    m = _keep_components(m, pos, w, h)
    m = _fill_small_holes(m, P.fill_holes)
    m &= ~bg_seed
    return _ClickState(m, models if models is not None else prev.models, d_fg, d_bg, lab)


def _click_reach(prev_mask: np.ndarray, x: float, y: float, c: float, r_min: float) -> np.ndarray:
    """Disc around a later click of radius ``c`` times the click's distance to the nearest
    pixel the previous mask labels the other way (at least ``r_min``).

    A user (and the benchmark's protocol) clicks inside the error region to correct, so
    that distance is about the region's size; the click's geodesic cell can be far larger
    (a background of the object's colour), and re-labelling all of it let one click flood
    or empty the mask (docs/autoseg.md, rows 31-32)."""
    import cv2

    h, w = prev_mask.shape
    cx, cy = min(w - 1, max(0, int(round(x)))), min(h - 1, max(0, int(round(y))))
    same = (prev_mask == prev_mask[cy, cx]).astype(np.uint8)
    # the image border counts as a boundary (an error region ends there too)
    dt = float(cv2.distanceTransform(np.pad(same, 1), cv2.DIST_L2, 5)[cy + 1, cx + 1])
    R = max(c * dt, r_min)
    yy, xx = np.ogrid[:h, :w]
    return (xx - x) ** 2 + (yy - y) ** 2 <= R * R


def _outside(box: Box | None, shape: tuple[int, int]) -> np.ndarray:
    """Pixels outside ``box`` (all False without a box)."""
    out = np.zeros(shape, bool)
    if box is not None:
        x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
        x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        out[:] = True
        out[max(0, y0) : y1, max(0, x0) : x1] = False
    return out


def _box_band(box: Box, shape: tuple[int, int], frac: float, at_border: tuple[bool, bool, bool, bool], mode: str = "skip") -> np.ndarray:
    """The inner band of ``box`` (``frac`` of its width/height) on the sides that are not
    the image border (``mode="all"``: on every side)."""
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    bw = max(1, int(round(frac * (x1 - x0))))
    bh = max(1, int(round(frac * (y1 - y0))))
    m = np.zeros(shape, bool)
    left, top, right, bottom = at_border if mode != "all" else (False,) * 4
    if not left:
        m[y0:y1, x0 : x0 + bw] = True
    if not right:
        m[y0:y1, max(x0, x1 - bw) : x1] = True
    if not top:
        m[y0 : y0 + bh, x0:x1] = True
    if not bottom:
        m[max(y0, y1 - bh) : y1, x0:x1] = True
    return m


def _keep_components(m: np.ndarray, pos: list[tuple[float, float]], w: int, h: int) -> np.ndarray:
    if pos:
        seeds = [(min(w - 1, int(round(x))), min(h - 1, int(round(y)))) for x, y in pos]
        return _components_touching(m, seeds)
    return _largest_components(m)


# ------------------------------------------------------------------ candidates (issue 16)
@dataclass
class _Proposal:
    """One candidate mask from one window around the pins, with the measures that rank it."""

    mask: np.ndarray  # bool, full image size
    scale: int  # index of the window (0 = smallest)
    truncated: float  # share of the mask's outline on a window side that is not the image border
    separation: float  # 1 - Bhattacharyya coefficient of inside vs ring colour histograms
    contrast: float  # mean gradient on the outline / mean gradient around it
    compactness: float  # 4 pi area / perimeter^2
    stability: float = 0.0  # IoU with the proposal of the next larger window (see pin_proposals)
    background: float = 0.0  # 1 - exp(-BndCon^2 / 2), Zhu et al.'s background probability
    collapsed: bool = False  # hardly more than the pins' seed discs
    family: int = 0  # 0: GrabCut's result, 1: the geodesic prior region (cand_prior)
    score: float = 0.0


def _windows(pos: list[tuple[float, float]], W: int, H: int, fracs: Sequence[float], full_min: float) -> list[tuple[int, int, int, int]]:
    """Square windows of side ``f * sqrt(W * H)`` around the positive pins (all of them
    inside), smallest first, then the whole image.  A window that covers more than
    ``full_min`` of the image is left to the whole image."""
    side = float(np.sqrt(W * H))
    xs = [p[0] for p in pos]
    ys = [p[1] for p in pos]
    out: list[tuple[int, int, int, int]] = []
    for f in fracs:
        half = 0.5 * f * side
        x0, x1 = min(xs) - half, max(xs) + half
        y0, y1 = min(ys) - half, max(ys) + half
        # keep the window's size where the image allows: shift it back inside
        if x0 < 0:
            x1, x0 = min(W, x1 - x0), 0.0
        if x1 > W:
            x0, x1 = max(0.0, x0 - (x1 - W)), float(W)
        if y0 < 0:
            y1, y0 = min(H, y1 - y0), 0.0
        if y1 > H:
            y0, y1 = max(0.0, y0 - (y1 - H)), float(H)
        win = (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
        if (win[2] - win[0]) * (win[3] - win[1]) > full_min * W * H:
            continue
        if out and out[-1] == win:
            continue
        out.append(win)
    out.append((0, 0, W, H))
    return out


def _outline(m: np.ndarray) -> np.ndarray:
    """Pixels of ``m`` with a 4-neighbour outside ``m`` (the image border does not count)."""
    import cv2

    er = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return m & (er == 0)


def _hist(lab_q: np.ndarray, sel: np.ndarray, bins: int) -> np.ndarray:
    h = np.bincount(lab_q[sel], minlength=bins**3).astype(np.float64)
    return h / max(1.0, h.sum())


class _Measures:
    """Per-image data the candidate measures share (computed once per call)."""

    def __init__(self, image: np.ndarray, bins: int = 8) -> None:
        import cv2

        self.bins = bins
        lab = cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), 1.0), cv2.COLOR_RGB2Lab)
        # the bin of each channel by a lookup table ((v * bins) // 256 for uint8 v), then one
        # index per pixel; per-channel sums instead of a reduction over the short last axis
        # (the same values, a third of the time at phone size)
        lut = ((np.arange(256) * bins) // 256).astype(np.uint8)
        q = cv2.split(cv2.LUT(lab, lut))
        self.lab_q = (q[0].astype(np.int32) * bins + q[1]) * bins + q[2]
        f = lab.astype(np.float32)
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
        sq = gx * gx
        sq += gy * gy
        g = sq[:, :, 0] + sq[:, :, 1]
        g += sq[:, :, 2]
        self.grad = np.sqrt(g, out=g)

    def measure(self, m: np.ndarray, win: tuple[int, int, int, int], scale: int) -> _Proposal:
        import cv2

        H, W = m.shape
        area = int(np.count_nonzero(m))
        if area == 0:
            return _Proposal(m, scale, 1.0, 0.0, 0.0, 0.0)
        # a ring outside the mask, as wide as a quarter of the object's size
        r = max(2.0, 0.25 * float(np.sqrt(area)))
        # everything below lies within r of the mask: work on its bounding box grown by r
        # (the 3x3 chamfer distance underestimates the Euclidean one by at most 4.5 %, and
        # a chamfer path never leaves the box of its two ends), so the values are the same
        # as on the whole photo at a fraction of the pixels
        bx, by, bw, bh = cv2.boundingRect(np.ascontiguousarray(m).view(np.uint8))
        g = int(np.ceil(r / 0.95)) + 2
        cx0, cy0, cx1, cy1 = max(0, bx - g), max(0, by - g), min(W, bx + bw + g), min(H, by + bh + g)
        mc = m[cy0:cy1, cx0:cx1]
        line = _outline(mc)
        n_line = max(1, int(np.count_nonzero(line)))
        # outline on a side of the window that is not the image's border: the window cut
        # the object, a larger window has it whole
        x0, y0, x1, y1 = win
        cut = np.zeros_like(mc)
        if x0 > 0 and cx0 <= x0 < cx1:
            cut[:, x0 - cx0] = True
        if y0 > 0 and cy0 <= y0 < cy1:
            cut[y0 - cy0, :] = True
        if x1 < W and cx0 <= x1 - 1 < cx1:
            cut[:, x1 - 1 - cx0] = True
        if y1 < H and cy0 <= y1 - 1 < cy1:
            cut[y1 - 1 - cy0, :] = True
        truncated = float(np.count_nonzero(line & cut)) / n_line
        grown = cv2.distanceTransform((~mc).astype(np.uint8), cv2.DIST_L2, 3) <= r
        ring = grown & ~mc
        lab_q = self.lab_q[cy0:cy1, cx0:cx1]
        grad = self.grad[cy0:cy1, cx0:cx1]
        if ring.any():
            bc = float(np.sqrt(_hist(lab_q, mc, self.bins) * _hist(lab_q, ring, self.bins)).sum())
            separation = 1.0 - bc
        else:
            separation = 0.0
        around = float(grad[grown].mean()) + 1e-3
        contrast = float(grad[line].mean()) / around if line.any() else 0.0
        perim = n_line
        compactness = min(1.0, 4.0 * np.pi * area / float(perim * perim))
        # boundary connectivity (Zhu, Liang, Wei and Sun, CVPR 2014): the length of the mask
        # along the photo's border over the square root of its area; background regions
        # (the table, the street a flood runs into) hold the frame, objects mostly do not
        on_frame = int(np.count_nonzero(m[0]) + np.count_nonzero(m[-1]) + np.count_nonzero(m[1:-1, 0]) + np.count_nonzero(m[1:-1, -1]))
        bnd = on_frame / float(np.sqrt(area))
        background = 1.0 - float(np.exp(-0.5 * bnd * bnd))
        return _Proposal(m, scale, truncated, separation, contrast, compactness, background=background)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return 1.0 if u == 0 else np.count_nonzero(a & b) / u


def pin_proposals(image: np.ndarray, points: list[Point], P: Params) -> list[_Proposal]:
    """Candidate masks of the object under the positive pins, one per window around them
    (smallest first, the whole image last), each segmented on its own (geodesic prior +
    GrabCut, the window's border as the border), measured, not yet ranked."""
    H0, W0 = image.shape[:2]
    pos = [(x, y) for x, y, p in points if p]
    wins = _windows(pos, W0, H0, P.cand_scales, P.cand_full_min)
    meas = _Measures(image)
    out: list[_Proposal] = []
    priors: list[_Proposal] = []  # cand_prior: the geodesic prior regions GrabCut started from
    for i, (x0, y0, x1, y1) in enumerate(wins):
        if (
            P.cand_agree > 0
            and i == len(wins) - 1
            and len(out) >= 2
            and all(q.truncated == 0 and not q.collapsed for q in out[-2:])
            and _mask_iou(out[-1].mask, out[-2].mask) >= P.cand_agree
        ):
            break
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        pts = [(x - x0, y - y0, p) for x, y, p in points]
        whole = i == len(wins) - 1
        side = (P.cand_full_side or P.work_side) if whole else P.cand_side
        Pw = replace(P, work_side=side, gc_iters=(P.cand_full_iters or P.gc_iters) if whole else P.cand_iters)
        if P.cand_prior or P.cand_window_alts:
            st = _segment_roi(crop, pts, None, Pw, want_state=True)
            m = _to_full(crop, st.mask, Pw)
            if st.d_fg is not None and st.d_bg is not None:
                sh, sw = st.mask.shape
                prior = _keep_components(
                    st.d_fg < P.fg_ratio * st.d_bg, [(x * sw / (x1 - x0), y * sh / (y1 - y0)) for x, y, p in pts if p], sw, sh
                )
                fp = np.zeros((H0, W0), bool)
                fp[y0:y1, x0:x1] = _to_full(crop, prior, Pw)
                priors.append(meas.measure(fp, (x0, y0, x1, y1), i))
        else:
            m = _segment_roi(crop, pts, None, Pw)
        full = np.zeros((H0, W0), bool)
        full[y0:y1, x0:x1] = m
        prop = meas.measure(full, (x0, y0, x1, y1), i)
        # GrabCut collapsed onto the pins' hard seeds (a window inside a larger object
        # whose colour is all "background" there): not an object proposal
        ch, cw = y1 - y0, x1 - x0
        s = min(1.0, side / max(ch, cw))
        r_seed = max(1.5, P.seed_radius * min(ch, cw) * s) / s
        prop.collapsed = bool(np.count_nonzero(full) <= 4.0 * np.pi * r_seed * r_seed * max(1, len(pos)))
        out.append(prop)
    # stability across scale (as MSER's): does the mask persist when the window grows? The
    # IoU with the next larger window's mask; the whole image's with the next smaller one
    for i, a in enumerate(out):
        j = i + 1 if i + 1 < len(out) else i - 1
        a.stability = _mask_iou(a.mask, out[j].mask) if 0 <= j != i else 0.0
    for i, a in enumerate(priors):
        j = i + 1 if i + 1 < len(priors) else i - 1
        a.stability = _mask_iou(a.mask, priors[j].mask) if 0 <= j != i else 0.0
        a.family = 1
    return out + priors


def rank_proposals(props: list[_Proposal], k: int, max_iou: float = 0.9, per_window: bool = False) -> list[_Proposal]:
    """Best first, at most ``k``, no two with IoU above ``max_iou`` (the better one stays).

    Every measure is in [0, 1] and they count equally: colour separation, boundary contrast
    c / (1 + c), stability across scale, minus twice the truncation (a cut outline
    disqualifies).  The first candidate also pays the background probability of its
    boundary connectivity (a flood into the table or the street holds the photo's frame);
    the alternatives are ranked without it, so that a large object cut by the frame is
    still offered.

    ``per_window``: the first is a GrabCut mask (family 0), and each other window offers one
    alternative, whichever of its proposals separates better from its ring. A window's
    GrabCut mask and its prior region are two readings of the same scale; offering both
    would spend the worker's three choices on one scale, and the score, made to compare
    scales, tells them apart less well than the colour separation does (row 79)."""
    for p in props:
        p.score = p.separation + p.contrast / (1.0 + p.contrast) + p.stability - 2.0 * p.truncated
        if p.collapsed or not p.mask.any():
            p.score = -10.0 - p.scale
    # a collapsed proposal is offered only when there is nothing else
    pool = [p for p in props if p.score > -10.0] or props
    firsts = ([p for p in pool if p.family == 0] or pool) if per_window else pool
    first = max(firsts, key=lambda q: (q.score - q.background, -q.scale, -q.family))
    first.score = first.score - first.background
    chosen: list[_Proposal] = [first]

    def offer(p: _Proposal) -> bool:
        if len(chosen) < k and all(p is not c and _mask_iou(p.mask, c.mask) <= max_iou for c in chosen):
            chosen.append(p)
            return True
        return False

    if per_window:
        groups = [
            sorted((p for p in pool if p.scale == scale), key=lambda q: (-q.separation, q.family))
            for scale in sorted({p.scale for p in pool} - {first.scale})
        ]
        for group in sorted(groups, key=lambda g: (-g[0].score, g[0].scale)):
            any(offer(p) for p in group)  # the window's better separated proposal, else its other one
    for p in sorted(pool, key=lambda q: (-q.score, q.scale, q.family)):
        offer(p)
    # scores must read best first: an alternative never outranks the first
    for i in range(1, len(chosen)):
        chosen[i].score = min(chosen[i].score, chosen[i - 1].score - 1e-6)
    return chosen


def _geodesic_fields(small: np.ndarray, pts: Sequence[Point], P: Params) -> dict[str, Any]:
    """``lab``, ``d_fg`` (from the positive pins) and ``d_bg`` (from the negative pins and
    the border) at the working resolution, as ``_segment_roi`` computes them."""
    h, w = small.shape[:2]
    r_seed = max(1.5, P.seed_radius * min(h, w))
    pos = [(x, y) for x, y, p in pts if p]
    neg = [(x, y) for x, y, p in pts if not p]
    lab = _lab(small, P.smooth_sigma)
    bg_seed = _disc_mask((h, w), neg, r_seed) if neg else np.zeros((h, w), bool)
    fg_seed = _disc_mask((h, w), pos, r_seed) & ~bg_seed
    border = np.full((h, w), np.inf, np.float32)
    border[0, :] = border[-1, :] = 0.0
    border[:, 0] = border[:, -1] = 0.0
    d_fg, d_bg = geodesic_distances(lab, [fg_seed, bg_seed], P.geo_eps, P.geo_passes, [None, border], tex=P.geo_tex)
    return {"lab": lab, "d_fg": d_fg, "d_bg": d_bg}


def _proposal_state(image: np.ndarray, small: np.ndarray, pts: tuple[Point, ...], P: Params) -> _ClickState:
    """The state of the clicks up to the first positive pin: the ranked candidates of the
    pin (at the image's size) and the best one at the working resolution."""
    import cv2

    H0, W0 = image.shape[:2]
    h, w = small.shape[:2]
    sx, sy = w / W0, h / H0
    full_pts = [(x / sx, y / sy, p) for x, y, p in pts]
    props = rank_proposals(pin_proposals(image, full_pts, P), len(P.cand_scales) + 1, P.cand_max_iou, P.cand_window_alts)
    best = props[0].mask
    m = best if best.shape == (h, w) else cv2.resize(best.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    return _ClickState(m, None, None, None, None, props)


def candidates_classical(
    image: np.ndarray,
    points: list[Point],
    box: Box | None,
    k: int,
    P: Params,
    cache: SharedLRU[object, _ClickState] | None = None,
    base: int = 0,
) -> list[tuple[np.ndarray, float]]:
    """Up to ``k`` masks, best first, no two with IoU above ``P.cand_max_iou``.

    One positive pin (after any negatives): the ranked proposals of the windows around it.
    Later clicks: the refined mask (what ``segment`` gives) first, then the proposals of
    the windows around all positive pins.  A box: the box result alone."""
    pos_any = any(p for _, _, p in points)
    if box is None and pos_any and P.cand_scales and P.incremental and P.coarse_side <= 0:
        n_first = next(i for i, (_, _, p) in enumerate(points) if p) + 1
        if len(points) == n_first:  # the first positive pin: its ranked proposals
            st = _cached_first(image, _resize_to(image, P.work_side), points, P, cache)
            assert st.proposals is not None
            return [(p.mask, p.score) for p in st.proposals[:k]]
    first = segment_classical(image, points, box, P, cache, base)
    if box is not None or not pos_any or not P.cand_scales or k <= 1:
        return [(first, 1.0)]
    out: list[tuple[np.ndarray, float]] = [(first, float("inf"))]
    for p in rank_proposals(pin_proposals(image, points, P), k + 1, P.cand_max_iou, P.cand_window_alts):
        if len(out) == k:
            break
        if all(_mask_iou(p.mask, m) <= P.cand_max_iou for m, _ in out):
            out.append((p.mask, p.score))
    top = max((sc for _, sc in out[1:]), default=0.0)
    return [(first, top + 1.0), *out[1:]]


def _scaled(points: list[Point], image: np.ndarray, small: np.ndarray) -> tuple[Point, ...]:
    """The clicks in ``small``'s pixels. They are part of the state cache's key, so the pin's
    candidates and a later tap's refinement must scale them with the same arithmetic: ``x * w
    / W0`` and ``x * (w / W0)`` can differ in the last bit, and the refinement then missed the
    candidates' state and segmented all the pin's windows again."""
    H0, W0 = image.shape[:2]
    h, w = small.shape[:2]
    sx, sy = w / W0, h / H0
    return tuple((float(x) * sx, float(y) * sy, bool(p)) for x, y, p in points)


def _state_key(image: np.ndarray, small: np.ndarray) -> bytes:
    """The photo's part of the state cache's key: its working-resolution pixels and both sizes."""
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(small).data, digest_size=16).digest() + repr((small.shape, image.shape)).encode()


def _cached_first(
    image: np.ndarray, small: np.ndarray, points: list[Point], P: Params, cache: SharedLRU[object, _ClickState] | None
) -> _ClickState:
    return _click_state(small, _state_key(image, small), _scaled(points, image, small), P, cache, image)


def _rescale_start(small: np.ndarray, prev: _ClickState, click: Point, base: int = 0) -> _ClickState:
    """The second click after a pin's candidates. With ``base`` (the worker picked that
    candidate, then added a point) the refinement starts from it. Otherwise a positive click
    outside the first candidate says the object is larger than that candidate, so the
    refinement starts from the best-ranked candidate that holds the click (if any), else
    from the first."""
    import cv2

    i = _start_index(small, prev, click, base)
    if not i:
        return prev
    assert prev.proposals is not None
    h, w = small.shape[:2]
    m = prev.proposals[i].mask
    m = m if m.shape == (h, w) else cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    return replace(prev, mask=m)


def _start_index(small: np.ndarray, prev: _ClickState, click: Point, base: int) -> int:
    """Which of the pin's candidates the second click refines (see :func:`_rescale_start`)."""
    if not prev.proposals:
        return 0
    if 0 < base < len(prev.proposals):
        return base
    h, w = small.shape[:2]
    x, y, positive = click
    cx, cy = min(w - 1, max(0, int(round(x)))), min(h - 1, max(0, int(round(y))))
    if not positive or prev.mask[cy, cx]:
        return 0
    H0, W0 = prev.proposals[0].mask.shape
    fx, fy = min(W0 - 1, int(x * W0 / w)), min(H0 - 1, int(y * H0 / h))
    return next((i for i, p in enumerate(prev.proposals) if i and p.mask[fy, fx]), 0)


def _zoom_region(mask: np.ndarray, pts: Sequence[Point], expand: float) -> tuple[int, int, int, int]:
    """The box around ``mask`` and the clicks (image pixels), grown ``expand`` times about
    its centre (RITM's Zoom-In) and clipped to the image."""
    H0, W0 = mask.shape
    ys, xs = np.nonzero(mask)
    px = [x for x, _, _ in pts]
    py = [y for _, y, _ in pts]
    x0, x1 = min(px), max(px) + 1
    y0, y1 = min(py), max(py) + 1
    if xs.size:
        x0, x1 = min(x0, int(xs.min())), max(x1, int(xs.max()) + 1)
        y0, y1 = min(y0, int(ys.min())), max(y1, int(ys.max()) + 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0, 0.05 * min(H0, W0)) * expand / 2
    return (max(0, int(cx - half)), max(0, int(cy - half)), min(W0, int(np.ceil(cx + half))), min(H0, int(np.ceil(cy + half))))


def _zoom_start(
    small: np.ndarray, prev: _ClickState, pts: tuple[Point, ...], P: Params, image: np.ndarray | None, base: int
) -> np.ndarray | None:
    """The image-size mask a zoomed refinement starts from, or None for the whole-image one.

    A chain that zoomed once keeps zooming; one that starts from a pin's candidates zooms when
    the box around the started candidate and the clicks is at most ``zoom`` of the image's long
    side: the whole image's working resolution would give that object few pixels."""
    if P.zoom <= 0 or image is None:
        return None
    if prev.full is not None:
        return prev.full
    if prev.proposals is None:
        return None
    m = prev.proposals[_start_index(small, prev, pts[-1], base)].mask
    if P.zoom >= 1.0:  # the clipped box never spans more than the image
        return m
    x0, y0, x1, y1 = _zoom_region(m, _image_px(pts, small, image), P.zoom_expand)
    return m if max(x1 - x0, y1 - y0) <= P.zoom * max(image.shape[:2]) else None


def _image_px(pts: Sequence[Point], small: np.ndarray, image: np.ndarray) -> list[Point]:
    """Clicks in ``small``'s pixels -> in ``image``'s."""
    H0, W0 = image.shape[:2]
    h, w = small.shape[:2]
    return [(x * W0 / w, y * H0 / h, p) for x, y, p in pts]


def _zoom_click(small: np.ndarray, prev_full: np.ndarray, pts: tuple[Point, ...], P: Params, image: np.ndarray) -> _ClickState:
    """One more click, refined on a crop around the mask and the clicks at the working
    resolution (RITM's Zoom-In): the same relabelling and GrabCut as :func:`_refine_click`,
    with the crop's border as the background's border."""
    import cv2

    H0, W0 = image.shape[:2]
    full_pts = _image_px(pts, small, image)
    x0, y0, x1, y1 = _zoom_region(prev_full, full_pts, P.zoom_expand)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    zs = _resize_to(crop, P.work_side, up=True)
    zh, zw = zs.shape[:2]
    fx, fy = zw / (x1 - x0), zh / (y1 - y0)
    zpts = tuple((min(zw - 1.0, max(0.0, (x - x0) * fx)), min(zh - 1.0, max(0.0, (y - y0) * fy)), p) for x, y, p in full_pts)
    zmask = cv2.resize(prev_full[y0:y1, x0:x1].astype(np.float32), (zw, zh), interpolation=cv2.INTER_AREA) >= 0.5
    st = _refine_click(zs, _ClickState(zmask, None, **_geodesic_fields(zs, zpts[:-1], P)), zpts, P)
    out = np.zeros((H0, W0), bool)
    out[y0:y1, x0:x1] = _to_full(crop, st.mask, P)
    # only ``full`` carries over: the next click crops afresh around it
    return _ClickState(st.mask, None, None, None, None, full=out)
