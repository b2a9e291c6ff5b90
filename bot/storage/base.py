"""The storage port. Every method is one atomic step; implementations must be safe to call from
many coroutines at once (the dialogue handles different chats concurrently)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from bot.messages import Reply
from bot.records import OutboxItem, Session, Ticket, TicketMessage, UnansweredGroup

# Stands for the number of the ticket a turn opens until the commit assigns it: ticket 0 in
# messages and outbox items, this character in texts (`ticket_label(0)`). A private-use character:
# the dialogue drops unprintable characters from what citizens write, so only the bot writes it.
NEW_TICKET = "\ue000"


def _numbered(text: str, number: int) -> str:
    return text.replace(NEW_TICKET, str(number)) if NEW_TICKET in text else text


def numbered_reply(reply: Reply, number: int) -> Reply:
    """`reply` with the new ticket's number in place of NEW_TICKET (its text and buttons)."""
    if NEW_TICKET not in reply.text and not any(NEW_TICKET in b.payload for b in reply.buttons):
        return reply
    buttons = tuple(replace(b, payload=_numbered(b.payload, number)) for b in reply.buttons)
    return Reply(_numbered(reply.text, number), buttons)


class TurnStart(NamedTuple):
    """What a turn reads first: was this update handled already; if not, the chat's session and its
    open ticket (None when there is none)."""

    seen: bool
    session: Session | None = None
    ticket: Ticket | None = None


@dataclass
class TicketWork:
    """Ticket changes saved in one transaction with what caused them: a citizen's turn
    (`Turn.tickets`) or a staff action (`Store.commit_tickets`, with the staff update's mark).

    `new` is a ticket to open (number 0): messages and outbox items of ticket 0 are its own, and
    NEW_TICKET in their texts becomes its number when the store assigns it."""

    new: Ticket | None = None
    updates: list[Ticket] = field(default_factory=list)  # whole rows, as `update_ticket` writes them
    messages: list[TicketMessage] = field(default_factory=list)
    outbox: list[OutboxItem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.updates or self.messages or self.outbox)

    def numbered(self, number: int) -> TicketWork:
        """This work with the new ticket's number filled in everywhere."""

        def item(o: OutboxItem) -> OutboxItem:
            return replace(o, ticket=number if o.ticket == 0 else o.ticket, reply=numbered_reply(o.reply, number))

        return TicketWork(
            new=replace(self.new, number=number) if self.new else None,
            updates=list(self.updates),
            messages=[
                replace(m, ticket=number if m.ticket == 0 else m.ticket, text=_numbered(m.text, number))
                for m in self.messages
            ],
            outbox=[item(o) for o in self.outbox],
        )


@dataclass(frozen=True)
class Turn:
    """Everything one handled message changes, saved together."""

    session: Session
    update_id: str | None = None
    transcript: tuple[tuple[str, str], ...] = ()  # (role, redacted text)
    unanswered: tuple[tuple[str, str, str], ...] = ()  # (redacted text, normalized, outcome)
    at: float = 0.0
    outbox: tuple[OutboxItem, ...] = field(default=())
    tickets: TicketWork | None = None  # ticket changes the turn made (a new ticket, a message, a cancel)

    def numbered(self, number: int) -> Turn:
        """This turn with the new ticket's number filled in (transcript, replies, ticket work)."""
        return replace(
            self,
            transcript=tuple((role, _numbered(text, number)) for role, text in self.transcript),
            outbox=tuple(replace(o, reply=numbered_reply(o.reply, number)) for o in self.outbox),
            tickets=self.tickets.numbered(number) if self.tickets else None,
        )


class StoreUnavailable(Exception):
    """The store cannot be opened for writing (unwritable, locked, not a database); the message says why."""


class SingleProcessOnly(Exception):
    """A role only one process may play (long polling) is already played by another process on
    this store; the message says what to do."""


class Store(ABC):
    # Exceptions that mean "the storage failed" (disk full, locked, I/O error) rather than a bug in
    # the caller: the dialogue answers the citizen "technical problem, write later" on these.
    failures: tuple[type[BaseException], ...] = ()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (connect, migrate)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    # several processes on one store
    @contextlib.asynccontextmanager
    async def chat_lock(self, platform: str, chat_id: str) -> AsyncIterator[None]:
        """Hold the chat against every other process on this store while the block runs, so one
        chat's turns run one at a time however many workers receive them. The caller holds its own
        in-process lock first (one waiter per chat per process). This default holds nothing: a
        store that only one process can serve (memory, SQLite) needs no more than that lock."""
        yield

    @contextlib.asynccontextmanager
    async def sole(self, name: str) -> AsyncIterator[bool]:
        """Hold `name` while the block runs, across every process on this store; yields False
        (holding nothing) when another process holds it: a role only one process may play, such as
        reading a platform's long-polling stream. This default yields True (one process only)."""
        yield True

    @abstractmethod
    async def claim_job(self, name: str, now: float, every: float) -> bool:
        """True for exactly one caller per period, across every process on this store: the job
        `name` is due (never run, or its last claim was `every` seconds ago or more, by `now`); its
        next run becomes `now + every`. The others get False and skip this round."""

    # conversations
    @abstractmethod
    async def seen_update(self, platform: str, update_id: str) -> bool: ...

    @abstractmethod
    async def mark_update(self, platform: str, update_id: str, at: float) -> None:
        """Remember an update handled without a conversation turn (a staff action, a skipped update)."""

    @abstractmethod
    async def load_session(self, platform: str, chat_id: str) -> Session | None: ...

    async def begin_turn(self, platform: str, chat_id: str, update_id: str | None) -> TurnStart:
        """What a turn reads first, in one step (SQL stores answer it in one round trip; this
        default makes three calls)."""
        if update_id and await self.seen_update(platform, update_id):
            return TurnStart(True)
        return TurnStart(
            False, await self.load_session(platform, chat_id), await self.open_ticket_for(platform, chat_id)
        )

    @abstractmethod
    async def commit_turn(self, turn: Turn) -> int | None:
        """Save the session, mark the update processed, append transcript, log unanswered, enqueue,
        and apply `turn.tickets`, all in one transaction. Returns the number given to the ticket the
        turn opened (`turn.tickets.new`), None when it opened none."""

    @abstractmethod
    async def commit_tickets(self, work: TicketWork, update: tuple[str, str] | None = None, at: float = 0.0) -> bool:
        """Apply ticket changes (updates, messages, outbox items; never a new ticket) in one
        transaction. With `update` (platform, update id) the update's processed mark is written
        first in that transaction: when it is there already — handled before, or by another process
        at the same moment — nothing is applied and this returns False. True when applied."""

    @abstractmethod
    async def recent_transcript(self, platform: str, chat_id: str, limit: int) -> list[tuple[str, str]]: ...

    # tickets
    @abstractmethod
    async def create_ticket(self, ticket: Ticket, messages: list[TicketMessage]) -> Ticket:
        """Store a new ticket with its first messages; returns it with its number assigned."""

    @abstractmethod
    async def get_ticket(self, number: int) -> Ticket | None: ...

    @abstractmethod
    async def open_ticket_for(self, platform: str, chat_id: str) -> Ticket | None: ...

    @abstractmethod
    async def tickets_since(self, platform: str, chat_id: str, since: float) -> list[Ticket]:
        """The chat's tickets created at or after `since`, oldest first (for the per-chat limits)."""

    @abstractmethod
    async def update_ticket(self, ticket: Ticket) -> None: ...

    @abstractmethod
    async def list_tickets(self, status: str | None = None, overdue_at: float | None = None) -> list[Ticket]: ...

    async def flag_overdue(self, number: int) -> bool:
        """Mark the ticket's overdue as announced; True only for the call that changed it (two
        workers racing to announce it: one wins). This default reads and writes, enough for a
        store one process serves; a shared store does it in one conditional update."""
        ticket = await self.get_ticket(number)
        if ticket is None or ticket.overdue_announced:
            return False
        ticket.overdue_announced = True
        await self.update_ticket(ticket)
        return True

    @abstractmethod
    async def add_ticket_message(self, message: TicketMessage) -> None: ...

    @abstractmethod
    async def ticket_messages(self, number: int) -> list[TicketMessage]: ...

    @abstractmethod
    async def set_desk_ref(self, number: int, desk_ref: str | None) -> None:
        """Only the desk reference: a desk worker must not overwrite a status changed meanwhile."""

    @abstractmethod
    async def find_ticket_by_desk_ref(self, desk_ref: str) -> Ticket | None: ...

    # outbox
    @abstractmethod
    async def enqueue(self, item: OutboxItem) -> int: ...

    @abstractmethod
    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]: ...

    @abstractmethod
    async def mark_sent(self, item_id: int) -> None: ...

    @abstractmethod
    async def retry_later(self, item_id: int, next_at: float, error: str) -> None: ...

    @abstractmethod
    async def give_up(self, item_id: int, error: str) -> None: ...

    # How long a row `due` returned stays the caller's (a store shared by workers); None: no lease.
    lease: float | None = None

    @abstractmethod
    async def renew(self, item_id: int, leased_until: float, until: float) -> bool:
        """Keep an item `due` returned for `until`, if it is still ours: pending, and its lease still
        the one `due` gave (`leased_until`, the item's `next_at`). False when the lease ran out and
        another worker took the item (or sent it): then it must not be sent here."""

    @abstractmethod
    async def release(self, item_ids: list[int], now: float) -> None:
        """Hand back items `due` returned that will not be attempted now. A store that leases what
        `due` returns (several workers) makes them due again; one that does not has nothing to do."""

    @abstractmethod
    async def pending_count(self, platform: str | None = None) -> int: ...

    # chats that cannot be written to (blocked the bot, forbid messages)
    @abstractmethod
    async def set_chat_blocked(self, platform: str, chat_id: str, blocked: bool) -> None: ...

    @abstractmethod
    async def is_chat_blocked(self, platform: str, chat_id: str) -> bool: ...

    # where a platform's event stream was last read up to (e.g. VK Long Poll's ts), saved after the
    # events before it were committed, so a restart resumes there
    @abstractmethod
    async def get_cursor(self, name: str) -> str | None: ...

    @abstractmethod
    async def set_cursor(self, name: str, value: str) -> None: ...

    # the editors' to-do list
    @abstractmethod
    async def unanswered(self, since: float, limit: int = 30) -> list[UnansweredGroup]: ...

    # personal data
    @abstractmethod
    async def purge(self, before: float) -> dict[str, int]:
        """Delete what is kept no longer than the retention period: transcripts of tickets closed or
        cancelled before `before` (and the citizen's name on them), chat transcripts, unanswered
        questions, delivered outbox items and sessions last touched before it. Returns how many rows
        of each kind went."""

    @abstractmethod
    async def forget(self, platform: str, chat_id: str) -> dict[str, int]:
        """Erase one citizen: sessions, transcripts, unanswered entries, outbox items; their tickets
        keep the number and status only (an open one is cancelled: nobody is left to answer).
        Returns how many rows of each kind were removed or emptied."""
