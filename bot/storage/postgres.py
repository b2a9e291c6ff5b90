"""PostgreSQL through asyncpg: the shared store when more than one process serves the bot.

Chosen by `GOSBOT_DATABASE_URL=postgresql://…`. The schema comes from the same numbered
migrations as SQLite (`bot.storage.migrations`); a process that starts migrates under an advisory
lock, so several workers starting at once apply each migration once.

A turn costs two round trips: `begin_turn` reads the duplicate mark, the session and the chat's
open ticket in one statement, `commit_turn` writes everything the turn changed in one statement
(data-modifying CTEs over arrays), which PostgreSQL runs as one transaction.

The outbox is claimed, not just read: `due` takes rows with `FOR UPDATE SKIP LOCKED` and pushes
their `next_at` forward by a lease (`CLAIM_SECONDS`), so two workers draining the same outbox never
get the same row, and a worker that dies mid-send leaves its rows to be retried when the lease
ends. A row is not handed out while an earlier row of the same chat is still pending and not due
(being sent elsewhere or waiting for a retry): one chat's messages leave in order.

Several workers (`gosbot run` processes) share one database:
- `chat_lock` holds a session-level advisory lock on the chat (two int4 keys from a stable hash of
  platform and chat id) on a connection of a small pool of its own, for the whole turn; the turn's
  queries use the main pool, so a turn holds at most one connection of each and the pools cannot
  starve each other. A worker that dies loses its connection, and PostgreSQL frees the lock.
- `claim_job` moves a job's `next_at` forward in one conditional upsert: among workers claiming the
  same period exactly one gets the row.
- `sole` holds a single-key advisory lock on a connection of its own (not pooled) for as long as a
  role lasts (long polling): a second process asking for it gets False at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

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

MIGRATIONS = render("postgres")
MIGRATION_LOCK = 0x60_5B_07  # pg_advisory_xact_lock key: one migrating process at a time
CLAIM_SECONDS = 60.0  # how long a claimed outbox row is left to its worker before others may retry it
LOCK_POOL_SIZE = 10  # connections holding chat locks: this many chats' turns at once per worker


def lock_keys(*parts: str) -> tuple[int, int]:
    """Two int4 advisory-lock keys from a stable hash of `parts` (the same in every process, unlike
    Python's salted hash()). Two-key locks live apart from the single-key ones (migration, `sole`)."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8, person=b"gosbot-lock").digest()
    first, second = struct.unpack(">ii", digest)
    return first, second


def sole_key(name: str) -> int:
    """A single bigint advisory-lock key for a role only one process may play."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"gosbot-sole").digest()
    return int(struct.unpack(">q", digest)[0])


_COMMIT_TURN = """
WITH s AS (
    INSERT INTO sessions (platform, chat_id, state, updated_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (platform, chat_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
), u AS (
    INSERT INTO processed_updates (platform, update_id, at) SELECT $1, $5, $4 WHERE $5::text IS NOT NULL
    ON CONFLICT DO NOTHING
), t AS (
    INSERT INTO transcript (platform, chat_id, role, text, at)
    SELECT $1, $2, r.role, r.text, $4 FROM unnest($6::text[], $7::text[]) WITH ORDINALITY AS r(role, text, n)
    ORDER BY r.n
), q AS (
    INSERT INTO unanswered (text, normalized, outcome, at, platform, chat_id)
    SELECT r.text, r.normalized, r.outcome, $4, $1, $2
    FROM unnest($8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS r(text, normalized, outcome, n) ORDER BY r.n
)
INSERT INTO outbox (platform, chat_id, reply, ticket, event, attempts, next_at, status, error, created_at)
SELECT o.platform, o.chat_id, o.reply, o.ticket, o.event, o.attempts, o.next_at, o.status, o.error, o.created_at
FROM unnest($11::text[], $12::text[], $13::text[], $14::int[], $15::text[], $16::int[], $17::float8[],
            $18::text[], $19::text[], $20::float8[])
     WITH ORDINALITY AS o(platform, chat_id, reply, ticket, event, attempts, next_at, status, error, created_at, n)
ORDER BY o.n
"""

_DUE = f"""
WITH claimed AS (
    SELECT id FROM outbox o
    WHERE status = 'pending' AND platform = ANY($1::text[]) AND next_at <= $2
      AND NOT EXISTS (
          SELECT 1 FROM outbox e WHERE e.platform = o.platform AND e.chat_id = o.chat_id AND e.id < o.id
          AND e.status = 'pending' AND e.next_at > $2)
    ORDER BY id LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox SET next_at = $2 + {CLAIM_SECONDS} FROM claimed WHERE outbox.id = claimed.id
RETURNING outbox.id, {", ".join(f"outbox.{c}" for c in OUTBOX_COLUMNS.split(", "))}
"""


# The duplicate mark, the session and the open ticket in one round trip.
_BEGIN_TURN = f"""
SELECT EXISTS (SELECT 1 FROM processed_updates WHERE platform=$1 AND update_id=$3) AS seen,
       (SELECT state FROM sessions WHERE platform=$1 AND chat_id=$2) AS state, t.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT {TICKET_COLUMNS} FROM tickets WHERE platform=$1 AND chat_id=$2 AND status = ANY($4::text[])
    ORDER BY number DESC LIMIT 1
) AS t ON true
"""

_TICKET_INSERT_COLUMNS = TICKET_COLUMNS.split(", ")[1:]
_INSERT_TICKET = (
    f"INSERT INTO tickets ({', '.join(_TICKET_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_TICKET_INSERT_COLUMNS) + 1))}) RETURNING number"
)
_UPDATE_TICKET = (
    f"UPDATE tickets SET {', '.join(f'{c}=${n}' for n, c in enumerate(TICKET_UPDATE_COLUMNS, start=1))} "
    f"WHERE number=${len(TICKET_UPDATE_COLUMNS) + 1}"
)
_INSERT_MESSAGE = "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES ($1, $2, $3, $4, $5)"
_INSERT_OUTBOX = f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"


def _turn_args(turn: Turn) -> list[Any]:
    """_COMMIT_TURN's parameters."""
    s = turn.session
    outbox = [outbox_values(item) for item in turn.outbox]
    columns: list[list[Any]] = [list(col) for col in zip(*outbox, strict=True)] if outbox else [[]] * 10
    return [
        s.platform,
        s.chat_id,
        s.to_json(),
        turn.at,
        turn.update_id or None,
        [role for role, _ in turn.transcript],
        [text for _, text in turn.transcript],
        [row[0] for row in turn.unanswered],
        [row[1] for row in turn.unanswered],
        [row[2] for row in turn.unanswered],
        *columns,
    ]


async def _apply_tickets(con: asyncpg.Connection, work: TicketWork) -> None:
    """Ticket changes inside the caller's transaction (`work.new` already numbered and inserted)."""
    if work.updates:
        await con.executemany(_UPDATE_TICKET, [ticket_update_values(t) for t in work.updates])
    if work.messages:
        await con.executemany(_INSERT_MESSAGE, [(m.ticket, m.role, m.text, m.author, m.at) for m in work.messages])
    if work.outbox:
        await con.executemany(_INSERT_OUTBOX, [outbox_values(item) for item in work.outbox])


class PostgresStore(Store):
    failures = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, lock_pool_size: int = LOCK_POOL_SIZE):
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.lock_pool_size = lock_pool_size
        self._pool: asyncpg.Pool | None = None
        self._lock_pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Connect and migrate; StoreUnavailable (one line, without the URL's password) if not."""
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size)
            self._lock_pool = await asyncpg.create_pool(self.url, min_size=0, max_size=self.lock_pool_size)
            await self.migrate()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot use the PostgreSQL database: {exc}") from exc

    async def close(self) -> None:
        if self._lock_pool is not None:
            await self._lock_pool.close()
            self._lock_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open: call await store.open() first")
        return self._pool

    async def migrate(self) -> int:
        """Apply the migrations this database lacks; returns how many were applied."""
        async with self.pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await con.execute(script)
                await con.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
            return len(MIGRATIONS) - version

    @property
    def lock_pool(self) -> asyncpg.Pool:
        if self._lock_pool is None:
            raise RuntimeError("PostgresStore is not open: call await store.open() first")
        return self._lock_pool

    # -- several workers -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def chat_lock(self, platform: str, chat_id: str) -> AsyncIterator[None]:
        first, second = lock_keys(platform, chat_id)
        async with self.lock_pool.acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1, $2)", first, second)
            try:
                yield
            finally:
                # Also when this fails: releasing to the pool resets the connection, which runs
                # pg_advisory_unlock_all().
                await con.execute("SELECT pg_advisory_unlock($1, $2)", first, second)

    @contextlib.asynccontextmanager
    async def sole(self, name: str) -> AsyncIterator[bool]:
        key = sole_key(name)
        con = await asyncpg.connect(self.url)
        try:
            held = bool(await con.fetchval("SELECT pg_try_advisory_lock($1)", key))
            yield held
        finally:
            await con.close()  # ends the session: the lock goes with it

    async def claim_job(self, name: str, now: float, every: float) -> bool:
        claimed = await self.pool.fetchval(
            "INSERT INTO jobs (name, next_at) VALUES ($1, $2::float8 + $3::float8) "
            "ON CONFLICT (name) DO UPDATE SET next_at = excluded.next_at WHERE jobs.next_at <= $2 RETURNING TRUE",
            name,
            now,
            every,
        )
        return bool(claimed)

    async def schema_version(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    # -- conversations ---------------------------------------------------------------------------

    async def seen_update(self, platform: str, update_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM processed_updates WHERE platform=$1 AND update_id=$2)",
                platform,
                update_id,
            )
        )

    async def mark_update(self, platform: str, update_id: str, at: float) -> None:
        await self.pool.execute(
            "INSERT INTO processed_updates (platform, update_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            platform,
            update_id,
            at,
        )

    async def load_session(self, platform: str, chat_id: str) -> Session | None:
        state = await self.pool.fetchval(
            "SELECT state FROM sessions WHERE platform=$1 AND chat_id=$2", platform, chat_id
        )
        return Session.from_json(state) if state is not None else None

    async def begin_turn(self, platform: str, chat_id: str, update_id: str | None) -> TurnStart:
        row = await self.pool.fetchrow(_BEGIN_TURN, platform, chat_id, update_id, list(OPEN_STATUSES))
        assert row is not None
        if row["seen"]:
            return TurnStart(True)
        return TurnStart(
            False,
            Session.from_json(row["state"]) if row["state"] is not None else None,
            ticket_from_row(row) if row["number"] is not None else None,
        )

    async def commit_turn(self, turn: Turn) -> int | None:
        if not turn.tickets:  # the usual turn: one statement, one round trip
            await self.pool.execute(_COMMIT_TURN, *_turn_args(turn))
            return None
        number = None
        async with self.pool.acquire() as con, con.transaction():
            if turn.tickets.new:
                number = int(await con.fetchval(_INSERT_TICKET, *ticket_values(turn.tickets.new)))
                turn = turn.numbered(number)
            await con.execute(_COMMIT_TURN, *_turn_args(turn))
            assert turn.tickets is not None
            await _apply_tickets(con, turn.tickets)
        return number

    async def commit_tickets(self, work: TicketWork, update: tuple[str, str] | None = None, at: float = 0.0) -> bool:
        if work.new is not None:
            raise ValueError("a new ticket is opened only with a citizen's turn (commit_turn)")
        async with self.pool.acquire() as con, con.transaction():
            if update is not None:
                # The mark first. A second process handling the same update at the same moment
                # waits here on the first one's uncommitted row, then finds the conflict: it
                # applies nothing (its transaction ends with nothing written).
                marked = await con.fetchval(
                    "INSERT INTO processed_updates (platform, update_id, at) VALUES ($1, $2, $3) "
                    "ON CONFLICT DO NOTHING RETURNING TRUE",
                    *update,
                    at,
                )
                if not marked:
                    return False
            await _apply_tickets(con, work)
        return True

    async def recent_transcript(self, platform: str, chat_id: str, limit: int) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            "SELECT role, text FROM transcript WHERE platform=$1 AND chat_id=$2 ORDER BY id DESC LIMIT $3",
            platform,
            chat_id,
            max(limit, 0),
        )
        return [(r["role"], r["text"]) for r in reversed(rows)]

    # -- tickets ---------------------------------------------------------------------------------

    async def create_ticket(self, ticket: Ticket, messages: list[TicketMessage]) -> Ticket:
        columns = TICKET_COLUMNS.split(", ")[1:]
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
        async with self.pool.acquire() as con, con.transaction():
            number = await con.fetchval(
                f"INSERT INTO tickets ({', '.join(columns)}) VALUES ({marks}) RETURNING number",
                *ticket_values(ticket),
            )
            if messages:
                await con.executemany(
                    "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES ($1, $2, $3, $4, $5)",
                    [(number, m.role, m.text, m.author, m.at) for m in messages],
                )
        ticket.number = int(number)
        return ticket

    async def _one_ticket(self, where: str, *args: object) -> Ticket | None:
        row = await self.pool.fetchrow(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {where}", *args)
        return ticket_from_row(row) if row else None

    async def get_ticket(self, number: int) -> Ticket | None:
        return await self._one_ticket("number=$1", number)

    async def open_ticket_for(self, platform: str, chat_id: str) -> Ticket | None:
        return await self._one_ticket(
            "platform=$1 AND chat_id=$2 AND status = ANY($3::text[]) ORDER BY number DESC LIMIT 1",
            platform,
            chat_id,
            list(OPEN_STATUSES),
        )

    async def tickets_since(self, platform: str, chat_id: str, since: float) -> list[Ticket]:
        rows = await self.pool.fetch(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE platform=$1 AND chat_id=$2 AND created_at >= $3 "
            "ORDER BY number",
            platform,
            chat_id,
            since,
        )
        return [ticket_from_row(r) for r in rows]

    async def find_ticket_by_desk_ref(self, desk_ref: str) -> Ticket | None:
        return await self._one_ticket("desk_ref=$1 ORDER BY number DESC LIMIT 1", desk_ref)

    async def set_desk_ref(self, number: int, desk_ref: str | None) -> None:
        await self.pool.execute("UPDATE tickets SET desk_ref=$1 WHERE number=$2", desk_ref, number)

    async def update_ticket(self, ticket: Ticket) -> None:
        sets = ", ".join(f"{c}=${n}" for n, c in enumerate(TICKET_UPDATE_COLUMNS, start=1))
        await self.pool.execute(
            f"UPDATE tickets SET {sets} WHERE number=${len(TICKET_UPDATE_COLUMNS) + 1}", *ticket_update_values(ticket)
        )

    async def list_tickets(self, status: str | None = None, overdue_at: float | None = None) -> list[Ticket]:
        where: list[str] = ["TRUE"]
        args: list[object] = []
        if status:
            args.append(status)
            where.append(f"status=${len(args)}")
        if overdue_at is not None:
            args.extend([list(OPEN_STATUSES), overdue_at])
            where.append(f"status = ANY(${len(args) - 1}::text[]) AND due_at < ${len(args)}")
        rows = await self.pool.fetch(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE {' AND '.join(where)} ORDER BY number", *args
        )
        return [ticket_from_row(r) for r in rows]

    async def flag_overdue(self, number: int) -> bool:
        flipped = await self.pool.fetchval(
            "UPDATE tickets SET overdue_announced=1 WHERE number=$1 AND overdue_announced=0 RETURNING TRUE", number
        )
        return bool(flipped)

    async def add_ticket_message(self, message: TicketMessage) -> None:
        await self.pool.execute(
            "INSERT INTO ticket_messages (ticket, role, text, author, at) VALUES ($1, $2, $3, $4, $5)",
            message.ticket,
            message.role,
            message.text,
            message.author,
            message.at,
        )

    async def ticket_messages(self, number: int) -> list[TicketMessage]:
        rows = await self.pool.fetch(
            "SELECT ticket, role, text, author, at FROM ticket_messages WHERE ticket=$1 ORDER BY id", number
        )
        return [TicketMessage(r["ticket"], r["role"], r["text"], r["at"], r["author"]) for r in rows]

    # -- outbox ----------------------------------------------------------------------------------

    async def enqueue(self, item: OutboxItem) -> int:
        return int(
            await self.pool.fetchval(
                f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING id",
                *outbox_values(item),
            )
        )

    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]:
        rows = await self.pool.fetch(_DUE, list(platforms), now, limit)
        return sorted((outbox_from_row(r) for r in rows), key=lambda item: item.id)

    async def mark_sent(self, item_id: int) -> None:
        await self.pool.execute("UPDATE outbox SET status='sent', error='' WHERE id=$1", item_id)

    async def retry_later(self, item_id: int, next_at: float, error: str) -> None:
        await self.pool.execute(
            "UPDATE outbox SET attempts=attempts+1, next_at=$1, error=$2 WHERE id=$3", next_at, error, item_id
        )

    async def give_up(self, item_id: int, error: str) -> None:
        await self.pool.execute("UPDATE outbox SET status='dead', error=$1 WHERE id=$2", error, item_id)

    lease = CLAIM_SECONDS

    async def renew(self, item_id: int, leased_until: float, until: float) -> bool:
        renewed = await self.pool.fetchval(
            "UPDATE outbox SET next_at=$3 WHERE id=$1 AND status='pending' AND next_at=$2 RETURNING id",
            item_id,
            leased_until,
            until,
        )
        return renewed is not None

    async def release(self, item_ids: list[int], now: float) -> None:
        # Only a lease still running is cut short: a row retried meanwhile keeps its own next_at.
        await self.pool.execute(
            "UPDATE outbox SET next_at=$2 WHERE id = ANY($1::bigint[]) AND status='pending' AND next_at > $2",
            item_ids,
            now,
        )

    async def pending_count(self, platform: str | None = None) -> int:
        if platform is None:
            return int(await self.pool.fetchval("SELECT COUNT(*) FROM outbox WHERE status='pending'"))
        return int(
            await self.pool.fetchval("SELECT COUNT(*) FROM outbox WHERE status='pending' AND platform=$1", platform)
        )

    # -- chats -----------------------------------------------------------------------------------

    async def set_chat_blocked(self, platform: str, chat_id: str, blocked: bool) -> None:
        if blocked:
            await self.pool.execute(
                "INSERT INTO blocked_chats (platform, chat_id, at) VALUES ($1, $2, extract(epoch from now())) "
                "ON CONFLICT DO NOTHING",
                platform,
                chat_id,
            )
        else:
            await self.pool.execute("DELETE FROM blocked_chats WHERE platform=$1 AND chat_id=$2", platform, chat_id)

    async def is_chat_blocked(self, platform: str, chat_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM blocked_chats WHERE platform=$1 AND chat_id=$2)", platform, chat_id
            )
        )

    # -- cursors ---------------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> str | None:
        value = await self.pool.fetchval("SELECT value FROM cursors WHERE name=$1", name)
        return str(value) if value is not None else None

    async def set_cursor(self, name: str, value: str) -> None:
        await self.pool.execute(
            "INSERT INTO cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            name,
            value,
        )

    # -- editors ---------------------------------------------------------------------------------

    async def unanswered(self, since: float, limit: int = 30) -> list[UnansweredGroup]:
        rows = await self.pool.fetch(
            "SELECT normalized, COUNT(*) AS n, MAX(at) AS last_at, string_agg(DISTINCT outcome, ',') AS outcomes, "
            "(SELECT u2.text FROM unanswered u2 WHERE u2.normalized=u.normalized ORDER BY u2.id DESC LIMIT 1) AS example "
            "FROM unanswered u WHERE at >= $1 GROUP BY normalized ORDER BY n DESC, last_at DESC LIMIT $2",
            since,
            limit,
        )
        return [UnansweredGroup(r["normalized"], r["n"], r["example"], r["last_at"], r["outcomes"] or "") for r in rows]

    # -- personal data: retention and erasure ------------------------------------------------------

    async def purge(self, before: float) -> dict[str, int]:
        open_statuses = list(OPEN_STATUSES)
        closed = "SELECT number FROM tickets WHERE NOT (status = ANY($1::text[])) AND closed_at IS NOT NULL AND closed_at < $2"
        statements: list[tuple[str, str, tuple[Any, ...]]] = [
            ("ticket_messages", f"DELETE FROM ticket_messages WHERE ticket IN ({closed})", (open_statuses, before)),
            ("transcript", "DELETE FROM transcript WHERE at < $1", (before,)),
            ("unanswered", "DELETE FROM unanswered WHERE at < $1", (before,)),
            ("outbox", "DELETE FROM outbox WHERE status != 'pending' AND created_at < $1", (before,)),
            ("sessions", "DELETE FROM sessions WHERE updated_at < $1", (before,)),
            (
                "ticket names",
                "UPDATE tickets SET user_name='', user_id='' WHERE user_name || user_id != '' "
                "AND NOT (status = ANY($1::text[])) AND closed_at IS NOT NULL AND closed_at < $2",
                (open_statuses, before),
            ),
        ]
        counts: dict[str, int] = {}
        async with self.pool.acquire() as con, con.transaction():
            for name, sql, args in statements:
                counts[name] = _rowcount(await con.execute(sql, *args))
        return counts

    async def forget(self, platform: str, chat_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self.pool.acquire() as con, con.transaction():
            numbers = [
                int(r["number"])
                for r in await con.fetch(
                    "SELECT number FROM tickets WHERE platform=$1 AND chat_id=$2 FOR UPDATE", platform, chat_id
                )
            ]
            for name, table in (
                ("sessions", "sessions"),
                ("transcript", "transcript"),
                ("unanswered", "unanswered"),
                ("outbox", "outbox"),
                ("blocked_chats", "blocked_chats"),
            ):
                counts[name] = _rowcount(
                    await con.execute(f"DELETE FROM {table} WHERE platform=$1 AND chat_id=$2", platform, chat_id)
                )
            counts["ticket_messages"] = _rowcount(
                await con.execute("DELETE FROM ticket_messages WHERE ticket = ANY($1::bigint[])", numbers)
            )
            counts["desk events"] = _rowcount(
                await con.execute("DELETE FROM outbox WHERE ticket = ANY($1::bigint[])", numbers)
            )
            counts["tickets"] = _rowcount(
                await con.execute(
                    "UPDATE tickets SET chat_id='', user_id='', user_name='', reason='', steps_tried='[]', "
                    "candidates='[]', desk_ref=NULL, rating=NULL, "
                    "status=CASE WHEN status = ANY($1::text[]) THEN 'cancelled' ELSE status END, "
                    "closed_at=COALESCE(closed_at, $2) WHERE platform=$3 AND chat_id=$4",
                    list(OPEN_STATUSES),
                    time.time(),
                    platform,
                    chat_id,
                )
            )
        return counts


def _rowcount(status: str) -> int:
    """The row count at the end of a command tag such as 'DELETE 3' or 'UPDATE 1'."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
