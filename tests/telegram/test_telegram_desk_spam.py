"""A ticket cancelled before the desk showed it never becomes a topic and a card."""

from __future__ import annotations

import asyncio

import pytest

from bot.dialogue import Dialogue
from bot.tickets import SHOW_DELAY
from fakes.telegram_api import OPS, PHOTO, FakeBotAPI

pytestmark = pytest.mark.usefixtures("running")


async def test_operator_then_cancel_at_once_leaves_the_desk_alone(fake: FakeBotAPI, dialogue: Dialogue):
    await fake.push(fake.message(901, "/operator"), fake.message(901, **PHOTO), fake.message(901, "/cancel"))
    await fake.wait_sent(901, 3)
    [cancelled] = await dialogue.store.list_tickets()
    assert cancelled.status == "cancelled"
    # A real ticket from someone else, opened after it, is shown: the desk worker went past the first.
    await fake.push(fake.message(902, "/operator"))
    await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
    await asyncio.sleep(SHOW_DELAY / 2)
    [topic] = fake.find("createForumTopic")
    assert topic.params["name"].startswith(f"№ {cancelled.number + 1} ")
    assert not [c for c in fake.calls if f"№ {cancelled.number} " in str(c.params) and c.params.get("chat_id") == OPS]
    assert not fake.find("copyMessage")
    assert await dialogue.store.pending_count("desk") == 0
    assert (await dialogue.store.get_ticket(cancelled.number)).desk_ref is None
