"""The SQLite store's trips and group commit (bot/storage/sqlite_batch.py), on real files: many
chats' turns share one COMMIT, yet each caller is answered only once its turn is in the file, a
bad turn fails alone, a failed COMMIT acknowledges nobody, and nothing is sent while a caller
holds the store's lock."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.records import Session
from bot.storage import SqliteStore
from bot.storage.base import Turn
from bot.storage.sqlite_batch import Batcher


def turn(chat: str, **fields: Any) -> Turn:
    return Turn(
        Session("test", chat), update_id=f"{chat}-1", transcript=(("citizen", f"text {chat}"),), at=1.0, **fields
    )


def in_file(path: Path, chat: str) -> bool:
    """Seen by another connection: committed, not just written."""
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT 1 FROM sessions WHERE platform='test' AND chat_id=?", (chat,)).fetchone()
        seen = other.execute("SELECT 1 FROM processed_updates WHERE update_id=?", (f"{chat}-1",)).fetchone()
    return bool(row) and bool(seen)


async def test_concurrent_turns_share_commits_and_each_is_in_the_file_when_answered(sqlite_store: SqliteStore):
    chats = [f"c{i}" for i in range(60)]
    committed_when_answered: list[bool] = []

    async def one(chat: str) -> None:
        await sqlite_store.commit_turn(turn(chat))
        committed_when_answered.append(in_file(sqlite_store.path, chat))

    trips, commits = sqlite_store._batch.trips, sqlite_store._batch.commits
    await asyncio.gather(*(one(c) for c in chats))
    assert committed_when_answered == [True] * len(chats)
    # The first turn goes alone (nothing under way); the rest wait for it and share the next COMMIT.
    assert sqlite_store._batch.commits - commits <= 3
    assert sqlite_store._batch.trips - trips <= 3


async def test_a_failing_turn_fails_alone_and_leaves_nothing(sqlite_store: SqliteStore):
    bad = turn("bad", unanswered=(("only two", "fields"),))  # type: ignore[arg-type]
    good = [turn(f"g{i}") for i in range(10)]
    results = await asyncio.gather(
        *(sqlite_store.commit_turn(t) for t in [*good[:5], bad, *good[5:]]), return_exceptions=True
    )
    assert [type(r).__name__ for r in results].count("ValueError") == 1
    assert isinstance(results[5], ValueError)
    assert not in_file(sqlite_store.path, "bad")  # its session upsert, written first, was rolled back
    assert all(in_file(sqlite_store.path, f"g{i}") for i in range(10))


async def test_nothing_is_sent_while_a_caller_holds_the_lock(sqlite_store: SqliteStore):
    async with sqlite_store._lock:  # as purge() and forget() do for their statements
        pending = asyncio.ensure_future(sqlite_store.commit_turn(turn("later")))
        await asyncio.sleep(0.2)
        assert not pending.done()
        assert not in_file(sqlite_store.path, "later")
    await pending
    assert in_file(sqlite_store.path, "later")


async def test_a_caller_cancelled_before_its_trip_is_not_committed(sqlite_store: SqliteStore):
    first = asyncio.ensure_future(sqlite_store.commit_turn(turn("first")))
    second = asyncio.ensure_future(sqlite_store.commit_turn(turn("second")))
    await asyncio.sleep(0)  # both submitted: the first trip is under way, the second turn waits
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await sqlite_store.commit_turn(turn("third"))
    assert in_file(sqlite_store.path, "first")
    assert not in_file(sqlite_store.path, "second")
    assert in_file(sqlite_store.path, "third")


async def test_close_waits_for_queued_turns(tmp_path: Path):
    store = SqliteStore(tmp_path / "close.sqlite3")
    await store.open()
    tasks = [asyncio.ensure_future(store.commit_turn(turn(f"c{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*tasks)
    assert all(in_file(store.path, f"c{i}") for i in range(20))


async def test_a_failed_commit_acknowledges_none_of_its_turns(tmp_path: Path):
    """A deferred foreign key is checked at COMMIT: the whole shared transaction fails there, so every
    turn in it must fail too, and none may be in the file."""
    path = tmp_path / "deferred.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE child (name TEXT, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
        )
    con = sqlite3.connect(path, check_same_thread=False)
    con.execute("PRAGMA foreign_keys=ON")
    thread = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()

    def write(c: sqlite3.Connection, row: tuple[str, int]) -> None:
        c.execute("INSERT INTO child (name, parent) VALUES (?, ?)", row)

    batcher: Batcher[tuple[str, int]] = Batcher(lambda fn: loop.run_in_executor(thread, fn, con), write, asyncio.Lock())
    try:
        con.execute("INSERT INTO parent (id) VALUES (1)")
        con.commit()
        first = asyncio.ensure_future(batcher.turn(("ok-first", 1)))
        await asyncio.sleep(0)  # under way alone; the next three wait for it and share one transaction
        rest = [asyncio.ensure_future(batcher.turn(row)) for row in [("ok", 1), ("orphan", 999), ("ok too", 1)]]
        await first
        results = await asyncio.gather(*rest, return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
        await batcher.drain()
        names = [r[0] for r in con.execute("SELECT name FROM child ORDER BY rowid")]
        assert names == ["ok-first"]
        assert batcher.commits == 1
    finally:
        thread.shutdown()
        con.close()


async def test_a_database_locked_by_another_process_fails_the_shared_turns_together(tmp_path: Path):
    """Another process holding the write lock past busy_timeout is no turn's fault: the turns that
    shared the transaction fail together, rather than each waiting busy_timeout again in turn."""
    store = SqliteStore(tmp_path / "locked.sqlite3", busy_timeout=0.5)
    await store.open()
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # e.g. `gosbot tickets close` in the middle of its write
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(store.commit_turn(turn(f"c{i}")) for i in range(8)), return_exceptions=True)
        elapsed = asyncio.get_running_loop().time() - started
        assert all(isinstance(r, sqlite3.OperationalError) and "locked" in str(r) for r in results)
        assert elapsed < 2.5  # two waits (the first trip, then the other seven together), not eight
        other.execute("ROLLBACK")
        await store.commit_turn(turn("after"))
        assert in_file(store.path, "after")
        assert not in_file(store.path, "c1")
    finally:
        other.close()
        await store.close()


async def test_turns_opening_tickets_together_each_get_their_own_number(sqlite_store: SqliteStore):
    """A bad turn among them makes the shared transaction run again without it: the numbers the
    callers get are those of the attempt that committed, each its own chat's ticket."""
    from test_storage import opening_turn

    bad = replace(opening_turn("bad", "ubad"), unanswered=(("only two", "fields"),))  # type: ignore[arg-type]
    turns = [opening_turn(f"c{i}", f"u{i}") for i in range(6)]
    results = await asyncio.gather(
        *(sqlite_store.commit_turn(t) for t in [*turns[:3], bad, *turns[3:]]), return_exceptions=True
    )
    assert isinstance(results[3], ValueError)
    numbers = [r for r in results if not isinstance(r, BaseException)]
    assert len(set(numbers)) == 6
    for i, number in enumerate(numbers):
        found = await sqlite_store.get_ticket(number)
        assert found is not None
        assert found.chat_id == f"c{i}"
        [confirmation] = [o for o in await sqlite_store.due(("telegram",), now=2.0) if o.chat_id == f"c{i}"]
        assert confirmation.reply.text == f"Создано обращение № {number}"
    assert await sqlite_store.open_ticket_for("telegram", "bad") is None
