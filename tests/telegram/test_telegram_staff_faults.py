"""Found by the load suite (bench/load.py): an operator's answer must not vanish because Telegram
failed to answer getChatMember (it used to be treated as a stranger's, marked processed and
dropped, the operator not told), and a desk backlog must not stall long polling."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from adapters.telegram import TelegramAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from bot.records import Ticket
from fakes.telegram_api import FAST, OPERATOR, OPS, FakeBotAPI

CITIZEN = 611


async def ticket_on_the_desk(fake: FakeBotAPI, dialogue: Dialogue) -> tuple[Ticket, int]:
    """The citizen hands off; returns the ticket and its topic once its card is on the desk."""
    fake.members[OPERATOR] = "member"
    await fake.push(fake.message(CITIZEN, "/operator"))
    await fake.wait_sent(CITIZEN)
    ticket = await dialogue.store.open_ticket_for("telegram", str(CITIZEN))
    assert ticket is not None
    [card] = await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS and f"№ {ticket.number}" in c.params["text"]
    )
    return ticket, card.params["message_thread_id"]


@pytest.mark.usefixtures("running")
async def test_operator_reply_survives_a_failed_membership_check(fake: FakeBotAPI, dialogue: Dialogue):
    _, thread = await ticket_on_the_desk(fake, dialogue)
    fake.fail("getChatMember", 500, "Internal Server Error")  # once: Telegram hiccups
    answer = "Проверьте папку «Спам»"
    await fake.push(fake.message(OPS, answer, user_id=OPERATOR, name="Ирина", chat_type="supergroup", thread=thread))
    await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == CITIZEN and answer in c.params["text"],
        within=10,
    )


async def test_a_desk_backlog_does_not_stall_long_polling(fake: FakeBotAPI, settings: Settings, dialogue: Dialogue):
    # Found by the load suite with 1,000 citizens: the desk outbox runs one task per ticket, each
    # reserving a slot in the operators' group (one message per 3 s, Telegram's group limit), so
    # with many new tickets the group's slots are booked minutes ahead. A staff message that the
    # bot answers in its topic (/note, "Не выполнено", help) waits for a slot after all of them,
    # and long polling asks for the next updates only once the whole batch is handled: every
    # citizen's message waits too.
    fake.members[OPERATOR] = "member"
    options = replace(FAST, limits=replace(FAST.limits, group_interval=3.0))
    stop = asyncio.Event()
    task = asyncio.create_task(TelegramAdapter(settings, dialogue, options).run(stop))
    try:
        # 12 desk messages: each ticket's topic and card; the first card comes after all 6 topics.
        await fake.push(*(fake.message(620 + i, "/operator") for i in range(6)))
        cards = await fake.wait_for(
            lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS and c.params.get("message_thread_id"),
            within=40,
        )
        thread = cards[0].params["message_thread_id"]
        await fake.push(fake.message(OPS, "/note проверить", user_id=OPERATOR, chat_type="supergroup", thread=thread))
        await fake.wait_for(lambda c: c.method == "getChatMember")  # the note's batch is being handled
        await asyncio.sleep(0.5)
        await fake.push(fake.message(CITIZEN, "/phone"))  # the next batch
        await fake.wait_sent(CITIZEN, within=5)  # a citizen's answer does not wait for the desk
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.mark.usefixtures("running")
async def test_when_membership_cannot_be_checked_the_operator_is_told_and_a_resend_goes_through(
    fake: FakeBotAPI, dialogue: Dialogue
):
    ticket, thread = await ticket_on_the_desk(fake, dialogue)
    fake.fail("getChatMember", 500, "Internal Server Error", times=3)  # every try of this message
    answer = "Проверьте папку «Спам»"

    def operator_says() -> dict:
        return fake.message(OPS, answer, user_id=OPERATOR, name="Ирина", chat_type="supergroup", thread=thread)

    await fake.push(operator_says())
    await fake.wait_for(
        lambda c: (
            c.method == "sendMessage"
            and c.params.get("message_thread_id") == thread
            and "Не удалось проверить" in c.params["text"]
        )
    )
    assert not [c for c in fake.sent(CITIZEN) if answer in c.params["text"]]
    assert [m.text for m in await dialogue.store.ticket_messages(ticket.number) if m.role == "operator"] == []
    await fake.push(operator_says())  # the operator sends it again; Telegram answers now
    await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == CITIZEN and answer in c.params["text"]
    )
