"""The Callback API fails closed: it does not start without its secret and community id, and it
refuses every event that is not signed for the configured community."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiohttp
import pytest
from scenario import gosbot, passing_knowledge

from adapters.vk import VkAdapter
from adapters.vk.callback import make_app
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.vk_api import FAST, GROUP_ID, TOKEN, FakeVk, eventually

PEER = 778


def callback_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VK_", "TELEGRAM_"))}
    return {
        **env,
        "GOSBOT_DB": str(tmp_path / "gosbot.sqlite3"),
        "GOSBOT_KNOWLEDGE": str(passing_knowledge()),
        "VK_GROUP_TOKEN": TOKEN,
        "VK_API_BASE": "http://127.0.0.1:9/method",  # never reached: the run must refuse before
        "VK_CALLBACK_PORT": "0",
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ({"VK_CONFIRMATION_CODE": "c0nf1rm", "VK_GROUP_ID": str(GROUP_ID)}, "VK_CALLBACK_SECRET is required"),
        ({"VK_CONFIRMATION_CODE": "c0nf1rm", "VK_CALLBACK_SECRET": "s3cret"}, "VK_GROUP_ID is required"),
        ({"VK_CALLBACK_SECRET": "s3cret"}, "VK_GROUP_ID is required"),
        ({"VK_CONFIRMATION_CODE": "c0nf1rm"}, "VK_CALLBACK_SECRET and VK_GROUP_ID are required"),
    ],
)
def test_callback_mode_refuses_to_start_without_secret_and_group(tmp_path: Path, extra: dict, missing: str):
    result = gosbot("run", env=callback_env(tmp_path, **extra), timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, no traceback
    assert missing in lines[0]
    assert not (tmp_path / "gosbot.sqlite3").exists()  # refused before anything started


def test_telegram_webhook_without_a_secret_is_refused_the_same_way(tmp_path: Path):
    env = callback_env(tmp_path)
    del env["VK_GROUP_TOKEN"]
    env.update(TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_WEBHOOK_URL="https://bot.example.org/hook")
    result = gosbot("run", env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "gosbot run: TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_WEBHOOK_URL is set"


def test_settings_problems_are_empty_for_a_complete_callback_setup():
    s = Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_callback_secret="s", vk_confirmation_code="c")
    assert s.problems() == []
    assert Settings(vk_group_token=TOKEN).problems() == []  # long poll needs neither


async def test_the_adapter_and_the_app_refuse_an_open_configuration(fake_vk: FakeVk, dialogue: Dialogue):
    base = Settings(vk_group_token=TOKEN, vk_api_base=f"{fake_vk.url}/method", vk_confirmation_code="c0nf1rm")
    with pytest.raises(ValueError, match="VK_CALLBACK_SECRET and VK_GROUP_ID"):
        VkAdapter(base, dialogue, **FAST)
    with pytest.raises(ValueError, match="fail closed"):
        make_app(lambda body: None, secret="", confirmation_code="c0nf1rm", group_id=GROUP_ID)
    with pytest.raises(ValueError, match="fail closed"):
        make_app(lambda body: None, secret="s3cret", confirmation_code="c0nf1rm", group_id=None)


async def post(adapter: VkAdapter, data: str | bytes) -> tuple[int, str]:
    assert adapter.callback_server is not None
    url = f"http://127.0.0.1:{adapter.callback_server.port}/vk/callback"
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as response:
        return response.status, await response.text()


async def test_events_with_a_wrong_secret_or_group_are_refused_and_not_processed(fake_vk: FakeVk, callback_adapter):
    async with callback_adapter() as adapter:
        event = fake_vk.message_new(PEER, "/operator")
        forged = [
            {**event, "secret": "wrong"},
            {**event, "secret": None},
            {**event, "secret": ["s3cret"]},
            {**event, "secret": "s3cret\ud800"},
            {**event, "secret": "s3cret", "group_id": GROUP_ID + 1},
            {**event, "secret": "s3cret", "group_id": str(GROUP_ID)},
            {k: v for k, v in {**event, "secret": "s3cret"}.items() if k != "group_id"},
            {"type": "confirmation", "group_id": GROUP_ID + 1},
            {"type": "confirmation"},
        ]
        for body in forged:
            status, text = await post(adapter, json.dumps(body))
            assert status == 403, body
            assert text not in ("ok", "c0nf1rm")
        assert await post(adapter, json.dumps({"type": "confirmation", "group_id": GROUP_ID})) == (200, "c0nf1rm")
        assert await post(adapter, json.dumps({**fake_vk.message_new(PEER, "/phone"), "secret": "s3cret"})) == (
            200,
            "ok",
        )
        await eventually(lambda: fake_vk.to(PEER))
        assert [("8 800 100-70-10" in m.text) for m in fake_vk.to(PEER)] == [True]
        assert await adapter.dialogue.store.list_tickets() == []


async def test_odd_bodies_get_400_not_500(callback_adapter):
    async with callback_adapter() as adapter:
        assert (await post(adapter, "[" * 100_000 + "]" * 100_000))[0] == 400
        assert (await post(adapter, '{"a":' * 50_000 + "1" + "}" * 50_000))[0] == 400
        assert (await post(adapter, b"\xff\xfe{}"))[0] == 400
        assert (await post(adapter, "null"))[0] == 400
