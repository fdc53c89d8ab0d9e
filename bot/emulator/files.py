"""Uploaded files, stable file_ids, photo sizes and downloads.

Telegram answers a photo upload with several ``PhotoSize`` entries (90, 320,
800, 1280, 2560 px boxes, up to the original size) and a file_id per size
that the bot can send again later. Here file_ids are derived from the bot and
the content hash, so the same bytes always get the same ids, and resending by
file_id returns exactly the same list. Scaled-down sizes are rendered (as
JPEG, like Telegram; a JPEG upload that needs no scaling is served as is)
only when someone downloads them, to keep uploads cheap.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .errors import (
    FILE_EMPTY,
    FILE_TOO_BIG,
    IMAGE_PROCESS_FAILED,
    PHOTO_DIMENSIONS,
    PHOTO_TOO_BIG,
    WRONG_FILE_ID,
    ApiError,
    bad_request,
)
from .validation import UploadedFile

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_DIMENSIONS_SUM = 10_000
MAX_PHOTO_RATIO = 20
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
PHOTO_BOXES = (90, 320, 800, 1280, 2560)
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    owner_bot_id: int
    kind: str  # "photo" or "document"
    file_path: str
    original: bytes  # the uploaded bytes (for a photo size: of the whole photo)
    width: int | None = None
    height: int | None = None
    render: bool = False  # a photo size Telegram re-encodes (scaled down, or not a JPEG upload): done on download
    file_name: str | None = None
    mime_type: str | None = None
    rendered: bytes | None = None
    photo_key: str | None = None  # groups the sizes of one photo

    def content(self) -> bytes:
        """The bytes a download returns."""
        if not self.render:
            return self.original
        if self.rendered is None:
            with Image.open(io.BytesIO(self.original)) as opened:
                image = opened.convert("RGB").resize((self.width or 1, self.height or 1))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=85)
            self.rendered = buffer.getvalue()
        return self.rendered

    def known_size(self) -> int | None:
        if not self.render:
            return len(self.original)
        return len(self.rendered) if self.rendered is not None else None

    def photo_size(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
        }
        size = self.known_size()
        if size is not None:
            data["file_size"] = size
        return data


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def photo_dimensions(width: int, height: int) -> list[tuple[int, int, bool]]:
    """The (width, height, scaled) of each PhotoSize Telegram makes for an image."""
    longest = max(width, height)
    sizes: list[tuple[int, int, bool]] = []
    for box in PHOTO_BOXES:
        if box >= longest:
            sizes.append((width, height, False))
            break
        scale = box / longest
        sizes.append((max(1, round(width * scale)), max(1, round(height * scale)), True))
    return sizes


class FileStore:
    """All files known to the emulator, by file_id and by download path."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._photos: dict[str, list[StoredFile]] = {}  # photo key -> sizes, smallest first
        self._counter = 0
        self.distinct_uploads = 0  # photos and documents with content not seen before

    def _ids(self, bot_id: int, digest: bytes, variant: str, prefix: str) -> tuple[str, str]:
        unique = hashlib.sha256(digest + variant.encode()).digest()
        specific = hashlib.sha256(f"{bot_id}:".encode() + unique).digest()
        return prefix + _b64(specific + unique[:8]), "AQAD" + _b64(unique[:9])

    def _path(self, folder: str, extension: str) -> str:
        self._counter += 1
        return f"{folder}/file_{self._counter}.{extension}"

    def add_photo(self, bot_id: int, upload: UploadedFile) -> list[dict[str, Any]]:
        """Store an uploaded photo (Telegram's checks included); returns its PhotoSize list."""
        data = upload.content
        if not data:
            raise ApiError(400, FILE_EMPTY)
        if len(data) > MAX_PHOTO_BYTES:
            raise ApiError(400, PHOTO_TOO_BIG)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception:  # noqa: BLE001 - anything Pillow cannot read is "cannot process", as Telegram says
            raise ApiError(400, IMAGE_PROCESS_FAILED) from None
        if width + height > MAX_PHOTO_DIMENSIONS_SUM or max(width, height) > MAX_PHOTO_RATIO * min(width, height):
            raise ApiError(400, PHOTO_DIMENSIONS)
        digest = hashlib.sha256(data).digest()
        key = f"{bot_id}:{_b64(digest)}"
        sizes = self._photos.get(key)
        if sizes is None:
            sizes = []
            for w, h, scaled in photo_dimensions(width, height):
                file_id, unique_id = self._ids(bot_id, digest, f"{w}x{h}", "AgACAgIAAxkDAAI")
                stored = StoredFile(
                    file_id=file_id,
                    file_unique_id=unique_id,
                    owner_bot_id=bot_id,
                    kind="photo",
                    file_path=self._path("photos", "jpg"),
                    original=data,
                    width=w,
                    height=h,
                    render=scaled or not data.startswith(JPEG_MAGIC),
                    mime_type=upload.content_type,
                    photo_key=key,
                )
                sizes.append(stored)
                self._by_id[file_id] = stored
                self._by_path[stored.file_path] = stored
            self._photos[key] = sizes
            self.distinct_uploads += 1
        return [s.photo_size() for s in sizes]

    def photo_by_file_id(self, bot_id: int, file_id: str) -> list[dict[str, Any]]:
        """Resend a photo by the file_id of any of its sizes."""
        stored = self._owned(bot_id, file_id)
        if stored.kind != "photo" or stored.photo_key is None:
            raise bad_request("type of file mismatch")
        return [s.photo_size() for s in self._photos[stored.photo_key]]

    def add_document(self, bot_id: int, upload: UploadedFile) -> dict[str, Any]:
        """Store an uploaded document; returns its ``Document`` object."""
        if not upload.content:
            raise ApiError(400, FILE_EMPTY)
        digest = hashlib.sha256(upload.content).digest()
        file_id, unique_id = self._ids(bot_id, digest, f"doc:{upload.filename}", "BQACAgIAAxkDAAI")
        stored = self._by_id.get(file_id)
        if stored is None:
            extension = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "bin"
            stored = StoredFile(
                file_id=file_id,
                file_unique_id=unique_id,
                owner_bot_id=bot_id,
                kind="document",
                file_path=self._path("documents", extension),
                original=upload.content,
                file_name=upload.filename,
                mime_type=upload.content_type,
            )
            self._by_id[file_id] = stored
            self._by_path[stored.file_path] = stored
            self.distinct_uploads += 1
        return self.document(stored)

    def document_by_file_id(self, bot_id: int, file_id: str) -> dict[str, Any]:
        stored = self._owned(bot_id, file_id)
        if stored.kind != "document":
            raise bad_request("type of file mismatch")
        return self.document(stored)

    @staticmethod
    def document(stored: StoredFile) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.original),
        }
        if stored.file_name:
            data["file_name"] = stored.file_name
        if stored.mime_type:
            data["mime_type"] = stored.mime_type
        return data

    def get_file(self, bot_id: int, file_id: str) -> dict[str, Any]:
        """The Bot API ``File`` for getFile (renders a photo size so its size is known)."""
        stored = self._owned(bot_id, file_id)
        content = stored.content()
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, FILE_TOO_BIG)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(content),
            "file_path": stored.file_path,
        }

    def _owned(self, bot_id: int, file_id: str) -> StoredFile:
        stored = self._by_id.get(file_id)
        if stored is None or stored.owner_bot_id != bot_id:
            raise ApiError(400, WRONG_FILE_ID)
        return stored

    def by_path(self, bot_id: int, path: str) -> StoredFile | None:
        stored = self._by_path.get(path)
        return stored if stored is not None and stored.owner_bot_id == bot_id else None

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)
