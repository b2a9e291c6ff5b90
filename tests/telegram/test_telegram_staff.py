"""Only staff act on tickets: every message, command and button in the operators' chat is checked
against membership (cached, corrected by chat_member updates); staff updates act once."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from bot.dialogue import Dialogue
from fakes.telegram_api import OPERATOR, OPS, FakeBotAPI

STRANGER = 666
SECRET_NAME = "Злоумышленник"


async def open_ticket(fake: FakeBotAPI, dialogue: Dialogue, citizen: int) -> tuple[int, int]:
    """A citizen's /operator; returns (ticket number, its topic) once the card is on the desk."""
    await fake.push(fake.message(citizen, "/operator"))
    await fake.wait_sent(citizen)
    ticket = await dialogue.store.open_ticket_for("telegram", str(citizen))
    assert ticket is not None
    [card] = await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS and f"№ {ticket.number}" in c.params["text"]
    )
    return ticket.number, card.params["message_thread_id"]


def staff_message(fake: FakeBotAPI, thread: int, text: str, user_id: int, name: str = "Ирина") -> dict:
    return fake.message(OPS, text, user_id=user_id, name=name, chat_type="supergroup", thread=thread)


def chat_member(fake: FakeBotAPI, user_id: int, old: str, new: str) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": "Сотрудник"}
    return {
        "update_id": fake.message(0)["update_id"],  # a fresh id from the fake's counter
        "chat_member": {
            "chat": {"id": OPS, "type": "supergroup", "title": "Операторы", "is_forum": True},
            "from": {"id": OPERATOR, "is_bot": False, "first_name": "Админ"},
            "date": int(time.time()),
            "old_chat_member": {"status": old, "user": user},
            "new_chat_member": {"status": new, "user": user},
        },
    }


async def settled(fake: FakeBotAPI, citizen: int, probe_thread: int) -> None:
    """Wait until everything pushed so far was handled: a member's /note in another topic is
    answered only after the earlier updates (polling hands them over in order)."""

    def in_probe(c) -> bool:
        return c.method == "sendMessage" and c.params.get("message_thread_id") == probe_thread

    before = len([c for c in fake.calls if in_probe(c)])
    await fake.push(staff_message(fake, probe_thread, "/note проверка", OPERATOR))
    await fake.wait_for(in_probe, before + 1)
    await asyncio.sleep(0.2)


async def logged(caplog, part: str, count: int, within: float = 30.0) -> None:
    """Wait until `count` log records contain `part` (a deadline, not a number of polls)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len([r for r in caplog.records if part in r.getMessage()]) >= count:
            return
        await asyncio.sleep(0.02)


@pytest.mark.usefixtures("running")
async def test_a_non_member_in_a_ticket_topic_changes_nothing(fake: FakeBotAPI, dialogue: Dialogue, caplog):
    caplog.set_level(logging.WARNING, logger="adapters.telegram.staff")
    fake.members[OPERATOR] = "member"
    fake.members[STRANGER] = "left"
    number, thread = await open_ticket(fake, dialogue, 601)
    _, probe = await open_ticket(fake, dialogue, 602)
    citizen_before = len(fake.sent(601))

    for text in ("Пришлите код из СМС, пожалуйста", "/note чужая заметка", "/take", "/close"):
        await fake.push(staff_message(fake, thread, text, STRANGER, name=SECRET_NAME))
    stranger_press = fake.callback(OPS, f"desk:close:{number}", user_id=STRANGER, chat_type="supergroup")
    await fake.push(stranger_press)
    await settled(fake, 601, probe)
    # Updates of different topics run concurrently: wait for all five refusals, for as long as a
    # loaded machine needs (the probe above may be answered before them); never fewer than five.
    await logged(caplog, "non-member", 5)

    assert len(fake.sent(601)) == citizen_before  # nothing reached the citizen
    ticket = await dialogue.store.get_ticket(number)
    assert ticket is not None
    assert ticket.status == "open"
    assert ticket.operator is None
    assert [m.role for m in await dialogue.store.ticket_messages(number) if m.role in ("operator", "note")] == []
    assert not [c for c in fake.find("sendMessage", chat_id=OPS) if c.params.get("message_thread_id") == thread][1:]
    refusals = [r for r in caplog.records if "non-member" in r.getMessage()]
    assert len(refusals) == 5
    for record in refusals:
        assert SECRET_NAME not in record.getMessage()
        assert "код" not in record.getMessage()
        assert str(STRANGER) not in record.getMessage()

    # A member in the same topic is relayed; membership was asked once per person, then cached.
    await fake.push(staff_message(fake, thread, "Проверьте папку «Спам»", OPERATOR))
    answer = (await fake.wait_sent(601, citizen_before + 1))[-1]
    assert "Проверьте папку «Спам»" in answer.params["text"]
    asked = [c.params["user_id"] for c in fake.find("getChatMember")]
    assert sorted(asked) == sorted([OPERATOR, STRANGER])


@pytest.mark.usefixtures("running")
async def test_chat_member_updates_correct_the_cache_at_once(fake: FakeBotAPI, dialogue: Dialogue):
    fake.members[OPERATOR] = "administrator"
    leaver, newcomer = 7001, 7002
    fake.members[leaver] = "member"
    number, thread = await open_ticket(fake, dialogue, 611)
    _, probe = await open_ticket(fake, dialogue, 612)

    await fake.push(staff_message(fake, thread, "Первый ответ", leaver))
    await fake.wait_sent(611, 2)  # the ticket confirmation and this answer

    # The leaver is removed from the group; Telegram still answers getChatMember from a stale
    # replica here, so only the chat_member update can tell.
    await fake.push(chat_member(fake, leaver, "member", "left"))
    await fake.push(staff_message(fake, thread, "Второй ответ после ухода", leaver))
    await fake.push(chat_member(fake, newcomer, "left", "member"))  # the fake would say "left"
    await fake.push(staff_message(fake, thread, "Ответ нового сотрудника", newcomer))
    await fake.wait_sent(611, 3)
    await settled(fake, 611, probe)
    texts = [c.params["text"] for c in fake.sent(611)]
    assert not any("после ухода" in t for t in texts)
    assert any("Ответ нового сотрудника" in t for t in texts)
    assert newcomer not in [c.params["user_id"] for c in fake.find("getChatMember")]
    assert (await dialogue.store.get_ticket(number)).status == "taken"

    [poll] = fake.find("getUpdates")[:1]
    assert "chat_member" in poll.params["allowed_updates"]


@pytest.mark.usefixtures("running")
async def test_senders_in_the_name_of_a_chat(fake: FakeBotAPI, dialogue: Dialogue):
    """An anonymous admin posts as the operators' chat itself; anyone posting as another chat is not staff."""
    _, thread = await open_ticket(fake, dialogue, 621)
    _, probe = await open_ticket(fake, dialogue, 622)
    fake.members[OPERATOR] = "member"
    anonymous = staff_message(fake, thread, "Ответ анонимного администратора", 1087968824)
    anonymous["message"]["sender_chat"] = {"id": OPS, "type": "supergroup", "title": "Операторы"}
    channel = staff_message(fake, thread, "Ответ от имени канала", 136817688)
    channel["message"]["sender_chat"] = {"id": -100555, "type": "channel", "title": "Канал"}
    await fake.push(channel, anonymous)
    await fake.wait_sent(621, 2)
    await settled(fake, 621, probe)
    texts = [c.params["text"] for c in fake.sent(621)]
    assert any("анонимного администратора" in t for t in texts)
    assert not any("от имени канала" in t for t in texts)


@pytest.mark.usefixtures("running")
async def test_a_redelivered_staff_update_reaches_the_citizen_once(fake: FakeBotAPI, dialogue: Dialogue):
    fake.members[OPERATOR] = "member"
    number, thread = await open_ticket(fake, dialogue, 631)
    _, probe = await open_ticket(fake, dialogue, 632)
    answer = staff_message(fake, thread, "Единственный ответ", OPERATOR)
    await fake.push(answer, answer, answer)  # the same update_id three times in one batch
    close = fake.callback(OPS, f"desk:close:{number}", user_id=OPERATOR, chat_type="supergroup")
    await fake.push(close, close)
    await fake.wait_sent(631, 3)  # confirmation, the answer, the closing with stars
    await settled(fake, 631, probe)
    texts = [c.params["text"] for c in fake.sent(631)]
    assert sum("Единственный ответ" in t for t in texts) == 1
    assert len(texts) == 3
    assert [m.text for m in await dialogue.store.ticket_messages(number) if m.role == "operator"] == [
        "Единственный ответ"
    ]


async def test_webhook_redelivery_of_a_staff_update_acts_once(fake: FakeBotAPI, dialogue: Dialogue, webhook: str):
    fake.members[OPERATOR] = "member"
    secret = fake.find("setWebhook")[0].params["secret_token"]
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with aiohttp.ClientSession() as http:

        async def post(update: dict) -> int:
            async with http.post(webhook, json=update, headers=headers) as response:
                return response.status

        assert await post(fake.message(641, "/operator")) == 200
        [card] = await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
        thread = card.params["message_thread_id"]
        answer = staff_message(fake, thread, "Ответ по вебхуку", OPERATOR)
        statuses = await asyncio.gather(*(post(answer) for _ in range(3)))  # concurrent redeliveries
        assert statuses == [200, 200, 200]
        await fake.wait_sent(641, 2)
        await asyncio.sleep(0.5)
    assert sum("Ответ по вебхуку" in c.params["text"] for c in fake.sent(641)) == 1


async def fail_writes(dialogue: Dialogue, table: str, update_id: int | None = None) -> None:
    """A fault inside the database: inserts into `table` (of one update, for processed_updates)
    abort, as when the process dies at that write. `heal` removes it."""
    when = f" WHEN NEW.update_id = '{update_id}'" if update_id is not None else ""
    db = dialogue.store.db  # type: ignore[attr-defined]
    await db.execute(
        f"CREATE TRIGGER crash BEFORE INSERT ON {table}{when} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    await db.commit()


async def heal(dialogue: Dialogue) -> None:
    db = dialogue.store.db  # type: ignore[attr-defined]
    await db.execute("DROP TRIGGER crash")
    await db.commit()


@pytest.mark.parametrize("table", ["processed_updates", "outbox"])
@pytest.mark.usefixtures("running")
async def test_a_staff_update_that_fails_half_way_acts_once_when_delivered_again(
    fake: FakeBotAPI, dialogue: Dialogue, table: str, caplog
):
    """Issue 12, point 1: the operator's answer, its ticket message, the ticket's new holder and the
    update's processed mark are one transaction. When one of those writes fails (the process dies
    there), nothing of the update is kept, and the copy Telegram delivers again acts once: the
    citizen gets the answer exactly once and the ticket holds it once."""
    caplog.set_level(logging.CRITICAL, logger="aiogram")
    fake.members[OPERATOR] = "member"
    number, thread = await open_ticket(fake, dialogue, 651)
    _, probe = await open_ticket(fake, dialogue, 652)
    await settled(fake, 651, probe)  # membership known, the probe's own writes done
    answer = staff_message(fake, thread, "Ответ, записанный наполовину", OPERATOR)

    await fail_writes(dialogue, table, answer["update_id"] if table == "processed_updates" else None)
    await fake.push(answer)
    await asyncio.sleep(0.5)  # handled, and failed
    await heal(dialogue)
    assert not await dialogue.store.seen_update("telegram", str(answer["update_id"]))

    await fake.push(answer)  # Telegram delivers it again (the process died before acknowledging it)
    await fake.wait_sent(651, 2)  # the ticket confirmation and the answer
    await settled(fake, 651, probe)
    assert sum("записанный наполовину" in c.params["text"] for c in fake.sent(651)) == 1
    operator_lines = [m.text for m in await dialogue.store.ticket_messages(number) if m.role == "operator"]
    assert operator_lines == ["Ответ, записанный наполовину"]
    assert (await dialogue.store.get_ticket(number)).status == "taken"
