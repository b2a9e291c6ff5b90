"""Several workers on one PostgreSQL, at the level of the core: three `Dialogue`s, each with its own
`PostgresStore` (its own pools, as three `gosbot run` processes would have), on one real database.
The process-level tests (real `gosbot run` processes behind the fake Bot API) are in
tests/test_workers_live.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from adapters.telegram import TelegramAdapter
from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from bot.messages import Incoming
from bot.records import Ticket
from bot.storage.base import SingleProcessOnly
from bot.storage.postgres import PostgresStore
from bot.tickets import Desk
from fakes.telegram_api import FAST, FakeBotAPI
from fakes.vk_api import FAST as VK_FAST
from fakes.vk_api import GROUP_ID, FakeVk
from fakes.vk_api import TOKEN as VK_TOKEN

WORKERS = 3


@pytest.fixture
async def workers(source: KnowledgeSource, postgres_url: str) -> AsyncIterator[list[Dialogue]]:
    stores = [PostgresStore(postgres_url, max_size=4, lock_pool_size=4) for _ in range(WORKERS)]
    for store in stores:
        await store.open()
    try:
        yield [Dialogue(source, store) for store in stores]
    finally:
        for store in stores:
            await store.close()


def incoming(text: str = "", update_id: str = "1", chat_id: str = "500", payload: str | None = None) -> Incoming:
    return Incoming(
        platform="telegram", chat_id=chat_id, user_id=chat_id, text=text, payload=payload, update_id=update_id
    )


async def test_an_update_delivered_to_every_worker_at_once_is_answered_once(workers):
    for n in range(5):
        update = incoming("не приходит смс с кодом", update_id=f"dup-{n}")
        answers = await asyncio.gather(*(w.handle(update) for w in workers))
        assert sorted(len(a) > 0 for a in answers) == [False] * (WORKERS - 1) + [True], answers
    lines = await workers[0].store.recent_transcript("telegram", "500", 100)
    assert [text for role, text in lines if role == "citizen"] == ["не приходит смс с кодом"] * 5


async def test_one_chats_messages_over_several_workers_never_lose_a_session_write(workers, source):
    """The data warning is given once per session (a flag in it): turns that overlapped would each
    read the session without the flag and each warn."""
    k = source.knowledge
    warning = k.text("sensitive_data_warning", what="X").split("X")[0]
    messages = [incoming(f"мой телефон +7 912 345-67-{10 + n} не приходит смс", update_id=f"m{n}") for n in range(9)]
    answers = await asyncio.gather(*(workers[n % WORKERS].handle(m) for n, m in enumerate(messages)))
    warned = [reply.text for replies in answers for reply in replies if reply.text.startswith(warning)]
    assert len(warned) == 1
    lines = await workers[0].store.recent_transcript("telegram", "500", 100)
    assert len([line for line in lines if line[0] == "citizen"]) == 9


async def test_one_ticket_when_workers_get_a_chats_handoff_requests_at_once(workers, source):
    k = source.knowledge
    answers = await asyncio.gather(
        *(workers[n % WORKERS].handle(incoming("/operator", update_id=f"op{n}")) for n in range(6))
    )
    opened_prefix = k.text("ticket_opened", ticket="№", answer_time="x").split("№")[0]
    opened = [r for replies in answers for r in replies if r.text.startswith(opened_prefix)]
    assert len(opened) == 1
    tickets = await workers[0].store.list_tickets()
    assert [(t.chat_id, t.status) for t in tickets] == [("500", "open")]


async def test_an_overdue_ticket_is_announced_once_by_racing_workers(workers):
    store = workers[0].store
    for n in range(4):
        await store.create_ticket(
            Ticket(0, "telegram", f"c{n}", "other_out_of_scope", "normal", "open", created_at=1.0, due_at=2.0), []
        )
    desks = [Desk(w.store, lambda w=w: w.knowledge, clock=lambda: 100.0) for w in workers]
    announced = await asyncio.gather(*(d.announce_overdue() for d in desks for _ in range(2)))
    assert sorted(t.number for batch in announced for t in batch) == [1, 2, 3, 4]
    events = await store.pool.fetch("SELECT ticket FROM outbox WHERE event='overdue' ORDER BY ticket")
    assert [r["ticket"] for r in events] == [1, 2, 3, 4]


async def test_a_second_long_polling_worker_on_the_database_is_refused(workers, caplog):
    """Long polling is single-process: the first poller says so, a second one is refused at start
    (rather than both fighting over getUpdates); once the first stops, polling may start elsewhere."""
    caplog.set_level(logging.INFO)
    api = FakeBotAPI()
    await api.start()
    settings = Settings(telegram_token="123456:TEST-token-never-logged", telegram_api_base=api.base_url)
    first_stop = asyncio.Event()
    first = asyncio.create_task(TelegramAdapter(settings, workers[0], FAST).run(first_stop))
    try:
        await api.wait_for(lambda c: c.method == "deleteWebhook")  # what polling starts with
        assert any("single-process" in r.getMessage() for r in caplog.records)
        with pytest.raises(SingleProcessOnly, match="already long-polling"):
            await asyncio.wait_for(TelegramAdapter(settings, workers[1], FAST).run(asyncio.Event()), 30)
        assert not first.done()
        await api.push(api.message(77, "/phone"))
        await api.wait_sent(77)  # the first poller still serves
        first_stop.set()
        await asyncio.wait_for(first, 15)
        third_stop = asyncio.Event()
        third = asyncio.create_task(TelegramAdapter(settings, workers[2], FAST).run(third_stop))
        await api.wait_for(lambda c: c.method == "deleteWebhook", count=2)  # this one polls now
        third_stop.set()
        await asyncio.wait_for(third, 15)
    finally:
        first_stop.set()
        await asyncio.gather(first, return_exceptions=True)
        await api.close()


async def test_a_second_vk_long_polling_worker_on_the_database_is_refused(workers, caplog):
    caplog.set_level(logging.INFO)
    vk = FakeVk()
    await vk.start()
    settings = Settings(vk_group_token=VK_TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"{vk.url}/method")
    stop = asyncio.Event()
    first = VkAdapter(settings, workers[0], **VK_FAST)
    running = asyncio.create_task(first.run(stop))
    try:
        await asyncio.wait_for(first.ready.wait(), 15)
        assert any("single-process" in r.getMessage() for r in caplog.records)
        with pytest.raises(SingleProcessOnly, match="already long-polling"):
            await asyncio.wait_for(VkAdapter(settings, workers[1], **VK_FAST).run(asyncio.Event()), 30)
        assert not running.done()
    finally:
        stop.set()
        await vk.release_pollers()
        await asyncio.gather(running, return_exceptions=True)
        await vk.stop()
