#!/usr/bin/env python
"""What one magic-pin tap costs the bot, stage by stage, on one core.

    python benchmarks/magic_pin_tap.py --count 12 --runs 3 --original-side 4000

Generated shape images (their true masks known) are enlarged to ``--original-side`` (a camera
photo), shrunk to the phone copy the bot segments (``--phone-side``), and each is put through
what a tap does in ``bot/handlers/masks.py``: segment up to three candidates from the centre of
the grid cell deepest in the object, upsample each to the original and COCO-RLE it, draw the
picture JPEG (one mask: the overlay; several: the numbered candidates). The plain grid JPEG
(made once per image and cached) is timed too. With ``--data DIR`` the images of
``DIR/images`` are used instead (no IoU then, the pin goes to the image centre). ``--backend``
times another segmenter (an ``AUTOSEG_BACKEND`` value).

Prints one progress line per image, then ONE JSON object on the last line: median wall ms per
stage and per tap, CPU ms per tap, the share of the tap spent segmenting, the median number of
candidates, and the mean IoU with the true mask of the first candidate (``mean_iou``) and of
the best candidate, the one a worker who picks keeps (``mean_best_iou``; synthetic images).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import autoseg
from bot.autoseg import rle as coco_rle
from bot.autoseg.overlay import cell_center, cell_of, draw_grid, render_candidates, render_overlay, to_jpeg
from bot.sample import generate, true_mask
from bot.tasks import magic_pin


def _best_cell(truth: np.ndarray) -> str:
    import cv2

    depth = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
    h, w = truth.shape
    return max(magic_pin.CELLS, key=lambda c: depth[int(cell_center(c, w, h)[1]), int(cell_center(c, w, h)[0])])


def _images(args: argparse.Namespace, workdir: Path) -> list[tuple[str, PILImage.Image, np.ndarray | None]]:
    if args.data:
        paths = sorted(p for p in (Path(args.data) / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        return [(p.name, PILImage.open(p).convert("RGB"), None) for p in paths[: args.count]]
    out = []
    for sample in generate(workdir, count=args.count, seed=args.seed):
        img = PILImage.open(sample.path).convert("RGB")
        scale = args.original_side / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        truth = magic_pin.upsample_mask(true_mask(sample), size)
        out.append((sample.external_id, img.resize(size, PILImage.Resampling.BICUBIC), truth))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=12, help="images")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per image (median taken)")
    ap.add_argument("--original-side", type=int, default=4000, help="long side of the synthetic originals")
    ap.add_argument("--phone-side", type=int, default=1280, help="long side of the phone copy (PHONE_LONG_SIDE)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=str, default=None, help="use DIR/images instead of generated shapes")
    ap.add_argument("--backend", type=str, default="classical", help="the segmenter (an AUTOSEG_BACKEND value)")
    args = ap.parse_args(argv)
    autoseg.configure(args.backend)

    import cv2

    cv2.setNumThreads(1)
    stages: dict[str, list[float]] = {k: [] for k in ("segment", "to_original", "overlay_jpeg", "grid_jpeg", "tap")}
    cpu_tap: list[float] = []
    ious: list[float] = []
    best_ious: list[float] = []
    counts: list[int] = []
    with tempfile.TemporaryDirectory(prefix="crowdpin-pinbench-") as tmp:
        images = _images(args, Path(tmp))
        for n, (name, original, truth) in enumerate(images, 1):
            phone = original.copy()
            phone.thumbnail((args.phone_side, args.phone_side), PILImage.Resampling.LANCZOS)
            rgb = np.asarray(phone)
            h, w = rgb.shape[:2]
            display = original.size
            cell = _best_cell(magic_pin.upsample_mask(truth, (w, h))) if truth is not None else cell_of(w / 2, h / 2, w, h)
            points = [(cell, True)]
            per: dict[str, list[float]] = {k: [] for k in stages}
            for _ in range(args.runs):
                cpu0, t0 = time.process_time(), time.perf_counter()
                masks = magic_pin.candidates_phone(rgb, points)
                t1 = time.perf_counter()
                rles = [magic_pin.to_original(m, display)[0] for m in masks]
                t2 = time.perf_counter()
                pins = magic_pin.cell_pixels(points, w, h)
                if len(masks) > 1:
                    picture = render_candidates(rgb, masks, pins, max_side=args.phone_side)
                else:
                    picture = render_overlay(rgb, masks[0], pins, max_side=args.phone_side)
                jpeg = to_jpeg(picture)
                t3 = time.perf_counter()
                cpu1 = time.process_time()
                to_jpeg(draw_grid(rgb, magic_pin.GRID_ROWS, magic_pin.GRID_COLS, max_side=args.phone_side))
                t4 = time.perf_counter()
                per["segment"].append(t1 - t0)
                per["to_original"].append(t2 - t1)
                per["overlay_jpeg"].append(t3 - t2)
                per["grid_jpeg"].append(t4 - t3)
                per["tap"].append(t3 - t0)
                cpu_tap.append(cpu1 - cpu0)
            for key, values in per.items():
                stages[key].append(statistics.median(values))
            counts.append(len(rles))
            iou = None
            if truth is not None:
                each = [coco_rle.mask_iou(coco_rle.decode(rle), truth) for rle in rles]
                iou = each[0]
                ious.append(iou)
                best_ious.append(max(each))
            print(
                f"[{n}/{len(images)}] {name} {display[0]}x{display[1]} cell {cell}: tap {statistics.median(per['tap']) * 1000:.0f} ms"
                + f", {len(rles)} candidate(s)"
                + (f", IoU {iou:.3f} (best {max(each):.3f})" if iou is not None else "")
                + f", overlay {len(jpeg) // 1024} KiB",
                flush=True,
            )
    ms = {f"{k}_median_ms": round(statistics.median(v) * 1000, 1) for k, v in stages.items()}
    result = {
        **ms,
        "tap_p95_ms": round(sorted(stages["tap"])[max(0, int(len(stages["tap"]) * 0.95) - 1)] * 1000, 1),
        "tap_cpu_median_ms": round(statistics.median(cpu_tap) * 1000, 1),
        "segment_share": round(statistics.median(stages["segment"]) / max(statistics.median(stages["tap"]), 1e-9), 3),
        "candidates_median": statistics.median(counts),
        "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
        "mean_best_iou": round(float(np.mean(best_ious)), 4) if best_ious else None,
        "backend": args.backend,
        "images": len(stages["tap"]),
        "runs": args.runs,
        "original_side": None if args.data else args.original_side,
        "phone_side": args.phone_side,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
