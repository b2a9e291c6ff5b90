"""What operators do in their forum: write in a ticket's topic (→ the citizen), /note, /take,
/close, and the card's "Взять"/"Закрыть" buttons. Only members of the operators' chat may act."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram.exceptions import TelegramAPIError
from aiogram.methods import GetChatMember
from aiogram.types import CallbackQuery, Message

from adapters.telegram.desk import parse_card_action
from adapters.telegram.sender import Sender, answer_quietly
from adapters.telegram.translate import is_from_person
from bot.dialogue import Dialogue
from bot.messages import Reply
from bot.records import Ticket
from bot.tickets import TicketError

log = logging.getLogger(__name__)

MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})
ONLY_TEXT = "Гражданину передаётся только текст. Напишите ответ словами (файлы и фото не пересылаются)."
HELP = (
    "В теме обращения:\n"
    "• просто текст — ответ гражданину;\n"
    "• /note текст — заметка для коллег (гражданин её не видит);\n"
    "• /take — взять в работу;\n"
    "• /close — закрыть (гражданину придёт просьба оценить помощь)."
)


def operator_name(message: Message) -> str:
    if message.sender_chat is not None:  # an anonymous admin
        return message.author_signature or message.sender_chat.title or "Оператор"
    return message.from_user.full_name if message.from_user else "Оператор"


class Staff:
    def __init__(self, sender: Sender, dialogue: Dialogue, chat_id: int, nudge: Callable[[], None]):
        self.sender = sender
        self.dialogue = dialogue
        self.chat_id = chat_id
        self.nudge = nudge

    async def is_member(self, user_id: int) -> bool:
        try:
            member = await self.sender.bot(GetChatMember(chat_id=self.chat_id, user_id=user_id))
        except TelegramAPIError as exc:
            log.warning("cannot check membership of %s: %s", user_id, exc.message)
            return False
        if member.status == "restricted":
            return bool(getattr(member, "is_member", False))
        return member.status in MEMBER_STATUSES

    async def on_message(self, message: Message) -> None:
        """A message in the operators' chat: only a ticket's topic is a conversation with a citizen."""
        if message.from_user is not None and message.from_user.is_bot and message.sender_chat is None:
            return
        if not message.is_topic_message or message.message_thread_id is None:
            return  # the general topic is the staff's own chat
        thread = message.message_thread_id
        ticket = await self.dialogue.store.find_ticket_by_desk_ref(str(thread))
        if ticket is None or not is_from_person(message):
            return
        if message.text is None:
            await self._say(thread, ONLY_TEXT)
            return
        try:
            answer = await self._act(ticket, message.text, operator_name(message))
        except TicketError as exc:
            answer = f"Не выполнено: {exc}"
        self.nudge()
        if answer:
            await self._say(thread, answer)

    async def _act(self, ticket: Ticket, text: str, operator: str) -> str | None:
        """Do what the operator wrote; an answer for them when the outbox won't show the result."""
        desk = self.dialogue.desk
        if not text.startswith("/"):
            await desk.reply(ticket.number, text, operator, to_desk=False)
            return None
        command, _, argument = text.partition(" ")
        command = command.split("@", 1)[0].lower()
        argument = argument.strip()
        if command == "/note":
            if not argument:
                return "Напишите заметку после команды: /note текст"
            await desk.note(ticket.number, argument, operator, to_desk=False)
            return "📝 Заметка сохранена (гражданин её не видит)."
        if command == "/take":
            await desk.take(ticket.number, operator)
            return None  # the "taken" event appears in the topic
        if command == "/close":
            await desk.close(ticket.number, operator)
            return None
        return HELP

    async def on_callback(self, query: CallbackQuery) -> None:
        """A card's button. Membership is checked with Telegram, not assumed from where it was pressed."""
        action = parse_card_action(query.data)
        if action is None:
            await answer_quietly(query, "Эта кнопка устарела.")
            return
        if not await self.is_member(query.from_user.id):
            await answer_quietly(query, "Действовать с обращениями могут только сотрудники.", alert=True)
            return
        verb, number = action
        try:
            if verb == "take":
                await self.dialogue.desk.take(number, query.from_user.full_name)
            else:
                await self.dialogue.desk.close(number, query.from_user.full_name)
        except TicketError as exc:
            await answer_quietly(query, str(exc), alert=True)
            return
        self.nudge()
        await answer_quietly(query, "Готово")

    async def _say(self, thread: int, text: str) -> None:
        try:
            await self.sender.send_reply(self.chat_id, Reply(text), thread)
        except TelegramAPIError as exc:
            log.warning("could not answer in the operators' chat: %s", exc.message)
