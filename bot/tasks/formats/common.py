"""What the format readers and writers share: where an image named in a source lives, how a CSV
cell is written, and which rows a validation round sends to people (score window, sample).

``image_path`` and ``csv_cell`` are the single places the dataset-safety work (issue 18:
path confinement, CSV formula neutralising) plugs into.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


def image_path(base: Path, name: str, images_root: Path | None = None) -> Path:
    """The file a source's image reference names, relative to ``images_root`` or the source's folder.

    Label Studio writes references as URLs (``/data/local-files/?d=images/a.jpg``,
    ``/data/upload/3/5f2a-a.jpg``, ``s3://bucket/a.jpg``): the ``d`` parameter is a path under
    the storage root; any other URL is looked up by its file name.
    """
    ref = name.strip()
    if "://" in ref or ref.startswith("/data/"):
        parsed = urlparse(ref)
        query = parse_qs(parsed.query).get("d")
        ref = unquote(query[0]) if query else Path(unquote(parsed.path)).name
    root = images_root if images_root is not None else base
    candidate = root / ref
    if images_root is None and not candidate.exists():
        for other in (base / "images" / ref, base / Path(ref).name, base / "images" / Path(ref).name):
            if other.exists():
                return other
    return candidate


def csv_cell(value: Any) -> Any:
    """A value as written to an exported CSV cell (one place to neutralise formulas)."""
    return "" if value is None else value


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

    def apply(self, rows: list[Any]) -> tuple[list[Any], int, int]:
        """(rows kept, left out by score, left out by the sample); rows keep their order."""
        kept = [r for r in rows if self.keep(getattr(r, "score", None))]
        by_score = len(rows) - len(kept)
        if self.sample is None or self.sample >= len(kept):
            return kept, by_score, 0
        chosen = set(random.Random(self.seed).sample(range(len(kept)), self.sample))
        return [r for i, r in enumerate(kept) if i in chosen], by_score, len(kept) - self.sample
