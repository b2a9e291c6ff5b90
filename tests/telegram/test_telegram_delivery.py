"""Acknowledged only after commit, sent only from the outbox: the Telegram side of "nothing lost".

A store whose commits wait at a gate shows the order of things: Telegram's offset (polling) or the
webhook's 200 must not come before the turn is committed; a store that fails like a full disk
shows that the citizen still gets an answer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from typing import Any

import aiohttp
from gated import GatedStore

from adapters.telegram import TelegramAdapter
from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from fakes.telegram_api import FAST, FakeBotAPI


async def run_adapter(settings: Settings, dialogue: Dialogue) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    adapter = TelegramAdapter(settings, dialogue, FAST)
    return stop, asyncio.create_task(adapter.run(stop))


async def until(check: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "the expected outcome did not happen in time"
        await asyncio.sleep(0.01)


async def test_polling_moves_the_offset_past_an_update_only_after_its_turn_is_committed(
    fake: FakeBotAPI, settings: Settings, source: KnowledgeSource, gated: GatedStore
):
    stop, task = await run_adapter(settings, Dialogue(source, gated))
    try:
        gated.gate.clear()
        [update_id] = await fake.push(fake.message(501, "/phone"))
        await until(lambda: gated.waiting == 1)
        await asyncio.sleep(0.3)  # time enough for a premature getUpdates with offset past it
        assert all(c.params.get("offset", 0) <= update_id for c in fake.find("getUpdates"))
        assert fake.sent(501) == []
        gated.gate.set()
        await fake.wait_sent(501)
        await until(lambda: any(c.params.get("offset") == update_id + 1 for c in fake.find("getUpdates")))
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_webhook_answers_200_only_after_the_turn_is_committed(
    fake: FakeBotAPI, settings: Settings, source: KnowledgeSource, gated: GatedStore
):
    hooked = replace(
        settings,
        telegram_webhook_url="https://bot.example.org/tg/hook",
        telegram_webhook_secret="s3cr3t-Token_42",
        telegram_webhook_host="127.0.0.1",
        telegram_webhook_port=0,
    )
    adapter = TelegramAdapter(hooked, Dialogue(source, gated), FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    try:
        await fake.wait_for(lambda c: c.method == "setWebhook")
        assert adapter.webhook is not None
        url = f"http://127.0.0.1:{adapter.webhook.port}/tg/hook"
        gated.gate.clear()
        update = fake.message(502, "/phone")
        async with aiohttp.ClientSession() as http:
            answer = asyncio.create_task(
                http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-Token_42"})
            )
            await until(lambda: gated.waiting == 1)
            await asyncio.sleep(0.2)
            assert not answer.done()  # no 200 while the turn is not committed
            gated.gate.set()
            response = await answer
            assert response.status == 200
            response.release()
        # By the time of the 200 the update is processed and its reply is in the outbox.
        assert await gated.seen_update("telegram", str(update["update_id"]))
        await fake.wait_sent(502)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_replies_wait_in_the_outbox_not_in_memory(
    fake: FakeBotAPI, settings: Settings, source: KnowledgeSource, gated: GatedStore
):
    """Every reply is a stored outbox item, marked sent once Telegram took it."""
    stop, task = await run_adapter(settings, Dialogue(source, gated))
    try:
        await fake.push(*(fake.message(600 + i, "/phone") for i in range(5)))
        for i in range(5):
            await fake.wait_sent(600 + i)
        await until(lambda: not fake._updates)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    with sqlite3.connect(gated.path) as db:
        rows = db.execute("SELECT chat_id, status FROM outbox WHERE platform='telegram' ORDER BY id").fetchall()
    assert sorted(rows) == [(str(600 + i), "sent") for i in range(5)]


async def test_a_full_disk_gets_the_citizen_a_technical_problem_reply(
    fake: FakeBotAPI, settings: Settings, source: KnowledgeSource, gated: GatedStore
):
    stop, task = await run_adapter(settings, Dialogue(source, gated))
    try:
        gated.full = True
        await fake.push(fake.message(503, "не приходит смс"))
        [reply] = await fake.wait_sent(503)
        assert reply.params["text"] == source.knowledge.text("technical_problem")
        assert "8 800 100-70-10" in reply.params["text"]
        gated.full = False  # room again: the bot answers as usual
        await fake.push(fake.message(503, "/phone"))
        replies = await fake.wait_sent(503, 2)
        assert replies[1].params["text"] == source.knowledge.text("phone")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
