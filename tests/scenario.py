"""Test helpers: a scripted chat through the core, and copies of the shipped knowledge.

`Chat` reads like a conversation (errbot's `testbot.exec_command`): `await chat.say("…")`, then
assert on `chat.text` and `chat.payloads`. Knowledge helpers copy the shipped files into a temp
directory so a test can edit them.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bot.check import check_dir
from bot.dialogue import Dialogue
from bot.knowledge import EXAMPLES_DIR, FILES
from bot.messages import Attachment, Button, Incoming, Reply

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"


class Chat:
    """One citizen talking to the core; every call is one `Dialogue.handle`."""

    def __init__(self, dialogue: Dialogue, chat_id: str = "1", platform: str = "test"):
        self.dialogue = dialogue
        self.chat_id = chat_id
        self.platform = platform
        self.replies: list[Reply] = []
        self._updates = 0

    async def send(
        self,
        text: str = "",
        payload: str | None = None,
        attachments: tuple[Attachment, ...] = (),
        update_id: str | None = None,
    ) -> list[Reply]:
        self._updates += 1
        incoming = Incoming(
            platform=self.platform,
            chat_id=self.chat_id,
            user_id=self.chat_id,
            text=text,
            payload=payload,
            attachments=attachments,
            update_id=update_id or f"{self.chat_id}-{self._updates}",
            user_name="Тест",
        )
        self.replies = await self.dialogue.handle(incoming)
        return self.replies

    async def say(self, text: str) -> list[Reply]:
        return await self.send(text)

    async def press(self, payload: str) -> list[Reply]:
        return await self.send(payload=payload)

    async def press_label(self, label: str) -> list[Reply]:
        """Press a button of the last replies by its label (fails if there is none)."""
        return await self.press(self.button(label).payload)

    def button(self, label: str) -> Button:
        for button in self.buttons:
            if button.label == label:
                return button
        raise AssertionError(f"no button {label!r} in {[b.label for b in self.buttons]}")

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    @property
    def buttons(self) -> list[Button]:
        return [b for r in self.replies for b in r.buttons]

    @property
    def payloads(self) -> list[str]:
        return [b.payload for b in self.buttons]

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.buttons]


async def only_ticket(dialogue: Dialogue):
    tickets = await dialogue.store.list_tickets()
    assert len(tickets) == 1
    return tickets[0]


def copy_knowledge(dest: Path, source: Path = KNOWLEDGE) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, "SCHEMA.md"):
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    if (source / EXAMPLES_DIR).is_dir():
        shutil.copytree(source / EXAMPLES_DIR, dest / EXAMPLES_DIR, dirs_exist_ok=True)
    return dest


@functools.cache
def passing_knowledge() -> Path:
    """A copy of the shipped knowledge, made once per test run (tests that edit it copy it again)."""
    dest = copy_knowledge(Path(tempfile.mkdtemp(prefix="gosbot-knowledge-")))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    problems = check_dir(dest)
    assert not problems, f"the shipped knowledge has problems: {problems}"
    return dest


def gosbot(*args: str, env: dict[str, str], stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot.cli ARGS` as the terminal would."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
