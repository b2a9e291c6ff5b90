"""The outbox worker (bot.outbox) against real stores: what `Store.due` hands over is delivered
once, in order, and never left waiting out a PostgreSQL lease (several workers share that outbox)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.messages import Reply
from bot.outbox import OutboxWorker, TryLater
from bot.records import OutboxItem
from bot.storage.base import Store
from bot.storage.postgres import PostgresStore
from bot.storage.sqlite import SqliteStore

both = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)


def make_worker(store: object, deliver: Callable[[OutboxItem], Awaitable[None]], **options: Any) -> OutboxWorker:
    """A worker of the "telegram" outbox, one chat per key, quick to retry and to look again."""
    options = {"clock": time.time, "backoff": lambda attempts: 0.2, "interval": 0.05, **options}
    return OutboxWorker(store, "telegram", deliver, lambda i: i.chat_id, **options)  # type: ignore[arg-type]


def item(chat: str, text: str) -> OutboxItem:
    return OutboxItem("telegram", chat, Reply(text), created_at=time.time())


async def until(check, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(worker: OutboxWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@both
async def test_an_item_handed_over_while_its_chat_is_busy_goes_out_without_waiting(store: Store):
    """A chat's reply is stored as sent, but the worker has not yet heard back (a slow database), and
    meanwhile a pass hands over the chat's next reply. It must queue behind: on PostgreSQL a pass
    leases what it returns for a minute, and the worker used to drop it, so it sat out the lease."""
    laggy = Laggy(store)
    sent: list[str] = []

    async def deliver(i: OutboxItem) -> None:
        sent.append(i.reply.text)
        if i.reply.text == "1":
            laggy.mark_sent_lag = 0.5  # the first one's answer comes late

    worker = make_worker(laggy, deliver)
    async with running(worker):
        await store.enqueue(item("42", "1"))
        worker.nudge()
        await until(lambda: laggy.marked, 5, "the first item stored as sent")
        laggy.mark_sent_lag = 0.0
        for n in range(2, 5):
            await store.enqueue(item("42", str(n)))
        worker.nudge()
        await until(lambda: len(sent) == 4, 5, "every item")
        await asyncio.sleep(0.3)
    assert sent == ["1", "2", "3", "4"]
    assert await store.pending_count("telegram") == 0


@both
async def test_after_a_failure_the_later_items_wait_behind_it_and_follow_it_soon(store: Store):
    """The first item fails once: the chat's later items (already handed over) are handed back, go
    out after it once it succeeds, and nothing waits out a lease."""
    sent: list[str] = []
    failed: list[str] = []

    async def deliver(i: OutboxItem) -> None:
        if i.reply.text == "1" and not failed:
            failed.append("1")
            raise TryLater("not now")
        sent.append(i.reply.text)

    for n in range(1, 5):
        await store.enqueue(item("42", str(n)))
    worker = make_worker(store, deliver)
    async with running(worker):
        await until(lambda: len(sent) == 4, 5, "every item")
        await asyncio.sleep(0.3)
    assert failed == ["1"]
    assert sent == ["1", "2", "3", "4"]


class Laggy:
    """A store whose answers come late (a busy database): `due` reads, then its answer takes a while;
    `mark_sent` is stored, then the caller hears of it a while later."""

    def __init__(self, store: Store):
        self._store = store
        self.due_lag = 0.0
        self.mark_sent_lag = 0.0
        self.marked: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def due(self, platforms: tuple[str, ...], now: float, limit: int = 50) -> list[OutboxItem]:
        items = await self._store.due(platforms, now, limit)
        await asyncio.sleep(self.due_lag)
        return items

    async def mark_sent(self, item_id: int) -> None:
        await self._store.mark_sent(item_id)
        self.marked.append(item_id)
        await asyncio.sleep(self.mark_sent_lag)


async def test_an_answer_read_before_an_item_was_sent_does_not_send_it_again(sqlite_store: SqliteStore):
    store = sqlite_store
    slow = Laggy(store)
    sent: list[str] = []

    async def deliver(i: OutboxItem) -> None:
        await asyncio.sleep(0.1)  # a pass starts and reads meanwhile: the item is still pending
        sent.append(i.reply.text)

    for chat in ("1", "2", "3"):
        await store.enqueue(item(chat, chat))
    slow.due_lag = 0.3
    worker = make_worker(slow, deliver, interval=0.01)
    async with running(worker):
        await until(lambda: len(sent) >= 3, 5, "every item")
        await asyncio.sleep(1.0)  # several slow passes, each read before the last sends
    assert sorted(sent) == ["1", "2", "3"]


async def test_an_item_whose_lease_ran_out_while_queued_here_is_left_to_the_worker_that_took_it(postgres_url):
    """Worker A holds a chat's two replies; the first takes so long to send that the second's
    lease runs out and worker B takes both (as it must: A might have died). A has already sent the
    first; it must not send the second too."""
    a, b = PostgresStore(postgres_url, max_size=2), PostgresStore(postgres_url, max_size=2)
    await a.open()
    await b.open()
    now = [1_000.0]
    clock = lambda: now[0]  # noqa: E731
    sent: list[str] = []
    first_started, first_may_finish = asyncio.Event(), asyncio.Event()

    async def deliver(i: OutboxItem) -> None:
        if i.reply.text == "1":
            first_started.set()
            await first_may_finish.wait()
        sent.append(i.reply.text)

    try:
        for text in ("1", "2"):
            await a.enqueue(item("42", text))
        worker = make_worker(a, deliver, clock=clock)
        async with running(worker):
            await asyncio.wait_for(first_started.wait(), 5)
            now[0] += a.lease + 1  # A's lease on both ran out
            taken = await b.due(("telegram",), now[0], 10)
            assert [i.reply.text for i in taken] == ["1", "2"]  # B takes them over
            first_may_finish.set()
            await until(lambda: sent == ["1"], 5, "A to finish the first")
            await asyncio.sleep(0.5)  # A would have sent the second by now
        assert sent == ["1"]  # the second is B's to send
        assert await a.pending_count("telegram") == 1  # "2", B's
    finally:
        await a.close()
        await b.close()
