"""The composition root for `gosbot run`: one core, every configured platform in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from bot.retention import Retention
from bot.storage import store_for

log = logging.getLogger(__name__)


async def run_platforms(settings: Settings) -> None:
    store = store_for(settings)
    # First, before anything else is loaded: StoreUnavailable is the CLI's one line and exit code.
    await store.open()
    try:
        source = KnowledgeSource(settings.knowledge)
    except BaseException:
        await store.close()
        raise
    dialogue = Dialogue(source, store)
    ops = None
    if settings.http_port:
        from adapters.ops_http import start_ops_server

        ops = await start_ops_server(dialogue, settings.http_host, settings.http_port)
        log.info("health and metrics on http://%s:%s/healthz and /metrics", settings.http_host, settings.http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    tasks = []
    try:
        if settings.telegram_token:
            from adapters.telegram import TelegramAdapter

            tasks.append(asyncio.create_task(TelegramAdapter(settings, dialogue).run(stop), name="telegram"))
        if settings.vk_group_token:
            from adapters.vk import VkAdapter

            tasks.append(asyncio.create_task(VkAdapter(settings, dialogue).run(stop), name="vk"))
        # Not a platform: its end does not stop the bot, so it is not among the tasks waited on.
        retention = asyncio.create_task(Retention(store, settings.retention_days).run(stop), name="retention")
        log.info("running: %s", ", ".join(t.get_name() for t in tasks))
        done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and task.exception():
                log.error("%s stopped with an error", task.get_name(), exc_info=task.exception())
        stop.set()
        await asyncio.gather(*tasks, retention, return_exceptions=True)
    finally:
        if ops is not None:
            await ops.cleanup()
        await store.close()
