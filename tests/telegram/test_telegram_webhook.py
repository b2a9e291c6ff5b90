"""Webhook mode and a bot without an operators' chat, end to end against the fake Bot API."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import pytest

from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.telegram_api import FakeBotAPI


def registered_secret(fake: FakeBotAPI) -> str:
    """The secret the bot gave Telegram in setWebhook (Telegram echoes it in every request)."""
    return fake.find("setWebhook")[0].params["secret_token"]


async def post(url: str, update: dict, secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as session, session.post(url, json=update, headers=headers) as response:
        return response.status


async def test_webhook_is_registered_with_its_secret(fake: FakeBotAPI, webhook: str):
    [registered] = fake.find("setWebhook")
    assert registered.params["url"] == "https://bot.example.org/tg/hook"
    assert registered.params["secret_token"] == "s3cr3t-Token_42"  # TELEGRAM_WEBHOOK_SECRET
    assert registered.params["allowed_updates"] == ["message", "callback_query", "chat_member"]
    assert not fake.find("getUpdates")
    assert not fake.find("deleteWebhook")


async def test_webhook_processes_updates_with_the_right_secret_only(fake: FakeBotAPI, webhook: str):
    assert await post(webhook, fake.message(401, "/phone"), secret="wrong") == 401
    assert await post(webhook, fake.message(401, "/phone"), secret=None) == 401
    assert await post(webhook, fake.message(402, "/phone"), secret=registered_secret(fake)) == 200
    [reply] = await fake.wait_sent(402)
    assert "8 800 100-70-10" in reply.params["text"]
    await asyncio.sleep(0.2)
    assert not fake.sent(401, ok=False)


async def test_webhook_redelivery_is_answered_once(fake: FakeBotAPI, webhook: str):
    update = fake.message(403, "/phone")
    update["update_id"] = 9_000_001
    for _ in range(3):  # Telegram repeats an update it thinks was not received
        assert await post(webhook, update, secret=registered_secret(fake)) == 200
    assert await post(webhook, fake.message(403, "/help"), secret=registered_secret(fake)) == 200
    await fake.wait_sent(403, 2)
    await asyncio.sleep(0.2)
    assert len(fake.sent(403)) == 2


async def test_webhook_mode_needs_a_secret(settings: Settings, dialogue: Dialogue):
    from adapters.telegram import TelegramAdapter

    with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
        TelegramAdapter(replace(settings, telegram_webhook_url="https://bot.example.org/tg/hook"), dialogue)


@pytest.mark.usefixtures("without_desk")
async def test_without_an_operators_chat_desk_events_wait(fake: FakeBotAPI, dialogue: Dialogue):
    before = len(fake.sent(404))
    await fake.push(fake.message(404, "/operator"))
    [opened] = await fake.wait_sent(404, before + 1)
    assert "Номер обращения" in opened.params["text"]
    await asyncio.sleep(0.3)  # several outbox passes
    assert await dialogue.store.pending_count("desk") >= 1
    assert not fake.find("createForumTopic")
