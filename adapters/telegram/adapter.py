"""The Telegram front end: long polling or a webhook, citizens' chats, the operators' forum desk,
and the outbox workers. It only translates; everything the bot says comes from the core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.methods import DeleteWebhook, GetUpdates, SetMyCommands, SetWebhook
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    ChatMemberUpdated,
    Message,
    TelegramObject,
    Update,
)
from aiogram.types.update import UpdateTypeLookupError

from adapters.telegram.citizens import Citizens
from adapters.telegram.desk import DeskBoard
from adapters.telegram.outbox import telegram_delivery
from adapters.telegram.sender import Limits, Sender, backoff
from adapters.telegram.staff import Staff
from adapters.telegram.translate import PLATFORM
from adapters.telegram.updates import TolerantSession
from adapters.telegram.webhook import WebhookServer, webhook_path
from bot.config import Settings
from bot.dialogue import Dialogue
from bot.outbox import OutboxWorker
from bot.records import OutboxItem
from bot.storage.base import SingleProcessOnly
from bot.tickets import DESK

log = logging.getLogger(__name__)

# Edited messages are not answered; chat_member keeps the operators' membership cache current
# (Telegram sends it only to an administrator bot, and only when asked for it by name).
ALLOWED_UPDATES = ["message", "callback_query", "chat_member"]
OVERDUE_JOB = "telegram.overdue"  # the overdue watcher's name in the store's jobs table
COMMANDS = (
    ("start", "Начать сначала"),
    ("phone", "Телефоны поддержки Госуслуг"),
    ("help", "Как пользоваться ботом"),
    ("operator", "Передать вопрос сотруднику"),
    ("cancel", "Отменить обращение"),
)
STAFF_COMMANDS = (
    ("take", "Взять обращение в работу"),
    ("note", "Заметка для коллег (гражданин не видит)"),
    ("close", "Закрыть обращение и попросить оценку"),
)


@dataclass(frozen=True)
class TelegramOptions:
    """How often and how patiently to work (the defaults suit production; tests shorten them)."""

    limits: Limits = field(default_factory=Limits)
    outbox_interval: float = 1.0  # seconds between outbox passes when nothing nudges them
    polling_timeout: int = 25  # getUpdates long-polling wait
    overdue_every: float = 60.0  # how often to look for overdue tickets
    shutdown_grace: float = 10.0  # how long to let updates in progress finish on stop


async def skip_contentless(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], update: TelegramObject, data: dict[str, Any]
) -> Any:
    """An update with nothing the bot reads (an unreadable one replaced by its bare id, or a type
    newer than aiogram) is skipped quietly instead of reaching aiogram's "unknown update" warning."""
    if isinstance(update, Update):
        try:
            update.event_type  # noqa: B018 - raises for an update without known content
        except UpdateTypeLookupError:
            log.info("update %s has nothing the bot reads; skipped", update.update_id)
            return UNHANDLED
    return await handler(update, data)


class TelegramAdapter:
    def __init__(self, settings: Settings, dialogue: Dialogue, options: TelegramOptions | None = None):
        if not settings.telegram_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        if settings.telegram_webhook_url and not settings.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_WEBHOOK_URL is set")
        self.settings = settings
        self.dialogue = dialogue
        self.options = options or TelegramOptions()
        self.operators_chat = settings.telegram_operators_chat_id
        self.webhook: WebhookServer | None = None  # set while running in webhook mode
        self._inflight: set[asyncio.Task[object]] = set()

    # -- wiring ----------------------------------------------------------------------------------

    def _bot(self) -> Bot:
        api = (
            TelegramAPIServer.from_base(self.settings.telegram_api_base)
            if self.settings.telegram_api_base
            else PRODUCTION
        )
        return Bot(self.settings.telegram_token, session=TolerantSession(api=api), default=DefaultBotProperties())

    def _dispatcher(self, citizens: Citizens, staff: Staff | None) -> Dispatcher:
        router = Router(name="gosbot")

        async def on_message(message: Message, event_update: Update) -> None:
            with self._tracked():
                if staff is not None and message.chat.id == self.operators_chat:
                    await staff.on_message(message, event_update.update_id)
                else:
                    await citizens.on_message(message, event_update.update_id)

        async def on_callback(query: CallbackQuery, event_update: Update) -> None:
            with self._tracked():
                chat = query.message.chat if query.message else None
                if staff is not None and chat is not None and chat.id == self.operators_chat:
                    await staff.on_callback(query, event_update.update_id)
                else:
                    await citizens.on_callback(query, event_update.update_id)

        async def on_chat_member(update: ChatMemberUpdated) -> None:
            if staff is not None:
                staff.on_chat_member(update)

        router.message.register(on_message)
        router.callback_query.register(on_callback)
        router.chat_member.register(on_chat_member)
        dispatcher = Dispatcher()
        dispatcher.update.outer_middleware(skip_contentless)
        dispatcher.include_router(router)
        return dispatcher

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Remember the update in progress, so stopping can let it finish."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._inflight.discard(task)

    # -- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set."""
        bot = self._bot()
        metrics = self.dialogue.metrics
        metrics.connected(PLATFORM, False)  # unhealthy until the Bot API has answered
        sender = Sender(bot, self.options.limits, on_error=lambda code: metrics.platform_error(PLATFORM, code))
        workers: list[OutboxWorker] = []

        def nudge() -> None:
            for worker in workers:
                worker.nudge()

        citizens = Citizens(sender, self.dialogue, self.options.limits, nudge)
        workers.append(self._worker(PLATFORM, citizens.deliver_item, key=lambda item: item.chat_id))
        staff = None
        if self.operators_chat is not None:
            staff = Staff(sender, self.dialogue, self.operators_chat, nudge)
            board = DeskBoard(sender, self.dialogue, self.operators_chat)
            workers.append(self._worker(DESK, board.deliver, key=lambda item: str(item.ticket)))
        else:
            log.warning("TELEGRAM_OPERATORS_CHAT_ID is not set: tickets wait in the outbox for a desk")
        dispatcher = self._dispatcher(citizens, staff)
        halt = asyncio.Event()  # our own helpers stop with us, whatever ended the run
        tasks = [asyncio.create_task(w.run(), name=f"telegram-outbox-{w.platform}") for w in workers]
        if staff is not None:
            tasks.append(asyncio.create_task(self._watch_overdue(halt, nudge), name="telegram-overdue"))
        try:
            await self._set_commands(bot)
            metrics.connected(PLATFORM, True)  # the Bot API answered with our token
            if self.settings.telegram_webhook_url:
                await self._serve_webhook(bot, dispatcher, stop)
            else:
                await self._poll(bot, dispatcher, stop)
        finally:
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=self.options.shutdown_grace)
            for worker in workers:
                worker.stop()
            halt.set()
            # A worker may be waiting out a long 429; what it holds stays pending in the outbox.
            _, late = await asyncio.wait(tasks, timeout=self.options.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bot.session.close()
            metrics.connected(PLATFORM, False)

    def _worker(
        self,
        platform: str,
        deliver: Callable[[OutboxItem], Awaitable[None]],
        key: Callable[[OutboxItem], str],
    ) -> OutboxWorker:
        limits = self.options.limits
        return OutboxWorker(
            self.dialogue.store,
            platform,
            telegram_delivery(deliver),
            key,
            clock=self.dialogue.clock,
            backoff=lambda attempts: backoff(limits, attempts),
            interval=self.options.outbox_interval,
            on_retry=self.dialogue.metrics.retry,
        )

    async def _poll(self, bot: Bot, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
        """Long polling driven here rather than by aiogram's start_polling, which asks for the next
        offset as soon as updates are handed out: Telegram forgets every update below the offset,
        so a crash would lose the ones in progress. Here a batch is handled to the end (each turn
        committed, its replies in the outbox) before the offset moves past it."""
        # One reader of the update stream: long polling is single-process (several workers need
        # the webhook). A second poller on the same database is refused rather than left to fight
        # over getUpdates with the first.
        role = f"telegram long polling {self.settings.telegram_token.split(':', 1)[0]}"  # the bot's id, not the secret
        async with self.dialogue.store.sole(role) as alone:
            if not alone:
                raise SingleProcessOnly(
                    "another gosbot process is already long-polling this bot on this database; "
                    "long polling is single-process: stop the other one, or run several workers with "
                    "the webhook (TELEGRAM_WEBHOOK_URL)"
                )
            log.info(
                "telegram: long polling, single-process: this process alone reads the updates "
                "(for several workers set TELEGRAM_WEBHOOK_URL)"
            )
            await self._poll_updates(bot, dispatcher, stop)

    async def _poll_updates(self, bot: Bot, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
        await bot(DeleteWebhook(drop_pending_updates=False))  # getUpdates is refused while a webhook is set
        offset: int | None = None
        failures = 0
        while not stop.is_set():
            request = asyncio.create_task(
                bot(
                    GetUpdates(
                        offset=offset,
                        timeout=self.options.polling_timeout,
                        allowed_updates=ALLOWED_UPDATES,
                    ),
                    request_timeout=self.options.polling_timeout + 10,
                )
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({request, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not request.done():  # stopping: nothing of this request was handled, so nothing is lost
                request.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await request
                return
            try:
                updates = request.result()
            except Exception as exc:
                failures += 1
                pause = min(30.0, self.options.limits.retry_base * 2 ** min(failures, 5))
                log.warning("getUpdates failed (%s); again in %.1fs", type(exc).__name__, pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                continue
            failures = 0
            if not updates:
                continue
            # Chats in parallel; one chat's updates in order (the handlers take the chat's lock in
            # the order the tasks start).
            await asyncio.gather(*(self._feed(bot, dispatcher, update) for update in updates))
            offset = max(update.update_id for update in updates) + 1

    async def _feed(self, bot: Bot, dispatcher: Dispatcher, update: Update) -> None:
        try:
            await dispatcher.feed_update(bot, update)
        except Exception:  # skipped and logged: one bad update must not stall the others
            log.exception("update %s failed", update.update_id)

    async def _serve_webhook(self, bot: Bot, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
        s = self.settings
        self.webhook = WebhookServer(
            dispatcher,
            bot,
            secret=s.telegram_webhook_secret,
            path=webhook_path(s.telegram_webhook_url),
            host=s.telegram_webhook_host,
            port=s.telegram_webhook_port,
        )
        await self.webhook.start()
        try:
            await bot(
                SetWebhook(
                    url=s.telegram_webhook_url,
                    secret_token=s.telegram_webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
            )
            await stop.wait()
        finally:
            await self.webhook.stop()

    async def _set_commands(self, bot: Bot) -> None:
        try:
            await bot(SetMyCommands(commands=[BotCommand(command=c, description=d) for c, d in COMMANDS]))
            if self.operators_chat is not None:
                await bot(
                    SetMyCommands(
                        commands=[BotCommand(command=c, description=d) for c, d in STAFF_COMMANDS],
                        scope=BotCommandScopeChat(chat_id=self.operators_chat),
                    )
                )
        except (TelegramAPIError, ClientDecodeError) as exc:  # a menu is a nicety; the bot works without it
            log.warning("setMyCommands failed: %s", getattr(exc, "message", exc))

    async def _watch_overdue(self, stop: asyncio.Event, nudge: Callable[[], None]) -> None:
        """Put newly overdue tickets on the desk (the core marks each one announced once). With
        several workers on one database, the one that claims the round looks (`claim_job`)."""
        every = self.options.overdue_every
        while not stop.is_set():
            try:
                claimed = await self.dialogue.store.claim_job(OVERDUE_JOB, self.dialogue.clock(), every)
                if claimed and await self.dialogue.desk.announce_overdue():
                    nudge()
            except Exception:
                log.exception("overdue check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
