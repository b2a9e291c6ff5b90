"""A running Telegram adapter (the real aiogram Bot and Dispatcher) against the fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from adapters.telegram import TelegramAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.telegram_api import FAST, OPS, FakeBotAPI


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI()
    await api.start()
    yield api
    await api.close()


@pytest.fixture
def settings(fake: FakeBotAPI) -> Settings:
    return Settings(
        telegram_token="123456:TEST-token-never-logged",
        telegram_api_base=fake.base_url,
        telegram_operators_chat_id=OPS,
    )


class Running:
    """An adapter running as `gosbot run` would run it, until `stop()`."""

    def __init__(self, settings: Settings, dialogue: Dialogue):
        self.adapter = TelegramAdapter(settings, dialogue, FAST)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.adapter.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def running(settings: Settings, dialogue: Dialogue) -> AsyncIterator[Running]:
    run = Running(settings, dialogue)
    yield run
    await run.stop()


@pytest.fixture
async def webhook(settings: Settings, dialogue: Dialogue, fake: FakeBotAPI) -> AsyncIterator[str]:
    """The adapter in webhook mode; yields the local URL Telegram would POST to."""
    hooked = replace(
        settings,
        telegram_webhook_url="https://bot.example.org/tg/hook",
        telegram_webhook_secret="s3cr3t-Token_42",
        telegram_webhook_host="127.0.0.1",
        telegram_webhook_port=0,  # any free port
    )
    run = Running(hooked, dialogue)
    await fake.wait_for(lambda c: c.method == "setWebhook")  # the server is listening by then
    assert run.adapter.webhook is not None
    yield f"http://127.0.0.1:{run.adapter.webhook.port}/tg/hook"
    await run.stop()


@pytest.fixture
async def without_desk(settings: Settings, dialogue: Dialogue) -> AsyncIterator[Running]:
    run = Running(replace(settings, telegram_operators_chat_id=None), dialogue)
    yield run
    await run.stop()
