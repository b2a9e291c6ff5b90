"""Property-based: any VK event body — through the Callback API endpoint and through Bots Long
Poll (the real vk_api client, the fake VK, the core on SQLite) — yields a reply or a clean skip,
never an exception or HTTP 500, and long polling goes on after it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live import JSON_VALUES, ODD_TEXT, Background, Errors, as_json

from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from bot.storage import SqliteStore
from fakes.vk_api import CALLBACK_CLIENT, FAST, GROUP_ID, PLAIN_CLIENT, TEXT_CLIENT, TOKEN, FakeVk, eventually

SECRET = "s3cret"
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


class LiveVk:
    """One fake VK; a Callback API adapter and a long poll adapter on their own stores."""

    def __init__(self, tmp: Path, shipped: tuple):
        self.tmp = tmp
        self.shipped = shipped
        self.peers = itertools.count(30_000)
        self.ids = itertools.count(1)

    async def start(self) -> None:
        self.fake = FakeVk()
        await self.fake.start()
        self.stores = [SqliteStore(self.tmp / "callback.sqlite3"), SqliteStore(self.tmp / "longpoll.sqlite3")]
        for store in self.stores:
            await store.open()
        base = Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"{self.fake.url}/method")
        callback = Settings(
            vk_group_token=TOKEN,
            vk_group_id=GROUP_ID,
            vk_api_base=f"{self.fake.url}/method",
            vk_callback_secret=SECRET,
            vk_confirmation_code="c0de",
            vk_callback_host="127.0.0.1",
            vk_callback_port=0,
        )
        self.callback = VkAdapter(callback, Dialogue(KnowledgeSource.fixed(*self.shipped), self.stores[0]), **FAST)
        self.longpoll = VkAdapter(base, Dialogue(KnowledgeSource.fixed(*self.shipped), self.stores[1]), **FAST)
        self.stop_event = asyncio.Event()
        self.tasks = [asyncio.create_task(a.run(self.stop_event)) for a in (self.callback, self.longpoll)]
        await asyncio.wait_for(asyncio.gather(self.callback.ready.wait(), self.longpoll.ready.wait()), 10)
        assert self.callback.callback_server is not None
        self.url = f"http://127.0.0.1:{self.callback.callback_server.port}/vk/callback"
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.http.close()
        self.stop_event.set()
        await self.fake.release_pollers()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 15)
        for store in self.stores:
            await store.close()
        await self.fake.stop()

    async def post(self, body: dict[str, Any]) -> int:
        async with self.http.post(self.url, data=as_json(body)) as response:
            return response.status  # "ok" comes only once the event is handled

    async def poll(self, body: dict[str, Any]) -> None:
        """Hand the event to the long poll server, then a plain message after it: once that one is
        answered, the odd event was dealt with and polling went on."""
        sentinel = next(self.peers)
        await self.fake.push(body)
        await self.fake.push(self.fake.message_new(sentinel, "/phone"))
        await eventually(lambda: self.fake.to(sentinel), within=5)

    def wrap(self, kind: str, obj: Any, event_id: Any = None) -> dict[str, Any]:
        return {
            "type": kind,
            "object": obj,
            "group_id": GROUP_ID,
            "event_id": event_id if event_id is not None else f"pe{next(self.ids)}",
            "v": "5.199",
            "secret": SECRET,
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shipped: tuple) -> Iterator[tuple[Background, LiveVk]]:
    bg = Background()
    vk = LiveVk(tmp_path_factory.mktemp("vk"), shipped)
    bg.run(vk.start())
    yield bg, vk
    bg.run(vk.stop())
    bg.close()


CLIENTS = st.one_of(st.sampled_from([CALLBACK_CLIENT, TEXT_CLIENT, PLAIN_CLIENT]), JSON_VALUES)
PAYLOADS = st.one_of(
    st.none(),
    ODD_TEXT,
    st.builds(lambda p: as_json({"p": p}), ODD_TEXT),
    st.builds(as_json, JSON_VALUES),
    st.just('{"command":"start"}'),
    st.just("[" * 5000 + "]" * 5000),
)


def message(vk: LiveVk, peer: int, text: Any, payload: Any, client: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"date": 1_700_000_000, "from_id": peer, "id": next(vk.ids), "out": 0, "peer_id": peer}
    body.update(text=text, conversation_message_id=next(vk.ids), attachments=[])
    if payload is not None:
        body["payload"] = payload
    return vk.wrap("message_new", {"message": body, "client_info": client})


def press(vk: LiveVk, peer: int, payload: Any) -> dict[str, Any]:
    obj = {"user_id": peer, "peer_id": peer, "event_id": f"press{next(vk.ids)}", "payload": payload}
    return vk.wrap("message_event", obj)


def delivered_and_answered(bg: Background, vk: LiveVk, event: dict[str, Any], via: str, peer: int) -> None:
    """Deliver `event` by Callback (answered 200) or Long Poll; the peer gets a reply, nothing is logged as an error."""
    with Errors() as errors:
        if via == "callback":
            assert bg.run(vk.post(event)) == 200
        else:
            bg.run(vk.poll(event))
        bg.run(eventually(lambda: vk.fake.to(peer), within=5))
        assert errors.take() == []


@EXAMPLES
@given(text=ODD_TEXT, payload=PAYLOADS, client=CLIENTS, via=st.sampled_from(["callback", "longpoll"]))
def test_any_message_text_payload_or_client_gets_a_reply(live, text: str, payload: Any, client: Any, via: str):
    bg, vk = live
    peer = next(vk.peers)
    event = message(vk, peer, text, payload, client)
    delivered_and_answered(bg, vk, event, via, peer)


@EXAMPLES
@given(
    payload=st.one_of(JSON_VALUES, st.builds(lambda p: {"p": p}, ODD_TEXT)),
    via=st.sampled_from(["callback", "longpoll"]),
)
def test_any_button_press_gets_a_reply(live, payload: Any, via: str):
    bg, vk = live
    peer = next(vk.peers)
    event = press(vk, peer, payload)
    delivered_and_answered(bg, vk, event, via, peer)


KINDS = st.sampled_from(["message_new", "message_event", "message_allow", "message_deny", "wall_post_new", ""])


@EXAMPLES
@given(
    kind=st.one_of(KINDS, JSON_VALUES),
    obj=JSON_VALUES,
    event_id=st.one_of(st.none(), ODD_TEXT, JSON_VALUES),
    extra=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
    via=st.sampled_from(["callback", "longpoll"]),
)
def test_any_event_body_is_a_reply_or_a_clean_skip(live, kind: Any, obj: Any, event_id: Any, extra: dict, via: str):
    bg, vk = live
    event = {**extra, **vk.wrap(kind, obj, event_id)}
    with Errors() as errors:
        if via == "callback":
            assert bg.run(vk.post(event)) in (200, 400, 403)
        else:
            bg.run(vk.poll(event))
        assert errors.take() == []


@EXAMPLES
@given(
    field=st.sampled_from(["peer_id", "from_id", "text", "payload", "attachments", "id", "out", "geo"]),
    value=JSON_VALUES,
    via=st.sampled_from(["callback", "longpoll"]),
)
def test_a_message_with_any_field_broken_is_a_reply_or_a_clean_skip(live, field: str, value: Any, via: str):
    bg, vk = live
    event = message(vk, next(vk.peers), "/phone", None, TEXT_CLIENT)
    event["object"]["message"][field] = value
    with Errors() as errors:
        if via == "callback":
            assert bg.run(vk.post(event)) == 200
        else:
            bg.run(vk.poll(event))
        assert errors.take() == []
