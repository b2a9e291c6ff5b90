"""Several workers for real: three `gosbot run` processes in Telegram webhook mode on one PostgreSQL
(the session's throwaway server), sending through the fake Bot API on 127.0.0.1. The test plays
the reverse proxy: it POSTs each update to a worker of its choosing, as Telegram's webhook
deliveries would reach them through a load balancer.

What it proves, each with an assertion that fails without the mechanism behind it:
- the same update POSTed to all three workers at once is answered once (per-chat lock + the
  processed mark checked under it);
- a flow walked by button presses, each press through another worker, gives exactly the replies,
  in order, and ends in exactly the state one process alone reaches (a reference run);
- concurrent messages of one chat spread over the workers never lose a session write (the data
  warning, a flag in the session, is given once) and open one ticket between them;
- 150 outbox items are sent exactly once, each chat's in order, with three workers draining;
- an overdue ticket is announced on the desk once, and retention runs once, across the workers.
And, in VK Callback API mode, the first and the third of these.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.dialogue import Dialogue, KnowledgeSource
from bot.messages import Incoming, Reply
from bot.records import OutboxItem, Session, Ticket
from bot.storage import MemoryStore
from bot.storage.postgres import PostgresStore
from fakes.ports import free_port, listening
from fakes.telegram_api import OPS, FakeBotAPI
from fakes.vk_api import CALLBACK_CLIENT, GROUP_ID, FakeVk
from fakes.vk_api import TOKEN as VK_TOKEN

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-token-never-logged"
SECRET = "s3cr3t-Token_42"
WORKERS = 3


class Worker:
    """One `gosbot run` process with its own webhook port."""

    def __init__(self, n: int, env: dict[str, str], log: Path):
        self.n = n
        self.port = free_port()
        self.log = log
        self.env = {
            **os.environ,
            **env,
            "TELEGRAM_WEBHOOK_PORT": str(self.port),  # only one platform is configured: one port
            "VK_CALLBACK_PORT": str(self.port),
            "GOSBOT_KNOWLEDGE": str(ROOT / "knowledge"),
            "GOSBOT_HTTP_PORT": "0",  # no health server: three would want the same port
            "GOSBOT_LOG_LEVEL": "INFO",
        }
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tg/hook"

    async def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def until(check: Any, within: float, what: str, workers: list[Worker]) -> None:
    deadline = time.monotonic() + within
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        for w in workers:
            if not w.alive():
                raise AssertionError(f"worker {w.n} exited waiting for {what}:\n{w.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- worker {w.n}\n{w.log.read_text()[-1500:]}" for w in workers)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    fake = FakeBotAPI()  # no webhook_target: the test itself delivers the updates, to chosen workers
    await fake.start()
    yield fake
    await fake.close()


async def test_three_webhook_workers_on_one_postgres(api: FakeBotAPI, postgres_url: str, shipped: tuple, tmp_path):
    k = shipped[0]
    store = PostgresStore(postgres_url, max_size=2, lock_pool_size=1)
    await store.open()  # migrates; the test reads and seeds the shared database through it
    overdue = await store.create_ticket(
        Ticket(0, "telegram", "8900", "other_out_of_scope", "normal", "open", created_at=1.0, due_at=2.0), []
    )
    env = {
        "GOSBOT_DATABASE_URL": postgres_url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": api.base_url,
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.org/tg/hook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_WEBHOOK_HOST": "127.0.0.1",
        "TELEGRAM_OPERATORS_CHAT_ID": str(OPS),
    }
    workers = [Worker(n, env, tmp_path / f"worker{n}.log") for n in range(WORKERS)]
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        for w in workers:
            await w.start()
        await until(lambda: all(listening(w.port) for w in workers), 120, "three webhooks listening", workers)
        await until(lambda: len(api.find("setWebhook")) == WORKERS, 30, "three setWebhook calls", workers)

        async def post(worker: Worker, update: dict[str, Any]) -> None:
            async with http.post(
                worker.url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
            ) as answer:
                assert answer.status == 200, await answer.text()

        def texts(chat: int) -> list[str]:
            return [c.params["text"] for c in api.delivered(chat)]

        async def settled(chats: list[int]) -> None:
            """Every reply of these chats sent (nothing pending in the outbox), and a pause for late copies."""

            async def empty() -> bool:
                pending = await store.pool.fetchval(
                    "SELECT COUNT(*) FROM outbox WHERE status='pending' AND chat_id = ANY($1::text[])",
                    [str(c) for c in chats],
                )
                return pending == 0

            await until(empty, 60, "the outbox to drain", workers)
            await asyncio.sleep(2.5)  # more than the outbox interval: a second copy would be out by now

        # 1. The same update POSTed to every worker at once: answered once. A question the matcher
        # must read, so each turn takes a while: without the lock, copies overlap and each answers.
        reference = Dialogue(KnowledgeSource.fixed(*shipped), MemoryStore())
        question = "не приходит смс с кодом подтверждения"
        answer = [r.text for r in await reference.handle(Incoming("telegram", "1", "1", question, update_id="q"))]
        dup_chats = list(range(8001, 8031))
        updates = [api.message(chat, question) for chat in dup_chats]
        await asyncio.gather(*(post(w, update) for update in updates for w in workers))
        await until(lambda: all(texts(c) for c in dup_chats), 30, "the answers", workers)
        await settled(dup_chats)
        assert {c: texts(c) for c in dup_chats} == {c: answer for c in dup_chats}

        # 2. A flow walked by button presses, each through the next worker, against one process alone.
        walk_chat = 8100
        presses = [f"f:{flow_id}" for flow_id in sorted(k.flows)[:1]]
        expected: list[str] = []
        for step in range(8):
            replies: list[Reply] = await reference.handle(
                Incoming("telegram", str(walk_chat), str(walk_chat), payload=presses[-1], update_id=f"r{step}")
            )
            expected += [r.text for r in replies]
            options = [b.payload for r in replies for b in r.buttons if b.payload.startswith("o:")]
            # Down the tree by the last option, or back when the step has none (the back stack matters).
            presses.append(options[-1] if options and step % 3 != 2 else "back")
        presses.pop()  # the last one chosen was never pressed in the reference
        for n, payload in enumerate(presses):
            await post(workers[n % WORKERS], api.callback(walk_chat, payload))
        await settled([walk_chat])
        assert texts(walk_chat) == expected
        want = await reference.store.load_session("telegram", str(walk_chat))
        got = Session.from_json(
            await store.pool.fetchval("SELECT state FROM sessions WHERE chat_id=$1", str(walk_chat))
        )
        assert (got.flow_id, got.step_id, got.history, got.steps_tried) == (
            want.flow_id,
            want.step_id,
            want.history,
            want.steps_tried,
        )

        # 3. One chat's messages at once over every worker: no session write lost, one ticket.
        busy, handoff = 8200, 8300
        burst = [api.message(busy, f"мой телефон +7 912 345-67-{10 + n} не приходит смс") for n in range(9)]
        burst += [api.message(handoff, "/operator") for _ in range(6)]
        await asyncio.gather(*(post(workers[n % WORKERS], u) for n, u in enumerate(burst)))
        await settled([busy, handoff])
        warning = k.text("sensitive_data_warning", what="\x00").split("\x00")[0]
        assert sum(t.startswith(warning) for t in texts(busy)) == 1, texts(busy)
        citizen_lines = await store.pool.fetchval(
            "SELECT COUNT(*) FROM transcript WHERE chat_id=$1 AND role='citizen'", str(busy)
        )
        assert citizen_lines == 9
        opened = k.text("ticket_opened").split("{ticket}")[0]
        assert sum(t.startswith(opened) for t in texts(handoff)) == 1, texts(handoff)
        assert await store.pool.fetchval("SELECT COUNT(*) FROM tickets WHERE chat_id=$1", str(handoff)) == 1

        # 4. The outbox drained by three workers: every item once, each chat's in order.
        out_chats = list(range(8401, 8431))
        for i in range(5):
            for chat in out_chats:
                await store.enqueue(OutboxItem("telegram", str(chat), Reply(f"outbox {chat} #{i}"), created_at=1.0))
        await until(lambda: all(len(texts(c)) >= 5 for c in out_chats), 60, "150 outbox items delivered", workers)
        await settled(out_chats)
        assert {c: texts(c) for c in out_chats} == {c: [f"outbox {c} #{i}" for i in range(5)] for c in out_chats}

        # 5. Once across workers: the overdue notice, and the retention round.
        notices = [t for t in texts(OPS) if "Просрочено" in t]
        assert notices == [f"⏰ Просрочено обращение № {overdue.number} ({overdue.topic})"]
        rounds = Counter(w.n for w in workers for line in w.log.read_text().splitlines() if "retention round" in line)
        assert sum(rounds.values()) == 1, rounds
        jobs = {r["name"] for r in await store.pool.fetch("SELECT name FROM jobs")}
        assert jobs == {"retention", "telegram.overdue"}
        for w in workers:
            assert w.alive(), w.log.read_text()[-3000:]
            assert "Traceback" not in w.log.read_text(), w.log.read_text()[-3000:]
            assert TOKEN not in w.log.read_text()
    finally:
        await http.close()
        await asyncio.gather(*(w.stop() for w in workers))
        await store.close()


async def test_three_vk_callback_workers_on_one_postgres(postgres_url: str, shipped: tuple, tmp_path):
    k = shipped[0]
    vk = FakeVk()
    await vk.start()
    store = PostgresStore(postgres_url, max_size=2, lock_pool_size=1)
    await store.open()
    env = {
        "GOSBOT_DATABASE_URL": postgres_url,
        "VK_GROUP_TOKEN": VK_TOKEN,
        "VK_GROUP_ID": str(GROUP_ID),
        "VK_API_BASE": f"{vk.url}/method",
        "VK_CALLBACK_SECRET": "s3cret",
        "VK_CONFIRMATION_CODE": "c0nf1rm",
        "VK_CALLBACK_HOST": "127.0.0.1",
    }
    workers = [Worker(n, env, tmp_path / f"vk{n}.log") for n in range(WORKERS)]
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        for w in workers:
            await w.start()
        await until(lambda: all(listening(w.port) for w in workers), 120, "three callback endpoints", workers)

        async def post(worker: Worker, event: dict[str, Any]) -> None:
            async with http.post(
                f"http://127.0.0.1:{worker.port}/vk/callback", json={**event, "secret": "s3cret"}
            ) as a:
                assert (a.status, await a.text()) == (200, "ok")

        async def rows(sql: str, *args: object) -> Counter[str]:
            return Counter(str(r[0]) for r in await store.pool.fetch(sql, *args))

        # The same event POSTed to every worker at once: handled once (one citizen line, one reply).
        question = "не приходит смс с кодом подтверждения"
        chats = list(range(9001, 9021))
        events = [vk.message_new(chat, question, client=CALLBACK_CLIENT) for chat in chats]
        await asyncio.gather(*(post(w, event) for event in events for w in workers))
        citizen = await rows("SELECT chat_id FROM transcript WHERE platform='vk' AND role='citizen'")
        assert citizen == Counter({str(c): 1 for c in chats})
        replies = await rows("SELECT chat_id FROM outbox WHERE platform='vk'")
        assert replies == Counter({str(c): 1 for c in chats})  # the reply queued once, however it is sent
        await until(lambda: all(vk.to(c) for c in chats), 30, "the replies", workers)

        # One chat's messages at once over every worker: the session's data warning given once.
        busy = 9100
        burst = [vk.message_new(busy, f"мой телефон +7 912 345-67-{10 + n} не приходит смс") for n in range(9)]
        await asyncio.gather(*(post(workers[n % WORKERS], e) for n, e in enumerate(burst)))
        warning = k.text("sensitive_data_warning", what="\x00").split("\x00")[0]
        said = [
            r["text"]
            for r in await store.pool.fetch("SELECT text FROM transcript WHERE chat_id=$1 AND role='bot'", str(busy))
        ]
        assert sum(t.startswith(warning) for t in said) == 1, said
        assert len(said) >= 9
        for w in workers:
            assert w.alive(), w.log.read_text()[-3000:]
            assert "Traceback" not in w.log.read_text(), w.log.read_text()[-3000:]
    finally:
        await http.close()
        await asyncio.gather(*(w.stop() for w in workers))
        await store.close()
        await vk.stop()
