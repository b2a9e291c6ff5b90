"""Sending within Telegram's limits: a small rate limiter and one `call` that waits out 429s and
retries transient failures a few times before giving the error to the caller (who then falls back
to the persistent outbox)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import CallbackQuery, Message

from adapters.telegram.render import render
from bot.messages import Reply

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = (TelegramServerError, TelegramNetworkError, asyncio.TimeoutError)  # 5xx, connection, timeouts


@dataclass(frozen=True)
class Limits:
    """Telegram's published limits and how patiently to retry (tests make these small)."""

    per_second: float = 30.0  # messages per second over all chats
    chat_interval: float = 1.0  # seconds between messages to one private chat
    group_interval: float = 3.0  # seconds between messages to one group (20 a minute)
    inline_retries: int = 2  # quick retries of a 5xx/network error before falling back to the outbox
    retry_base: float = 1.0  # first backoff step, doubled on each failure
    retry_cap: float = 600.0  # the longest backoff
    max_inline_wait: float = 30.0  # a longer 429 retry_after goes to the outbox instead of blocking


def backoff(limits: Limits, attempts: int) -> float:
    return float(min(limits.retry_cap, limits.retry_base * 2 ** min(attempts, 30)))


class RateLimiter:
    """Reserves a send slot: at most `per_second` overall and one per chat per interval.

    Slots are reserved without awaiting, so concurrent senders queue up in call order.
    """

    def __init__(
        self,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        self._taken: set[int] = set()  # global slots reserved, in units of 1 / per_second
        self._next_chat: dict[int, float] = {}

    def reserve(self, chat_id: int) -> float:
        """The delay before this chat may be sent to; the slot is taken.

        The chat's own interval decides the earliest moment; the overall limit then takes the first
        free global slot from there. (A chat that must wait — the operators' group, 3 s apart — does
        not push the slots of other chats back: they fill the gaps before it.)"""
        now = self.clock()
        earliest = max(now, self._next_chat.get(chat_id, 0.0))
        rate = self.limits.per_second
        tick = math.ceil(earliest * rate - 1e-9)
        while tick in self._taken:
            tick += 1
        self._taken.add(tick)
        slot = max(earliest, tick / rate)
        interval = self.limits.chat_interval if chat_id > 0 else self.limits.group_interval
        self._next_chat[chat_id] = slot + interval
        if len(self._next_chat) > 10_000:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        if len(self._taken) > 10_000:
            past = math.floor(now * rate)
            self._taken = {t for t in self._taken if t >= past}
        return slot - now

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram said "retry after": nothing more to this chat until then."""
        until = self.clock() + seconds
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), until)

    async def wait(self, chat_id: int) -> None:
        delay = self.reserve(chat_id)
        if delay > 0:
            await self.sleep(delay)


class Sender:
    """Every Bot API call that writes to a chat goes through here."""

    def __init__(
        self,
        bot: Bot,
        limits: Limits,
        limiter: RateLimiter | None = None,
        on_error: Callable[[object], None] | None = None,
    ):
        self.bot = bot
        self.limits = limits
        self.limiter = limiter or RateLimiter(limits)
        self.on_error = on_error or (lambda code: None)  # counts errors by code (metrics)

    async def call(self, method: TelegramMethod[T], chat_id: int) -> T:
        """Call within the limits; waits out short 429s, retries 5xx/network errors a little, then raises."""
        failures = 0
        waits = 0
        while True:
            await self.limiter.wait(chat_id)
            try:
                return await self.bot(method)
            except TelegramRetryAfter as exc:
                self.on_error(429)
                self.limiter.hold(chat_id, exc.retry_after)
                waits += 1
                if exc.retry_after > self.limits.max_inline_wait or waits > 5:
                    raise
                log.warning("Telegram asks to wait %ss before %s", exc.retry_after, method.__api_method__)
                await asyncio.sleep(exc.retry_after)
            except TRANSIENT as exc:
                self.on_error(type(exc).__name__)
                if failures >= self.limits.inline_retries:
                    raise
                delay = min(backoff(self.limits, failures), self.limits.max_inline_wait)
                failures += 1
                log.warning("%s failed (%s), retrying in %.1fs", method.__api_method__, _short(exc), delay)
                await asyncio.sleep(delay)

    async def send_reply(self, chat_id: int, reply: Reply, thread_id: int | None = None) -> list[Message]:
        """One reply as one message (several only when the text is over Telegram's limit)."""
        return [await self.call(method, chat_id) for method in render(reply, chat_id, thread_id)]


def _short(exc: BaseException) -> str:
    if isinstance(exc, TelegramAPIError):
        return f"{type(exc).__name__}: {exc.message}"
    return type(exc).__name__


async def answer_quietly(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """answerCallbackQuery; a query too old to answer is not worth an error."""
    try:
        await query.answer(text=text, show_alert=alert)
    except TelegramAPIError as exc:
        log.debug("callback answer failed: %s", exc.message)
