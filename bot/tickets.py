"""Handoff to people: opening tickets, and what staff do with them.

A ticket's number is what the citizen sees ("№ 12"). Everything staff write to a citizen goes
through the persistent outbox to the citizen's platform, and every change is also put in the
outbox for the operators' desk (platform "desk"), so a Telegram forum, or any later desk, can show
it; neither side is lost when a process restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.knowledge import Knowledge
from bot.messages import Button, Reply, valid_text
from bot.records import OutboxItem, Session, Ticket, TicketMessage
from bot.safety import redact
from bot.storage.base import Store

DESK = "desk"
TRANSCRIPT_LINES = 20
# Limits per chat, so one person cannot flood the desk (each ticket is a topic and a card there).
TICKETS_PER_HOUR = 3  # tickets a chat may open in any hour (cancelled ones count)
CANCEL_COOLDOWN = 60.0  # seconds after a cancel before the chat may open another ticket
# A new ticket reaches the desk this many seconds after it opened, with everything that happened to
# it meanwhile: one cancelled at once is never shown at all (the desk drops a cancelled ticket's
# events while it has no topic yet).
SHOW_DELAY = 1.0


class TicketError(Exception):
    """A staff action that cannot be done (unknown number, already closed …); the message says why."""


def ticket_label(number: int) -> str:
    return f"№ {number}"


@dataclass(frozen=True)
class TicketView:
    ticket: Ticket
    messages: list[TicketMessage]


STATUS_NAMES = {"open": "новое", "taken": "в работе", "closed": "закрыто", "cancelled": "отменено"}
STEP_WORDS = 6  # a step is named on the desk by its flow's title and the first words of its text


def status_name(status: str) -> str:
    return STATUS_NAMES.get(status, status)


def topic_title(topic: str, k: Knowledge | None) -> str:
    return k.topics[topic].title if k and topic in k.topics else topic


def step_name(mark: str, k: Knowledge | None) -> str:
    """A step as staff read it: `account_blocked/why` → «Учётная запись заблокирована: «Почему…»»;
    the id itself when the flow or step is gone (edited away since)."""
    flow_id, _, step_id = mark.partition("/")
    flow = k.flows.get(flow_id) if k else None
    step = flow.steps.get(step_id) if flow else None
    if flow is None or step is None:
        return mark
    words = step.text.split()
    start = " ".join(words[:STEP_WORDS]) + ("…" if len(words) > STEP_WORDS else "")
    return f"{flow.title}: «{start}»"


def ticket_card(ticket: Ticket, messages: list[TicketMessage], k: Knowledge | None = None) -> str:
    """What staff see first about a ticket (plain text)."""
    topic = topic_title(ticket.topic, k)
    lines = [
        f"Обращение {ticket_label(ticket.number)} · {'СРОЧНО' if ticket.priority == 'urgent' else 'обычное'} · {topic}",
        f"Платформа: {ticket.platform}, чат {ticket.chat_id}" + (f", {ticket.user_name}" if ticket.user_name else ""),
        f"Статус: {status_name(ticket.status)}" + (f", ведёт {ticket.operator}" if ticket.operator else ""),
        f"Создано: {format_time(ticket.created_at)}, ответить до {format_time(ticket.due_at)}",
    ]
    if ticket.steps_tried:
        lines.append("Уже пробовал(а): " + "; ".join(step_name(m, k) for m in ticket.steps_tried))
    if ticket.candidates:
        lines.append(
            "Кандидаты бота: "
            + ", ".join(f"{c.get('id')} ({c.get('topic')}, {c.get('score')})" for c in ticket.candidates)
        )
    if ticket.rating is not None:
        lines.append(f"Оценка: {ticket.rating}/5")
    if messages:
        lines.append("Переписка:")
        names = {"citizen": "Гражданин", "bot": "Бот", "operator": "Оператор", "note": "Заметка", "system": "•"}
        for m in messages:
            who = names.get(m.role, m.role) + (f" ({m.author})" if m.author and m.role in ("operator", "note") else "")
            lines.append(f"{who}: {m.text}")
    return "\n".join(lines)


def desk_time(ticket: Ticket) -> float:
    """When the ticket's desk events become due: SHOW_DELAY after it opened, every one of them (a
    front end's own desk events too), so they keep their order and a quick cancel shows nothing."""
    return ticket.created_at + SHOW_DELAY


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


class Desk:
    """Ticket operations shared by the dialogue (citizen side) and every staff front end."""

    def __init__(self, store: Store, knowledge: Callable[[], Knowledge], clock: Callable[[], float] = time.time):
        self.store = store
        self.knowledge = knowledge
        self.clock = clock

    # -- citizen side ----------------------------------------------------------------------------

    async def open(
        self, session: Session, reason: str, this_turn: list[tuple[str, str]], topic: str | None = None
    ) -> Ticket:
        k = self.knowledge()
        now = self.clock()
        topic = topic or session.last_topic or "other_out_of_scope"
        if topic not in k.topics:
            topic = "other_out_of_scope"
        urgent = session.urgent_topic
        if k.topics[topic].priority != "urgent" and urgent in k.topics and k.topics[urgent].priority == "urgent":
            topic = urgent  # a hacked account mentioned earlier outweighs the question asked last
        priority = k.topics[topic].priority
        history = await self.store.recent_transcript(session.platform, session.chat_id, TRANSCRIPT_LINES)
        lines = (history + this_turn)[-TRANSCRIPT_LINES:]
        ticket = Ticket(
            number=0,
            platform=session.platform,
            chat_id=session.chat_id,
            topic=topic,
            priority=priority,
            status="open",
            created_at=now,
            due_at=now + k.answer_time[priority].minutes * 60,
            user_id=session.user_id,
            user_name=session.user_name,
            reason=reason,
            steps_tried=list(session.steps_tried),
            candidates=list(session.last_candidates),
        )
        messages = [TicketMessage(0, role, text, now) for role, text in lines]
        ticket = await self.store.create_ticket(ticket, messages)
        await self._to_desk(ticket, "opened", ticket_card(ticket, await self.store.ticket_messages(ticket.number), k))
        return ticket

    async def refusal(self, platform: str, chat_id: str) -> str | None:
        """Why this chat may not open a ticket now (a messages.yaml key), or None when it may."""
        now = self.clock()
        recent = await self.store.tickets_since(platform, chat_id, now - 3600)
        if len(recent) >= TICKETS_PER_HOUR:
            return "ticket_limit"
        cancels = [t.closed_at for t in recent if t.status == "cancelled" and t.closed_at is not None]
        if cancels and now - max(cancels) < CANCEL_COOLDOWN:
            return "ticket_cooldown"
        return None

    async def citizen_wrote(self, ticket: Ticket, text: str, attachments: tuple[str, ...] = ()) -> None:
        now = self.clock()
        body = text
        if attachments:
            body = (body + " " if body else "") + " ".join(f"[{a}]" for a in attachments)
        await self.store.add_ticket_message(TicketMessage(ticket.number, "citizen", body, now))
        await self._to_desk(ticket, "citizen", body)

    async def bot_said(self, ticket: Ticket, texts: list[str]) -> None:
        """The bot's own replies to a chat with an open ticket, kept in the ticket for staff."""
        now = self.clock()
        for text in texts:
            await self.store.add_ticket_message(TicketMessage(ticket.number, "bot", text, now))

    async def escalate(self, ticket: Ticket, topic: str) -> None:
        """The citizen wrote about an urgent topic (fraud, a hacked account): the ticket becomes urgent."""
        k = self.knowledge()
        if topic not in k.topics or k.topics[topic].priority != "urgent" or ticket.priority == "urgent":
            return
        now = self.clock()
        ticket.topic, ticket.priority = topic, "urgent"
        ticket.due_at = min(ticket.due_at, now + k.answer_time["urgent"].minutes * 60)
        await self.store.update_ticket(ticket)
        title = k.topics[topic].title
        await self.store.add_ticket_message(TicketMessage(ticket.number, "system", f"Стало срочным: {title}", now))
        await self._to_desk(ticket, "escalated", f"⚠️ Обращение {ticket_label(ticket.number)} стало срочным: {title}")

    async def cancel(self, ticket: Ticket) -> None:
        ticket.status = "cancelled"
        ticket.closed_at = self.clock()
        await self.store.update_ticket(ticket)
        await self.store.add_ticket_message(
            TicketMessage(ticket.number, "system", "Гражданин отменил обращение", ticket.closed_at)
        )
        await self._to_desk(ticket, "cancelled", f"Обращение {ticket_label(ticket.number)} отменено гражданином")

    async def rate(self, ticket: Ticket, rating: int) -> None:
        ticket.rating = rating
        await self.store.update_ticket(ticket)
        await self.store.add_ticket_message(TicketMessage(ticket.number, "system", f"Оценка {rating}/5", self.clock()))
        await self._to_desk(ticket, "rated", f"Оценка обращения {ticket_label(ticket.number)}: {rating}/5")

    # -- staff side ------------------------------------------------------------------------------

    async def get(self, number: int) -> Ticket:
        ticket = await self.store.get_ticket(number)
        if ticket is None:
            raise TicketError(f"обращения {ticket_label(number)} нет")
        return ticket

    async def view(self, number: int) -> TicketView:
        ticket = await self.get(number)
        return TicketView(ticket, await self.store.ticket_messages(number))

    async def take(self, number: int, operator: str, *, force: bool = False) -> Ticket:
        """`operator` takes the ticket. Another operator's ticket is taken over only with `force`
        (TicketError names the holder otherwise); taking one's own ticket again changes nothing."""
        operator = valid_text(operator)
        ticket = await self._open_one(number)
        holder = ticket.operator if ticket.status == "taken" else None
        if holder == operator:
            return ticket
        if holder and not force:
            raise TicketError(f"обращение {ticket_label(number)} уже ведёт {holder}")
        ticket.status = "taken"
        ticket.operator = operator
        await self.store.update_ticket(ticket)
        taken = f"Взял(а) в работу: {operator}" + (f" (вёл(а) {holder})" if holder else "")
        await self.store.add_ticket_message(TicketMessage(number, "system", taken, self.clock()))
        if holder is None:  # the citizen was told already when the first operator took it
            await self._to_citizen(ticket, Reply(self.knowledge().text("ticket_taken", ticket=ticket_label(number))))
        await self._to_desk(
            ticket,
            "taken",
            f"{operator} взял(а) обращение {ticket_label(number)}" + (f" у {holder}" if holder else ""),
        )
        return ticket

    def signer(self, ticket: Ticket, operator: str | None) -> str:
        """Who signs a staff action: the name given, else the ticket's holder, else "оператор"."""
        return valid_text(operator or ticket.operator or "оператор")

    async def reply(self, number: int, text: str, operator: str | None = None, *, to_desk: bool = True) -> Ticket:
        """Send staff's answer to the citizen; `to_desk` also shows it on the operators' desk
        (off when it was written on the desk itself). Without a name it is signed by the holder."""
        ticket = await self._open_one(number)
        operator = self.signer(ticket, operator)
        clean = redact(valid_text(text).strip()).text
        if not clean:
            raise TicketError("пустой ответ")
        if ticket.status == "open":
            ticket.status = "taken"
            ticket.operator = operator
            await self.store.update_ticket(ticket)
        await self.store.add_ticket_message(TicketMessage(number, "operator", clean, self.clock(), operator))
        k = self.knowledge()
        await self._to_citizen(ticket, Reply(k.text("operator_reply", ticket=ticket_label(number), text=clean)))
        if to_desk:
            await self._to_desk(ticket, "operator", f"{operator} → гражданину: {clean}")
        return ticket

    async def note(self, number: int, text: str, operator: str | None = None, *, to_desk: bool = True) -> Ticket:
        """An internal note: staff see it, the citizen never does."""
        ticket = await self.get(number)
        operator = self.signer(ticket, operator)
        clean = redact(valid_text(text).strip()).text
        await self.store.add_ticket_message(TicketMessage(number, "note", clean, self.clock(), operator))
        if to_desk:
            await self._to_desk(ticket, "note", f"Заметка ({operator}): {clean}")
        return ticket

    async def close(self, number: int, operator: str | None = None) -> Ticket:
        ticket = await self._open_one(number)
        operator = self.signer(ticket, operator)
        ticket.status = "closed"
        ticket.closed_at = self.clock()
        ticket.operator = ticket.operator or operator
        await self.store.update_ticket(ticket)
        await self.store.add_ticket_message(TicketMessage(number, "system", f"Закрыл(а): {operator}", ticket.closed_at))
        k = self.knowledge()
        stars = tuple(Button("⭐" * n, f"r:{number}:{n}") for n in range(1, 6))
        await self._to_citizen(ticket, Reply(k.text("ticket_closed", ticket=ticket_label(number)), stars))
        await self._to_desk(ticket, "closed", f"Обращение {ticket_label(number)} закрыто ({operator})")
        return ticket

    async def announce_overdue(self) -> list[Ticket]:
        """Put each newly overdue ticket on the desk once; returns them. The flag flips in one
        conditional step, so workers that race here announce each ticket once between them."""
        due = []
        for ticket in await self.store.list_tickets(overdue_at=self.clock()):
            if ticket.overdue_announced or not await self.store.flag_overdue(ticket.number):
                continue
            ticket.overdue_announced = True
            due.append(ticket)
            await self._to_desk(
                ticket, "overdue", f"⏰ Просрочено обращение {ticket_label(ticket.number)} ({ticket.topic})"
            )
        return due

    async def set_desk_ref(self, ticket: Ticket, desk_ref: str | None) -> None:
        ticket.desk_ref = desk_ref
        await self.store.set_desk_ref(ticket.number, desk_ref)

    # -- helpers ---------------------------------------------------------------------------------

    async def _open_one(self, number: int) -> Ticket:
        ticket = await self.get(number)
        if not ticket.is_open:
            raise TicketError(
                f"обращение {ticket_label(number)} уже {'закрыто' if ticket.status == 'closed' else 'отменено'}"
            )
        return ticket

    async def _to_citizen(self, ticket: Ticket, reply: Reply) -> None:
        await self.store.enqueue(
            OutboxItem(ticket.platform, ticket.chat_id, reply, ticket=ticket.number, created_at=self.clock())
        )

    async def _to_desk(self, ticket: Ticket, event: str, text: str) -> None:
        await self.store.enqueue(
            OutboxItem(
                DESK,
                "",
                Reply(text),
                ticket=ticket.number,
                event=event,
                created_at=self.clock(),
                next_at=0.0 if event == "overdue" else desk_time(ticket),
            )
        )
