"""Creating, inspecting and cancelling broadcasts (shared by the admin CLI and the bot).

A broadcast's audience is resolved once, at creation, into one ``BroadcastRecipient`` row per
worker: delivery then only walks those rows, so a restart resumes exactly where it stopped and
a worker who joins meanwhile is not half-included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, literal, select, update
from sqlmodel import Session, col

from bot.broadcast import audience as aud
from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from bot.clock import utcnow
from bot.db.tables import table
from bot.tasks import projects
from bot.tasks.models import Project, ProjectStatus

TEXT_LIMIT = 4096  # Telegram: message text, in UTF-16 code units
CAPTION_LIMIT = 1024  # Telegram: photo caption
PHOTO_MAX_BYTES = 10 * 1024 * 1024  # Telegram: photos up to 10 MB
RATE_WINDOW = 20.0  # seconds of recent deliveries the "rate" figure is measured over
FINISHED = (RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.BLOCKED)


class BroadcastError(ValueError):
    """A broadcast that cannot be created or changed; the message says why (nothing was written).

    ``code`` and ``params`` name the case for translated messages in the bot
    (``broadcast.err_<code>`` in the catalogs); the CLI prints the English message.
    """

    def __init__(self, message: str, code: str = "", **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_text(text: str, *, with_photo: bool) -> str:
    clean = (text or "").strip()
    if not clean:
        raise BroadcastError("the message text is empty", "text_empty")
    limit = CAPTION_LIMIT if with_photo else TEXT_LIMIT
    size = _utf16_len(clean)
    if size > limit:
        what = "a photo caption" if with_photo else "a message"
        raise BroadcastError(f"the text is {size} characters; {what} can hold at most {limit}", "text_too_long", size=size, limit=limit)
    return clean


def check_photo(path: Path) -> Path:
    """The photo must be something Telegram accepts, or every recipient would fail one by one."""
    from bot.tasks.media import ImageRejected, check_image

    try:
        image = check_image(path, max_bytes=PHOTO_MAX_BYTES)
    except ImageRejected as exc:
        raise BroadcastError(f"photo {path}: {exc}") from None
    if image.width + image.height > 10_000:
        raise BroadcastError(f"photo {path}: width + height must be at most 10000 (is {image.width}x{image.height})")
    if max(image.width, image.height) > 20 * min(image.width, image.height):
        raise BroadcastError(f"photo {path}: too narrow (aspect ratio over 20)")
    return path.resolve()


def _project(session: Session, ref: str | int) -> Project:
    """The project by id or exact name (:func:`bot.tasks.projects.find`), as a BroadcastError."""
    try:
        return projects.find(session, ref)
    except projects.ProjectNotFound:
        raise BroadcastError(f"no project {ref!r} (give its id or exact name)", "no_project", ref=str(ref)) from None


def count_recipients(session: Session, project_ref: str | int, spec: str, now: datetime | None = None) -> int:
    project = _project(session, project_ref)
    try:
        return aud.count(session, project, aud.Audience.parse(spec), now)
    except aud.AudienceError as exc:
        raise BroadcastError(str(exc), "audience", spec=spec) from None


def create(
    session: Session,
    project_ref: str | int,
    text: str,
    *,
    audience: str = "all",
    photo_path: Path | None = None,
    photo_file_id: str | None = None,
    created_by: int | None = None,
    status_chat_id: int | None = None,
    runner: str | None = None,
    lease_seconds: float = 30.0,
    now: datetime | None = None,
) -> Broadcast:
    """Validate everything first, then write the broadcast and its recipient rows in one go.

    With ``runner`` the broadcast is created already leased to that runner (the CLI sending it
    itself), so the bot's background worker does not grab it in between.
    """
    now = now or utcnow()
    project = _project(session, project_ref)
    if project.status == ProjectStatus.CLOSED:
        raise BroadcastError(f"project {project.name!r} is closed", "closed", name=project.name)
    try:
        spec = aud.Audience.parse(audience)
    except aud.AudienceError as exc:
        raise BroadcastError(str(exc), "audience", spec=audience) from None
    with_photo = photo_path is not None or photo_file_id is not None
    clean = check_text(text, with_photo=with_photo)
    path = check_photo(Path(photo_path)) if photo_path is not None else None
    if aud.count(session, project, spec, now) == 0:
        raise BroadcastError(f"nobody to send to: the audience {spec} of project {project.name!r} is empty", "nobody")
    broadcast = Broadcast(
        project_id=project.id,
        text=clean,
        photo_path=str(path) if path else None,
        photo_file_id=photo_file_id,
        audience=str(spec),
        status=BroadcastStatus.RUNNING if runner else BroadcastStatus.PENDING,
        created_by=created_by,
        status_chat_id=status_chat_id,
        created_at=now,
        runner=runner,
        lease_until=now + timedelta(seconds=lease_seconds) if runner else None,
        started_at=now if runner else None,
    )
    session.add(broadcast)
    session.flush()
    who = aud.recipients_query(project, spec, now).subquery()
    session.execute(
        insert(BroadcastRecipient).from_select(
            ["broadcast_id", "worker_id", "chat_id", "status", "attempts", "updated_at"],
            select(
                literal(broadcast.id),
                who.c.id,
                who.c.tg_id,
                literal(RecipientStatus.PENDING.value),
                literal(0),
                literal(now, type_=table(BroadcastRecipient).c.updated_at.type),
            ).order_by(who.c.id),
        )
    )
    return broadcast


def get(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError(f"no broadcast with id {broadcast_id}")
    return broadcast


def cancel(session: Session, broadcast_id: int, now: datetime | None = None) -> Broadcast:
    """Stop a broadcast: its runner notices before its next message; unsent rows stay pending."""
    broadcast = get(session, broadcast_id)
    if broadcast.status in (BroadcastStatus.DONE, BroadcastStatus.CANCELLED):
        raise BroadcastError(f"broadcast {broadcast_id} is already {broadcast.status}", "finished", id=broadcast_id)
    session.execute(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.status).in_((BroadcastStatus.PENDING, BroadcastStatus.RUNNING)))
        .values(status=BroadcastStatus.CANCELLED, finished_at=now or utcnow())
    )
    session.refresh(broadcast)
    return broadcast


def set_status_message(session: Session, broadcast_id: int, chat_id: int, message_id: int) -> None:
    session.execute(update(Broadcast).where(col(Broadcast.id) == broadcast_id).values(status_chat_id=chat_id, status_message_id=message_id))


@dataclass(frozen=True, slots=True)
class Progress:
    broadcast_id: int
    status: str
    total: int
    pending: int
    sending: int
    sent: int
    failed: int
    blocked: int
    rate: float  # deliveries per second over the last RATE_WINDOW seconds
    started_at: datetime | None
    finished_at: datetime | None
    project_id: int | None
    audience: str

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.blocked

    @property
    def remaining(self) -> int:
        return self.pending + self.sending

    def eta_seconds(self, fallback_rate: float) -> float:
        """Time left at the recent rate (or the configured one before there is any)."""
        rate = self.rate if self.rate > 0 else fallback_rate
        return self.remaining / rate if rate > 0 else 0.0


def progress(session: Session, broadcast_id: int, now: datetime | None = None) -> Progress:
    now = now or utcnow()
    broadcast = get(session, broadcast_id)
    counts = dict.fromkeys([s.value for s in RecipientStatus], 0)
    rows = session.execute(
        select(col(BroadcastRecipient.status), func.count())
        .where(col(BroadcastRecipient.broadcast_id) == broadcast_id)
        .group_by(col(BroadcastRecipient.status))
    ).all()
    for status, n in rows:
        counts[status] = int(n)
    rate = 0.0
    if broadcast.status == BroadcastStatus.RUNNING and broadcast.started_at is not None:
        since = now - timedelta(seconds=RATE_WINDOW)
        recent = session.execute(
            select(func.count()).where(
                col(BroadcastRecipient.broadcast_id) == broadcast_id,
                col(BroadcastRecipient.status).in_([s.value for s in FINISHED]),
                col(BroadcastRecipient.updated_at) >= since,
            )
        ).scalar_one()
        window = min(RATE_WINDOW, max((now - broadcast.started_at).total_seconds(), 1.0))
        rate = int(recent) / window
    return Progress(
        broadcast_id=broadcast_id,
        status=broadcast.status,
        total=sum(counts.values()),
        pending=counts[RecipientStatus.PENDING],
        sending=counts[RecipientStatus.SENDING],
        sent=counts[RecipientStatus.SENT],
        failed=counts[RecipientStatus.FAILED],
        blocked=counts[RecipientStatus.BLOCKED],
        rate=rate,
        started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
        project_id=broadcast.project_id,
        audience=broadcast.audience,
    )


def failures(session: Session, broadcast_id: int, limit: int = 10) -> list[tuple[int, str]]:
    """(chat id, reason) of failed rows, for the status command."""
    rows = session.execute(
        select(col(BroadcastRecipient.chat_id), col(BroadcastRecipient.error))
        .where(col(BroadcastRecipient.broadcast_id) == broadcast_id, col(BroadcastRecipient.status) == RecipientStatus.FAILED)
        .order_by(col(BroadcastRecipient.id))
        .limit(limit)
    ).all()
    return [(int(c), e or "") for c, e in rows]


def recent(session: Session, limit: int = 10) -> list[Broadcast]:
    return list(session.execute(select(Broadcast).order_by(col(Broadcast.id).desc()).limit(limit)).scalars())
