"""One migration history for every SQL store, written once.

Each migration is SQL with a few `{placeholders}` for the types the dialects spell differently;
`render(dialect)` is the one place that knows how. Append only: a released migration is never
edited, a new one is added (SQLite records the count in `PRAGMA user_version`, PostgreSQL in the
`schema_version` table).
"""

from __future__ import annotations

DIALECT_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "rowid": "INTEGER PRIMARY KEY",  # an alias of SQLite's rowid
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",  # numbers never reused, even after a delete
        "real": "REAL",  # SQLite's REAL is 8 bytes
    },
    "postgres": {
        "rowid": "BIGSERIAL PRIMARY KEY",
        "serial": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",  # PostgreSQL's REAL is 4 bytes: timestamps would lose seconds
    },
}

MIGRATIONS_TEMPLATE: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        platform TEXT NOT NULL, chat_id TEXT NOT NULL, state TEXT NOT NULL, updated_at {real} NOT NULL,
        PRIMARY KEY (platform, chat_id));
    CREATE TABLE processed_updates (
        platform TEXT NOT NULL, update_id TEXT NOT NULL, at {real} NOT NULL,
        PRIMARY KEY (platform, update_id));
    CREATE TABLE transcript (
        id {rowid}, platform TEXT NOT NULL, chat_id TEXT NOT NULL,
        role TEXT NOT NULL, text TEXT NOT NULL, at {real} NOT NULL);
    CREATE INDEX transcript_chat ON transcript (platform, chat_id, id);
    CREATE TABLE tickets (
        number {serial}, platform TEXT NOT NULL, chat_id TEXT NOT NULL,
        topic TEXT NOT NULL, priority TEXT NOT NULL, status TEXT NOT NULL,
        created_at {real} NOT NULL, due_at {real} NOT NULL, user_id TEXT NOT NULL DEFAULT '',
        user_name TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', operator TEXT,
        closed_at {real}, rating INTEGER, steps_tried TEXT NOT NULL DEFAULT '[]',
        candidates TEXT NOT NULL DEFAULT '[]', desk_ref TEXT, overdue_announced INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX tickets_chat ON tickets (platform, chat_id, status);
    CREATE INDEX tickets_desk ON tickets (desk_ref);
    CREATE TABLE ticket_messages (
        id {rowid}, ticket INTEGER NOT NULL REFERENCES tickets(number),
        role TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL DEFAULT '', at {real} NOT NULL);
    CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket, id);
    CREATE TABLE outbox (
        id {rowid}, platform TEXT NOT NULL, chat_id TEXT NOT NULL, reply TEXT NOT NULL,
        ticket INTEGER, event TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
        next_at {real} NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
        error TEXT NOT NULL DEFAULT '', created_at {real} NOT NULL);
    CREATE INDEX outbox_due ON outbox (status, platform, next_at);
    CREATE TABLE blocked_chats (
        platform TEXT NOT NULL, chat_id TEXT NOT NULL, at {real} NOT NULL, PRIMARY KEY (platform, chat_id));
    CREATE TABLE unanswered (
        id {rowid}, text TEXT NOT NULL, normalized TEXT NOT NULL,
        outcome TEXT NOT NULL, at {real} NOT NULL);
    CREATE INDEX unanswered_at ON unanswered (at);
    """,
    # Where a platform's event stream was read up to (VK Long Poll's ts).
    """
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Whose question it was, so `gosbot forget` can erase a citizen's unanswered entries too.
    """
    ALTER TABLE unanswered ADD COLUMN platform TEXT NOT NULL DEFAULT '';
    ALTER TABLE unanswered ADD COLUMN chat_id TEXT NOT NULL DEFAULT '';
    CREATE INDEX unanswered_chat ON unanswered (platform, chat_id);
    CREATE INDEX transcript_at ON transcript (at);
    """,
    # When each background job (the overdue watcher, retention) is next due: among several workers
    # the one whose claim moves next_at forward runs it (`Store.claim_job`). Not copied by copy-db:
    # a new database runs each job once at start.
    """
    CREATE TABLE jobs (name TEXT PRIMARY KEY, next_at {real} NOT NULL);
    """,
)

# Every table, parents before children (the order `gosbot copy-db` fills them in), with the
# column that a sequence numbers, if any.
TABLES: tuple[tuple[str, str | None], ...] = (
    ("sessions", None),
    ("processed_updates", None),
    ("transcript", "id"),
    ("tickets", "number"),
    ("ticket_messages", "id"),
    ("outbox", "id"),
    ("blocked_chats", None),
    ("unanswered", "id"),
    ("cursors", None),
)


def render(dialect: str) -> tuple[str, ...]:
    """The migrations in one dialect's SQL."""
    types = DIALECT_TYPES[dialect]
    return tuple(template.format(**types) for template in MIGRATIONS_TEMPLATE)
