"""Message text formatting the way Telegram applies it: parse modes, entities, trimming, lengths.

Telegram parses ``parse_mode`` markup on its side and stores plain text plus
entities; limits (4096 for text, 1024 for captions) apply to the parsed text.
Malformed markup is one of the commonest production failures of a bot (a
user name with ``<`` in it, an unescaped ``.`` in MarkdownV2), so the parsers
here refuse what Telegram refuses, with Telegram's wording
(``Bad Request: can't parse entities: ...``).

Lengths and entity offsets are counted in UTF-16 code units, as in the Bot
API; this is the stricter reading of "characters" (an emoji counts twice), so
a text the emulator accepts is never too long for Telegram.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, bad_request

_WHITESPACE = " \t\r\n"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the Bot API's unit for lengths and offsets."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass(slots=True)
class FormattedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def format_text(text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> FormattedText:
    """Apply ``parse_mode`` (or explicit ``entities``) and Telegram's whitespace trimming."""
    if entities:
        result = FormattedText(text, [dict(e) for e in entities])
    elif parse_mode:
        mode = parse_mode.lower()
        if mode == "html":
            result = _HtmlParser(text).parse()
        elif mode == "markdownv2":
            result = _MarkdownV2Parser(text).parse()
        elif mode == "markdown":
            result = _MarkdownParser(text).parse()
        else:
            raise bad_request("unsupported parse_mode")
    else:
        result = FormattedText(text, [])
    return _trim(result)


def _trim(formatted: FormattedText) -> FormattedText:
    text = formatted.text
    stripped = text.strip(_WHITESPACE)
    if stripped == text:
        return formatted
    shift = utf16_len(text[: len(text) - len(text.lstrip(_WHITESPACE))])
    total = utf16_len(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return FormattedText(stripped, entities)


def _entities_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


class _Builder:
    """Accumulates output text and tracks the UTF-16 position for entity offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def entity(self, type_: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": type_, "offset": start, "length": self.pos - start, **extra})

    def byte_offset(self, index: int) -> int:
        return len(self.source[:index].encode("utf-8"))

    def result(self) -> FormattedText:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return FormattedText("".join(self.parts), self.entities)


# -- HTML ------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold", "strong": "bold",
    "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler",
    "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR_RE = re.compile(r"""\s*([a-zA-Z-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_TEXT_RUN_RE = re.compile(r"[^<&]+")


class _HtmlParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder(text)
        self.stack: list[tuple[str, int, dict[str, str], int]] = []  # tag, start, attrs, byte offset

    def parse(self) -> FormattedText:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            run = _TEXT_RUN_RE.match(text, i)
            if run:
                self.out.add(run.group())
                i = run.end()
                continue
            if text[i] == "&":
                match = _HTML_ENTITY_RE.match(text, i)
                if match:
                    self.out.add(_decode_html_entity(match.group(1)))
                    i = match.end()
                else:
                    self.out.add("&")
                    i += 1
                continue
            i = self._end_tag(i) if text.startswith("</", i) else self._start_tag(i)
        if self.stack:
            raise _entities_error(f'Can\'t find end tag corresponding to start tag "{self.stack[-1][0]}"')
        return self.out.result()

    def _start_tag(self, i: int) -> int:
        text = self.text
        j = i + 1
        while j < len(text) and text[j] not in " \t\r\n>":
            j += 1
        if j >= len(text):
            raise _entities_error(f"Unclosed start tag at byte offset {self.out.byte_offset(i)}")
        name = text[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {self.out.byte_offset(i)}')
        close = text.find(">", j)
        if close < 0:
            raise _entities_error(f"Unclosed start tag at byte offset {self.out.byte_offset(i)}")
        attrs = {
            m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
            for m in _ATTR_RE.finditer(text[j:close])
            if m.group(1)
        }
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _entities_error('Tag "span" must have class "tg-spoiler"')
        self.stack.append((name, self.out.pos, attrs, self.out.byte_offset(i)))
        return close + 1

    def _end_tag(self, i: int) -> int:
        close = self.text.find(">", i)
        if close < 0:
            raise _entities_error(f"Unclosed end tag at byte offset {self.out.byte_offset(i)}")
        name = self.text[i + 2 : close].strip().lower()
        if not self.stack:
            raise _entities_error(f"Unexpected end tag at byte offset {self.out.byte_offset(i)}")
        tag, start, attrs, _ = self.stack[-1]
        if name and name != tag:
            raise _entities_error(f'Unmatched end tag at byte offset {self.out.byte_offset(i)}, expected "</{tag}>", found "</{name}>"')
        self.stack.pop()
        entity_type = _HTML_TAGS[tag]
        extra: dict[str, Any] = {}
        if tag == "a":
            href = attrs.get("href", "")
            if href.startswith("tg://user?id="):
                entity_type, extra = "text_mention", {"user": {"id": int(href.split("=", 1)[1] or 0), "is_bot": False, "first_name": ""}}
            elif href:
                extra = {"url": href}
            else:
                return close + 1  # <a> without href is plain text
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = attrs.get("class", "")
            if language.startswith("language-"):
                pre_tag, pre_start, pre_attrs, pre_offset = self.stack[-1]
                self.stack[-1] = (pre_tag, pre_start, {**pre_attrs, "language": language[len("language-") :]}, pre_offset)
            return close + 1  # code inside pre is part of the pre entity
        elif tag == "pre" and attrs.get("language"):
            extra = {"language": attrs["language"]}
        elif tag == "blockquote" and "expandable" in attrs:
            entity_type = "expandable_blockquote"
        elif tag == "tg-emoji":
            extra = {"custom_emoji_id": attrs.get("emoji-id", "")}
        self.out.entity(entity_type, start, **extra)
        return close + 1


def _decode_html_entity(name: str) -> str:
    if name in _HTML_NAMED:
        return _HTML_NAMED[name]
    code = int(name[2:], 16) if name.startswith("#x") else int(name[1:])
    return chr(code) if 0 < code <= 0x10FFFF else ""


# -- MarkdownV2 --------------------------------------------------------------

_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip


class _MarkdownV2Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder(text)
        self.stack: list[tuple[str, int, int]] = []  # type, start, source index
        self.quote_start: int | None = None

    def parse(self) -> FormattedText:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            at_line_start = i == 0 or text[i - 1] == "\n"
            if at_line_start:
                i = self._line_start(i)
                if i >= n:
                    break
                c = text[i]
            if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                self.out.add(text[i + 1])
                i += 2
                continue
            if c not in _MDV2_RESERVED:
                self.out.add(c)
                i += 1
                continue
            i = self._markup(i)
        self._close_quote()
        if self.stack:
            kind, _, index = self.stack[-1]
            raise _entities_error(f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {self.out.byte_offset(index)}")
        return self.out.result()

    def _line_start(self, i: int) -> int:
        if self.text.startswith(">", i):
            if self.quote_start is None:
                self.quote_start = self.out.pos
            return i + 1
        self._close_quote()
        return i

    def _close_quote(self) -> None:
        if self.quote_start is not None:
            text = "".join(self.out.parts)
            trailing = utf16_len(text) - utf16_len(text.rstrip("\n"))
            self.out.pos -= trailing
            self.out.entity("blockquote", self.quote_start)
            self.out.pos += trailing
            self.quote_start = None

    def _markup(self, i: int) -> int:
        text, c = self.text, self.text[i]
        top = self.stack[-1][0] if self.stack else None
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c == "`":
            return self._code(i)
        if c == "]" and top in ("text_link", "custom_emoji"):
            return self._link_end(i)
        closing = {
            "bold": c == "*",
            "italic": c == "_" and nxt != "_",
            "underline": c == "_" and nxt == "_",
            "strikethrough": c == "~",
            "spoiler": c == "|" and nxt == "|",
        }
        if top is not None and closing.get(top):
            kind, start, _ = self.stack.pop()
            self.out.entity(kind, start)
            return i + (2 if kind in ("underline", "spoiler") else 1)
        opening = {"*": "bold", "~": "strikethrough", "[": "text_link"}
        if c == "_":
            kind = "underline" if nxt == "_" else "italic"
        elif c == "|" and nxt == "|":
            kind = "spoiler"
        elif c == "!" and nxt == "[":
            self.stack.append(("custom_emoji", self.out.pos, i))
            return i + 2
        elif c in opening:
            kind = opening[c]
        else:
            raise _entities_error(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        self.stack.append((kind, self.out.pos, i))
        return i + (2 if kind in ("underline", "spoiler") else 1)

    def _code(self, i: int) -> int:
        text = self.text
        is_pre = text.startswith("```", i)
        j = i + (3 if is_pre else 1)
        language = ""
        if is_pre:
            newline = text.find("\n", j)
            header = text[j:newline] if newline >= 0 else ""
            if newline >= 0 and header and " " not in header and "`" not in header:
                language, j = header, newline + 1
        start = self.out.pos
        while j < len(text):
            if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in "`\\":
                self.out.add(text[j + 1])
                j += 2
                continue
            if text.startswith("```" if is_pre else "`", j):
                extra = {"language": language} if language else {}
                self.out.entity("pre" if is_pre else "code", start, **extra)
                return j + (3 if is_pre else 1)
            self.out.add(text[j])
            j += 1
        kind = "Pre" if is_pre else "Code"
        raise _entities_error(f"Can't find end of {kind} entity at byte offset {self.out.byte_offset(i)}")

    def _link_end(self, i: int) -> int:
        kind, start, _ = self.stack.pop()
        text = self.text
        if not text.startswith("(", i + 1):
            return i + 1  # "[text]" without a URL stays plain text
        j, url = i + 2, []
        while j < len(text) and text[j] != ")":
            if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in ")\\":
                j += 1
            url.append(text[j])
            j += 1
        if j >= len(text):
            raise _entities_error(f"Can't find end of a URL at byte offset {self.out.byte_offset(i + 1)}")
        target = "".join(url)
        if kind == "custom_emoji":
            self.out.entity("custom_emoji", start, custom_emoji_id=target.rsplit("id=", 1)[-1])
        elif target.startswith("tg://user?id="):
            user = {"id": int(target.split("=", 1)[1] or 0), "is_bot": False, "first_name": ""}
            self.out.entity("text_mention", start, user=user)
        else:
            self.out.entity("text_link", start, url=target)
        return j + 1


# -- legacy Markdown -----------------------------------------------------------

_MD_MARKS = {"*": "bold", "_": "italic", "`": "code"}


class _MarkdownParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Builder(text)

    def parse(self) -> FormattedText:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
                self.out.add(text[i + 1])
                i += 2
            elif c in _MD_MARKS or c == "[":
                i = self._entity(i)
            else:
                self.out.add(c)
                i += 1
        return self.out.result()

    def _entity(self, i: int) -> int:
        text = self.text
        offset = self.out.byte_offset(i)
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise _entities_error(f"Can't find end of the entity starting at byte offset {offset}")
            start = self.out.pos
            self.out.add(text[i + 3 : end])
            self.out.entity("pre", start)
            return end + 3
        if text[i] == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise _entities_error(f"Can't find end of the entity starting at byte offset {offset}")
            start = self.out.pos
            self.out.add(text[i + 1 : end])
            if text.startswith("(", end + 1):
                close = text.find(")", end + 2)
                if close < 0:
                    raise _entities_error(f"Can't find end of the entity starting at byte offset {offset}")
                self.out.entity("text_link", start, url=text[end + 2 : close])
                return close + 1
            return end + 1
        mark = text[i]
        end = text.find(mark, i + 1)
        if end < 0:
            raise _entities_error(f"Can't find end of the entity starting at byte offset {offset}")
        start = self.out.pos
        self.out.add(text[i + 1 : end])
        self.out.entity(_MD_MARKS[mark], start)
        return end + 1
