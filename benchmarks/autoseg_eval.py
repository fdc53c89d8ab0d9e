#!/usr/bin/env python
"""Quality and speed of ``bot.autoseg.segment`` on a set of images with true masks.

    python benchmarks/autoseg_eval.py --data ../shared/autoseg-dev/grabcut

Reads ``DIR/images/*`` and ``DIR/masks/<stem>.png`` (255 object, 0 background,
128 ignored).  Each image is first downscaled so that its long side is at most
``--phone-size`` (what the bot does with a Telegram photo); IoU is computed at that
size, ignoring the 128 pixels (the true mask is resized with nearest neighbour).

Click protocol (RITM, Sofiiuk et al. 2021): the first click is the object pixel
farthest from the object's boundary; each next click is the pixel deepest inside the
larger error region (missed object -> positive click, false object -> negative
click), distances measured with the image border counted as boundary.

``--data`` may be given several times (one set each); the figures are per set, never
pooled.  Prints one progress line per image, one JSON line per set, then a final
single-line JSON object keyed by set name (the directory's name) with, per set,
``miou_1`` (``segment`` of one pin), ``best3_miou_1`` (the best of the first three
``segment_candidates`` of that pin: what a worker who picks gets), ``miou_1_lt5`` and
``miou_1_by_size`` (by the object's share of the photo: < 2 %, 2-5 %, 5-10 %, 10-20 %,
> 20 %), ``noc85, noc90, failures, grid_miou_1, box_miou``, and the time of a cold
one-pin ``segment`` (the grid pins: ``segment_median_ms``, CPU: ``segment_median_cpu_ms``)
and of a cold one-pin ``segment_candidates(k=3)`` (``candidates_median_ms`` ...), plus
extras.  A cold call starts with the back end's per-photo cache cleared
(``clear_cache()``, if it has one); ``segment`` of the first pin right after its
candidates is a warm call (as in the bot: candidates, then the worker keeps one).  Timing is per ``segment()`` call, single-threaded (cv2.setNumThreads(1)), in
the order the bot makes them: the clicks on one image come one after another, so a back
end that caches per-photo work across Add-a-point taps (the classical one does) gets its
cache hits here as it would in one bot process.  ``median_cpu_ms_box`` / ``_first`` /
``_later`` split the CPU time by kind of call (box, one pin, later clicks).

Exploring: ``--every 4`` (every fourth image: a fixed subset), ``--stems a,b,c`` or
``--limit N`` for subsets, ``--no-box`` / ``--no-grid`` / ``--no-noc`` to skip parts, ``--box-only`` for box mode
alone (with the error split into missed object / taken background per image), and
``--box-margin 0`` for tight boxes (a detector's or a careful annotator's box).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def load_pair(img_path: Path, mask_path: Path, phone_size: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {img_path}")
    gt = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if gt is None:
        raise ValueError(f"cannot read {mask_path}")
    if gt.shape != bgr.shape[:2]:
        gt = cv2.resize(gt, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    h, w = bgr.shape[:2]
    scale = min(1.0, phone_size / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        gt = cv2.resize(gt, size, interpolation=cv2.INTER_NEAREST)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb, gt


def _deepest(region: np.ndarray) -> tuple[float, int, int]:
    """(distance, x, y) of the pixel of ``region`` farthest from its boundary/image border."""
    import cv2

    padded = np.pad(region.astype(np.uint8), 1)
    dt = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    idx = int(np.argmax(dt))
    y, x = divmod(idx, region.shape[1])
    return float(dt[y, x]), x, y


def iou(pred: np.ndarray, obj: np.ndarray, valid: np.ndarray) -> float:
    p = pred & valid
    g = obj & valid
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


SIZE_BUCKETS = ((0.0, 0.02, "lt2"), (0.02, 0.05, "2to5"), (0.05, 0.10, "5to10"), (0.10, 0.20, "10to20"), (0.20, 1.01, "gt20"))


def size_bucket(share: float) -> str:
    """Name of the object-area bucket (share of the photo) of the issue-16 report."""
    for lo, hi, name in SIZE_BUCKETS:
        if lo <= share < hi:
            return name
    return SIZE_BUCKETS[-1][2]


def _stats(v: list[float]) -> tuple[float | None, float | None]:
    if not v:
        return None, None
    return round(float(np.median(v)), 1), round(float(np.percentile(v, 95)), 1)


def _fresh(seg: object) -> None:
    """Forget per-photo caches: a cold call (first pin, grid pin, box) is timed cold."""
    clear = getattr(seg, "clear_cache", None)
    if callable(clear):
        clear()


def evaluate_set(data: Path, args: argparse.Namespace) -> dict:
    """All figures of one set (one directory with images/ and masks/)."""
    from bot import autoseg
    from bot.autoseg.overlay import cell_center, cell_of

    img_dir = data / "images"
    mask_dir = data / "masks"
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if args.stems:
        want = {t.strip() for t in args.stems.split(",") if t.strip()}
        files = [p for p in files if p.stem in want]
    if args.every > 1:
        files = files[:: args.every]
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise SystemExit(f"no images in {img_dir}")

    times: list[float] = []
    cpu_times: list[float] = []  # CPU time of the call: robust when the machine is shared
    kind_cpu: dict[str, list[float]] = {"box": [], "first": [], "later": [], "warm": []}
    kind_wall: dict[str, list[float]] = {"box": [], "first": [], "later": [], "warm": []}
    cand_ms: list[float] = []  # cold one-pin segment_candidates(k=3)
    cand_cpu: list[float] = []
    n_cands: list[int] = []

    def run(img: np.ndarray, pts: list, box=None, cold: bool = True) -> np.ndarray:
        if cold and (box is not None or len(pts) == 1):
            _fresh(autoseg.get_segmenter())
        c0 = time.process_time()
        t0 = time.perf_counter()
        m = autoseg.segment(img, pts, box=box)
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu_times.append((time.process_time() - c0) * 1000.0)
        kind = "box" if box is not None else ("first" if cold else "warm") if len(pts) == 1 else "later"
        kind_cpu[kind].append(cpu_times[-1])
        kind_wall[kind].append(times[-1])
        return m

    def run_candidates(img: np.ndarray, pts: list) -> list[np.ndarray]:
        _fresh(autoseg.get_segmenter())
        c0 = time.process_time()
        t0 = time.perf_counter()
        cands = autoseg.segment_candidates(img, pts, k=3)
        cand_ms.append((time.perf_counter() - t0) * 1000.0)
        cand_cpu.append((time.process_time() - c0) * 1000.0)
        n_cands.append(len(cands))
        return [c.mask for c in cands]

    ious1, best3, grid1, boxi, noc85, noc90 = [], [], [], [], [], []
    by_size: dict[str, list[float]] = {name: [] for _, _, name in SIZE_BUCKETS}
    best3_by_size: dict[str, list[float]] = {name: [] for _, _, name in SIZE_BUCKETS}
    too_big = 0  # first-pin masks more than twice the object's area
    failures: list[str] = []
    t_start = time.perf_counter()
    for path in files:
        mpath = mask_dir / (path.stem + ".png")
        if not mpath.exists():
            print(f"skip {path.name}: no mask", file=sys.stderr)
            continue
        img, gt = load_pair(path, mpath, args.phone_size)
        h, w = gt.shape
        obj = gt == 255
        valid = gt != 128
        if not obj.any():
            print(f"skip {path.name}: empty mask", file=sys.stderr)
            continue

        # Box mode: the object's bounding box with a 5 % margin on each side (--box-margin).
        ys, xs = np.nonzero(obj)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        mx, my = args.box_margin * (x1 - x0), args.box_margin * (y1 - y0)
        box = (max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my))
        if not args.no_box:
            bm = run(img, [], box)
            boxi.append(iou(bm, obj, valid))
            # where the box error is: object missed (fn) or background taken (fp), % of the object
            n_obj = max(1, np.count_nonzero(obj & valid))
            box_fn = 100.0 * np.count_nonzero(obj & ~bm & valid) / n_obj
            box_fp = 100.0 * np.count_nonzero(~obj & bm & valid) / n_obj
            if args.box_only:
                if not args.quiet:
                    print(f"{path.stem:>12s} box={boxi[-1]:.3f} fn={box_fn:.1f}% fp={box_fp:.1f}%", flush=True)
                continue

        # Clicks.
        _, cx, cy = _deepest(obj)
        label = cell_of(cx, cy, w, h, 4, 4)
        gx, gy = cell_center(label, w, h, 4, 4)
        if not args.no_grid:
            grid1.append(iou(run(img, [(gx, gy, True)]), obj, valid))

        pts = [(float(cx), float(cy), True)]
        cands = run_candidates(img, pts)
        cand_ious = [iou(m, obj, valid) for m in cands]
        # the same pin again: warm (the bot makes the candidates, then keeps one; a back end
        # may answer from its per-photo cache). Cold one-pin segment() time: the grid pins.
        pred = run(img, pts, cold=False)
        ious = [iou(pred, obj, valid)]
        share = float(np.count_nonzero(obj)) / obj.size
        bucket = size_bucket(share)
        by_size[bucket].append(ious[0])
        best3_by_size[bucket].append(max(cand_ious[:3]))
        best3.append(max(cand_ious[:3]))
        if np.count_nonzero(pred) > 2 * np.count_nonzero(obj):
            too_big += 1
        n = 1
        while not args.no_noc and ious[-1] < 0.90 and n < args.max_clicks:
            fn = obj & ~pred & valid
            fp = ~obj & pred & valid
            dfn, xn, yn = _deepest(fn)
            dfp, xp, yp = _deepest(fp)
            if dfn <= 0 and dfp <= 0:
                break
            if dfn > dfp:
                pts.append((float(xn), float(yn), True))
            else:
                pts.append((float(xp), float(yp), False))
            pred = run(img, pts)
            ious.append(iou(pred, obj, valid))
            n += 1
        ious1.append(ious[0])
        arr = np.asarray(ious)

        def noc(thr: float) -> int:
            hit = np.flatnonzero(arr >= thr)  # noqa: B023 - called in this iteration only
            return int(hit[0]) + 1 if hit.size else args.max_clicks

        if not args.no_noc:
            noc85.append(noc(0.85))
            noc90.append(noc(0.90))
            if not (arr >= 0.90).any():
                failures.append(path.stem)
        if not args.quiet:
            cand_txt = ",".join(f"{v:.2f}" for v in cand_ious)
            print(
                f"{path.stem:>12s} share={100 * share:5.1f}% iou1={ious[0]:.3f} cands=[{cand_txt}] "
                f"grid1={grid1[-1] if grid1 else float('nan'):.3f} box={boxi[-1] if boxi else float('nan'):.3f} "
                f"clicks={len(ious)} last={ious[-1]:.3f}",
                flush=True,
            )

    def mean(v: list[float]) -> float | None:
        return round(float(np.mean(v)), 4) if v else None

    if args.box_only:
        return {
            "box_miou": mean(boxi),
            "box_margin": args.box_margin,
            "median_cpu_ms_box": _stats(cpu_times)[0],
            "p95_cpu_ms_box": _stats(cpu_times)[1],
            "n_images": len(boxi),
        }
    small = [v for name in ("lt2", "2to5") for v in by_size[name]]
    t = np.asarray(times)
    return {
        "miou_1": mean(ious1),
        "best3_miou_1": mean(best3),
        "miou_1_lt5": mean(small),
        "noc85": round(float(np.mean(noc85)), 3) if noc85 else None,
        "noc90": round(float(np.mean(noc90)), 3) if noc90 else None,
        "failures": len(failures) if noc90 else None,
        "grid_miou_1": mean(grid1),
        "box_miou": mean(boxi),
        "miou_1_by_size": {name: mean(v) for name, v in by_size.items()},
        "best3_by_size": {name: mean(v) for name, v in best3_by_size.items()},
        "n_by_size": {name: len(v) for name, v in by_size.items()},
        "masks_over_2x": too_big,
        # cold one-pin calls: segment() (the grid pins) and segment_candidates(k=3), wall and CPU
        "segment_median_ms": _stats(kind_wall["first"])[0],
        "segment_p95_ms": _stats(kind_wall["first"])[1],
        "segment_median_cpu_ms": _stats(kind_cpu["first"])[0],
        "segment_p95_cpu_ms": _stats(kind_cpu["first"])[1],
        "candidates_median_ms": _stats(cand_ms)[0],
        "candidates_p95_ms": _stats(cand_ms)[1],
        "candidates_median_cpu_ms": _stats(cand_cpu)[0],
        "candidates_p95_cpu_ms": _stats(cand_cpu)[1],
        "candidates_mean_n": round(float(np.mean(n_cands)), 2) if n_cands else None,
        # every segment() call (box, grid pin, first pin, later clicks), as before issue 16
        "median_ms": round(float(np.median(t)), 1) if t.size else None,
        "p95_ms": round(float(np.percentile(t, 95)), 1) if t.size else None,
        "median_cpu_ms": _stats(cpu_times)[0],
        "p95_cpu_ms": _stats(cpu_times)[1],
        **{f"median_cpu_ms_{k}": _stats(v)[0] for k, v in kind_cpu.items() if v},
        "n_images": len(ious1),
        "n_calls": int(t.size),
        "failed_images": failures,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, action="append", help="dir with images/ and masks/ (repeat for several sets)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (sorted)")
    ap.add_argument("--every", type=int, default=1, help="only every N-th image (sorted; a fixed subset while exploring)")
    ap.add_argument("--stems", default=None, help="comma-separated image stems (subset runs while exploring)")
    ap.add_argument(
        "--box-margin", type=float, default=0.05, help="box mode: margin around the true box, fraction of its size (0 = tight box)"
    )
    ap.add_argument("--box-only", action="store_true", help="box mode only (no pins, no click loop)")
    ap.add_argument("--no-box", action="store_true", help="skip box mode (exploring pins)")
    ap.add_argument("--no-grid", action="store_true", help="skip the grid pin (exploring)")
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--phone-size", type=int, default=1280)
    ap.add_argument("--backend", default=None, help="AUTOSEG_BACKEND spec (default: env / classical)")
    ap.add_argument("--params", default=None, help="JSON kwargs for ClassicalSegmenter (experiments)")
    ap.add_argument("--no-noc", action="store_true", help="skip the click loop (miou_1 only)")
    ap.add_argument("--quiet", action="store_true", help="no per-image lines")
    args = ap.parse_args(argv)

    import cv2

    cv2.setNumThreads(1)
    from bot import autoseg

    if args.params:
        from bot.autoseg.classical import ClassicalSegmenter

        autoseg.set_segmenter(ClassicalSegmenter(**json.loads(args.params)))
    elif args.backend:
        autoseg.set_segmenter(autoseg.load_backend(args.backend))

    results: dict[str, dict] = {}
    for data in args.data:
        name = data.resolve().name
        if name in results:
            name = str(data)
        res = evaluate_set(data, args)
        print(json.dumps({name: res}), flush=True)
        results[name] = res
    results["_run"] = {
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cpu": platform.processor() or platform.machine(),
        "threads": 1,
        "every": args.every,
        "phone_size": args.phone_size,
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
