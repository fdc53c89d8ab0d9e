"""What the format readers and writers share: where an image named in a source lives, how a CSV
cell is written, and which rows a validation round sends to people (score window, sample).

Image paths are confined to the dataset's folder (``bot.tasks.safety.confined_path``: a
reference outside it, ``..`` or a symlink out, is a bad row unless ``--allow-outside`` names the
folder) and CSV cells are neutralised (``bot.tasks.safety.csv_cell``), as for every source.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from bot.tasks.safety import confined_path, csv_cell

__all__ = ["Selection", "csv_cell", "declared_size", "image_path"]


def declared_size(record: dict[str, Any], width: str = "width", height: str = "height") -> tuple[int, int] | None:
    """The image size a source declares (COCO's ``width``/``height``, Label Studio's
    ``original_width``/``original_height``), when both are integers; the loader checks it
    against the decoded image."""
    w, h = record.get(width), record.get(height)
    return (int(w), int(h)) if isinstance(w, int) and isinstance(h, int) else None


def image_path(base: Path, name: str, images_root: Path | None = None, allow_outside: Sequence[Path] = ()) -> Path:
    """The file a source's image reference names, relative to ``images_root`` or the source's folder.

    Label Studio writes references as URLs (``/data/local-files/?d=images/a.jpg``,
    ``/data/upload/3/5f2a-a.jpg``, ``s3://bucket/a.jpg``): the ``d`` parameter is a path under
    the storage root; any other URL is looked up by its file name. Raises ``ValueError``
    (``PathOutsideDataset``, ``NotARegularFile``) for a file outside the allowed folders.
    """
    ref = name.strip()
    if "://" in ref or ref.startswith("/data/"):
        parsed = urlparse(ref)
        query = parse_qs(parsed.query).get("d")
        ref = unquote(query[0]) if query else Path(unquote(parsed.path)).name
    if images_root is not None:
        return confined_path(images_root, ref, allow_outside)
    if not os.path.isabs(ref) and not (base / ref).exists():
        for folder, other in ((base / "images", ref), (base, Path(ref).name), (base / "images", Path(ref).name)):
            if (folder / other).exists():
                return confined_path(folder, other, allow_outside)
    return confined_path(base, ref, allow_outside)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which predictions go to people: a score window (``min_score <= score <= max_score``;
    rows without a score are kept) and a reproducible random sample of ``sample`` rows."""

    min_score: float | None = None
    max_score: float | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min-score {self.min_score} is above max-score {self.max_score}")
        if self.sample is not None and self.sample < 1:
            raise ValueError(f"sample must be at least 1, got {self.sample}")

    @property
    def active(self) -> bool:
        return self.min_score is not None or self.max_score is not None or self.sample is not None

    def keep(self, score: float | None) -> bool:
        if score is None:
            return True
        if self.min_score is not None and score < self.min_score:
            return False
        return not (self.max_score is not None and score > self.max_score)

    def sampled(self, kept: int) -> set[int] | None:
        """Which of ``kept`` rows (numbered from 0 among the rows within the score window) the
        sample takes, or None for all of them. Only the numbers are needed, so a streamed load
        counts its rows in a first pass and picks the very same sample as :meth:`apply`."""
        if self.sample is None or self.sample >= kept:
            return None
        return set(random.Random(self.seed).sample(range(kept), self.sample))

    def apply(self, rows: list[Any]) -> tuple[list[Any], int, int]:
        """(rows kept, left out by score, left out by the sample); rows keep their order."""
        kept = [r for r in rows if self.keep(getattr(r, "score", None))]
        by_score = len(rows) - len(kept)
        chosen = self.sampled(len(kept))
        if chosen is None:
            return kept, by_score, 0
        return [r for i, r in enumerate(kept) if i in chosen], by_score, len(kept) - len(chosen)
