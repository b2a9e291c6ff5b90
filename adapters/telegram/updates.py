"""Reading updates that aiogram cannot read: skipped one by one, never the whole batch.

aiogram validates a getUpdates answer as one list, so a single update it cannot read (a field
newer or older than its models, a broken value) fails the whole call — and every later call,
because the offset never moves past that update: long polling stalls for good. Here such an
update is logged (its id and the fields that failed, no content) and replaced by a bare
`{"update_id": N}`, which the dispatcher skips; the offset moves on and polling goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Update
from pydantic import ValidationError

log = logging.getLogger(__name__)


def unreadable_fields(error: ValidationError) -> str:
    """Where an update failed validation (field paths only: no values, so no personal data)."""
    paths = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors()})
    return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def read_update(raw: Any, bot: Bot) -> Update | None:
    """One update as aiogram's type; a bare one for an update it cannot read; None without an id."""
    try:
        return Update.model_validate(raw, context={"bot": bot})
    except (ValidationError, RecursionError) as exc:
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if type(update_id) is not int:
            log.warning("an update without a usable update_id cannot be read; dropped")
            return None
        detail = unreadable_fields(exc) if isinstance(exc, ValidationError) else "nested too deep"
        log.warning("update %s cannot be read (%s); skipped", update_id, detail)
        return Update(update_id=update_id)


def skim(content: str, bot: Bot) -> str:
    """A getUpdates answer with each unreadable update replaced by a bare one."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return content  # not JSON at all: aiogram reports it like any failed call
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        return content
    kept = []
    for raw in data["result"]:
        update = read_update(raw, bot)
        if update is not None:
            readable = bool(update.model_fields_set - {"update_id"})
            kept.append(raw if readable else {"update_id": update.update_id})
    data["result"] = kept
    return json.dumps(data)


class TolerantSession(AiohttpSession):
    """aiogram's HTTP session, except that one unreadable update does not fail a getUpdates."""

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError:
            if not isinstance(method, GetUpdates):
                raise
            return super().check_response(bot, method, status_code, skim(content, bot))
