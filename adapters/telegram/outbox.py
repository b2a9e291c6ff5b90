"""Draining the persistent outbox: deliver due items in order, retry with backoff, never drop on a
transient failure. One worker per outbox platform ("telegram" for citizens, "desk" for staff)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramRetryAfter

from adapters.telegram.sender import TRANSIENT, Limits, backoff
from bot.records import OutboxItem
from bot.storage.base import Store

log = logging.getLogger(__name__)


class GiveUp(Exception):
    """This item can never be delivered (the chat blocked the bot, the ticket is gone …)."""


class TryLater(Exception):
    """Not now; try again after the usual backoff."""


class OutboxWorker:
    """Delivers due items of one platform: the items of one key (a chat, a ticket) one at a time in
    order, different keys concurrently (the sender's rate limiter paces them). After an item fails,
    the later ones of its key wait for it."""

    def __init__(
        self,
        store: Store,
        platform: str,
        deliver: Callable[[OutboxItem], Awaitable[None]],
        key: Callable[[OutboxItem], str],
        *,
        clock: Callable[[], float],
        limits: Limits,
        interval: float = 1.0,
        batch: int = 500,
        on_retry: Callable[[str], None] | None = None,
    ):
        self.on_retry = on_retry or (lambda platform: None)
        self.store = store
        self.platform = platform
        self.deliver = deliver
        self.key = key
        self.clock = clock
        self.limits = limits
        self.interval = interval
        self.batch = batch
        self.wake = asyncio.Event()
        self._stopping = False
        self._held: dict[str, float] = {}  # key -> when its failed item is due again
        self._busy: dict[str, asyncio.Task[None]] = {}  # key -> the task delivering its items now

    def nudge(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        try:
            while not self._stopping:
                self.wake.clear()
                try:
                    await self.drain()
                except Exception:
                    log.exception("outbox %s: a pass failed", self.platform)
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval)
        finally:
            # What is being sent finishes (or is cancelled with us: it stays pending, sent again later).
            if self._busy:
                await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def drain(self) -> None:
        """Start delivering every due item whose key is not already being delivered or held."""
        now = self.clock()
        self._held = {k: t for k, t in self._held.items() if t > now}
        queues: dict[str, list[OutboxItem]] = {}
        for item in await self.store.due((self.platform,), now, self.batch):
            key = self.key(item)
            if key not in self._held and key not in self._busy:
                queues.setdefault(key, []).append(item)
        for key, items in queues.items():
            self._busy[key] = asyncio.create_task(self._deliver_in_order(key, items))

    async def _deliver_in_order(self, key: str, items: list[OutboxItem]) -> None:
        try:
            for item in items:
                if self._stopping:
                    return
                delay = await self._attempt(item)
                if delay is not None:
                    self._held[key] = self.clock() + delay
                    return
        except Exception:
            log.exception("outbox %s: delivering failed", self.platform)
        finally:
            del self._busy[key]
            self.wake.set()  # the key's later items, if any, are due now

    async def _attempt(self, item: OutboxItem) -> float | None:
        """Deliver one item; the retry delay when it must wait, None when it is settled."""
        try:
            await self.deliver(item)
        except GiveUp as exc:
            log.warning("outbox %s #%s given up: %s", self.platform, item.id, exc)
            await self.store.give_up(item.id, str(exc))
            return None
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            log.error("outbox %s #%s refused by Telegram: %s", self.platform, item.id, exc.message)
            await self.store.give_up(item.id, exc.message)
            return None
        except TelegramRetryAfter as exc:
            delay, error = float(exc.retry_after), f"retry after {exc.retry_after}s"
        except (*TRANSIENT, TryLater) as exc:
            delay, error = backoff(self.limits, item.attempts), f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # an unknown failure is retried, never dropped
            log.exception("outbox %s #%s failed", self.platform, item.id)
            delay, error = backoff(self.limits, item.attempts), f"{type(exc).__name__}: {exc}"
        else:
            await self.store.mark_sent(item.id)
            return None
        log.warning("outbox %s #%s: %s; next try in %.1fs", self.platform, item.id, error, delay)
        self.on_retry(self.platform)
        await self.store.retry_later(item.id, self.clock() + delay, error[:500])
        return delay
