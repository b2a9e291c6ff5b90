"""What operators do in their forum: write in a ticket's topic (→ the citizen), /note, /take,
/close, and the card's "Взять"/"Закрыть" buttons.

Only members of the operators' chat may act: every message and button is checked against
membership (getChatMember, cached for a few minutes and corrected at once by `chat_member`
updates); anything from someone else does nothing and is logged without personal data. When
Telegram cannot say (getChatMember fails three times), nothing is done or marked, and the operator
is told their message did not go through, so an answer never vanishes silently.

What the bot says back in the operators' chat (a refusal, "note saved", the help) is sent in the
background: the group takes one message every few seconds, and a staff update must not wait for a
slot behind the desk's backlog (with long polling, the next batch of every chat's updates would).

A staff update acts once: what it changes (the ticket's status and holder, its message, the
citizen's copy in the outbox, the desk event) is committed in one transaction together with the
update's processed mark, and the mark is written first (`Store.commit_tickets`). A crash before that
commit leaves nothing, and Telegram delivers the update again; a copy delivered again after it, or
handled by another process at the same moment, finds the mark and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiogram.exceptions import TelegramAPIError
from aiogram.methods import GetChatMember
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message

from adapters.telegram.desk import parse_card_action
from adapters.telegram.sender import Sender, answer_quietly
from adapters.telegram.translate import PLATFORM, is_from_person
from bot.dialogue import Dialogue
from bot.messages import Reply
from bot.records import Ticket
from bot.storage.base import TicketWork
from bot.tickets import TicketError

log = logging.getLogger(__name__)

MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})
MEMBERSHIP_TTL = 300.0  # seconds a getChatMember answer is trusted without a chat_member update
MAX_CACHED = 10_000
ASK_PAUSES = (0.3, 1.0)  # getChatMember is tried again after these pauses before giving up
NOT_CHECKED = (
    "Не удалось проверить, что вы сотрудник (Telegram не ответил). Сообщение не передано "
    "гражданину и ничего не изменено — отправьте его ещё раз."
)


class MembershipUnknown(Exception):
    """Telegram did not answer getChatMember: neither a member nor a stranger."""


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


def counts_as_member(status: str, is_member: bool | None = None) -> bool:
    """A ChatMember's status: in the chat (restricted members only while still in it)."""
    if status == "restricted":
        return bool(is_member)
    return status in MEMBER_STATUSES


class Membership:
    """Who is in the operators' chat, asked of Telegram and remembered for `ttl` seconds."""

    def __init__(
        self,
        sender: Sender,
        chat_id: int,
        ttl: float = MEMBERSHIP_TTL,
        clock: Callable[[], float] = time.monotonic,
        pauses: tuple[float, ...] = ASK_PAUSES,
    ):
        self.sender = sender
        self.pauses = pauses
        self.chat_id = chat_id
        self.ttl = ttl
        self.clock = clock
        self._known: dict[int, tuple[bool, float]] = {}  # user id -> (member, until)
        self._asking: dict[int, asyncio.Future[bool]] = {}
        self._overtaken: set[int] = set()  # asked about, and a chat_member update arrived meanwhile

    async def is_member(self, user_id: int) -> bool:
        """Member or not; MembershipUnknown when Telegram could not be asked (nothing is cached then)."""
        known = self._known.get(user_id)
        if known is not None and known[1] > self.clock():
            return known[0]
        # One question per person at a time: a burst of their updates waits for the same answer.
        asking = self._asking.get(user_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(user_id))
            self._asking[user_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(user_id, None))
        return await asyncio.shield(asking)

    async def _ask(self, user_id: int) -> bool:
        answer: bool | None = None
        for pause in (*self.pauses, None):
            try:
                member = await self.sender.bot(GetChatMember(chat_id=self.chat_id, user_id=user_id))
                answer = counts_as_member(member.status, getattr(member, "is_member", None))
                break
            except Exception as exc:  # an API error, a network error, an answer aiogram cannot read
                log.warning("cannot check membership in the operators' chat: %s", type(exc).__name__)
            if pause is None or user_id in self._overtaken:
                break
            await asyncio.sleep(pause)
        if user_id in self._overtaken:  # a chat_member update came while we asked: it is newer
            self._overtaken.discard(user_id)
            return self._known[user_id][0]
        if answer is None:
            raise MembershipUnknown  # not a stranger: the caller acts on nothing and says so
        self.remember(user_id, answer)
        return answer

    def remember(self, user_id: int, member: bool) -> None:
        if len(self._known) >= MAX_CACHED:
            now = self.clock()
            self._known = {u: k for u, k in self._known.items() if k[1] > now}
        self._known[user_id] = (member, self.clock() + self.ttl)

    def changed(self, update: ChatMemberUpdated) -> None:
        """A chat_member update: someone joined, left, was banned or promoted — believe it at once."""
        if update.chat.id != self.chat_id:
            return
        new = update.new_chat_member
        self.remember(new.user.id, counts_as_member(new.status, getattr(new, "is_member", None)))
        if new.user.id in self._asking:
            self._overtaken.add(new.user.id)


class TopicLocks:
    """One staff update per topic at a time, in order (a redelivered copy waits and is then skipped)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Staff:
    def __init__(self, sender: Sender, dialogue: Dialogue, chat_id: int, nudge: Callable[[], None]):
        self.sender = sender
        self.dialogue = dialogue
        self.chat_id = chat_id
        self.nudge = nudge
        self.membership = Membership(sender, chat_id)
        self._topics = TopicLocks()
        self._saying: set[asyncio.Task[None]] = set()  # answers in the operators' chat on their way

    async def is_member(self, user_id: int) -> bool:
        return await self.membership.is_member(user_id)

    async def is_staff(self, message: Message) -> bool:
        """Written by a member of the operators' chat (or by one of its anonymous admins)."""
        if message.sender_chat is not None:
            # Only the chat's administrators can post as the chat itself; any other chat (a channel
            # someone posts as, a linked channel) is not staff.
            return message.sender_chat.id == self.chat_id
        return message.from_user is not None and await self.is_member(message.from_user.id)

    async def on_message(self, message: Message, update_id: int) -> None:
        """A message in the operators' chat: only a ticket's topic is a conversation with a citizen."""
        if message.from_user is not None and message.from_user.is_bot and message.sender_chat is None:
            return
        if not message.is_topic_message or message.message_thread_id is None:
            return  # the general topic is the staff's own chat
        thread = message.message_thread_id
        answer: str | None = None
        work = TicketWork()
        async with self._topics.hold(thread):
            if await self.dialogue.store.seen_update(PLATFORM, str(update_id)):
                return  # Telegram delivered it again
            ticket = await self.dialogue.store.find_ticket_by_desk_ref(str(thread))
            if ticket is not None and is_from_person(message):
                try:
                    staff = await self.is_staff(message)
                except MembershipUnknown:
                    self._say(thread, NOT_CHECKED)  # not marked: a copy delivered again is handled
                    return
                if staff:
                    answer, work = await self._message(ticket, message)
                else:
                    command = (message.text or "").split(" ", 1)[0] if (message.text or "").startswith("/") else ""
                    log.warning(
                        "a non-member wrote in the topic of ticket %s (%s); ignored",
                        ticket.number,
                        f"command {command[:20]}" if command else str(getattr(message.content_type, "value", "")),
                    )
            if not await self._commit(work, update_id):
                return  # another process handled this update meanwhile
        if work.outbox:
            self.nudge()
        if answer:
            self._say(thread, answer)

    async def _commit(self, work: TicketWork, update_id: int) -> bool:
        """Save what the update changed with its processed mark; False if it was handled already."""
        return await self.dialogue.store.commit_tickets(work, (PLATFORM, str(update_id)), self.dialogue.clock())

    async def _message(self, ticket: Ticket, message: Message) -> tuple[str | None, TicketWork]:
        """What an operator's message changes (to commit) and what to tell them (after the commit)."""
        work = TicketWork()
        if message.text is None:
            return ONLY_TEXT, work
        try:
            return await self._act(ticket, message.text, operator_name(message), work), work
        except TicketError as exc:
            return f"Не выполнено: {exc}", TicketWork()  # nothing of a refused action is saved

    async def _act(self, ticket: Ticket, text: str, operator: str, work: TicketWork) -> str | None:
        """Do what the operator wrote (into `work`); an answer for them when the outbox won't show the result."""
        desk = self.dialogue.desk
        if not text.startswith("/"):
            await desk.reply(ticket.number, text, operator, to_desk=False, work=work)
            return None
        command, _, argument = text.partition(" ")
        command = command.split("@", 1)[0].lower()
        argument = argument.strip()
        if command == "/note":
            if not argument:
                return "Напишите заметку после команды: /note текст"
            await desk.note(ticket.number, argument, operator, to_desk=False, work=work)
            return "📝 Заметка сохранена (гражданин её не видит)."
        if command == "/take":
            await desk.take(ticket.number, operator, work=work)
            return None  # the "taken" event appears in the topic
        if command == "/close":
            await desk.close(ticket.number, operator, work=work)
            return None
        return HELP

    async def on_callback(self, query: CallbackQuery, update_id: int) -> None:
        """A card's button. Membership is checked with Telegram, not assumed from where it was pressed."""
        action = parse_card_action(query.data)
        if action is None:
            await answer_quietly(query, "Эта кнопка устарела.")
            return
        try:
            member = await self.is_member(query.from_user.id)
        except MembershipUnknown:
            await answer_quietly(query, "Не удалось проверить, что вы сотрудник. Нажмите ещё раз.", alert=True)
            return
        if not member:
            log.warning("a non-member pressed %r on the card of ticket %s; ignored", action[0], action[1])
            await answer_quietly(query, "Действовать с обращениями могут только сотрудники.", alert=True)
            return
        verb, number = action
        work = TicketWork()
        refused: str | None = None
        async with self._topics.hold(-number):  # not a topic id: card presses of one ticket in order
            if await self.dialogue.store.seen_update(PLATFORM, str(update_id)):
                await answer_quietly(query)
                return
            try:
                if verb == "take":
                    await self.dialogue.desk.take(number, query.from_user.full_name, work=work)
                else:
                    await self.dialogue.desk.close(number, query.from_user.full_name, work=work)
            except TicketError as exc:
                work, refused = TicketWork(), str(exc)
            if not await self._commit(work, update_id):
                await answer_quietly(query)
                return
        if refused is not None:
            await answer_quietly(query, refused, alert=True)
            return
        self.nudge()
        await answer_quietly(query, "Готово")

    def on_chat_member(self, update: ChatMemberUpdated) -> None:
        self.membership.changed(update)

    def _say(self, thread: int, text: str) -> None:
        """Answer in the topic without waiting for the group's send slot (see the module's note)."""
        task = asyncio.create_task(self._send(thread, text), name="staff-answer")
        self._saying.add(task)
        task.add_done_callback(self._saying.discard)

    async def _send(self, thread: int, text: str) -> None:
        try:
            await self.sender.send_reply(self.chat_id, Reply(text), thread)
        except TelegramAPIError as exc:
            log.warning("could not answer in the operators' chat: %s", exc.message)
