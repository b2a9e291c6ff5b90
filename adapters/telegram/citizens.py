"""Citizens' private chats: a message or button press → the core → the replies, sent in order.

Groups other than the operators' chat get silence: a ticket's content must never show up there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from aiogram.enums import ContentType
from aiogram.exceptions import TelegramForbiddenError
from aiogram.types import CallbackQuery, Message

from adapters.telegram.sender import Limits, Sender, answer_quietly
from adapters.telegram.translate import PLATFORM, from_callback, from_message
from bot.dialogue import Dialogue
from bot.messages import Incoming, Reply, valid_text
from bot.outbox import GiveUp
from bot.records import OutboxItem
from bot.safety import redact

log = logging.getLogger(__name__)

# A desk outbox event of this adapter: copy message <id> from the citizen's chat. With the suffix
# CAPTIONED the copy gets the item's text as its caption (the citizen's caption, redacted); the
# original caption never reaches the desk.
COPY_EVENT = "telegram_copy:"
CAPTIONED = ":caption"
MAX_CAPTION = 1024
# Media copied to the desk as they are: nothing in them but the file and the caption we replace.
# Polls, checklists, venues, games, stories carry free text of their own, so staff get only the
# "[other]" line in the ticket for those.
COPYABLE = frozenset(
    {
        ContentType.PHOTO,
        ContentType.VIDEO,
        ContentType.ANIMATION,
        ContentType.DOCUMENT,
        ContentType.VOICE,
        ContentType.AUDIO,
        ContentType.VIDEO_NOTE,
        ContentType.STICKER,
        ContentType.LOCATION,
        ContentType.CONTACT,
    }
)


def desk_caption(caption: str) -> str:
    """The caption as staff may see it: redacted like any message, within Telegram's limit."""
    clean = redact(valid_text(caption)).text.strip()
    return clean if len(clean) <= MAX_CAPTION else clean[: MAX_CAPTION - 1] + "…"


def desk_copy(message: Message) -> tuple[tuple[str, str], ...]:
    """The core keeps "[photo]" in the ticket; the operators also get the photo itself, with its
    caption redacted: a desk item the core queues with the turn, right after the "[photo]" line,
    when the message joins an open ticket (so it survives a crash like the turn does)."""
    if message.content_type not in COPYABLE:
        return ()
    event, shown = f"{COPY_EVENT}{message.message_id}", f"[{message.content_type}]"
    if message.caption is not None:
        event, shown = event + CAPTIONED, desk_caption(message.caption)
    return ((event, shown),)


class ChatLocks:
    """One lock per chat, so one chat's replies go out in the order its messages came in."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    async def run(self, chat_id: int, work: Callable[[], Awaitable[None]]) -> None:
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._users[chat_id] = self._users.get(chat_id, 0) + 1
        try:
            async with lock:
                await work()
        finally:
            self._users[chat_id] -= 1
            if not self._users[chat_id]:
                del self._users[chat_id]
                del self._locks[chat_id]


class Citizens:
    def __init__(
        self,
        sender: Sender,
        dialogue: Dialogue,
        limits: Limits,
        nudge: Callable[[], None],
    ):
        self.sender = sender
        self.dialogue = dialogue
        self.store = dialogue.store
        self.limits = limits
        self.nudge = nudge
        self.locks = ChatLocks()

    async def on_message(self, message: Message, update_id: int) -> None:
        if message.chat.type != "private":
            return  # a foreign group: stay silent
        incoming = from_message(message, update_id)
        if incoming is None:
            return
        incoming = dataclasses.replace(incoming, desk_extras=desk_copy(message))
        await self.locks.run(message.chat.id, lambda: self._turn(incoming, message))

    async def on_callback(self, query: CallbackQuery, update_id: int) -> None:
        await answer_quietly(query)  # first: the button stops spinning whatever happens next
        chat = query.message.chat if query.message else None
        if chat is None or chat.type != "private":
            return
        incoming = from_callback(query, chat.id, update_id)
        await self.locks.run(chat.id, lambda: self._turn(incoming, None))

    async def _turn(self, incoming: Incoming, message: Message | None) -> None:
        chat_id = int(incoming.chat_id)
        if await self.store.is_chat_blocked(PLATFORM, incoming.chat_id):
            await self.store.set_chat_blocked(PLATFORM, incoming.chat_id, False)  # they are back
        # The replies are in the outbox once this returns (committed with the turn); the outbox
        # worker sends them, in order, within the rate limits.
        handled = await self.dialogue.handle_queued(incoming)
        if handled.send_now:  # the store failed: a best-effort "technical problem" answer
            await self.deliver(chat_id, list(handled.send_now))
            return
        if not handled.queued:
            return  # a duplicate update
        self.nudge()

    async def deliver(self, chat_id: int, replies: list[Reply]) -> None:
        """Send replies that could not be stored (the store failed), once, best effort."""
        for reply in replies:
            try:
                await self.sender.send_reply(chat_id, reply)
            except Exception as exc:
                log.warning("unstored reply to a chat not sent: %s", type(exc).__name__)
                return

    async def deliver_item(self, item: OutboxItem) -> None:
        """The outbox worker's delivery of one item to a citizen."""
        if await self.store.is_chat_blocked(PLATFORM, item.chat_id):
            raise GiveUp("the chat blocked the bot")
        try:
            await self.sender.send_reply(int(item.chat_id), item.reply)
        except TelegramForbiddenError as exc:
            await self.store.set_chat_blocked(PLATFORM, item.chat_id, True)
            raise GiveUp(exc.message) from exc
