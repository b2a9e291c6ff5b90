"""Callback API: VK POSTs each event to our web endpoint.

VK wants the confirmation string for {"type": "confirmation"} and the body "ok" for every accepted
event (it redelivers otherwise). "ok" is answered only once the event is handled (its turn
committed, the replies in the outbox), so an event in progress when the process dies is delivered
again; a turn takes milliseconds, well within VK's timeout. A wrong secret or group gets 403 and is
not processed; the app is never made without both (fail closed), and a body that is not a JSON
object (or is nested too deep to read) gets 400.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def make_app(
    on_event: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    secret: str,
    confirmation_code: str,
    group_id: int | None,
) -> web.Application:
    if not secret or not group_id:
        raise ValueError("the VK Callback API needs a secret and the community id (fail closed)")
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):  # not JSON, bad UTF-8, or nested too deep to read
            return web.Response(status=400, text="bad request")
        if not isinstance(body, dict):
            return web.Response(status=400, text="bad request")
        if type(body.get("group_id")) is not int or body["group_id"] != group_id:
            log.warning("VK callback for another community refused")
            return web.Response(status=403, text="wrong group")
        if body.get("type") == "confirmation":
            if not confirmation_code:
                return web.Response(status=403, text="no confirmation code configured")
            return web.Response(text=confirmation_code)
        given = body.get("secret")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            log.warning("VK callback with a wrong secret refused")
            return web.Response(status=403, text="forbidden")
        await on_event(body)
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/{tail:.*}", receive)
    return app


class CallbackServer:
    """The Callback API endpoint on host:port (port 0 picks a free one; `port` says which)."""

    def __init__(self, app: web.Application, host: str, port: int):
        self.runner = web.AppRunner(app, access_log=None)
        self.host = host
        self.port = port

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        if self.runner.addresses:  # the real port when 0 was asked for
            self.port = self.runner.addresses[0][1]
        log.info("VK Callback API listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        await self.runner.cleanup()
