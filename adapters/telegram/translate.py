"""Telegram objects → the neutral `Incoming` (nothing of Telegram goes further)."""

from __future__ import annotations

from aiogram.enums import ContentType
from aiogram.types import CallbackQuery, Message, User

from bot.messages import Attachment, Incoming

PLATFORM = "telegram"

# What a person can send; anything else (service messages: pins, topic created, members joined …)
# is not a message to answer.
CONTENT: dict[str, Attachment | None] = {
    ContentType.TEXT: None,
    ContentType.PHOTO: Attachment.PHOTO,
    ContentType.LIVE_PHOTO: Attachment.PHOTO,
    ContentType.STICKER: Attachment.STICKER,
    ContentType.VOICE: Attachment.VOICE,
    ContentType.AUDIO: Attachment.AUDIO,
    ContentType.VIDEO: Attachment.VIDEO,
    ContentType.VIDEO_NOTE: Attachment.VIDEO,
    ContentType.ANIMATION: Attachment.VIDEO,
    ContentType.DOCUMENT: Attachment.DOCUMENT,
    ContentType.LOCATION: Attachment.LOCATION,
    ContentType.VENUE: Attachment.LOCATION,
    ContentType.CONTACT: Attachment.CONTACT,
    ContentType.POLL: Attachment.OTHER,
    ContentType.DICE: Attachment.OTHER,
    ContentType.GAME: Attachment.OTHER,
    ContentType.STORY: Attachment.OTHER,
    ContentType.PAID_MEDIA: Attachment.OTHER,
    ContentType.CHECKLIST: Attachment.OTHER,
}


def is_from_person(message: Message) -> bool:
    """Written or sent by someone, as opposed to a service message."""
    return message.content_type in CONTENT


def attachments(message: Message) -> tuple[Attachment, ...]:
    kind = CONTENT.get(message.content_type)
    return (kind,) if kind is not None else ()


def user_name(user: User | None) -> str:
    return user.full_name if user else ""


def from_message(message: Message, update_id: int) -> Incoming | None:
    """A citizen's message; None for a service message. A caption counts as the text."""
    if not is_from_person(message):
        return None
    return Incoming(
        platform=PLATFORM,
        chat_id=str(message.chat.id),
        user_id=str(message.from_user.id) if message.from_user else "",
        text=message.text or message.caption or "",
        update_id=str(update_id),
        attachments=attachments(message),
        user_name=user_name(message.from_user),
    )


def from_callback(query: CallbackQuery, chat_id: int, update_id: int) -> Incoming:
    """A button press: the raw callback data goes to the core, which refuses anything it did not make."""
    return Incoming(
        platform=PLATFORM,
        chat_id=str(chat_id),
        user_id=str(query.from_user.id),
        payload=query.data or "",
        update_id=str(update_id),
        user_name=user_name(query.from_user),
    )
