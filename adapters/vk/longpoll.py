"""Bots Long Poll: vk_api's VkBotLongPoll, each blocking check in the API client's thread pool.

The long poll server's address comes from groups.getLongPollServer, so a proxy or a test fake
named by VK_API_BASE hands out its own address.

The position (`ts`) moves on only after a batch of events is handled (each turn committed) and is
saved, so a restart asks VK for the events from where the last handled batch ended, not for a fresh
position that would skip whatever came in meanwhile. If the saved `ts` is too old VK answers
failed=1 with a new one (the history in between is lost, VK keeps it for a limited time); failed=2
(the key expired) gets a new key and keeps `ts`; failed=3 gets a new key and `ts` — vk_api's
`check` does each of these, as VK's documentation says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import requests
from vk_api.bot_longpoll import VkBotLongPoll
from vk_api.exceptions import VkApiError

from adapters.vk.api import VkApiClient, without_token

log = logging.getLogger(__name__)

MAX_PAUSE = 60.0


class RawEvent:
    """An event as the server sent it; reading it is `adapters.vk.events.parse_event`'s job."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any):
        self.raw = raw


class RawLongPoll(VkBotLongPoll):
    """vk_api's long poll without its event classes: they raise on an event without `object` or
    `group_id` (or a message without peer_id), which would lose the whole batch after `ts` moved."""

    def _parse_event(self, raw_event: Any) -> RawEvent:
        return RawEvent(raw_event)


class LongPollUnavailable(RuntimeError):
    """The long poll server could not be reached at start-up, after every attempt."""


async def listen(
    client: VkApiClient,
    group_id: int,
    on_event: Callable[[dict[str, Any]], Awaitable[None]],
    stop: asyncio.Event,
    *,
    wait: int = 25,
    retry_base: float = 1.0,
    connected: asyncio.Event | None = None,
    resume_from: str | None = None,
    save: Callable[[str], Awaitable[None]] | None = None,
    start_attempts: int | None = None,
) -> None:
    """Hand every event to `on_event` (which returns once it is handled) until `stop` is set;
    network and server trouble only pause.

    `connected` is set once the server's address and starting point are known. `resume_from` is
    the saved position; `save` is given each new position once the events before it are handled.
    Before the first connection, `start_attempts` failures in a row give up (LongPollUnavailable):
    a bot that never started should exit and be restarted, while a running one waits out any outage.
    """
    poll: RawLongPoll | None = None
    failures = 0
    ever_connected = False
    ts = resume_from
    try:
        while not stop.is_set():
            try:
                if poll is None:
                    poll = await client.run_blocking(RawLongPoll, client.vk, group_id, wait)
                    if ts is not None:
                        poll.ts = ts  # resume where the handled events end, not at "now"
                    else:  # the very first start: from now on, and a crash resumes from here too
                        ts = str(poll.ts)
                        await _save(save, ts)
                    log.info("VK long poll connected (group %s)", group_id)
                    ever_connected = True
                    if connected is not None:
                        connected.set()
                events = await client.run_blocking(poll.check)
            except (VkApiError, requests.RequestException, ValueError, KeyError, TypeError) as exc:
                # ValueError: a body that is not JSON (a proxy's 502 page); KeyError/TypeError: a
                # malformed answer. Start over with a fresh server address after a pause.
                failures += 1
                if not ever_connected and start_attempts is not None and failures >= start_attempts:
                    raise LongPollUnavailable(
                        f"VK long poll did not start after {failures} attempts: {type(exc).__name__}: "
                        + without_token(str(exc))
                    ) from exc
                pause = min(MAX_PAUSE, retry_base * 2 ** min(failures - 1, 10))
                log.warning(
                    "VK long poll failed (%s: %s); again in %.1fs", type(exc).__name__, without_token(str(exc)), pause
                )
                if poll is not None:
                    poll.session.close()
                    poll = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                continue
            failures = 0
            # Chats in parallel; one chat's events in order (each takes its chat's lock in the
            # order the tasks start).
            await asyncio.gather(*(on_event(event.raw) for event in events))
            if poll.ts != ts:
                ts = str(poll.ts)
                await _save(save, ts)
    finally:
        if poll is not None:
            poll.session.close()


async def _save(save: Callable[[str], Awaitable[None]] | None, ts: str) -> None:
    if save is None:
        return
    try:
        await save(ts)
    except Exception:  # e.g. a full disk: kept in memory, saved with the next batch
        log.exception("VK long poll position not saved")
