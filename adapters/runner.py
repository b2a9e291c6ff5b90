"""The composition root for `gosbot run`: one core, every configured platform in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from bot.config import Settings
from bot.dialogue import Dialogue, KnowledgeSource
from bot.retention import HOUR, Retention
from bot.storage import store_for
from bot.storage.base import SingleProcessOnly

log = logging.getLogger(__name__)


START_ATTEMPTS = 5  # a platform that cannot start is tried this many times …
START_BACKOFF = 2.0  # … with pauses of 2, 4, 8, 16 s, then `gosbot run` exits non-zero


def transient(exc: BaseException) -> bool:
    """A network failure worth trying again (no route, refused, timed out, a proxy's 5xx);
    a refused token or a port already in use is not, and fails the start at once."""
    from aiogram.exceptions import TelegramNetworkError, TelegramServerError
    from aiohttp import ClientConnectionError
    from requests import ConnectionError as RequestsConnectionError
    from requests import Timeout

    from adapters.vk.api import VkSendError

    if isinstance(exc, VkSendError):
        return exc.retry
    if isinstance(exc, OSError) and exc.errno is not None:
        return False  # e.g. the webhook's port is taken: trying again will not help
    return isinstance(
        exc,
        TelegramNetworkError
        | TelegramServerError
        | ClientConnectionError
        | RequestsConnectionError
        | Timeout
        | TimeoutError,
    )


async def supervise(
    name: str,
    start: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    attempts: int = START_ATTEMPTS,
    backoff: float = START_BACKOFF,
) -> None:
    """Run one front end until `stop`; a transient failure is retried with growing pauses, and the
    last failure is raised when all `attempts` failed (or at once when it is not transient)."""
    for attempt in range(1, attempts + 1):
        # Each run gets its own stop event, set when the runner's is: a front end that sets it
        # while failing (VK's run does, to end its helpers) must not pass for a requested shutdown.
        own = asyncio.Event()
        relay = asyncio.create_task(stop.wait())
        relay.add_done_callback(lambda _, own=own: own.set())  # type: ignore[misc]
        try:
            await start(own)
            return
        except Exception as exc:
            if stop.is_set():
                return
            if not transient(exc) or attempt == attempts:
                raise
            pause = backoff * 2 ** (attempt - 1)
            log.warning(
                "%s could not start (%s: %s); attempt %d of %d in %.1fs",
                name,
                type(exc).__name__,
                exc,
                attempt + 1,
                attempts,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                return
        finally:
            relay.cancel()


async def run_platforms(settings: Settings, *, attempts: int = START_ATTEMPTS, backoff: float = START_BACKOFF) -> int:
    """Serve every configured platform until a signal; the exit status: 0, or 1 when one of them
    could not start (or stopped with an error), so systemd or Docker restart the process."""
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
    failed = False
    try:
        if settings.telegram_token:
            from adapters.telegram import TelegramAdapter

            telegram = TelegramAdapter(settings, dialogue)
            run = supervise("telegram", telegram.run, stop, attempts=attempts, backoff=backoff)
            tasks.append(asyncio.create_task(run, name="telegram"))
        if settings.vk_group_token:
            from adapters.vk import VkAdapter

            vk = VkAdapter(settings, dialogue, start_attempts=attempts)
            run = supervise("vk", vk.run, stop, attempts=attempts, backoff=backoff)
            tasks.append(asyncio.create_task(run, name="vk"))
        # Not a platform: its end does not stop the bot, so it is not among the tasks waited on.
        # Every worker looks hourly; the one that claims the day's round purges (see Retention.run).
        retention = asyncio.create_task(
            Retention(store, settings.retention_days).run(stop, check=HOUR), name="retention"
        )
        log.info("running: %s", ", ".join(t.get_name() for t in tasks))
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for task in done:
            if task in tasks and isinstance(task.exception(), SingleProcessOnly):
                failed = True  # a known refusal: its message says it all
                log.error("%s could not run, stopping: %s", task.get_name(), task.exception())
            elif task in tasks and task.exception():
                failed = True
                log.error("%s could not run, stopping", task.get_name(), exc_info=task.exception())
            elif task in tasks and not stop.is_set():
                failed = True  # a front end that ends by itself is not serving anyone
                log.error("%s stopped unexpectedly", task.get_name())
        stop.set()
        await asyncio.gather(*tasks, retention, return_exceptions=True)
    finally:
        if ops is not None:
            await ops.cleanup()
        await store.close()
    return 1 if failed else 0
