"""COCO run-length encoding in pure numpy, plus small mask utilities.

The compressed form is byte-compatible with pycocotools (``maskUtils.encode``):
``{"size": [h, w], "counts": "<ascii string>"}``.  Runs are taken in column-major
(Fortran) order and start with a run of zeros (possibly of length 0).  The counts
string uses pycocotools' LEB128-like 5-bit scheme in which each count after the
third is stored as a difference from the count two places before it.

Polygons follow COCO: ``[[x0, y0, x1, y1, ...], ...]`` in pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "counts_to_string",
    "decode",
    "encode",
    "mask_area",
    "mask_bbox",
    "mask_iou",
    "polygons_to_mask",
    "rle_area",
    "string_to_counts",
]


def _runs(mask: np.ndarray) -> np.ndarray:
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    n = flat.size
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    runs = np.diff(bounds).astype(np.int64)
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs


def counts_to_string(counts: Sequence[int] | np.ndarray) -> str:
    """Compress uncompressed RLE counts to pycocotools' ASCII string."""
    cnts = [int(c) for c in counts]
    out = bytearray()
    for i, x in enumerate(cnts):
        if i > 2:  # sic: pycocotools uses i > 2, not i >= 2
            x -= cnts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, like C on a signed long
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def string_to_counts(s: str | bytes) -> list[int]:
    """Inverse of :func:`counts_to_string`."""
    data = s.encode("ascii") if isinstance(s, str) else bytes(s)
    cnts: list[int] = []
    p = 0
    n = len(data)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return cnts


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode a 2-D boolean mask as a COCO compressed RLE dict (counts is a ``str``)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    h, w = m.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(_runs(m != 0))}


def decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string/bytes or uncompressed list) to bool (H, W)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        cnts = np.asarray(string_to_counts(counts), dtype=np.int64)
    else:
        cnts = np.asarray(list(counts), dtype=np.int64)
    if cnts.size and cnts.min() < 0:
        raise ValueError("invalid RLE: negative run")
    total = int(cnts.sum())
    if total != h * w:
        raise ValueError(f"invalid RLE: runs cover {total} pixels, expected {h * w}")
    values = (np.arange(cnts.size) % 2).astype(bool)
    flat = np.repeat(values, cnts)
    return flat.reshape((w, h)).T.copy()


def rle_area(rle: dict[str, Any]) -> int:
    counts = rle["counts"]
    cnts = string_to_counts(counts) if isinstance(counts, (str, bytes)) else list(counts)
    return int(sum(cnts[1::2]))


def mask_area(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(x0, y0, x1, y1)`` with exclusive x1/y1, or ``None`` for an empty mask.

    (COCO's ``[x, y, w, h]`` is ``(x0, y0, x1 - x0, y1 - y0)``.)
    """
    m = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_iou(a: np.ndarray, b: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks; ``ignore`` pixels are left out.

    Two empty masks have IoU 1.0.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if ignore is not None:
        keep = ~np.asarray(ignore, dtype=bool)
        a = a & keep
        b = b & keep
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(a & b)) / float(union)


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int, supersample: int = 8) -> np.ndarray:
    """Rasterise COCO polygons (``[[x0, y0, x1, y1, ...], ...]``) to a bool mask.

    COCO pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``.  Each polygon is drawn with
    ``cv2.fillPoly`` on a ``supersample``-times finer grid (only over its bounding box)
    and a pixel is set when at least half of it is covered, which keeps the area
    honest (plain ``fillPoly`` includes every boundary pixel and inflates small
    shapes).  Polygons are OR-ed, as COCO means them.
    """
    import cv2

    H, W = int(height), int(width)
    out = np.zeros((H, W), dtype=bool)
    f = max(1, int(supersample))
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 3:
            continue
        x0 = max(0, int(np.floor(pts[:, 0].min())))
        y0 = max(0, int(np.floor(pts[:, 1].min())))
        x1 = min(W, int(np.ceil(pts[:, 0].max())) + 1)
        y1 = min(H, int(np.ceil(pts[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        fine = np.zeros(((y1 - y0) * f, (x1 - x0) * f), dtype=np.uint8)
        # fine pixel k covers [k/f, (k+1)/f); its centre is (k + 0.5)/f
        q = ((pts - [x0, y0]) * f - 0.5) * 256.0
        cv2.fillPoly(fine, [np.round(q).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=8)
        cov = fine.reshape(y1 - y0, f, x1 - x0, f).mean(axis=(1, 3))
        out[y0:y1, x0:x1] |= cov >= 0.5
    return out
