"""What the core keeps between messages: sessions, tickets, the outbox. Plain dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from bot.messages import Button, Reply

OPEN_STATUSES = ("open", "taken")
TICKET_STATUSES = ("open", "taken", "closed", "cancelled")


@dataclass
class Session:
    """The state of one conversation (platform, chat)."""

    platform: str
    chat_id: str
    flow_id: str | None = None
    step_id: str | None = None
    history: list[str] = field(default_factory=list)  # earlier steps of the current flow, for "Назад"
    steps_tried: list[str] = field(default_factory=list)  # "flow/step" seen in this conversation
    pending_text: str | None = None  # a question typed inside a flow, waiting for "leave the flow?"
    warned: bool = False  # the "never send codes" warning was given
    warned_data: bool = False  # the "I hid your document numbers / personal data" notice was given
    last_topic: str | None = None  # the topic of the last matched question (a ticket's topic)
    last_candidates: list[dict[str, object]] = field(default_factory=list)  # the matcher's top 3 then
    urgent_topic: str | None = None  # an urgent topic seen since the last ticket: the next one is urgent
    user_id: str = ""
    user_name: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Session:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Ticket:
    number: int
    platform: str
    chat_id: str
    topic: str
    priority: str  # "urgent" | "normal"
    status: str  # one of TICKET_STATUSES
    created_at: float
    due_at: float
    user_id: str = ""
    user_name: str = ""
    reason: str = ""  # what opened it: fallback, flow_end, button, command
    operator: str | None = None
    closed_at: float | None = None
    rating: int | None = None
    steps_tried: list[str] = field(default_factory=list)
    candidates: list[dict[str, object]] = field(default_factory=list)
    desk_ref: str | None = None  # where the operators' desk shows it (a Telegram forum topic id)
    overdue_announced: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class TicketMessage:
    ticket: int
    role: str  # citizen | bot | operator | note | system
    text: str
    at: float
    author: str = ""


@dataclass
class OutboxItem:
    """A message to deliver later, retried until delivered.

    `platform` is where it goes: a citizen's platform (telegram, vk, console) or "desk" for the
    operators' desk, in which case `event` says what happened to `ticket`.
    """

    platform: str
    chat_id: str
    reply: Reply
    ticket: int | None = None
    event: str = ""
    id: int = 0
    attempts: int = 0
    next_at: float = 0.0
    status: str = "pending"  # pending | sent | dead
    error: str = ""
    created_at: float = 0.0


def reply_to_json(reply: Reply) -> str:
    return json.dumps(
        {"text": reply.text, "buttons": [[b.label, b.payload] for b in reply.buttons]}, ensure_ascii=False
    )


def reply_from_json(text: str) -> Reply:
    data = json.loads(text)
    return Reply(data["text"], tuple(Button(label, payload) for label, payload in data.get("buttons", [])))


@dataclass(frozen=True)
class UnansweredGroup:
    normalized: str
    count: int
    example: str
    last_at: float
    outcomes: str = ""  # how the bot decided them, e.g. "fallback,clarify"
