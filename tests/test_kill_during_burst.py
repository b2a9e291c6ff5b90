"""Nothing lost when the process dies: a real `gosbot run` gets a burst of 200 messages at once
(40 chats × 5), is SIGKILLed while handling it (as soon as the first reply goes out, when most
turns are in progress; for VK also again half-way through sending), and is restarted on the same
SQLite file each time.

Every message must get exactly its reply: none lost, none answered twice, except a message whose
sending the platform completed but whose answer the bot never recorded (the fake lost the answer
on purpose, or the process died between the answer and marking it sent; Telegram has no way to
recognise such a resend, VK drops it by random_id). Every `/operator` leaves exactly one ticket.
Once for each way updates arrive: Telegram long polling and webhook, VK Long Poll and Callback API.

The operators' chat too: a burst of `/operator` handoffs killed mid-way leaves exactly one ticket
per citizen, each confirmed once with its number; then a burst of operators' replies in the
tickets' topics, killed mid-way, reaches every citizen exactly once and is kept once in the ticket.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.knowledge import Knowledge
from fakes.ports import free_port, listening
from fakes.telegram_api import OPERATOR, OPS, FakeBotAPI
from fakes.vk_api import CALLBACK_CLIENT, GROUP_ID, TOKEN, FakeVk

ROOT = Path(__file__).resolve().parent.parent
CHATS = 40
PER_CHAT = 5
TICKET_EVERY = 4  # every 4th chat ends with /operator
WINDOW = 1.0  # a reply sent this shortly before a kill may not have been marked sent yet
TG_TOKEN = "123456:TEST-token-never-logged"
# Replies to a repeated /operator: "opened" the first time, "already open" on a redelivery after a
# crash between creating the ticket and committing the turn; either tells the citizen the number.
TICKET = "<ticket>"


@dataclass
class Burst:
    """The messages each chat sends and the reply each must get (one per message)."""

    messages: dict[int, list[str]] = field(default_factory=dict)
    expected: dict[int, Counter[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, k: Knowledge, first_chat: int) -> Burst:
        burst = cls()
        faq = sorted(k.faq)
        for c in range(CHATS):
            chat = first_chat + c
            ids = [faq[(c * PER_CHAT + i) % len(faq)] for i in range(PER_CHAT)]
            texts = [f"/start {faq_id}" for faq_id in ids]
            replies = [k.faq[faq_id].answer for faq_id in ids]
            if c % TICKET_EVERY == 0:
                texts[-1], replies[-1] = "/operator", TICKET
            burst.messages[chat] = texts
            burst.expected[chat] = Counter(replies)
        return burst

    @property
    def total(self) -> int:
        return sum(len(texts) for texts in self.messages.values())

    @property
    def ticket_chats(self) -> list[int]:
        return [chat for chat, texts in self.messages.items() if "/operator" in texts]


def classify(k: Knowledge) -> Callable[[str], str]:
    opened = k.text("ticket_opened").split("{ticket}")[0]
    already = k.text("ticket_open_already").split("{ticket}")[0]
    return lambda text: TICKET if text.startswith((opened, already)) else text


@dataclass(frozen=True)
class Delivery:
    chat: int
    text: str
    at: float  # time.monotonic() when the platform answered the send
    answer_lost: bool = False  # delivered, but the fake answered with an error


def covered(burst: Burst, deliveries: list[Delivery]) -> int:
    """How many of the burst's expected replies have arrived; a duplicate does not count, so
    waiting for `burst.total` of them waits for the last reply, not for a copy of another."""
    got: dict[int, Counter[str]] = {}
    for d in deliveries:
        got.setdefault(d.chat, Counter())[d.text] += 1
    return sum(sum((expected & got.get(chat, Counter())).values()) for chat, expected in burst.expected.items())


def check(burst: Burst, deliveries: list[Delivery], kills: list[float]) -> tuple[int, int]:
    """Assert none lost and no duplicate without a cause; (delivered, duplicates)."""
    got: dict[int, list[Delivery]] = {}
    for d in deliveries:
        got.setdefault(d.chat, []).append(d)
    lost: dict[int, Counter[str]] = {}
    unexplained: list[tuple[int, str]] = []
    duplicates = 0
    for chat, expected in burst.expected.items():
        received = Counter(d.text for d in got.get(chat, []))
        missing = expected - received
        if missing:
            lost[chat] = missing
        for text, extra in (received - expected).items():
            copies = [d for d in got[chat] if d.text == text]
            # A copy is explained when its send completed but the bot may not have recorded that.
            causes = sum(1 for d in copies if d.answer_lost or any(0 <= kill - d.at <= WINDOW for kill in kills))
            duplicates += extra
            if extra > causes:
                unexplained.append((chat, text[:40]))
    strangers = set(got) - set(burst.expected)
    assert not lost, f"{sum(sum(c.values()) for c in lost.values())} replies lost: {lost}"
    assert not unexplained, f"duplicates without a lost answer or a kill: {unexplained}"
    assert not strangers, f"replies to chats that wrote nothing: {strangers}"
    return len(deliveries), duplicates


def tickets_per_chat(db: Path, platform: str) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT chat_id FROM tickets WHERE platform=?", (platform,)).fetchall()
    return Counter(row[0] for row in rows)


class Bot:
    """`gosbot run` as a real process; `kill()` is SIGKILL."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env = {
            **os.environ,
            **env,
            "GOSBOT_KNOWLEDGE": str(ROOT / "knowledge"),
            "GOSBOT_LOG_LEVEL": "WARNING",
            "GOSBOT_HTTP_PORT": "0",  # no health server: 9090 may be taken on a shared machine
        }
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"--- start {self.starts}\n")
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    async def kill(self) -> float:
        assert self.proc is not None
        assert self.proc.returncode is None, f"gosbot exited early:\n{self.log.read_text()[-3000:]}"
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        await self.proc.wait()
        return at

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def until(
    check: Callable[[], bool], within: float, what: str, bot: Bot, progress: Callable[[], int] | None = None
) -> None:
    deadline = time.monotonic() + within
    while not check():
        if bot.proc is not None and bot.proc.returncode is not None:
            raise AssertionError(
                f"gosbot exited ({bot.proc.returncode}) waiting for {what}:\n{bot.log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            done = f" ({progress()} so far)" if progress else ""
            raise AssertionError(f"timed out waiting for {what}{done}:\n{bot.log.read_text()[-3000:]}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI()
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def vk() -> AsyncIterator[FakeVk]:
    fake = FakeVk()
    await fake.start()
    yield fake
    await fake.stop()


async def start(bot: Bot, ready: Callable[[], bool]) -> None:
    await bot.start()
    await until(ready, 60, "the bot to be ready", bot)


async def kill_during(
    bot: Bot,
    total: int,
    send: Callable[[], Awaitable[None]],
    delivered: Callable[[], int],
    kill_after: tuple[int, ...],
) -> list[float]:
    """Send, SIGKILL once `delivered()` reaches each of `kill_after` (restarting on the same
    database each time), then wait until `total` are delivered. Returns the kill times."""
    kills = []
    await send()
    for count in kill_after:
        await until(lambda: delivered() >= count, 60, f"{count} replies", bot)  # noqa: B023 - awaited here
        kills.append(await bot.kill())
        assert delivered() < total, "the kill came after everything was sent: it proves nothing"
        await bot.start()
    await until(lambda: delivered() >= total, 60, "every reply", bot, progress=delivered)
    return kills


async def burst_with_kills(
    bot: Bot,
    burst: Burst,
    ready: Callable[[], bool],
    send_burst: Callable[[], Awaitable[None]],
    delivered: Callable[[], int],
    kill_after: tuple[int, ...],
) -> list[float]:
    """Start, send the burst with kills (`kill_during`), wait for late duplicates, stop."""
    try:
        await start(bot, ready)
        kills = await kill_during(bot, burst.total, send_burst, delivered, kill_after)
        await asyncio.sleep(1.0)  # late duplicates, if any, arrive by now
    finally:
        await bot.stop()
    return kills


def assert_one_ticket_each(db: Path, platform: str, chats: list[int]) -> None:
    """0 tickets lost, 0 duplicated."""
    assert tickets_per_chat(db, platform) == Counter(str(chat) for chat in chats)


# -- Telegram --------------------------------------------------------------------------------------


def telegram_bot(api: FakeBotAPI, tmp_path: Path, env: dict[str, str]) -> Bot:
    return Bot({"TELEGRAM_BOT_TOKEN": TG_TOKEN, "TELEGRAM_API_BASE": api.base_url, **env}, tmp_path / "gosbot.log")


def telegram_deliveries(api: FakeBotAPI, sort: Callable[[str], str]) -> list[Delivery]:
    return [Delivery(c.params["chat_id"], sort(c.params["text"]), c.at, answer_lost=not c.ok) for c in api.delivered()]


async def _telegram_run(api: FakeBotAPI, shipped: tuple, tmp_path: Path, env: dict[str, str], webhook: bool) -> None:
    k = shipped[0]
    burst = Burst.build(k, first_chat=7001)
    sort = classify(k)
    api.fail("sendMessage", 502, "Bad Gateway", times=3, deliver=True)  # three answers lost on the way
    bot = telegram_bot(api, tmp_path, env)
    db = Path(env["GOSBOT_DB"])

    def ready() -> bool:
        return bool(api.find("setWebhook" if webhook else "getUpdates"))

    async def send_burst() -> None:
        await api.push(*(api.message(chat, text) for chat, texts in burst.messages.items() for text in texts))

    # One kill, as soon as the first reply is out: most turns are in progress then. (Each start
    # of a process with aiogram costs seconds, so Telegram gets one kill, VK two.)
    kills = await burst_with_kills(
        bot, burst, ready, send_burst, lambda: covered(burst, telegram_deliveries(api, sort)), (1,)
    )
    delivered, duplicates = check(burst, telegram_deliveries(api, sort), kills)
    assert_one_ticket_each(db, "telegram", burst.ticket_chats)
    print(
        f"telegram {'webhook' if webhook else 'polling'}: {burst.total} messages, {delivered} delivered, "
        f"0 lost, {duplicates} duplicated"
    )


async def test_telegram_polling_loses_no_reply_when_killed(telegram: FakeBotAPI, shipped: tuple, tmp_path: Path):
    await _telegram_run(telegram, shipped, tmp_path, {"GOSBOT_DB": str(tmp_path / "bot.sqlite3")}, webhook=False)


async def test_telegram_webhook_loses_no_reply_when_killed(telegram: FakeBotAPI, shipped: tuple, tmp_path: Path):
    port = free_port()
    telegram.webhook_target = f"http://127.0.0.1:{port}/tg/hook"
    env = {
        "GOSBOT_DB": str(tmp_path / "bot.sqlite3"),
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.org/tg/hook",
        "TELEGRAM_WEBHOOK_SECRET": "s3cr3t-Token_42",
        "TELEGRAM_WEBHOOK_HOST": "127.0.0.1",
        "TELEGRAM_WEBHOOK_PORT": str(port),
    }
    await _telegram_run(telegram, shipped, tmp_path, env, webhook=True)
    assert telegram.webhook_posts >= 200


# -- the operators' chat ----------------------------------------------------------------------------

HANDOFFS = 50  # citizens asking for a person at once
# The operators' group takes one message per 3 s (Telegram's 20 a minute; a new topic and its card
# are two), so the replies go to the first tickets shown there, 25 each: a burst of 200.
TOPICS = 8
REPLIES_EACH = 25
ANSWER = re.compile(r"Ответ \d+ по обращению \d+")


def tickets(db: Path) -> dict[int, tuple[int, str | None]]:
    """chat → (ticket number, its topic)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT chat_id, number, desk_ref FROM tickets WHERE platform='telegram'").fetchall()
    return {int(chat): (number, desk_ref) for chat, number, desk_ref in rows}


def operator_lines(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT text FROM ticket_messages WHERE role='operator'").fetchall()
    return Counter(text for (text,) in rows)


def exactly_once(expected: dict[int, Counter[str]], got: list[Delivery], kills: list[float]) -> int:
    """Every expected text reached its chat; a second copy only where the fake lost the answer to
    a delivered send or a kill came right after it. Returns the number of such copies."""
    burst = Burst(messages={chat: list(texts.elements()) for chat, texts in expected.items()}, expected=expected)
    return check(burst, got, kills)[1]


async def test_telegram_operators_chat_loses_and_doubles_nothing_when_killed(
    telegram: FakeBotAPI, shipped: tuple, tmp_path: Path
):
    """Issue 12, point 4. A burst of /operator handoffs, SIGKILL mid-way: every citizen has exactly
    one ticket and one confirmation naming it (never "you already have one", the sign of a ticket
    saved without its turn). Then 200 operators' replies in the tickets' topics, SIGKILL mid-way:
    each reaches its citizen exactly once and is kept once in the ticket."""
    api, k = telegram, shipped[0]
    api.members[OPERATOR] = "member"
    db = tmp_path / "bot.sqlite3"
    bot = telegram_bot(api, tmp_path, {"GOSBOT_DB": str(db), "TELEGRAM_OPERATORS_CHAT_ID": str(OPS)})
    citizens = list(range(8001, 8001 + HANDOFFS))
    opened = k.text("ticket_opened").split("{ticket}")[0]
    already = k.text("ticket_open_already").split("{ticket}")[0]

    def to_citizens(match: Callable[[str], bool]) -> list[Delivery]:
        return [
            Delivery(c.params["chat_id"], c.params["text"], c.at, answer_lost=not c.ok)
            for c in api.delivered()
            if c.params["chat_id"] in citizens and match(c.params["text"])
        ]

    async def handoffs() -> None:
        await api.push(*(api.message(chat, "/operator") for chat in citizens))

    try:
        await start(bot, lambda: bool(api.find("getUpdates")))
        kills = await kill_during(
            bot, HANDOFFS, handoffs, lambda: len({d.chat for d in to_citizens(lambda t: t.startswith(opened))}), (1,)
        )
        assert_one_ticket_each(db, "telegram", citizens)
        numbers = tickets(db)
        assert not to_citizens(lambda t: t.startswith(already))
        confirmations = to_citizens(lambda t: t.startswith(opened))
        for d in confirmations:
            assert re.search(rf"№ {numbers[d.chat][0]}\b", d.text), d.text
        handoff_copies = exactly_once(
            {chat: Counter(["confirmed"]) for chat in citizens},
            [Delivery(d.chat, "confirmed", d.at, d.answer_lost) for d in confirmations],
            kills,
        )

        def shown() -> dict[int, tuple[int, str | None]]:
            return {chat: ticket for chat, ticket in tickets(db).items() if ticket[1] is not None}

        await until(lambda: len(shown()) >= TOPICS, 120, f"{TOPICS} tickets' topics", bot)
        numbers = dict(list(shown().items())[:TOPICS])
        expected = {
            chat: Counter(f"Ответ {i} по обращению {number}" for i in range(REPLIES_EACH))
            for chat, (number, _) in numbers.items()
        }
        replies = [
            api.message(
                OPS, f"Ответ {i} по обращению {number}", user_id=OPERATOR, chat_type="supergroup", thread=int(ref)
            )
            for i in range(REPLIES_EACH)
            for number, ref in numbers.values()
            if ref is not None
        ]
        assert len(replies) >= 200
        api.fail("sendMessage", 502, "Bad Gateway", times=3, deliver=True)  # three answers lost on the way

        def answers() -> list[Delivery]:
            found = [(d, ANSWER.search(d.text)) for d in to_citizens(lambda t: ANSWER.search(t) is not None)]
            return [Delivery(d.chat, m.group(0), d.at, d.answer_lost) for d, m in found if m]

        async def operators_burst() -> None:
            await api.push(*replies)

        kills += await kill_during(
            bot, len(replies), operators_burst, lambda: len({(d.chat, d.text) for d in answers()}), (1,)
        )
        await asyncio.sleep(1.0)  # late duplicates, if any, arrive by now
    finally:
        await bot.stop()
    reply_copies = exactly_once(expected, answers(), kills)
    # Kept once in the tickets, whatever reached the citizens.
    assert operator_lines(db) == Counter(text for texts in expected.values() for text in texts.elements())
    print(
        f"operators' chat: {HANDOFFS} handoffs, 0 tickets lost, 0 duplicated ({handoff_copies} confirmations "
        f"sent twice); {len(replies)} replies, 0 lost, {reply_copies} sent twice"
    )


# -- VK --------------------------------------------------------------------------------------------


async def _vk_run(fake: FakeVk, shipped: tuple, tmp_path: Path, env: dict[str, str], ready: Callable[[], bool]):
    k = shipped[0]
    burst = Burst.build(k, first_chat=9001)
    sort = classify(k)
    fake.fail("messages.send", times=3, deliver=True, http=500)  # three answers lost on the way
    base = {"VK_GROUP_TOKEN": TOKEN, "VK_GROUP_ID": str(GROUP_ID), "VK_API_BASE": f"{fake.url}/method"}
    bot = Bot({**base, **env}, tmp_path / "gosbot.log")

    async def send_burst() -> None:
        for chat, texts in burst.messages.items():
            for text in texts:
                await fake.push(fake.message_new(chat, text, client=CALLBACK_CLIENT))

    # First as soon as a reply is out (most turns in progress), then half-way through sending.
    # The fake keeps what a chat shows: a resend with a known random_id is not shown again.
    def deliveries() -> list[Delivery]:
        return [Delivery(m.peer_id, sort(m.text), 0.0) for m in fake.sent]

    await burst_with_kills(bot, burst, ready, send_burst, lambda: covered(burst, deliveries()), (1, burst.total // 2))
    delivered, duplicates = check(burst, deliveries(), [])
    assert duplicates == 0
    assert_one_ticket_each(Path(env["GOSBOT_DB"]), "vk", burst.ticket_chats)
    print(
        f"vk: {burst.total} messages, {delivered} delivered, 0 lost, 0 duplicated "
        f"({fake.calls.count('messages.send')} messages.send calls)"
    )
    return bot


async def test_vk_long_poll_loses_no_reply_when_killed(vk: FakeVk, shipped: tuple, tmp_path: Path):
    db = tmp_path / "bot.sqlite3"
    await _vk_run(vk, shipped, tmp_path, {"GOSBOT_DB": str(db)}, ready=lambda: "groups.getLongPollServer" in vk.calls)
    # The position was saved after the handled events: a restart resumes there.
    with sqlite3.connect(db) as conn:
        (ts,) = conn.execute("SELECT value FROM cursors WHERE name=?", (f"vk.longpoll.ts.{GROUP_ID}",)).fetchone()
    assert int(ts) == CHATS * PER_CHAT


async def test_vk_callback_loses_no_reply_when_killed(vk: FakeVk, shipped: tuple, tmp_path: Path):
    port = free_port()
    env = {
        "GOSBOT_DB": str(tmp_path / "bot.sqlite3"),
        "VK_CALLBACK_SECRET": "s3cret",
        "VK_CONFIRMATION_CODE": "c0nf1rm",
        "VK_CALLBACK_HOST": "127.0.0.1",
        "VK_CALLBACK_PORT": str(port),
    }

    vk.post_callbacks(f"http://127.0.0.1:{port}/vk/callback", "s3cret")
    await _vk_run(vk, shipped, tmp_path, env, ready=lambda: listening(port))
    assert vk.callback_posts >= CHATS * PER_CHAT
