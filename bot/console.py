"""The terminal front end: the same core, buttons printed as `[1] label`.

Interactive or piped (one message per line, replies on stdout), so it can be scripted. Operator
replies waiting in the outbox for this chat are shown before each prompt.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from bot.dialogue import REFUSED_LOG, Dialogue, KnowledgeSource
from bot.messages import Button, Incoming, Reply

PLATFORM = "console"


class Console:
    def __init__(self, dialogue: Dialogue, chat_id: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.dialogue = dialogue
        self.chat_id = chat_id
        self.out = out
        self.err = err
        self.buttons: list[Button] = []
        self.counter = 0
        self._problems: list[str] = []

    def render(self, reply: Reply) -> None:
        print(reply.text.rstrip(), file=self.out)
        if reply.buttons:
            self.buttons = list(reply.buttons)
            for number, button in enumerate(reply.buttons, start=1):
                print(f"  [{number}] {button.label}", file=self.out)
        print(file=self.out, flush=True)

    def incoming(self, line: str) -> Incoming:
        """A typed line: a button number or label presses that button, anything else is text."""
        self.counter += 1
        stripped = line.strip()
        payload = None
        if stripped.isdigit() and 1 <= int(stripped) <= len(self.buttons):
            payload = self.buttons[int(stripped) - 1].payload
        else:
            for button in self.buttons:
                if stripped and stripped.lower() == button.label.lower():
                    payload = button.payload
                    break
        return Incoming(
            platform=PLATFORM,
            chat_id=self.chat_id,
            user_id=self.chat_id,
            text="" if payload else line,
            payload=payload,
            user_name="терминал",
        )

    async def say(self, line: str) -> list[Reply]:
        replies = await self.dialogue.handle(self.incoming(line))
        self._report_problems()
        for reply in replies:
            self.render(reply)
        return replies

    async def deliver_outbox(self) -> None:
        store = self.dialogue.store
        for item in await store.due((PLATFORM,), now=float("inf"), limit=100):
            if item.chat_id == self.chat_id:
                self.render(item.reply)
                await store.mark_sent(item.id)

    def _report_problems(self) -> None:
        problems = self.dialogue.source.problems
        if problems and problems != self._problems:
            print("Правка базы знаний не принята, отвечаю по последней исправной версии:", file=self.err)
            for problem in problems:
                print(f"  {problem}", file=self.err)
        self._problems = list(problems)

    async def run(self, lines: Callable[[], str | None], interactive: bool) -> None:
        # The console tells the editor about a refused edit itself, in Russian (`_report_problems`):
        # the core's English log line of the same refusal would say it a second time.
        core_log = logging.getLogger(KnowledgeSource.__module__)
        core_log.addFilter(_not_a_refused_edit)
        try:
            await self._run(lines, interactive)
        finally:
            core_log.removeFilter(_not_a_refused_edit)

    async def _run(self, lines: Callable[[], str | None], interactive: bool) -> None:
        if interactive:
            print(
                "Чат с ботом Госуслуг. Пишите вопрос; номер или текст кнопки нажимает её; Ctrl+D — выход.\n",
                file=self.out,
            )
            await self.say("/start")
        while True:
            await self.deliver_outbox()
            line = await asyncio.to_thread(lines)
            if line is None:
                break
            if not line.strip() and not interactive:
                continue
            await self.say(line.rstrip("\n"))
        await self.deliver_outbox()
        # A reload still validating in its thread: its verdict is worth waiting for before leaving.
        reloading = self.dialogue.source.reloading
        if reloading is not None and not reloading.done():
            await reloading
        self._report_problems()


def _not_a_refused_edit(record: logging.LogRecord) -> bool:
    return record.msg != REFUSED_LOG


def stdin_lines(interactive: bool) -> Callable[[], str | None]:
    def read() -> str | None:
        try:
            if interactive:
                return input("> ")
            line = sys.stdin.readline()
            return line if line else None
        except EOFError:
            return None

    return read
