"""Sending, copying, editing and deleting messages, with Telegram's checks and limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    CANT_EDIT,
    CAPTION_TOO_LONG,
    COPY_NOT_FOUND,
    DELETE_NOT_FOUND,
    EDIT_NOT_FOUND,
    NO_CAPTION_TO_EDIT,
    NO_MEDIA_TO_EDIT,
    NO_TEXT_TO_EDIT,
    NOT_MODIFIED,
    REPLY_NOT_FOUND,
    TEXT_EMPTY,
    TEXT_TOO_LONG,
    URL_CONTENT_FAILED,
    ApiError,
    bad_request,
)
from ..formatting import FormattedText, format_text, utf16_len
from ..markup import check_reply_markup
from ..state import BotState, ChatState, StoredMessage
from ..validation import ATTACH_PREFIX, UploadedFile
from . import method

if TYPE_CHECKING:
    from ..emulator import Emulator

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MEDIA_GROUP_SIZE = (2, 10)
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
    }
)  # fmt: skip

Files = Mapping[str, UploadedFile]


# -- content helpers -------------------------------------------------------------------


def _text(params: dict[str, Any]) -> FormattedText:
    if "text" not in params:
        raise ApiError(400, TEXT_EMPTY)
    text = format_text(params["text"], params.get("parse_mode"), params.get("entities"))
    if not text.text:
        raise ApiError(400, TEXT_EMPTY)
    if utf16_len(text.text) > TEXT_LIMIT:
        raise ApiError(400, TEXT_TOO_LONG)
    return text


def _caption(raw: str | None, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> FormattedText:
    if not raw:
        return FormattedText("", [])
    caption = format_text(raw, parse_mode, entities)
    if utf16_len(caption.text) > CAPTION_LIMIT:
        raise ApiError(400, CAPTION_TOO_LONG)
    return caption


def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
    markup = params.get("reply_markup")
    check_reply_markup(markup)
    if markup is not None and "inline_keyboard" in markup and not any(markup["inline_keyboard"]):
        return None  # an empty inline keyboard means "no keyboard"
    return markup


def _reply_to(chat: ChatState, params: dict[str, Any]) -> StoredMessage | None:
    reply = params.get("reply_parameters")
    if reply is not None:
        message_id, allow = reply["message_id"], reply.get("allow_sending_without_reply", False)
    else:
        message_id, allow = params.get("reply_to_message_id"), params.get("allow_sending_without_reply", False)
    if message_id is None:
        return None
    target = chat.live(message_id)
    if target is None and not allow:
        raise ApiError(400, REPLY_NOT_FOUND)
    return target


def _upload(value: Any, files: Files) -> UploadedFile | str:
    if isinstance(value, str) and value.startswith(ATTACH_PREFIX):
        upload = files.get(value[len(ATTACH_PREFIX) :])
        if upload is None:
            raise bad_request(f'file "{value}" not found in the request')
        return upload
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        raise ApiError(400, URL_CONTENT_FAILED)  # the emulator has no internet, like a sealed CI box
    return value


def _photo(emu: Emulator, bot: BotState, value: Any, files: Files) -> list[dict[str, Any]]:
    source = _upload(value, files)
    if isinstance(source, UploadedFile):
        known = emu.files.distinct_uploads
        photo = emu.files.add_photo(bot.id, source)
        emu.record_upload(new=emu.files.distinct_uploads > known)
        return photo
    return emu.files.photo_by_file_id(bot.id, source)


def _document(emu: Emulator, bot: BotState, value: Any, files: Files) -> dict[str, Any]:
    source = _upload(value, files)
    if isinstance(source, UploadedFile):
        known = emu.files.distinct_uploads
        document = emu.files.add_document(bot.id, source)
        emu.record_upload(new=emu.files.distinct_uploads > known)
        return document
    return emu.files.document_by_file_id(bot.id, source)


def _new_message(emu: Emulator, bot: BotState, chat: ChatState, **content: Any) -> StoredMessage:
    message = StoredMessage(message_id=chat.allocate_id(), from_bot=True, sender=bot.account.to_api(), date=emu.unix_time(), **content)
    return chat.add(message)


def _set_markup(message: StoredMessage, markup: dict[str, Any] | None) -> None:
    # Editing without reply_markup removes an inline keyboard, but leaves a reply keyboard alone.
    if markup is None and message.reply_markup is not None and message.inline_markup is None:
        return
    message.reply_markup = markup


# -- sending ------------------------------------------------------------------------------


@method("sendMessage")
def send_message(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat = emu.writable_chat(bot, p["chat_id"])
    text = _text(p)
    markup = _markup(p)
    reply_to = _reply_to(chat, p)
    emu.acquire_send_slot(bot, chat)
    message = _new_message(emu, bot, chat, text=text.text, entities=text.entities, reply_markup=markup, reply_to=reply_to)
    emu.record_sent(bot, chat)
    return message.to_api(chat.api_chat())


@method("sendPhoto")
def send_photo(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat = emu.writable_chat(bot, p["chat_id"])
    caption = _caption(p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
    markup = _markup(p)
    reply_to = _reply_to(chat, p)
    photo = _photo(emu, bot, p["photo"], files)
    emu.acquire_send_slot(bot, chat)
    message = _new_message(
        emu, bot, chat, photo=photo, caption=caption.text or None, caption_entities=caption.entities,
        reply_markup=markup, reply_to=reply_to,
    )  # fmt: skip
    emu.record_sent(bot, chat)
    return message.to_api(chat.api_chat())


@method("sendDocument")
def send_document(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat = emu.writable_chat(bot, p["chat_id"])
    caption = _caption(p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
    markup = _markup(p)
    reply_to = _reply_to(chat, p)
    document = _document(emu, bot, p["document"], files)
    emu.acquire_send_slot(bot, chat)
    message = _new_message(
        emu, bot, chat, document=document, caption=caption.text or None, caption_entities=caption.entities,
        reply_markup=markup, reply_to=reply_to,
    )  # fmt: skip
    emu.record_sent(bot, chat)
    return message.to_api(chat.api_chat())


@method("sendMediaGroup")
def send_media_group(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> list[dict[str, Any]]:
    chat = emu.writable_chat(bot, p["chat_id"])
    media: list[dict[str, Any]] = p["media"]
    low, high = MEDIA_GROUP_SIZE
    if not low <= len(media) <= high:
        raise bad_request(f"media group must contain {low}-{high} items, got {len(media)}")
    kinds = {item["type"] for item in media}
    if len(kinds) > 1 and not kinds <= {"photo", "video"}:
        raise bad_request("Can't use the media of the specified type in the album")
    contents = []
    for item in media:
        caption = _caption(item.get("caption"), item.get("parse_mode"), item.get("caption_entities"))
        content: dict[str, Any] = {"caption": caption.text or None, "caption_entities": caption.entities}
        if item["type"] == "photo":
            content["photo"] = _photo(emu, bot, item["media"], files)
        elif item["type"] == "document":
            content["document"] = _document(emu, bot, item["media"], files)
        else:
            raise ApiError(501, f"Not Implemented: the emulator does not implement {item['type']} media")
        contents.append(content)
    reply_to = _reply_to(chat, p)
    emu.acquire_send_slot(bot, chat)
    group_id = emu.next_media_group_id()
    messages = [_new_message(emu, bot, chat, media_group_id=group_id, reply_to=reply_to, **c) for c in contents]
    emu.record_sent(bot, chat, len(messages))
    api_chat = chat.api_chat()
    return [m.to_api(api_chat) for m in messages]


@method("copyMessage")
def copy_message(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat = emu.writable_chat(bot, p["chat_id"])
    source_chat = emu.readable_chat(bot, p["from_chat_id"])
    source = source_chat.live(p["message_id"])
    if source is None:
        raise ApiError(400, COPY_NOT_FOUND)
    content: dict[str, Any] = {}
    if source.text is not None:
        content.update(text=source.text, entities=list(source.entities))
    else:
        content.update(photo=source.photo, document=source.document)
        if "caption" in p:
            caption = _caption(p["caption"], p.get("parse_mode"), p.get("caption_entities"))
            content.update(caption=caption.text or None, caption_entities=caption.entities)
        else:
            content.update(caption=source.caption, caption_entities=list(source.caption_entities))
    markup = _markup(p)
    reply_to = _reply_to(chat, p)
    emu.acquire_send_slot(bot, chat)
    message = _new_message(emu, bot, chat, reply_markup=markup, reply_to=reply_to, **content)
    emu.record_sent(bot, chat)
    return {"message_id": message.message_id}


@method("sendChatAction")
def send_chat_action(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    emu.writable_chat(bot, p["chat_id"])
    if p["action"] not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


# -- editing and deleting --------------------------------------------------------------------


def _editable(emu: Emulator, bot: BotState, p: dict[str, Any]) -> tuple[ChatState, StoredMessage]:
    if "inline_message_id" in p:
        raise bad_request("MESSAGE_ID_INVALID")  # inline-mode messages are not emulated
    if "chat_id" not in p:
        raise bad_request("chat_id is empty")
    if "message_id" not in p:
        raise bad_request("message identifier is not specified")
    chat = emu.writable_chat(bot, p["chat_id"])
    message = chat.live(p["message_id"])
    if message is None:
        raise ApiError(400, EDIT_NOT_FOUND)
    if not message.from_bot:
        raise ApiError(400, CANT_EDIT)
    return chat, message


@method("editMessageText")
def edit_message_text(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat, message = _editable(emu, bot, p)
    if message.text is None:
        raise ApiError(400, NO_TEXT_TO_EDIT)
    text = _text(p)
    markup = _markup(p)
    if text.text == message.text and text.entities == message.entities and markup == message.inline_markup:
        raise ApiError(400, NOT_MODIFIED)
    message.text, message.entities = text.text, text.entities
    _set_markup(message, markup)
    emu.record_edit(bot, chat, message)
    return message.to_api(chat.api_chat())


@method("editMessageCaption")
def edit_message_caption(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat, message = _editable(emu, bot, p)
    if message.photo is None and message.document is None:
        raise ApiError(400, NO_CAPTION_TO_EDIT)
    caption = _caption(p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
    markup = _markup(p)
    new_caption = caption.text or None
    if (new_caption, caption.entities, markup) == (message.caption, message.caption_entities, message.inline_markup):
        raise ApiError(400, NOT_MODIFIED)
    message.caption, message.caption_entities = new_caption, caption.entities
    _set_markup(message, markup)
    emu.record_edit(bot, chat, message)
    return message.to_api(chat.api_chat())


@method("editMessageReplyMarkup")
def edit_message_reply_markup(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat, message = _editable(emu, bot, p)
    markup = _markup(p)
    if markup == message.inline_markup:
        raise ApiError(400, NOT_MODIFIED)
    message.reply_markup = markup
    emu.record_edit(bot, chat, message)
    return message.to_api(chat.api_chat())


@method("editMessageMedia")
def edit_message_media(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> dict[str, Any]:
    chat, message = _editable(emu, bot, p)
    if message.photo is None and message.document is None:
        raise ApiError(400, NO_MEDIA_TO_EDIT)
    media = p["media"]
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None
    if media["type"] == "photo":
        photo = _photo(emu, bot, media["media"], files)
    elif media["type"] == "document":
        document = _document(emu, bot, media["media"], files)
    else:
        raise ApiError(501, f"Not Implemented: the emulator does not implement {media['type']} media")
    caption = _caption(media.get("caption"), media.get("parse_mode"), media.get("caption_entities"))
    markup = _markup(p)
    new_caption = caption.text or None
    same_file = (
        (photo is not None and message.photo is not None and photo[-1]["file_unique_id"] == message.photo[-1]["file_unique_id"])
        or (document is not None and message.document is not None and document["file_unique_id"] == message.document["file_unique_id"])
    )  # fmt: skip
    if same_file and (new_caption, caption.entities, markup) == (message.caption, message.caption_entities, message.inline_markup):
        raise ApiError(400, NOT_MODIFIED)
    message.photo, message.document = photo, document
    message.caption, message.caption_entities = new_caption, caption.entities
    _set_markup(message, markup)
    emu.record_edit(bot, chat, message)
    return message.to_api(chat.api_chat())


@method("deleteMessage")
def delete_message(emu: Emulator, bot: BotState, p: dict[str, Any], files: Files) -> bool:
    chat = emu.writable_chat(bot, p["chat_id"])
    message = chat.live(p["message_id"])
    if message is None:
        raise ApiError(400, DELETE_NOT_FOUND)
    emu.record_delete(bot, chat, message)
    return True
