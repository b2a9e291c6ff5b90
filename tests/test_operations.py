"""Operations: /healthz and /metrics over HTTP on 127.0.0.1, on a core that really handled messages,
and JSON log lines without tokens."""

from __future__ import annotations

import io
import json
import logging

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scenario import Chat

from adapters.ops_http import start_ops_server
from bot.dialogue import Dialogue
from bot.logs import JsonFormatter, configure
from fakes.postgres import free_port


@pytest.fixture
async def served(source, sqlite_store):
    dialogue = Dialogue(source, sqlite_store)
    port = free_port()
    runner = await start_ops_server(dialogue, "127.0.0.1", port)
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
        yield dialogue, http
    await runner.cleanup()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_what_the_core_did(served):
    dialogue, http = served
    anna, boris = Chat(dialogue, "anna"), Chat(dialogue, "boris", "vk")
    await anna.say("не приходит смс с кодом")
    await anna.say("/operator")
    await boris.say("здравствуйте")
    await boris.send("здравствуйте", update_id="boris-1")  # a redelivery: dropped, not counted as a message
    dialogue.metrics.platform_error("vk", 9)
    async with http.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        got = samples(await response.text())
    assert got[("gosbot_messages_in_total", (("platform", "test"),))] == 2
    assert got[("gosbot_messages_in_total", (("platform", "vk"),))] == 1
    assert got[("gosbot_duplicate_updates_total", (("platform", "vk"),))] == 1
    assert got[("gosbot_messages_out_total", (("platform", "test"),))] >= 2
    assert got[("gosbot_handoffs_total", (("platform", "test"),))] == 1
    assert got[("gosbot_decisions_total", (("outcome", "smalltalk"),))] == 1
    assert sum(v for (name, _), v in got.items() if name == "gosbot_decisions_total") == 2
    assert got[("gosbot_open_tickets", ())] == 1
    assert got[("gosbot_overdue_tickets", ())] == 0
    assert got[("gosbot_outbox_backlog", (("platform", "desk"),))] == await dialogue.store.pending_count("desk") >= 1
    assert got[("gosbot_platform_errors_total", (("code", "9"), ("platform", "vk")))] == 1
    assert got[("gosbot_reply_latency_seconds_count", (("platform", "test"),))] == 2
    assert got[("gosbot_knowledge_loaded_timestamp", ())] == dialogue.source.loaded_at


async def test_healthz_is_ok_when_store_and_platforms_are(served):
    dialogue, http = served
    dialogue.metrics.connected("telegram", True)
    async with http.get("/healthz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ok"
    assert body["storage"] == "ok"
    assert body["outbox_backlog"] == 0
    assert body["platforms"] == {"telegram": "connected"}
    assert body["knowledge"]["last_edit_refused"] is False
    assert body["knowledge"]["loaded_at"] == dialogue.source.loaded_at


async def test_healthz_is_503_when_a_platform_is_disconnected(served):
    dialogue, http = served
    dialogue.metrics.connected("telegram", True)
    dialogue.metrics.connected("vk", False)
    async with http.get("/healthz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["status"] == "unhealthy"
    assert body["platforms"] == {"telegram": "connected", "vk": "disconnected"}


async def test_healthz_is_503_when_the_store_is_gone(served):
    dialogue, http = served
    await dialogue.store.close()
    async with http.get("/healthz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["storage"].startswith("unreachable")
    async with http.get("/metrics") as response:  # counters are still served
        assert response.status == 200
    await dialogue.store.open()  # the fixture closes it again


def test_json_logs_one_object_per_line_without_tokens():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("gosbot.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe")
        log.warning("VK https://api.vk.com/method/x?access_token=vk1.a.secretsecret&v=5.199")
        try:
            raise RuntimeError("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw leaked")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert [e["level"] for e in entries] == ["WARNING", "WARNING", "ERROR"]
    assert all(e["logger"] == "gosbot.test.json" and e["ts"].endswith("Z") for e in entries)
    text = stream.getvalue()
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert "secretsecret" not in text
    assert "bot***/getMe" in entries[0]["message"]
    assert "RuntimeError" in entries[2]["exception"]


def test_configure_json_replaces_the_root_handlers():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure("INFO", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.INFO
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
