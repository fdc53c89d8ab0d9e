"""Parse modes as Telegram applies them, and waiters that wake only for their own chat."""

from __future__ import annotations

import asyncio

import pytest

from bot.emulator import ApiError, Emulator
from bot.emulator.formatting import format_text, utf16_len


@pytest.mark.parametrize(
    ("text", "mode", "plain", "entities"),
    [
        ("<b>Hi</b> &lt;3 &amp; <a href='https://x.io'>link</a>", "HTML", "Hi <3 & link",
         [{"type": "bold", "offset": 0, "length": 2}, {"type": "text_link", "offset": 8, "length": 4, "url": "https://x.io"}]),
        ("😀 <i>ok</i>", "HTML", "😀 ok", [{"type": "italic", "offset": 3, "length": 2}]),  # UTF-16 offsets
        ('<pre><code class="language-py">x = 1</code></pre>', "html", "x = 1", [{"type": "pre", "offset": 0, "length": 5, "language": "py"}]),
        ("  <b>trim</b>\n", "HTML", "trim", [{"type": "bold", "offset": 0, "length": 4}]),
        ("*b* _i_ __u__ ~s~ ||sp|| `c` [l](https://a.b)", "MarkdownV2", "b i u s sp c l",
         [{"type": "bold", "offset": 0, "length": 1}, {"type": "italic", "offset": 2, "length": 1},
          {"type": "underline", "offset": 4, "length": 1}, {"type": "strikethrough", "offset": 6, "length": 1},
          {"type": "spoiler", "offset": 8, "length": 2}, {"type": "code", "offset": 11, "length": 1},
          {"type": "text_link", "offset": 13, "length": 1, "url": "https://a.b"}]),
        (">quoted\nplain", "MarkdownV2", "quoted\nplain", [{"type": "blockquote", "offset": 0, "length": 6}]),
        ("*bold* and 3.5", "Markdown", "bold and 3.5", [{"type": "bold", "offset": 0, "length": 4}]),
    ],
)  # fmt: skip
def test_parse_modes(text: str, mode: str, plain: str, entities: list) -> None:
    formatted = format_text(text, mode, None)
    assert (formatted.text, formatted.entities) == (plain, entities)


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("<b>open", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "HTML", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("line<br>break", "HTML", 'Unsupported start tag "br" at byte offset 4'),
        ("<span>x</span>", "HTML", 'Tag "span" must have class "tg-spoiler"'),
        ("Price: 5!", "MarkdownV2", "Character '!' is reserved and must be escaped with the preceding '\\'"),
        ("*never closed", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
        ("é `code", "MarkdownV2", "Can't find end of Code entity at byte offset 3"),  # byte offsets are UTF-8
        ("_open", "Markdown", "Can't find end of the entity starting at byte offset 0"),
    ],
)
def test_malformed_markup_is_refused_like_telegram(text: str, mode: str, error: str) -> None:
    with pytest.raises(ApiError) as refused:
        format_text(text, mode, None)
    assert refused.value.description == f"Bad Request: can't parse entities: {error}"


def test_explicit_entities_win_and_unknown_modes_fail() -> None:
    entities = [{"type": "bold", "offset": 0, "length": 1}]
    assert format_text("<b>", "HTML", entities).entities == entities
    with pytest.raises(ApiError, match="unsupported parse_mode"):
        format_text("x", "BBCode", None)
    assert utf16_len("a😀") == 3


async def test_waiters_wake_for_their_own_chat_only() -> None:
    emu = Emulator()
    emu.add_bot()
    alice, bob = emu.create_user(first_name="Alice"), emu.create_user(first_name="Bob")
    evaluations = {"alice": 0}

    def alice_has_two_messages() -> bool:
        evaluations["alice"] += 1
        return len(emu.transcript(alice.id)) >= 2

    waiter = asyncio.create_task(emu.wait_for(alice_has_two_messages, timeout=5))
    await asyncio.sleep(0)
    before = evaluations["alice"]
    for i in range(20):
        await emu.send_text(bob.id, f"bob {i}")  # other chats' changes do not re-run Alice's predicate
        await asyncio.sleep(0)
    assert evaluations["alice"] == before
    await emu.send_text(alice.id, "one")
    await emu.send_text(alice.id, "two")
    assert await waiter is True
    with pytest.raises(TimeoutError, match=r"recent Bot API calls|no Bot API call yet"):
        await emu.wait_for(lambda: emu.last_message(bob.id), timeout=0.05)
