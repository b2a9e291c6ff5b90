"""`GET /healthz` and `GET /metrics` for operations, served by `gosbot run` (aiohttp)."""

from __future__ import annotations

import contextlib
import json
import time

from aiohttp import web

from bot.dialogue import Dialogue
from bot.metrics import CONTENT_TYPE, health

OUTBOX_PLATFORMS = ("telegram", "vk", "desk", "console")


def ops_app(dialogue: Dialogue) -> web.Application:
    metrics = dialogue.metrics

    async def healthz(request: web.Request) -> web.Response:
        report = await health(dialogue.store, metrics, dialogue.source.loaded_at, dialogue.source.problems)
        body = {"status": "ok" if report.healthy else "unhealthy", **report.checks}
        return web.Response(
            status=200 if report.healthy else 503,
            text=json.dumps(body, ensure_ascii=False),
            content_type="application/json",
        )

    async def metrics_page(request: web.Request) -> web.Response:
        metrics.knowledge_loaded.set(dialogue.source.loaded_at)
        # The counters are still worth serving when the store does not answer; /healthz reports that.
        with contextlib.suppress(Exception):
            await metrics.refresh(dialogue.store, time.time(), OUTBOX_PLATFORMS)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app


async def start_ops_server(dialogue: Dialogue, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(ops_app(dialogue), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
