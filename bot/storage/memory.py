"""The in-memory twin of the SQLite store: same contract, for tests and quick runs."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import Counter, defaultdict

from bot.records import OPEN_STATUSES, OutboxItem, Session, Ticket, TicketMessage, UnansweredGroup
from bot.storage.base import Store, TicketWork, Turn


class MemoryStore(Store):
    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], Session] = {}
        self.session_at: dict[tuple[str, str], float] = {}  # when each session was last saved
        self.updates: set[tuple[str, str]] = set()
        self.transcripts: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        self.tickets: dict[int, Ticket] = {}
        self.messages: dict[int, list[TicketMessage]] = defaultdict(list)
        self.outbox: dict[int, OutboxItem] = {}
        self.blocked: set[tuple[str, str]] = set()
        self.unanswered_log: list[tuple[str, str, str, float]] = []
        self.cursors: dict[str, str] = {}
        self.unanswered_chats: list[tuple[str, str]] = []  # whose each unanswered_log entry is
        self.jobs: dict[str, float] = {}  # job name -> when it is next due

    async def claim_job(self, name: str, now: float, every: float) -> bool:
        if self.jobs.get(name, now) > now:
            return False
        self.jobs[name] = now + every
        return True

    async def seen_update(self, platform: str, update_id: str) -> bool:
        return (platform, update_id) in self.updates

    async def mark_update(self, platform: str, update_id: str, at: float) -> None:
        self.updates.add((platform, update_id))

    async def load_session(self, platform: str, chat_id: str) -> Session | None:
        session = self.sessions.get((platform, chat_id))
        return copy.deepcopy(session) if session else None

    async def commit_turn(self, turn: Turn) -> int | None:
        # No await before the last write: nothing else runs in between, so it is all or nothing.
        number = None
        if turn.tickets and turn.tickets.new:
            number = max(self.tickets, default=0) + 1
            turn = turn.numbered(number)
        key = (turn.session.platform, turn.session.chat_id)
        self.sessions[key] = copy.deepcopy(turn.session)
        self.session_at[key] = turn.at
        if turn.update_id:
            self.updates.add((turn.session.platform, turn.update_id))
        self.transcripts[key].extend(turn.transcript)
        for text, normalized, outcome in turn.unanswered:
            self.unanswered_log.append((text, normalized, outcome, turn.at))
            self.unanswered_chats.append(key)
        for item in turn.outbox:
            self._enqueue(item)
        if turn.tickets:
            self._apply(turn.tickets)
        return number

    async def commit_tickets(self, work: TicketWork, update: tuple[str, str] | None = None, at: float = 0.0) -> bool:
        if work.new is not None:
            raise ValueError("a new ticket is opened only with a citizen's turn (commit_turn)")
        if update is not None:
            if update in self.updates:
                return False
            self.updates.add(update)
        self._apply(work)
        return True

    def _apply(self, work: TicketWork) -> None:
        if work.new is not None:
            self.tickets[work.new.number] = copy.deepcopy(work.new)
        for ticket in work.updates:
            self.tickets[ticket.number] = copy.deepcopy(ticket)
        for message in work.messages:
            self.messages[message.ticket].append(message)
        for item in work.outbox:
            self._enqueue(item)

    async def recent_transcript(self, platform: str, chat_id: str, limit: int) -> list[tuple[str, str]]:
        return list(self.transcripts[(platform, chat_id)][-limit:]) if limit > 0 else []

    async def create_ticket(self, ticket: Ticket, messages: list[TicketMessage]) -> Ticket:
        number = max(self.tickets, default=0) + 1
        stored = dataclasses.replace(ticket, number=number)
        self.tickets[number] = stored
        self.messages[number] = [dataclasses.replace(m, ticket=number) for m in messages]
        return copy.deepcopy(stored)

    async def get_ticket(self, number: int) -> Ticket | None:
        ticket = self.tickets.get(number)
        return copy.deepcopy(ticket) if ticket else None

    async def open_ticket_for(self, platform: str, chat_id: str) -> Ticket | None:
        for ticket in self.tickets.values():
            if ticket.platform == platform and ticket.chat_id == chat_id and ticket.status in OPEN_STATUSES:
                return copy.deepcopy(ticket)
        return None

    async def tickets_since(self, platform: str, chat_id: str, since: float) -> list[Ticket]:
        return [
            copy.deepcopy(t)
            for t in sorted(self.tickets.values(), key=lambda t: t.number)
            if t.platform == platform and t.chat_id == chat_id and t.created_at >= since
        ]

    async def update_ticket(self, ticket: Ticket) -> None:
        self.tickets[ticket.number] = copy.deepcopy(ticket)

    async def list_tickets(self, status: str | None = None, overdue_at: float | None = None) -> list[Ticket]:
        result = []
        for ticket in sorted(self.tickets.values(), key=lambda t: t.number):
            if status and ticket.status != status:
                continue
            if overdue_at is not None and not (ticket.status in OPEN_STATUSES and ticket.due_at < overdue_at):
                continue
            result.append(copy.deepcopy(ticket))
        return result

    async def add_ticket_message(self, message: TicketMessage) -> None:
        self.messages[message.ticket].append(message)

    async def ticket_messages(self, number: int) -> list[TicketMessage]:
        return list(self.messages.get(number, []))

    async def set_desk_ref(self, number: int, desk_ref: str | None) -> None:
        self.tickets[number].desk_ref = desk_ref

    async def find_ticket_by_desk_ref(self, desk_ref: str) -> Ticket | None:
        for ticket in self.tickets.values():
            if ticket.desk_ref == desk_ref:
                return copy.deepcopy(ticket)
        return None

    async def enqueue(self, item: OutboxItem) -> int:
        return self._enqueue(item)

    def _enqueue(self, item: OutboxItem) -> int:
        item_id = max(self.outbox, default=0) + 1
        self.outbox[item_id] = dataclasses.replace(item, id=item_id)
        return item_id

    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]:
        items = [
            i for i in self.outbox.values() if i.status == "pending" and i.platform in platforms and i.next_at <= now
        ]
        return [copy.deepcopy(i) for i in sorted(items, key=lambda i: i.id)[:limit]]

    async def mark_sent(self, item_id: int) -> None:
        self.outbox[item_id].status = "sent"

    async def retry_later(self, item_id: int, next_at: float, error: str) -> None:
        item = self.outbox[item_id]
        item.attempts += 1
        item.next_at = next_at
        item.error = error

    async def renew(self, item_id: int, leased_until: float, until: float) -> bool:
        """No lease here (one process): an item `due` returned stays this process's."""
        return True

    async def release(self, item_ids: list[int], now: float) -> None:
        """`due` leases nothing here (one process): nothing to hand back."""

    async def give_up(self, item_id: int, error: str) -> None:
        item = self.outbox[item_id]
        item.status = "dead"
        item.error = error

    async def pending_count(self, platform: str | None = None) -> int:
        return sum(1 for i in self.outbox.values() if i.status == "pending" and platform in (None, i.platform))

    async def set_chat_blocked(self, platform: str, chat_id: str, blocked: bool) -> None:
        if blocked:
            self.blocked.add((platform, chat_id))
        else:
            self.blocked.discard((platform, chat_id))

    async def is_chat_blocked(self, platform: str, chat_id: str) -> bool:
        return (platform, chat_id) in self.blocked

    async def get_cursor(self, name: str) -> str | None:
        return self.cursors.get(name)

    async def set_cursor(self, name: str, value: str) -> None:
        self.cursors[name] = value

    async def unanswered(self, since: float, limit: int = 30) -> list[UnansweredGroup]:
        counts: Counter[str] = Counter()
        example: dict[str, str] = {}
        last: dict[str, float] = {}
        outcomes: dict[str, dict[str, None]] = {}
        for text, normalized, outcome, at in self.unanswered_log:
            if at < since:
                continue
            counts[normalized] += 1
            outcomes.setdefault(normalized, {})[outcome] = None
            example[normalized] = text
            last[normalized] = max(at, last.get(normalized, 0.0))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -last[kv[0]]))[:limit]
        return [UnansweredGroup(n, c, example[n], last[n], ",".join(outcomes[n])) for n, c in ranked]

    async def purge(self, before: float) -> dict[str, int]:
        counts = dict.fromkeys(("ticket_messages", "transcript", "unanswered", "outbox", "sessions", "ticket names"), 0)
        for number, ticket in self.tickets.items():
            if ticket.status not in OPEN_STATUSES and ticket.closed_at is not None and ticket.closed_at < before:
                counts["ticket_messages"] += len(self.messages.pop(number, []))
                if ticket.user_name or ticket.user_id:
                    ticket.user_name = ticket.user_id = ""
                    counts["ticket names"] += 1
        # The memory twin keeps no time per transcript line: a chat's lines go with its stale session.
        for key in [k for k, at in self.session_at.items() if at < before]:
            counts["transcript"] += len(self.transcripts.pop(key, []))
            counts["sessions"] += self.sessions.pop(key, None) is not None
            del self.session_at[key]
        keep = [i for i, entry in enumerate(self.unanswered_log) if entry[3] >= before]
        counts["unanswered"] = len(self.unanswered_log) - len(keep)
        self.unanswered_log = [self.unanswered_log[i] for i in keep]
        self.unanswered_chats = [self.unanswered_chats[i] for i in keep]
        for item_id in [i for i, item in self.outbox.items() if item.status != "pending" and item.created_at < before]:
            del self.outbox[item_id]
            counts["outbox"] += 1
        return counts

    async def forget(self, platform: str, chat_id: str) -> dict[str, int]:
        key = (platform, chat_id)
        numbers = [n for n, t in self.tickets.items() if (t.platform, t.chat_id) == key]
        counts = {
            "sessions": int(self.sessions.pop(key, None) is not None),
            "transcript": len(self.transcripts.pop(key, [])),
            "ticket_messages": sum(len(self.messages.pop(n, [])) for n in numbers),
        }
        self.session_at.pop(key, None)
        keep = [i for i, chat in enumerate(self.unanswered_chats) if chat != key]
        counts["unanswered"] = len(self.unanswered_log) - len(keep)
        self.unanswered_log = [self.unanswered_log[i] for i in keep]
        self.unanswered_chats = [self.unanswered_chats[i] for i in keep]
        outbox = [i for i, item in self.outbox.items() if (item.platform, item.chat_id) == key]
        desk = [i for i, item in self.outbox.items() if item.ticket in numbers and i not in outbox]
        for item_id in outbox + desk:
            del self.outbox[item_id]
        counts["outbox"], counts["desk events"] = len(outbox), len(desk)
        counts["blocked_chats"] = int(key in self.blocked)
        self.blocked.discard(key)
        for number in numbers:
            t = self.tickets[number]
            t.chat_id = t.user_id = t.user_name = t.reason = ""
            t.steps_tried, t.candidates, t.desk_ref, t.rating = [], [], None, None
            if t.status in OPEN_STATUSES:
                t.status, t.closed_at = "cancelled", t.closed_at or time.time()
        counts["tickets"] = len(numbers)
        return counts
