"""A database that cannot be written: refused at start with one line and a non-zero exit; at run
time (a full disk) the citizen is told "technical problem, write later or call the hotline" instead
of silence, the error is logged without personal data, and the bot recovers once there is room."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scenario import Chat, gosbot

from bot.dialogue import Dialogue, KnowledgeSource
from bot.knowledge import Knowledge
from bot.messages import Incoming, Reply
from bot.records import OutboxItem
from bot.storage import SqliteStore
from bot.storage.base import StoreUnavailable

ROOT = Path(__file__).resolve().parent.parent


def env_for(db: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "GOSBOT_DB": str(db), "GOSBOT_KNOWLEDGE": str(ROOT / "knowledge"), **extra}


def one_clear_line(stderr: str, db: Path) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("gosbot: cannot use the database ")
    assert str(db) in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["chat", "run"])
def test_a_database_under_a_file_is_refused_at_start(tmp_path: Path, command: str):
    (tmp_path / "not-a-folder").write_text("x")
    db = tmp_path / "not-a-folder" / "gosbot.sqlite3"
    # `run` with a token, so the platforms' start-up is what refuses (the API base is never reached).
    platform = {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_API_BASE": "http://127.0.0.1:9"} if command == "run" else {}
    result = gosbot(command, env=env_for(db, **platform), stdin="привет\n", timeout=30)
    assert result.returncode == 2
    one_clear_line(result.stderr, db)
    assert result.stdout == ""  # nobody was answered from a bot that cannot remember


def test_a_folder_in_place_of_the_database_is_refused_at_start(tmp_path: Path):
    db = tmp_path / "gosbot.sqlite3"
    db.mkdir()
    result = gosbot("chat", env=env_for(db), stdin="привет\n", timeout=30)
    assert result.returncode == 2
    one_clear_line(result.stderr, db)


def test_a_read_only_location_is_refused_at_start(tmp_path: Path):
    # Tests run as root, for whom file modes do not forbid writing; /sys refuses everyone.
    db = Path("/sys/gosbot-test.sqlite3")
    with pytest.raises(PermissionError):  # the premise: not even root may create a file there
        db.touch()
    result = gosbot("chat", env=env_for(db), stdin="привет\n", timeout=30)
    assert result.returncode == 2
    one_clear_line(result.stderr, db)


def test_a_locked_database_is_refused_at_start(tmp_path: Path):
    db = tmp_path / "gosbot.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("CREATE TABLE held (x)")
        holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of writing, for ever
        holder.execute("INSERT INTO held VALUES (1)")
        result = gosbot("chat", env=env_for(db, GOSBOT_DB_BUSY_TIMEOUT="1"), stdin="привет\n", timeout=30)
    finally:
        holder.close()
    assert result.returncode == 2
    assert "locked" in one_clear_line(result.stderr, db)


async def test_open_failure_leaves_no_connection_behind(tmp_path: Path):
    """The old hang: a failed open left aiosqlite's thread running, so the process never exited."""
    (tmp_path / "file").write_text("x")
    store = SqliteStore(tmp_path / "file" / "db.sqlite3")
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert store._db is None


# -- a full disk at run time ----------------------------------------------------------------------


@pytest.fixture
async def tiny(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "tiny.sqlite3")
    await store.open()
    yield store
    await store.close()


async def fill_up(store: SqliteStore) -> int:
    """Make the database full, as on a full volume: the file may not grow (SQLite's max_page_count)
    and its free space is taken, so every write that needs room fails with "database or disk is
    full". Returns the old limit."""
    db = store.db
    row = await (await db.execute("PRAGMA max_page_count")).fetchone()
    await db.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    await db.commit()
    pages = await (await db.execute("PRAGMA page_count")).fetchone()
    assert row is not None
    assert pages is not None
    await db.execute(f"PRAGMA max_page_count={pages[0]}")
    for size in (4096, 1024, 256, 64, 16, 4, 1):
        while True:
            try:
                await db.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
                await db.commit()
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc):
                    raise
                await db.rollback()
                break
    return int(row[0])


async def test_a_full_disk_gets_the_technical_problem_reply_not_silence(
    tiny: SqliteStore, source: KnowledgeSource, caplog: pytest.LogCaptureFixture
):
    k: Knowledge = source.knowledge
    chat = Chat(Dialogue(source, tiny), chat_id="5550001")
    limit = await fill_up(tiny)
    # Long enough to need new pages (a short line may still fit in a half-empty page).
    secret_question = (
        "не приходит смс на номер +7 912 345-67-89, я Иванов Пётр. " + "Подробно: всё перепробовал. " * 200
    )
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            replies = await chat.say(secret_question)
            assert [r.text for r in replies] == [k.text("technical_problem")]
    assert "8 800 100-70-10" in k.text("technical_problem")  # the hotline, from contacts.yaml
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "full" in logged
    for private in ("5550001", "Иванов", "912", "смс"):
        assert private not in logged
    # Room again: the next message is answered and remembered as usual.
    await tiny.db.execute(f"PRAGMA max_page_count={limit}")
    replies = await chat.say("/phone")
    assert [r.text for r in replies] == [k.text("phone")]
    assert await tiny.seen_update("test", f"{chat.chat_id}-21")


class FullDiskStore(SqliteStore):
    """Writes fail the way SQLite fails on a full volume, while `full` is set."""

    full = False

    def _check(self) -> None:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")

    async def create_ticket(self, ticket, messages):  # type: ignore[no-untyped-def]
        self._check()
        return await super().create_ticket(ticket, messages)

    async def commit_turn(self, turn):  # type: ignore[no-untyped-def]
        self._check()
        return await super().commit_turn(turn)


async def test_a_full_disk_during_a_handoff_still_answers(tmp_path: Path, source: KnowledgeSource):
    store = FullDiskStore(tmp_path / "full.sqlite3")
    await store.open()
    try:
        chat = Chat(Dialogue(source, store), chat_id="5550002")
        await chat.say("привет")
        store.full = True
        replies = await chat.say("/operator")
        assert [r.text for r in replies] == [source.knowledge.text("technical_problem")]
        assert await store.list_tickets() == []
        store.full = False
        replies = await chat.say("/operator")
        assert "№ 1" in replies[0].text
    finally:
        await store.close()


async def test_queued_turn_on_a_full_disk_is_sent_directly(tmp_path: Path, source: KnowledgeSource):
    """A front end with an outbox gets the apology to send itself (it cannot be queued)."""
    store = FullDiskStore(tmp_path / "full.sqlite3")
    await store.open()
    try:
        dialogue = Dialogue(source, store)
        store.full = True
        handled = await dialogue.handle_queued(Incoming("telegram", "1", "1", text="/phone", update_id="u1"))
        assert handled.queued == 0
        assert [r.text for r in handled.send_now] == [source.knowledge.text("technical_problem")]
        assert await store.pending_count() == 0
        assert not await store.seen_update("telegram", "u1")  # not processed: a redelivery is handled anew
        store.full = False
        handled = await dialogue.handle_queued(Incoming("telegram", "1", "1", text="/phone", update_id="u1"))
        assert (handled.queued, handled.send_now) == (1, ())
        [item] = await store.due(("telegram",), now=time.time())
        assert item.reply.text == source.knowledge.text("phone")
    finally:
        await store.close()


async def test_the_store_does_not_commit_a_failed_write_later(tiny: SqliteStore):
    """A failed write is rolled back, not left open for the next successful commit to carry."""
    limit = await fill_up(tiny)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        await tiny.enqueue(OutboxItem("vk", "1", Reply("x" * 100_000)))
    await tiny.db.execute(f"PRAGMA max_page_count={limit}")
    await tiny.set_cursor("c", "1")
    assert await tiny.pending_count() == 0
