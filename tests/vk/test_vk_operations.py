"""`gosbot run` as deployed: a real process on VK (against the local fake VK API) serving /healthz and
/metrics on 127.0.0.1, writing JSON log lines without the token, stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
from scenario import ROOT

from fakes.postgres import free_port
from fakes.vk_api import GROUP_ID, TOKEN


async def test_gosbot_run_serves_health_and_metrics(fake_vk, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "VK_GROUP_TOKEN": TOKEN,
        "VK_GROUP_ID": str(GROUP_ID),
        "VK_API_BASE": f"{fake_vk.url}/method",
        "GOSBOT_DB": str(tmp_path / "run.sqlite3"),
        "GOSBOT_HTTP_PORT": str(port),
        "GOSBOT_LOG_FORMAT": "json",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    env.pop("GOSBOT_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            health = None
            for _ in range(240):  # the knowledge and its classifier load first
                await asyncio.sleep(0.25)
                try:
                    async with http.get("/healthz") as response:
                        health = (response.status, await response.json())
                except aiohttp.ClientConnectionError:
                    continue
                if health[0] == 200:
                    break
            assert health is not None, "the health endpoint never answered"
            assert health[0] == 200, health
            assert health[1]["platforms"] == {"vk": "connected"}
            assert health[1]["storage"] == "ok"

            await fake_vk.push(fake_vk.message_new(1001, "не приходит смс"))
            for _ in range(100):
                await asyncio.sleep(0.1)
                if fake_vk.to(1001):
                    break
            assert fake_vk.to(1001), "the citizen got no answer"
            async with http.get("/metrics") as response:
                text = await response.text()
            assert 'gosbot_messages_in_total{platform="vk"} 1.0' in text
            assert 'gosbot_platform_connected{platform="vk"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        await fake_vk.release_pollers()
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        assert {"ts", "level", "logger", "message"} <= entry.keys()
    assert TOKEN not in stderr.decode()
    assert "не приходит смс" not in stderr.decode()  # what citizens write is not logged
