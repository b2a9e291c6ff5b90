"""Starting the Telegram front end (issue 11, item 5): a start that cannot happen fails `gosbot run`
with a non-zero status after retries; a transient failure is retried; a non-essential call that
fails in any way never stops the front end. The real aiogram client against the fake or a dead port."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from scenario import passing_knowledge

from adapters.runner import run_platforms, supervise
from adapters.telegram import TelegramAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.telegram_api import FAST, FakeBotAPI

TOKEN = "123456:TEST-token-never-logged"


def dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_gosbot_run_exits_non_zero_when_telegram_cannot_start(tmp_path: Path, caplog):
    settings = Settings(
        db=tmp_path / "gosbot.sqlite3",
        knowledge=passing_knowledge(),
        telegram_token=TOKEN,
        telegram_api_base=f"http://127.0.0.1:{dead_port()}",
    )
    caplog.set_level(logging.WARNING)
    status = await asyncio.wait_for(run_platforms(settings, attempts=3, backoff=0.05), 120)
    assert status == 1
    retries = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert len(retries) == 2  # tried 3 times: two pauses, then gave up
    assert "attempt 3 of 3" in retries[-1]
    assert any(r.levelno == logging.ERROR and "telegram could not run" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text


async def test_a_transient_failure_at_start_is_retried(fake: FakeBotAPI, settings: Settings, dialogue: Dialogue):
    fake.fail("deleteWebhook", 502, "Bad Gateway", times=2)
    stop = asyncio.Event()
    adapter = TelegramAdapter(settings, dialogue, FAST)
    task = asyncio.create_task(supervise("telegram", adapter.run, stop, attempts=4, backoff=0.05))
    await fake.wait_for(lambda c: c.method == "deleteWebhook" and c.ok)  # polling starts on the third try
    assert [c.status for c in fake.find("deleteWebhook")] == [502, 502, 200]
    await fake.push(fake.message(77, "/phone"))
    sent = await fake.wait_sent(77)
    assert "8 800 100-70-10" in sent[-1].params["text"]
    stop.set()
    await asyncio.wait_for(task, 15)
    assert task.exception() is None


async def test_a_malformed_answer_to_set_my_commands_does_not_stop_the_bot(
    fake: FakeBotAPI, settings: Settings, dialogue: Dialogue, caplog
):
    fake.malformed("setMyCommands")
    stop = asyncio.Event()
    task = asyncio.create_task(TelegramAdapter(settings, dialogue, FAST).run(stop))
    try:
        await fake.push(fake.message(78, "/phone"))
        sent = await fake.wait_sent(78)
        assert "8 800 100-70-10" in sent[-1].params["text"]
        assert fake.find("setMyCommands")
        assert not task.done()
        assert any("setMyCommands failed" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert task.exception() is None
