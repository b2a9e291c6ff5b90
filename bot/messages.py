"""The neutral contract between the core and every front end.

Adapters translate a platform update into an `Incoming`, call the core, and render each `Reply`.
No platform object ever crosses this line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from enum import StrEnum

# A str can hold UTF-16 surrogates that no UTF-8 encoder accepts (JSON allows "\ud800"; Python
# decodes undecodable bytes to them): SQLite, JSON output and every platform API would refuse them.
_SURROGATE = re.compile("[\ud800-\udfff]")


_IDS = frozenset({"platform", "chat_id", "user_id", "update_id"})


def valid_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, so it can always be encoded as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


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
    # (event, text) items for the operators' desk that go with this message if it joins an open
    # ticket (a front end's copy of a photo), saved with the turn like everything else
    desk_extras: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Whatever a platform delivered, the core only ever sees text it can store and send.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and _SURROGATE.search(value):
                # Ids stay distinct ("\\ud800" and "\\udfff" are two updates); texts get U+FFFD.
                fixed = value.encode("utf-8", "backslashreplace").decode() if f.name in _IDS else valid_text(value)
                object.__setattr__(self, f.name, fixed)


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
