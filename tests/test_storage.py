"""One contract, every store: the same cases against MemoryStore, SqliteStore and PostgresStore
(aiogram's storage tests). PostgreSQL runs on a real server the session starts (conftest)."""

from __future__ import annotations

import sqlite3

import pytest

from bot.messages import Button, Reply
from bot.records import OutboxItem, Session, Ticket, TicketMessage
from bot.storage import SqliteStore
from bot.storage.base import NEW_TICKET, Store, TicketWork, Turn
from bot.storage.postgres import PostgresStore
from bot.storage.sqlite import MIGRATIONS

contract = pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"], indirect=True)


def ticket(chat_id: str = "c1", *, platform: str = "test", due_at: float = 2000.0, **fields: object) -> Ticket:
    values: dict[str, object] = {
        "number": 0,
        "platform": platform,
        "chat_id": chat_id,
        "topic": "code_not_arriving",
        "priority": "normal",
        "status": "open",
        "created_at": 1000.0,
        "due_at": due_at,
    }
    values.update(fields)
    return Ticket(**values)  # type: ignore[arg-type]


# -- conversations ---------------------------------------------------------------------------------


@contract
async def test_session_roundtrip(store):
    assert await store.load_session("test", "c1") is None
    session = Session(
        "test",
        "c1",
        flow_id="code_not_arriving",
        step_id="sms_check",
        history=["where"],
        steps_tried=["code_not_arriving/where"],
        pending_text="забыл пароль",
        warned=True,
        last_topic="code_not_arriving",
        last_candidates=[{"id": "x", "topic": "t", "score": 71.5}],
        user_id="u1",
        user_name="Анна",
    )
    await store.commit_turn(Turn(session=session, at=1.0))
    loaded = await store.load_session("test", "c1")
    assert loaded == session
    loaded.history.append("mutated")  # a loaded session is a copy, not the stored one
    assert (await store.load_session("test", "c1")).history == ["where"]
    assert await store.load_session("other", "c1") is None


@contract
async def test_seen_update_after_commit_turn(store):
    assert not await store.seen_update("test", "u-1")
    await store.commit_turn(Turn(session=Session("test", "c1"), update_id="u-1", at=1.0))
    assert await store.seen_update("test", "u-1")
    assert not await store.seen_update("vk", "u-1")  # update ids are per platform
    assert not await store.seen_update("test", "u-2")


@contract
async def test_begin_turn_reads_the_mark_the_session_and_the_open_ticket(store):
    assert await store.begin_turn("vk", "c1", "u-1") == (False, None, None)
    await store.commit_turn(Turn(session=Session("vk", "c1", last_topic="login"), update_id="u-1", at=1.0))
    assert await store.begin_turn("vk", "c1", "u-1") == (True, None, None)  # handled already: nothing more

    def ticket(chat: str, status: str) -> Ticket:
        return Ticket(0, "vk", chat, "other_out_of_scope", "normal", status, created_at=1.0, due_at=61.0)

    await store.create_ticket(ticket("c1", "closed"), [])
    await store.create_ticket(ticket("c2", "open"), [])
    start = await store.begin_turn("vk", "c1", "u-2")
    assert not start.seen
    assert start.session is not None
    assert start.session.last_topic == "login"
    assert start.ticket is None  # closed, and another chat's open ticket is not this chat's
    open_one = await store.create_ticket(ticket("c1", "taken"), [])
    start = await store.begin_turn("vk", "c1", None)
    assert start.ticket == await store.open_ticket_for("vk", "c1")
    assert start.ticket is not None
    assert start.ticket.number == open_one.number


@contract
async def test_mark_update_without_a_turn(store):
    await store.mark_update("telegram", "77", at=1.0)
    await store.mark_update("telegram", "77", at=2.0)  # again: no error
    assert await store.seen_update("telegram", "77")
    assert not await store.seen_update("vk", "77")


@contract
async def test_tickets_since_are_the_chats_recent_ones(store):
    def ticket(chat: str, at: float) -> Ticket:
        return Ticket(0, "vk", chat, "other_out_of_scope", "normal", "open", created_at=at, due_at=at + 60)

    first = await store.create_ticket(ticket("c1", 100.0), [])
    second = await store.create_ticket(ticket("c1", 200.0), [])
    await store.create_ticket(ticket("c2", 200.0), [])
    assert [t.number for t in await store.tickets_since("vk", "c1", 100.0)] == [first.number, second.number]
    assert [t.number for t in await store.tickets_since("vk", "c1", 150.0)] == [second.number]
    assert await store.tickets_since("telegram", "c1", 0.0) == []


@contract
async def test_transcript_keeps_order_and_limit(store):
    for n in range(5):
        await store.commit_turn(
            Turn(session=Session("test", "c1"), transcript=(("citizen", f"q{n}"), ("bot", f"a{n}")), at=float(n))
        )
    await store.commit_turn(Turn(session=Session("test", "c2"), transcript=(("citizen", "other"),), at=9.0))
    assert await store.recent_transcript("test", "c1", 3) == [("bot", "a3"), ("citizen", "q4"), ("bot", "a4")]
    assert len(await store.recent_transcript("test", "c1", 100)) == 10
    assert await store.recent_transcript("test", "c2", 5) == [("citizen", "other")]


# -- tickets ------------------------------------------------------------------------------------


@contract
async def test_ticket_create_get_and_open_for(store):
    first = await store.create_ticket(
        ticket("c1", steps_tried=["f/s"], candidates=[{"id": "a", "score": 50.0}]),
        [TicketMessage(0, "citizen", "не приходит смс", 1000.0), TicketMessage(0, "bot", "Давайте найдём код", 1000.0)],
    )
    second = await store.create_ticket(ticket("c2"), [])
    assert first.number >= 1
    assert second.number > first.number
    got = await store.get_ticket(first.number)
    assert got.chat_id == "c1"
    assert got.status == "open"
    assert got.steps_tried == ["f/s"]
    assert got.candidates == [{"id": "a", "score": 50.0}]
    assert await store.get_ticket(99999) is None
    assert (await store.open_ticket_for("test", "c1")).number == first.number
    assert await store.open_ticket_for("test", "c3") is None
    assert await store.open_ticket_for("vk", "c1") is None
    messages = await store.ticket_messages(first.number)
    assert [(m.ticket, m.role, m.text) for m in messages] == [
        (first.number, "citizen", "не приходит смс"),
        (first.number, "bot", "Давайте найдём код"),
    ]


@contract
async def test_ticket_update_and_list(store):
    a = await store.create_ticket(ticket("c1", due_at=1500.0), [])
    b = await store.create_ticket(ticket("c2", due_at=5000.0, priority="urgent"), [])
    c = await store.create_ticket(ticket("c3", due_at=1200.0), [])
    c.status, c.closed_at, c.rating, c.operator = "closed", 1300.0, 5, "Ольга"
    await store.update_ticket(c)
    a.status, a.operator, a.desk_ref = "taken", "Ольга", "thread-7"
    await store.update_ticket(a)

    got = await store.get_ticket(c.number)
    assert (got.status, got.closed_at, got.rating, got.operator) == ("closed", 1300.0, 5, "Ольга")
    assert await store.open_ticket_for("test", "c3") is None
    assert (await store.open_ticket_for("test", "c1")).status == "taken"  # taken is still open
    assert [t.number for t in await store.list_tickets()] == [a.number, b.number, c.number]
    assert [t.number for t in await store.list_tickets("closed")] == [c.number]
    assert [t.number for t in await store.list_tickets("open")] == [b.number]
    # Overdue: open or taken, past due; closed ones never are.
    assert [t.number for t in await store.list_tickets(overdue_at=1600.0)] == [a.number]
    assert [t.number for t in await store.list_tickets(overdue_at=6000.0)] == [a.number, b.number]
    assert (await store.find_ticket_by_desk_ref("thread-7")).number == a.number
    assert await store.find_ticket_by_desk_ref("nope") is None


@contract
async def test_ticket_messages_append_in_order(store):
    t = await store.create_ticket(ticket(), [TicketMessage(0, "citizen", "первое", 1.0)])
    await store.add_ticket_message(TicketMessage(t.number, "operator", "ответ", 2.0, "Ольга"))
    await store.add_ticket_message(TicketMessage(t.number, "note", "заметка", 3.0, "Ольга"))
    messages = await store.ticket_messages(t.number)
    assert [(m.role, m.text, m.author) for m in messages] == [
        ("citizen", "первое", ""),
        ("operator", "ответ", "Ольга"),
        ("note", "заметка", "Ольга"),
    ]
    assert await store.ticket_messages(99999) == []


# -- outbox -------------------------------------------------------------------------------------


@contract
async def test_outbox_lifecycle(store):
    reply = Reply("Ответ сотрудника", (Button("⭐", "r:1:1"), Button("⭐⭐", "r:1:2")))
    first = await store.enqueue(OutboxItem("telegram", "c1", reply, ticket=1, created_at=1.0))
    second = await store.enqueue(OutboxItem("vk", "c2", Reply("vk"), created_at=1.0))
    third = await store.enqueue(OutboxItem("desk", "", Reply("card"), ticket=1, event="opened", created_at=1.0))
    later = await store.enqueue(OutboxItem("telegram", "c3", Reply("later"), next_at=500.0, created_at=1.0))
    assert len({first, second, third, later}) == 4

    due = await store.due(("telegram",), now=100.0)
    assert [i.id for i in due] == [first]
    assert due[0].reply == reply
    assert due[0].ticket == 1
    assert due[0].chat_id == "c1"
    assert [i.id for i in await store.due(("telegram", "vk"), now=1000.0)] == [first, second, later]
    assert (await store.due(("desk",), now=0.0))[0].event == "opened"
    assert await store.pending_count() == 4
    assert await store.pending_count("telegram") == 2

    await store.mark_sent(first)
    await store.retry_later(second, next_at=300.0, error="429 retry_after")
    await store.give_up(third, error="chat not found")
    assert await store.due(("vk",), now=299.0) == []
    retried = await store.due(("vk",), now=300.0)
    assert retried[0].attempts == 1
    assert retried[0].error == "429 retry_after"
    assert await store.due(("desk",), now=1e9) == []
    assert [i.id for i in await store.due(("telegram",), now=1e9)] == [later]
    assert await store.pending_count() == 2
    assert await store.pending_count("desk") == 0


@contract
async def test_outbox_due_respects_limit(store):
    for n in range(5):
        await store.enqueue(OutboxItem("vk", str(n), Reply(str(n)), created_at=float(n)))
    assert [i.reply.text for i in await store.due(("vk",), now=1.0, limit=2)] == ["0", "1"]


@contract
async def test_commit_turn_enqueues_its_outbox(store):
    item = OutboxItem("telegram", "c1", Reply("из хода"), created_at=1.0)
    await store.commit_turn(Turn(session=Session("telegram", "c1"), outbox=(item,), at=1.0))
    assert [i.reply.text for i in await store.due(("telegram",), now=2.0)] == ["из хода"]


def opening_turn(chat_id: str = "c1", update_id: str = "u1") -> Turn:
    """A citizen's turn that opens a ticket: the ticket, its first lines, its desk card and the
    citizen's confirmation, all saying NEW_TICKET until the store gives the ticket its number."""
    card = OutboxItem("desk", "", Reply(f"Обращение № {NEW_TICKET}"), ticket=0, event="opened", created_at=1.0)
    confirmation = OutboxItem("telegram", chat_id, Reply(f"Создано обращение № {NEW_TICKET}"), created_at=1.0)
    return Turn(
        session=Session("telegram", chat_id),
        update_id=update_id,
        transcript=(("citizen", "/operator"), ("bot", f"Создано обращение № {NEW_TICKET}")),
        at=1.0,
        outbox=(confirmation,),
        tickets=TicketWork(
            new=ticket(chat_id, platform="telegram"),
            messages=[TicketMessage(0, "citizen", "/operator", 1.0)],
            outbox=[card],
        ),
    )


@contract
async def test_commit_turn_opens_a_ticket_with_its_desk_card_and_confirmation(store):
    number = await store.commit_turn(opening_turn())
    assert number is not None
    assert number >= 1
    assert (await store.open_ticket_for("telegram", "c1")).number == number
    assert [(m.ticket, m.text) for m in await store.ticket_messages(number)] == [(number, "/operator")]
    [card] = await store.due(("desk",), now=2.0)
    assert (card.ticket, card.event, card.reply.text) == (number, "opened", f"Обращение № {number}")
    [confirmation] = await store.due(("telegram",), now=2.0)
    assert confirmation.reply.text == f"Создано обращение № {number}"
    assert await store.recent_transcript("telegram", "c1", 5) == [
        ("citizen", "/operator"),
        ("bot", f"Создано обращение № {number}"),
    ]
    assert await store.seen_update("telegram", "u1")
    assert await store.commit_turn(opening_turn("c2", "u2")) == number + 1
    assert await store.commit_turn(Turn(session=Session("telegram", "c3"), at=1.0)) is None


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_a_turn_that_fails_to_commit_leaves_no_ticket_and_no_mark(store):
    """A turn's write fails half-way (here: a message of a ticket that does not exist): the new
    ticket, its card, the confirmation and the update's mark all stay out, so the redelivered
    update opens the ticket once."""
    turn = opening_turn()
    assert turn.tickets is not None
    turn.tickets.messages.append(TicketMessage(99999, "citizen", "нет такого обращения", 1.0))
    with pytest.raises(store.failures):
        await store.commit_turn(turn)
    assert await store.open_ticket_for("telegram", "c1") is None
    assert await store.pending_count() == 0
    assert not await store.seen_update("telegram", "u1")
    assert await store.recent_transcript("telegram", "c1", 5) == []
    number = await store.commit_turn(opening_turn())
    assert [t.number for t in await store.list_tickets()] == [number]


def operator_reply(number: int, text: str = "Проверьте папку «Спам»") -> TicketWork:
    t = ticket("c1", platform="telegram", number=number, status="taken", operator="Ольга")
    return TicketWork(
        updates=[t],
        messages=[TicketMessage(number, "operator", text, 2.0, "Ольга")],
        outbox=[OutboxItem("telegram", "c1", Reply(text), ticket=number, created_at=2.0)],
    )


@contract
async def test_a_staff_update_is_applied_once(store):
    number = await store.commit_turn(opening_turn())
    assert await store.commit_tickets(operator_reply(number), ("telegram", "staff-1"), at=2.0)
    assert await store.seen_update("telegram", "staff-1")
    # Redelivered: the mark is there, nothing is applied again.
    assert not await store.commit_tickets(operator_reply(number, "второй раз"), ("telegram", "staff-1"), at=3.0)
    assert [m.text for m in await store.ticket_messages(number) if m.role == "operator"] == ["Проверьте папку «Спам»"]
    texts = [i.reply.text for i in await store.due(("telegram",), now=5.0)]
    assert texts == [f"Создано обращение № {number}", "Проверьте папку «Спам»"]
    got = await store.get_ticket(number)
    assert (got.status, got.operator) == ("taken", "Ольга")
    # Without an update (the command line) it is simply applied.
    assert await store.commit_tickets(TicketWork(messages=[TicketMessage(number, "note", "заметка", 4.0)]))
    assert [m.role for m in await store.ticket_messages(number)][-1] == "note"
    with pytest.raises(ValueError, match="only with a citizen's turn"):
        await store.commit_tickets(TicketWork(new=ticket()))


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_a_staff_update_that_fails_to_commit_leaves_no_mark(store):
    number = await store.commit_turn(opening_turn())
    broken = operator_reply(number)
    broken.messages.append(TicketMessage(99999, "operator", "нет такого обращения", 2.0))
    with pytest.raises(store.failures):
        await store.commit_tickets(broken, ("telegram", "staff-1"), at=2.0)
    assert not await store.seen_update("telegram", "staff-1")  # so the redelivered update acts
    assert [m.role for m in await store.ticket_messages(number)] == ["citizen"]
    assert await store.pending_count("telegram") == 1  # the confirmation only
    assert await store.commit_tickets(operator_reply(number), ("telegram", "staff-1"), at=3.0)
    assert await store.pending_count("telegram") == 2


async def _twice_at_once(a: Store, b: Store, number: int, updates: int) -> None:
    """Two processes get the same staff updates at the same moment: each update acts once."""
    import asyncio

    for n in range(updates):
        update = ("telegram", f"staff-{n}")
        results = await asyncio.gather(
            a.commit_tickets(operator_reply(number, f"ответ {n}"), update, at=2.0),
            b.commit_tickets(operator_reply(number, f"ответ {n}"), update, at=2.0),
        )
        assert sorted(results) == [False, True]
    texts = [i.reply.text for i in await a.due(("telegram",), now=5.0, limit=1000)]
    assert texts[1:] == [f"ответ {n}" for n in range(updates)]
    assert len([m for m in await a.ticket_messages(number) if m.role == "operator"]) == updates


async def _acts_once_across(a: Store, b: Store) -> None:
    """Two stores on one database (two processes), the same staff updates to both at once."""
    await a.open()
    await b.open()
    try:
        number = await a.commit_turn(opening_turn())
        assert number is not None
        await _twice_at_once(a, b, number, 30)
    finally:
        await a.close()
        await b.close()


async def test_postgres_a_staff_update_acts_once_across_processes(postgres_url):
    await _acts_once_across(PostgresStore(postgres_url), PostgresStore(postgres_url))


async def test_sqlite_a_staff_update_acts_once_across_processes(tmp_path):
    await _acts_once_across(SqliteStore(tmp_path / "shared.sqlite3"), SqliteStore(tmp_path / "shared.sqlite3"))


# -- chats and editors ------------------------------------------------------------------------------


@contract
async def test_blocked_chats(store):
    assert not await store.is_chat_blocked("telegram", "c1")
    await store.set_chat_blocked("telegram", "c1", True)
    await store.set_chat_blocked("telegram", "c1", True)  # twice is fine
    assert await store.is_chat_blocked("telegram", "c1")
    assert not await store.is_chat_blocked("vk", "c1")
    await store.set_chat_blocked("telegram", "c1", False)
    assert not await store.is_chat_blocked("telegram", "c1")


@contract
async def test_unanswered_grouping(store):
    def turn(at: float, *rows: tuple[str, str, str]) -> Turn:
        return Turn(session=Session("test", "c1"), unanswered=rows, at=at)

    await store.commit_turn(turn(10.0, ("Погода?", "погода", "fallback")))
    await store.commit_turn(turn(20.0, ("какая погода", "погода", "fallback")))
    await store.commit_turn(turn(30.0, ("документы", "документ", "clarify")))
    await store.commit_turn(turn(40.0, ("ПОГОДА!", "погода", "fallback")))
    await store.commit_turn(turn(1.0, ("старое", "старый", "fallback")))

    groups = await store.unanswered(since=5.0)
    assert [(g.normalized, g.count) for g in groups] == [("погода", 3), ("документ", 1)]
    assert groups[0].example == "ПОГОДА!"  # the latest wording
    assert groups[0].last_at == 40.0
    assert [g.normalized for g in await store.unanswered(since=0.0, limit=1)] == ["погода"]
    assert await store.unanswered(since=100.0) == []


# -- SQLite specifics -----------------------------------------------------------------------------


async def test_sqlite_uses_wal_and_records_its_schema_version(sqlite_store):
    async with sqlite_store._lock:
        mode = await (await sqlite_store.db.execute("PRAGMA journal_mode")).fetchone()
    assert mode[0] == "wal"
    assert await sqlite_store.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(sqlite_store.path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_sqlite_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    path = tmp_path / "reopen.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.commit_turn(Turn(session=Session("test", "c1", flow_id="fraud"), update_id="u1", at=1.0))
    number = (await store.create_ticket(ticket("c1"), [TicketMessage(0, "citizen", "помогите", 1.0)])).number
    await store.enqueue(OutboxItem("test", "c1", Reply("ждёт"), created_at=1.0))
    await store.close()

    again = SqliteStore(path)
    await again.open()
    try:
        assert (await again.load_session("test", "c1")).flow_id == "fraud"
        assert await again.seen_update("test", "u1")
        assert (await again.get_ticket(number)).chat_id == "c1"
        assert [m.text for m in await again.ticket_messages(number)] == ["помогите"]
        assert await again.pending_count("test") == 1
        assert await again.schema_version() == len(MIGRATIONS)
        nxt = await again.create_ticket(ticket("c2"), [])
        assert nxt.number == number + 1
    finally:
        await again.close()


async def test_sqlite_file_of_an_older_schema_is_brought_up_to_date(tmp_path):
    """A file made by an older release (only migration 1 applied) opens: the cursors table and the
    unanswered chat columns (migrations 2 and 3, the same numbers as before the shared history) are added."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version=1;\nCOMMIT;")
        db.execute("INSERT INTO unanswered (text, normalized, outcome, at) VALUES ('погода', 'погода', 'out', 5.0)")
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS) == 4
        assert [g.normalized for g in await store.unanswered(0.0)] == ["погода"]
        await store.set_cursor("vk.longpoll.ts.1", "9")
        assert await store.get_cursor("vk.longpoll.ts.1") == "9"
        assert await store.forget("test", "c1") is not None
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT platform, chat_id FROM unanswered").fetchall() == [("", "")]


async def test_sqlite_store_must_be_opened(tmp_path):
    store = SqliteStore(tmp_path / "never.sqlite3")
    with pytest.raises(RuntimeError, match="not open"):
        await store.load_session("test", "c1")


@contract
async def test_cursors_remember_the_last_value(store):
    assert await store.get_cursor("vk.longpoll.ts.1") is None
    await store.set_cursor("vk.longpoll.ts.1", "41")
    await store.set_cursor("vk.longpoll.ts.1", "42")
    await store.set_cursor("other", "x")
    assert await store.get_cursor("vk.longpoll.ts.1") == "42"
    assert await store.get_cursor("other") == "x"


# -- several workers: background jobs and chat locks -----------------------------------------------


@contract
async def test_claim_job_once_per_period(store):
    assert await store.claim_job("retention", now=1000.0, every=60.0)  # never run: due at once
    assert not await store.claim_job("retention", now=1000.0, every=60.0)  # this period is taken
    assert not await store.claim_job("retention", now=1059.9, every=60.0)
    assert await store.claim_job("overdue", now=1001.0, every=60.0)  # another job is its own
    assert await store.claim_job("retention", now=1060.0, every=60.0)  # the next period
    assert not await store.claim_job("retention", now=1061.0, every=60.0)


@contract
async def test_claim_job_concurrent_callers_one_winner(store):
    import asyncio

    for period in range(3):
        now = 100.0 + period * 10.0
        wins = await asyncio.gather(*(store.claim_job("overdue", now, 10.0) for _ in range(8)))
        assert sum(wins) == 1


@contract
async def test_chat_lock_enters_and_leaves(store):
    import asyncio

    async with store.chat_lock("test", "c1"):
        async with asyncio.timeout(5):  # another chat is never held up by this one
            async with store.chat_lock("test", "c2"):
                pass
    async with asyncio.timeout(5), store.chat_lock("test", "c1"):  # released: free again
        pass
    async with store.sole("long-polling") as alone:
        assert alone


# -- PostgreSQL specifics ---------------------------------------------------------------------------


async def test_postgres_migrates_once_even_when_workers_start_together(postgres_url):
    import asyncio

    stores = [PostgresStore(postgres_url, max_size=2) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # four workers migrating the same database at once
    try:
        assert [await s.schema_version() for s in stores] == [len(MIGRATIONS)] * 4
        rows = await stores[0].pool.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
        assert await stores[1].migrate() == 0
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_reopening_keeps_data(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    await store.commit_turn(Turn(session=Session("test", "c1", flow_id="fraud"), update_id="u1", at=1.0))
    number = (await store.create_ticket(ticket("c1"), [TicketMessage(0, "citizen", "помогите", 1.0)])).number
    await store.close()
    again = PostgresStore(postgres_url)
    await again.open()
    try:
        assert await again.begin_turn("test", "c1", "u1") == (True, None, None)
        seen, session, _ = await again.begin_turn("test", "c1", "u2")
        assert not seen
        assert session.flow_id == "fraud"
        assert (await again.get_ticket(number)).chat_id == "c1"
        assert (await again.create_ticket(ticket("c2"), [])).number == number + 1
    finally:
        await again.close()


async def test_postgres_outbox_claims_each_row_once_across_workers(postgres_url):
    """Two workers draining at the same moment never get the same row (FOR UPDATE SKIP LOCKED + lease)."""
    import asyncio

    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await a.open()
    await b.open()
    try:
        for n in range(40):
            await a.enqueue(OutboxItem("vk", f"chat{n}", Reply(str(n)), created_at=1.0))
        first, second = await asyncio.gather(a.due(("vk",), now=10.0, limit=25), b.due(("vk",), now=10.0, limit=25))
        ids_a, ids_b = {i.id for i in first}, {i.id for i in second}
        assert not ids_a & ids_b
        assert len(ids_a | ids_b) == 40
        assert await a.due(("vk",), now=10.0) == []  # all claimed
        # A worker that died: its claim runs out and the rows come back.
        assert len(await b.due(("vk",), now=10.0 + 61.0)) == 40
    finally:
        await a.close()
        await b.close()


async def test_postgres_outbox_keeps_one_chats_order(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        one = await store.enqueue(OutboxItem("telegram", "c1", Reply("первое"), created_at=1.0))
        two = await store.enqueue(OutboxItem("telegram", "c1", Reply("второе"), created_at=1.0))
        other = await store.enqueue(OutboxItem("telegram", "c2", Reply("другой чат"), created_at=1.0))
        assert [i.id for i in await store.due(("telegram",), now=5.0)] == [one, two, other]
        await store.retry_later(one, next_at=100.0, error="500")
        # The first message of c1 waits for its retry, so the second waits too; c2 is not held up.
        assert [i.id for i in await store.due(("telegram",), now=70.0)] == [other]
        assert [i.id for i in await store.due(("telegram",), now=100.0)] == [one, two]
    finally:
        await store.close()


async def test_sqlite_turn_crosses_to_the_database_thread_few_times(source, sqlite_store, monkeypatch):
    """Point 3 of 'Beyond one process': a turn's reads and writes in as few hops as possible
    (was ~9.5 per message: one per statement and per fetch)."""
    from scenario import Chat

    from bot.dialogue import Dialogue

    hops = 0
    real = sqlite_store._send

    def counted(fn):
        nonlocal hops
        hops += 1
        return real(fn)

    monkeypatch.setattr(sqlite_store._batch, "_send", counted)
    chat = Chat(Dialogue(source, sqlite_store))
    await chat.say("не приходит смс с кодом")
    first = hops
    await chat.press(chat.payloads[0])
    await chat.send("не приходит смс с кодом", update_id="1-1")  # a duplicate: one read, nothing written
    assert first == 2  # begin_turn (with the open ticket), commit_turn
    assert hops - first <= 4
    seen, session, _ = await sqlite_store.begin_turn("test", "1", "1-1")
    assert seen
    assert session is None


async def test_postgres_chat_lock_holds_the_chat_across_workers(postgres_url):
    """Two workers on one database: while one holds a chat, the other waits for that chat only;
    a worker that dies mid-turn (its connections gone) frees the chat."""
    import asyncio

    a, b = PostgresStore(postgres_url, lock_pool_size=2), PostgresStore(postgres_url, lock_pool_size=2)
    await a.open()
    await b.open()
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        order: list[str] = []
        held = asyncio.Event()

        async def first() -> None:
            async with a.chat_lock("telegram", "42"):
                order.append("a in")
                held.set()
                await release.wait()
                order.append("a out")

        async def second() -> None:
            await held.wait()
            async with b.chat_lock("telegram", "42"):
                order.append("b in")

        tasks += [asyncio.create_task(first()), asyncio.create_task(second())]
        await held.wait()
        async with asyncio.timeout(5), b.chat_lock("telegram", "43"):  # another chat: not held up
            pass
        async with asyncio.timeout(5), b.chat_lock("vk", "42"):  # same id, other platform: another chat
            pass
        await asyncio.sleep(0.3)
        assert order == ["a in"]  # b waits
        release.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)
        assert order == ["a in", "a out", "b in"]

        # A worker killed while holding the chat: its connection ends, the lock with it.
        dead = PostgresStore(postgres_url, lock_pool_size=1)
        await dead.open()
        entered = asyncio.Event()

        async def dies_holding() -> None:
            async with dead.chat_lock("telegram", "42"):
                entered.set()
                await asyncio.sleep(3600)

        holder = asyncio.create_task(dies_holding())
        tasks.append(holder)
        await entered.wait()
        waiting = asyncio.create_task(_enter(b, "telegram", "42"))
        tasks.append(waiting)
        await asyncio.sleep(0.3)
        assert not waiting.done()
        dead.lock_pool.terminate()  # what the kernel does to a killed worker's sockets
        async with asyncio.timeout(10):
            await waiting
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await dead.close()
    finally:
        release.set()  # a failed assertion must not leave a holder hanging and the pools unclosable
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()


async def _enter(store: PostgresStore, platform: str, chat_id: str) -> None:
    async with store.chat_lock(platform, chat_id):
        pass


async def test_postgres_claim_job_one_winner_among_workers(postgres_url):
    import asyncio

    stores = [PostgresStore(postgres_url, max_size=2) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for period in range(5):
            now = 1000.0 + period * 60.0
            wins = await asyncio.gather(*(s.claim_job("retention", now, 60.0) for s in stores for _ in range(3)))
            assert sum(wins) == 1, (period, wins)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_sole_role_is_refused_to_a_second_worker(postgres_url):
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await a.open()
    await b.open()
    try:
        async with a.sole("telegram long polling") as first:
            assert first
            async with b.sole("telegram long polling") as second:
                assert not second
            async with b.sole("vk long polling") as other:
                assert other
        async with b.sole("telegram long polling") as after:  # the first one stopped: free again
            assert after
    finally:
        await a.close()
        await b.close()
