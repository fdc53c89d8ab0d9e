"""The fifth round's speed-ups of the classical back end change no value (docs/autoseg.md,
rows 61-62): the stacked geodesic sweeps equal one field at a time, and the candidate
measures computed on the mask's box equal the straightforward whole-photo formulas."""

from __future__ import annotations

import numpy as np
import pytest

from bot.autoseg.classical import _hist, _Measures, _outline, geodesic_distance, geodesic_distances


def _lab(shape: tuple[int, int], seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((*shape, 3)) * 255).astype(np.uint8), (0, 0), 2)
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


@pytest.mark.parametrize("shape", [(60, 80), (81, 47)])
def test_stacked_geodesic_fields_equal_one_at_a_time(shape: tuple[int, int]) -> None:
    lab = _lab(shape, 3)
    h, w = shape
    fg = np.zeros(shape, bool)
    fg[h // 2 - 2 : h // 2 + 2, w // 3 : w // 3 + 3] = True
    border = np.full(shape, np.inf, np.float32)
    border[0, :] = border[-1, :] = 0.0
    border[:, 0] = border[:, -1] = 0.0
    neg = np.zeros(shape, bool)
    neg[5, 5] = True
    d_fg, d_bg = geodesic_distances(lab, [fg, neg], 1.0, 2, [None, border])
    assert np.array_equal(d_fg, geodesic_distance(lab, fg, 1.0, 2))
    assert np.array_equal(d_bg, geodesic_distance(lab, neg, 1.0, 2, init=border))
    assert d_fg.flags.c_contiguous and d_bg.flags.c_contiguous


def _reference_measures(meas: _Measures, m: np.ndarray, win: tuple[int, int, int, int]) -> tuple[float, ...]:
    """The whole-photo formulas of the measures (as before the fifth round)."""
    import cv2

    H, W = m.shape
    area = int(np.count_nonzero(m))
    line = _outline(m)
    n_line = max(1, int(np.count_nonzero(line)))
    x0, y0, x1, y1 = win
    cut = np.zeros_like(m)
    if x0 > 0:
        cut[:, x0] = True
    if y0 > 0:
        cut[y0, :] = True
    if x1 < W:
        cut[:, x1 - 1] = True
    if y1 < H:
        cut[y1 - 1, :] = True
    truncated = float(np.count_nonzero(line & cut)) / n_line
    r = max(2.0, 0.25 * float(np.sqrt(area)))
    grown = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 3) <= r
    ring = grown & ~m
    separation = 1.0 - float(np.sqrt(_hist(meas.lab_q, m, meas.bins) * _hist(meas.lab_q, ring, meas.bins)).sum()) if ring.any() else 0.0
    around = float(meas.grad[grown].mean()) + 1e-3
    contrast = float(meas.grad[line].mean()) / around if line.any() else 0.0
    return truncated, separation, contrast


def test_measures_on_the_masks_box_equal_the_whole_photo_formulas() -> None:
    import cv2

    rng = np.random.default_rng(5)
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([90 + 0.5 * xx, 60 + 0.6 * yy, 120 + 0 * xx], axis=2)
    blob = (xx - 70) ** 2 / 30**2 + (yy - 55) ** 2 / 20**2 <= 1
    img[blob] = (210, 80, 40)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    meas = _Measures(img)
    # the gradient and the colour bins are the straightforward formulas' values
    lab = cv2.cvtColor(cv2.GaussianBlur(img, (0, 0), 1.0), cv2.COLOR_RGB2Lab)
    q = (lab.astype(np.int32) * 8) // 256
    assert np.array_equal(meas.lab_q, (q[:, :, 0] * 8 + q[:, :, 1]) * 8 + q[:, :, 2])
    f = lab.astype(np.float32)
    gx, gy = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    assert np.array_equal(meas.grad, np.sqrt((gx * gx + gy * gy).sum(axis=2)))
    edge = np.zeros((h, w), bool)
    edge[:30, :50] = True  # touches the photo's frame
    masks = [blob, cv2.dilate(blob.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool), edge, np.ones((h, w), bool)]
    wins = [(0, 0, w, h), (30, 20, 110, 90), (45, 0, w, 70)]
    for m in masks:
        for win in wins:
            p = meas.measure(m, win, 0)
            assert (p.truncated, p.separation, p.contrast) == _reference_measures(meas, m, win)
