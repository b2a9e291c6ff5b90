"""Webhook mode: a small aiohttp app that accepts updates only with Telegram's secret header.

A request without the right X-Telegram-Bot-Api-Secret-Token gets 401 and is not read at all.
An accepted update is answered 200 only after it was handled (its turn committed, the replies in
the outbox): Telegram sends it again if the process dies before that, and the stored update ids
keep the second delivery from being answered twice. A body that is not JSON (or is nested too deep
to read) gets 400; an update aiogram cannot read is logged and skipped with 200, so Telegram does
not keep redelivering it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web

from adapters.telegram.updates import read_update

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_PATH = "/telegram/webhook"


def webhook_path(url: str) -> str:
    """The path Telegram will POST to: the path of TELEGRAM_WEBHOOK_URL (a proxy may sit in front)."""
    path = urlsplit(url).path
    return path if path and path != "/" else DEFAULT_PATH


class WebhookServer:
    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret: str, path: str, host: str, port: int):
        if not secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is required in webhook mode")
        self.dispatcher = dispatcher
        self.bot = bot
        self._secret = secret.encode()
        self.path = path
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        self._runner = web.AppRunner(app, access_log=None)  # the access log would show nothing useful
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the real one when 0 was asked for
        log.info("webhook listening on %s:%s%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not secrets.compare_digest(given, self._secret):
            log.warning("webhook request with a wrong or missing secret from %s", request.remote)
            return web.Response(status=401, text="Unauthorized")
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):  # not JSON, bad UTF-8, or nested too deep to read
            return web.Response(status=400, text="Bad update")
        update = read_update(body, self.bot)
        if update is None:
            return web.Response(status=400, text="Bad update")
        if not update.model_fields_set - {"update_id"}:
            return web.json_response({})  # unreadable, logged and skipped: Telegram may move on
        # Shielded: a dropped connection must not cancel a turn half-way (it finishes, and the
        # redelivery is recognised as a duplicate).
        task = asyncio.create_task(self._feed(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)
        return web.json_response({})

    async def _feed(self, update: Update) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:
            log.exception("webhook update %s failed", update.update_id)
