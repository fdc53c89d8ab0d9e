"""Image intake and phone-sized copies.

Every image is checked before it becomes a task: it decodes, it is not a decompression bomb,
its format and size are within limits. Phone copies (long side <= 1280 px, JPEG) are what gets
uploaded to Telegram; originals are never modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlmodel import Session, col

from bot.tasks.models import Image

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
MIN_SIDE = 16


class ImageRejected(ValueError):
    """The file is not an image we can show a worker; the message says why."""


@dataclass(frozen=True, slots=True)
class CheckedImage:
    path: Path
    sha256: str
    width: int
    height: int
    format: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_image(path: Path, *, max_pixels: int = 40_000_000, max_bytes: int = 30 * 1024 * 1024) -> CheckedImage:
    """Validate without trusting the header alone: the pixels must decode."""
    try:
        with path.open("rb") as fh:  # read once: hashed and decoded from memory
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(max_bytes + 1) if 0 < size <= max_bytes else b""
    except OSError as exc:
        raise ImageRejected(f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageRejected("file is empty")
    if size > max_bytes:
        raise ImageRejected(f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt = img.format or "?"
            width, height = img.size
            if fmt not in ALLOWED_FORMATS:
                raise ImageRejected(f"format {fmt} is not supported (use JPEG, PNG or WEBP)")
            if width * height > max_pixels:
                raise ImageRejected(
                    f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                    f"{max_pixels / 1e6:.0f} MP limit (possible decompression bomb)"
                )
            if min(width, height) < MIN_SIDE:
                raise ImageRejected(f"{width}x{height} is too small to label")
            # JPEG at 1/8 scale: every block is still entropy-decoded (so truncation and
            # corrupt streams fail), only the inverse DCT is cut: half the time of full size.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    except ImageRejected:
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"not a readable image ({exc.__class__.__name__}: {exc})") from None
    return CheckedImage(path=path, sha256=hashlib.sha256(data).hexdigest(), width=width, height=height, format=fmt)


def find_by_hash(session: Session, sha256: str) -> Image | None:
    return session.execute(select(Image).where(col(Image.sha256) == sha256)).scalars().first()


def store_image(session: Session, checked: CheckedImage, *, media_dir: Path | None, copy: bool = True) -> tuple[Image, bool]:
    """Add the image once per content hash; returns (image, created)."""
    existing = find_by_hash(session, checked.sha256)
    if existing is not None:
        return existing, False
    path = checked.path.resolve()
    if copy:
        if media_dir is None:
            raise ValueError("copy mode needs a media folder")
        path = copy_to_media(path, checked.sha256, media_dir)
    image = Image(sha256=checked.sha256, path=str(path), width=checked.width, height=checked.height)
    session.add(image)
    session.flush()
    return image, True


_MADE_DIRS: set[str] = set()


def copy_to_media(source: Path, sha256: str, media_dir: Path) -> Path:
    """Copy once into the content-addressed originals folder; safe to repeat and to race.

    Plain ``os`` calls and a cache of created folders: loading thousands of images spends
    more time in path handling and ``mkdir`` than in copying bytes otherwise.
    """
    target_dir = os.path.join(os.path.abspath(media_dir), "originals", sha256[:2])
    if target_dir not in _MADE_DIRS:
        os.makedirs(target_dir, exist_ok=True)
        _MADE_DIRS.add(target_dir)
    target = os.path.join(target_dir, f"{sha256}{source.suffix.lower() or '.img'}")
    if not os.path.exists(target):
        tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.part"
        try:
            shutil.copyfile(source, tmp)
        except FileNotFoundError:
            if not source.exists():
                raise
            os.makedirs(target_dir, exist_ok=True)  # the folder was removed since we made it
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return Path(target)


PARTIAL_MAX_AGE_S = 3600.0  # a ``.part`` file this old is abandoned even if its pid now names another process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's), or not a pid we can judge: leave it to the age rule
    return True


def remove_partial_copies(media_dir: Path, *, max_age_s: float = PARTIAL_MAX_AGE_S, now: float | None = None) -> int:
    """Remove ``*.<pid>.<thread>.part`` files that a killed copy left in the media folder.

    A file is removed when the process that wrote it is gone, or when it is older than
    ``max_age_s`` (a crashed process on another machine sharing the folder, or a reused pid);
    a copy in progress in a live process is left alone. Returns how many were removed.
    """
    now = time.time() if now is None else now
    removed = 0
    for area in ("originals", "phone"):
        root = os.path.join(os.path.abspath(media_dir), area)
        if not os.path.isdir(root):
            continue
        for folder in os.scandir(root):
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(folder.path):
                if not entry.name.endswith(".part") or not entry.is_file(follow_symlinks=False):
                    continue
                parts = entry.name.split(".")
                pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
                try:
                    old = now - entry.stat(follow_symlinks=False).st_mtime > max_age_s
                except FileNotFoundError:
                    continue  # finished meanwhile
                dead = pid is not None and pid != os.getpid() and not _pid_alive(pid)
                if old or dead:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed


def phone_jpeg(source: Path, *, long_side: int = 1280, quality: int = 85) -> bytes:
    """A phone-sized JPEG of ``source`` (EXIF rotation applied, alpha flattened on white)."""
    with PILImage.open(source) as opened:
        opened.draft("RGB", (long_side, long_side))
        img: PILImage.Image = ImageOps.exif_transpose(opened)
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            background = PILImage.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.split()[-1])
            img = background
        elif img.mode != "RGB":
            img = img.convert("RGB")
        if max(img.size) > long_side:
            img.thumbnail((long_side, long_side), PILImage.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=True)
        return out.getvalue()


def ensure_phone_copy(image_path: str, sha256: str, media_dir: Path, *, long_side: int = 1280) -> Path:
    """Write (once) and return the phone copy for an image."""
    target = media_dir / "phone" / sha256[:2] / f"{sha256}.jpg"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")  # writers may race
        tmp.write_bytes(phone_jpeg(Path(image_path), long_side=long_side))
        tmp.replace(target)
    return target
