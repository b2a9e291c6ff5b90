"""Updates aiogram cannot read are skipped one by one (logged), and the bot goes on answering."""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest

from fakes.telegram_api import FakeBotAPI


def unreadable(fake: FakeBotAPI, chat_id: int) -> list[dict]:
    """Updates that fail aiogram's validation in different ways."""
    wrong_type = fake.message(chat_id, "привет")
    wrong_type["message"]["chat"]["id"] = "не число"
    missing = fake.message(chat_id, "привет")
    del missing["message"]["date"]
    poll = fake.message(chat_id, poll={"id": "p", "question": "?", "options": [{"text": "a"}]})  # an older API's poll
    return [wrong_type, missing, poll]


@pytest.mark.usefixtures("running")
async def test_long_polling_skips_an_unreadable_update_and_goes_on(fake: FakeBotAPI, caplog):
    caplog.set_level(logging.WARNING)
    await fake.push(*unreadable(fake, 801), fake.message(801, "/phone"))
    started = time.monotonic()
    [reply] = await fake.wait_sent(801, within=5)
    assert "8 800 100-70-10" in reply.params["text"]
    assert time.monotonic() - started < 3  # not after aiogram's growing "Failed to fetch updates" pauses
    assert not [r for r in caplog.records if "Failed to fetch updates" in r.getMessage()]
    skipped = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(skipped) == 3
    assert not any("привет" in m for m in skipped)  # field names only, never content
    # The offset moved past them: the next getUpdates asks for later updates only.
    await fake.push(fake.message(801, "/help"))
    await fake.wait_sent(801, 2)
    assert len(fake.sent(801)) == 2


async def post(url: str, secret: str, body: str) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status


async def test_webhook_skips_unreadable_updates_and_refuses_odd_bodies(fake: FakeBotAPI, webhook: str):
    import json

    secret = fake.find("setWebhook")[0].params["secret_token"]
    for update in unreadable(fake, 802):
        assert await post(webhook, secret, json.dumps(update)) == 200  # skipped, so Telegram moves on
    assert await post(webhook, secret, "[" * 100_000 + "]" * 100_000) == 400
    assert await post(webhook, secret, '{"update_id": 1, "message": ' + "[" * 50_000 + "]" * 50_000 + "}") == 400
    assert await post(webhook, secret, "not json") == 400
    assert await post(webhook, secret, '"text"') == 400
    assert await post(webhook, secret, '{"message": {}}') == 400  # no update_id: nothing to skip by
    assert await post(webhook, secret, json.dumps(fake.message(802, "/phone"))) == 200
    [reply] = await fake.wait_sent(802)
    assert "8 800 100-70-10" in reply.params["text"]


@pytest.mark.usefixtures("running")
async def test_a_lone_surrogate_in_a_first_name_still_gets_every_reply(fake: FakeBotAPI, dialogue):
    """The issue's "user who can never be answered": saving the session must not fail on the name."""
    for text in ("/phone", "не приходит смс", "/operator"):
        await fake.push(fake.message(803, text, name="Ан\ud800на"))
    await fake.wait_sent(803, 3)
    session = await dialogue.store.load_session("telegram", "803")
    assert session is not None
    assert session.user_name == "Ан\ufffdна"
    ticket = await dialogue.store.open_ticket_for("telegram", "803")
    assert ticket is not None
    assert ticket.user_name == "Ан\ufffdна"
