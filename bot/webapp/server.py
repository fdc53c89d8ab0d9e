"""The Mini App's HTTP side: the page and its API, as aiohttp routes under ``/app/``.

Mounted on the webhook server (webhook mode) or on a server of its own on
``WEBAPP_HOST:WEBAPP_PORT`` (polling mode); ``WEBAPP_URL`` is its public address.

Every API call carries the launch data (``Authorization: tma <initData>``, checked by
:mod:`bot.webapp.auth`) and names an assignment; the caller may see and act on only their own
open lease of a mask task. Keep, No such object and Skip go through
:func:`bot.work.answers.act_and_next`, the path a button tap in the chat takes (conditional
close of the lease, ``answer:<id>`` ledger key): a retried or replayed Keep is answered and
paid once. The chat's task message is then edited into the next task, as after a tap.

Status codes: 401 launch data missing, forged or expired; 403 not this user's task (or a
banned or unknown worker); 409 the task is closed (answered, expired); 429 a segmentation of
this task is still running; 400 bad input.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import numpy as np
import structlog
from aiogram import Bot
from aiohttp import web
from sqlalchemy import select
from sqlmodel import Session, col

from bot import workers
from bot.cache import LRUCache
from bot.clock import utcnow
from bot.handlers import worker as worker_loop
from bot.handlers.keyboards import precise_url
from bot.handlers.presenter import progress_line
from bot.i18n import LOCALES, catalog, normalize_locale, t, won
from bot.tasks import magic_pin, media, service
from bot.tasks.boxes import SAME_BOX_IOU, Box, box_iou, box_view, fixed_box_json, predicted_box
from bot.tasks.magic_pin import ImageRef
from bot.tasks.models import (
    BOX_CORRECT,
    BOX_WRONG_BOX,
    BOX_WRONG_CLASS,
    PIN_MASK,
    PIN_NONE,
    Assignment,
    AssignmentStatus,
    ProjectType,
)
from bot.tasks.pictures import image_ref
from bot.tasks.service import Refusal, Submitted, TaskCard
from bot.telegram.runtime import App
from bot.webapp.auth import AuthError, LaunchUser, check_init_data, init_data_from_header
from bot.work import answers
from bot.workers.models import WorkerStatus

log = structlog.get_logger("crowdpin.webapp")

PREFIX = "/app"
MASK_TYPES = (ProjectType.MAGIC_PIN.value, ProjectType.CONFIRM_MASK.value)
WEBAPP_TYPES = (*MASK_TYPES, ProjectType.CONFIRM_BOX.value)  # confirm-box: drag the box's corners
MAX_BODY_BYTES = 64 * 1024
SEGMENT_CACHE = 256  # (assignment, inputs) -> phone-size candidates: Keep answers with what was drawn
_STATIC = ("app.js", "app.css")


# ------------------------------------------------------------------ errors
class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str = "") -> None:
        super().__init__(message or error)
        self.status, self.error, self.message = status, error, message


_REFUSAL_STATUS = {
    Refusal.UNKNOWN: 404,
    Refusal.NOT_YOURS: 403,
    Refusal.ALREADY: 409,
    Refusal.EXPIRED: 409,
    Refusal.INVALID: 400,
}


def _refused(refusal: Refusal, lang: str) -> ApiError:
    status = _REFUSAL_STATUS.get(refusal, 409)
    text = t("masks.webapp.forbidden", lang) if status == 403 else t("masks.webapp.closed", lang, reason=t(f"refuse.{refusal.value}", lang))
    return ApiError(status, refusal.value, text)


# ------------------------------------------------------------------ domain reads (DB thread)
@dataclass(slots=True)
class Caller:
    worker_id: int
    tg_id: int
    lang: str


def _caller(session: Session, user: LaunchUser) -> Caller | str:
    worker = workers.get_by_tg(session, user.tg_id)
    if worker is None or worker.id is None:
        return "not_registered"
    if worker.status == WorkerStatus.BANNED:
        return "banned"
    return Caller(worker.id, worker.tg_id, worker.lang if worker.lang in LOCALES else normalize_locale(user.language_code))


def _current_assignment(session: Session, worker_id: int, now: datetime) -> int | None:
    """The worker's newest open lease (a worker holds one at a time)."""
    return session.execute(
        select(col(Assignment.id))
        .where(col(Assignment.worker_id) == worker_id, col(Assignment.status) == AssignmentStatus.LEASED, col(Assignment.expires_at) > now)
        .order_by(col(Assignment.leased_at).desc())
        .limit(1)
    ).scalar()


def _open_card(session: Session, worker_id: int, assignment_id: int | None, lang: str, tz: str) -> TaskCard | Refusal | None:
    """The caller's own open lease of a mask or box task as a card; a refusal for anyone else's
    or a closed one."""
    now = utcnow()
    if assignment_id is None:
        assignment_id = _current_assignment(session, worker_id, now)
        if assignment_id is None:
            return None
    found = service._open_assignment(session, worker_id, assignment_id, now)
    if isinstance(found, Refusal):
        return found
    card = service.card_for(session, found, lang, now, tz)
    if card.project_type not in WEBAPP_TYPES:
        return Refusal.INVALID
    return card


# ------------------------------------------------------------------ masks on the wire
def mask_runs(mask: np.ndarray) -> list[int]:
    """A bool (H, W) mask as row-major run lengths, starting with a background run (maybe 0):
    small to send and a few lines of JavaScript to draw."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return [0]
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0, *runs] if flat[0] else runs) if runs else [0]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not -0.01 <= value <= 1.01:
        raise ApiError(400, "bad_input", f"{name} must be a number between 0 and 1")
    return min(max(float(value), 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the worker put on the photo, in fractions of its width and height."""

    points: tuple[tuple[float, float, bool], ...]
    box: tuple[float, float, float, float] | None
    base: int = 0  # the first pin's outline the worker picked before adding points (they refine it)

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def only_negative(self) -> bool:
        return bool(self.points) and self.box is None and not any(pos for _, _, pos in self.points)

    @classmethod
    def parse(cls, body: dict[str, Any], *, negative_only_ok: bool = False) -> Inputs:
        raw_points = body.get("points") or []
        if not isinstance(raw_points, list) or len(raw_points) > magic_pin.MAX_EXACT_POINTS:
            raise ApiError(400, "bad_input", f"points: a list of at most {magic_pin.MAX_EXACT_POINTS} [x, y, positive]")
        points = []
        for p in raw_points:
            if not isinstance(p, list) or len(p) != 3 or not isinstance(p[2], bool):
                raise ApiError(400, "bad_input", "a point is [x, y, positive] with x, y in 0..1")
            points.append((_number(p[0], "x"), _number(p[1], "y"), p[2]))
        raw_box = body.get("box")
        box = None
        if raw_box is not None:
            if not isinstance(raw_box, list) or len(raw_box) != 4:
                raise ApiError(400, "bad_input", "box is [x0, y0, x1, y1] in 0..1")
            x0, y0, x1, y1 = (_number(v, "box") for v in raw_box)
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            if box[2] - box[0] < 0.005 or box[3] - box[1] < 0.005:
                raise ApiError(400, "bad_input", "the box is too small")
        if points and not any(pos for _, _, pos in points) and box is None and not negative_only_ok:
            raise ApiError(400, "bad_input", "give at least one positive point or a box")
        base = body.get("base", 0)
        if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base < magic_pin.MAX_CANDIDATES:
            raise ApiError(400, "bad_input", "base is the index of the first pin's outline that later points refine")
        refines = box is None and any(pos for _, _, pos in points[:-1])  # a pin, then more points
        return cls(tuple(points), box, base if refines else 0)

    def key(self) -> str:
        return json.dumps([self.points, self.box, self.base])

    def in_pixels(self, w: int, h: int) -> tuple[list[tuple[float, float, bool]], tuple[float, float, float, float] | None]:
        points = [(x * (w - 1), y * (h - 1), pos) for x, y, pos in self.points]
        box = None if self.box is None else (self.box[0] * w, self.box[1] * h, self.box[2] * w, self.box[3] * h)
        return points, box


# ------------------------------------------------------------------ the service
class MiniApp:
    """The page's routes for one running bot."""

    def __init__(self, app: App, bot: Bot) -> None:
        self.app = app
        self.bot = bot
        self.token = bot.token
        # (assignment, inputs) -> (phone-size candidates, all of them? False: the first alone)
        self.segments: LRUCache[tuple[int, str], tuple[list[np.ndarray], bool]] = LRUCache(SEGMENT_CACHE)
        self.answering: set[int] = set()
        self.segmenting: set[int] = set()
        self._page: bytes | None = None

    @property
    def max_age(self) -> int:
        return self.app.settings.webapp.webapp_max_age

    # -------------------------------------------------------------- plumbing
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.redirect),
            web.get(PREFIX + "/", self.page),
            web.get(PREFIX + "/static/{name}", self.static),
            web.get(PREFIX + "/api/task", self._api(self.task)),
            web.get(PREFIX + "/api/image", self._api(self.image)),
            web.post(PREFIX + "/api/segment", self._api(self.segment)),
            web.post(PREFIX + "/api/answer", self._api(self.answer)),
        ]

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/" + (f"?{request.query_string}" if request.query_string else ""))

    async def page(self, _: web.Request) -> web.Response:
        if self._page is None:
            html = resources.files("bot.webapp").joinpath("static/index.html").read_text(encoding="utf-8")
            texts = {
                lang: {k.removeprefix("masks.webapp."): v for k, v in catalog(lang).items() if k.startswith("masks.webapp.")}
                for lang in LOCALES
            }
            blob = json.dumps(texts, ensure_ascii=False).replace("</", "<\\/")
            self._page = html.replace("{{TEXTS}}", blob).encode()
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers=_NO_STORE)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = resources.files("bot.webapp").joinpath(f"static/{name}").read_bytes()
        kind = "application/javascript" if name.endswith(".js") else "text/css"
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=_NO_STORE)

    def _api(self, handler: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.app.in_flight.track()  # a shutdown lets it finish before the session and the pools close
            try:
                user = check_init_data(self.token, init_data_from_header(request.headers.get("Authorization")), max_age=self.max_age)
                if self.app.in_flight.closing:  # nothing new starts during a restart's drain
                    raise ApiError(503, "restarting", t("masks.webapp.restarting", normalize_locale(user.language_code)))
                found = await self.app.db.run(_caller, user)
                if isinstance(found, str):
                    lang = normalize_locale(user.language_code)
                    raise ApiError(403, found, t("masks.webapp.forbidden" if found == "banned" else "masks.webapp.no_task", lang))
                return await handler(request, found)
            except AuthError as exc:
                log.info("webapp.unauthorized", reason=exc.reason, path=request.path)
                return web.json_response({"ok": False, "error": "unauthorized", "message": exc.reason}, status=401, headers=_NO_STORE)
            except ApiError as exc:
                log.info("webapp.refused", status=exc.status, error=exc.error, path=request.path)
                return web.json_response({"ok": False, "error": exc.error, "message": exc.message}, status=exc.status, headers=_NO_STORE)

        return handle

    @staticmethod
    def _assignment_id(value: Any) -> int | None:
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError(400, "bad_input", "a must be an assignment id") from None

    async def _card(self, caller: Caller, assignment_id: int | None) -> TaskCard:
        card = await self.app.db.run(_open_card, caller.worker_id, assignment_id, caller.lang, self.app.tz)
        if card is None:
            raise ApiError(404, "no_task", t("masks.webapp.no_task", caller.lang))
        if isinstance(card, Refusal):
            raise _refused(card, caller.lang)
        return card

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(400, "bad_input", "request too large")
        try:
            body = json.loads(await request.content.read(MAX_BODY_BYTES + 1) or b"{}")
        except ValueError:
            raise ApiError(400, "bad_input", "the body must be JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_input", "the body must be a JSON object")
        return body

    # -------------------------------------------------------------- API
    async def task(self, request: web.Request, caller: Caller) -> web.Response:
        card = await self._card(caller, self._assignment_id(request.query.get("a")))
        return web.json_response({"ok": True, "task": await self._task_json(card, caller.lang)}, headers=_NO_STORE)

    async def _task_json(self, card: TaskCard, lang: str) -> dict[str, Any]:
        ref = image_ref(card)
        rgb, display = await self.app.pictures.run(self.app.pictures.load, ref)
        h, w = rgb.shape[:2]
        if card.project_type == ProjectType.CONFIRM_BOX:
            return await self._box_task_json(card, lang, (w, h), display)
        name, _ = magic_pin.parse_prelabel(card.prelabel)
        mask = None
        if card.project_type == ProjectType.CONFIRM_MASK and card.mask_rle:
            try:
                mask = mask_runs(await self.app.pictures.run(magic_pin.display_mask, card.mask_rle, (w, h)))
            except ValueError:
                mask = None
        return {
            "assignment_id": card.assignment_id,
            "type": card.project_type,
            "question": card.question,
            "object": name,
            "progress": progress_line(card, lang),
            "lang": lang,
            "image": {"w": w, "h": h, "url": f"api/image?a={card.assignment_id}"},
            "mask": mask,
        }

    async def _box_task_json(self, card: TaskCard, lang: str, size: tuple[int, int], display: tuple[int, int]) -> dict[str, Any]:
        """A confirm-box task: the predicted box and the image's other boxes, in pixels of the
        phone copy the page shows (the prediction is in the original's)."""
        view = await self.app.db.run(box_view, card.task_id)
        if view is None or view.prediction.box is None:
            raise ApiError(409, "no_box", t("boxes.unreadable", lang))
        w, h = size
        sx, sy = w / max(1, display[0]), h / max(1, display[1])

        def corners(b: Box) -> list[float]:
            return [round(b[0] * sx, 2), round(b[1] * sy, 2), round((b[0] + b[2]) * sx, 2), round((b[1] + b[3]) * sy, 2)]

        score = view.prediction.score if view.prediction.show_score else None
        return {
            "assignment_id": card.assignment_id,
            "type": card.project_type,
            "question": card.question or t("boxes.question", lang),
            "object": view.label,
            "score": None if score is None else round(score * 100),
            "progress": progress_line(card, lang),
            "lang": lang,
            "image": {"w": w, "h": h, "url": f"api/image?a={card.assignment_id}"},
            "box": corners(view.prediction.box),
            "others": [corners(b) for b in view.others[:50]],
            "mask": None,
        }

    async def image(self, request: web.Request, caller: Caller) -> web.Response:
        card = await self._card(caller, self._assignment_id(request.query.get("a")))
        body = await self.app.pictures.run(self._phone_jpeg, image_ref(card))
        return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    def _phone_jpeg(self, ref: ImageRef) -> bytes:
        path = ref.phone_path
        if not path:
            path = str(media.ensure_phone_copy(ref.path, ref.sha256, self.app.media_dir, long_side=self.app.settings.media.phone_long_side))
        with open(path, "rb") as fh:
            return fh.read()

    async def _candidates(
        self, card: TaskCard, inputs: Inputs, *, need: int | None = None
    ) -> tuple[list[np.ndarray], tuple[int, int], float]:
        """Phone-size candidates of these inputs, the display size, and the CPU ms spent making
        them (0 from the cache: Keep answers with exactly what was drawn).

        ``need``: how many the caller needs at least (None: all). ``need=1`` makes only the
        first (a later tap: the refined mask, see :meth:`segment`); a cached list that holds
        ``need`` of them is used as it is, so Keep of an outline never recomputes what was drawn.
        """
        ref = image_ref(card)
        rgb, display = await self.app.pictures.run(self.app.pictures.load, ref)
        key = (card.assignment_id, inputs.key())
        cached = self.segments.get(key)
        if cached is not None and (cached[1] or (need is not None and len(cached[0]) >= need)):
            return cached[0], display, 0.0
        h, w = rgb.shape[:2]
        points, box = inputs.in_pixels(w, h)
        if inputs.only_negative:  # confirm-mask: ➖ taps trim the task's own mask (seeded inside it)
            seed = await self._mask_seed(card, (w, h))
            if seed is None:
                raise ApiError(400, "bad_input", "give at least one positive point or a box")
            points = [seed, *points]
        k = 1 if need == 1 else magic_pin.MAX_CANDIDATES
        try:
            masks, cpu_ms = await self.app.pictures.run(_timed_candidates, rgb, points, box, k, inputs.base)
        except ValueError as exc:
            raise ApiError(400, "bad_input", str(exc)) from None
        self.segments[key] = (masks, k > 1)
        return masks, display, cpu_ms

    async def _mask_seed(self, card: TaskCard, size: tuple[int, int]) -> tuple[float, float, bool] | None:
        """A ➕ point deepest inside a confirm-mask task's mask (phone pixels), if it has one."""
        if card.project_type != ProjectType.CONFIRM_MASK or not card.mask_rle:
            return None
        try:
            mask = await self.app.pictures.run(magic_pin.display_mask, card.mask_rle, size)
        except ValueError:
            return None
        return await self.app.pictures.run(_deepest_point, mask)

    def _parse(self, card: TaskCard, body: dict[str, Any]) -> Inputs:
        return Inputs.parse(body, negative_only_ok=card.project_type == ProjectType.CONFIRM_MASK and bool(card.mask_rle))

    async def segment(self, request: web.Request, caller: Caller) -> web.Response:
        body = await self._body(request)
        card = await self._card(caller, self._assignment_id(body.get("a")))
        if card.project_type not in MASK_TYPES:
            raise ApiError(400, "bad_input", "a box task has nothing to segment: drag the box and keep it")
        inputs = self._parse(card, body)
        if inputs.empty:
            raise ApiError(400, "bad_input", "tap the object or draw a box first")
        if card.assignment_id in self.segmenting:
            # one segmentation per task at a time: a client cannot queue up CPU (the page waits
            # for the answer and then sends only its newest inputs)
            raise ApiError(429, "busy", t("masks.refuse.busy", caller.lang))
        # A later tap (a second point, or a ➖ on a confirm-mask) answers with the refined mask
        # alone, about a third of the time of all three candidates (the alternatives are new
        # GrabCut windows around every point); the page asks for them next with "more".
        quick = body.get("more") is not True and inputs.box is None and len(inputs.points) + inputs.only_negative >= 2
        self.segmenting.add(card.assignment_id)
        started = time.perf_counter()
        try:
            masks, _, cpu_ms = await self._candidates(card, inputs, need=1 if quick else None)
        finally:
            self.segmenting.discard(card.assignment_id)
        ms = (time.perf_counter() - started) * 1000
        log.info(
            "webapp.segmented",
            assignment_id=card.assignment_id,
            points=len(inputs.points),
            box=inputs.box is not None,
            ms=round(ms, 1),
            cpu_ms=round(cpu_ms, 1),
        )
        return web.json_response(
            {
                "ok": True,
                "candidates": [{"runs": mask_runs(m), "area": int(np.count_nonzero(m))} for m in masks],
                "more": quick and len(masks) == 1,  # alternatives may follow: the same inputs with "more": true
                "server_ms": round(ms, 1),  # wall time of the segmentation, waiting for the pool included
                "server_cpu_ms": round(cpu_ms, 1),  # its CPU time: what a tap costs on a quiet core
            },
            headers=_NO_STORE,
        )

    async def answer(self, request: web.Request, caller: Caller) -> web.Response:
        body = await self._body(request)
        aid = self._assignment_id(body.get("a"))
        if aid is None:
            raise ApiError(400, "bad_input", "a: which assignment")
        action = body.get("action")
        if action not in ("keep", "none", "skip", "class"):
            raise ApiError(400, "bad_input", "action is keep, none, class or skip")
        card = await self._card(caller, aid)
        box_json = None
        if card.project_type == ProjectType.CONFIRM_BOX:
            value, box_json, verb = await self._box_answer(card, action, body, caller.lang)
            mask_rle = None
        elif action == "class":
            raise ApiError(400, "bad_input", "class is for box tasks")
        else:
            value, mask_rle, verb = await self._answer_value(card, action, body)
        if aid in self.answering or aid in self.app.pins_in_flight:
            raise ApiError(409, "busy", t("masks.refuse.busy", caller.lang))
        self.answering.add(aid)
        try:
            return await self._record(card, caller, verb, value, mask_rle, box_json)
        finally:
            self.answering.discard(aid)

    async def _box_answer(self, card: TaskCard, action: str, body: dict[str, Any], lang: str) -> tuple[str, str | None, str]:
        """(value, fixed box JSON, act_and_next action) of a confirm-box answer from the page.

        Keep of the box as it came (no ``box``, or one within IoU 0.95 of the prediction: a
        finger's jitter) answers "correct"; a box dragged elsewhere answers "wrong_box" with the
        drawn box, in the original's pixels; No such object is "wrong_box" without one; Wrong
        class is "wrong_class". The same values a button in the chat gives.
        """
        if action == "skip":
            return "", None, "skip"
        if action == "none":
            return BOX_WRONG_BOX, None, "answer"
        if action == "class":
            return BOX_WRONG_CLASS, None, "answer"
        raw = body.get("box")
        if raw is None:
            return BOX_CORRECT, None, "answer"
        inputs = Inputs.parse({"box": raw})
        assert inputs.box is not None
        predicted = await self.app.db.run(predicted_box, card.task_id)
        if predicted is None:
            raise ApiError(409, "no_box", t("boxes.unreadable", lang))
        _, (dw, dh) = await self.app.pictures.run(self.app.pictures.load, image_ref(card))
        x0, y0, x1, y1 = inputs.box
        drawn = (x0 * dw, y0 * dh, (x1 - x0) * dw, (y1 - y0) * dh)
        if box_iou(drawn, predicted) >= SAME_BOX_IOU:
            return BOX_CORRECT, None, "answer"
        return BOX_WRONG_BOX, fixed_box_json(drawn), "answer"

    async def _answer_value(self, card: TaskCard, action: str, body: dict[str, Any]) -> tuple[str, str | None, str]:
        """(value, mask RLE JSON, act_and_next action) of a Keep / No such object / Skip.

        Magic pin: Keep answers "mask" with the chosen candidate. Confirm-mask: Keep of the mask
        as it came answers "yes"; a fixed mask answers "no" (the given one was wrong) with the
        fix as the answer's mask. No such object is "none" (magic pin) or "no" (confirm-mask).
        """
        pin = card.project_type == ProjectType.MAGIC_PIN
        if action == "skip":
            return "", None, "skip"
        if action == "none":
            return (PIN_NONE if pin else "no"), None, "answer"
        inputs = self._parse(card, body)
        if inputs.empty:
            if pin:
                raise ApiError(400, "bad_input", "tap the object first: there is no mask to keep")
            return "yes", None, "answer"
        candidate = body.get("candidate", 0)
        if not isinstance(candidate, int) or isinstance(candidate, bool) or candidate < 0:
            raise ApiError(400, "bad_input", "candidate is the index of a drawn outline")
        masks, display, _ = await self._candidates(card, inputs, need=candidate + 1)
        if candidate >= len(masks):
            raise ApiError(400, "bad_input", "no such outline")
        if not masks[candidate].any():
            raise ApiError(400, "empty", t("masks.refuse.empty", "en"))
        rle, _ = await self.app.pictures.run(magic_pin.to_original, masks[candidate], display)
        return (PIN_MASK if pin else "no"), json.dumps(rle, separators=(",", ":")), "answer"

    async def _record(
        self, card: TaskCard, caller: Caller, verb: str, value: str, mask_rle: str | None, box_json: str | None = None
    ) -> web.Response:
        chat_id = caller.tg_id  # a private chat's id is the user's id
        message_id = card.message_id
        outcome = await self.app.db.run(
            answers.act_and_next,
            caller.worker_id,
            card.assignment_id,
            verb,
            value,
            lang=caller.lang,
            chat_id=chat_id,
            message_id=message_id,
            mask_rle=mask_rle,
            box_json=box_json,
            tz=self.app.tz,
        )
        if isinstance(outcome.result, Refusal):
            raise _refused(outcome.result, caller.lang)
        if self.app.metrics is not None and isinstance(outcome.result, Submitted):
            self.app.metrics.answers.inc()
        log.info("webapp.answered", assignment_id=card.assignment_id, action=verb, value=value)
        reward = outcome.result.reward if isinstance(outcome.result, Submitted) else 0
        nxt = outcome.next
        try:
            await worker_loop.show_outcome(self.bot, self.app, chat_id, message_id, outcome, caller.lang)
        except Exception as exc:  # noqa: BLE001 - the answer is stored; the chat catches up on the next tap
            log.warning("webapp.chat_update_failed", assignment_id=card.assignment_id, error=str(exc))
        result: dict[str, Any] = {
            "ok": True,
            "reward": reward,
            "message": t("masks.webapp.saved", caller.lang, reward=won(reward)) if reward else t("masks.webapp.saved_unpaid", caller.lang),
            "next": None,
        }
        if isinstance(nxt, TaskCard) and nxt.project_type in WEBAPP_TYPES:
            result["next"] = await self._task_json(nxt, caller.lang)
        return web.json_response(result, headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}


def _timed_candidates(
    rgb: np.ndarray, points: list[tuple[float, float, bool]], box: tuple[float, float, float, float] | None, k: int, base: int = 0
) -> tuple[list[np.ndarray], float]:
    started = time.thread_time()
    masks = magic_pin.exact_candidates(rgb, points, box, k, base)
    return masks, (time.thread_time() - started) * 1000


def _deepest_point(mask: np.ndarray) -> tuple[float, float, bool] | None:
    import cv2

    if not mask.any():
        return None
    depth = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = divmod(int(np.argmax(depth)), mask.shape[1])
    return float(x), float(y), True


def _warm_up() -> None:
    """One tiny segmentation: the first call in a process pays for imports and set-up (about
    a second on a busy core), which would otherwise land on the first worker's first tap."""
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[12:36, 16:48] = 200
    magic_pin.exact_candidates(rgb, [(32.0, 24.0, True)])


def add_webapp_routes(web_app: web.Application, app: App, bot: Bot) -> MiniApp:
    """Mount the page and its API on ``web_app`` (the webhook server or the page's own)."""
    mini = MiniApp(app, bot)
    web_app.add_routes(mini.routes())
    tasks: list[asyncio.Task[None]] = []

    async def warm(_: web.Application) -> None:
        tasks.append(asyncio.ensure_future(app.pictures.run(_warm_up)))  # in the background: start-up does not wait

    web_app.on_startup.append(warm)
    return mini


async def start_webapp_server(app: App, bot: Bot, host: str, port: int) -> web.AppRunner:
    """Polling mode: the page on a server of its own. Returns the runner (``cleanup()`` stops it)."""
    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    add_webapp_routes(web_app, app, bot)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("webapp.started", host=host, port=port, url=app.settings.webapp.webapp_url)
    return runner


__all__ = ["PREFIX", "MiniApp", "add_webapp_routes", "mask_runs", "precise_url", "start_webapp_server"]
