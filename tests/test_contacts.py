"""What citizens are told about support contacts, numbers they ask about, and the shape of the FAQ."""

from __future__ import annotations

import re

import pytest
import yaml
from scenario import KNOWLEDGE, Chat

from bot import phones
from bot.knowledge import MAX_ANSWER, MIN_PHRASINGS
from bot.messages import Reply

HOTLINE = "8 800 100-70-10"
SHORT = "115"
OFFICIAL = (HOTLINE, SHORT)

FAKE_NUMBERS = [
    "8 800 555-35-35",
    "+7 800 555-33-33",
    "+7 495 777-77-77",
    "+7 495 123-45-67",
    "+7 800 200-00-00",
    "8 800 555-0-555",
    "8 800 555-66-66",
    "8 800 100-70-70",
    "8 800 100-00-00",
    "8 800 555-44-44",
    "8 800 777-22-22",
    "+7 707 777-77-77",
]


def unverified_values(k) -> list[str]:
    return [c.value for c in k.contacts.values() if not c.verified]


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def leaks(text: str, k) -> list[str]:
    """Unverified contacts shown in `text`, in any spelling of their digits."""
    found = []
    for value in unverified_values(k):
        number = phones.canonical(value)
        if value.lower() in text.lower() or (len(number) == 11 and number[1:] in digits(text)):
            found.append(value)
    return found


# -- contacts ----------------------------------------------------------------------------------


def test_contacts_file_keeps_the_unverified_rows_for_editors(shipped):
    k, _ = shipped
    values = unverified_values(k)
    assert "+7 495 727-47-47" in values
    assert "support@gosuslugi.ru" in values
    verified = {c.value for c in k.contacts.values() if c.verified}
    assert {HOTLINE, SHORT, "gosuslugi.ru", "0919", "gosuslugi"} <= verified


@pytest.mark.parametrize("question", ["/phone", "телефон поддержки", "как позвонить оператору"])
async def test_contacts_answer_names_the_official_channels(dialogue, question):
    chat = Chat(dialogue)
    await chat.say(question)
    text = chat.text
    for expected in (HOTLINE, SHORT, "gosuslugi.ru", "0919", "gosuslugi"):
        assert expected in text, f"{expected!r} missing from the answer to {question!r}:\n{text}"
    assert "никогда не спрашивают" in text
    assert leaks(text, dialogue.knowledge) == []


def test_no_rendered_text_of_the_knowledge_shows_an_unverified_contact(shipped):
    k, _ = shipped
    texts = {f"faq {e.id}": e.answer for e in k.faq.values()}
    texts |= {f"flow {f.id}/{s.id}": s.text for f in k.flows.values() for s in f.steps.values()}
    texts |= {f"message {key}": value for key, value in k.messages.items()}
    texts |= {f"smalltalk {i.id}": i.reply for i in k.smalltalk}
    assert len(texts) > 100
    shown = {where: leaks(text, k) for where, text in texts.items() if leaks(text, k)}
    assert shown == {}


async def test_no_reply_shows_an_unverified_contact(dialogue):
    questions = [
        "/start",
        "/help",
        "/phone",
        "номер для звонка из-за границы",
        "я за границей как связаться с поддержкой",
        "email поддержки госуслуг",
        "на какую почту написать в госуслуги",
        "поддержка госуслуг в телеграме",
        "звонят с +7 495 727-47-47, это госуслуги?",
        "абракадабра",
    ]
    chat = Chat(dialogue)
    for question in questions:
        await chat.say(question)
        assert chat.replies
        for reply in chat.replies:
            # The citizen's own number may be repeated back; the bot must not offer any other.
            shown = [v for v in leaks(reply.text, dialogue.knowledge) if v not in question]
            assert shown == [], f"{question!r} → {reply.text!r}"


# -- is this number official? ------------------------------------------------------------------


def assert_not_official(reply: Reply, k) -> None:
    assert "не номер Госуслуг" in reply.text
    for number in OFFICIAL:
        assert number in reply.text
    assert any(b.payload == "f:fraud" for b in reply.buttons) or "fraud" not in k.flows


@pytest.mark.parametrize("number", FAKE_NUMBERS)
async def test_a_fake_number_is_called_not_gosuslugi(dialogue, number):
    chat = Chat(dialogue)
    await chat.say(f"Мне звонили с номера {number}, говорят из службы поддержки Госуслуг. Это правда?")
    assert len(chat.replies) == 1
    reply = chat.replies[0]
    assert phones.pretty(phones.canonical(number)) in reply.text
    assert_not_official(reply, dialogue.knowledge)


@pytest.mark.parametrize("number", FAKE_NUMBERS)
async def test_a_bare_fake_number_is_checked_too(dialogue, number):
    chat = Chat(dialogue)
    await chat.say(number)
    assert_not_official(chat.replies[0], dialogue.knowledge)


@pytest.mark.parametrize("short", ["102", "122"])
async def test_a_short_number_posing_as_support_is_not_gosuslugi(dialogue, short):
    chat = Chat(dialogue)
    await chat.say(f"звонили с номера {short}, говорят из госуслуг")
    assert len(chat.replies) == 1
    assert short in chat.replies[0].text
    assert_not_official(chat.replies[0], dialogue.knowledge)


@pytest.mark.parametrize(
    "spelling", ["+7 800 100 70 10", "88001007010", "8(800)100-70-10", "8-800-100-70-10", "8 800 100-70-10", "115"]
)
async def test_the_official_numbers_are_confirmed(dialogue, spelling):
    chat = Chat(dialogue)
    await chat.say(f"Мне звонили с номера {spelling}, это правда Госуслуги?")
    assert len(chat.replies) == 1
    text = chat.text
    assert "не номер Госуслуг" not in text
    assert "официальный номер" in text
    expected = SHORT if spelling == SHORT else HOTLINE
    assert expected in text
    assert "никогда не спрашивают" in text


async def test_two_numbers_in_one_message_get_one_verdict_each(dialogue):
    chat = Chat(dialogue)
    await chat.say("Сначала звонили с 8 800 100-70-10, потом с 8 800 555-35-35. Кто из них настоящий?")
    assert len(chat.replies) == 2
    assert "официальный номер" in chat.replies[0].text
    assert_not_official(chat.replies[1], dialogue.knowledge)


# -- the shape of the FAQ ----------------------------------------------------------------------


def test_faq_has_enough_entries_covering_every_topic(shipped):
    k, _ = shipped
    assert len(k.faq) >= 60
    covered = {e.topic for e in k.faq.values()}
    expected = set(k.topics) - {"greeting_smalltalk", "other_out_of_scope"}
    assert expected - covered == set()


def test_every_entry_has_enough_phrasings_and_a_short_answer(shipped):
    k, _ = shipped
    few = {e.id: len(set(e.phrasings)) for e in [*k.faq.values(), *k.flows.values()] if len(set(e.phrasings)) < 6}
    assert few == {}
    assert MIN_PHRASINGS >= 6
    long = {e.id: len(e.answer) for e in k.faq.values() if len(e.answer) > 700}
    assert long == {}
    assert MAX_ANSWER <= 700


@pytest.mark.parametrize("name", ["faq.yaml", "flows.yaml"])
def test_no_literal_phone_numbers_in_answers_and_flows(shipped, name):
    k, _ = shipped
    raw = (KNOWLEDGE / name).read_text(encoding="utf-8")
    full = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if phones.looks_like_phone(line)]
    assert full == []
    # Short numbers and senders also come from contacts.yaml by placeholder in what the bot says.
    doc = yaml.safe_load(raw)
    said = [e["answer"] for e in doc.get("entries", [])]
    said += [s["text"] for f in doc.get("flows", []) for s in f["steps"]]
    contact_values = [c.value for c in k.contacts.values() if c.kind in ("phone", "short_number", "sms_sender")]
    literal = [(v, t[:60]) for t in said for v in contact_values if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", t)]
    assert literal == []


# -- small talk --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["привет", "спасибо", "ты бот?", "Добрый день!", "спасибо, всё получилось"])
async def test_small_talk_gets_a_short_friendly_reply(dialogue, shipped, text):
    _, matcher = shipped
    assert matcher.decide(text).outcome == "smalltalk"
    chat = Chat(dialogue)
    await chat.say(text)
    assert len(chat.replies) == 1
    assert len(chat.text) <= 250
    assert chat.text in {i.reply for i in dialogue.knowledge.smalltalk}


async def test_a_greeting_with_a_problem_is_answered_as_the_problem(dialogue, shipped):
    _, matcher = shipped
    decision = matcher.decide("здравствуйте, не приходит смс")
    assert decision.outcome != "smalltalk"
    assert decision.topic == "code_not_arriving"
    chat = Chat(dialogue)
    await chat.say("здравствуйте, не приходит смс")
    assert chat.text not in {i.reply for i in dialogue.knowledge.smalltalk}
    session = await dialogue.store.load_session("test", "1")
    assert session.last_topic == "code_not_arriving"
