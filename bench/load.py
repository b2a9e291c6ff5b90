"""Load and fault suite: many citizens at once through real `gosbot run` processes, against local
fakes of the Telegram Bot API and the VK API that misbehave at a set rate, with operators answering.

    python -m bench.load [--citizens 1000] [--messages 10] [--fault-rate 0.05] [--seed 7]
                         [--store sqlite | --store postgres --workers 3 --kill]

Citizens: half on Telegram (even numbers), half on VK (odd). Each sends `--messages` messages in
order, waiting for the bot's reply before the next (a person does), drawn from a seeded mix: dev.tsv
questions (never the locked set), small talk, presses of a button the bot's last reply offered,
`/operator` handoffs and `/cancel`. Operators watch the operators' forum in the fake Bot API (VK
tickets go to the same desk) and answer each new ticket in its topic, as members of that chat.

The fakes (fakes/faults.py) inject, on a `--fault-rate` share of calls: Telegram 429 with
retry_after, VK errors 6 and 9, HTTP 500, slow answers, connections dropped before the platform
acted, and connections dropped after it delivered the message (recorded: the only duplicates a
citizen may see; VK drops the resend by random_id).

Stores: `--store sqlite` runs one process (Telegram long polling, VK Bots Long Poll);
`--store postgres` runs `--workers` processes on one throwaway PostgreSQL, in webhook / Callback API
mode, with this driver as the reverse proxy in front (round robin; a request that fails to reach a
worker goes to the next one, as nginx's proxy_next_upstream does). `--kill` SIGKILLs one worker
when 40 % of the replies are out and starts it again.

Reported: messages/s (citizen messages over the run's wall time), the citizen's reply latency p50 /
p99 (first reply after the message; also without the waits the platform imposed on that chat
meanwhile: retry_after and slow answers), peak RSS of the bot processes (VmHWM), and the checks:
every message answered by exactly one turn, every reply the bot recorded delivered exactly once
(duplicates split into allowed — delivered then dropped, or sent just before a SIGKILL — and not
allowed), every ticket created once (one per "opened" reply, one topic each), every operator reply
delivered exactly once. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    DEV_TSV,
    KNOWLEDGE,
    ROOT,
    load_average,
    log,
    machine,
    machine_header,
    percentile,
    source_state,
    table,
    write_results,
)
from bot.evaluation import read_rows
from bot.knowledge import load_knowledge
from fakes.faults import FaultMix
from fakes.ports import free_port, listening
from fakes.telegram_api import OPERATOR, OPS, Call, FakeBotAPI
from fakes.vk_api import CALLBACK_CLIENT, GROUP_ID, TOKEN, FakeVk, Sent

TG_TOKEN = "123456:LOAD-token-never-logged"
TG_SECRET = "load-Secret_42"
VK_SECRET = "load-vk-secret"
TG_BASE, VK_BASE = 5_000_000, 6_000_000  # chat ids of citizen i: TG_BASE + i (even i), VK_BASE + i (odd i)
SMALLTALK = ("здравствуйте", "Добрый день!", "привет", "спасибо", "спасибо, помогло", "ок", "ты бот?")
NO_PRESS = ("op", "cancel", "r:")  # handoffs and cancellations are drawn separately; ratings are not a reply
# Per message: ask for a person (then half cancel with the next message, half wait for the person),
# press a button the last reply offered, small talk; else a dev.tsv question. About 18 % of citizens
# hand off once in 10 messages: the operators' forum takes 20 bot messages a minute (Telegram's
# limit for a group), so the desk, not the bot, bounds how many tickets a run can show.
HANDOFF, CANCEL_AFTER, PRESS, SMALL = 0.02, 0.5, 0.4, 0.1
KILL_WINDOW = 1.0  # a reply sent this shortly before a SIGKILL may not have been marked sent
KILL_READ = 0.5  # what the killed worker had written may still be read by the fake this long after
OPERATOR_TEXT = "Оператор: по обращению {n} проверьте папку «Спам» и запросите код ещё раз."
TICKET_NUMBER = re.compile(r"№ (\d+)")
OPERATOR_NUMBER = re.compile(r"Оператор: по обращению (\d+) ")


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size of a process (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the bot processes ---------------------------------------------------------------------------


class Worker:
    """One `gosbot run` process; `kill()` is SIGKILL, `start()` again restarts it on the same store."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, tg_port: int = 0, vk_port: int = 0):
        self.name = name
        self.env = {**os.environ, **env, "GOSBOT_KNOWLEDGE": str(KNOWLEDGE), "GOSBOT_LOG_LEVEL": "WARNING"}
        self.log_path = log_path
        self.tg_port, self.vk_port = tg_port, vk_port
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.peak_kb = 0  # the highest VmHWM over every start

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.starts += 1
        with self.log_path.open("a") as out:
            out.write(f"--- start {self.starts}\n")
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    def sample(self) -> None:
        if self.up and self.proc is not None:
            self.peak_kb = max(self.peak_kb, vm_hwm_kb(self.proc.pid))

    async def kill(self) -> float:
        assert self.proc is not None
        assert self.proc.returncode is None, self.tail()
        self.sample()
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        await self.proc.wait()
        return at

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.sample()
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


class Proxy:
    """The reverse proxy in front of the workers: round robin, and a request that cannot reach a
    worker (refused, reset, the worker died mid-request) is passed to the next one."""

    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self.port = 0
        self.next = 0
        self.retried = 0
        self.forwarded = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tg/hook", self._tg)
        app.router.add_post("/vk/callback", self._vk)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        if self._runner is not None:  # stop taking requests first, then drop the connections out
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _tg(self, request: web.Request) -> web.Response:
        return await self._forward(request, lambda w: f"http://127.0.0.1:{w.tg_port}/tg/hook")

    async def _vk(self, request: web.Request) -> web.Response:
        return await self._forward(request, lambda w: f"http://127.0.0.1:{w.vk_port}/vk/callback")

    async def _forward(self, request: web.Request, url: Callable[[Worker], str]) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")
        }
        start = self.next
        self.next = (self.next + 1) % len(self.workers)
        for step in range(len(self.workers)):
            worker = self.workers[(start + step) % len(self.workers)]
            try:
                async with self._http.post(url(worker), data=body, headers=headers) as answer:
                    self.forwarded += 1
                    return web.Response(status=answer.status, body=await answer.read())
            except (aiohttp.ClientError, TimeoutError, RuntimeError):  # RuntimeError: closing at the end
                self.retried += 1
        return web.Response(status=502, text="Bad Gateway")


# -- citizens ------------------------------------------------------------------------------------


@dataclass
class Seen:
    """A message shown in a citizen's chat."""

    text: str
    at: float
    buttons: list[tuple[str, str, str]]  # (kind, label, payload): kind "tg", "vk-callback" or "vk-text"


@dataclass
class Citizen:
    index: int
    platform: str  # "telegram" | "vk"
    chat: int
    inbox: list[Seen] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    unanswered: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds to the first reply
    net_latencies: list[float] = field(default_factory=list)  # the same without platform-imposed waits
    kinds: Counter[str] = field(default_factory=Counter)
    slow: list[tuple[float, str, str, float, float]] = field(
        default_factory=list
    )  # turns over 5 s: latency, kind, what, start, end

    def show(self, seen: Seen) -> None:
        self.inbox.append(seen)
        self.news.set()


class Imposed:
    """Waits the platforms imposed per chat (429 retry_after, slow answers), read from the fakes."""

    def __init__(self, telegram: FakeBotAPI, vk: FakeVk):
        self.sources = [telegram.imposed, vk.imposed]
        self.read = [0, 0]
        self.by_chat: dict[int, list[tuple[float, float]]] = {}

    def between(self, chat: int, start: float, end: float) -> float:
        for i, source in enumerate(self.sources):
            for c, at, seconds in source[self.read[i] :]:
                if c is not None:
                    self.by_chat.setdefault(int(c), []).append((at, seconds))
            self.read[i] = len(source)
        return sum(s for at, s in self.by_chat.get(chat, []) if start <= at <= end)


@dataclass
class Run:
    args: argparse.Namespace
    telegram: FakeBotAPI
    vk: FakeVk
    citizens: dict[tuple[str, int], Citizen]
    texts: list[str]
    imposed: Imposed
    press_ids: Any = field(default_factory=lambda: iter(range(1, 10**9)))


def tg_buttons(call: Call) -> list[tuple[str, str, str]]:
    return [("tg", label, data) for label, data in call.buttons]


def vk_buttons(message: Sent) -> list[tuple[str, str, str]]:
    kinds = {"callback": "vk-callback", "text": "vk-text"}
    return [(kinds.get(b["type"], "vk-text"), b["label"], b["payload"]) for b in message.buttons]


def choose(rng: random.Random, n: int, last: list[Seen], handoff_pending: bool, texts: list[str]) -> tuple[str, Any]:
    """(kind, what): kind is question | smalltalk | button | operator | cancel."""
    buttons = [b for b in (last[-1].buttons if last else []) if not _payload(b).startswith(NO_PRESS)]
    if handoff_pending:
        return "cancel", "/cancel"
    if rng.random() < HANDOFF:
        return "operator", "/operator"
    if n == 0 and rng.random() < 0.4:
        return "smalltalk", rng.choice(SMALLTALK[:3])
    if buttons and rng.random() < PRESS:
        return "button", rng.choice(buttons)
    if rng.random() < SMALL:
        return "smalltalk", rng.choice(SMALLTALK)
    return "question", rng.choice(texts)


def _payload(button: tuple[str, str, str]) -> str:
    """The core's payload inside a button (VK wraps it in JSON)."""
    kind, _, payload = button
    if kind == "tg":
        return payload
    try:
        inner = json.loads(payload)
    except ValueError:
        return payload
    return str(inner.get("p", "")) if isinstance(inner, dict) else str(inner)


async def send(run: Run, citizen: Citizen, kind: str, what: Any) -> None:
    if citizen.platform == "telegram":
        if kind == "button":
            await run.telegram.push(run.telegram.callback(citizen.chat, what[2]))
        else:
            await run.telegram.push(run.telegram.message(citizen.chat, what))
        return
    if kind == "button" and what[0] == "vk-callback":
        press = f"press-{next(run.press_ids)}"
        await run.vk.push(run.vk.message_event(citizen.chat, json.loads(what[2]), press_id=press))
    elif kind == "button":
        await run.vk.push(run.vk.message_new(citizen.chat, what[1], payload=what[2], client=CALLBACK_CLIENT))
    else:
        await run.vk.push(run.vk.message_new(citizen.chat, what, client=CALLBACK_CLIENT))


def is_operator_reply(text: str) -> bool:
    return text.startswith("Ответ сотрудника")


async def live(run: Run, citizen: Citizen) -> None:
    args = run.args
    rng = random.Random(args.seed * 1_000_003 + citizen.index)
    quiet = args.quiet_telegram if citizen.platform == "telegram" else args.quiet_vk
    await asyncio.sleep(rng.uniform(0, args.ramp))  # people do not all start in the same millisecond
    handoff_pending = False
    last: list[Seen] = []
    for n in range(args.messages):
        kind, what = choose(rng, n, last, handoff_pending, run.texts)
        # After a handoff: cancel with the next message, or wait for the person (up to --operator-wait).
        handoff_pending = kind == "operator" and rng.random() < CANCEL_AFTER
        wait_for_person = kind == "operator" and not handoff_pending
        citizen.kinds[kind] += 1
        mark = len(citizen.inbox)
        started = time.monotonic()
        citizen.sent += 1
        await send(run, citizen, kind, what)
        first = await first_reply(citizen, mark, args.reply_timeout)
        if first is None:
            citizen.unanswered += 1
            continue
        latency = first.at - started
        citizen.latencies.append(latency)
        if latency > 5:
            shown = str(what[1] if isinstance(what, tuple) else what)[:40]
            citizen.slow.append((round(latency, 2), kind, shown, started, first.at))
        citizen.net_latencies.append(max(0.0, latency - run.imposed.between(citizen.chat, started, first.at)))
        # The rest of the turn's replies (Telegram paces one chat to a message a second).
        while True:
            citizen.news.clear()
            try:
                await asyncio.wait_for(citizen.news.wait(), quiet)
            except TimeoutError:
                break
        last = [s for s in citizen.inbox[mark:] if not is_operator_reply(s.text)]
        if wait_for_person:
            await operator_reply(citizen, mark, args.operator_wait)


async def operator_reply(citizen: Citizen, mark: int, within: float) -> None:
    deadline = time.monotonic() + within
    while not any(is_operator_reply(seen.text) for seen in citizen.inbox[mark:]):
        citizen.news.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(citizen.news.wait(), left)


async def first_reply(citizen: Citizen, mark: int, within: float) -> Seen | None:
    deadline = time.monotonic() + within
    while True:
        for seen in citizen.inbox[mark:]:
            if not is_operator_reply(seen.text):
                return seen
        citizen.news.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(citizen.news.wait(), left)


# -- operators -----------------------------------------------------------------------------------


@dataclass
class Desk:
    """The operators: each new ticket's card gets one answer in its topic, a moment later."""

    telegram: FakeBotAPI
    rng: random.Random
    answered: dict[int, int] = field(default_factory=dict)  # ticket number -> topic answered in
    topics: Counter[int] = field(default_factory=Counter)  # ticket number -> cards seen (in distinct topics)
    card_threads: dict[int, set[int]] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)  # topics where the bot said "Не выполнено"
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    on_shift: bool = True  # off once the citizens are done: cards arriving later are left unanswered

    def on_call(self, call: Call) -> None:
        if call.method != "sendMessage" or call.params.get("chat_id") != OPS or not call.delivered:
            return
        thread = call.params.get("message_thread_id")
        if thread is None:
            return
        if str(call.params.get("text", "")).startswith("Не выполнено"):
            self.refused.add(int(thread))
        for _, data in call.buttons:
            if data.startswith("desk:take:"):
                number = int(data.rsplit(":", 1)[1])
                self.card_threads.setdefault(number, set()).add(int(thread))
                if number not in self.answered and self.on_shift:
                    self.answered[number] = int(thread)
                    task = asyncio.create_task(self._answer(number, int(thread)))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

    async def _answer(self, number: int, thread: int) -> None:
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        text = OPERATOR_TEXT.format(n=number)
        await self.telegram.push(
            self.telegram.message(OPS, text, user_id=OPERATOR, name="Ольга", chat_type="supergroup", thread=thread)
        )


def unresolved(desk: Desk, citizens: dict[tuple[str, int], Citizen]) -> int:
    """Operator replies neither seen by any citizen nor refused in their topic (yet)."""
    shown = {
        int(m.group(1))
        for c in citizens.values()
        for seen in c.inbox
        if is_operator_reply(seen.text) and (m := OPERATOR_NUMBER.search(seen.text))
    }
    return sum(1 for number, thread in desk.answered.items() if number not in shown and thread not in desk.refused)


# -- reading the store ---------------------------------------------------------------------------


@dataclass
class Stored:
    outbox: list[tuple[str, str, str, int | None, str, float]]  # platform, chat, text, ticket, status, created_at
    tickets: list[tuple[int, str, str, str | None, str]]  # number, platform, chat, desk_ref, status


def _outbox_row(row: Any) -> tuple[str, str, str, int | None, str, float]:
    return (row[0], row[1], json.loads(row[2])["text"], row[3], row[4], float(row[5]))


OUTBOX_SQL = (
    "SELECT platform, chat_id, reply, ticket, status, created_at FROM outbox WHERE platform IN ('telegram', 'vk')"
)
TICKETS_SQL = "SELECT number, platform, chat_id, desk_ref, status FROM tickets"
PENDING_SQL = "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND platform IN ('telegram', 'vk')"
DESK_PENDING_SQL = "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND platform NOT IN ('telegram', 'vk')"


async def read_store(db: Path | None, url: str) -> Stored:
    if url:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            outbox = [_outbox_row(r) for r in await conn.fetch(OUTBOX_SQL)]
            tickets = [tuple(r) for r in await conn.fetch(TICKETS_SQL)]
        finally:
            await conn.close()
    else:
        assert db is not None
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            outbox = [_outbox_row(r) for r in conn.execute(OUTBOX_SQL)]
            tickets = [tuple(r) for r in conn.execute(TICKETS_SQL)]
    return Stored(outbox, tickets)  # type: ignore[arg-type]


async def pending(db: Path | None, url: str, sql: str = PENDING_SQL) -> int:
    """Outbox rows still to be sent to citizens (or, with DESK_PENDING_SQL, to the operators' forum)."""
    try:
        if url:
            import asyncpg

            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval(sql))
            finally:
                await conn.close()
        assert db is not None
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except Exception:  # the file or table is not there yet, the database is busy: ask again later
        return -1


# -- the checks ----------------------------------------------------------------------------------


def check(run: Run, stored: Stored, desk: Desk, kills: list[float]) -> dict[str, Any]:
    tg, vk = run.telegram, run.vk
    by_chat = {(c.platform, str(c.chat)): c for c in run.citizens.values()}
    expected: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in by_chat}
    turns: dict[tuple[str, str], set[float]] = {key: set() for key in by_chat}
    not_sent = 0
    for platform, chat, text, ticket, status, created in stored.outbox:
        key = (platform, chat)
        if key not in expected:
            continue
        expected[key][text.strip()] += 1
        if ticket is None:
            turns[key].add(created)
        if status != "sent":
            not_sent += 1
    delivered: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in by_chat}
    delivered_at: dict[tuple[str, str, str], list[float]] = {}  # when each copy was answered (for the examples)
    allowed_copies: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in by_chat}
    strangers = dropped_copies = kill_copies = 0
    for call in tg.calls:
        if call.method != "sendMessage" or not call.delivered or call.params.get("chat_id") == OPS:
            continue
        key = ("telegram", str(call.params["chat_id"]))
        if key not in delivered:
            strangers += 1
            continue
        text = str(call.params.get("text", "")).strip()
        delivered[key][text] += 1
        delivered_at.setdefault((*key, text), []).append(call.at)
        if call.dropped:
            allowed_copies[key][text] += 1
            dropped_copies += 1
        elif any(-KILL_READ <= kill - call.received <= KILL_WINDOW for kill in kills):
            # Sent by then: a request the killed worker wrote may be read just after the kill, and
            # answered later still (a slow answer); it was never marked sent.
            allowed_copies[key][text] += 1
            kill_copies += 1
    for message in vk.sent:
        key = ("vk", str(message.peer_id))
        if key not in delivered:
            strangers += 1
            continue
        delivered[key][message.text.strip()] += 1

    lost = duplicated = allowed = 0
    lost_examples: list[str] = []
    dup_examples: list[str] = []
    for key in by_chat:
        missing = expected[key] - delivered[key]
        extra = delivered[key] - expected[key]
        lost += sum(missing.values())
        lost_examples += [f"{key[0]} {key[1]}: {t[:50]!r}" for t in missing][:2]
        for text, count in extra.items():
            ok = min(count, allowed_copies[key][text])
            allowed += ok
            if count > ok:
                duplicated += count - ok
                kill = kills[0] if kills else 0.0
                when = ", ".join(f"{t - kill:+.1f} s" for t in delivered_at.get((*key, text), []))
                since = "from the kill" if kills else "on the monotonic clock"
                dup_examples.append(f"{key[0]} {key[1]}: {text[:50]!r} x{count - ok} (copies at {when} {since})")

    sent_messages = sum(c.sent for c in run.citizens.values())
    unanswered = sum(c.unanswered for c in run.citizens.values())
    recorded_turns = sum(len(t) for t in turns.values())
    extra_turns = sum(max(0, len(turns[key]) - by_chat[key].sent) for key in by_chat)
    missing_turns = sum(max(0, by_chat[key].sent - len(turns[key])) for key in by_chat)

    # Tickets: one per "opened" reply the citizen was told, one topic each.
    opened_prefix = run.args.opened_prefix
    told: dict[tuple[str, str], set[int]] = {key: set() for key in by_chat}
    for key, texts in delivered.items():
        for text in texts:
            if text.startswith(opened_prefix) and (m := TICKET_NUMBER.search(text)):
                told[key].add(int(m.group(1)))
    stored_tickets: dict[tuple[str, str], set[int]] = {key: set() for key in by_chat}
    for number, platform, chat, _desk_ref, _status in stored.tickets:
        stored_tickets.setdefault((platform, chat), set()).add(number)
    tickets_total = len(stored.tickets)
    untold = sum(len(stored_tickets[k] - told.get(k, set())) for k in stored_tickets)
    told_missing = sum(len(told[k] - stored_tickets.get(k, set())) for k in told)
    topic_dropped = sum(1 for c in tg.calls if c.method == "createForumTopic" and c.dropped and c.result)
    extra_topics = sum(len(threads) - 1 for threads in desk.card_threads.values())
    no_card = sum(1 for number, *_ in stored.tickets if number not in desk.card_threads)
    cancelled_unshown = sum(
        1 for number, _p, _c, desk_ref, status in stored.tickets if status == "cancelled" and desk_ref is None
    )

    # Operator replies: each reaches its ticket's citizen once, or the bot refused it in the topic.
    ticket_chat = {number: (platform, chat) for number, platform, chat, _d, _s in stored.tickets}
    ticket_status = {number: status for number, _p, _c, _d, status in stored.tickets}
    op_once = op_lost = op_dup = op_refused = op_allowed = 0
    op_examples: list[str] = []
    for number, thread in desk.answered.items():
        text_line = OPERATOR_TEXT.format(n=number)
        key = ticket_chat.get(number)
        copies = [t for k, texts in delivered.items() for t, n in texts.items() for _ in range(n) if text_line in t]
        wrong = [k for k, texts in delivered.items() if k != key and any(text_line in t for t in texts)]
        allowed_here = sum(
            n for t, n in (allowed_copies.get(key, Counter()) if key else Counter()).items() if text_line in t
        )
        if wrong:
            op_dup += 1
            op_examples.append(f"ticket {number}: reached another chat")
        elif len(copies) == 1:
            op_once += 1
        elif not copies and (thread in desk.refused or ticket_status.get(number) == "cancelled"):
            # Refused: the citizen had cancelled before the operator wrote. The bot's "Не выполнено"
            # in the topic may still be queued behind the operators' forum backlog (3 s a message).
            op_refused += 1
        elif not copies:
            op_lost += 1
            op_examples.append(
                f"ticket {number} ({key}): operator reply had not reached the citizen by the end of the run"
            )
        elif len(copies) - 1 <= allowed_here:
            op_once += 1
            op_allowed += len(copies) - 1
        else:
            op_dup += 1
            op_examples.append(f"ticket {number}: operator reply delivered {len(copies)} times")

    checks = {
        "every message answered": unanswered == 0 and missing_turns == 0,
        "every message handled by exactly one turn": extra_turns == 0,
        "no reply lost": lost == 0 and not_sent == 0,
        "no duplicate without a cause": duplicated == 0,
        "no reply to a chat that wrote nothing": strangers == 0,
        "every ticket created once": untold == 0 and told_missing == 0,
        "every ticket's card in one topic (or a dropped createForumTopic)": extra_topics <= topic_dropped,
        "every operator reply delivered exactly once": op_lost == 0 and op_dup == 0,
    }
    return {
        "messages_sent": sent_messages,
        "unanswered": unanswered,
        "turns_recorded": recorded_turns,
        "turns_missing": missing_turns,
        "turns_extra": extra_turns,
        "replies_recorded": sum(sum(c.values()) for c in expected.values()),
        "replies_delivered": sum(sum(c.values()) for c in delivered.values()),
        "replies_not_marked_sent": not_sent,
        "replies_lost": lost,
        "duplicates_allowed": allowed,
        "duplicates_not_allowed": duplicated,
        "telegram_sends_delivered_then_dropped": dropped_copies,  # each may be resent: an allowed duplicate
        "telegram_sends_delivered_just_before_a_kill": kill_copies,
        "vk_resends_dropped_by_random_id": vk.resends,
        "replies_to_strangers": strangers,
        "tickets": tickets_total,
        "tickets_not_told": untold,
        "tickets_told_not_stored": told_missing,
        "tickets_without_card": no_card,
        "tickets_cancelled_before_shown": cancelled_unshown,
        "extra_topics": extra_topics,
        "create_topic_answers_dropped": topic_dropped,
        "operator_replies": len(desk.answered),
        "operator_replies_exactly_once": op_once,
        "operator_replies_refused_ticket_closed": op_refused,
        "operator_replies_lost": op_lost,
        "operator_replies_duplicated": op_dup,
        "operator_reply_duplicates_allowed": op_allowed,
        "checks": checks,
        "examples": {"lost": lost_examples[:5], "duplicated": dup_examples[:5], "operator": op_examples[:5]},
    }


# -- the run -------------------------------------------------------------------------------------


async def wait_until(check: Callable[[], bool], within: float, what: str, workers: list[Worker]) -> None:
    deadline = time.monotonic() + within
    while not check():
        for w in workers:
            if w.proc is not None and w.proc.returncode is not None and w.proc.returncode != -signal.SIGKILL:
                raise RuntimeError(f"{w.name} exited ({w.proc.returncode}) waiting for {what}:\n{w.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}:\n" + "\n".join(w.tail(1500) for w in workers))
        await asyncio.sleep(0.05)


async def one_mode(args: argparse.Namespace, tmp: Path, texts: list[str]) -> dict[str, Any]:
    telegram, vk = FakeBotAPI(), FakeVk()
    await telegram.start()
    await vk.start()
    telegram.members[OPERATOR] = "member"
    telegram.faults = FaultMix(args.fault_rate, seed=args.seed, retry_after=args.retry_after)
    if args.spare_membership:
        telegram.faultable = telegram.faultable - {"getChatMember"}
    vk.faults = FaultMix(args.fault_rate, seed=args.seed + 1)
    url = ""
    server_cm: contextlib.AbstractContextManager[Any] | None = None
    db: Path | None = None
    proxy: Proxy | None = None
    workers: list[Worker] = []
    try:
        base = {
            "TELEGRAM_BOT_TOKEN": TG_TOKEN,
            "TELEGRAM_API_BASE": telegram.base_url,
            "TELEGRAM_OPERATORS_CHAT_ID": str(OPS),
            "VK_GROUP_TOKEN": TOKEN,
            "VK_GROUP_ID": str(GROUP_ID),
            "VK_API_BASE": f"{vk.url}/method",
            "GOSBOT_HTTP_PORT": "0",
        }
        if args.store == "postgres":
            from fakes.postgres import create_database, server_bin_dir, throwaway_server

            bin_dir = server_bin_dir()
            if bin_dir is None:
                raise SystemExit("no PostgreSQL server binaries (initdb, pg_ctl) found")
            server_cm = throwaway_server(bin_dir)
            server = server_cm.__enter__()
            url = await create_database(server)
            base["GOSBOT_DATABASE_URL"] = url
        else:
            db = tmp / "load.sqlite3"
            base["GOSBOT_DB"] = str(db)
        webhook = args.store == "postgres" or args.webhook
        for i in range(args.workers):
            env = dict(base)
            tg_port = vk_port = 0
            if webhook:
                tg_port, vk_port = free_port(), free_port()
                env.update(
                    TELEGRAM_WEBHOOK_URL="https://bot.example.org/tg/hook",
                    TELEGRAM_WEBHOOK_SECRET=TG_SECRET,
                    TELEGRAM_WEBHOOK_HOST="127.0.0.1",
                    TELEGRAM_WEBHOOK_PORT=str(tg_port),
                    VK_CALLBACK_SECRET=VK_SECRET,
                    VK_CALLBACK_HOST="127.0.0.1",
                    VK_CALLBACK_PORT=str(vk_port),
                )
            workers.append(Worker(f"worker{i + 1}", env, tmp / f"worker{i + 1}.log", tg_port, vk_port))
        if webhook:
            proxy = Proxy(workers)
            await proxy.start()
            telegram.webhook_target = f"http://127.0.0.1:{proxy.port}/tg/hook"
            vk.post_callbacks(f"http://127.0.0.1:{proxy.port}/vk/callback", VK_SECRET)

        # Citizens and the desk listen to what the fakes deliver.
        citizens: dict[tuple[str, int], Citizen] = {}
        for i in range(args.citizens):
            platform = "telegram" if i % 2 == 0 else "vk"
            chat = (TG_BASE if platform == "telegram" else VK_BASE) + i
            citizens[(platform, chat)] = Citizen(i, platform, chat)
        desk = Desk(telegram, random.Random(args.seed))

        def on_tg(call: Call) -> None:
            desk.on_call(call)
            if call.method == "sendMessage" and call.delivered:
                citizen = citizens.get(("telegram", call.params.get("chat_id", 0)))
                if citizen is not None:
                    citizen.show(Seen(str(call.params.get("text", "")), call.at, tg_buttons(call)))

        def on_vk(message: Sent) -> None:
            citizen = citizens.get(("vk", message.peer_id))
            if citizen is not None:
                citizen.show(Seen(message.text, message.at, vk_buttons(message)))

        telegram.listeners.append(on_tg)
        vk.listeners.append(on_vk)
        run = Run(args, telegram, vk, citizens, texts, Imposed(telegram, vk))

        started_at = time.monotonic()
        for w in workers:
            await w.start()
        if webhook:
            await wait_until(
                lambda: (
                    all(listening(w.tg_port) and listening(w.vk_port) for w in workers)
                    and bool(telegram.find("setWebhook"))
                ),
                120,
                "the workers to listen",
                workers,
            )
        else:
            await wait_until(
                lambda: bool(telegram.find("getUpdates")) and "groups.getLongPollServer" in vk.calls,
                120,
                "the bot to poll",
                workers,
            )
        startup_s = time.monotonic() - started_at
        log(f"{len(workers)} worker(s) ready in {startup_s:.1f} s; {len(citizens)} citizens start")

        sampling = True

        async def sample() -> None:
            while sampling:
                for w in workers:
                    w.sample()
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())

        async def progress() -> None:
            while True:
                await asyncio.sleep(30)
                sent = sum(c.sent for c in citizens.values())
                shown = sum(len(c.inbox) for c in citizens.values())
                done = sum(1 for c in citizens.values() if c.sent >= args.messages)
                log(f"{time.monotonic() - t0:.0f} s: {sent} messages sent, {shown} replies shown, {done} citizens done")

        reporter = asyncio.create_task(progress())
        kills: list[float] = []

        async def killer() -> None:
            target = int(args.citizens * args.messages * 0.4)
            victim = workers[min(1, len(workers) - 1)]

            def reached() -> bool:
                return sum(len(c.inbox) for c in citizens.values()) >= target

            await wait_until(reached, args.reply_timeout * args.messages, "40 % of the replies", workers)
            kills.append(await victim.kill())
            log(f"SIGKILL {victim.name} after {sum(len(c.inbox) for c in citizens.values())} replies; restarting")
            await victim.start()

        kill_task = asyncio.create_task(killer()) if args.kill else None
        t0 = time.monotonic()
        await asyncio.gather(*(live(run, c) for c in citizens.values()))
        citizens_done = time.monotonic() - t0
        reporter.cancel()
        log(f"citizens done in {citizens_done:.1f} s; waiting for operator replies and the outbox")
        if kill_task is not None:
            if not kill_task.done():
                kill_task.cancel()
                log("the citizens finished before the kill point: no kill this run")
            with contextlib.suppress(asyncio.CancelledError):
                await kill_task
        # End of shift: operators answer no new card; their replies and every citizen's queued reply
        # go out (the operators' forum may still have a backlog: 20 messages a minute), then wait
        # for late duplicates.
        desk.on_shift = False
        settle_deadline = time.monotonic() + args.settle
        while time.monotonic() < settle_deadline:
            await asyncio.sleep(1.0)
            if not desk.tasks and not unresolved(desk, citizens) and await pending(db, url) == 0:
                break
        desk_backlog = await pending(db, url, DESK_PENDING_SQL)
        log(
            f"settled after {time.monotonic() - t0 - citizens_done:.1f} s ({await pending(db, url)} replies pending; "
            f"{desk_backlog} messages for the operators' forum still queued)"
        )
        await asyncio.sleep(2.0)
        wall = time.monotonic() - t0
        sampling = False
        await sampler
        for w in workers:
            w.sample()
        stored = await read_store(db, url)
        outcome = check(run, stored, desk, kills)
        outcome["desk_backlog_at_end"] = desk_backlog
    finally:
        for w in workers:
            await w.stop()
        await vk.release_pollers()
        if proxy is not None:
            await proxy.close()
        await telegram.close()
        await vk.stop()
        if server_cm is not None:
            server_cm.__exit__(None, None, None)

    latencies = [x for c in citizens.values() for x in c.latencies]
    net = [x for c in citizens.values() for x in c.net_latencies]
    kinds: Counter[str] = Counter()
    for c in citizens.values():
        kinds.update(c.kinds)
    slowest = [
        [latency, kind, what, c.platform, trouble(telegram, vk, c, start, end, kills)]
        for c in citizens.values()
        for latency, kind, what, start, end in c.slow
    ]
    slowest = sorted(slowest, key=lambda t: -float(t[0]))[:10]
    failed = [name for name, ok in outcome["checks"].items() if not ok]
    if failed:
        for w in workers:
            log(f"--- {w.name} log (tail)\n{w.tail(4000)}")
    return {
        "store": args.store,
        "workers": args.workers,
        "delivery": "webhook + Callback API behind a proxy" if webhook else "Telegram long polling + VK Bots Long Poll",
        "killed": len(kills),
        "citizens": args.citizens,
        "messages_per_citizen": args.messages,
        "fault_rate": args.fault_rate,
        "startup_s": round(startup_s, 1),
        "citizens_done_s": round(citizens_done, 1),
        "wall_s": round(wall, 1),
        "msgs_per_s": round(outcome["messages_sent"] / citizens_done, 1),
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3),
            "p99": round(percentile(latencies, 99), 3),
            "p50_without_platform_waits": round(percentile(net, 50), 3),
            "p99_without_platform_waits": round(percentile(net, 99), 3),
            "n": len(latencies),
        },
        "peak_rss_mb": {w.name: round(w.peak_kb / 1024, 1) for w in workers},
        "message_mix": dict(sorted(kinds.items())),
        "slowest_turns": slowest,
        "faults_injected": {
            "telegram": dict(telegram.faults.counts) if telegram.faults else {},
            "vk": dict(vk.faults.counts) if vk.faults else {},
        },
        "proxy": {"forwarded": proxy.forwarded, "passed_to_next_worker": proxy.retried} if proxy else None,
        **outcome,
        "failed_checks": failed,
    }


def trouble(telegram: FakeBotAPI, vk: FakeVk, c: Citizen, start: float, end: float, kills: list[float]) -> str:
    """What went wrong on a citizen's chat during one slow turn (to explain it)."""
    seen: Counter[str] = Counter()
    if c.platform == "telegram":
        for call in telegram.calls:
            if start <= call.at <= end and call.params.get("chat_id") == c.chat and call.status != 200:
                seen[f"{call.method} {'dropped' if call.dropped else call.status}"] += 1
    else:
        for peer, at, kind in vk.fault_log:
            if peer == c.chat and start <= at <= end:
                seen[kind] += 1
    seen.update("SIGKILL" for kill in kills if start <= kill <= end)
    return ", ".join(f"{k} x{n}" for k, n in seen.items())


def report(result: dict[str, Any]) -> None:
    lat = result["latency_s"]
    print(
        f"\n{result['store']}, {result['workers']} worker(s), {result['delivery']}"
        f"{', one SIGKILLed and restarted' if result['killed'] else ''}: "
        f"{result['citizens']} citizens x {result['messages_per_citizen']} messages, faults {result['fault_rate']:.0%}"
    )
    print(
        f"  {result['messages_sent']} messages in {result['citizens_done_s']} s: {result['msgs_per_s']} msgs/s; "
        f"reply latency p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s "
        f"(without platform-imposed waits: p50 {lat['p50_without_platform_waits']:.2f} s, "
        f"p99 {lat['p99_without_platform_waits']:.2f} s); peak RSS "
        + ", ".join(f"{k} {v} MB" for k, v in result["peak_rss_mb"].items())
    )
    print(f"  message mix: {result['message_mix']}; faults: {result['faults_injected']}")
    print(
        f"  replies: {result['replies_recorded']} recorded, {result['replies_delivered']} delivered, "
        f"{result['replies_lost']} lost, {result['duplicates_allowed']} allowed duplicates, "
        f"{result['duplicates_not_allowed']} duplicates without a cause; VK resends dropped by random_id: "
        f"{result['vk_resends_dropped_by_random_id']}"
    )
    print(
        f"  tickets: {result['tickets']} ({result['tickets_not_told']} not told, {result['extra_topics']} extra topics); "
        f"operator replies: {result['operator_replies']}, {result['operator_replies_exactly_once']} exactly once, "
        f"{result['operator_replies_refused_ticket_closed']} refused (ticket cancelled), "
        f"{result['operator_replies_lost']} not delivered by the end, {result['operator_replies_duplicated']} duplicated"
    )
    for latency, kind, what, platform, seen in result["slowest_turns"][:5]:
        print(f"  slow turn: {latency} s, {platform} {kind} {what!r}; meanwhile: {seen or 'no fault on this chat'}")
    for name, ok in result["checks"].items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    for kind, examples in result["examples"].items():
        for example in examples:
            print(f"    {kind}: {example}")


def save(directory: str, name: str, payload: dict[str, Any]) -> Path:
    if not directory:
        return write_results(name, payload)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    print(machine_header(info))
    knowledge = load_knowledge(KNOWLEDGE)
    args.opened_prefix = knowledge.text("ticket_opened").split("{ticket}")[0].strip()
    texts = list(dict.fromkeys(r.text for r in read_rows(DEV_TSV)))
    with tempfile.TemporaryDirectory(prefix="gosbot-load-") as tmp_dir:
        result = await one_mode(args, Path(tmp_dir), texts)
    report(result)
    summary = table(
        ["store", "workers", "citizens", "msgs/s", "p50 s", "p99 s", "peak RSS MB", "checks"],
        [
            [
                result["store"],
                f"{result['workers']}{' (1 killed)' if result['killed'] else ''}",
                str(result["citizens"]),
                f"{result['msgs_per_s']:.1f}",
                f"{result['latency_s']['p50_without_platform_waits']:.2f}",
                f"{result['latency_s']['p99_without_platform_waits']:.2f}",
                f"{max(result['peak_rss_mb'].values()):.0f}",
                "all hold" if not result["failed_checks"] else f"{len(result['failed_checks'])} FAIL",
            ]
        ],
    )
    print()
    print(summary)
    print(f"load average at end {load_average()} (on {info['cpu_count']} CPUs)")
    payload = {
        "benchmark": "load",
        "machine": info,
        "source": source_state(),
        "seed": args.seed,
        "percentile_method": "nearest rank",
        **result,
        "load_average_at_end": load_average(),
    }
    name = f"load-{args.store}{'-kill' if result['killed'] else ''}"
    path = save(args.results, name, payload)
    print(f"results: {path}")
    return 1 if result["failed_checks"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--citizens", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10, help="messages per citizen")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--workers", type=int, default=None, help="bot processes (default 1 on SQLite, 3 on PostgreSQL)"
    )
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker at 40 %% of the replies, restart it")
    parser.add_argument("--webhook", action="store_true", help="SQLite: webhook + Callback API instead of polling")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of platform calls that misbehave")
    parser.add_argument("--retry-after", type=int, default=1, help="seconds a Telegram 429 asks to wait")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--spare-membership",
        action="store_true",
        help="no faults on getChatMember (a failed membership check drops the operator's message: see bench/README.md)",
    )
    parser.add_argument("--ramp", type=float, default=5.0, help="citizens start spread over this many seconds")
    parser.add_argument("--reply-timeout", type=float, default=90.0, help="seconds a citizen waits for a reply")
    parser.add_argument("--quiet-telegram", type=float, default=1.3, help="no new message this long ends a turn")
    parser.add_argument("--quiet-vk", type=float, default=0.4)
    parser.add_argument(
        "--operator-wait", type=float, default=20.0, help="seconds a citizen who did not cancel waits for the person"
    )
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for queued sends at the end")
    parser.add_argument("--results", default="", help="directory for the JSON (default bench/results/)")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = 3 if args.store == "postgres" else 1
    if args.store == "sqlite" and args.workers > 1:
        parser.error("several workers need --store postgres")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
