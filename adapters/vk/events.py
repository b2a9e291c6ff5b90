"""VK events (the same JSON from Bots Long Poll and the Callback API) read into small typed records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.vk.keyboard import ClientInfo, Pressed, decode_payload
from bot.messages import Attachment

CHAT_PEER_START = 2_000_000_000  # peer ids from here on are group conversations, not a citizen's chat

_ATTACHMENTS = {
    "photo": Attachment.PHOTO,
    "sticker": Attachment.STICKER,
    "audio_message": Attachment.VOICE,
    "audio": Attachment.AUDIO,
    "video": Attachment.VIDEO,
    "doc": Attachment.DOCUMENT,
}


@dataclass(frozen=True)
class VkMessage:
    """message_new from a citizen's private chat."""

    update_id: str
    peer_id: int
    user_id: int
    text: str
    pressed: Pressed | None
    attachments: tuple[Attachment, ...]
    client: ClientInfo


@dataclass(frozen=True)
class VkButtonPress:
    """message_event: a callback button was pressed (answer with messages.sendMessageEventAnswer)."""

    update_id: str
    peer_id: int
    user_id: int
    event_id: str
    pressed: Pressed


@dataclass(frozen=True)
class VkPermission:
    """message_allow / message_deny: the citizen allowed or forbade messages from the community."""

    update_id: str
    user_id: int
    allowed: bool


VkEvent = VkMessage | VkButtonPress | VkPermission


def parse_event(raw: Any) -> VkEvent | None:
    """The event, or None for anything the bot does not act on (other types, group chats, our own
    messages) or cannot read; never raises, whatever JSON came."""
    if not isinstance(raw, dict) or not isinstance(raw.get("object"), dict):
        return None
    kind, obj = raw.get("type"), raw["object"]
    if kind == "message_new":
        return _message(raw, obj)
    if kind == "message_event":
        return _button(raw, obj)
    if kind in ("message_allow", "message_deny"):
        user_id = _int(obj.get("user_id"))
        if user_id <= 0:
            return None
        return VkPermission(_update_id(raw, f"{kind}:{user_id}"), user_id, kind == "message_allow")
    return None


def _message(raw: dict[str, Any], obj: dict[str, Any]) -> VkMessage | None:
    message = obj.get("message")
    if not isinstance(message, dict):
        return None
    peer_id, user_id = _int(message.get("peer_id")), _int(message.get("from_id"))
    if not 0 < peer_id < CHAT_PEER_START or user_id <= 0 or message.get("out"):
        return None
    text = message.get("text")
    found = message.get("attachments")
    kinds = [
        _ATTACHMENTS.get(str(a.get("type")), Attachment.OTHER)
        for a in (found if isinstance(found, list) else ())
        if isinstance(a, dict)
    ]
    if message.get("geo"):
        kinds.append(Attachment.LOCATION)
    return VkMessage(
        update_id=_update_id(raw, f"m:{message.get('id') or message.get('conversation_message_id')}:{peer_id}"),
        peer_id=peer_id,
        user_id=user_id,
        text=text if isinstance(text, str) else "",
        pressed=decode_payload(message.get("payload")),
        attachments=tuple(kinds),
        client=ClientInfo.from_event(obj.get("client_info")),
    )


def _button(raw: dict[str, Any], obj: dict[str, Any]) -> VkButtonPress | None:
    peer_id, user_id = _int(obj.get("peer_id")), _int(obj.get("user_id"))
    event_id = obj.get("event_id")
    if not 0 < peer_id < CHAT_PEER_START or user_id <= 0 or not isinstance(event_id, str):
        return None
    event_id = event_id.encode("utf-8", "backslashreplace").decode()
    return VkButtonPress(
        update_id=_update_id(raw, f"e:{event_id}"),
        peer_id=peer_id,
        user_id=user_id,
        event_id=event_id,
        pressed=decode_payload(obj.get("payload")) or Pressed(forged=True),
    )


def _update_id(raw: dict[str, Any], fallback: str) -> str:
    # Every event since API 5.103 carries a unique event_id; VK repeats it when it redelivers.
    event_id = raw.get("event_id")
    chosen = event_id if isinstance(event_id, str) and event_id else fallback
    # Lone surrogates (JSON allows "\ud800") would break random_id and storage; keep ids distinct.
    return chosen.encode("utf-8", "backslashreplace").decode()


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0  # VK sends numbers; a float, list or object in their place is not an id
    try:
        return int(value)
    except ValueError:  # not digits, or too many of them
        return 0
