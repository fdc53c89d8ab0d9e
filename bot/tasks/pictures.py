"""Pictures of mask tasks for phones: the plain grid, confirm-mask overlays and magic-pin states.

Pixel work (segmentation, overlays, JPEG encoding) runs on this object's own small thread pool
so it never queues behind, or blocks, database work on the DB executor. One
:class:`MaskPictures` lives in the bot's run-time state (``bot.telegram.runtime.App``), so its
caches and its pool belong to one running bot, not to the module.

What is kept on disk: the plain grid picture of an image is the same for every worker, its JPEG
is written once under ``MEDIA_DIR/grid/``; a confirm-mask overlay is the same for all workers
of a task, its JPEG is written once under ``MEDIA_DIR/overlays/`` (named by image and mask
hash). Magic-pin overlays differ per tap and are made each time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import structlog
from PIL import Image as PILImage
from PIL import ImageOps

from bot.autoseg.box_overlay import Rect, render_box
from bot.autoseg.overlay import CANDIDATE_RGB, draw_grid, render_candidates, render_overlay, to_jpeg
from bot.cache import SharedLRU
from bot.tasks import magic_pin
from bot.tasks.magic_pin import ImageRef, Phase, PinMask, PinState, Step
from bot.tasks.service import TaskCard

log = structlog.get_logger("crowdpin.masks")

T = TypeVar("T")
CPU_THREADS = max(1, min(2, os.cpu_count() or 1))


def image_ref(card: TaskCard) -> ImageRef:
    return ImageRef(card.image_id, card.image_path, card.image_sha256, card.phone_path, card.width, card.height)


def mask_key(mask_json: str) -> str:
    """A short name of a mask's content (file names, file_id caches)."""
    return hashlib.sha1(mask_json.encode()).hexdigest()[:16]


def _rle_key(mask: dict[str, Any]) -> tuple[Any, ...]:
    counts = mask.get("counts")
    digest = hashlib.sha1(counts.encode() if isinstance(counts, str) else repr(counts).encode()).hexdigest()
    return (tuple(mask.get("size", ())), digest)


def _write_once(target: Path, make: Callable[[], bytes]) -> bytes:
    if target.exists():
        return target.read_bytes()
    data = make()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return data


class MaskPictures:
    """Makes the pictures of mask tasks; call its methods through :meth:`run` (the pixel pool)."""

    def __init__(self, media_dir: Path, phone_long_side: int = 1280, *, threads: int = CPU_THREADS) -> None:
        self.media_dir = media_dir
        self.long_side = phone_long_side
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._pixels: SharedLRU[str, tuple[np.ndarray, tuple[int, int]]] = SharedLRU(8)  # phone RGB, display size
        self._phone_masks: SharedLRU[tuple[Any, ...], np.ndarray] = SharedLRU(64)  # skips decoding big RLEs

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="crowdpin-masks")
            return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run pixel work off the event loop, on the pictures' pool (not the DB executor)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), functools.partial(fn, *args))

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    # ------------------------------------------------------------------ pixel work (pool threads)
    def load(self, ref: ImageRef) -> tuple[np.ndarray, tuple[int, int]]:
        hit = self._pixels.get(ref.sha256)
        if hit is None:
            rgb = magic_pin.load_phone_rgb(ref, self.media_dir, self.long_side)
            hit = (rgb, magic_pin.display_size(ref.path, ref.width, ref.height))
            self._pixels.put(ref.sha256, hit)
        return hit

    def grid_jpeg(self, ref: ImageRef) -> bytes:
        rows, cols = magic_pin.GRID_ROWS, magic_pin.GRID_COLS
        target = self.media_dir / "grid" / ref.sha256[:2] / f"{ref.sha256}-{rows}x{cols}.jpg"
        return _write_once(target, lambda: to_jpeg(draw_grid(self.load(ref)[0], rows, cols, max_side=self.long_side)))

    def _phone_mask(self, ref: ImageRef, candidate: PinMask, size: tuple[int, int]) -> np.ndarray:
        w, h = size
        mask = self._phone_masks.get((ref.sha256, *_rle_key(candidate.rle)))
        if mask is None or mask.shape != (h, w):
            mask = magic_pin.display_mask(candidate.rle, (w, h))
        return mask

    def pin_jpeg(self, ref: ImageRef, state: PinState) -> bytes:
        """The candidates with the pins; in the ADD phase the outline being fixed alone, with
        the grid drawn over it (the cell a worker taps refines that one, not the others).

        One candidate is drawn as the confirm overlay is (fill, contour); several are numbered
        in their own colours (:func:`bot.autoseg.overlay.render_candidates`).
        """
        rgb, _ = self.load(ref)
        h, w = rgb.shape[:2]
        points = magic_pin.cell_pixels(state.points, w, h)
        if len(state.candidates) > 1 and state.phase == Phase.ADD:
            i = state.fixing
            fixed = self._phone_mask(ref, state.candidates[i], (w, h))
            img = render_candidates(rgb, [fixed], points, max_side=self.long_side, colours=[CANDIDATE_RGB[i]], numbers=[i + 1])
            return to_jpeg(draw_grid(img, magic_pin.GRID_ROWS, magic_pin.GRID_COLS, max_side=self.long_side))
        masks = [self._phone_mask(ref, c, (w, h)) for c in state.candidates]
        if len(masks) > 1:
            img = render_candidates(rgb, masks, points, max_side=self.long_side)
        else:
            img = render_overlay(rgb, masks[0] if masks else None, points, max_side=self.long_side)
        if state.phase == Phase.ADD:
            img = draw_grid(img, magic_pin.GRID_ROWS, magic_pin.GRID_COLS, max_side=self.long_side)
        return to_jpeg(img)

    def confirm_jpeg(self, ref: ImageRef, mask_json: str) -> bytes:
        target = self.media_dir / "overlays" / ref.sha256[:2] / f"{ref.sha256}-{mask_key(mask_json)}.jpg"

        def make() -> bytes:
            rgb, _ = self.load(ref)
            h, w = rgb.shape[:2]
            mask = magic_pin.display_mask(mask_json, (w, h))
            return to_jpeg(render_overlay(rgb, mask, max_side=self.long_side))

        return _write_once(target, make)

    def box_jpeg(self, ref: ImageRef, box: Rect, others: list[Rect]) -> bytes:
        """A confirm-box picture (same for every worker of the task: written once, like overlays).

        Boxes are in original pixels (as the worker sees the image, EXIF-rotated); the inset of
        a small box is cut from the original, not the phone copy.
        """
        key = hashlib.sha1(json.dumps([box, others]).encode()).hexdigest()[:16]
        target = self.media_dir / "boxes" / ref.sha256[:2] / f"{ref.sha256}-{key}.jpg"

        def make() -> bytes:
            rgb, (dw, _dh) = self.load(ref)
            s = rgb.shape[1] / max(1, dw)

            def scaled(b: Rect) -> Rect:
                return (b[0] * s, b[1] * s, b[2] * s, b[3] * s)

            def crop(region: Rect) -> PILImage.Image:
                x, y, w, h = (v / s for v in region)
                with PILImage.open(ref.path) as original:
                    upright = ImageOps.exif_transpose(original) or original
                    return upright.convert("RGB").crop((round(x), round(y), round(x + w), round(y + h)))

            return to_jpeg(render_box(rgb, scaled(box), [scaled(o) for o in others], crop=crop))

        return _write_once(target, make)

    def auto_mask_json(self, ref: ImageRef, prelabel: str | None) -> str:
        rgb, display = self.load(ref)
        _, box = magic_pin.parse_prelabel(prelabel)
        return json.dumps(magic_pin.auto_mask(rgb, display, box), separators=(",", ":"))

    def segment_step(self, step: Step) -> None:
        """Fill the step's candidates from its points (phone-resolution segmentation, upsampled
        to the original: the state keeps exactly the masks a pick will answer with)."""
        assert step.image is not None and step.segment is not None
        started = time.perf_counter()
        rgb, display = self.load(step.image)
        candidates = []
        for phone in magic_pin.candidates_phone(rgb, step.segment, base=step.state.base):
            candidate = PinMask(*magic_pin.to_original(phone, display))
            self._phone_masks.put((step.image.sha256, *_rle_key(candidate.rle)), phone)
            candidates.append(candidate)
        step.state.candidates = candidates
        log.info(
            "masks.segmented",
            assignment_id=step.assignment_id,
            points=len(step.segment),
            candidates=len(candidates),
            areas=[c.area for c in candidates],
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
