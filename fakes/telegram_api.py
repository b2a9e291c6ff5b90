"""A small fake of the Telegram Bot API on 127.0.0.1, for aiogram's real HTTP client.

It records every call, serves getUpdates from a queue the test fills (long polling, with offsets:
an update is kept until a later getUpdates' offset passes it, as Telegram does), or, once the bot
set a webhook and the test named where it really listens (`webhook_target`), POSTs each update
there and keeps redelivering it until it is answered 200. It misbehaves on request: a 429 with
retry_after or a 500 once, a message delivered but its answer lost (`deliver=True`), a chat that
blocked the bot, a deleted forum topic, who is a member of the operators' chat. With `faults` (a
seeded FaultMix) it also misbehaves at random: 429s with retry_after, 500s, slow answers, and
connections dropped before or after the message was delivered (fakes/faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from adapters.telegram import Limits, TelegramOptions
from fakes.faults import TELEGRAM_KINDS, FaultMix

_ARRIVED: ContextVar[float] = ContextVar("arrived", default=0.0)  # when the request being answered arrived

OPS = -1001234567890  # the operators' forum supergroup
OPERATOR = 9001  # a member of it
BOT = {"id": 4242, "is_bot": True, "first_name": "Госуслуги помощник", "username": "gosbot_test_bot"}
JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "scope", "link_preview_options", "reply_parameters"}
INT_FIELDS = {"chat_id", "from_chat_id", "message_thread_id", "message_id", "user_id", "offset", "timeout", "limit"}
BOOL_FIELDS = {"show_alert", "drop_pending_updates"}


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    status: int
    at: float  # time.monotonic() when answered
    delivered: bool = False  # a message reached the chat (also when its answer was then lost)
    dropped: bool = False  # the connection was closed instead of answering (status 0)
    result: Any = None  # what the call returned (or would have, when the answer was dropped)
    received: float = 0.0  # time.monotonic() when the request arrived (a slow answer comes later)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of an inline keyboard, one per row."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class Failure:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    times: int = 1
    deliver: bool = False  # do the call, then answer with the error anyway (the answer is lost)


class FakeBotAPI:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.blocked_chats: set[int] = set()
        self.deleted_threads: set[int] = set()
        self.members: dict[int, str] = {}  # user id -> status in the operators' chat ("left" if absent)
        self.originals: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message id) -> pushed message
        self.copies: list[dict[str, Any]] = []  # what copyMessage put in a chat: the content as shown
        self._updates: list[dict[str, Any]] = []
        self._failures: list[Failure] = []
        self._malformed: set[str] = set()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._thread_ids = itertools.count(500)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.webhook_target: str | None = None  # where the bot's webhook really listens (tests set it)
        self.webhook_secret: str | None = None  # set by setWebhook; None: no webhook
        self.webhook_posts = 0  # every POST of an update (redeliveries included)
        self._webhook_task: asyncio.Task[None] | None = None
        self.faults: FaultMix | None = None  # random trouble, for the load suite
        self.faultable = frozenset(
            {"sendMessage", "copyMessage", "createForumTopic", "answerCallbackQuery", "getChatMember"}
        )
        self.imposed: list[tuple[int | None, float, float]] = []  # (chat, when, seconds) of 429s and slow answers
        self.listeners: list[Callable[[Call], None]] = []  # told of every call as it is recorded

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the test does ----------------------------------------------------------------------

    async def push(self, *updates: dict[str, Any]) -> list[int]:
        """Queue updates (in one getUpdates batch if the bot is not reading right now)."""
        ids = []
        for update in updates:
            update.setdefault("update_id", next(self._update_ids))
            ids.append(update["update_id"])
            message = update.get("message")
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                self.originals[(message["chat"].get("id"), message.get("message_id"))] = message
            self._updates.append(update)
        async with self._changed:
            self._changed.notify_all()
        return ids

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        deliver: bool = False,
    ) -> None:
        self._failures.append(Failure(method, status, description, retry_after, times, deliver))

    def delivered(self, chat_id: int | None = None) -> list[Call]:
        """Every message a chat (or any chat) received, in order, duplicates included."""
        return [
            c
            for c in self.calls
            if c.method == "sendMessage" and c.delivered and chat_id in (None, c.params.get("chat_id"))
        ]

    def malformed(self, method: str) -> None:
        """Answer `method` with a body that is not JSON (a proxy's error page), every time."""
        self._malformed.add(method)

    def find(self, method: str, **params: Any) -> list[Call]:
        return [c for c in self.calls if c.method == method and all(c.params.get(k) == v for k, v in params.items())]

    def sent(self, chat_id: int, *, ok: bool = True) -> list[Call]:
        return [c for c in self.find("sendMessage", chat_id=chat_id) if c.ok or not ok]

    async def wait_for(self, match: Callable[[Call], bool], count: int = 1, within: float = 10.0) -> list[Call]:
        """Wait until `count` recorded calls match; returns them."""

        def matching() -> list[Call]:
            return [c for c in self.calls if match(c)]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), within)
        return matching()

    async def wait_sent(self, chat_id: int, count: int = 1, within: float = 10.0) -> list[Call]:
        return await self.wait_for(
            lambda c: c.method == "sendMessage" and c.ok and c.params.get("chat_id") == chat_id, count, within
        )

    # -- the API ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        _ARRIVED.set(time.monotonic())
        method = request.match_info["method"]
        params = _parse(await request.post())
        if method == "getUpdates":
            updates = await self._get_updates(params)
            self._record(Call(method, params, 200, time.monotonic()))
            return self._ok(updates)
        if method in self._malformed:
            self._record(Call(method, params, 200, time.monotonic()))
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        kind = self.faults.draw(TELEGRAM_KINDS) if self.faults is not None and method in self.faultable else None
        if kind is not None:
            return await self._fault(kind, method, params, request)
        status, body, delivered = self._answer(method, params)
        self._record(Call(method, params, status, time.monotonic(), delivered, result=body.get("result")))
        if method == "setWebhook" and status == 200:
            self._start_webhook(params.get("secret_token", ""))
        elif method == "deleteWebhook" and status == 200:
            self.webhook_secret = None
        async with self._changed:
            self._changed.notify_all()
        return web.json_response(body, status=status)

    def _record(self, call: Call) -> None:
        if not call.received:
            call = dataclasses.replace(call, received=_ARRIVED.get() or call.at)
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)

    async def _fault(self, kind: str, method: str, params: dict[str, Any], request: web.Request) -> web.Response:
        assert self.faults is not None
        chat = params.get("chat_id")
        if kind == "slow":
            delay = self.faults.delay()
            self.imposed.append((chat, time.monotonic(), delay))
            await asyncio.sleep(delay)
            status, body, delivered = self._answer(method, params)
            self._record(Call(method, params, status, time.monotonic(), delivered, result=body.get("result")))
        elif kind == "429":
            wait = self.faults.retry_after
            self.imposed.append((chat, time.monotonic(), float(wait)))
            status = 429
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {wait}",
                "parameters": {"retry_after": wait},
            }
            self._record(Call(method, params, status, time.monotonic()))
        elif kind == "500":
            status, body = _error(500, "Internal Server Error")
            self._record(Call(method, params, status, time.monotonic()))
        else:  # "drop" / "delivered-drop": no answer at all
            result = None
            delivered = False
            if kind == "delivered-drop":
                status, done = self._work(method, params)
                result = done.get("result")
                delivered = status == 200 and method == "sendMessage"
                if status != 200:
                    result = None
            self._record(Call(method, params, 0, time.monotonic(), delivered, dropped=True, result=result))
            async with self._changed:
                self._changed.notify_all()
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        async with self._changed:
            self._changed.notify_all()
        return web.json_response(body, status=status)

    def _ok(self, result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset", 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._updates)), 0.3)
        return list(self._updates[: params.get("limit", 100)])

    # -- webhook delivery ------------------------------------------------------------------------

    def _start_webhook(self, secret: str) -> None:
        self.webhook_secret = secret
        if self.webhook_target is not None and self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._post_updates())

    async def _post_updates(self) -> None:
        """Like Telegram: each update is POSTed until answered 200 (one at a time per chat, chats in
        parallel, at most 40 connections), redelivered after a failure or a refused connection."""
        in_flight: set[int] = set()
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def post(update: dict[str, Any], chat: int) -> None:
                self.webhook_posts += 1
                try:
                    async with http.post(
                        self.webhook_target or "",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""},
                    ) as answer:
                        if answer.status == 200:
                            self._updates.remove(update)
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.05)  # the bot is down: try again soon
                finally:
                    in_flight.discard(chat)

            while True:
                if self.webhook_secret is not None:
                    for update in list(self._updates):
                        chat = _chat_of(update)
                        if chat in in_flight or len(in_flight) >= 40:
                            continue
                        in_flight.add(chat)
                        task = asyncio.create_task(post(update, chat))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                await asyncio.sleep(0.01)

    def _answer(self, method: str, p: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """(status, body, whether a message reached its chat)."""
        for failure in self._failures:
            if failure.method == method and failure.times > 0:
                failure.times -= 1
                body: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
                if failure.retry_after is not None:
                    body["parameters"] = {"retry_after": failure.retry_after}
                delivered = failure.deliver and self._work(method, p)[0] == 200
                return failure.status, body, delivered
        status, body = self._work(method, p)
        return status, body, status == 200 and method == "sendMessage"

    def _work(self, method: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method in ("sendMessage", "copyMessage") and p.get("chat_id") in self.blocked_chats:
            return _error(403, "Forbidden: bot was blocked by the user")
        if method in ("sendMessage", "copyMessage") and p.get("message_thread_id") in self.deleted_threads:
            return _error(400, "Bad Request: message thread not found")
        if method == "getMe":
            return _result(BOT)
        if method == "sendMessage":
            return _result(self._message(p))
        if method == "copyMessage":
            self.copies.append(self._copy(p))
            return _result({"message_id": next(self._message_ids)})
        if method == "createForumTopic":
            return _result({"message_thread_id": next(self._thread_ids), "name": p["name"], "icon_color": 7322096})
        if method == "getChatMember":
            user = {"id": p["user_id"], "is_bot": False, "first_name": "Сотрудник"}
            status = self.members.get(p["user_id"], "left")
            extra: dict[str, Any] = {}
            if status == "creator":
                extra = {"is_anonymous": False}
            elif status == "administrator":
                rights = ("manage_chat", "delete_messages", "manage_video_chats", "restrict_members")
                rights += ("promote_members", "change_info", "invite_users", "post_stories", "edit_stories")
                extra = {"can_be_edited": False, "is_anonymous": False, **{f"can_{r}": True for r in rights}}
                extra.update(can_delete_stories=True, can_send_welcome_messages=True)
            return _result({"status": status, "user": user, **extra})
        if method in ("answerCallbackQuery", "setMyCommands", "deleteWebhook", "setWebhook", "reopenForumTopic"):
            return _result(True)
        return _error(404, "Not Found: method not found")

    def _copy(self, p: dict[str, Any]) -> dict[str, Any]:
        """The copied message as Telegram would show it: the original's content; its caption unless
        a new one was given (an empty one removes it)."""
        original = self.originals.get((p.get("from_chat_id"), p.get("message_id")), {})
        shown = {k: v for k, v in original.items() if k not in ("message_id", "date", "chat", "from")}
        if "caption" in p:
            shown.pop("caption", None)
            if p["caption"]:
                shown["caption"] = p["caption"]
        return {"chat_id": p.get("chat_id"), "message_thread_id": p.get("message_thread_id"), **shown}

    def _message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = p["chat_id"]
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": BOT,
            "text": p.get("text", ""),
        }
        if p.get("message_thread_id"):
            message.update(message_thread_id=p["message_thread_id"], is_topic_message=True)
        return message

    # -- building updates ------------------------------------------------------------------------

    def message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        name: str = "Анна",
        chat_type: str = "private",
        thread: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": name}
        chat = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = name
        else:
            chat.update(title="Группа", is_forum=thread is not None)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **content,
        }
        if text is not None:
            message["text"] = text
        if thread is not None:
            message.update(message_thread_id=thread, is_topic_message=True)
        return {"update_id": next(self._update_ids), "message": message}

    def callback(self, chat_id: int, data: str, *, user_id: int | None = None, chat_type: str = "private"):
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Анна"}
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": f"cb{next(self._callback_ids)}",
                "from": user,
                "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": chat_type},
                    "from": BOT,
                    "text": "…",
                },
            },
        }


STICKER = {
    "sticker": {
        "file_id": "sticker1",
        "file_unique_id": "s1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
}
PHOTO = {"photo": [{"file_id": "photo1", "file_unique_id": "p1", "width": 640, "height": 480}]}


def _chat_of(update: dict[str, Any]) -> int:
    if "message" in update:
        return int(update["message"]["chat"]["id"])
    query = update.get("callback_query", {})
    return int(query.get("message", {}).get("chat", {}).get("id", 0))


def _parse(form: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in form.items():
        if key in JSON_FIELDS:
            params[key] = json.loads(value)
        elif key in INT_FIELDS:
            params[key] = int(value)
        elif key in BOOL_FIELDS:
            params[key] = value == "true"
        else:
            params[key] = value
    return params


def _result(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"ok": True, "result": result}


def _error(status: int, description: str) -> tuple[int, dict[str, Any]]:
    return status, {"ok": False, "error_code": status, "description": description}


# Adapter options for tests: no real waiting, quick retries and shutdown.
FAST = TelegramOptions(
    limits=Limits(per_second=1000, chat_interval=0.01, group_interval=0.01, retry_base=0.05, max_inline_wait=5),
    outbox_interval=0.05,
    polling_timeout=1,
    overdue_every=0.1,
    shutdown_grace=2,
)
