"""Moving a deployment up: `gosbot migrate` on both stores, `gosbot copy-db` from a SQLite file filled
through the core into a real PostgreSQL server, then everything compared."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from scenario import Chat, gosbot

from bot.dialogue import Dialogue
from bot.messages import Reply
from bot.records import OutboxItem
from bot.storage import PostgresStore, SqliteStore
from bot.storage.migrations import TABLES
from bot.storage.sqlite import MIGRATIONS
from bot.tickets import DESK


async def fill_through_the_core(dialogue: Dialogue) -> None:
    """Conversations, a handoff worked by staff and rated, an open urgent ticket, a blocked chat."""
    anna, boris, vera = Chat(dialogue, "anna"), Chat(dialogue, "boris", "vk"), Chat(dialogue, "vera")
    await anna.say("не приходит смс с кодом")
    await anna.say("/operator")
    await boris.press("f:fraud")
    await boris.press("op")
    await vera.say("какая завтра погода в Казани")  # goes to the editors' unanswered log
    await vera.say("мой пароль Qwerty123, помогите")  # redacted before it is stored
    first = (await dialogue.store.open_ticket_for("test", "anna")).number
    await dialogue.desk.take(first, "Ольга")
    await dialogue.desk.reply(first, "Проверьте папку «Спам» и номер в профиле", "Ольга")
    await dialogue.desk.note(first, "звонила дважды", "Ольга")
    await dialogue.desk.close(first, "Ольга")
    await anna.press(f"r:{first}:5")  # the rating buttons sent with the closing message
    await dialogue.store.set_chat_blocked("vk", "boris", True)
    await dialogue.store.enqueue(OutboxItem("telegram", "anna", Reply("ждёт отправки"), next_at=50.0, created_at=1.0))
    await dialogue.store.set_cursor("vk.longpoll.ts.1", "4711")  # where VK's long poll resumes


async def everything(store: SqliteStore | PostgresStore) -> dict[str, object]:
    """All a store holds, read through the Store interface."""
    tickets = await store.list_tickets()
    chats = [("test", "anna"), ("vk", "boris"), ("test", "vera")]
    return {
        "sessions": [await store.load_session(*chat) for chat in chats],
        "transcripts": [await store.recent_transcript(*chat, 1000) for chat in chats],
        "tickets": tickets,
        "messages": [await store.ticket_messages(t.number) for t in tickets],
        # PostgreSQL's due() claims what it returns (moves next_at on by a lease): compared without it,
        # and the raw rows, next_at included, are compared before anything is claimed.
        "outbox": [
            dataclasses.replace(item, next_at=0.0)
            for item in await store.due(("telegram", "vk", "test", DESK), now=1e12, limit=1000)
        ],
        "pending": await store.pending_count(),
        "blocked": [await store.is_chat_blocked(*chat) for chat in chats],
        "unanswered": await store.unanswered(since=0.0),
        "seen": [await store.seen_update("test", f"anna-{n}") for n in range(1, 5)],
        "cursor": await store.get_cursor("vk.longpoll.ts.1"),
    }


def raw_rows(sqlite_file: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(sqlite_file) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table, _ in TABLES}


async def test_copy_db_moves_a_deployment_to_postgres_without_losing_tickets(tmp_path, source, postgres_url):
    sqlite_file = tmp_path / "deployment.sqlite3"
    sqlite = SqliteStore(sqlite_file)
    await sqlite.open()
    await fill_through_the_core(Dialogue(source, sqlite))
    await sqlite.close()
    sqlite = SqliteStore(sqlite_file)
    await sqlite.open()
    before = await everything(sqlite)
    await sqlite.close()
    assert len(before["tickets"]) == 2
    assert {t.status for t in before["tickets"]} == {"closed", "open"}
    assert before["tickets"][0].rating is not None
    assert before["unanswered"]
    assert before["pending"] >= 3  # desk events and the citizen's messages wait in the outbox
    assert before["cursor"] == "4711"

    result = gosbot("copy-db", str(sqlite_file), postgres_url, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "tickets 2" in result.stdout

    postgres = PostgresStore(postgres_url)
    await postgres.open()
    try:
        # Every row of every table, column for column (ids and ticket numbers kept).
        rows = {}
        for table, _ in TABLES:
            records = await postgres.pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
            rows[table] = [tuple(r.values()) for r in records]
        assert rows == raw_rows(sqlite_file)
        # Whose unanswered question it was (for `gosbot forget`) moves too.
        assert ("test", "vera") in {(r[-2], r[-1]) for r in rows["unanswered"]}
        after = await everything(postgres)
        for key in before:
            assert after[key] == before[key], key
        # The deployment goes on: numbers continue after the copied ones, conversations resume.
        dialogue = Dialogue(source, postgres)
        anna = Chat(dialogue, "anna")
        anna._updates = 10
        await anna.say("/operator")
        numbers = [t.number for t in await postgres.list_tickets()]
        assert numbers == [*(t.number for t in before["tickets"]), max(t.number for t in before["tickets"]) + 1]
        assert len(await postgres.recent_transcript("test", "anna", 1000)) > len(before["transcripts"][0])
    finally:
        await postgres.close()


async def test_copy_db_refuses_a_database_that_has_data(tmp_path, sqlite_store, postgres_url):
    sqlite_file = sqlite_store.path
    await sqlite_store.enqueue(OutboxItem("telegram", "c1", Reply("одно"), created_at=1.0))
    first = gosbot("copy-db", str(sqlite_file), postgres_url, env=dict(os.environ))
    assert first.returncode == 0, first.stderr
    again = gosbot("copy-db", str(sqlite_file), postgres_url, env=dict(os.environ))
    assert again.returncode == 1
    assert "already has rows in outbox" in again.stderr
    con = await asyncpg.connect(postgres_url)
    try:
        assert await con.fetchval("SELECT COUNT(*) FROM outbox") == 1  # nothing written twice
    finally:
        await con.close()


def test_copy_db_names_a_missing_file(tmp_path):
    result = gosbot("copy-db", str(tmp_path / "nope.sqlite3"), "postgresql://127.0.0.1:1/x", env=dict(os.environ))
    assert result.returncode == 1
    assert "no such SQLite file" in result.stderr


def test_migrate_creates_and_updates_the_sqlite_file(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    env = {**os.environ, "GOSBOT_DB": str(path)}
    env.pop("GOSBOT_DATABASE_URL", None)
    result = gosbot("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"schema version {len(MIGRATIONS)}" in result.stdout
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {table for table, _ in TABLES} <= tables


async def test_migrate_creates_the_postgres_schema(postgres_url):
    env = {**os.environ, "GOSBOT_DATABASE_URL": postgres_url}
    result = gosbot("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"PostgreSQL: schema version {len(MIGRATIONS)}" in result.stdout
    assert gosbot("migrate", env=env).returncode == 0  # twice is fine
    con = await asyncpg.connect(postgres_url)
    try:
        versions = [r["version"] for r in await con.fetch("SELECT version FROM schema_version ORDER BY version")]
        tables = {r["tablename"] for r in await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await con.close()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert {table for table, _ in TABLES} <= tables


def test_a_bad_database_url_is_refused():
    result = gosbot("migrate", env={**os.environ, "GOSBOT_DATABASE_URL": "mysql://x"})
    assert result.returncode != 0
    assert "GOSBOT_DATABASE_URL must start with postgresql://" in result.stderr


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_one_migration_history_rendered_per_dialect(dialect):
    from bot.storage.migrations import MIGRATIONS_TEMPLATE, render

    rendered = render(dialect)
    assert len(rendered) == len(MIGRATIONS_TEMPLATE)
    assert all("{" not in script for script in rendered)
    if dialect == "postgres":
        assert "DOUBLE PRECISION" in rendered[0]
        assert " REAL" not in rendered[0]  # 4-byte floats would round timestamps
