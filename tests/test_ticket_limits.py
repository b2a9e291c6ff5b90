"""Limits per chat: a few tickets an hour, a cool-down after a cancel, a repeated /operator joins
the open ticket, and a ticket cancelled before the desk showed it never reaches the desk."""

from __future__ import annotations

import pytest
from scenario import Chat

from bot.dialogue import Dialogue, KnowledgeSource
from bot.storage import SqliteStore
from bot.tickets import CANCEL_COOLDOWN, DESK, SHOW_DELAY, TICKETS_PER_HOUR


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(source: KnowledgeSource, sqlite_store: SqliteStore, clock: Clock) -> Dialogue:
    return Dialogue(source, sqlite_store, clock=clock)


async def test_at_most_a_few_tickets_an_hour_then_the_hotline(core: Dialogue, clock: Clock):
    k = core.knowledge
    chat = Chat(core, chat_id="spammer")
    for _ in range(TICKETS_PER_HOUR):
        await chat.say("/operator")
        assert "Номер обращения" in chat.text
        clock.now += 10
        await chat.say("/cancel")
        clock.now += CANCEL_COOLDOWN
    for _ in range(30):  # the 30 rounds of /operator then /cancel
        await chat.say("/operator")
        assert chat.text == k.text("ticket_limit")
        assert "8 800 100-70-10" in chat.text  # the hotline, from contacts.yaml
        assert chat.payloads == ["phone"]
        await chat.say("/cancel")
        clock.now += 1
    assert len(await core.store.tickets_since("test", "spammer", 0)) == TICKETS_PER_HOUR
    assert len(await core.store.list_tickets()) == TICKETS_PER_HOUR
    # Other chats are not affected, and an hour later this one may ask again.
    other = Chat(core, chat_id="someone-else")
    await other.say("/operator")
    assert "Номер обращения" in other.text
    clock.now += 3600
    await chat.say("/operator")
    assert "Номер обращения" in chat.text


async def test_a_short_cool_down_after_a_cancel(core: Dialogue, clock: Clock):
    chat = Chat(core, chat_id="c1")
    await chat.say("/operator")
    await chat.press("cancel")
    clock.now += CANCEL_COOLDOWN - 1
    await chat.press("op")
    assert chat.text == core.knowledge.text("ticket_cooldown")
    clock.now += 1
    await chat.press("op")
    assert "Номер обращения" in chat.text


async def test_a_new_operator_request_joins_the_open_ticket(core: Dialogue):
    chat = Chat(core, chat_id="c2")
    await chat.say("/operator")
    ticket = await core.store.open_ticket_for("test", "c2")
    assert ticket is not None
    await chat.say("/operator где мой ответ?")
    await chat.press("op")
    assert "уже у сотрудников" in chat.text
    assert len(await core.store.list_tickets()) == 1
    texts = [m.text for m in await core.store.ticket_messages(ticket.number) if m.role == "citizen"]
    assert texts[-2:] == ["где мой ответ?", core.knowledge.text("btn_operator")]
    events = [i.event for i in await core.store.due((DESK,), now=1e12)]
    assert events == ["opened", "citizen", "citizen"]


async def test_desk_events_wait_until_the_ticket_is_a_moment_old(core: Dialogue, clock: Clock):
    chat = Chat(core, chat_id="c3")
    await chat.say("/operator")
    await chat.say("ещё подробности")
    assert await core.store.due((DESK,), now=clock.now) == []
    due = await core.store.due((DESK,), now=clock.now + SHOW_DELAY)
    assert [i.event for i in due] == ["opened", "citizen"]
