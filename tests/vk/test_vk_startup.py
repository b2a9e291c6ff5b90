"""Starting the VK front end (issue 11, item 5): when the long poll server cannot be reached at all,
`gosbot run` gives up after its attempts and exits non-zero instead of retrying forever; the real
vk_api client against the fake VK or a port where nothing listens."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from scenario import passing_knowledge

from adapters.runner import run_platforms
from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.vk_api import FAST, GROUP_ID, TOKEN, FakeVk


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_gosbot_run_exits_non_zero_when_vk_cannot_start(tmp_path: Path, caplog):
    settings = Settings(
        db=tmp_path / "gosbot.sqlite3",
        knowledge=passing_knowledge(),
        vk_group_token=TOKEN,
        vk_group_id=GROUP_ID,
        vk_api_base=f"http://127.0.0.1:{dead_port()}/method",
    )
    caplog.set_level(logging.WARNING)
    status = await asyncio.wait_for(run_platforms(settings, attempts=2, backoff=0.05), 120)
    assert status == 1
    assert "VK long poll did not start after 2 attempts" in caplog.text
    assert any(r.levelno == logging.ERROR and "vk could not run" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text


async def test_a_long_poll_that_connects_serves_with_few_start_attempts(fake_vk: FakeVk, dialogue: Dialogue):
    settings = Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"{fake_vk.url}/method")
    adapter = VkAdapter(settings, dialogue, start_attempts=1, **FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    try:
        await asyncio.wait_for(adapter.ready.wait(), 10)  # connected on the first try
        assert not task.done()
    finally:
        stop.set()
        await fake_vk.release_pollers()
        await asyncio.wait_for(task, 10)
    assert task.exception() is None
