"""SQLite through aiosqlite: one file, WAL, numbered migrations (shared with PostgreSQL).

One connection serves the whole process; an asyncio lock makes each trip to it one step, so
concurrent chats never interleave statements and SQLite never reports "database is locked" inside a
process. Other processes (the `gosbot tickets` commands while the bot runs) wait on busy_timeout.

Every read and write goes through a `Batcher` (bot/storage/sqlite_batch.py): what concurrent chats
ask while the connection's thread is busy is taken together in the next trip, one hop across
threads for all of it, and the turns (`commit_turn`: session, update mark, transcript, unanswered
log, outbox) of one trip are written in one transaction with one COMMIT (group commit). A caller is
answered only after its COMMIT returned. `begin_turn` (duplicate mark, session, open ticket) is one
function call in a trip.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.records import OPEN_STATUSES, OutboxItem, Session, Ticket, TicketMessage, UnansweredGroup
from bot.storage.base import Store, StoreUnavailable, TicketWork, Turn, TurnStart
from bot.storage.migrations import render
from bot.storage.rows import (
    OUTBOX_COLUMNS,
    TICKET_COLUMNS,
    TICKET_UPDATE_COLUMNS,
    outbox_from_row,
    outbox_values,
    ticket_from_row,
    ticket_update_values,
    ticket_values,
)
from bot.storage.sqlite_batch import Batcher

MIGRATIONS = render("sqlite")

T = TypeVar("T")

_INSERT_OUTBOX = f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_INSERT_TICKET = f"INSERT INTO tickets ({TICKET_COLUMNS.split(', ', 1)[1]}) VALUES ({','.join('?' * 17)})"
_UPDATE_TICKET = f"UPDATE tickets SET {', '.join(f'{c}=?' for c in TICKET_UPDATE_COLUMNS)} WHERE number=?"


def _begin_turn(
    con: sqlite3.Connection, platform: str, chat_id: str, update_id: str | None
) -> tuple[bool, str | None, sqlite3.Row | None]:
    if update_id:
        seen = con.execute(
            "SELECT 1 FROM processed_updates WHERE platform=? AND update_id=?", (platform, update_id)
        ).fetchone()
        if seen:
            return True, None, None
    row = con.execute("SELECT state FROM sessions WHERE platform=? AND chat_id=?", (platform, chat_id)).fetchone()
    ticket = con.execute(_OPEN_TICKET, (platform, chat_id, *OPEN_STATUSES)).fetchone()
    return False, row[0] if row else None, ticket


_OPEN_TICKET = (
    f"SELECT {TICKET_COLUMNS} FROM tickets WHERE platform=? AND chat_id=? AND status IN (?, ?) "
    "ORDER BY number DESC LIMIT 1"
)
_INSERT_MESSAGE = "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES (?,?,?,?,?)"


def _apply_tickets(con: sqlite3.Connection, work: TicketWork) -> None:
    """Ticket changes inside the caller's transaction (`work.new` already numbered and inserted)."""
    if work.updates:
        con.executemany(_UPDATE_TICKET, [ticket_update_values(t) for t in work.updates])
    if work.messages:
        con.executemany(_INSERT_MESSAGE, [(m.ticket, m.role, m.text, m.author, m.at) for m in work.messages])
    if work.outbox:
        con.executemany(_INSERT_OUTBOX, [outbox_values(item) for item in work.outbox])


def _commit_tickets(con: sqlite3.Connection, work: TicketWork, update: tuple[str, str] | None, at: float) -> bool:
    try:
        if update is not None:
            # The mark first: a second copy of the update (another process) finds it and changes nothing.
            marked = con.execute(
                "INSERT INTO processed_updates (platform, update_id, at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                (*update, at),
            ).rowcount
            if not marked:
                con.rollback()
                return False
        _apply_tickets(con, work)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return True


def _open_ticket(con: sqlite3.Connection, turn: Turn) -> tuple[int | None, Turn]:
    """Insert the ticket the turn opens, if any: its number, and the turn with that number in it."""
    if not (turn.tickets and turn.tickets.new):
        return None, turn
    number = con.execute(_INSERT_TICKET, ticket_values(turn.tickets.new)).lastrowid
    assert number is not None
    return number, turn.numbered(number)


def _write_turn(con: sqlite3.Connection, turn: Turn) -> int | None:
    """A turn's writes, not committed (the batcher commits the turns of a trip together); returns
    the number of the ticket the turn opens, if any."""
    number, turn = _open_ticket(con, turn)
    s = turn.session
    con.execute(
        "INSERT INTO sessions (platform, chat_id, state, updated_at) VALUES (?,?,?,?) "
        "ON CONFLICT (platform, chat_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
        (s.platform, s.chat_id, s.to_json(), turn.at),
    )
    if turn.update_id:
        con.execute(
            "INSERT OR IGNORE INTO processed_updates (platform, update_id, at) VALUES (?,?,?)",
            (s.platform, turn.update_id, turn.at),
        )
    if turn.transcript:
        con.executemany(
            "INSERT INTO transcript (platform, chat_id, role, text, at) VALUES (?,?,?,?,?)",
            [(s.platform, s.chat_id, role, text, turn.at) for role, text in turn.transcript],
        )
    if turn.unanswered:
        con.executemany(
            "INSERT INTO unanswered (text, normalized, outcome, at, platform, chat_id) VALUES (?,?,?,?,?,?)",
            [(t, n, o, turn.at, s.platform, s.chat_id) for t, n, o in turn.unanswered],
        )
    if turn.outbox:
        con.executemany(_INSERT_OUTBOX, [outbox_values(item) for item in turn.outbox])
    if turn.tickets:
        _apply_tickets(con, turn.tickets)
    return number


def _fetchall(con: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
    return con.execute(sql, args).fetchall()


def _create_ticket(con: sqlite3.Connection, ticket: Ticket, messages: list[TicketMessage]) -> int:
    try:
        number = con.execute(_INSERT_TICKET, ticket_values(ticket)).lastrowid
        assert number is not None
        con.executemany(
            "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES (?,?,?,?,?)",
            [(number, m.role, m.text, m.author, m.at) for m in messages],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return number


def _write(con: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> int:
    """One statement, committed; returns the new row's id for an INSERT."""
    try:
        rowid = con.execute(sql, args).lastrowid
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return rowid or 0


def _claim_job(con: sqlite3.Connection, name: str, now: float, every: float) -> bool:
    try:
        claimed = con.execute(
            "INSERT INTO jobs (name, next_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET next_at=excluded.next_at WHERE jobs.next_at <= ?",
            (name, now + every, now),
        ).rowcount
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return claimed == 1


class SqliteStore(Store):
    failures = (sqlite3.Error,)

    def __init__(self, path: Path | str, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._batch: Batcher[Turn] = Batcher(self._send, _write_turn, self._lock)

    async def open(self) -> None:
        """Connect, migrate and prove that a write commits; StoreUnavailable (one line) if not."""
        db: aiosqlite.Connection | None = None
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # A plain open first: when aiosqlite's own open fails, its thread outlives the error.
            await asyncio.to_thread(_can_open, self.path)
            db = await aiosqlite.connect(self.path, timeout=self.busy_timeout)
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a crash of the process; only a power loss may take
            # the last commits back (never corrupting the file).
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            await db.execute("PRAGMA foreign_keys=ON")
            self._db = db
            await self._migrate()
            # A read-only file or folder, or another process holding the write lock, shows only
            # when writing: find out now rather than at the first citizen's message.
            await self.set_cursor("store.opened", repr(time.time()))
        except (sqlite3.Error, OSError) as exc:
            self._db = None
            if db is not None:
                await db.close()  # else its thread keeps the process alive
            raise StoreUnavailable(f"cannot use the database {self.path}: {_reason(exc)}") from exc

    async def close(self) -> None:
        await self._batch.drain()
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def trips(self) -> tuple[int, int]:
        """(trips to the connection's thread, turn transactions committed) since the store was made."""
        return self._batch.trips, self._batch.commits

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: call await store.open() first")
        return self._db

    def _must_be_open(self) -> None:
        """Fail in the caller, not in a trip, when the store is not open."""
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: call await store.open() first")

    def _send(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Put `fn(connection)` on the connection's thread now; the future of its result.

        aiosqlite has no public way to run a whole function on its thread, nor to do so without
        awaiting (which would delay the trip until the event loop came round to it); this is the
        one place that leans on its internals: `_tx`, the thread's queue, and `_conn`."""
        db = self.db
        if not db._running:
            raise ValueError("Connection closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        db._tx.put_nowait((future, lambda: fn(db._conn)))
        return future

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` in the next trip (it commits its own writes)."""
        self._must_be_open()
        return await self._batch.call(fn, *args)

    async def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return await self._run(_fetchall, sql, args)

    async def migrate(self) -> int:
        """Apply the migrations this file lacks; returns how many were applied."""
        async with self._lock:
            row = await (await self.db.execute("PRAGMA user_version")).fetchone()
            version = row[0] if row else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                # executescript commits on its own; user_version is set in the same script.
                await self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
            return len(MIGRATIONS) - version

    _migrate = migrate

    async def schema_version(self) -> int:
        rows = await self._fetch("PRAGMA user_version")
        return int(rows[0][0]) if rows else 0

    # -- conversations ---------------------------------------------------------------------------

    async def seen_update(self, platform: str, update_id: str) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM processed_updates WHERE platform=? AND update_id=?", (platform, update_id)
        )
        return bool(rows)

    async def mark_update(self, platform: str, update_id: str, at: float) -> None:
        await self._run(
            _write,
            "INSERT OR IGNORE INTO processed_updates (platform, update_id, at) VALUES (?,?,?)",
            (platform, update_id, at),
        )

    async def load_session(self, platform: str, chat_id: str) -> Session | None:
        rows = await self._fetch("SELECT state FROM sessions WHERE platform=? AND chat_id=?", (platform, chat_id))
        return Session.from_json(rows[0]["state"]) if rows else None

    async def begin_turn(self, platform: str, chat_id: str, update_id: str | None) -> TurnStart:
        seen, state, ticket = await self._run(_begin_turn, platform, chat_id, update_id)
        return TurnStart(
            seen,
            Session.from_json(state) if state is not None else None,
            ticket_from_row(ticket) if ticket is not None else None,
        )

    async def commit_turn(self, turn: Turn) -> int | None:
        self._must_be_open()
        number: int | None = await self._batch.turn(turn)
        return number

    async def commit_tickets(self, work: TicketWork, update: tuple[str, str] | None = None, at: float = 0.0) -> bool:
        if work.new is not None:
            raise ValueError("a new ticket is opened only with a citizen's turn (commit_turn)")
        return await self._run(_commit_tickets, work, update, at)

    async def recent_transcript(self, platform: str, chat_id: str, limit: int) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT role, text FROM transcript WHERE platform=? AND chat_id=? ORDER BY id DESC LIMIT ?",
            (platform, chat_id, limit),
        )
        return [(r["role"], r["text"]) for r in reversed(rows)]

    # -- tickets ---------------------------------------------------------------------------------

    async def create_ticket(self, ticket: Ticket, messages: list[TicketMessage]) -> Ticket:
        ticket.number = await self._run(_create_ticket, ticket, messages)
        return ticket

    async def _one_ticket(self, where: str, args: tuple[object, ...]) -> Ticket | None:
        rows = await self._fetch(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {where}", args)
        return ticket_from_row(rows[0]) if rows else None

    async def get_ticket(self, number: int) -> Ticket | None:
        return await self._one_ticket("number=?", (number,))

    async def open_ticket_for(self, platform: str, chat_id: str) -> Ticket | None:
        rows = await self._fetch(_OPEN_TICKET, (platform, chat_id, *OPEN_STATUSES))
        return ticket_from_row(rows[0]) if rows else None

    async def tickets_since(self, platform: str, chat_id: str, since: float) -> list[Ticket]:
        rows = await self._fetch(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE platform=? AND chat_id=? AND created_at >= ? ORDER BY number",
            (platform, chat_id, since),
        )
        return [ticket_from_row(r) for r in rows]

    async def find_ticket_by_desk_ref(self, desk_ref: str) -> Ticket | None:
        return await self._one_ticket("desk_ref=? ORDER BY number DESC LIMIT 1", (desk_ref,))

    async def set_desk_ref(self, number: int, desk_ref: str | None) -> None:
        await self._run(_write, "UPDATE tickets SET desk_ref=? WHERE number=?", (desk_ref, number))

    async def update_ticket(self, ticket: Ticket) -> None:
        await self._run(_write, _UPDATE_TICKET, ticket_update_values(ticket))

    async def list_tickets(self, status: str | None = None, overdue_at: float | None = None) -> list[Ticket]:
        where: list[str] = ["1=1"]
        args: list[object] = []
        if status:
            where.append("status=?")
            args.append(status)
        if overdue_at is not None:
            where.append("status IN (?, ?) AND due_at < ?")
            args.extend([*OPEN_STATUSES, overdue_at])
        rows = await self._fetch(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {' AND '.join(where)} ORDER BY number", tuple(args)
        )
        return [ticket_from_row(r) for r in rows]

    async def add_ticket_message(self, message: TicketMessage) -> None:
        await self._run(
            _write,
            "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES (?,?,?,?,?)",
            (message.ticket, message.role, message.text, message.author, message.at),
        )

    async def ticket_messages(self, number: int) -> list[TicketMessage]:
        rows = await self._fetch(
            "SELECT ticket, role, text, author, at FROM ticket_messages WHERE ticket=? ORDER BY id", (number,)
        )
        return [TicketMessage(r["ticket"], r["role"], r["text"], r["at"], r["author"]) for r in rows]

    # -- outbox ----------------------------------------------------------------------------------

    async def enqueue(self, item: OutboxItem) -> int:
        return await self._run(_write, _INSERT_OUTBOX, outbox_values(item))

    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]:
        marks = ",".join("?" * len(platforms))
        rows = await self._fetch(
            f"SELECT * FROM outbox WHERE status='pending' AND platform IN ({marks}) AND next_at <= ? "
            "ORDER BY id LIMIT ?",
            (*platforms, now, limit),
        )
        return [outbox_from_row(r) for r in rows]

    async def mark_sent(self, item_id: int) -> None:
        await self._run(_write, "UPDATE outbox SET status='sent', error='' WHERE id=?", (item_id,))

    async def retry_later(self, item_id: int, next_at: float, error: str) -> None:
        await self._run(
            _write, "UPDATE outbox SET attempts=attempts+1, next_at=?, error=? WHERE id=?", (next_at, error, item_id)
        )

    async def renew(self, item_id: int, leased_until: float, until: float) -> bool:
        """No lease here (one process): an item `due` returned stays this process's."""
        return True

    async def release(self, item_ids: list[int], now: float) -> None:
        """`due` leases nothing here (one process): nothing to hand back."""

    async def give_up(self, item_id: int, error: str) -> None:
        await self._run(_write, "UPDATE outbox SET status='dead', error=? WHERE id=?", (error, item_id))

    async def pending_count(self, platform: str | None = None) -> int:
        if platform is None:
            rows = await self._fetch("SELECT COUNT(*) FROM outbox WHERE status='pending'")
        else:
            rows = await self._fetch("SELECT COUNT(*) FROM outbox WHERE status='pending' AND platform=?", (platform,))
        return int(rows[0][0]) if rows else 0

    # -- chats -----------------------------------------------------------------------------------

    async def set_chat_blocked(self, platform: str, chat_id: str, blocked: bool) -> None:
        if blocked:
            await self._run(
                _write,
                "INSERT OR IGNORE INTO blocked_chats (platform, chat_id, at) VALUES (?,?,julianday('now'))",
                (platform, chat_id),
            )
        else:
            await self._run(_write, "DELETE FROM blocked_chats WHERE platform=? AND chat_id=?", (platform, chat_id))

    async def is_chat_blocked(self, platform: str, chat_id: str) -> bool:
        rows = await self._fetch("SELECT 1 FROM blocked_chats WHERE platform=? AND chat_id=?", (platform, chat_id))
        return bool(rows)

    # -- background jobs -------------------------------------------------------------------------

    async def claim_job(self, name: str, now: float, every: float) -> bool:
        return await self._run(_claim_job, name, now, every)

    # -- cursors ---------------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> str | None:
        rows = await self._fetch("SELECT value FROM cursors WHERE name=?", (name,))
        return str(rows[0]["value"]) if rows else None

    async def set_cursor(self, name: str, value: str) -> None:
        await self._run(
            _write,
            "INSERT INTO cursors (name, value) VALUES (?,?) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    # -- editors ---------------------------------------------------------------------------------

    async def unanswered(self, since: float, limit: int = 30) -> list[UnansweredGroup]:
        rows = await self._fetch(
            "SELECT normalized, COUNT(*) AS n, MAX(at) AS last_at, GROUP_CONCAT(DISTINCT outcome) AS outcomes, "
            "(SELECT u2.text FROM unanswered u2 WHERE u2.normalized=u.normalized ORDER BY u2.id DESC LIMIT 1) AS example "
            "FROM unanswered u WHERE at >= ? GROUP BY normalized ORDER BY n DESC, last_at DESC LIMIT ?",
            (since, limit),
        )
        return [UnansweredGroup(r["normalized"], r["n"], r["example"], r["last_at"], r["outcomes"] or "") for r in rows]

    # -- personal data: retention and erasure ------------------------------------------------------

    async def purge(self, before: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        closed = "SELECT number FROM tickets WHERE status NOT IN (?, ?) AND closed_at IS NOT NULL AND closed_at < ?"
        statements = [
            ("ticket_messages", f"DELETE FROM ticket_messages WHERE ticket IN ({closed})", (*OPEN_STATUSES, before)),
            ("transcript", "DELETE FROM transcript WHERE at < ?", (before,)),
            ("unanswered", "DELETE FROM unanswered WHERE at < ?", (before,)),
            ("outbox", "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (before,)),
            ("sessions", "DELETE FROM sessions WHERE updated_at < ?", (before,)),
            (
                "ticket names",
                "UPDATE tickets SET user_name='', user_id='' WHERE user_name || user_id != '' AND status NOT IN (?, ?) "
                "AND closed_at IS NOT NULL AND closed_at < ?",
                (*OPEN_STATUSES, before),
            ),
        ]
        async with self._lock:
            try:
                for name, sql, args in statements:
                    cursor = await self.db.execute(sql, args)
                    counts[name] = cursor.rowcount
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        return counts

    async def forget(self, platform: str, chat_id: str) -> dict[str, int]:
        chat = (platform, chat_id)
        counts: dict[str, int] = {}
        async with self._lock:
            try:
                rows = await (
                    await self.db.execute("SELECT number FROM tickets WHERE platform=? AND chat_id=?", chat)
                ).fetchall()
                numbers = [r[0] for r in rows]
                marks = ",".join("?" * len(numbers))
                statements = [
                    ("sessions", "DELETE FROM sessions WHERE platform=? AND chat_id=?", chat),
                    ("transcript", "DELETE FROM transcript WHERE platform=? AND chat_id=?", chat),
                    ("unanswered", "DELETE FROM unanswered WHERE platform=? AND chat_id=?", chat),
                    ("outbox", "DELETE FROM outbox WHERE platform=? AND chat_id=?", chat),
                    ("blocked_chats", "DELETE FROM blocked_chats WHERE platform=? AND chat_id=?", chat),
                ]
                counts["ticket_messages"] = counts["desk events"] = 0
                if numbers:
                    statements += [
                        ("ticket_messages", f"DELETE FROM ticket_messages WHERE ticket IN ({marks})", tuple(numbers)),
                        ("desk events", f"DELETE FROM outbox WHERE ticket IN ({marks})", tuple(numbers)),
                    ]
                for name, sql, args in statements:
                    counts[name] = (await self.db.execute(sql, args)).rowcount
                cursor = await self.db.execute(
                    "UPDATE tickets SET chat_id='', user_id='', user_name='', reason='', steps_tried='[]', "
                    "candidates='[]', desk_ref=NULL, rating=NULL, "
                    "status=CASE WHEN status IN (?, ?) THEN 'cancelled' ELSE status END, "
                    "closed_at=COALESCE(closed_at, ?) WHERE platform=? AND chat_id=?",
                    (*OPEN_STATUSES, time.time(), *chat),
                )
                counts["tickets"] = cursor.rowcount
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        return counts


def _can_open(path: Path) -> None:
    sqlite3.connect(path).close()


def _reason(exc: BaseException) -> str:
    """Why the database cannot be used, in one line a person can act on."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"{text} (another process is writing to it; stop it or use another GOSBOT_DB)"
    if isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text):
        return f"{text} (a folder on the way is missing, not a folder, or not writable)"
    if isinstance(exc, OSError):
        return f"{exc.strerror or text} ({exc.filename or ''})".replace(" ()", "")
    return text
