"""How a `Reply` looks in VK, and how a pressed button's payload comes back. Pure functions.

VK keyboards: inline (under the message) at most 6 rows / 10 buttons; regular (under the input
field) at most 10 rows / 40 buttons; at most 5 buttons in a row; a label at most 40 characters; a
payload at most 255 bytes of JSON. A reply's buttons go inline when they fit, else to a regular
keyboard, and clients without keyboards get them as a numbered list the citizen answers by typing
the number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from bot.messages import Button, Reply

MAX_TEXT = 4096
MAX_LABEL = 40
MAX_PAYLOAD = 255
MAX_IN_ROW = 5
INLINE_ROWS, INLINE_BUTTONS = 6, 10
REGULAR_ROWS, REGULAR_BUTTONS = 10, 40
START_COMMAND = "start"  # the payload of VK's own «Начать» button: {"command":"start"}
NUMBER_HINT = "Ответьте цифрой:"


@dataclass(frozen=True)
class ClientInfo:
    """What the citizen's VK client can show (message_new's `client_info`)."""

    keyboard: bool = True
    inline_keyboard: bool = True
    button_actions: frozenset[str] = field(default_factory=lambda: frozenset({"text"}))

    @classmethod
    def from_event(cls, raw: object) -> ClientInfo:
        if not isinstance(raw, dict):
            return UNKNOWN_CLIENT
        actions = raw.get("button_actions")
        return cls(
            keyboard=bool(raw.get("keyboard", False)),
            inline_keyboard=bool(raw.get("inline_keyboard", False)),
            button_actions=frozenset(a for a in actions if isinstance(a, str))
            if isinstance(actions, list)
            else frozenset(),
        )

    @property
    def callback(self) -> bool:
        return "callback" in self.button_actions


# A chat we have not heard from since the process started (an operator's reply after a restart):
# every current VK client shows inline text buttons.
UNKNOWN_CLIENT = ClientInfo()


@dataclass(frozen=True)
class Rendered:
    """One reply as VK messages: text parts, the keyboard for the last part, and numbered options."""

    parts: tuple[str, ...]
    keyboard: str | None = None
    numbered: tuple[Button, ...] = ()  # the options shown as "1. …", for a typed number


def render(reply: Reply, client: ClientInfo) -> Rendered:
    buttons = reply.buttons
    if buttons and client.inline_keyboard and len(buttons) <= INLINE_BUTTONS:
        return Rendered(split_text(reply.text), keyboard_json(buttons, client, inline=True))
    if buttons and client.keyboard and len(buttons) <= REGULAR_BUTTONS:
        return Rendered(split_text(reply.text), keyboard_json(buttons, client, inline=False))
    return render_numbered(reply)


def render_numbered(reply: Reply) -> Rendered:
    """The buttons as a numbered list after the text (clients without keyboards, or too many buttons)."""
    if not reply.buttons:
        return Rendered(split_text(reply.text))
    options = "\n".join(f"{i}. {b.label}" for i, b in enumerate(reply.buttons, 1))
    return Rendered(split_text(f"{reply.text.rstrip()}\n\n{NUMBER_HINT}\n{options}"), numbered=reply.buttons)


def keyboard_json(buttons: tuple[Button, ...], client: ClientInfo, *, inline: bool) -> str:
    max_rows = INLINE_ROWS if inline else REGULAR_ROWS
    per_row = min(MAX_IN_ROW, -(-len(buttons) // max_rows))  # one per row while they fit
    kind = "callback" if client.callback else "text"
    rows = [
        [
            {
                "action": {"type": kind, "label": label(b.label), "payload": encode_payload(b.payload)},
                "color": "secondary",
            }
            for b in buttons[i : i + per_row]
        ]
        for i in range(0, len(buttons), per_row)
    ]
    keyboard: dict[str, object] = {"inline": inline, "buttons": rows}
    if not inline:
        keyboard["one_time"] = kind == "text"  # VK allows one_time only for message-sending buttons
    return json.dumps(keyboard, ensure_ascii=False, separators=(",", ":"))


def label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1].rstrip() + "…"


def encode_payload(core_payload: str) -> str:
    payload = json.dumps({"p": core_payload}, ensure_ascii=False, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD:  # the core keeps payloads at 64 bytes; never expected
        raise ValueError(f"button payload too long for VK: {core_payload!r}")
    return payload


@dataclass(frozen=True)
class Pressed:
    """What came back from a button: the core's payload, VK's «Начать», or something unusable."""

    core_payload: str | None = None
    start: bool = False
    forged: bool = False


def decode_payload(raw: object) -> Pressed | None:
    """A button payload as VK delivers it (a JSON string in message_new, an object in message_event).

    None when there was no payload at all. Anything we could not have sent is `forged`; the core
    answers those politely.
    """
    if raw is None or raw == "":
        return None
    data = raw
    if isinstance(raw, str):
        if len(raw.encode("utf-8", "replace")) > MAX_PAYLOAD:
            return Pressed(forged=True)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return Pressed(forged=True)
    if not isinstance(data, dict):
        return Pressed(forged=True)
    if data.get("command") == START_COMMAND:
        return Pressed(start=True)
    core_payload = data.get("p")
    if not isinstance(core_payload, str) or not core_payload:
        return Pressed(forged=True)
    return Pressed(core_payload=core_payload)


def split_text(text: str, limit: int = MAX_TEXT) -> tuple[str, ...]:
    """Cut text into messages of at most `limit` characters, at line breaks where possible."""
    text = text.strip() or "…"
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single line longer than a message: cut at a space if there is one
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = line
    if current.strip():
        parts.append(current)
    return tuple(p.strip("\n") for p in parts if p.strip())


def random_id(peer_id: int, seed: str, part: int) -> int:
    """A stable positive int32 for one message part: VK drops a resend with the same random_id."""
    digest = hashlib.blake2b(f"{peer_id}|{seed}|{part}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF or 1
