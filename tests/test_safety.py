"""Personal data: what is redacted, what must survive, and that nothing raw is ever stored."""

from __future__ import annotations

import sqlite3

import pytest
from scenario import Chat

from bot.safety import MARKS, inn_valid, luhn_valid, redact, snils_valid


def valid_snils(body: str = "112233445") -> str:
    check = next(f"{n:02d}" for n in range(100) if snils_valid(body + f"{n:02d}"))
    digits = body + check
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"


def invalid_snils(body: str = "112233445") -> str:
    check = next(f"{n:02d}" for n in range(100) if not snils_valid(body + f"{n:02d}"))
    digits = body + check
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"


def valid_inn(body: str = "5001007322") -> str:
    return next(body + f"{n:02d}" for n in range(100) if inn_valid(body + f"{n:02d}"))


def invalid_inn(body: str = "5001007322") -> str:
    return next(body + f"{n:02d}" for n in range(100) if not inn_valid(body + f"{n:02d}"))


def card(prefix: str = "427600001234567", valid: bool = True) -> str:
    digits = next(prefix + str(n) for n in range(10) if luhn_valid(prefix + str(n)) == valid)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


SNILS, INN = valid_snils(), valid_inn()

SECRETS = [
    ("код 123456", "123456", "code"),
    ("пришла смс 4821", "4821", "code"),
    ("1234 — это код", "1234", "code"),
    ("Мне пришёл код из СМС: 5 5 1 7 2 9, что с ним делать?", "5 5 1 7 2 9", "code"),
    ("пароль: Qwerty123!", "Qwerty123!", "password"),
    ("мой пароль Zx81kqpL, не могу войти", "Zx81kqpL", "password"),
    ("паспорт 45 08 123456", "45 08 123456", "passport"),
    (f"мой СНИЛС {SNILS}", SNILS, "snils"),
    (f"ИНН {INN}", INN, "inn"),
    (f"ИНН у меня {INN} правильно?", INN, "inn"),
    ("карта 4111 1111 1111 1111 не проходит оплата", "4111 1111 1111 1111", "card"),
    (f"списали с карты {card()}", card(), "card"),
    # next to its label a number is hidden whatever its checksum
    (f"СНИЛС {invalid_snils()} не принимает", invalid_snils(), "snils"),
    (f"мой ИНН {invalid_inn()} не проходит проверку", invalid_inn(), "inn"),
    (f"карта {card(valid=False)} не подходит", card(valid=False), "card"),
]

NEAR_MISSES = [
    "подал заявление 12.03.2024, статус не меняется",
    "пришло уведомление в 14:35, а потом 18:05",
    "заявление 1234567890 висит неделю",
    "номер заявления № 3829104756",
    f"номер {invalid_snils()} не принимает",
    f"прислали {invalid_inn()} в письме",
    "звонят с +7 916 123-45-67, это госуслуги?",
    "мне звонили с 8 800 555-35-35",
    "оплатил госпошлину 3500 рублей",
    "в 2024 году подавал на паспорт",
]


@pytest.mark.parametrize(("text", "secret", "kind"), SECRETS)
def test_secrets_are_redacted(text, secret, kind):
    red = redact(text)
    assert secret not in red.text
    assert secret not in red.for_matching
    assert MARKS[kind] in red.text
    assert kind in red.found


def test_test_data_is_checksum_valid():
    digits = "".join(ch for ch in SNILS if ch.isdigit())
    assert snils_valid(digits)
    assert inn_valid(INN)
    assert len(INN) == 12
    assert luhn_valid("4111111111111111")
    assert not snils_valid("".join(ch for ch in invalid_snils() if ch.isdigit()))


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_survive(text):
    red = redact(text)
    assert red.text == text
    assert red.found == frozenset()


async def test_the_warning_is_shown_once_per_session(chat, dialogue):
    warning = dialogue.knowledge.text("sensitive_warning")
    assert "никому не отправляйте пароли и коды" in warning
    await chat.say("не приходит смс, вот код 123456")
    assert chat.replies[0].text == warning
    await chat.say("пароль: Qwerty123!")
    assert warning not in chat.text
    other = Chat(dialogue, chat_id="2")
    await other.say("код 4821")
    assert other.replies[0].text == warning
    await other.say(f"мой СНИЛС {SNILS}")  # not a secret fraudsters ask for: no warning
    assert warning not in other.text


def raw_rows(path) -> list[str]:
    with sqlite3.connect(path) as db:
        rows = []
        for table, column in [
            ("transcript", "text"),
            ("ticket_messages", "text"),
            ("unanswered", "text"),
            ("unanswered", "normalized"),
            ("sessions", "state"),
            ("outbox", "reply"),
        ]:
            rows += [r[0] for r in db.execute(f"SELECT {column} FROM {table}")]  # noqa: S608 - fixed names
        return rows


async def test_nothing_unredacted_is_stored(chat, dialogue, sqlite_store):
    for text, _, _ in SECRETS:
        await chat.say(text)
    await chat.say("/operator")
    for text, _, _ in SECRETS:
        await chat.say(text)  # now into the open ticket
    number = (await sqlite_store.open_ticket_for("test", "1")).number
    await dialogue.desk.reply(number, "Не сообщайте никому пароль: Qwerty123!", "Ольга")
    await dialogue.desk.note(number, f"гражданин прислал СНИЛС {SNILS}", "Ольга")

    rows = raw_rows(sqlite_store.path)
    assert len(rows) > 2 * len(SECRETS)
    for _, secret, _ in SECRETS:
        leaked = [r for r in rows if secret in r]
        assert leaked == [], f"{secret!r} stored: {leaked[:2]}"
    ticket_texts = [m.text for m in await sqlite_store.ticket_messages(number)]
    assert any(MARKS["password"] in t for t in ticket_texts)
    assert any(MARKS["card"] in t for t in ticket_texts)


async def test_near_misses_reach_the_ticket_intact(chat, sqlite_store):
    await chat.say("/operator")
    for text in NEAR_MISSES:
        await chat.say(text)
    number = (await sqlite_store.open_ticket_for("test", "1")).number
    stored = [m.text for m in await sqlite_store.ticket_messages(number) if m.role == "citizen"]
    assert stored[-len(NEAR_MISSES) :] == NEAR_MISSES
