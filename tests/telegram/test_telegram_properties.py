"""Property-based: any update body posted to the webhook (the real aiohttp server, aiogram and the
core, on SQLite) yields a reply or a clean skip — never an exception, never HTTP 500. Lone
surrogates travel as JSON escapes ("\\ud800") in texts, names, captions and button data."""

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

from adapters.telegram import TelegramAdapter
from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from bot.storage import SqliteStore
from fakes.telegram_api import FAST, OPS, FakeBotAPI

SECRET = "s3cr3t-Token_42"
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


class LiveWebhook:
    def __init__(self, bg: Background, tmp: Path, shipped: tuple):
        self.bg = bg
        self.tmp = tmp
        self.shipped = shipped
        self.chats = itertools.count(20_000)
        self.update_ids = itertools.count(5_000_000)

    async def start(self) -> None:
        self.fake = FakeBotAPI()
        await self.fake.start()
        self.store = SqliteStore(self.tmp / "gosbot.sqlite3")
        await self.store.open()
        dialogue = Dialogue(KnowledgeSource.fixed(*self.shipped), self.store)
        hooked = Settings(
            telegram_token="123456:TEST-token-never-logged",
            telegram_api_base=self.fake.base_url,
            telegram_operators_chat_id=OPS,
            telegram_webhook_url="https://bot.example.org/tg/hook",
            telegram_webhook_secret=SECRET,
            telegram_webhook_host="127.0.0.1",
            telegram_webhook_port=0,
        )
        self.adapter = TelegramAdapter(hooked, dialogue, FAST)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.adapter.run(self.stop_event))
        await self.fake.wait_for(lambda c: c.method == "setWebhook")
        assert self.adapter.webhook is not None
        self.url = f"http://127.0.0.1:{self.adapter.webhook.port}/tg/hook"
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.http.close()
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)
        await self.store.close()
        await self.fake.close()

    async def post(self, body: str) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        async with self.http.post(self.url, data=body, headers=headers) as response:
            status = response.status
        assert self.adapter.webhook is not None
        if self.adapter.webhook._tasks:  # the update is handled in the background
            await asyncio.wait(set(self.adapter.webhook._tasks))
        return status

    def message(self, chat_id: int, name: Any, content: dict[str, Any]) -> dict[str, Any]:
        person = {"id": chat_id, "is_bot": False, "first_name": name}
        return {
            "update_id": next(self.update_ids),
            "message": {
                "message_id": next(self.update_ids),
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": name},
                "from": person,
                **content,
            },
        }

    def callback(self, chat_id: int, name: Any, data: Any) -> dict[str, Any]:
        return {
            "update_id": next(self.update_ids),
            "callback_query": {
                "id": f"cb{next(self.update_ids)}",
                "from": {"id": chat_id, "is_bot": False, "first_name": name},
                "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "private"},
                    "text": "…",
                },
            },
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shipped: tuple) -> Iterator[LiveWebhook]:
    bg = Background()
    hook = LiveWebhook(bg, tmp_path_factory.mktemp("webhook"), shipped)
    bg.run(hook.start())
    yield hook
    bg.run(hook.stop())
    bg.close()


PHOTO = [{"file_id": "photo1", "file_unique_id": "p1", "width": 640, "height": 480}]
CONTENT = st.one_of(
    st.builds(lambda text: {"text": text}, ODD_TEXT.filter(bool)),  # Telegram never sends an empty text
    st.builds(lambda caption: {"photo": PHOTO, "caption": caption}, ODD_TEXT),
)


@EXAMPLES
@given(content=CONTENT, name=ODD_TEXT)
def test_any_text_name_or_caption_gets_a_reply(live: LiveWebhook, content: dict, name: str):
    chat = next(live.chats)
    with Errors() as errors:
        assert live.bg.run(live.post(as_json(live.message(chat, name, content)))) == 200
        live.bg.run(live.fake.wait_sent(chat, within=3))
        assert errors.take() == []


@EXAMPLES
@given(
    data=st.one_of(ODD_TEXT, st.sampled_from(["op", "phone", "home", "back", "r:1:5", "desk:close:1"])), name=ODD_TEXT
)
def test_any_button_data_gets_an_answer_and_a_reply(live: LiveWebhook, data: str, name: str):
    chat = next(live.chats)
    update = live.callback(chat, name, data)
    with Errors() as errors:
        assert live.bg.run(live.post(as_json(update))) == 200
        live.bg.run(live.fake.wait_sent(chat, within=3))
        query_id = update["callback_query"]["id"]
        assert live.fake.find("answerCallbackQuery", callback_query_id=query_id)
        assert errors.take() == []


PATHS = [
    ("message",),
    ("message", "chat"),
    ("message", "chat", "id"),
    ("message", "chat", "type"),
    ("message", "from"),
    ("message", "from", "first_name"),
    ("message", "text"),
    ("message", "date"),
    ("message", "entities"),
    ("message", "photo"),
    ("message", "caption"),
    ("message", "message_thread_id"),
    ("message", "forward_origin"),
    ("callback_query", "data"),
    ("callback_query", "message"),
    ("callback_query", "from"),
    ("update_id",),
]


def mutate(update: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = update
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return update


@EXAMPLES
@given(
    base=st.sampled_from(["message", "callback"]),
    changes=st.lists(st.tuples(st.sampled_from(PATHS), JSON_VALUES), min_size=1, max_size=3),
    extra=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=3),
)
def test_any_malformed_update_is_a_clean_skip_or_a_reply(live: LiveWebhook, base: str, changes: list, extra: dict):
    chat = next(live.chats)
    update = live.message(chat, "Анна", {"text": "/phone"}) if base == "message" else live.callback(chat, "Анна", "op")
    for path, value in changes:
        mutate(update, path, value)
    update = {**extra, **update}
    with Errors() as errors:
        status = live.bg.run(live.post(as_json(update)))
        assert status in (200, 400)
        assert errors.take() == []


@EXAMPLES
@given(body=JSON_VALUES)
def test_any_json_body_is_answered_without_a_server_error(live: LiveWebhook, body: Any):
    with Errors() as errors:
        assert live.bg.run(live.post(as_json(body))) in (200, 400)
        assert errors.take() == []
