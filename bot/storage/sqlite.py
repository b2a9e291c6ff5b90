"""SQLite through aiosqlite: one file, WAL, numbered migrations.

One connection serves the whole process; an asyncio lock makes each method one transaction, so
concurrent chats never interleave statements and SQLite never reports "database is locked" inside a
process. Other processes (the `gosbot tickets` commands while the bot runs) wait on busy_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from bot.records import (
    OPEN_STATUSES,
    OutboxItem,
    Session,
    Ticket,
    TicketMessage,
    UnansweredGroup,
    reply_from_json,
    reply_to_json,
)
from bot.storage.base import Store, StoreUnavailable, Turn

# Append only: a released migration is never edited, a new one is added.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        platform TEXT NOT NULL, chat_id TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (platform, chat_id));
    CREATE TABLE processed_updates (
        platform TEXT NOT NULL, update_id TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (platform, update_id));
    CREATE TABLE transcript (
        id INTEGER PRIMARY KEY, platform TEXT NOT NULL, chat_id TEXT NOT NULL,
        role TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX transcript_chat ON transcript (platform, chat_id, id);
    CREATE TABLE tickets (
        number INTEGER PRIMARY KEY AUTOINCREMENT, platform TEXT NOT NULL, chat_id TEXT NOT NULL,
        topic TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,
        created_at REAL NOT NULL, due_at REAL NOT NULL, user_id TEXT NOT NULL DEFAULT '',
        user_name TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', operator TEXT,
        closed_at REAL, rating INTEGER, steps_tried TEXT NOT NULL DEFAULT '[]',
        candidates TEXT NOT NULL DEFAULT '[]', desk_ref TEXT, overdue_announced INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX tickets_chat ON tickets (platform, chat_id, status);
    CREATE INDEX tickets_desk ON tickets (desk_ref);
    CREATE TABLE ticket_messages (
        id INTEGER PRIMARY KEY, ticket INTEGER NOT NULL REFERENCES tickets(number),
        role TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL DEFAULT '', at REAL NOT NULL);
    CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, platform TEXT NOT NULL, chat_id TEXT NOT NULL, reply TEXT NOT NULL,
        ticket INTEGER, event TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
        error TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL);
    CREATE INDEX outbox_due ON outbox (status, platform, next_at);
    CREATE TABLE blocked_chats (
        platform TEXT NOT NULL, chat_id TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (platform, chat_id));
    CREATE TABLE unanswered (
        id INTEGER PRIMARY KEY, text TEXT NOT NULL, normalized TEXT NOT NULL,
        outcome TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX unanswered_at ON unanswered (at);
    """,
    """
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)

_TICKET_COLUMNS = (
    "number, platform, chat_id, topic, priority, status, created_at, due_at, user_id, user_name, reason, "
    "operator, closed_at, rating, steps_tried, candidates, desk_ref, overdue_announced"
)


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        number=row["number"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        topic=row["topic"],
        priority=row["priority"],
        status=row["status"],
        created_at=row["created_at"],
        due_at=row["due_at"],
        user_id=row["user_id"],
        user_name=row["user_name"],
        reason=row["reason"],
        operator=row["operator"],
        closed_at=row["closed_at"],
        rating=row["rating"],
        steps_tried=json.loads(row["steps_tried"]),
        candidates=json.loads(row["candidates"]),
        desk_ref=row["desk_ref"],
        overdue_announced=bool(row["overdue_announced"]),
    )


def _outbox(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        platform=row["platform"],
        chat_id=row["chat_id"],
        reply=reply_from_json(row["reply"]),
        ticket=row["ticket"],
        event=row["event"],
        id=row["id"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        status=row["status"],
        error=row["error"],
        created_at=row["created_at"],
    )


class SqliteStore(Store):
    failures = (sqlite3.Error,)

    def __init__(self, path: Path | str, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

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
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: call await store.open() first")
        return self._db

    async def _migrate(self) -> None:
        async with self._lock:
            row = await (await self.db.execute("PRAGMA user_version")).fetchone()
            version = row[0] if row else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                # executescript commits on its own; user_version is set in the same script.
                await self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    async def schema_version(self) -> int:
        row = await (await self.db.execute("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    # -- conversations ---------------------------------------------------------------------------

    async def seen_update(self, platform: str, update_id: str) -> bool:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT 1 FROM processed_updates WHERE platform=? AND update_id=?", (platform, update_id)
            )
            return await cursor.fetchone() is not None

    async def mark_update(self, platform: str, update_id: str, at: float) -> None:
        await self._write(
            "INSERT OR IGNORE INTO processed_updates (platform, update_id, at) VALUES (?,?,?)",
            (platform, update_id, at),
        )

    async def load_session(self, platform: str, chat_id: str) -> Session | None:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT state FROM sessions WHERE platform=? AND chat_id=?", (platform, chat_id)
            )
            row = await cursor.fetchone()
        return Session.from_json(row["state"]) if row else None

    async def commit_turn(self, turn: Turn) -> None:
        s = turn.session
        async with self._lock:
            try:
                await self.db.execute(
                    "INSERT INTO sessions (platform, chat_id, state, updated_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (platform, chat_id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                    (s.platform, s.chat_id, s.to_json(), turn.at),
                )
                if turn.update_id:
                    await self.db.execute(
                        "INSERT OR IGNORE INTO processed_updates (platform, update_id, at) VALUES (?,?,?)",
                        (s.platform, turn.update_id, turn.at),
                    )
                if turn.transcript:
                    await self.db.executemany(
                        "INSERT INTO transcript (platform, chat_id, role, text, at) VALUES (?,?,?,?,?)",
                        [(s.platform, s.chat_id, role, text, turn.at) for role, text in turn.transcript],
                    )
                if turn.unanswered:
                    await self.db.executemany(
                        "INSERT INTO unanswered (text, normalized, outcome, at) VALUES (?,?,?,?)",
                        [(text, normalized, outcome, turn.at) for text, normalized, outcome in turn.unanswered],
                    )
                for item in turn.outbox:
                    await self._insert_outbox(item)
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    async def recent_transcript(self, platform: str, chat_id: str, limit: int) -> list[tuple[str, str]]:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT role, text FROM transcript WHERE platform=? AND chat_id=? ORDER BY id DESC LIMIT ?",
                (platform, chat_id, limit),
            )
            rows = await cursor.fetchall()
        return [(r["role"], r["text"]) for r in reversed(list(rows))]

    # -- tickets ---------------------------------------------------------------------------------

    async def create_ticket(self, ticket: Ticket, messages: list[TicketMessage]) -> Ticket:
        t = ticket
        async with self._lock:
            try:
                cursor = await self.db.execute(
                    "INSERT INTO tickets (platform, chat_id, topic, priority, status, created_at, due_at, user_id, "
                    "user_name, reason, operator, closed_at, rating, steps_tried, candidates, desk_ref, "
                    "overdue_announced) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        t.platform,
                        t.chat_id,
                        t.topic,
                        t.priority,
                        t.status,
                        t.created_at,
                        t.due_at,
                        t.user_id,
                        t.user_name,
                        t.reason,
                        t.operator,
                        t.closed_at,
                        t.rating,
                        json.dumps(t.steps_tried, ensure_ascii=False),
                        json.dumps(t.candidates, ensure_ascii=False),
                        t.desk_ref,
                        int(t.overdue_announced),
                    ),
                )
                number = cursor.lastrowid
                assert number is not None
                await self.db.executemany(
                    "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES (?,?,?,?,?)",
                    [(number, m.role, m.text, m.author, m.at) for m in messages],
                )
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
        ticket.number = number
        return ticket

    async def _one_ticket(self, where: str, args: tuple[object, ...]) -> Ticket | None:
        async with self._lock:
            cursor = await self.db.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE {where}", args)
            row = await cursor.fetchone()
        return _ticket(row) if row else None

    async def get_ticket(self, number: int) -> Ticket | None:
        return await self._one_ticket("number=?", (number,))

    async def open_ticket_for(self, platform: str, chat_id: str) -> Ticket | None:
        return await self._one_ticket(
            "platform=? AND chat_id=? AND status IN (?, ?) ORDER BY number DESC LIMIT 1",
            (platform, chat_id, *OPEN_STATUSES),
        )

    async def tickets_since(self, platform: str, chat_id: str, since: float) -> list[Ticket]:
        async with self._lock:
            cursor = await self.db.execute(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE platform=? AND chat_id=? AND created_at >= ? "
                "ORDER BY number",
                (platform, chat_id, since),
            )
            rows = await cursor.fetchall()
        return [_ticket(r) for r in rows]

    async def find_ticket_by_desk_ref(self, desk_ref: str) -> Ticket | None:
        return await self._one_ticket("desk_ref=? ORDER BY number DESC LIMIT 1", (desk_ref,))

    async def set_desk_ref(self, number: int, desk_ref: str | None) -> None:
        await self._write("UPDATE tickets SET desk_ref=? WHERE number=?", (desk_ref, number))

    async def update_ticket(self, ticket: Ticket) -> None:
        t = ticket
        async with self._writing() as db:
            await db.execute(
                "UPDATE tickets SET topic=?, priority=?, status=?, due_at=?, operator=?, closed_at=?, rating=?, "
                "steps_tried=?, candidates=?, desk_ref=?, overdue_announced=?, user_name=? WHERE number=?",
                (
                    t.topic,
                    t.priority,
                    t.status,
                    t.due_at,
                    t.operator,
                    t.closed_at,
                    t.rating,
                    json.dumps(t.steps_tried, ensure_ascii=False),
                    json.dumps(t.candidates, ensure_ascii=False),
                    t.desk_ref,
                    int(t.overdue_announced),
                    t.user_name,
                    t.number,
                ),
            )

    async def list_tickets(self, status: str | None = None, overdue_at: float | None = None) -> list[Ticket]:
        where: list[str] = ["1=1"]
        args: list[object] = []
        if status:
            where.append("status=?")
            args.append(status)
        if overdue_at is not None:
            where.append("status IN (?, ?) AND due_at < ?")
            args.extend([*OPEN_STATUSES, overdue_at])
        async with self._lock:
            cursor = await self.db.execute(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE {' AND '.join(where)} ORDER BY number", args
            )
            rows = await cursor.fetchall()
        return [_ticket(r) for r in rows]

    async def add_ticket_message(self, message: TicketMessage) -> None:
        async with self._writing() as db:
            await db.execute(
                "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES (?,?,?,?,?)",
                (message.ticket, message.role, message.text, message.author, message.at),
            )

    async def ticket_messages(self, number: int) -> list[TicketMessage]:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT ticket, role, text, author, at FROM ticket_messages WHERE ticket=? ORDER BY id", (number,)
            )
            rows = await cursor.fetchall()
        return [TicketMessage(r["ticket"], r["role"], r["text"], r["at"], r["author"]) for r in rows]

    # -- outbox ----------------------------------------------------------------------------------

    async def _insert_outbox(self, item: OutboxItem) -> int:
        cursor = await self.db.execute(
            "INSERT INTO outbox (platform, chat_id, reply, ticket, event, attempts, next_at, status, error, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                item.platform,
                item.chat_id,
                reply_to_json(item.reply),
                item.ticket,
                item.event,
                item.attempts,
                item.next_at,
                item.status,
                item.error,
                item.created_at,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def enqueue(self, item: OutboxItem) -> int:
        async with self._writing():
            item_id = await self._insert_outbox(item)
        return item_id

    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]:
        marks = ",".join("?" * len(platforms))
        async with self._lock:
            cursor = await self.db.execute(
                f"SELECT * FROM outbox WHERE status='pending' AND platform IN ({marks}) AND next_at <= ? "
                "ORDER BY id LIMIT ?",
                (*platforms, now, limit),
            )
            rows = await cursor.fetchall()
        return [_outbox(r) for r in rows]

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: committed at the end, rolled back on any failure (a full disk must
        not leave half a transaction open for the next writer to commit)."""
        async with self._lock:
            try:
                yield self.db
                await self.db.commit()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self.db.rollback()
                raise

    async def _write(self, sql: str, args: tuple[object, ...]) -> None:
        async with self._writing() as db:
            await db.execute(sql, args)

    async def mark_sent(self, item_id: int) -> None:
        await self._write("UPDATE outbox SET status='sent', error='' WHERE id=?", (item_id,))

    async def retry_later(self, item_id: int, next_at: float, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts=attempts+1, next_at=?, error=? WHERE id=?", (next_at, error, item_id)
        )

    async def give_up(self, item_id: int, error: str) -> None:
        await self._write("UPDATE outbox SET status='dead', error=? WHERE id=?", (error, item_id))

    async def pending_count(self, platform: str | None = None) -> int:
        async with self._lock:
            if platform is None:
                cursor = await self.db.execute("SELECT COUNT(*) FROM outbox WHERE status='pending'")
            else:
                cursor = await self.db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE status='pending' AND platform=?", (platform,)
                )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    # -- chats -----------------------------------------------------------------------------------

    async def set_chat_blocked(self, platform: str, chat_id: str, blocked: bool) -> None:
        if blocked:
            await self._write(
                "INSERT OR IGNORE INTO blocked_chats (platform, chat_id, at) VALUES (?,?,julianday('now'))",
                (platform, chat_id),
            )
        else:
            await self._write("DELETE FROM blocked_chats WHERE platform=? AND chat_id=?", (platform, chat_id))

    async def is_chat_blocked(self, platform: str, chat_id: str) -> bool:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT 1 FROM blocked_chats WHERE platform=? AND chat_id=?", (platform, chat_id)
            )
            return await cursor.fetchone() is not None

    # -- cursors ---------------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> str | None:
        async with self._lock:
            cursor = await self.db.execute("SELECT value FROM cursors WHERE name=?", (name,))
            row = await cursor.fetchone()
        return str(row["value"]) if row else None

    async def set_cursor(self, name: str, value: str) -> None:
        await self._write(
            "INSERT INTO cursors (name, value) VALUES (?,?) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            (name, value),
        )

    # -- editors ---------------------------------------------------------------------------------

    async def unanswered(self, since: float, limit: int = 30) -> list[UnansweredGroup]:
        async with self._lock:
            cursor = await self.db.execute(
                "SELECT normalized, COUNT(*) AS n, MAX(at) AS last_at, GROUP_CONCAT(DISTINCT outcome) AS outcomes, "
                "(SELECT u2.text FROM unanswered u2 WHERE u2.normalized=u.normalized ORDER BY u2.id DESC LIMIT 1) AS example "
                "FROM unanswered u WHERE at >= ? GROUP BY normalized ORDER BY n DESC, last_at DESC LIMIT ?",
                (since, limit),
            )
            rows = await cursor.fetchall()
        return [UnansweredGroup(r["normalized"], r["n"], r["example"], r["last_at"], r["outcomes"] or "") for r in rows]


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
