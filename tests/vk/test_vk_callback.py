"""The Callback API: VK POSTs events to the adapter's endpoint."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from fakes.vk_api import GROUP_ID, TEXT_CLIENT, FakeVk, eventually

PEER = 777


async def post(adapter: Any, body: dict[str, Any] | str) -> tuple[int, str]:
    assert adapter.callback_server is not None
    url = f"http://127.0.0.1:{adapter.callback_server.port}/vk/callback"
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as response:
        return response.status, await response.text()


def signed(body: dict[str, Any], secret: str = "s3cret") -> dict[str, Any]:
    return {**body, "secret": secret}


async def test_confirmation_is_answered_with_the_code(callback_adapter):
    async with callback_adapter(code="a1b2c3d4") as adapter:
        assert await post(adapter, {"type": "confirmation", "group_id": GROUP_ID}) == (200, "a1b2c3d4")
        status, _ = await post(adapter, {"type": "confirmation", "group_id": GROUP_ID + 1})
        assert status == 403


async def test_a_message_is_accepted_at_once_and_answered_in_the_background(fake_vk: FakeVk, callback_adapter):
    async with callback_adapter() as adapter:
        fake_vk.sends_open.clear()  # VK is slow to take our answer
        assert await post(adapter, signed(fake_vk.message_new(PEER, "/phone"))) == (200, "ok")
        assert fake_vk.to(PEER) == []
        fake_vk.sends_open.set()
        await eventually(lambda: len(fake_vk.to(PEER)) == 1)
        assert "8 800 100-70-10" in fake_vk.to(PEER)[0].text


@pytest.mark.parametrize("secret", ["wrong", ""])
async def test_a_wrong_secret_is_refused_and_not_processed(fake_vk: FakeVk, callback_adapter, secret: str):
    async with callback_adapter() as adapter:
        forged = fake_vk.message_new(PEER, "/operator")
        status, body = await post(adapter, signed(forged, secret) if secret else forged)
        assert status == 403
        assert body != "ok"
        # A genuine event after it is answered; the forged one never was.
        assert await post(adapter, signed(fake_vk.message_new(PEER, "/phone"))) == (200, "ok")
        await eventually(lambda: len(fake_vk.to(PEER)) == 1)
        assert "8 800 100-70-10" in fake_vk.to(PEER)[0].text
        assert await adapter.dialogue.store.open_ticket_for("vk", str(PEER)) is None


async def test_a_repeated_event_is_processed_once(fake_vk: FakeVk, callback_adapter):
    async with callback_adapter() as adapter:
        event = signed(fake_vk.message_new(PEER, "/operator"))
        for _ in range(3):  # VK redelivers when it did not get "ok" in time
            assert await post(adapter, event) == (200, "ok")
        assert await post(adapter, signed(fake_vk.message_new(PEER, "/phone"))) == (200, "ok")
        # One chat's events are handled in order: once /phone is answered, every copy was dealt with.
        await eventually(lambda: len(fake_vk.to(PEER)) >= 2)
        assert [("Номер обращения" in m.text) for m in fake_vk.to(PEER)] == [True, False]
        tickets = await adapter.dialogue.store.list_tickets()
        assert len(tickets) == 1


async def test_a_callback_button_through_the_callback_api(fake_vk: FakeVk, callback_adapter):
    async with callback_adapter() as adapter:
        assert await post(adapter, signed(fake_vk.message_new(PEER, "забыл пароль", client=TEXT_CLIENT))) == (200, "ok")
        await eventually(lambda: len(fake_vk.to(PEER)) == 1)
        first = fake_vk.to(PEER)[0]
        press = fake_vk.message_event(PEER, json.loads(first.payload_of("Позвать оператора")), press_id="cb-1")
        assert await post(adapter, signed(press)) == (200, "ok")
        await eventually(lambda: len(fake_vk.to(PEER)) == 2)
        assert fake_vk.event_answers == [{"event_id": "cb-1", "user_id": str(PEER), "peer_id": str(PEER)}]
        assert "Номер обращения" in fake_vk.to(PEER)[1].text


async def test_malformed_bodies_are_refused(callback_adapter):
    async with callback_adapter() as adapter:
        assert (await post(adapter, "{not json"))[0] == 400
        assert (await post(adapter, "[1, 2]"))[0] == 400
