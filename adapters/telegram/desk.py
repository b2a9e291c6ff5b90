"""The operators' desk in a Telegram forum: one topic per ticket, fed from the "desk" outbox.

"opened" creates the topic (its id becomes the ticket's desk_ref) and posts the card with
"Взять"/"Закрыть"; every later event is posted in that topic; "overdue" goes to the general topic.
A topic that staff deleted is created again, with a fresh card, on the ticket's next event. A
ticket cancelled before its topic was made never gets one: its events are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.methods import CopyMessage, CreateForumTopic, ReopenForumTopic

from adapters.telegram.citizens import CAPTIONED, COPY_EVENT
from adapters.telegram.sender import Sender
from bot.dialogue import Dialogue
from bot.messages import Button, Reply
from bot.outbox import GiveUp, TryLater
from bot.records import OutboxItem, Ticket
from bot.tickets import ticket_card, ticket_label

log = logging.getLogger(__name__)

MAX_TOPIC_NAME = 128
TOPIC_GONE = ("message thread not found", "topic_deleted", "topic_id_invalid", "thread not found")
TOPIC_CLOSED = "topic_closed"
CARD_ACTIONS = {"take": "Взять", "close": "Закрыть"}


def card_buttons(number: int) -> tuple[Button, ...]:
    return tuple(Button(label, f"desk:{action}:{number}") for action, label in CARD_ACTIONS.items())


def parse_card_action(data: str | None) -> tuple[str, int] | None:
    """("take" | "close", ticket number) from a card button's callback data."""
    parts = (data or "").split(":")
    if len(parts) == 3 and parts[0] == "desk" and parts[1] in CARD_ACTIONS and parts[2].isdigit():
        return parts[1], int(parts[2])
    return None


class DeskBoard:
    """Delivers desk outbox items into the operators' forum supergroup."""

    def __init__(self, sender: Sender, dialogue: Dialogue, chat_id: int):
        self.sender = sender
        self.dialogue = dialogue
        self.chat_id = chat_id

    def topic_name(self, ticket: Ticket) -> str:
        k = self.dialogue.knowledge
        title = k.topics[ticket.topic].title if ticket.topic in k.topics else ticket.topic
        parts = [ticket_label(ticket.number), *(["СРОЧНО"] if ticket.priority == "urgent" else []), title]
        name = " · ".join(parts)
        return name if len(name) <= MAX_TOPIC_NAME else name[: MAX_TOPIC_NAME - 1] + "…"

    async def deliver(self, item: OutboxItem) -> None:
        try:
            await self._deliver(item)
        except TelegramForbiddenError as exc:
            # The bot was removed from the operators' chat: keep everything until it is back.
            log.error("the operators' chat refuses the bot: %s", exc.message)
            raise TryLater(exc.message) from exc

    async def _deliver(self, item: OutboxItem) -> None:
        if item.event == "overdue":
            await self.sender.send_reply(self.chat_id, item.reply)  # the general topic
            return
        ticket = await self.dialogue.store.get_ticket(item.ticket) if item.ticket is not None else None
        if ticket is None:
            raise GiveUp(f"no ticket {item.ticket}")
        if ticket.status == "cancelled" and ticket.desk_ref is None:
            # Cancelled before it was ever shown: a topic and a card nobody needs (ticket spam).
            raise GiveUp(f"ticket {ticket.number} was cancelled before it was shown")
        if item.event == "opened" and ticket.desk_ref is None:
            await self._new_topic(ticket, item.reply.text)
        elif item.event == "opened":  # the topic exists, the card did not make it last time
            await self._in_topic(ticket, lambda thread: self._post_card(thread, ticket, item.reply.text))
        elif item.event.startswith(COPY_EVENT):
            ref = item.event.removeprefix(COPY_EVENT)
            caption = item.reply.text if ref.endswith(CAPTIONED) else None  # None: the media has none
            message_id = int(ref.removesuffix(CAPTIONED))
            await self._in_topic(ticket, lambda thread: self._copy(thread, int(item.chat_id), message_id, caption))
        else:
            await self._in_topic(ticket, lambda thread: self._post(thread, item.reply))

    async def _in_topic(self, ticket: Ticket, action: Callable[[int], Awaitable[object]]) -> None:
        """Run `action` in the ticket's topic, making or reopening the topic when needed."""
        if ticket.desk_ref is None:
            await self._new_topic(ticket)
        assert ticket.desk_ref is not None
        thread = int(ticket.desk_ref)
        try:
            await action(thread)
        except TelegramBadRequest as exc:
            problem = exc.message.lower()
            if any(sign in problem for sign in TOPIC_GONE):
                log.info("topic of ticket %s is gone; making a new one", ticket.number)
                await action(await self._new_topic(ticket))
            elif TOPIC_CLOSED in problem:
                await self.sender.call(ReopenForumTopic(chat_id=self.chat_id, message_thread_id=thread), self.chat_id)
                await action(thread)
            else:
                raise

    async def _new_topic(self, ticket: Ticket, card: str | None = None) -> int:
        topic = await self.sender.call(
            CreateForumTopic(chat_id=self.chat_id, name=self.topic_name(ticket)), self.chat_id
        )
        thread = topic.message_thread_id
        # Saved on a fresh copy: the ticket may have changed (taken, closed) while the topic was made.
        fresh = await self.dialogue.store.get_ticket(ticket.number) or ticket
        await self.dialogue.desk.set_desk_ref(fresh, str(thread))
        ticket.desk_ref = fresh.desk_ref
        if card is None:  # a replacement topic: the card as the ticket stands now
            view = await self.dialogue.desk.view(ticket.number)
            card = ticket_card(view.ticket, view.messages, self.dialogue.knowledge)
        await self._post_card(thread, ticket, card)
        return thread

    async def _post_card(self, thread: int, ticket: Ticket, card: str) -> None:
        await self.sender.send_reply(self.chat_id, Reply(card, card_buttons(ticket.number)), thread)

    async def _post(self, thread: int, reply: Reply) -> None:
        await self.sender.send_reply(self.chat_id, reply, thread)

    async def _copy(self, thread: int, from_chat: int, message_id: int, caption: str | None) -> None:
        # An explicit caption replaces the original one, which may hold a code or a card number.
        await self.sender.call(
            CopyMessage(
                chat_id=self.chat_id,
                message_thread_id=thread,
                from_chat_id=from_chat,
                message_id=message_id,
                caption=caption,
                parse_mode=None,
            ),
            self.chat_id,
        )
