"""Reading Bot API parameters from HTTP: query string, urlencoded, multipart or JSON.

The same reader serves the bot's requests and the method a bot may put in
its answer to a webhook delivery (aiogram answers with a multipart body).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from .errors import ENTITY_TOO_LARGE, ApiError
from .validation import UploadedFile

MAX_REQUEST_BYTES = 50 * 1024 * 1024 + 64 * 1024  # Telegram's upload limit is 50 MB


def parse_body(content_type: str, body: bytes, params: dict[str, Any]) -> None:
    """Merge a JSON or urlencoded body into ``params``."""
    if not body:
        return
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON request body") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: JSON request body must be an object")
        params.update(data)
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Bad Request: request body is not valid UTF-8") from None
    params.update(parse_qsl(text, keep_blank_values=True))


async def read_multipart(reader: MultipartReader, params: dict[str, Any], files: dict[str, UploadedFile]) -> None:
    """Merge a multipart body: file parts into ``files``, the rest into ``params``."""
    total = 0
    while True:
        part = await reader.next()
        if part is None:
            return
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read(decode=True)
        total += len(data)
        if total > MAX_REQUEST_BYTES:
            raise ApiError(413, ENTITY_TOO_LARGE)
        if part.filename is not None:
            content_type = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
            files[part.name] = UploadedFile(part.filename, bytes(data), content_type)
        else:
            params[part.name] = data.decode(part.get_charset(default="utf-8"))


async def read_request(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Parameters and uploaded files of a Bot API request."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise ApiError(413, ENTITY_TOO_LARGE)
    if not request.body_exists:
        return params, files
    if request.content_type == "multipart/form-data":
        await read_multipart(await request.multipart(), params, files)
        return params, files
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, ENTITY_TOO_LARGE) from None
    parse_body(request.content_type, body, params)
    return params, files
