"""The Telegram side of the outbox (`bot.outbox`): what aiogram raises, said in the outbox's terms."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramRetryAfter

from adapters.telegram.sender import TRANSIENT
from bot.outbox import GiveUp, TryLater
from bot.records import OutboxItem

log = logging.getLogger(__name__)


def telegram_delivery(deliver: Callable[[OutboxItem], Awaitable[None]]) -> Callable[[OutboxItem], Awaitable[None]]:
    """`deliver`, with Telegram's refusals given up, its 429 retried after `retry_after` and its
    server and network errors retried with the backoff."""

    @functools.wraps(deliver)
    async def delivering(item: OutboxItem) -> None:
        try:
            await deliver(item)
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            log.error("outbox %s #%s refused by Telegram: %s", item.platform, item.id, exc.message)
            raise GiveUp(exc.message) from exc
        except TelegramRetryAfter as exc:
            raise TryLater(f"retry after {exc.retry_after}s", float(exc.retry_after)) from exc
        except TRANSIENT as exc:
            raise TryLater(f"{type(exc).__name__}: {exc}") from exc

    return delivering
