"""Handing a conversation to people: tickets from the citizen's side and the staff desk."""

from __future__ import annotations

import io
import re

import pytest
from scenario import Chat, only_ticket

from bot.console import Console
from bot.dialogue import Dialogue
from bot.messages import Attachment
from bot.tickets import DESK, TicketError


async def test_operator_command_opens_a_ticket(chat, dialogue):
    k = dialogue.knowledge
    await chat.say("не приходит смс с кодом")
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    assert (t.platform, t.chat_id, t.status, t.reason) == ("test", "1", "open", "command")
    assert t.topic == "code_not_arriving"
    assert t.priority == "normal"
    assert f"№ {t.number}" in chat.text
    assert k.answer_time["normal"].text in chat.text
    assert chat.payloads == ["cancel"]
    assert t.due_at - t.created_at == k.answer_time["normal"].minutes * 60
    transcript = [(m.role, m.text) for m in await dialogue.store.ticket_messages(t.number)]
    assert ("citizen", "не приходит смс с кодом") in transcript
    assert ("citizen", "/operator") in transcript
    assert any(role == "bot" for role, _ in transcript)
    desk = await dialogue.store.due((DESK,), now=1e12)
    assert [i.event for i in desk] == ["opened"]
    assert f"№ {t.number}" in desk[0].reply.text


@pytest.mark.parametrize("flow_id", ["fraud", "account_blocked"])
async def test_urgent_topics_get_urgent_tickets_with_steps_tried(chat, dialogue, flow_id):
    k = dialogue.knowledge
    flow = k.flows[flow_id]
    await chat.press(f"f:{flow_id}")
    await chat.press("op")
    t = await only_ticket(dialogue)
    assert t.topic == flow.topic
    assert k.topics[flow.topic].priority == "urgent"
    assert t.priority == "urgent"
    assert t.reason == "button"
    assert f"{flow_id}/{flow.start}" in t.steps_tried
    assert k.answer_time["urgent"].text in chat.text
    assert t.due_at - t.created_at == k.answer_time["urgent"].minutes * 60
    assert (await dialogue.store.load_session("test", "1")).flow_id is None


async def test_not_helped_at_a_flow_end_opens_a_ticket(chat, dialogue):
    flow = dialogue.knowledge.flows["code_not_arriving"]
    await chat.press(f"f:{flow.id}")
    step = flow.steps[flow.start]
    while not step.end:
        index = next(i for i, o in enumerate(step.options) if o.goto)
        await chat.press(f"o:{flow.id}:{step.id}:{index}")
        step = flow.steps[step.options[index].goto]
    await chat.press(f"n:{flow.id}")
    t = await only_ticket(dialogue)
    assert t.reason == "flow_end"
    assert t.topic == flow.topic
    assert len(t.steps_tried) >= 2


async def test_fallback_then_operator_button_keeps_the_candidates(chat, dialogue, shipped):
    _, matcher = shipped
    question = "у соседа сверху протекает кран, куда жаловаться на управляющую компанию"
    decision = matcher.decide(question)
    await chat.say(question)
    assert "op" in chat.payloads
    await chat.press("op")
    t = await only_ticket(dialogue)
    assert t.candidates == [{"id": c.target_id, "topic": c.topic, "score": c.score} for c in decision.candidates]
    assert t.number
    assert f"№ {t.number}" in chat.text
    assert t.topic in dialogue.knowledge.topics


async def test_an_open_ticket_takes_the_citizens_messages(chat, dialogue):
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    await chat.say("и ещё: вчера всё было нормально")  # nothing the bot could answer itself
    assert chat.text == dialogue.knowledge.text("ticket_added", ticket=f"№ {t.number}")
    assert chat.payloads == ["cancel"]
    assert (await dialogue.store.load_session("test", "1")).flow_id is None
    await chat.send(attachments=(Attachment.PHOTO,))
    await chat.send(text="вот скриншот", attachments=(Attachment.DOCUMENT,))
    texts = [m.text for m in await dialogue.store.ticket_messages(t.number) if m.role == "citizen"]
    assert texts[-3:] == ["и ещё: вчера всё было нормально", "[photo]", "вот скриншот [document]"]
    events = [i.event for i in await dialogue.store.due((DESK,), now=1e12)]
    assert events == ["opened", "citizen", "citizen", "citizen"]


async def test_an_empty_message_is_not_added_to_the_ticket(chat, dialogue):
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    before = len(await dialogue.store.ticket_messages(t.number))
    await chat.say("\x00\x07  ")
    assert chat.text == dialogue.knowledge.text("empty")
    assert len(await dialogue.store.ticket_messages(t.number)) == before


async def test_one_open_ticket_per_chat(chat, dialogue):
    await chat.say("/operator")
    await chat.press("op")
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    assert chat.text == dialogue.knowledge.text("ticket_open_already", ticket=f"№ {t.number}")
    other = Chat(dialogue, chat_id="2")
    await other.say("/operator")
    assert len(await dialogue.store.list_tickets()) == 2


async def test_cancel_withdraws_the_ticket(chat, dialogue):
    k = dialogue.knowledge
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    await chat.press("cancel")
    assert chat.text == k.text("ticket_cancelled", ticket=f"№ {t.number}")
    assert (await dialogue.store.get_ticket(t.number)).status == "cancelled"
    assert await dialogue.store.open_ticket_for("test", "1") is None
    await chat.say("/cancel")
    assert chat.text == k.text("cancel_nothing")
    await chat.say("не приходит смс")  # matched again, no longer swallowed by the ticket
    assert (await dialogue.store.load_session("test", "1")).last_topic == "code_not_arriving"
    await chat.say("/operator")  # right after a cancel: a short cool-down (tests/test_ticket_limits.py)
    assert chat.text == k.text("ticket_cooldown")
    assert len(await dialogue.store.list_tickets()) == 1


async def test_staff_take_reply_note_close_and_rating(chat, dialogue):
    k = dialogue.knowledge
    desk, store = dialogue.desk, dialogue.store
    await chat.say("/operator")
    number = (await only_ticket(dialogue)).number

    await desk.take(number, "Ольга")
    t = await store.get_ticket(number)
    assert (t.status, t.operator) == ("taken", "Ольга")

    await desk.reply(number, "Проверьте папку «Спам». Код 123456 никому не говорите.", "Ольга")
    await desk.note(number, "гражданин пожилой, говорить медленно", "Ольга")
    to_citizen = await store.due(("test",), now=1e12)
    assert [i.chat_id for i in to_citizen] == ["1", "1"]
    assert to_citizen[0].reply.text == k.text("ticket_taken", ticket=f"№ {number}")
    assert "Проверьте папку «Спам»" in to_citizen[1].reply.text
    assert "123456" not in to_citizen[1].reply.text  # staff text is redacted too
    assert not any("пожилой" in i.reply.text for i in to_citizen)  # notes stay on the desk side
    roles = [(m.role, m.author) for m in await store.ticket_messages(number)]
    assert ("operator", "Ольга") in roles
    assert ("note", "Ольга") in roles
    for item in to_citizen:
        await store.mark_sent(item.id)

    await desk.close(number, "Ольга")
    closing = await store.due(("test",), now=1e12)
    assert len(closing) == 1
    assert [b.payload for b in closing[0].reply.buttons] == [f"r:{number}:{n}" for n in range(1, 6)]
    assert (await store.get_ticket(number)).status == "closed"
    with pytest.raises(TicketError):
        await desk.reply(number, "поздно", "Ольга")

    stranger = Chat(dialogue, chat_id="2")
    await stranger.press(f"r:{number}:1")  # someone else's ticket
    assert stranger.text == k.text("unknown_button")
    await chat.press(f"r:{number}:4")
    assert chat.text == k.text("rating_thanks")
    await chat.press(f"r:{number}:1")  # a second press does not overwrite
    assert (await store.get_ticket(number)).rating == 4
    await chat.say("не приходит смс")  # closed ticket no longer takes messages
    assert (await store.load_session("test", "1")).last_topic == "code_not_arriving"


async def test_desk_refuses_unknown_tickets(dialogue):
    with pytest.raises(TicketError):
        await dialogue.desk.take(404, "Ольга")
    with pytest.raises(TicketError):
        await dialogue.desk.view(404)


async def test_overdue_tickets_are_announced_once(sqlite_store, source):
    now = [1_000_000.0]
    dialogue = Dialogue(source, sqlite_store, clock=lambda: now[0])
    await Chat(dialogue).say("/operator")
    assert await dialogue.desk.announce_overdue() == []
    now[0] += 2 * 24 * 3600
    assert len(await dialogue.desk.announce_overdue()) == 1
    assert await dialogue.desk.announce_overdue() == []
    events = [i.event for i in await sqlite_store.due((DESK,), now=1e12)]
    assert events.count("overdue") == 1


async def test_console_delivers_an_operator_reply_next_time_the_chat_is_open(dialogue):
    out = io.StringIO()
    console = Console(dialogue, "term-1", out=out, err=io.StringIO())
    await console.say("/operator")
    t = await dialogue.store.open_ticket_for("console", "term-1")
    assert t is not None
    assert f"№ {t.number}" in out.getvalue()

    await dialogue.desk.reply(t.number, "Здравствуйте, смените пароль в профиле.", "Ольга")
    assert "смените пароль" not in out.getvalue()
    await console.deliver_outbox()
    assert "Здравствуйте, смените пароль в профиле." in out.getvalue()
    assert await dialogue.store.pending_count("console") == 0

    await dialogue.desk.close(t.number, "Ольга")
    await console.deliver_outbox()
    await console.say("4")  # the rating buttons were printed as [1]..[5]
    assert (await dialogue.store.get_ticket(t.number)).rating == 4


async def test_terminal_replies_and_notes_reach_the_desk_but_desk_written_ones_do_not_echo(dialogue):
    from bot.messages import Incoming

    await dialogue.handle(Incoming("telegram", "77", text="/operator"))
    ticket = await dialogue.store.open_ticket_for("telegram", "77")
    await dialogue.desk.reply(ticket.number, "Ответ из терминала", "Ирина")
    await dialogue.desk.note(ticket.number, "Заметка из терминала", "Ирина")
    await dialogue.desk.reply(ticket.number, "Ответ из темы", "Ирина", to_desk=False)
    desk_texts = [i.reply.text for i in await dialogue.store.due(("desk",), now=float("inf"), limit=100)]
    assert any("Ответ из терминала" in t for t in desk_texts)
    assert any("Заметка из терминала" in t for t in desk_texts)
    assert not any("Ответ из темы" in t for t in desk_texts)
    await dialogue.store.set_desk_ref(ticket.number, "555")
    assert (await dialogue.store.find_ticket_by_desk_ref("555")).number == ticket.number


async def _fail_inserts(store, table: str, when: str = "") -> None:
    """A fault inside the database: inserts into `table` abort, as when the process dies there."""
    await store.db.execute(
        f"CREATE TRIGGER crash BEFORE INSERT ON {table} {when} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    await store.db.commit()


async def _heal(store) -> None:
    await store.db.execute("DROP TRIGGER crash")
    await store.db.commit()


@pytest.mark.parametrize("table", ["processed_updates", "outbox", "transcript"])
async def test_a_ticket_its_desk_card_and_the_confirmation_are_saved_together(dialogue, sqlite_store, table):
    """Issue 12, point 2: /operator's ticket, its first lines, its desk card and the citizen's
    confirmation are one transaction with the turn. When a write of the turn fails (the process dies
    there), no ticket is left without its confirmation or its card; the update Telegram delivers
    again opens exactly one ticket, shown once on the desk, confirmed once with its number."""
    from bot.messages import Incoming

    operator = Incoming("telegram", "77", user_id="77", text="/operator", update_id="500")
    await _fail_inserts(sqlite_store, table)
    failed = await dialogue.handle_queued(operator)
    assert failed.queued == 0
    assert failed.send_now
    await _heal(sqlite_store)
    assert await sqlite_store.list_tickets() == []
    assert await sqlite_store.pending_count() == 0

    handled = await dialogue.handle_queued(operator)  # delivered again
    assert handled.queued == 1
    assert (await dialogue.handle_queued(operator)).queued == 0  # and again: a duplicate now
    [ticket] = await sqlite_store.list_tickets()
    [confirmation] = await sqlite_store.due(("telegram",), now=1e12)
    assert re.search(rf"№ {ticket.number}\b", confirmation.reply.text)
    [card] = await sqlite_store.due((DESK,), now=1e12)
    assert (card.ticket, card.event) == (ticket.number, "opened")
    assert re.search(rf"№ {ticket.number}\b", card.reply.text)
    assert "\ue000" not in confirmation.reply.text + card.reply.text


async def test_a_cancel_and_its_desk_event_are_saved_with_the_turn(dialogue, sqlite_store):
    """The cancel of a ticket (status, system line, desk event, the citizen's answer) is one
    transaction too: a failed turn cancels nothing."""
    from bot.messages import Incoming

    await dialogue.handle_queued(Incoming("telegram", "78", text="/operator", update_id="600"))
    [ticket] = await sqlite_store.list_tickets()
    cancel = Incoming("telegram", "78", text="/cancel", update_id="601")
    await _fail_inserts(sqlite_store, "processed_updates", "WHEN NEW.update_id = '601'")
    assert (await dialogue.handle_queued(cancel)).send_now
    await _heal(sqlite_store)
    assert (await sqlite_store.get_ticket(ticket.number)).status == "open"
    assert [i.event for i in await sqlite_store.due((DESK,), now=1e12)] == ["opened"]

    await dialogue.handle_queued(cancel)
    assert (await sqlite_store.get_ticket(ticket.number)).status == "cancelled"
    assert [i.event for i in await sqlite_store.due((DESK,), now=1e12)] == ["opened", "cancelled"]
    assert [m.text for m in await sqlite_store.ticket_messages(ticket.number) if m.role == "system"] == [
        "Гражданин отменил обращение"
    ]


async def test_a_front_ends_desk_extras_follow_the_message_into_the_ticket(dialogue, sqlite_store):
    """The copy of a photo a front end asks for goes to the desk with the turn: after the card of the
    ticket the message opened (a photo captioned /operator), or after its line in an open ticket."""
    from bot.messages import Incoming

    extras = (("telegram_copy:5", "[photo]"),)
    await dialogue.handle_queued(
        Incoming(
            "telegram", "79", text="/operator", attachments=(Attachment.PHOTO,), update_id="700", desk_extras=extras
        )
    )
    [ticket] = await sqlite_store.list_tickets()
    desk = await sqlite_store.due((DESK,), now=1e12)
    assert [(i.event, i.ticket) for i in desk] == [("opened", ticket.number), ("telegram_copy:5", ticket.number)]
    assert desk[1].chat_id == "79"
    await dialogue.handle_queued(
        Incoming("telegram", "79", text="", attachments=(Attachment.PHOTO,), update_id="701", desk_extras=extras)
    )
    assert [i.event for i in await sqlite_store.due((DESK,), now=1e12)][2:] == ["citizen", "telegram_copy:5"]
    # Without a ticket the extras go nowhere.
    await dialogue.handle_queued(
        Incoming("telegram", "80", text="", attachments=(Attachment.PHOTO,), update_id="702", desk_extras=extras)
    )
    assert len(await sqlite_store.due((DESK,), now=1e12)) == 4
