"""A number is one signal among others; a given-away code is always urgent; pleas and "Начать" read as a person would."""

from __future__ import annotations

import pytest
from scenario import Chat

from bot.fraud import gave_secret, without_own_numbers

HOTLINE = "8 800 100-70-10"


@pytest.mark.parametrize(
    "text",
    [
        "мой номер +7 916 123-45-67, на него не приходит смс",
        "на мой телефон 89161234567 не приходит код подтверждения",
        "не приходит смс на номер 8 903 555 12 34 это мой номер",
    ],
)
async def test_the_citizens_own_number_is_never_called_fraud(dialogue, shipped, text):
    _, matcher = shipped
    decision = matcher.decide(text)
    assert decision.outcome != "number_check"
    assert decision.topic == "code_not_arriving"
    chat = Chat(dialogue)
    await chat.say(text)
    assert "мошенник" not in chat.text.lower()
    assert "не номер Госуслуг" not in chat.text


@pytest.mark.parametrize("caller", [HOTLINE, "8 800 555-35-35", "+7 495 123-45-67"])
async def test_a_code_given_away_gets_act_now_steps_whatever_number_called(dialogue, shipped, caller):
    text = f"мне позвонили с {caller} и попросили назвать код, я назвала"
    chat = Chat(dialogue)
    await chat.say(text)
    assert "смените пароль" in chat.replies[0].text
    assert "официальный номер" not in chat.text  # no reassurance: the real hotline never asks for codes
    fake = caller != HOTLINE
    assert ("не номер Госуслуг" in chat.text) is fake


@pytest.mark.parametrize("text", ["8 (800) 100-70-10", "88005553535", "+7 495 123-45-67?"])
async def test_a_bare_number_is_checked(shipped, text):
    _, matcher = shipped
    assert matcher.decide(text).outcome == "number_check"


async def test_a_number_in_a_message_about_something_else_does_not_hijack_it(shipped):
    _, matcher = shipped
    decision = matcher.decide("заявление 1234567890 уже месяц не меняет статус")
    assert decision.topic == "status_not_changing"
    assert decision.outcome in ("answer", "flow")


@pytest.mark.parametrize(
    ("text", "gave"),
    [
        ("продиктовала им код из смс", True),
        ("код я уже назвала", True),
        ("меня попросили продиктовать код и я продиктовал", True),
        ("я не сообщал код", False),
        ("попросили назвать код но я не назвала", False),
        ("сказали что код придёт через минуту", False),
        ("код не приходит", False),
    ],
)
def test_gave_secret(text, gave):
    assert gave_secret(text) is gave


def test_own_numbers_are_left_out_of_the_check():
    assert "916" not in without_own_numbers("мой номер +7 916 123-45-67, на него не приходит смс")
    assert "495" in without_own_numbers("звонили с +7 495 123-45-67, это госуслуги?")


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("помогите", "plea"),
        ("помогите пожалуйста", "plea"),
        ("спасибо, помогло", "thanks"),
        ("Начать", "hello"),
        ("Старт", "hello"),
        ("start", "hello"),
        ("👍", "thanks"),
        ("😡😡😡", "upset"),
        ("привет, ты бот?", "bot"),
        ("ок", "ack"),
    ],
)
async def test_pleas_reactions_and_start_read_as_a_person_would(dialogue, shipped, text, intent):
    _, matcher = shipped
    decision = matcher.decide(text)
    assert (decision.outcome, decision.smalltalk) == ("smalltalk", intent)
    chat = Chat(dialogue)
    await chat.say(text)
    reply = next(i.reply for i in dialogue.knowledge.smalltalk if i.id == intent)
    assert chat.text == reply
    if intent == "plea":
        assert "что случилось" in chat.text
