"""Acknowledged only after commit, sent only from the outbox, resumed where it stopped: the VK side
of "nothing lost" (the Callback API's "ok", the Long Poll position, a full disk)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from gated import GatedStore

from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from fakes.vk_api import FAST, GROUP_ID, TOKEN, FakeVk, eventually

CURSOR = f"vk.longpoll.ts.{GROUP_ID}"


@asynccontextmanager
async def serving(fake: FakeVk, dialogue: Dialogue, **extra: Any) -> AsyncIterator[VkAdapter]:
    settings = Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"{fake.url}/method", **extra)
    adapter = VkAdapter(settings, dialogue, **FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    await asyncio.wait_for(adapter.ready.wait(), 5)
    try:
        yield adapter
    finally:
        stop.set()
        await fake.release_pollers()
        await asyncio.wait_for(task, 10)


CALLBACK = {
    "vk_callback_secret": "s3cret",
    "vk_confirmation_code": "c0nf1rm",
    "vk_callback_host": "127.0.0.1",
    "vk_callback_port": 0,
}


async def test_callback_answers_ok_only_after_the_turn_is_committed(
    fake_vk: FakeVk, source: KnowledgeSource, gated: GatedStore
):
    async with serving(fake_vk, Dialogue(source, gated), **CALLBACK) as adapter:
        assert adapter.callback_server is not None
        url = f"http://127.0.0.1:{adapter.callback_server.port}/vk/callback"
        event = {**fake_vk.message_new(701, "/phone"), "secret": "s3cret"}
        gated.gate.clear()
        async with aiohttp.ClientSession() as http:
            answer = asyncio.create_task(http.post(url, data=json.dumps(event)))
            await eventually(lambda: gated.waiting == 1)
            await asyncio.sleep(0.2)
            assert not answer.done()  # no "ok" while the turn is not committed
            gated.gate.set()
            response = await answer
            assert (response.status, await response.text()) == (200, "ok")
        assert await gated.seen_update("vk", event["event_id"])
        await eventually(lambda: len(fake_vk.to(701)) == 1)


async def test_long_poll_resumes_from_the_saved_position(fake_vk: FakeVk, source: KnowledgeSource, gated: GatedStore):
    dialogue = Dialogue(source, gated)
    async with serving(fake_vk, dialogue):
        await fake_vk.push(fake_vk.message_new(702, "/phone"))
        await eventually(lambda: len(fake_vk.to(702)) == 1)
        await eventually(lambda: _is(gated.get_cursor(CURSOR), "1"))
    # While the bot is down, two citizens write; a fresh position would skip them.
    fake_vk._closing = False  # the fake's long poll waits for news again
    await fake_vk.push(fake_vk.message_new(703, "/phone"))
    await fake_vk.push(fake_vk.message_new(704, "/help"))
    async with serving(fake_vk, dialogue):
        await eventually(lambda: len(fake_vk.to(703)) == 1 and len(fake_vk.to(704)) == 1)
        await eventually(lambda: _is(gated.get_cursor(CURSOR), "3"))
    assert len(fake_vk.to(702)) == 1  # the handled event is not handled again


async def _is(value: Any, expected: str) -> bool:
    return await value == expected


async def test_a_saved_position_vk_has_forgotten_starts_from_vks_new_one(
    fake_vk: FakeVk, source: KnowledgeSource, gated: GatedStore
):
    """VK keeps events for a limited time: an old saved ts gets failed=1 and a new ts (VK's docs);
    the bot goes on from there instead of stalling."""
    for peer in (705, 706):
        await fake_vk.push(fake_vk.message_new(peer, "/phone"))
    fake_vk.forgotten_before = 2
    await gated.set_cursor(CURSOR, "0")
    async with serving(fake_vk, Dialogue(source, gated)):
        await eventually(lambda: _is(gated.get_cursor(CURSOR), "2"))
        await fake_vk.push(fake_vk.message_new(707, "/phone"))
        await eventually(lambda: len(fake_vk.to(707)) == 1)
    assert fake_vk.to(705) == []  # gone from VK's history before the bot came back


async def test_a_full_disk_gets_the_citizen_a_technical_problem_reply(
    fake_vk: FakeVk, source: KnowledgeSource, gated: GatedStore
):
    async with serving(fake_vk, Dialogue(source, gated)):
        gated.full = True
        await fake_vk.push(fake_vk.message_new(708, "не приходит смс"))
        await eventually(lambda: len(fake_vk.to(708)) == 1)
        assert fake_vk.to(708)[0].text == source.knowledge.text("technical_problem")
        gated.full = False
        await fake_vk.push(fake_vk.message_new(708, "/phone"))
        await eventually(lambda: len(fake_vk.to(708)) == 2)
        assert fake_vk.to(708)[1].text == source.knowledge.text("phone")


async def test_a_callback_repeated_while_the_first_is_in_progress_waits_for_it(
    fake_vk: FakeVk, source: KnowledgeSource, gated: GatedStore
):
    """VK repeats an event it got no "ok" for yet; the copy must not be acknowledged first."""
    async with serving(fake_vk, Dialogue(source, gated), **CALLBACK) as adapter:
        assert adapter.callback_server is not None
        url = f"http://127.0.0.1:{adapter.callback_server.port}/vk/callback"
        body = json.dumps({**fake_vk.message_new(709, "/phone"), "secret": "s3cret"})
        gated.gate.clear()
        async with aiohttp.ClientSession() as http:
            first = asyncio.create_task(http.post(url, data=body))
            await eventually(lambda: gated.waiting == 1)
            again = asyncio.create_task(http.post(url, data=body))
            await asyncio.sleep(0.3)
            assert not first.done()
            assert not again.done()
            gated.gate.set()
            for answer in (await first, await again):
                assert (answer.status, await answer.text()) == (200, "ok")
        await eventually(lambda: len(fake_vk.to(709)) == 1)
        await asyncio.sleep(0.2)
        assert len(fake_vk.to(709)) == 1
