"""Mask tasks as domain operations: the magic-pin state machine and masks at the right size.

A magic-pin assignment moves through three phases, kept in ``Assignment.state_json`` so a bot
restart loses nothing::

    grid --cell--> mask --add--> add --cell--> mask --pick i--> answered ("mask", candidate i)
      ^             | |  <--add 0--'  ^                         any --none--> answered ("none")
      '---retry-----' '--add--> choose --fix i--'

Every segmentation offers up to :data:`MAX_CANDIDATES` masks (``bot.autoseg.segment_candidates``,
best first); the mask phase shows them numbered and the worker picks one, which answers the task.
A back end with one candidate gives one mask, shown alone with a Keep button (pick 0).

"Add a point" right after the first pin, when it offered several outlines, first asks which one
to fix (the choose phase): the later points refine that outline (``base``, as the Mini App's
do), not always the first. Only with a segmenter that can (:func:`bot.autoseg.refines_picked`).

Every transition is a compare-and-set on the stored state text, and every button carries the
revision of the state it was drawn from (see :func:`pack`), so a double tap, a stale message or a
forged button is refused and changes nothing. Segmentation runs between :func:`pin_step` (which
decides) and :func:`commit_step` (which stores), outside any transaction: it is CPU work and must
not hold a database connection.

Masks are segmented on the phone copy (long side <= ``PHONE_LONG_SIDE``: what the worker sees,
and fast) and upsampled to the original image's display size (bilinear on the 0/1 mask, then
threshold 0.5: smoother edges than nearest neighbour, same area) before being stored as COCO RLE
JSON, so answers and exports are at the original resolution.

No aiogram here: the Telegram layer is ``bot/handlers/masks.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlmodel import Session, col

from bot.autoseg import refines_picked, segment_candidates
from bot.autoseg import rle as coco_rle
from bot.autoseg.overlay import cell_center, cell_labels
from bot.clock import utcnow
from bot.db import rowcount
from bot.tasks import media, service
from bot.tasks.models import Assignment, AssignmentStatus, Image, Project, ProjectType, Task
from bot.tasks.service import Refusal, TaskCard

GRID_ROWS = 4
GRID_COLS = 4
CELLS: tuple[str, ...] = tuple(label for row in cell_labels(GRID_ROWS, GRID_COLS) for label in row)
MAX_POINTS = 8  # bounds the CPU a worker can spend and the size of the state
MAX_CANDIDATES = 3  # masks offered per segmentation: more would not fit one phone picture
STATE_VERSION = 2  # 2: a list of candidates; 1 (read still): one "mask" and its "area"


class Phase(StrEnum):
    GRID = "grid"  # plain photo with the lettered grid: tap the cell on the object
    MASK = "mask"  # the candidate masks and the pins: pick one, try another cell, add a point, none
    ADD = "add"  # grid over the outline being fixed: the next cell adds a (+ or -) point
    CHOOSE = "choose"  # the first pin's candidates again: which one should the next point fix?


class PinRefusal(StrEnum):
    """Why a magic-pin tap changes nothing (besides the core :class:`Refusal`)."""

    STALE = "stale"  # the button belongs to an older picture of this task
    LIMIT = "limit"  # too many points already
    NO_POSITIVE = "no_positive"  # the step would leave no positive point
    EMPTY = "empty"  # pick an empty mask
    BUSY = "busy"  # the previous tap of this task is still being worked on (handler-level)


# ADD button values: back to the mask view, add area (+), remove area (-).
SIGN_BACK, SIGN_POS, SIGN_NEG = 0, 1, 2


# ------------------------------------------------------------------ callback values
def pack(rev: int, index: int = 0, base: int = 1) -> int:
    """Callback ``v`` of a button: the state revision it was drawn from, plus an index.

    ``base`` is the number of indices (16 cells for CELL, 3 signs for ADD, 1 for the rest).
    """
    return rev * base + index


def unpack(v: int, base: int = 1) -> tuple[int, int] | None:
    if v < 0:
        return None
    rev, index = divmod(v, base)
    return rev, index


def pick_value(rev: int, index: int) -> int:
    """Callback ``v`` of the button that picks candidate ``index`` of revision ``rev``."""
    return pack(rev, index, MAX_CANDIDATES)


# ------------------------------------------------------------------ state
@dataclass(slots=True, frozen=True)
class PinMask:
    """One candidate as stored: COCO RLE at the original (display) resolution, and its area
    there. Stored at segmentation time, so a pick answers with exactly the mask drawn."""

    rle: dict[str, Any]
    area: int


@dataclass(slots=True)
class PinState:
    phase: Phase = Phase.GRID
    points: list[tuple[str, bool]] = field(default_factory=list)  # (cell label, positive)
    positive: bool = True  # sign of the next point in the ADD phase
    candidates: list[PinMask] = field(default_factory=list)  # best first; numbered 1.. on the picture
    rev: int = 0
    base: int = 0  # the first pin's candidate the later points refine (the worker's choice)

    @property
    def mask(self) -> dict[str, Any] | None:
        """The best candidate's mask (what a one-mask view shows), if any."""
        return self.candidates[0].rle if self.candidates else None

    @property
    def area(self) -> int:
        return self.candidates[0].area if self.candidates else 0

    def pickable(self) -> list[int]:
        """Indices of the candidates a worker can pick (non-empty ones)."""
        return [i for i, c in enumerate(self.candidates) if c.area > 0]

    @property
    def fixing(self) -> int:
        """The candidate the next point refines, as the add phase draws it: the one chosen after
        the first pin; once points were added, the best of their candidates."""
        return self.base if len(self.points) == 1 and self.base < len(self.candidates) else 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PinState:
        """Read a stored state; anything unreadable is a fresh grid (never an exception)."""
        if not data or not isinstance(data, dict):
            return cls()
        try:
            points = [(str(c), bool(p)) for c, p in data.get("points", []) if str(c) in CELLS]
            if "candidates" in data:
                candidates = [PinMask(c["mask"], int(c["area"])) for c in data["candidates"][:MAX_CANDIDATES]]
            else:  # version 1: one mask
                mask = data.get("mask")
                candidates = [PinMask(mask, int(data.get("area", 0)))] if isinstance(mask, dict) else []
            if not all(isinstance(c.rle, dict) for c in candidates):
                return cls()
            base = int(data.get("base", 0))
            if not 0 <= base < MAX_CANDIDATES:
                return cls()
            return cls(
                phase=Phase(data.get("phase", Phase.GRID)),
                points=points,
                positive=bool(data.get("positive", True)),
                candidates=candidates,
                rev=int(data.get("rev", 0)),
                base=base,
            )
        except (TypeError, ValueError, KeyError):
            return cls()

    @classmethod
    def from_json(cls, text: str | None) -> PinState:
        try:
            return cls.from_dict(json.loads(text) if text else None)
        except (TypeError, ValueError):
            return cls()

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "rev": self.rev,
            "phase": self.phase.value,
            "points": [[c, p] for c, p in self.points],
            "positive": self.positive,
            "candidates": [{"mask": c.rle, "area": c.area} for c in self.candidates],
            "base": self.base,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(slots=True)
class ImageRef:
    """Where the pixels of a task are (what segmentation and drawing need)."""

    image_id: int
    path: str
    sha256: str
    phone_path: str | None
    width: int
    height: int


@dataclass(slots=True)
class Step:
    """A decided transition. When ``segment`` is set the caller fills ``state.candidates``
    (via :func:`candidates_for_cells`, with ``state.base``) before :func:`commit_step`."""

    assignment_id: int
    old_json: str | None
    state: PinState
    segment: list[tuple[str, bool]] | None = None
    image: ImageRef | None = None
    redraw: bool = True  # False: only the caption and the buttons change


def image_ref(session: Session, task_id: int) -> ImageRef:
    task = session.get(Task, task_id)
    assert task is not None
    image = session.get(Image, task.image_id)
    assert image is not None and image.id is not None
    return ImageRef(image.id, image.path, image.sha256, image.phone_path, image.width, image.height)


def _pin_assignment(session: Session, worker_id: int, assignment_id: int, now: datetime) -> Assignment | Refusal:
    assignment = service._open_assignment(session, worker_id, assignment_id, now)
    if isinstance(assignment, Refusal):
        return assignment
    project = session.get(Project, assignment.project_id)
    if project is None or project.type != ProjectType.MAGIC_PIN:
        return Refusal.INVALID
    return assignment


def pin_step(
    session: Session, worker_id: int, assignment_id: int, action: str, v: int, *, now: datetime | None = None
) -> Step | Refusal | PinRefusal:
    """Decide what a tap on a magic-pin button does; changes nothing in the database.

    ``action`` is ``cell`` (v = pack(rev, cell, 16)), ``retry`` (v = rev), ``add``
    (v = pack(rev, sign, 3)) or ``fix`` (v = pick_value(rev, candidate)). A pick and "no such
    object" answer the task: :func:`bot.work.answers.keep_and_next`.
    """
    now = now or utcnow()
    assignment = _pin_assignment(session, worker_id, assignment_id, now)
    if isinstance(assignment, Refusal):
        return assignment
    state = PinState.from_json(assignment.state_json)
    base = {"cell": len(CELLS), "add": 3, "retry": 1, "fix": MAX_CANDIDATES}.get(action)
    decoded = unpack(v, base) if base else None
    if decoded is None:
        return Refusal.INVALID
    rev, index = decoded
    if rev != state.rev:
        return PinRefusal.STALE
    old = assignment.state_json
    new = PinState(state.phase, list(state.points), state.positive, state.candidates, state.rev + 1, state.base)
    if action == "cell":
        cell = CELLS[index]
        if state.phase == Phase.GRID:
            new.points, new.base = [(cell, True)], 0
        elif state.phase == Phase.ADD:
            points = [p for p in state.points if p[0] != cell]
            if len(points) >= MAX_POINTS:
                return PinRefusal.LIMIT
            points.append((cell, state.positive))
            if not any(pos for _, pos in points):
                return PinRefusal.NO_POSITIVE
            new.points = points
        else:
            return PinRefusal.STALE
        new.phase, new.positive = Phase.MASK, True
        return Step(assignment_id, old, new, segment=list(new.points), image=image_ref(session, assignment.task_id))
    if action == "retry":
        if state.phase == Phase.GRID:
            return PinRefusal.STALE
        return Step(assignment_id, old, PinState(rev=state.rev + 1))
    if action == "fix":  # the outline the next point refines: then the grid over it alone
        if state.phase != Phase.CHOOSE:
            return PinRefusal.STALE
        if index >= len(state.candidates):
            return Refusal.INVALID  # no such number on the picture: a forged button
        if index not in state.pickable():
            return PinRefusal.EMPTY
        new.phase, new.base = Phase.ADD, index
        return Step(assignment_id, old, new)
    # add: 0 back to the mask view, 1 add area, 2 remove area
    if state.phase == Phase.MASK and index in (SIGN_POS, SIGN_NEG):
        if len(state.points) >= MAX_POINTS:
            return PinRefusal.LIMIT
        # After the first pin, which of its outlines? Asked on the same picture (no redraw).
        choose = len(state.points) == 1 and len(state.pickable()) > 1 and refines_picked()
        new.phase, new.positive = Phase.CHOOSE if choose else Phase.ADD, index == SIGN_POS
        return Step(assignment_id, old, new, redraw=not choose)
    if state.phase == Phase.ADD and index in (SIGN_POS, SIGN_NEG):
        new.positive = index == SIGN_POS
        return Step(assignment_id, old, new, redraw=False)
    if state.phase in (Phase.ADD, Phase.CHOOSE) and index == SIGN_BACK:
        new.phase, new.positive = Phase.MASK, True
        return Step(assignment_id, old, new, redraw=state.phase == Phase.ADD)
    return PinRefusal.STALE


def commit_step(
    session: Session,
    worker_id: int,
    step: Step,
    *,
    lang: str = "ko",
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
) -> TaskCard | Refusal | PinRefusal:
    """Store ``step.state`` if the state is still the one the step was decided on."""
    now = now or utcnow()
    state_guard = col(Assignment.state_json).is_(None) if step.old_json is None else col(Assignment.state_json) == step.old_json
    store = (
        update(Assignment)
        .where(
            col(Assignment.id) == step.assignment_id,
            col(Assignment.worker_id) == worker_id,
            col(Assignment.status) == AssignmentStatus.LEASED,
            col(Assignment.expires_at) > now,
            state_guard,
        )
        .values(state_json=step.state.to_json())
    )
    if rowcount(session.execute(store)) != 1:
        # why not: not the worker's, answered, stale... A lapsed lease is taken back if its
        # task still has a free slot (service._open_assignment), and then the step is stored.
        found = service._open_assignment(session, worker_id, step.assignment_id, now)
        if isinstance(found, Refusal):
            return found
        if rowcount(session.execute(store)) != 1:
            return PinRefusal.STALE
    assignment = session.execute(
        select(Assignment).where(col(Assignment.id) == step.assignment_id).execution_options(populate_existing=True)
    ).scalar_one()
    return service.card_for(session, assignment, lang, now, tz)


def kept_mask(session: Session, worker_id: int, assignment_id: int, v: int, *, now: datetime | None = None) -> str | Refusal | PinRefusal:
    """The mask (COCO RLE JSON) a pick keeps, ``v`` = :func:`pick_value` (rev, candidate), or
    why it cannot be kept. Checks the owner and the lease first, then the revision (it must be
    the current one, so what is kept is exactly what was shown), then the candidate.
    """
    now = now or utcnow()
    assignment = _pin_assignment(session, worker_id, assignment_id, now)
    if isinstance(assignment, Refusal):
        return assignment
    decoded = unpack(v, MAX_CANDIDATES)
    if decoded is None:
        return Refusal.INVALID
    rev, index = decoded
    state = PinState.from_json(assignment.state_json)
    if rev != state.rev or state.phase != Phase.MASK:
        return PinRefusal.STALE
    if index >= len(state.candidates):
        return Refusal.INVALID  # no such number on the picture: a forged button
    if state.candidates[index].area <= 0:
        return PinRefusal.EMPTY
    return json.dumps(state.candidates[index].rle, separators=(",", ":"))


def check_open(session: Session, worker_id: int, assignment_id: int, *, now: datetime | None = None) -> Refusal | None:
    """Why a tap on this magic-pin assignment is refused (not yours, answered, expired...), if it
    is: the check every pin button gets before anything else. Reads only."""
    found = _pin_assignment(session, worker_id, assignment_id, now or utcnow())
    return found if isinstance(found, Refusal) else None


# ------------------------------------------------------------------ pixels
def display_size(path: str, width: int, height: int) -> tuple[int, int]:
    """(W, H) of the original as the worker sees it: EXIF rotations by 90° swap the sides.

    Phone copies are EXIF-transposed, so masks are in that orientation too.
    """
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as img:
            orientation = img.getexif().get(0x0112, 1)
            width, height = img.size
    except OSError:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_phone_rgb(ref: ImageRef, media_dir: Path, long_side: int = 1280) -> np.ndarray:
    """The phone copy as an RGB array (made on first use, like the presenter does)."""
    from PIL import Image as PILImage

    path = ref.phone_path
    if not path or not Path(path).exists():
        path = str(media.ensure_phone_copy(ref.path, ref.sha256, media_dir, long_side=long_side))
    with PILImage.open(path) as img:
        return np.asarray(img.convert("RGB"))


def cell_pixels(points: list[tuple[str, bool]], width: int, height: int) -> list[tuple[float, float, bool]]:
    return [(*cell_center(cell, width, height, GRID_ROWS, GRID_COLS), positive) for cell, positive in points]


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (W, H) ``size``: bilinear on 0/1 then >= 0.5 (nearest when shrinking
    would also do; bilinear keeps diagonal edges from stair-stepping when enlarging)."""
    import cv2

    width, height = size
    m = np.asarray(mask, dtype=bool)
    if m.shape == (height, width):
        return m
    interpolation = cv2.INTER_LINEAR if width >= m.shape[1] else cv2.INTER_AREA
    soft = cv2.resize(m.astype(np.float32), (width, height), interpolation=interpolation)
    return soft >= 0.5


def candidates_phone(rgb: np.ndarray, points: list[tuple[str, bool]], k: int = MAX_CANDIDATES, base: int = 0) -> list[np.ndarray]:
    """Up to ``k`` candidate masks at the phone copy's size, best first, from the centres of the
    tapped cells. Empty candidates are dropped unless nothing else is left (then one, empty).
    ``base``: the first pin's outline the worker chose to fix, which later points refine."""
    h, w = rgb.shape[:2]
    return _shown(rgb, cell_pixels(points, w, h), None, k, base)


def _shown(
    rgb: np.ndarray, points: list[tuple[float, float, bool]], box: tuple[float, float, float, float] | None, k: int, base: int
) -> list[np.ndarray]:
    """The candidates a worker is shown: the segmenter's, without the empty ones (unless
    nothing else is left, then one, empty)."""
    found = [c.mask for c in segment_candidates(rgb, points, box=box, k=k, base=_segmenter_base(rgb, points, base))]
    return [m for m in found if m.any()] or found[:1]


def _segmenter_base(rgb: np.ndarray, points: list[tuple[float, float, bool]], base: int) -> int:
    """The segmenter's index of the first pin's outline the worker chose as number ``base + 1``.

    Empty candidates are not shown, so after one the worker's numbers and the segmenter's
    indices differ: outline 2 on the phone may be the segmenter's third. The first pin's
    candidates are asked for again (a cache hit for the classical segmenter) to map one onto
    the other."""
    n_first = next((i + 1 for i, (_, _, pos) in enumerate(points) if pos), len(points))
    if base <= 0 or n_first >= len(points) or not refines_picked():
        return base  # nothing chosen, no point after the pin, or a segmenter that ignores base
    first = segment_candidates(rgb, points[:n_first], k=MAX_CANDIDATES)
    shown = [i for i, c in enumerate(first) if c.mask.any()]
    return shown[base] if base < len(shown) else base


MAX_EXACT_POINTS = 20  # the Mini App's exact taps: bounds the CPU one request can spend


def exact_candidates(
    rgb: np.ndarray,
    points: list[tuple[float, float, bool]],
    box: tuple[float, float, float, float] | None = None,
    k: int = MAX_CANDIDATES,
    base: int = 0,
) -> list[np.ndarray]:
    """Up to ``k`` candidate masks at the phone copy's size from exact taps and/or a box (phone
    pixels): the Mini App's segmentation (the chat's is :func:`candidates_phone`, from cell
    centres). Empty candidates are dropped unless nothing else is left (then one, empty).
    ``base``: the first pin's outline the worker picked, which later taps refine."""
    if not points and box is None:
        raise ValueError("give at least one point or a box")
    if len(points) > MAX_EXACT_POINTS:
        raise ValueError(f"at most {MAX_EXACT_POINTS} points")
    return _shown(rgb, points, box, k, base)


def segment_phone(rgb: np.ndarray, points: list[tuple[str, bool]]) -> np.ndarray:
    """The best mask at the phone copy's size, from the centres of the tapped cells."""
    return candidates_phone(rgb, points, k=1)[0]


def to_original(mask: np.ndarray, display: tuple[int, int]) -> tuple[dict[str, Any], int]:
    """(COCO RLE at the original's (W, H) ``display`` size, area in original pixels)."""
    full = upsample_mask(mask, display)
    return coco_rle.encode(full), int(np.count_nonzero(full))


def segment_cells(rgb: np.ndarray, points: list[tuple[str, bool]], display: tuple[int, int]) -> tuple[dict[str, Any], int]:
    """Segment from the centres of the tapped cells; returns (COCO RLE at ``display`` size, area)."""
    return to_original(segment_phone(rgb, points), display)


def candidates_for_cells(rgb: np.ndarray, points: list[tuple[str, bool]], display: tuple[int, int], base: int = 0) -> list[PinMask]:
    """The candidates of the tapped cells as stored in the state (original resolution)."""
    return [PinMask(*to_original(m, display)) for m in candidates_phone(rgb, points, base=base)]


def auto_mask(rgb: np.ndarray, display: tuple[int, int], box: tuple[float, float, float, float] | None) -> dict[str, Any]:
    """A mask for a confirm task that came without one: from the prelabel box (original pixels)
    if there is one, otherwise from a single pin at the image centre. It is the first (best)
    candidate, whichever back end is plugged in."""
    h, w = rgb.shape[:2]
    if box is not None:
        sx, sy = w / display[0], h / display[1]
        found = segment_candidates(rgb, [], box=(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), k=1)
    else:
        found = segment_candidates(rgb, [(w / 2.0, h / 2.0, True)], k=1)
    return coco_rle.encode(upsample_mask(found[0].mask, display))


def display_mask(mask_json: str | dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """A stored mask (COCO RLE JSON, any resolution) resized to (W, H) ``size`` for drawing."""
    data = json.loads(mask_json) if isinstance(mask_json, str) else mask_json
    return upsample_mask(coco_rle.decode(data), size)


def parse_mask(mask_json: str) -> dict[str, Any]:
    """Check stored mask text is a COCO RLE dict (``size`` + ``counts``); ValueError if not."""
    try:
        data = json.loads(mask_json)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"mask is not JSON: {exc}") from None
    if not isinstance(data, dict) or "size" not in data or "counts" not in data:
        raise ValueError('mask must be COCO RLE: {"size": [h, w], "counts": ...}')
    coco_rle.decode(data)  # validates the runs
    return data


_BOX = re.compile(r"\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]\s*$")


def parse_prelabel(prelabel: str | None) -> tuple[str, tuple[float, float, float, float] | None]:
    """``"cat"``, ``"cat [x0,y0,x1,y1]"`` or ``"[x0,y0,x1,y1]"`` -> (object name, box or None).

    The box is in original-image pixels; it only seeds an auto-generated mask.
    """
    text = (prelabel or "").strip()
    found = _BOX.search(text)
    if not found:
        return text, None
    x0, y0, x1, y1 = (float(g) for g in found.groups())
    box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    name = text[: found.start()].strip()
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return name, None
    return name, box


def store_auto_mask(session: Session, task_id: int, mask_json: str) -> str:
    """Keep the first auto-generated mask of a task (all its workers must judge the same one);
    returns the task's mask, which may be another process's."""
    session.execute(update(Task).where(col(Task.id) == task_id, col(Task.mask_rle).is_(None)).values(mask_rle=mask_json))
    stored = session.execute(select(col(Task.mask_rle)).where(col(Task.id) == task_id)).scalar_one()
    return stored or mask_json
