"""The VK community adapter: VK events → `Incoming` → the core → messages.send.

Events arrive by Bots Long Poll or, when VK_CALLBACK_SECRET or VK_CONFIRMATION_CODE is set, by the
Callback API. Messages of one chat are handled and answered one at a time, in order; chats run
concurrently. Replies that cannot be sent now go to the persistent outbox, which this adapter also
drains for platform "vk" (operators' answers, ticket news).

Kept in memory only, so lost on restart (harmless): what each chat's client can show (an unknown
client gets inline text buttons), the numbered options last shown to a chat without keyboards, and
recent event ids (the core's stored dedupe still catches a redelivery after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from adapters.vk import longpoll
from adapters.vk.api import KEYBOARD_REFUSED, VkApiClient, VkSendError
from adapters.vk.callback import CallbackServer, make_app
from adapters.vk.events import VkButtonPress, VkEvent, VkMessage, VkPermission, parse_event
from adapters.vk.keyboard import UNKNOWN_CLIENT, ClientInfo, Pressed, Rendered, random_id, render, render_numbered
from bot.config import Settings
from bot.dialogue import Dialogue
from bot.messages import Attachment, Button, Incoming, Reply
from bot.outbox import GiveUp, OutboxWorker, TryLater
from bot.records import OutboxItem
from bot.storage.base import SingleProcessOnly

log = logging.getLogger(__name__)

PLATFORM = "vk"
RANDOM_SEED = "vk-rid:"  # an outbox item's `event` when it is a direct reply that failed (keeps its random_id)
START_WORDS = frozenset({"начать", "start", "старт"})
CALLBACK_CLIENT = ClientInfo(keyboard=True, inline_keyboard=True, button_actions=frozenset({"text", "callback"}))
MAX_REMEMBERED = 10_000
MAX_OUTBOX_PAUSE = 300.0

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A bounded map that forgets the least recently used keys."""

    def __init__(self, size: int = MAX_REMEMBERED):
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return None

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class VkAdapter:
    """`await VkAdapter(settings, dialogue).run(stop)` serves the community until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        dialogue: Dialogue,
        *,
        longpoll_wait: int = 25,
        retry_base: float = 1.0,
        outbox_every: float = 1.0,
        rate: float = 20.0,
        start_attempts: int | None = None,
    ):
        self.settings = settings
        self.start_attempts = start_attempts  # long poll failures before the first connection that give up
        self.dialogue = dialogue
        self.store = dialogue.store
        self.longpoll_wait = longpoll_wait
        self.retry_base = retry_base
        self.rate = rate
        self.callback_mode = settings.vk_callback_mode
        if self.callback_mode and not (settings.vk_callback_secret and settings.vk_group_id):
            # Fail closed: without both, forged events (or another community's) would be answered.
            raise ValueError("VK_CALLBACK_SECRET and VK_GROUP_ID are required in VK Callback API mode")
        self.callback_server: CallbackServer | None = None
        self.ready = asyncio.Event()  # set once events can arrive (the callback port is known)
        self.client: VkApiClient | None = None
        self._clients: Recent[int, ClientInfo] = Recent()
        self._numbered: Recent[int, tuple[Button, ...]] = Recent()
        self._seen: Recent[str, bool] = Recent()
        self._chats = ChatLocks()
        # Every reply goes out from here, in order per chat, chats concurrently (VK's rate limit
        # paces them together); a turn nudges it.
        self.outbox = OutboxWorker(
            self.store,
            PLATFORM,
            self._deliver_item,
            key=lambda item: item.chat_id,
            clock=time.time,
            backoff=lambda attempts: min(MAX_OUTBOX_PAUSE, self.retry_base * 2**attempts),
            interval=outbox_every,
            on_retry=dialogue.metrics.retry,
        )

    # -- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.client = VkApiClient(
            self.settings.vk_group_token,
            self.settings.vk_api_base,
            rate=self.rate,
            retry_base=self.retry_base / 2,
            on_error=lambda code: self.dialogue.metrics.platform_error(PLATFORM, code),
        )
        self.dialogue.metrics.connected(PLATFORM, False)  # unhealthy until events can arrive
        outbox = asyncio.create_task(self.outbox.run(), name="vk-outbox")
        up = asyncio.create_task(self._connected_when_ready(), name="vk-connected")
        try:
            if self.callback_mode:
                await self._serve_callback(stop)
            else:
                group_id = self.settings.vk_group_id or await self._own_group_id()
                cursor = f"vk.longpoll.ts.{group_id}"
                # Long polling is single-process (one reader of the stream and its saved cursor);
                # several workers need the Callback API. A second poller on the database is refused.
                async with self.store.sole(f"vk long polling {group_id}") as alone:
                    if not alone:
                        raise SingleProcessOnly(
                            "another gosbot process is already long-polling this VK community on this database; "
                            "long polling is single-process: stop the other one, or run several workers with "
                            "the Callback API (VK_CALLBACK_SECRET)"
                        )
                    log.info(
                        "vk: Bots Long Poll, single-process: this process alone reads the events "
                        "(for several workers use the Callback API)"
                    )
                    await longpoll.listen(
                        self.client,
                        group_id,
                        self.accept,
                        stop,
                        wait=self.longpoll_wait,
                        retry_base=self.retry_base,
                        connected=self.ready,
                        resume_from=await self.store.get_cursor(cursor),
                        save=lambda ts: self.store.set_cursor(cursor, ts),
                        start_attempts=self.start_attempts,
                    )
        finally:
            up.cancel()
            self.dialogue.metrics.connected(PLATFORM, False)
            stop.set()
            self.outbox.stop()
            await outbox
            client, self.client = self.client, None
            await asyncio.to_thread(client.close)  # may wait for a long poll request to end

    async def _connected_when_ready(self) -> None:
        """Connected once events can arrive: the callback port listens, or the long poll server's
        address and starting point are known (an event sent before that is not ours to read)."""
        await self.ready.wait()
        self.dialogue.metrics.connected(PLATFORM, True)

    async def _serve_callback(self, stop: asyncio.Event) -> None:
        app = make_app(
            self.accept,
            secret=self.settings.vk_callback_secret,
            confirmation_code=self.settings.vk_confirmation_code,
            group_id=self.settings.vk_group_id,
        )
        self.callback_server = CallbackServer(app, self.settings.vk_callback_host, self.settings.vk_callback_port)
        await self.callback_server.start()
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self.callback_server.stop()

    async def _own_group_id(self) -> int:
        assert self.client is not None
        answer = await self.client.call("groups.getById", {})
        groups = answer.get("groups", []) if isinstance(answer, dict) else answer  # 5.199 wraps the list
        return int(groups[0]["id"])

    async def accept(self, raw: dict[str, Any]) -> None:
        """Take one raw event (from either delivery way) and return once it is handled: its turn
        committed with its replies in the outbox. Only then may the caller acknowledge it to VK
        (answer "ok" to the Callback API, save the long poll position)."""
        try:
            event = parse_event(raw)
        except Exception:  # parse_event means never to raise; one odd event must not stop the rest
            log.exception("a VK event could not be read; skipped")
            return
        if event is None:
            return
        if event.update_id in self._seen:
            log.debug("VK event %s repeated, ignored", event.update_id)
            return
        # Remembered only once handled: a copy that comes while the first is still in progress
        # must not be acknowledged before it; it goes to the core, which waits for the first
        # (the chat's lock) and then drops it as a duplicate.
        await self._handle(event)

    # -- events ----------------------------------------------------------------------------------

    async def _handle(self, event: VkEvent) -> None:
        try:
            if isinstance(event, VkPermission):
                await self.store.set_chat_blocked(PLATFORM, str(event.user_id), not event.allowed)
                return
            async with self._chats.turn(event.peer_id):
                if isinstance(event, VkButtonPress):
                    await self._answer_press(event)
                    self._clients.put(event.peer_id, self._clients.get(event.peer_id) or CALLBACK_CLIENT)
                    incoming = self._incoming(event.peer_id, event.user_id, "", event.pressed, event.update_id)
                else:
                    self._clients.put(event.peer_id, event.client)
                    incoming = self._message_incoming(event)
                if await self.store.is_chat_blocked(PLATFORM, str(event.peer_id)):
                    await self.store.set_chat_blocked(PLATFORM, str(event.peer_id), False)  # they write: allowed
                handled = await self.dialogue.handle_queued(incoming)
                if handled.send_now:  # the store failed: a best-effort "technical problem" answer
                    await self._deliver(event.peer_id, list(handled.send_now), event.update_id)
                elif handled.queued:
                    self.outbox.nudge()
            self._seen.put(event.update_id, True)
        except Exception:
            log.exception("VK event %s failed", event.update_id)

    async def _answer_press(self, press: VkButtonPress) -> None:
        """Stop the button's spinner. Only worth one try: the event id expires within a minute."""
        assert self.client is not None
        values = {"event_id": press.event_id, "user_id": press.user_id, "peer_id": press.peer_id}
        try:
            await self.client.call("messages.sendMessageEventAnswer", values, attempts=2)
        except VkSendError as exc:
            log.warning("VK sendMessageEventAnswer failed: %s", exc)

    def _message_incoming(self, message: VkMessage) -> Incoming:
        pressed, text = message.pressed, message.text
        if pressed is None:
            options = self._numbered.get(message.peer_id)
            number = text.strip().rstrip(".)")
            if options and number.isdigit() and 1 <= int(number) <= len(options):
                chosen = options[int(number) - 1]
                pressed, text = Pressed(core_payload=chosen.payload), chosen.label
            elif text.strip().lower() in START_WORDS:
                pressed = Pressed(start=True)
        return self._incoming(message.peer_id, message.user_id, text, pressed, message.update_id, message.attachments)

    @staticmethod
    def _incoming(
        peer_id: int,
        user_id: int,
        text: str,
        pressed: Pressed | None,
        update_id: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> Incoming:
        payload: str | None = None
        if pressed is not None:
            if pressed.start:
                text = "/start"
            else:
                payload = pressed.core_payload or ""  # "" is refused by the core with a polite answer
        return Incoming(
            PLATFORM,
            str(peer_id),
            str(user_id),
            text=text,
            payload=payload,
            update_id=update_id,
            attachments=attachments,
        )

    # -- sending ---------------------------------------------------------------------------------

    async def _deliver(self, peer_id: int, replies: list[Reply], seed: str) -> None:
        """Send replies that could not be stored (the store failed), once, best effort."""
        for index, reply in enumerate(replies):
            try:
                await self.send_reply(peer_id, reply, f"{seed}:{index}")
            except VkSendError as exc:
                log.warning("VK unstored reply not sent: %s", exc)
                return

    async def send_reply(self, peer_id: int, reply: Reply, seed: str) -> None:
        """One reply as one or more messages.send calls, each with a random_id derived from `seed`."""
        rendered = render(reply, self._clients.get(peer_id) or UNKNOWN_CLIENT)
        try:
            await self._send_parts(peer_id, rendered, seed)
        except VkSendError as exc:
            if exc.code not in KEYBOARD_REFUSED or rendered.keyboard is None:
                raise
            # The client or the community's settings refuse keyboards: show the options as numbers.
            log.warning("VK refused a keyboard for %s (%s); sending numbered options", peer_id, exc)
            self._clients.put(peer_id, ClientInfo(keyboard=False, inline_keyboard=False))
            rendered = render_numbered(reply)
            await self._send_parts(peer_id, rendered, seed)
        # A typed number means an option of the last message the chat got, if it showed numbers.
        if rendered.numbered:
            self._numbered.put(peer_id, rendered.numbered)
        else:
            self._numbered.pop(peer_id)

    async def _send_parts(self, peer_id: int, rendered: Rendered, seed: str) -> None:
        assert self.client is not None
        last = len(rendered.parts) - 1
        for index, part in enumerate(rendered.parts):
            values: dict[str, Any] = {"peer_id": peer_id, "message": part, "random_id": random_id(peer_id, seed, index)}
            if index == last and rendered.keyboard:
                values["keyboard"] = rendered.keyboard
            await self.client.call("messages.send", values)

    # -- the outbox ------------------------------------------------------------------------------

    async def _deliver_item(self, item: OutboxItem) -> None:
        """Send one outbox item (the outbox worker marks it sent, retries it or gives it up)."""
        if self.client is None:
            raise TryLater("the VK client is closed")
        try:
            peer_id = int(item.chat_id)
        except ValueError:
            raise GiveUp(f"not a VK peer id: {item.chat_id!r}") from None
        seed = item.event[len(RANDOM_SEED) :] if item.event.startswith(RANDOM_SEED) else f"outbox:{item.id}"
        try:
            await self.send_reply(peer_id, item.reply, seed)
        except VkSendError as exc:
            if exc.blocked:
                await self.store.set_chat_blocked(PLATFORM, item.chat_id, True)
                log.info("VK chat %s does not accept messages; outbox item %s dropped (%s)", peer_id, item.id, exc)
                raise GiveUp(str(exc)) from exc
            if exc.retry:
                raise TryLater(str(exc)) from exc
            log.error("VK refused outbox item %s: %s", item.id, exc)
            raise GiveUp(str(exc)) from exc


class ChatLocks:
    """`async with locks.turn(peer)`: one event of a chat at a time, in arrival order (asyncio locks
    are FIFO); a chat's lock is dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
