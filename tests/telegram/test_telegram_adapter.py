"""The Telegram adapter end to end: the real aiogram Bot and Dispatcher over HTTP to a fake Bot API.

Each test reads like a conversation: what the citizen or operator sends (updates the fake serves),
then what Telegram was asked to do (calls the fake recorded) and what the store holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.dialogue import Dialogue
from bot.messages import Button, Reply
from bot.records import OutboxItem
from bot.storage.base import Store
from fakes.telegram_api import OPERATOR, OPS, PHOTO, STICKER, Call, FakeBotAPI

pytestmark = pytest.mark.usefixtures("running")


def texts(calls: list[Call]) -> list[str]:
    return [c.params["text"] for c in calls]


def in_thread(thread: int) -> Callable[[Call], bool]:
    return lambda c: c.method == "sendMessage" and c.ok and c.params.get("message_thread_id") == thread


async def outbox_empty(store: Store, platform: str) -> bool:
    """Whether the outbox for `platform` drains within a few seconds (marking happens after the send)."""
    for _ in range(100):
        if await store.pending_count(platform) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def say(fake: FakeBotAPI, chat_id: int, text: str, count: int = 1) -> list[Call]:
    """The citizen writes; returns every message the chat has received once `count` more arrived."""
    before = len(fake.sent(chat_id))
    await fake.push(fake.message(chat_id, text))
    return await fake.wait_sent(chat_id, before + count)


async def press(fake: FakeBotAPI, chat_id: int, data: str, *, user_id: int | None = None) -> Call:
    """Press a button; returns the reply (and checks that the press was answered)."""
    before = len(fake.sent(chat_id))
    update = fake.callback(chat_id, data, user_id=user_id)
    await fake.push(update)
    reply = (await fake.wait_sent(chat_id, before + 1))[-1]
    await fake.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params["callback_query_id"] == update["callback_query"]["id"]
    )
    return reply


# -- citizens ------------------------------------------------------------------------------------


async def test_start_greets_with_the_menu_and_sets_russian_commands(fake: FakeBotAPI):
    [greeting] = await say(fake, 101, "/start")
    assert "Здравствуйте" in greeting.params["text"]
    assert "parse_mode" not in greeting.params  # plain text: user text is never read as markup
    assert ("Не приходит код", "f:code_not_arriving") in greeting.buttons
    assert all(len(label) <= 64 for label, _ in greeting.buttons)

    [menu] = [c for c in fake.find("setMyCommands") if "scope" not in c.params]
    assert [c["command"] for c in menu.params["commands"]] == ["start", "phone", "help", "operator", "cancel"]
    assert all(any("а" <= ch <= "я" for ch in c["description"].lower()) for c in menu.params["commands"])
    [staff_menu] = [c for c in fake.find("setMyCommands") if "scope" in c.params]
    assert staff_menu.params["scope"] == {"type": "chat", "chat_id": OPS}
    assert fake.find("deleteWebhook")  # polling mode


async def test_phone_command_gives_the_official_numbers(fake: FakeBotAPI):
    [reply] = await say(fake, 102, "/phone")
    assert "8 800 100-70-10" in reply.params["text"]
    assert "115" in reply.params["text"]


async def test_deep_link_start_opens_the_flow(fake: FakeBotAPI):
    [reply] = await say(fake, 103, "/start code_not_arriving")
    assert any(data.startswith("o:code_not_arriving:") for _, data in reply.buttons)


async def test_free_text_question_then_a_flow_walked_through_its_buttons(fake: FakeBotAPI):
    [first] = await say(fake, 104, "не приходит смс")
    reply = first
    for _ in range(10):
        if any(data == "y:code_not_arriving" for _, data in reply.buttons):
            break
        option = next(data for _, data in reply.buttons if data.startswith("o:"))
        reply = await press(fake, 104, option)
    else:
        pytest.fail("the flow never reached an end step")
    done = await press(fake, 104, "y:code_not_arriving")
    assert "Рад, что получилось" in done.params["text"]
    presses = [c for c in fake.calls if c.method == "answerCallbackQuery"]
    assert len(presses) >= 2
    assert all(c.ok for c in presses)


async def test_forged_button_gets_a_polite_answer(fake: FakeBotAPI):
    for forged in ("o:no_such_flow:x:9", "'; DROP TABLE tickets; --", "desk:close:1"):
        reply = await press(fake, 105, forged)
        assert "кнопка устарела" in reply.params["text"]


async def test_sticker_gets_a_short_reply_with_buttons(fake: FakeBotAPI):
    before = len(fake.sent(106))
    await fake.push(fake.message(106, **STICKER))
    [*_, reply] = await fake.wait_sent(106, before + 1)
    assert "только текст" in reply.params["text"]
    assert reply.buttons


async def test_duplicate_update_is_answered_once(fake: FakeBotAPI):
    update = fake.message(107, "/phone")
    await fake.push(update, update)  # Telegram delivers the same update twice
    await fake.push(fake.message(107, "/help"))
    replies = await fake.wait_sent(107, 2)
    await asyncio.sleep(0.2)
    assert len(fake.sent(107)) == 2
    assert "8 800 100-70-10" in replies[0].params["text"]
    assert "/operator" in replies[1].params["text"]


async def test_edited_message_and_foreign_group_get_no_reply(fake: FakeBotAPI):
    edited = fake.message(108, "не приходит код")
    await fake.push({"update_id": edited["update_id"], "edited_message": edited["message"]})
    group = -100777
    await fake.push(fake.message(group, "/start", user_id=109, chat_type="supergroup"))
    await fake.push(fake.message(group, "/operator", user_id=109, chat_type="supergroup"))
    foreign_press = fake.callback(group, "op", user_id=109, chat_type="supergroup")
    await fake.push(foreign_press)
    await say(fake, 110, "/phone")  # a later update, answered: the earlier ones are done
    await fake.wait_for(lambda c: c.method == "answerCallbackQuery")
    assert not fake.sent(108, ok=False)
    assert not fake.sent(group, ok=False)
    assert not fake.find("createForumTopic")  # no ticket was opened from the group


async def test_long_reply_is_split_at_line_breaks(fake: FakeBotAPI, dialogue: Dialogue):
    long_text = "\n".join(f"Строка {i}: " + "текст " * 20 for i in range(60))
    await dialogue.store.enqueue(
        OutboxItem("telegram", "111", Reply(long_text, (Button("Понятно", "home"),)), created_at=dialogue.clock())
    )
    parts = await fake.wait_sent(111, 2)
    assert all(len(p.params["text"].encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert "\n".join(texts(parts)) == long_text.strip()
    assert not parts[0].buttons
    assert parts[-1].buttons == [("Понятно", "home")]


# -- Telegram misbehaving ------------------------------------------------------------------------


async def test_429_waits_retry_after_then_delivers(fake: FakeBotAPI):
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await fake.push(fake.message(201, "/phone"))
    [delivered] = await fake.wait_sent(201)
    refused, accepted = fake.find("sendMessage", chat_id=201)
    assert refused.status == 429
    assert accepted is delivered
    assert accepted.at - refused.at >= 0.9
    assert "8 800 100-70-10" in delivered.params["text"]


async def test_500_is_retried_and_delivered(fake: FakeBotAPI):
    fake.fail("sendMessage", 500, "Internal Server Error")
    await fake.push(fake.message(202, "/phone"))
    await fake.wait_sent(202)
    assert [c.status for c in fake.find("sendMessage", chat_id=202)] == [500, 200]


async def test_a_reply_that_keeps_failing_goes_to_the_outbox_and_arrives(fake: FakeBotAPI, dialogue: Dialogue):
    fake.fail("sendMessage", 500, "Internal Server Error", times=4)  # more than the quick retries
    await fake.push(fake.message(205, "/phone"))
    [delivered] = await fake.wait_sent(205)
    assert "8 800 100-70-10" in delivered.params["text"]
    assert [c.status for c in fake.find("sendMessage", chat_id=205)] == [500] * 4 + [200]
    assert await outbox_empty(dialogue.store, "telegram")


async def test_outbox_survives_a_long_outage(fake: FakeBotAPI, dialogue: Dialogue):
    fake.fail("sendMessage", 502, "Bad Gateway", times=5)
    await dialogue.store.enqueue(OutboxItem("telegram", "203", Reply("Ответ сотрудника"), created_at=dialogue.clock()))
    [delivered] = await fake.wait_sent(203)
    assert delivered.params["text"] == "Ответ сотрудника"
    assert [c.status for c in fake.find("sendMessage", chat_id=203)] == [502] * 5 + [200]
    assert await outbox_empty(dialogue.store, "telegram")


async def test_a_user_who_blocked_the_bot_is_not_retried(fake: FakeBotAPI, dialogue: Dialogue):
    store = dialogue.store
    await say(fake, 204, "/start")
    fake.blocked_chats.add(204)
    for text in ("Ответ сотрудника", "Ещё один ответ"):
        await store.enqueue(OutboxItem("telegram", "204", Reply(text), created_at=dialogue.clock()))
    await fake.wait_for(lambda c: c.params.get("chat_id") == 204 and c.status == 403)
    assert await outbox_empty(store, "telegram")
    await asyncio.sleep(0.3)  # several outbox passes
    assert await store.is_chat_blocked("telegram", "204")
    assert await store.pending_count("telegram") == 0
    assert [c.status for c in fake.find("sendMessage", chat_id=204)] == [200, 403]  # tried once, then given up

    fake.blocked_chats.discard(204)  # unblocked and wrote again
    await say(fake, 204, "/phone")
    assert not await store.is_chat_blocked("telegram", "204")


# -- the operators' desk ---------------------------------------------------------------------------


async def test_handoff_through_the_operators_forum_and_back(fake: FakeBotAPI, dialogue: Dialogue):
    store = dialogue.store
    citizen = 301
    fake.members[OPERATOR] = "member"

    [opened] = await say(fake, citizen, "/operator")
    ticket = await store.open_ticket_for("telegram", str(citizen))
    assert ticket is not None
    assert f"№ {ticket.number}" in opened.params["text"]
    n = ticket.number

    [topic] = await fake.wait_for(lambda c: c.method == "createForumTopic")
    assert topic.params["chat_id"] == OPS
    assert topic.params["name"].startswith(f"№ {n} · ")
    assert len(topic.params["name"]) <= 128
    [card] = await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
    thread = card.params["message_thread_id"]
    assert (await store.get_ticket(n)).desk_ref == str(thread)
    assert card.buttons == [("Взять", f"desk:take:{n}"), ("Закрыть", f"desk:close:{n}")]
    assert f"Обращение № {n}" in card.params["text"]

    # The citizen sends a photo: the ticket gets it, and staff see the photo itself.
    before = len(fake.sent(citizen))
    await fake.push(fake.message(citizen, **PHOTO))
    added = (await fake.wait_sent(citizen, before + 1))[-1]
    assert "Добавил к обращению" in added.params["text"]
    [copy] = await fake.wait_for(lambda c: c.method == "copyMessage")
    assert copy.params["chat_id"] == OPS
    assert copy.params["message_thread_id"] == thread
    assert copy.params["from_chat_id"] == citizen
    await fake.wait_for(lambda c: in_thread(thread)(c) and "[photo]" in c.params["text"])

    # Operators: only text is relayed; only members may press the card's buttons.
    await fake.push(fake.message(OPS, user_id=OPERATOR, chat_type="supergroup", thread=thread, **STICKER))
    await fake.wait_for(lambda c: in_thread(thread)(c) and "только текст" in c.params["text"])
    stranger = fake.callback(OPS, f"desk:take:{n}", user_id=666, chat_type="supergroup")
    await fake.push(stranger)
    [refusal] = await fake.wait_for(
        lambda c: (
            c.method == "answerCallbackQuery" and c.params["callback_query_id"] == stranger["callback_query"]["id"]
        )
    )
    assert refusal.params.get("show_alert") is True
    assert (await store.get_ticket(n)).status == "open"

    take = fake.callback(OPS, f"desk:take:{n}", user_id=OPERATOR, chat_type="supergroup")
    before = len(fake.sent(citizen))  # counted first: the outbox may deliver before the press is answered
    await fake.push(take)
    await fake.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.params["callback_query_id"] == take["callback_query"]["id"]
    )
    taken = await fake.wait_sent(citizen, before + 1)
    assert "взял ваше обращение" in taken[-1].params["text"]
    assert (await store.get_ticket(n)).status == "taken"
    await fake.wait_for(lambda c: in_thread(thread)(c) and "взял(а) обращение" in c.params["text"])

    # An operator's answer in the topic reaches the citizen.
    before = len(fake.sent(citizen))
    await fake.push(
        fake.message(
            OPS, "Проверьте папку «Спам» <b>в телефоне</b>", user_id=OPERATOR, chat_type="supergroup", thread=thread
        )
    )
    answer = (await fake.wait_sent(citizen, before + 1))[-1]
    assert "Ответ сотрудника" in answer.params["text"]
    assert "Проверьте папку «Спам» <b>в телефоне</b>" in answer.params["text"]

    await fake.push(
        fake.message(OPS, "/note звонил на горячую линию", user_id=OPERATOR, chat_type="supergroup", thread=thread)
    )
    await fake.wait_for(lambda c: in_thread(thread)(c) and "Заметка сохранена" in c.params["text"])
    assert any(m.role == "note" for m in await store.ticket_messages(n))

    # /close asks the citizen for a rating; pressing a star stores it.
    before = len(fake.sent(citizen))
    await fake.push(fake.message(OPS, "/close", user_id=OPERATOR, chat_type="supergroup", thread=thread))
    closed = (await fake.wait_sent(citizen, before + 1))[-1]
    assert [data for _, data in closed.buttons] == [f"r:{n}:{i}" for i in range(1, 6)]
    thanks = await press(fake, citizen, f"r:{n}:5")
    assert "Спасибо за оценку" in thanks.params["text"]
    assert (await store.get_ticket(n)).rating == 5
    await fake.wait_for(lambda c: in_thread(thread)(c) and "5/5" in c.params["text"])


async def test_a_deleted_topic_is_made_again_on_the_next_event(fake: FakeBotAPI, dialogue: Dialogue):
    store = dialogue.store
    await say(fake, 302, "/operator")
    [first] = await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
    old = first.params["message_thread_id"]
    fake.deleted_threads.add(old)  # staff deleted the topic

    await say(fake, 302, "Код так и не пришёл")
    [card, event] = await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params.get("message_thread_id") not in (None, old), 2
    )
    new = card.params["message_thread_id"]
    assert event.params["message_thread_id"] == new
    ticket = await store.open_ticket_for("telegram", "302")
    assert ticket is not None
    assert ticket.desk_ref == str(new)
    topics = fake.find("createForumTopic")
    assert len(topics) == 2
    assert topics[-1].params["name"].startswith(f"№ {ticket.number}")
    assert card.buttons
    assert f"Обращение № {ticket.number}" in card.params["text"]
    assert "Код так и не пришёл" in event.params["text"]


async def test_overdue_ticket_is_announced_in_the_general_topic(fake: FakeBotAPI, dialogue: Dialogue):
    await say(fake, 303, "/operator")
    ticket = await dialogue.store.open_ticket_for("telegram", "303")
    assert ticket is not None
    ticket.due_at = dialogue.clock() - 1
    await dialogue.store.update_ticket(ticket)
    [notice] = await fake.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS and "Просрочено" in c.params["text"]
    )
    assert "message_thread_id" not in notice.params


@pytest.mark.usefixtures("running")
async def test_a_photos_copy_to_the_desk_is_saved_with_the_turn(fake: FakeBotAPI, dialogue: Dialogue, monkeypatch):
    """Issue 12, point 3: the copy of a citizen's photo for the desk is queued in the turn's own
    transaction. Were the process killed right after the turn's commit (the update is acknowledged
    after it, so Telegram would not deliver it again), the copy must already be in the outbox;
    before, it was written after the commit and a crash there lost it for good."""
    citizen = 561
    await fake.push(fake.message(citizen, "/operator"))
    await fake.wait_sent(citizen)
    [card] = await fake.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == OPS)
    thread = card.params["message_thread_id"]
    store = dialogue.store
    commit_turn = store.commit_turn
    at_commit: list[list[str]] = []

    async def observed(turn):  # what a crash right after this commit would leave in the outbox
        number = await commit_turn(turn)
        desk = await store.due(("desk",), now=1e12, limit=1000)
        at_commit.append([item.event for item in desk if item.event.startswith("telegram_copy:")])
        return number

    monkeypatch.setattr(store, "commit_turn", observed)
    photo = fake.message(citizen, **PHOTO)
    await fake.push(photo)
    await fake.wait_for(lambda c: c.method == "copyMessage" and c.ok)
    await fake.wait_for(lambda c: in_thread(thread)(c) and "[photo]" in c.params["text"])
    assert at_commit == [[f"telegram_copy:{photo['message']['message_id']}"]]
    [copy] = fake.find("copyMessage")
    assert copy.params["message_thread_id"] == thread
