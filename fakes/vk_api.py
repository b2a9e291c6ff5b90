"""A small local fake of the VK API and its Bots Long Poll server (aiohttp on 127.0.0.1).

It answers the methods the adapter uses the way VK does (form-encoded POST, {"response": …} or
{"error": {"error_code": …}}), checks what VK checks (token, keyboard limits, text length), drops
a resend with a random_id it has seen (VK's own guarantee), and records what a citizen would see.
Failures are scripted per method: an API error code, an HTTP status, or "delivered, but the answer
was lost". Pushed events go to the long poll server, or, after `post_callbacks(url, secret)`, are
POSTed to a Callback API endpoint and redelivered until it answers "ok", as VK does. With `faults`
(a seeded FaultMix) it also misbehaves at random: errors 6 and 9, HTTP 500s, slow answers, and
connections dropped before or after the message was delivered (fakes/faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from fakes.faults import VK_KINDS, FaultMix

TOKEN = "vk1.a.fake-group-token"
GROUP_ID = 1234567
CALLBACK_CLIENT = {
    "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback", "intent_subscribe"],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}
TEXT_CLIENT = {"button_actions": ["text"], "keyboard": True, "inline_keyboard": True, "lang_id": 0}
# Adapter options for tests: short long poll requests, quick retries, a busy outbox worker.
FAST = {"longpoll_wait": 2, "retry_base": 0.02, "outbox_every": 0.05}
PLAIN_CLIENT = {"button_actions": [], "keyboard": False, "inline_keyboard": False, "lang_id": 0}


@dataclass
class Sent:
    """A message as delivered to a chat."""

    peer_id: int
    text: str
    random_id: int
    keyboard: dict[str, Any] | None = None
    at: float = 0.0  # time.monotonic() when shown

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button's action, row by row."""
        if not self.keyboard:
            return []
        return [button["action"] for row in self.keyboard["buttons"] for button in row]

    def payload_of(self, label_start: str) -> str:
        """The raw JSON payload of the first button whose label starts so."""
        return next(b["payload"] for b in self.buttons if b["label"].startswith(label_start))


@dataclass
class Failure:
    code: int | None = None  # a VK API error code
    http: int | None = None  # an HTTP status instead
    deliver: bool = False  # deliver the message, then fail anyway (the answer is lost)
    peer_id: int | None = None  # only for messages to this chat


@dataclass
class FakeVk:
    token: str = TOKEN
    group_id: int = GROUP_ID
    sent: list[Sent] = field(default_factory=list)
    event_answers: list[dict[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.url = ""
        self._failures: dict[str, list[Failure]] = {}
        self._updates: list[dict[str, Any]] = []  # ts of an update = its index + 1
        self._news = asyncio.Condition()
        self._closing = False
        self._random_ids: dict[tuple[int, int], int] = {}
        self._next_event = 0
        self.forgotten_before = 0  # the long poll history before this ts is gone (failed=1)
        self.callback_posts = 0  # every POST of an event (redeliveries included)
        self._acked: set[int] = set()  # indexes of events a Callback endpoint answered "ok"
        self._callback_task: asyncio.Task[None] | None = None
        self.sends_open = asyncio.Event()
        self.sends_open.set()
        self.faults: FaultMix | None = None  # random trouble, for the load suite
        self.faultable = frozenset({"messages.send", "messages.sendMessageEventAnswer"})
        self.imposed: list[tuple[int | None, float, float]] = []  # (peer, when, seconds) of slow answers
        self.delivered_then_dropped: list[tuple[int, int]] = []  # (peer, random_id) sent, answer never came
        self.resends: int = 0  # messages.send with a (peer, random_id) already delivered: not shown again
        self.listeners: list[Callable[[Sent], None]] = []  # told of every message shown in a chat
        self.errors: Counter[str] = Counter()  # faults answered, by kind
        self.fault_log: list[tuple[int | None, float, str]] = []  # (peer, when, kind) of every fault
        app = web.Application()
        app.router.add_post("/method/{name}", self._method)
        app.router.add_get("/lp", self._long_poll)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._callback_task is not None:
            self._callback_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._callback_task
        await self.release_pollers()
        await self._runner.cleanup()

    def post_callbacks(self, url: str, secret: str) -> None:
        """From now on deliver every pushed event to a Callback API endpoint."""
        self._callback_task = asyncio.create_task(self._post_events(url, secret))

    async def _post_events(self, url: str, secret: str) -> None:
        """Each event is POSTed until answered "ok" (one at a time per chat, chats in parallel),
        redelivered after a failure or a refused connection."""
        in_flight: set[object] = set()
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def post(index: int, chat: object) -> None:
                self.callback_posts += 1
                try:
                    async with http.post(url, json={**self._updates[index], "secret": secret}) as answer:
                        if answer.status == 200 and await answer.text() == "ok":
                            self._acked.add(index)
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.05)
                finally:
                    in_flight.discard(chat)

            while True:
                for index, update in enumerate(self._updates):
                    chat = update["object"].get("message", update["object"]).get("peer_id")
                    if index in self._acked or chat in in_flight:
                        continue
                    in_flight.add(chat)
                    task = asyncio.create_task(post(index, chat))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(0.01)

    async def release_pollers(self) -> None:
        """Answer waiting long poll requests now (so an adapter stops without waiting `wait` seconds)."""
        self._closing = True
        async with self._news:
            self._news.notify_all()

    # -- scripting -------------------------------------------------------------------------------

    def fail(self, method: str, times: int = 1, **failure: Any) -> None:
        self._failures.setdefault(method, []).extend(Failure(**failure) for _ in range(times))

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """A VK event body as both delivery ways carry it."""
        self._next_event += 1
        return {
            "type": kind,
            "object": obj,
            "group_id": self.group_id,
            "event_id": event_id or f"ev{self._next_event:06d}",
            "v": "5.199",
        }

    def message_new(
        self, peer_id: int, text: str, payload: str | None = None, client: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._next_event += 1
        message: dict[str, Any] = {
            "date": 1700000000,
            "from_id": peer_id,
            "id": self._next_event,
            "out": 0,
            "peer_id": peer_id,
            "text": text,
            "conversation_message_id": self._next_event,
            "attachments": [],
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
            "random_id": 0,
        }
        if payload is not None:
            message["payload"] = payload
        return self.event("message_new", {"message": message, "client_info": client or CALLBACK_CLIENT})

    def message_event(self, peer_id: int, payload: Any, press_id: str = "press-1") -> dict[str, Any]:
        obj = {
            "user_id": peer_id,
            "peer_id": peer_id,
            "event_id": press_id,
            "payload": payload,
            "conversation_message_id": 1,
        }
        return self.event("message_event", obj)

    async def push(self, update: dict[str, Any]) -> None:
        """Hand an update to the long poll server."""
        async with self._news:
            self._updates.append(update)
            self._news.notify_all()

    def to(self, peer_id: int) -> list[Sent]:
        return [m for m in self.sent if m.peer_id == peer_id]

    # -- the API ---------------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        form = dict(await request.post())
        self.calls.append(name)
        if form.get("access_token") != self.token:
            return _error(5, "User authorization failed: invalid access_token")
        if not form.get("v"):
            return _error(8, "Invalid request: v is required")
        kind = self.faults.draw(VK_KINDS) if self.faults is not None and name in self.faultable else None
        if kind is not None:
            return await self._fault(kind, name, form, request)
        failure = self._take_failure(name, form)
        if failure is not None and not failure.deliver:
            return _failure(failure)
        handler = getattr(self, "_" + name.replace(".", "_"), None)
        if handler is None:
            return _error(3, f"Unknown method passed: {name}")
        answer = await handler(form)
        if failure is not None:
            return _failure(failure)
        return answer

    async def _fault(self, kind: str, name: str, form: dict[str, Any], request: web.Request) -> web.Response:
        assert self.faults is not None
        peer = int(form["peer_id"]) if str(form.get("peer_id", "")).lstrip("-").isdigit() else None
        self.errors[kind] += 1
        self.fault_log.append((peer, time.monotonic(), kind))
        if kind in ("vk6", "vk9"):
            code = 6 if kind == "vk6" else 9
            return _error(code, "Too many requests per second" if code == 6 else "Flood control")
        if kind == "500":
            return web.Response(status=500, text="Internal Server Error")
        if kind == "slow":
            delay = self.faults.delay()
            self.imposed.append((peer, time.monotonic(), delay))
            await asyncio.sleep(delay)
            handler = getattr(self, "_" + name.replace(".", "_"))
            return await handler(form)
        if kind == "delivered-drop":
            handler = getattr(self, "_" + name.replace(".", "_"))
            await handler(form)
            if name == "messages.send" and peer is not None:
                self.delivered_then_dropped.append((peer, int(form["random_id"])))
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _take_failure(self, name: str, form: dict[str, Any]) -> Failure | None:
        queue = self._failures.get(name, [])
        for index, failure in enumerate(queue):
            if failure.peer_id is None or str(failure.peer_id) == form.get("peer_id"):
                return queue.pop(index)
        return None

    async def _groups_getLongPollServer(self, form: dict[str, Any]) -> web.Response:
        if form.get("group_id") != str(self.group_id):
            return _error(100, "One of the parameters specified was missing or invalid: group_id")
        return _ok({"key": "lp-key", "server": f"{self.url}/lp", "ts": str(len(self._updates))})

    async def _groups_getById(self, form: dict[str, Any]) -> web.Response:
        return _ok({"groups": [{"id": self.group_id, "name": "Госуслуги помощь"}], "profiles": []})

    async def _messages_send(self, form: dict[str, Any]) -> web.Response:
        await self.sends_open.wait()
        peer_id, random_id, text = int(form["peer_id"]), int(form["random_id"]), str(form.get("message", ""))
        if not text or len(text) > 4096:
            return _error(914, "Message is too long") if text else _error(100, "message is empty")
        keyboard = json.loads(form["keyboard"]) if form.get("keyboard") else None
        if keyboard is not None and (problem := _keyboard_problem(keyboard)):
            return _error(911, f"Keyboard format is invalid: {problem}")
        key = (peer_id, random_id)
        if key not in self._random_ids:  # VK delivers a random_id once per chat
            message = Sent(peer_id, text, random_id, keyboard, time.monotonic())
            self.sent.append(message)
            self._random_ids[key] = len(self.sent)
            for listener in self.listeners:
                listener(message)
        else:
            self.resends += 1
        return _ok(self._random_ids[key])

    async def _messages_sendMessageEventAnswer(self, form: dict[str, Any]) -> web.Response:
        self.event_answers.append({k: str(form[k]) for k in ("event_id", "user_id", "peer_id")})
        return _ok(1)

    # -- the long poll server --------------------------------------------------------------------

    async def _long_poll(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("act") != "a_check" or query.get("key") != "lp-key":
            return web.json_response({"failed": 2})
        ts = int(query.get("ts", "0"))
        wait = float(query.get("wait", "25"))
        if ts < self.forgotten_before:  # VK: "the event history went out of date or was partially lost"
            return web.json_response({"failed": 1, "ts": str(len(self._updates))})
        async with self._news:
            if len(self._updates) <= ts and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), wait)
            updates = self._updates[ts:]
        return web.json_response({"ts": str(ts + len(updates)), "updates": updates})


def _keyboard_problem(keyboard: dict[str, Any]) -> str | None:
    rows = keyboard.get("buttons", [])
    count = sum(len(row) for row in rows)
    max_rows, max_count = (6, 10) if keyboard.get("inline") else (10, 40)
    if len(rows) > max_rows or count > max_count:
        return f"{len(rows)} rows / {count} buttons"
    for row in rows:
        if len(row) > 5:
            return "more than 5 buttons in a row"
        for button in row:
            action = button["action"]
            if action["type"] not in ("text", "callback"):
                return f"unexpected type {action['type']}"
            if len(action["label"]) > 40:
                return f"label too long: {action['label']}"
            if len(action["payload"].encode()) > 255:
                return "payload too long"
    return None


def _ok(response: Any) -> web.Response:
    return web.json_response({"response": response})


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"error": {"error_code": code, "error_msg": message, "request_params": []}})


def _failure(failure: Failure) -> web.Response:
    if failure.http is not None:
        return web.Response(status=failure.http, text="Bad Gateway")
    return _error(failure.code or 10, "Flood control" if failure.code == 9 else "scripted failure")


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    """Wait until `check()` (plain or a coroutine) is true: the adapter works in the background."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            raise AssertionError("the expected outcome did not happen in time")
        await asyncio.sleep(0.01)
