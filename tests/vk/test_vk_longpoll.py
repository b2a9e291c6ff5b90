"""A citizen in VK, through Bots Long Poll: what they see, and what the store keeps."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from adapters.vk import VkAdapter
from bot.config import Settings
from bot.dialogue import Dialogue
from fakes.vk_api import FAST, GROUP_ID, PLAIN_CLIENT, TEXT_CLIENT, TOKEN, FakeVk, eventually

PEER = 501


async def say(fake: FakeVk, text: str, *, payload: str | None = None, client: dict | None = None, count: int = 1):
    """The citizen writes; returns the new messages once `count` of them arrived."""
    before = len(fake.to(PEER))
    await fake.push(fake.message_new(PEER, text, payload, client))
    await eventually(lambda: len(fake.to(PEER)) >= before + count)
    return fake.to(PEER)[before:]


async def nothing_pending(dialogue: Dialogue) -> bool:
    return await dialogue.store.pending_count("vk") == 0


async def test_start_button_shows_the_menu_with_callback_buttons(fake_vk: FakeVk, vk: VkAdapter):
    [menu] = await say(fake_vk, "Начать", payload='{"command":"start"}')
    assert menu.text.startswith("Здравствуйте")
    assert menu.keyboard is not None
    actions = menu.buttons
    assert {a["type"] for a in actions} == {"callback"}
    assert json.loads(menu.payload_of("Не приходит код")) == {"p": "f:code_not_arriving"}
    assert json.loads(menu.payload_of("Телефоны")) == {"p": "phone"}


async def test_support_phone_by_words_and_by_command(fake_vk: FakeVk, vk: VkAdapter):
    [by_words] = await say(fake_vk, "телефон поддержки")
    [by_command] = await say(fake_vk, "/phone")
    for message in (by_words, by_command):
        assert "8 800 100-70-10" in message.text
        assert "115" in message.text


async def test_a_question_gets_the_answer_and_related_buttons(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    [answer] = await say(fake_vk, "как узнать статус заявления", client=TEXT_CLIENT)
    assert "Заявления" in answer.text
    assert answer.keyboard is not None
    assert answer.keyboard["inline"] is True
    assert all(a["type"] == "text" for a in answer.buttons)
    assert json.loads(answer.payload_of("Позвать оператора")) == {"p": "op"}
    transcript = await dialogue.store.recent_transcript("vk", str(PEER), 10)
    assert ("citizen", "как узнать статус заявления") in transcript


async def test_a_flow_through_text_buttons_and_callback_buttons(fake_vk: FakeVk, vk: VkAdapter):
    [step] = await say(fake_vk, "не приходит смс", client=TEXT_CLIENT)
    assert len(step.buttons) >= 3
    by_sms = step.payload_of("По СМС")

    # A text button: message_new carries the label and the payload.
    [second] = await say(fake_vk, "По СМС", payload=by_sms, client=TEXT_CLIENT)
    assert second.text != step.text
    home = second.payload_of("В начало")

    # A callback button: message_event, answered with sendMessageEventAnswer, then the next message.
    before = len(fake_vk.to(PEER))
    await fake_vk.push(fake_vk.message_event(PEER, json.loads(home), press_id="press-42"))
    await eventually(lambda: len(fake_vk.to(PEER)) > before)
    assert fake_vk.event_answers == [{"event_id": "press-42", "user_id": str(PEER), "peer_id": str(PEER)}]
    assert fake_vk.to(PEER)[-1].text.startswith("Здравствуйте")


async def test_forged_payloads_get_the_polite_answer(fake_vk: FakeVk, vk: VkAdapter):
    for forged in ('{"p":"o:nosuchflow:x:9"}', '{"x":1}', "not json", '["p"]', '{"p": 5}'):
        [reply] = await say(fake_vk, "кнопка", payload=forged, client=TEXT_CLIENT)
        assert "кнопка устарела" in reply.text
    before = len(fake_vk.to(PEER))
    await fake_vk.push(fake_vk.message_event(PEER, {"p": "r:999999:5"}, press_id="press-x"))
    await eventually(lambda: len(fake_vk.to(PEER)) > before)
    assert "кнопка устарела" in fake_vk.to(PEER)[-1].text


async def test_a_client_without_keyboards_answers_with_numbers(fake_vk: FakeVk, vk: VkAdapter):
    [step] = await say(fake_vk, "не приходит смс", client=PLAIN_CLIENT)
    assert step.keyboard is None
    assert "1. По СМС" in step.text
    [following] = await say(fake_vk, "1", client=PLAIN_CLIENT)
    [pressed] = await say(fake_vk, "По СМС", client=PLAIN_CLIENT)  # typing the label does the same
    assert following.text == pressed.text != step.text


async def test_handoff_and_the_operators_reply_arrive_in_vk(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    [opened] = await say(fake_vk, "/operator")
    assert "Номер обращения" in opened.text
    ticket = await dialogue.store.open_ticket_for("vk", str(PEER))
    assert ticket is not None

    await dialogue.desk.reply(ticket.number, "Проверьте, пожалуйста, папку «Спам».", "оператор")
    await eventually(lambda: any("папку «Спам»" in m.text for m in fake_vk.to(PEER)))
    await eventually(lambda: nothing_pending(dialogue))

    await dialogue.desk.close(ticket.number, "оператор")
    await eventually(lambda: "закрыто" in fake_vk.to(PEER)[-1].text)
    stars = fake_vk.to(PEER)[-1]
    assert json.loads(stars.payload_of("⭐⭐⭐⭐⭐")) == {"p": f"r:{ticket.number}:5"}


async def test_a_long_operator_reply_is_split_at_line_breaks(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    await say(fake_vk, "/operator")
    ticket = await dialogue.store.open_ticket_for("vk", str(PEER))
    assert ticket is not None
    lines = [f"Строка {i}: " + "подробности " * 8 for i in range(80)]
    await dialogue.desk.reply(ticket.number, "\n".join(lines), "оператор")
    await eventually(lambda: any("Строка 79" in m.text for m in fake_vk.to(PEER)))
    parts = [m for m in fake_vk.to(PEER) if "Строка" in m.text]
    assert len(parts) >= 2
    assert all(len(p.text) <= 4096 for p in parts)
    assert all(p.text.rstrip().endswith("подробности") for p in parts)  # cut between lines, not inside
    assert len({p.random_id for p in parts}) == len(parts)


async def test_flood_control_is_retried_and_delivered_once(fake_vk: FakeVk, vk: VkAdapter):
    fake_vk.fail("messages.send", code=9)
    [reply] = await say(fake_vk, "/phone")
    assert "8 800 100-70-10" in reply.text
    assert fake_vk.calls.count("messages.send") == 2


async def test_server_errors_and_lost_answers_do_not_duplicate(fake_vk: FakeVk, vk: VkAdapter):
    fake_vk.fail("messages.send", http=502)
    fake_vk.fail("messages.send", deliver=True, http=500)  # VK delivered, the answer got lost
    await say(fake_vk, "/phone")
    await eventually(lambda: fake_vk.calls.count("messages.send") >= 3)
    assert len(fake_vk.to(PEER)) == 1  # the resend carried the same random_id


async def test_a_reply_that_keeps_failing_waits_in_the_outbox(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    fake_vk.fail("messages.send", times=3, code=6)  # more than the adapter's immediate retries
    await fake_vk.push(fake_vk.message_new(PEER, "/phone"))
    await eventually(lambda: len(fake_vk.to(PEER)) == 1)
    assert "8 800 100-70-10" in fake_vk.to(PEER)[0].text
    await eventually(lambda: nothing_pending(dialogue))
    assert fake_vk.calls.count("messages.send") == 4


async def test_privacy_errors_mark_the_chat_blocked(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    await say(fake_vk, "/operator")
    ticket = await dialogue.store.open_ticket_for("vk", str(PEER))
    assert ticket is not None
    fake_vk.fail("messages.send", code=901, peer_id=PEER)
    await dialogue.desk.reply(ticket.number, "Ответ, который не дойдёт", "оператор")
    await eventually(lambda: fake_vk.calls.count("messages.send") == 2)
    await eventually(lambda: dialogue.store.is_chat_blocked("vk", str(PEER)))
    await eventually(lambda: nothing_pending(dialogue))
    assert not any("не дойдёт" in m.text for m in fake_vk.to(PEER))

    # The citizen writes again: the chat is open to us again.
    await say(fake_vk, "/phone")
    assert not await dialogue.store.is_chat_blocked("vk", str(PEER))


async def test_message_deny_and_allow_follow_the_citizens_choice(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    await fake_vk.push(fake_vk.event("message_deny", {"user_id": PEER}))
    await eventually(lambda: dialogue.store.is_chat_blocked("vk", str(PEER)))
    await fake_vk.push(fake_vk.event("message_allow", {"user_id": PEER, "key": ""}))
    await eventually(lambda: chat_open(dialogue))


async def chat_open(dialogue: Dialogue) -> bool:
    return not await dialogue.store.is_chat_blocked("vk", str(PEER))


async def test_a_photo_without_text_gets_the_text_only_hint(fake_vk: FakeVk, vk: VkAdapter, dialogue: Dialogue):
    update = fake_vk.message_new(PEER, "")
    update["object"]["message"]["attachments"] = [{"type": "photo", "photo": {"id": 1}}]
    await fake_vk.push(update)
    await eventually(lambda: len(fake_vk.to(PEER)) == 1)
    assert "только текст" in fake_vk.to(PEER)[0].text
    assert ("citizen", "[photo]") in await dialogue.store.recent_transcript("vk", str(PEER), 5)


async def test_group_conversations_and_own_messages_are_ignored(fake_vk: FakeVk, vk: VkAdapter):
    chat = fake_vk.message_new(2_000_000_001, "/phone")
    own = fake_vk.message_new(PEER, "/phone")
    own["object"]["message"]["out"] = 1
    await fake_vk.push(chat)
    await fake_vk.push(own)
    [reply] = await say(fake_vk, "/phone")  # handled after the two above, which got nothing
    assert "8 800 100-70-10" in reply.text
    assert [m.peer_id for m in fake_vk.sent] == [PEER]


async def test_network_trouble_only_pauses_and_the_token_stays_out_of_logs(dialogue: Dialogue, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(vk_group_token=TOKEN, vk_group_id=GROUP_ID, vk_api_base=f"http://127.0.0.1:{port}/method")
    stop = asyncio.Event()
    task = asyncio.create_task(VkAdapter(settings, dialogue, **FAST).run(stop))
    await eventually(lambda: caplog.text.count("VK long poll failed") >= 2)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert TOKEN not in caplog.text
