"""Personal data through the whole bot: the citizen is told, nothing raw reaches the SQLite file or
the logs, knowledge may not ask for it, a citizen can be forgotten, and old data goes away."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from scenario import Chat, copy_knowledge, gosbot

from bot.check import check_dir
from bot.config import Settings
from bot.dialogue import Dialogue
from bot.retention import DAY, Retention, audit, forget
from bot.storage import MemoryStore, SqliteStore
from bot.storage.postgres import PostgresStore
from fakes.postgres import create_database, drop_database

# A conversation full of personal data (invented), and the values that must never be stored.
CONVERSATION = [
    "здравствуйте, я Лаврентьева Ольга Игоревна, дата рождения 17.09.1968",
    "паспорт 4617 902311, СНИЛС 158-620-347 19, ИНН 502913847260",
    "мой номер +7 917 406-22-81, почта olga.lavr68@example.ru",
    "живу г. Подольск, ул. Парковая, д. 14, кв. 52",
    "пароль от госуслуг: Romashka_1968! а код из смс 583920",
    "карта 2202 2063 1144 7788 срок 11/27 cvv 614, счёт 40817810255500012345",
    "полис ОМС 5098 7654 3210 9876, права 50 ТМ 481516",
    "/operator",
    "и ещё: свидетельство о рождении сына II-МЮ 402918, звонили с +7 495 555-01-02",
]
SECRETS = [
    "Лаврентьева",
    "17.09.1968",
    "4617",
    "902311",
    "158-620-347 19",
    "502913847260",
    "406-22-81",
    "olga.lavr68",
    "Парковая",
    "Romashka",
    "583920",
    "2202 2063",
    "7788",
    "11/27",
    "614",
    "40817810255500012345",
    "5098 7654",
    "481516",
    "402918",
]
# What staff need from the same conversation.
KEPT = ["+7 495 555-01-02"]


async def talk(dialogue: Dialogue, chat_id: str = "42") -> Chat:
    chat = Chat(dialogue, chat_id=chat_id, platform="telegram")
    for text in CONVERSATION:
        await chat.say(text)
    return chat


def file_text(path: Path) -> str:
    """Every byte of the database and its WAL, decoded as far as it goes."""
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return data.decode("utf-8", errors="ignore")


def contains(text: str, secret: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(secret)}(?![\w])", text) is not None


def dump(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(db.iterdump())


async def test_after_a_conversation_full_of_personal_data_the_database_and_logs_hold_none(
    dialogue, sqlite_store, caplog
):
    caplog.set_level(logging.DEBUG)
    chat = await talk(dialogue)
    number = (await sqlite_store.open_ticket_for("telegram", "42")).number
    await dialogue.desk.note(number, "гражданка продиктовала паспорт 4617 902311", "Ирина")
    await dialogue.desk.reply(number, "Ольга Игоревна, ваш СНИЛС 158-620-347 19 мы видим", "Ирина")
    await sqlite_store.close()  # everything on disk: the WAL checkpointed into the file
    dumped, raw = dump(sqlite_store.path), file_text(sqlite_store.path)
    assert "[паспорт скрыт]" in dumped
    assert "[ФИО скрыто]" in dumped
    for secret in SECRETS:
        assert not contains(dumped, secret), secret
        assert not contains(caplog.text, secret), secret
        # in the raw bytes a 3-digit value can occur by chance (page numbers, hex): longer ones cannot
        assert len(secret) < 5 or not contains(raw, secret), secret
    for kept in KEPT:
        assert kept in dumped
    assert chat.replies  # the conversation really ran


async def test_the_citizen_is_told_once_what_was_hidden_and_why(dialogue):
    chat = Chat(dialogue)
    await chat.say("мой СНИЛС 158-620-347 19 не находит")
    notice = chat.replies[0].text
    assert "СНИЛС" in notice
    assert "скрыл" in notice
    assert "МФЦ" in notice
    await chat.say("паспорт 4617 902311")
    assert "скрыл" not in chat.text  # once per session
    await chat.say("код из смс 583920")  # a secret: the fraud warning still comes once
    assert chat.replies[0].text == dialogue.knowledge.text("sensitive_warning")
    await chat.say("код из смс 583921")
    assert dialogue.knowledge.text("sensitive_warning") not in chat.text

    other = Chat(dialogue, chat_id="2")
    await other.say("я Лаврентьева Ольга Игоревна, живу г. Подольск, ул. Парковая, д. 14, кв. 52")
    assert other.replies[0].text.startswith("🔒 Я скрыл ФИО и адрес")
    plain = Chat(dialogue, chat_id="3")
    await plain.say("не приходит смс с кодом")
    assert "скрыл" not in plain.text


def test_check_refuses_an_answer_that_asks_for_a_code(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge")
    faq = directory / "faq.yaml"
    text = faq.read_text(encoding="utf-8")
    first = text.index("    answer: |\n") + len("    answer: |\n")
    faq.write_text(text[:first] + "      Пришлите сюда код из СМС, я проверю.\n" + text[first:], encoding="utf-8")
    line = text[:first].count("\n") + 1
    problems = check_dir(directory)
    assert [(p.file, p.line) for p in problems] == [("faq.yaml", line)]
    assert "код" in problems[0].message


def test_the_shipped_knowledge_never_asks_for_personal_data():
    from scenario import KNOWLEDGE

    assert check_dir(KNOWLEDGE) == []


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = await create_database(server)
        pg = PostgresStore(url)
        await pg.open()
        yield pg
        await pg.close()
        await drop_database(server, url)
        return
    s = SqliteStore(tmp_path / "gosbot.sqlite3")
    await s.open()
    yield s
    await s.close()


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_forget_erases_a_citizen_and_leaves_others(source, store):
    clock = FakeClock()
    dialogue = Dialogue(source, store, clock)
    await talk(dialogue, "42")
    await talk(dialogue, "43")
    mine = (await store.open_ticket_for("telegram", "42")).number
    await dialogue.desk.reply(mine, "Проверим", "Ирина")

    counts = await forget(store, "telegram", "42")

    assert counts["sessions"] == 1
    assert counts["transcript"] > 5
    assert counts["ticket_messages"] > 5
    assert counts["unanswered"] >= 1
    assert counts["tickets"] == 1
    assert counts["outbox"] >= 1
    assert await store.load_session("telegram", "42") is None
    assert await store.recent_transcript("telegram", "42", 100) == []
    assert await store.ticket_messages(mine) == []
    ticket = await store.get_ticket(mine)
    assert (ticket.number, ticket.status, ticket.chat_id, ticket.user_name) == (mine, "cancelled", "", "")
    assert await store.open_ticket_for("telegram", "42") is None
    # the other citizen is untouched
    assert await store.load_session("telegram", "43") is not None
    assert len(await store.recent_transcript("telegram", "43", 100)) > 5
    assert await forget(store, "telegram", "42") == dict.fromkeys(counts, 0)  # nothing left the second time


async def test_retention_deletes_only_what_is_older_than_the_period(source, store):
    clock = FakeClock()
    dialogue = Dialogue(source, store, clock)
    await talk(dialogue, "old")
    old = (await store.open_ticket_for("telegram", "old")).number
    await dialogue.desk.close(old, "Ирина")
    await talk(dialogue, "open")  # its ticket stays open however old it gets
    still_open = (await store.open_ticket_for("telegram", "open")).number
    clock.now += 60 * DAY
    await talk(dialogue, "recent")
    recent = (await store.open_ticket_for("telegram", "recent")).number
    await dialogue.desk.close(recent, "Ирина")

    retention = Retention(store, days=90, clock=clock)
    assert not any((await retention.purge_once()).values())  # day 60: nothing is 90 days old

    clock.now += 31 * DAY  # the first conversations are 91 days old, the recent one 31
    counts = await retention.purge_once()
    assert counts["ticket_messages"] > 5
    assert counts["unanswered"] >= 1
    assert await store.ticket_messages(old) == []
    assert (await store.get_ticket(old)).status == "closed"  # the ticket itself stays
    assert (await store.get_ticket(old)).user_name == ""
    assert (await store.get_ticket(recent)).user_name == "Тест"
    assert await store.ticket_messages(still_open) != []
    assert await store.ticket_messages(recent) != []
    assert await store.recent_transcript("telegram", "old", 100) == []
    assert await store.recent_transcript("telegram", "recent", 100) != []
    assert all(g.last_at >= clock.now - 90 * DAY for g in await store.unanswered(0, 100))


async def test_the_running_bot_purges_daily_until_stopped(source, sqlite_store):
    clock = FakeClock()
    days: list[float] = []
    stop = asyncio.Event()

    async def one_day_passes(seconds: float) -> None:
        days.append(seconds)
        clock.now += seconds
        if len(days) == 3:
            stop.set()
        await asyncio.sleep(0)

    dialogue = Dialogue(source, sqlite_store, clock)
    await talk(dialogue, "old")
    await dialogue.desk.close((await sqlite_store.open_ticket_for("telegram", "old")).number, "Ирина")
    clock.now += 89 * DAY
    await asyncio.wait_for(Retention(sqlite_store, 90, clock, one_day_passes).run(stop), timeout=5)
    assert days == [DAY, DAY, DAY]
    assert await sqlite_store.recent_transcript("telegram", "old", 100) == []


def test_retention_days_come_from_the_environment():
    assert Settings.from_env({}).retention_days == 90
    assert Settings.from_env({"GOSBOT_RETENTION_DAYS": "30"}).retention_days == 30


async def test_audit_finds_what_redaction_did_not_hide(tmp_path, dialogue, sqlite_store):
    await talk(dialogue)
    assert audit(sqlite_store.path) == []  # the bot's own records (cards, ids, JSON) raise no false alarm
    async with sqlite_store._lock:  # someone writes raw text past the bot
        await sqlite_store.db.execute(
            "INSERT INTO transcript (platform, chat_id, role, text, at) VALUES ('x', '1', 'citizen', ?, 0)",
            ("паспорт 4617 902311, пароль: Romashka_1968!",),
        )
        await sqlite_store.db.commit()
    findings = audit(sqlite_store.path)
    raw = [f for f in findings if f.table == "transcript" and f.column == "text"]
    assert {f.category for f in raw} == {"passport", "password"}
    assert all("902311" not in f.hint and "Romashka" not in f.hint for f in findings)


async def test_audit_does_not_read_platform_ids_and_bookkeeping_as_documents(sqlite_store):
    # A Telegram chat id that passes an INN checksum, a stream position that passes a card's: ids,
    # not what anyone wrote. The same digits in a transcript line are reported.
    async with sqlite_store._lock:
        await sqlite_store.db.execute(
            "INSERT INTO sessions (platform, chat_id, state, updated_at) VALUES ('telegram', '7707083893', '{}', 0)"
        )
        await sqlite_store.db.execute("INSERT INTO cursors (name, value) VALUES ('vk', '4276380012345679')")
        await sqlite_store.db.commit()
    assert audit(sqlite_store.path) == []
    async with sqlite_store._lock:
        await sqlite_store.db.execute(
            "INSERT INTO transcript (platform, chat_id, role, text, at) VALUES ('x', '1', 'citizen', ?, 0)",
            ("карта 4276380012345679",),
        )
        await sqlite_store.db.commit()
    assert [(f.table, f.category) for f in audit(sqlite_store.path)] == [("transcript", "card")]


async def test_forget_and_audit_from_the_command_line(tmp_path, source):
    db = tmp_path / "gosbot.sqlite3"
    store = SqliteStore(db)
    await store.open()
    await talk(Dialogue(source, store), "42")
    await store.close()
    env = {"GOSBOT_DB": str(db), "GOSBOT_KNOWLEDGE": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}

    done = await asyncio.to_thread(gosbot, "forget", "--platform", "telegram", "--chat", "42", env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\d+\s+transcript", done.stdout)
    assert "forgotten" in done.stdout
    again = await asyncio.to_thread(gosbot, "forget", "--platform", "telegram", "--chat", "42", env=env)
    assert "nothing stored" in again.stdout

    clean = await asyncio.to_thread(gosbot, "audit", str(db), env=env)
    assert clean.returncode == 0, clean.stdout
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT INTO unanswered (text, normalized, outcome, at) VALUES ('мой СНИЛС 158-620-347 19', '', '', 0)"
        )
    dirty = await asyncio.to_thread(gosbot, "audit", str(db), env=env)
    assert dirty.returncode == 1
    assert re.search(r"^unanswered\trow \d+\ttext\tsnils\t", dirty.stdout, re.MULTILINE)
