"""A citizen in trouble always gets the right reply (issue 11): conversations through the core.

An open ticket does not silence fraud warnings or what the bot knows; a hacked account takes the
urgent path to an urgent ticket; staff actions carry the operator's name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from scenario import Chat, only_ticket

from bot.dialogue import Dialogue
from bot.tickets import DESK, TicketError

SCAM_CALL = "мне звонят с 8 800 555-35-35 просят код"
HACKED = "меня взломали, сменили номер телефона и почту в профиле"


async def citizen_lines(dialogue: Dialogue, number: int) -> list[str]:
    return [m.text for m in await dialogue.store.ticket_messages(number) if m.role == "citizen"]


# -- 2: an open ticket does not silence the bot ------------------------------------------------------


async def test_an_open_ticket_still_warns_about_a_scam_call(chat, dialogue):
    k = dialogue.knowledge
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    await chat.say(SCAM_CALL)
    assert "это не номер Госуслуг" in chat.text  # the warning, not only "added to the ticket"
    assert "8 800 555-35-35" in chat.text
    assert chat.replies[-1].text == k.text("ticket_added", ticket=f"№ {t.number}")
    assert SCAM_CALL in await citizen_lines(dialogue, t.number)
    bot_lines = [m.text for m in await dialogue.store.ticket_messages(t.number) if m.role == "bot"]
    assert any("это не номер Госуслуг" in line for line in bot_lines)  # staff see what the bot said
    fresh = await dialogue.store.get_ticket(t.number)
    assert (fresh.priority, fresh.topic) == ("urgent", "fraud_security")  # the warning made it urgent
    assert fresh.due_at <= time.time() + k.answer_time["urgent"].minutes * 60  # 30 minutes from now, not a day
    events = [i.event for i in await dialogue.store.due((DESK,), now=1e12)]
    assert events == ["opened", "citizen", "escalated"]


async def test_an_untaken_ticket_still_gets_confident_answers(chat, dialogue):
    k = dialogue.knowledge
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    await chat.say("забыл пароль от госуслуг")
    assert chat.text != k.text("ticket_added", ticket=f"№ {t.number}")
    assert len(chat.replies) == 2  # the answer (or the flow's first step), then the ticket note
    assert chat.replies[-1].text == k.text("ticket_added", ticket=f"№ {t.number}")
    assert (await dialogue.store.get_ticket(t.number)).priority == "normal"
    assert "забыл пароль от госуслуг" in await citizen_lines(dialogue, t.number)
    await chat.say("и ещё: вчера всё было нормально")  # nothing the bot could answer: only added
    assert chat.text == k.text("ticket_added", ticket=f"№ {t.number}")


async def test_a_taken_ticket_keeps_the_bot_quiet_except_for_warnings(chat, dialogue):
    k = dialogue.knowledge
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    await dialogue.desk.take(t.number, "Анна")
    await chat.say("забыл пароль от госуслуг")
    assert chat.text == k.text("ticket_added", ticket=f"№ {t.number}")  # Анна answers, not the bot
    await chat.say(SCAM_CALL)
    assert "это не номер Госуслуг" in chat.text
    await chat.say("я уже сказала им код из смс")
    assert k.faq["told_code_to_scammer"].answer in chat.text  # act now: change the password …
    await chat.say(HACKED)
    assert chat.text != k.text("ticket_added", ticket=f"№ {t.number}")
    lines = await citizen_lines(dialogue, t.number)
    assert lines[-4:] == ["забыл пароль от госуслуг", SCAM_CALL, "я уже сказала им код из смс", HACKED]


# -- 3: a hacked account is urgent -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        HACKED,
        "кто-то поменял пароль от моего аккаунта, я не могу войти",
        "сменили номер телефона в моей учетке без меня",
        "в разделе безопасность какие-то незнакомые сеансы входа",
    ],
)
async def test_a_hacked_account_reaches_the_urgent_path(chat, dialogue, text):
    k = dialogue.knowledge
    await chat.say(text)
    change_email = k.faq["change_email"].answer
    assert change_email not in chat.text
    session = await dialogue.store.load_session("test", "1")
    assert session.last_topic == "fraud_security"
    assert session.flow_id == "fraud" or any(
        entry.answer in chat.text for entry in k.faq.values() if entry.topic == "fraud_security"
    )
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    assert (t.topic, t.priority) == ("fraud_security", "urgent")
    assert k.answer_time["urgent"].text in chat.text


async def test_a_hacked_account_keeps_the_ticket_urgent_after_another_question(chat, dialogue):
    k = dialogue.knowledge
    await chat.say(HACKED)
    await chat.say("/cancel")  # out of the fraud flow, if it started one
    await chat.say("как поменять почту в профиле")  # now a settings question
    assert k.faq["change_email"].answer in chat.text
    await chat.say("/operator")
    t = await only_ticket(dialogue)
    assert t.priority == "urgent"
    assert t.topic == "fraud_security"
    await dialogue.desk.close(t.number, "Анна")
    await chat.say("как поменять почту в профиле")  # a new conversation after that ticket
    await chat.say("/operator")
    second = max(await dialogue.store.list_tickets(), key=lambda x: x.number)
    assert (second.topic, second.priority) == ("change_personal_data", "normal")


# -- 6: staff are named ----------------------------------------------------------------------------


async def test_the_holders_name_signs_replies_notes_and_closing(chat, dialogue):
    desk, store = dialogue.desk, dialogue.store
    await chat.say("/operator")
    number = (await only_ticket(dialogue)).number
    await desk.take(number, "Анна")
    await desk.reply(number, "Проверьте папку «Спам»", None)
    await desk.note(number, "перезвонить завтра")
    await desk.close(number)
    messages = await store.ticket_messages(number)
    assert ("operator", "Анна") in [(m.role, m.author) for m in messages]
    assert ("note", "Анна") in [(m.role, m.author) for m in messages]
    assert "Закрыл(а): Анна" in [m.text for m in messages if m.role == "system"]
    desk_texts = [i.reply.text for i in await store.due((DESK,), now=1e12)]
    assert not any("оператор" in text for text in desk_texts)
    assert any(text.startswith("Анна → гражданину") for text in desk_texts)
    assert any("закрыто (Анна)" in text for text in desk_texts)


async def test_taking_someone_elses_ticket_needs_force(chat, dialogue):
    desk, store = dialogue.desk, dialogue.store
    await chat.say("/operator")
    number = (await only_ticket(dialogue)).number
    await desk.take(number, "Анна")
    with pytest.raises(TicketError, match="Анна"):
        await desk.take(number, "Борис")
    assert (await store.get_ticket(number)).operator == "Анна"
    await desk.take(number, "Анна")  # her own again: nothing changes, the citizen is not told twice
    await desk.take(number, "Борис", force=True)
    assert (await store.get_ticket(number)).operator == "Борис"
    system = [m.text for m in await store.ticket_messages(number) if m.role == "system"]
    assert system[-1] == "Взял(а) в работу: Борис (вёл(а) Анна)"
    told = [i.reply.text for i in await store.due(("test",), now=1e12)]
    assert told == [dialogue.knowledge.text("ticket_taken", ticket=f"№ {number}")]


async def test_the_card_names_the_steps_tried(chat, dialogue):
    from bot.tickets import ticket_card

    k = dialogue.knowledge
    flow = k.flows["account_blocked"]
    await chat.press("f:account_blocked")
    await chat.press("op")
    view = await dialogue.desk.view((await only_ticket(dialogue)).number)
    card = ticket_card(view.ticket, view.messages, k)
    tried = next(line for line in card.splitlines() if line.startswith("Уже пробовал(а)"))
    assert f"account_blocked/{flow.start}" not in tried
    first_words = " ".join(flow.steps[flow.start].text.split()[:3])
    assert f"{flow.title}: «{first_words}" in tried
    assert "Статус: новое" in card


async def test_the_terminal_desk_speaks_russian_and_signs_with_the_holders_name(tmp_path):
    from scenario import gosbot, passing_knowledge

    from bot.dialogue import KnowledgeSource
    from bot.storage import SqliteStore

    env = {**os.environ, "GOSBOT_DB": str(tmp_path / "gosbot.sqlite3"), "GOSBOT_KNOWLEDGE": str(passing_knowledge())}
    store = SqliteStore(env["GOSBOT_DB"])
    await store.open()
    try:
        core = Dialogue(KnowledgeSource(env["GOSBOT_KNOWLEDGE"], check_every=3600), store)
        hacked = Chat(core, chat_id="100", platform="telegram")
        await hacked.say(HACKED)
        await hacked.say("/operator")
        await Chat(core, chat_id="200", platform="vk").say("/operator")

        assert gosbot("tickets", "take", "1", "--as", "Анна", env=env).returncode == 0
        listed = gosbot("tickets", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        header, first, second = listed.stdout.splitlines()
        assert header.split() == ["№", "срочно", "статус", "ведёт", "тема", "откуда", "ответить", "до"]
        assert first.split()[:4] == ["1", "да", "в", "работе"]
        assert "Анна" in first
        assert "Мошенники и безопасность" in first
        assert "telegram:100" in first
        assert second.split()[:2] == ["2", "новое"]
        assert "—" in second
        assert not any(word in listed.stdout for word in ("open", "taken", "fraud_security"))

        refused = gosbot("tickets", "take", "1", "--as", "Борис", env=env)
        assert refused.returncode == 1
        assert "Анна" in refused.stderr
        assert "--force" in refused.stderr
        assert (await store.get_ticket(1)).operator == "Анна"

        replied = gosbot("tickets", "reply", "1", "Смените", "пароль", env=env)
        assert replied.returncode == 0, replied.stderr
        assert "Анна" in replied.stdout
        closed = gosbot("tickets", "close", "1", env=env)
        assert closed.returncode == 0, closed.stderr
        messages = await store.ticket_messages(1)
        assert ("operator", "Анна") in [(m.role, m.author) for m in messages]
        assert "Закрыл(а): Анна" in [m.text for m in messages]

        taken_over = gosbot("tickets", "take", "2", "--as", "Борис", env=env)
        assert taken_over.returncode == 0
        forced = gosbot("tickets", "take", "2", "--as", "Анна", "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert "Борис" in forced.stdout  # says whose it was
        shown = gosbot("tickets", "show", "2", env=env)
        assert "Статус: в работе, ведёт Анна" in shown.stdout
    finally:
        await store.close()


# -- 8: a refused reload is reported once ----------------------------------------------------------


def test_a_refused_edit_is_reported_once_in_the_terminal_chat(tmp_path):
    from scenario import ROOT, copy_knowledge, passing_knowledge

    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    env = {**os.environ, "GOSBOT_DB": str(tmp_path / "gosbot.sqlite3"), "GOSBOT_KNOWLEDGE": str(directory)}
    chat = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert chat.stdin is not None
        assert chat.stdout is not None
        chat.stdin.write("/phone\n")
        chat.stdin.flush()
        while "8 800 100-70-10" not in (line := chat.stdout.readline()):
            assert line, "the chat ended before answering"
        faq = directory / "faq.yaml"
        text = faq.read_text(encoding="utf-8")
        faq.write_text(text + "\n  - id: account_hacked\n    topic: login_problems\n", encoding="utf-8")
        time.sleep(1.5)  # the chat looks at the files at most once a second
        out, err = chat.communicate("/phone\n/help\n/phone\n", timeout=120)
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    assert out.count("8 800 100-70-10") >= 2  # the last good knowledge keeps answering
    assert err.count("Правка базы знаний не принята") == 1
    assert "knowledge edit refused" not in err
    assert err.count("duplicate id 'account_hacked'") == 1
