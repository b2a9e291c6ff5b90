"""VK adapter end to end: the real vk_api client against the local fake of VK, the real core and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.vk_api import FAST, GROUP_ID, TOKEN, FakeVk


@pytest.fixture
async def fake_vk() -> AsyncIterator[FakeVk]:
    fake = FakeVk()
    await fake.start()
    yield fake
    await fake.stop()


def vk_settings(fake: FakeVk, **extra: Any) -> Settings:
    return Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"{fake.url}/method", **extra)


@asynccontextmanager
async def running(adapter: VkAdapter, fake: FakeVk) -> AsyncIterator[VkAdapter]:
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    ready = asyncio.create_task(adapter.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED, timeout=5)
    if not ready.done():
        ready.cancel()
        if task.done():
            task.result()  # raise what stopped it
        raise AssertionError("the adapter did not get ready")
    try:
        yield adapter
    finally:
        stop.set()
        await fake.release_pollers()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def vk(fake_vk: FakeVk, dialogue: Dialogue) -> AsyncIterator[VkAdapter]:
    """The adapter in long poll mode, running."""
    async with running(VkAdapter(vk_settings(fake_vk), dialogue, **FAST), fake_vk) as adapter:
        yield adapter


@pytest.fixture
def callback_adapter(fake_vk: FakeVk, dialogue: Dialogue) -> Callable[..., Any]:
    """`async with callback_adapter(secret=…, code=…) as adapter:` the adapter serving the Callback API."""

    def make(secret: str = "s3cret", code: str = "c0nf1rm") -> Any:
        settings = vk_settings(
            fake_vk,
            vk_callback_secret=secret,
            vk_confirmation_code=code,
            vk_callback_host="127.0.0.1",
            vk_callback_port=0,
        )
        return running(VkAdapter(settings, dialogue, **FAST), fake_vk)

    return make
