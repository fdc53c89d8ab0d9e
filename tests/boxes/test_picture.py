"""The confirm-box picture: box clear, context dimmed, a zoomed inset exactly when the box is small."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bot.autoseg.box_overlay import BOX_RGB, INSET_BORDER_RGB, needs_inset, render_box


def _photo(w: int = 640, h: int = 480) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(60, 160, size=(h, w, 3), dtype=np.uint8)


def _near(a: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.abs(a.astype(np.int16) - np.array(rgb)).sum(axis=-1) < tol


def test_large_box_is_drawn_and_the_rest_dimmed_without_inset() -> None:
    photo = _photo()
    out = np.asarray(render_box(photo, (100, 100, 200, 150), [(400, 300, 80, 80)]))
    assert out.shape == photo.shape
    assert _near(out[175, 98:106], BOX_RGB).any()  # the left edge
    inside, outside = (slice(120, 230), slice(120, 280)), (slice(10, 80), slice(350, 600))
    assert abs(out[inside].mean() - photo[inside].mean()) < 2  # the box's content untouched
    assert out[outside].mean() < photo[outside].mean() * 0.8  # the rest dimmed
    assert not needs_inset((100, 100, 200, 150), (640, 480))
    assert not _near(out, INSET_BORDER_RGB, 10).sum() > 2000  # no white inset frame


def test_small_box_gets_a_close_up_in_the_far_corner() -> None:
    photo = _photo()
    small = (560.0, 400.0, 14.0, 12.0)  # bottom right: the inset goes top left
    assert needs_inset(small, (640, 480))
    out = np.asarray(render_box(photo, small, crop=lambda r: Image.new("RGB", (int(r[2]), int(r[3])), (0, 200, 0))))
    top_left = out[:200, :200]
    assert _near(top_left, (0, 200, 0)).mean() > 0.5  # the close-up came from the sharper source
    assert _near(top_left, BOX_RGB).any()  # with the box drawn in it, zoomed
    assert _near(out[:12, :12], INSET_BORDER_RGB, 10).any()  # framed in white
    assert not _near(out[300:, 300:540], (0, 200, 0)).any()  # and nowhere near the box
