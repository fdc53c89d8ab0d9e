"""Validate and coerce Bot API call parameters against the spec.

Telegram receives parameters in three shapes: query strings and urlencoded
forms (every value a string; objects JSON-serialised), multipart forms (the
same, plus file parts) and JSON bodies (real JSON values). Top-level values
are coerced the way the real server does (``"42"`` is a fine Integer,
``"true"`` a Boolean); nested values inside JSON-serialised objects must have
their JSON type. Everything is checked against the spec: missing required
parameters, unknown parameters, wrong types, unknown or missing fields inside
objects all give 400 with Telegram's error shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request
from .spec import ArrayRef, BotApiSpec, FieldSpec, MethodSpec, ScalarRef, TypeRef

_INT_RE = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
ATTACH_PREFIX = "attach://"

# Parameters Telegram no longer documents but still accepts; aiogram sends
# ``disable_web_page_preview`` whenever DefaultBotProperties(link_preview_is_disabled=...)
# is used. Each is accepted only by methods that have its modern replacement.
LEGACY_PARAMETERS: dict[str, tuple[str, str]] = {
    # legacy name: (modern parameter that must exist on the method, scalar type)
    "disable_web_page_preview": ("link_preview_options", "Boolean"),
    "reply_to_message_id": ("reply_parameters", "Integer"),
    "allow_sending_without_reply": ("reply_parameters", "Boolean"),
}

# What Telegram says when a required parameter is missing, where it is known.
MISSING_PARAMETER_MESSAGES = {
    "chat_id": "Bad Request: chat_id is empty",
    "text": "Bad Request: message text is empty",
    "message_id": "Bad Request: message identifier is not specified",
    "photo": "Bad Request: there is no photo in the request",
    "document": "Bad Request: there is no document in the request",
    "callback_query_id": "Bad Request: query is too old and response timeout expired or query ID is invalid",
    "file_id": "Bad Request: file_id not specified",
}
# What Telegram says when a JSON-serialised parameter does not parse.
UNPARSABLE_JSON_MESSAGES = {
    "reply_markup": "Bad Request: can't parse reply keyboard markup JSON object",
    "entities": "Bad Request: can't parse entities JSON object",
    "caption_entities": "Bad Request: can't parse entities JSON object",
    "media": "Bad Request: can't parse media JSON object",
}
# How Telegram names a few types in "can't parse <label>: ..." messages.
TYPE_LABELS = {"InlineKeyboardButton": "inline keyboard button", "InlineKeyboardMarkup": "inline keyboard"}
_JSON_TYPE_NAMES = {"Integer": "Number", "Float": "Number", "String": "String", "Boolean": "Boolean", "True": "Boolean"}


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {len(self.content)} bytes)"


class _Mismatch(Exception):
    """A value does not fit a type; ``detail`` is phrased like Telegram's JSON errors."""

    def __init__(self, detail: str, where: str = "", context: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.where = where
        self.context = context


class Validator:
    """Checks one call's parameters and returns them coerced to Python values.

    ``InputFile`` parameters come back as :class:`UploadedFile` (from a file
    part, directly or through ``attach://name``); strings stay strings (a
    file_id or URL). Nested ``attach://`` references are resolved too.
    """

    def __init__(self, spec: BotApiSpec) -> None:
        self.spec = spec

    def validate(
        self,
        method: MethodSpec,
        params: Mapping[str, Any],
        files: Mapping[str, UploadedFile] | None = None,
    ) -> dict[str, Any]:
        files = files or {}
        result: dict[str, Any] = {}
        for name, raw in params.items():
            if raw is None or raw == "":
                continue  # Telegram treats empty values as absent
            field = method.fields.get(name)
            if field is None:
                result[name] = self._legacy(method, name, raw)
                continue
            result[name] = self._top_level(field, raw, files)
        for name, upload in files.items():
            field = method.fields.get(name)
            if field is not None and name not in result:
                if not field.accepts("InputFile"):
                    raise bad_request(f'parameter "{name}" can\'t be a file upload')
                result[name] = upload
        for field in method.fields.values():
            if field.required and field.name not in result:
                raise ApiError(400, MISSING_PARAMETER_MESSAGES.get(field.name, f'Bad Request: parameter "{field.name}" is required'))
        return result

    # -- top level ---------------------------------------------------------

    def _legacy(self, method: MethodSpec, name: str, raw: Any) -> Any:
        legacy = LEGACY_PARAMETERS.get(name)
        if legacy is None or legacy[0] not in method.fields:
            raise bad_request(f'unknown parameter "{name}" for method {method.name}')
        field = FieldSpec(name=name, types=(ScalarRef(legacy[1]),), required=False)
        return self._top_level(field, raw, {})

    def _top_level(self, field: FieldSpec, raw: Any, files: Mapping[str, UploadedFile]) -> Any:
        # Scalars first: a form value is a string that may spell any scalar type.
        for ref in field.types:
            if isinstance(ref, ScalarRef):
                ok, value = self._top_scalar(ref.name, raw, files)
                if ok:
                    return value
        structured = [ref for ref in field.types if not isinstance(ref, ScalarRef)]
        if not structured:
            raise bad_request(f'parameter "{field.name}" must be of type {field.type_label}')
        value = raw
        if isinstance(raw, str):
            try:
                value = json.loads(raw)
            except ValueError:
                raise ApiError(
                    400,
                    UNPARSABLE_JSON_MESSAGES.get(field.name, f'Bad Request: can\'t parse JSON object in parameter "{field.name}"'),
                ) from None
        try:
            return self._union(tuple(structured), value, "", files)
        except _Mismatch as err:
            raise self._to_api_error(field, err) from None

    @staticmethod
    def _top_scalar(scalar: str, raw: Any, files: Mapping[str, UploadedFile]) -> tuple[bool, Any]:
        if scalar == "InputFile":
            if isinstance(raw, UploadedFile):
                return True, raw
            if isinstance(raw, str) and raw.startswith(ATTACH_PREFIX):
                upload = files.get(raw[len(ATTACH_PREFIX) :])
                if upload is None:
                    raise bad_request(f'file "{raw}" not found in the request')
                return True, upload
            return False, None
        if isinstance(raw, (dict, list, UploadedFile)):
            return False, None
        if scalar == "Integer":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return True, raw
            if isinstance(raw, str) and _INT_RE.fullmatch(raw.strip()):
                return True, int(raw)
            return False, None
        if scalar == "Float":
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return True, float(raw)
            if isinstance(raw, str):
                try:
                    return True, float(raw)
                except ValueError:
                    return False, None
            return False, None
        if scalar in ("Boolean", "True"):
            if isinstance(raw, bool):
                return True, raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
                return True, raw.strip().lower() in _TRUE
            return False, None
        if scalar == "String":
            if isinstance(raw, str):
                return True, raw
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return True, str(raw)  # the real server stringifies JSON numbers
            return False, None
        return False, None

    @staticmethod
    def _to_api_error(field: FieldSpec, err: _Mismatch) -> ApiError:
        if err.detail.startswith("Bad Request"):
            return ApiError(400, err.detail)
        label = TYPE_LABELS.get(err.context, err.context) if err.context else f'parameter "{field.name}"'
        # Telegram's own wording, plus where it happened (Telegram does not say; it helps).
        return bad_request(f"can't parse {label}: {err.detail} (at {field.name}{err.where})")

    # -- nested (JSON values) ----------------------------------------------

    def _union(
        self, refs: tuple[TypeRef, ...], value: Any, where: str, files: Mapping[str, UploadedFile], context: str | None = None
    ) -> Any:
        if len(refs) == 1:
            return self._check(refs[0], value, where, files, context)
        ranked = sorted(refs, key=lambda ref: -self._score(ref, value))
        first_error: _Mismatch | None = None
        for ref in ranked:
            try:
                return self._check(ref, value, where, files, context)
            except _Mismatch as err:
                first_error = first_error or err
        assert first_error is not None
        raise first_error

    def _score(self, ref: TypeRef, value: Any) -> int:
        """How likely ``value`` was meant as ``ref``; the best guess is tried (and reported) first."""
        if isinstance(ref, ArrayRef):
            if not isinstance(value, list):
                return 0
            return 1 + (self._score(ref.item, value[0]) if value else 0)
        if isinstance(ref, ScalarRef):
            return 1 if _json_scalar_ok(ref.name, value) else 0
        spec = self.spec.types.get(ref.name)
        if spec is None or not isinstance(value, dict):
            return 0
        if spec.subtypes is not None:
            return max((self._score(sub, value) for sub in spec.subtypes), default=0)
        fields = spec.fields or {}
        score = 1
        for f in fields.values():
            if f.const is not None and value.get(f.name) == f.const:
                score += 10
        if all(name in value for name in spec.required_fields):
            score += 2
        if all(key in fields for key in value):
            score += 1
        return score

    def _check(self, ref: TypeRef, value: Any, where: str, files: Mapping[str, UploadedFile], context: str | None) -> Any:
        if isinstance(ref, ScalarRef):
            return self._check_scalar(ref.name, value, where, files, context)
        if isinstance(ref, ArrayRef):
            if not isinstance(value, list):
                raise _Mismatch(f"{_subject(where)} must be of type Array", where, context)
            return [self._check(ref.item, item, f"{where}[{i}]", files, context) for i, item in enumerate(value)]
        return self._check_object(ref.name, value, where, files, context)

    def _check_scalar(self, scalar: str, value: Any, where: str, files: Mapping[str, UploadedFile], context: str | None) -> Any:
        if scalar == "InputFile":
            if isinstance(value, str) and value.startswith(ATTACH_PREFIX):
                upload = files.get(value[len(ATTACH_PREFIX) :])
                if upload is None:
                    raise _Mismatch(f'Bad Request: file "{value}" not found in the request', where, context)
                return upload
            raise _Mismatch(f"{_subject(where)} must be a file attached as attach://<name>", where, context)
        if not _json_scalar_ok(scalar, value):
            raise _Mismatch(f"{_subject(where)} must be of type {_JSON_TYPE_NAMES.get(scalar, scalar)}", where, context)
        return float(value) if scalar == "Float" else value

    def _check_object(self, type_name: str, value: Any, where: str, files: Mapping[str, UploadedFile], context: str | None) -> Any:
        spec = self.spec.types.get(type_name)
        if spec is None:
            raise _Mismatch(f"unknown type {type_name}", where, context)
        if spec.subtypes is not None:
            return self._union(spec.subtypes, value, where, files, context or type_name)
        if not isinstance(value, dict):
            raise _Mismatch(f"{_subject(where)} must be an Object", where, context or type_name)
        fields = spec.fields
        if fields is None:
            return dict(value)  # placeholder type such as CallbackGame
        out: dict[str, Any] = {}
        for key, item in value.items():
            field = fields.get(key)
            path = f"{where}.{key}"
            if field is None:
                raise _Mismatch(f'unknown field "{key}"', path, type_name)
            if item is None:
                continue  # JSON null means absent
            if field.const is not None and item != field.const:
                raise _Mismatch(f'Field "{key}" must be "{field.const}"', path, type_name)
            out[key] = self._union(field.types, item, path, files, type_name)
        for name in spec.required_fields:
            if name not in out:
                raise _Mismatch(f'Can\'t find field "{name}"', where, type_name)
        return out


def _json_scalar_ok(scalar: str, value: Any) -> bool:
    if scalar == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if scalar == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if scalar in ("Boolean", "True"):
        return isinstance(value, bool)
    if scalar == "String":
        return isinstance(value, str)
    return False


def _subject(where: str) -> str:
    """Telegram-style subject of a type error: ``Field "text"``, or an array element."""
    tail = where.rsplit(".", 1)[-1]
    if not where:
        return "Value"
    if tail.endswith("]"):
        return "Array element"
    return f'Field "{tail}"'
