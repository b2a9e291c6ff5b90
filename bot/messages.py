"""The neutral contract between the core and every front end.

Adapters translate a platform update into an `Incoming`, call the core, and render each `Reply`.
No platform object ever crosses this line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Attachment(StrEnum):
    """Kinds of non-text content a citizen may send (the content itself never enters the core)."""

    PHOTO = "photo"
    STICKER = "sticker"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    LOCATION = "location"
    CONTACT = "contact"
    OTHER = "other"


@dataclass(frozen=True)
class Incoming:
    """One message or button press from a citizen.

    `payload` is set when a button was pressed (the adapter passes back exactly the string the core
    gave it in `Button.payload`; the core validates it). `update_id` lets the core drop duplicates.
    """

    platform: str
    chat_id: str
    user_id: str = ""
    text: str = ""
    payload: str | None = None
    update_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    user_name: str = ""


@dataclass(frozen=True)
class Button:
    """A button: what it says, and the opaque payload that comes back when it is pressed.

    Payloads are at most 64 bytes (Telegram's callback_data limit), ASCII.
    """

    label: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One message to show: plain text (never markup) and buttons, one per row."""

    text: str
    buttons: tuple[Button, ...] = field(default=())
