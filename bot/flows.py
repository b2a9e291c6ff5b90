"""Guided troubleshooting: button payloads and how flow steps become replies.

Payloads are compact ASCII strings (Telegram allows 64 bytes) that fully describe the action, so a
button from an older message still works after a restart, and anything else is refused politely.

    a:<faq_id>                  show an FAQ answer
    f:<flow_id>                 start a flow
    o:<flow_id>:<step_id>:<i>   option i of a step
    y:<flow_id> / n:<flow_id>   "helped" / "did not help" at a flow's end
    r:<ticket>:<1-5>            rate a closed ticket
    back, home, op, phone, leave, stay, cancel
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge import Flow, FlowStep, Knowledge
from bot.messages import Button, Reply

MAX_PAYLOAD = 64
SIMPLE = frozenset({"back", "home", "op", "phone", "leave", "stay", "cancel"})
_PAYLOAD = re.compile(
    r"^(?:(?P<kind>[afyn]):(?P<id>[a-z0-9_]{1,30})"
    r"|o:(?P<flow>[a-z0-9_]{1,30}):(?P<step>[a-z0-9_]{1,30}):(?P<index>\d)"
    r"|r:(?P<ticket>\d{1,9}):(?P<rating>[1-5])"
    r"|(?P<simple>[a-z]{2,6}))$"
)


@dataclass(frozen=True)
class Payload:
    kind: str  # a f o y n r or one of SIMPLE
    target: str = ""
    step: str = ""
    index: int = 0
    ticket: int = 0
    rating: int = 0


def parse_payload(raw: str | None) -> Payload | None:
    """A payload the core itself could have made, or None (forged, truncated, foreign)."""
    if not raw or len(raw.encode("utf-8", "replace")) > MAX_PAYLOAD:  # a lone surrogate is no payload of ours
        return None
    m = _PAYLOAD.fullmatch(raw)  # not match(): `$` would accept a trailing newline
    if not m:
        return None
    if m.group("kind"):
        return Payload(m.group("kind"), m.group("id"))
    if m.group("flow"):
        return Payload("o", m.group("flow"), m.group("step"), int(m.group("index")))
    if m.group("ticket"):
        return Payload("r", ticket=int(m.group("ticket")), rating=int(m.group("rating")))
    simple = m.group("simple")
    return Payload(simple) if simple in SIMPLE else None


def option_payload(flow: Flow, step: FlowStep, index: int) -> str:
    return f"o:{flow.id}:{step.id}:{index}"


def step_reply(k: Knowledge, flow: Flow, step: FlowStep, *, can_go_back: bool) -> Reply:
    """A step as a message: its text, its options, then the always-there navigation."""
    buttons = [Button(option.label, option_payload(flow, step, i)) for i, option in enumerate(step.options)]
    if step.end:
        buttons.append(Button(k.text("btn_helped"), f"y:{flow.id}"))
        buttons.append(Button(k.text("btn_not_helped"), f"n:{flow.id}"))
    if can_go_back:
        buttons.append(Button(k.text("btn_back"), "back"))
    buttons.append(Button(k.text("btn_home"), "home"))
    buttons.append(Button(k.text("btn_operator"), "op"))
    return Reply(step.text, tuple(buttons))


def menu_buttons(k: Knowledge) -> tuple[Button, ...]:
    """The start menu: every flow, then the phones."""
    return (*(Button(flow.title, f"f:{flow.id}") for flow in k.flows.values()), Button(k.text("btn_phone"), "phone"))
