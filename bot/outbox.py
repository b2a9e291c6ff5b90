"""Draining the persistent outbox, for any platform: deliver due items in order per key (a chat, a
ticket), different keys concurrently, retry with backoff, never drop on a transient failure.

A platform's `deliver(item)` sends one item and says how it went by what it raises: nothing (sent),
`GiveUp` (can never be delivered: the chat blocked the bot, the platform refused the message), or
`TryLater` (a transient failure; with the platform's own delay when it named one). Anything else is
logged and retried with the backoff.

On a store shared by several workers (PostgreSQL) `due` leases what it returns (`Store.lease`): an
item waiting here for half its lease is renewed before it is sent, and one whose lease ran out and
that another worker took is left to that worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.records import OutboxItem
from bot.storage.base import Store

log = logging.getLogger(__name__)


class GiveUp(Exception):
    """This item can never be delivered (the chat blocked the bot, the ticket is gone …)."""


class TryLater(Exception):
    """Not now: again after `delay` seconds, or after the usual backoff when None."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


class OutboxWorker:
    """Delivers due items of one platform: the items of one key (a chat, a ticket) one at a time in
    order, different keys concurrently (the sender's rate limiter paces them). After an item fails,
    the later ones of its key wait for it.

    Every item a pass of `Store.due` hands over is delivered or handed back: a store shared by several
    workers (PostgreSQL) leases what it returns to the caller, so an item dropped here would wait out
    the lease. Items of a key that is being delivered join its queue; when an item fails, the later
    ones are released to wait behind it in the store."""

    def __init__(
        self,
        store: Store,
        platform: str,
        deliver: Callable[[OutboxItem], Awaitable[None]],
        key: Callable[[OutboxItem], str],
        *,
        clock: Callable[[], float],
        backoff: Callable[[int], float],
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
        self.backoff = backoff
        self.interval = interval
        self.batch = batch
        self.wake = asyncio.Event()
        self._stopping = False
        self._held: dict[str, float] = {}  # key -> when its failed item is due again
        self._busy: dict[str, asyncio.Task[None]] = {}  # key -> the task delivering its items now
        self._queues: dict[str, list[OutboxItem]] = {}  # key -> items handed over, not yet attempted
        self._known: set[int] = set()  # ids queued or being delivered
        self._passes = 0
        # ids settled (sent, given up) -> the pass during which they were: a pass that had already
        # asked the store may still return them as pending, and they must not go out twice.
        self._settled: dict[int, int] = {}

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
            await self._release([item for items in self._queues.values() for item in items])

    async def drain(self) -> None:
        """Take every due item not already known, and start delivering each key that is neither being
        delivered nor held."""
        self._passes += 1
        this_pass = self._passes
        now = self.clock()
        self._held = {k: t for k, t in self._held.items() if t > now}
        due = await self.store.due((self.platform,), now, self.batch)
        for item in due:
            if item.id in self._known or item.id in self._settled:
                continue
            self._known.add(item.id)
            self._queues.setdefault(self.key(item), []).append(item)
        # Settled before this pass asked the store: its answer already saw them settled.
        self._settled = {i: p for i, p in self._settled.items() if p >= this_pass}
        for key, items in self._queues.items():
            if items and key not in self._held and key not in self._busy:
                items.sort(key=lambda item: item.id)
                self._busy[key] = asyncio.create_task(self._deliver_in_order(key))

    async def _deliver_in_order(self, key: str) -> None:
        items = self._queues[key]
        try:
            while items and not self._stopping:
                item = items.pop(0)
                try:
                    again = await self._attempt(item)
                finally:
                    self._known.discard(item.id)
                if again is not None:
                    self._held[key] = again
                    later, items[:] = list(items), []
                    self._known.difference_update(i.id for i in later)
                    await self._release(later)
                    return
        except Exception:
            log.exception("outbox %s: delivering failed", self.platform)
        finally:
            del self._busy[key]
            if not items:
                self._queues.pop(key, None)
            self.wake.set()  # the key's later items, if any, are due now

    async def _release(self, items: list[OutboxItem]) -> None:
        """Hand items back to the store undelivered (a shared store's lease on them ends now)."""
        if items:
            try:
                await self.store.release([item.id for item in items], self.clock())
            except Exception:
                log.exception("outbox %s: releasing %d items failed", self.platform, len(items))

    async def _attempt(self, item: OutboxItem) -> float | None:
        """Deliver one item; when it is due again if it must wait, None when it is settled (or
        no longer ours)."""
        lease = self.store.lease
        if lease is not None and item.next_at - self.clock() < lease / 2:
            # Queued here for a while: renew the lease first. If it ran out and another worker
            # took the item, sending it here too would deliver it twice.
            until = self.clock() + lease
            if not await self.store.renew(item.id, item.next_at, until):
                log.info("outbox %s #%s: its lease ran out and another worker has it", self.platform, item.id)
                return None
            item.next_at = until
        try:
            await self.deliver(item)
        except GiveUp as exc:
            log.warning("outbox %s #%s given up: %s", self.platform, item.id, exc)
            await self.store.give_up(item.id, str(exc))
            self._settled[item.id] = self._passes
            return None
        except TryLater as exc:
            delay = exc.delay if exc.delay is not None else self.backoff(item.attempts)
            error = str(exc)
        except Exception as exc:  # an unknown failure is retried, never dropped
            log.exception("outbox %s #%s failed", self.platform, item.id)
            delay, error = self.backoff(item.attempts), f"{type(exc).__name__}: {exc}"
        else:
            await self.store.mark_sent(item.id)
            self._settled[item.id] = self._passes
            return None
        log.warning("outbox %s #%s: %s; next try in %.1fs", self.platform, item.id, error, delay)
        self.on_retry(self.platform)
        again = self.clock() + delay
        await self.store.retry_later(item.id, again, error[:500])
        return again
