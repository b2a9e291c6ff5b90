"""Odd input never costs a reply: lone surrogates anywhere, and any button payload at all
(property-based, with hypothesis, through the real core on a real SQLite file)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario import KNOWLEDGE

from bot.dialogue import Dialogue, KnowledgeSource
from bot.knowledge import load_knowledge
from bot.matching import Matcher
from bot.messages import Incoming
from bot.storage import SqliteStore

SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\ud83d", "x" * 10 + "\ud800" * 3]


async def test_lone_surrogates_in_text_name_and_payload_still_get_a_reply(dialogue: Dialogue):
    for n, odd in enumerate(SURROGATES):
        for incoming in (
            Incoming("telegram", f"s{n}", "1", text=f"не приходит смс {odd}", update_id=f"t{n}", user_name=odd),
            Incoming("telegram", f"s{n}", "1", payload=odd, update_id=f"p{n}"),
            Incoming("telegram", f"s{n}", "1", payload=f"a:{odd}", update_id=f"q{n}", user_name=f"Анна {odd}"),
            Incoming("vk", f"s{n}", "1", text=odd, update_id=odd),  # a VK event id can be any string
        ):
            replies = await dialogue.handle(incoming)
            assert replies, incoming
            assert all(r.text.encode("utf-8") for r in replies)
    # The session with such a name was saved, so the next message of that person is answered too.
    session = await dialogue.store.load_session("telegram", "s0")
    assert session is not None
    assert session.user_name == "Анна \ufffd"
    assert await dialogue.handle(Incoming("telegram", "s0", "1", text="/phone", update_id="next"))


async def test_a_ticket_with_surrogates_everywhere_reaches_staff_and_back(dialogue: Dialogue):
    chat = "surrogate-ticket"
    await dialogue.handle(Incoming("telegram", chat, "7", text="/operator", update_id="u1", user_name="\ud800"))
    await dialogue.handle(Incoming("telegram", chat, "7", text="ещё \udfff", update_id="u2"))
    ticket = await dialogue.store.open_ticket_for("telegram", chat)
    assert ticket is not None
    await dialogue.desk.reply(ticket.number, "Ответ \ud800", "Ирина \udc00")
    await dialogue.desk.note(ticket.number, "заметка \ud800", "\ud800")
    await dialogue.desk.take(ticket.number, "\ud800", force=True)  # Ирина holds it since her reply
    await dialogue.desk.close(ticket.number, "\ud800")
    texts = [m.text for m in await dialogue.store.ticket_messages(ticket.number)]
    assert "ещё \ufffd" in texts
    assert "Ответ \ufffd" in texts


def _shipped_payloads() -> list[str]:
    k = load_knowledge(KNOWLEDGE)
    payloads = ["back", "home", "op", "phone", "leave", "stay", "cancel", "r:1:5", "y:x", "n:x"]
    payloads += [f"a:{i}" for i in list(k.faq)[:5]] + [f"f:{i}" for i in k.flows]
    for flow in list(k.flows.values())[:3]:
        for step in list(flow.steps.values())[:3]:
            payloads += [f"o:{flow.id}:{step.id}:{i}" for i in range(len(step.options) + 1)]
    return payloads


PAYLOADS = st.one_of(
    st.sampled_from(_shipped_payloads()),
    st.text(max_size=80),  # any code points, lone surrogates included
    st.text(alphabet="afonyr:0123456789_abcdefghijklmnopqrstuvwxyz\n ", max_size=70),
    st.builds(lambda a, b: f"{a}:{b}", st.sampled_from("afonyr"), st.text(max_size=40)),
)


class Core:
    """The real core on a SQLite file, driven from hypothesis' synchronous examples."""

    def __init__(self, path: Path):
        k = load_knowledge(KNOWLEDGE)
        self.loop = asyncio.new_event_loop()
        self.store = SqliteStore(path)
        self.loop.run_until_complete(self.store.open())
        self.dialogue = Dialogue(KnowledgeSource.fixed(k, Matcher(k)), self.store)
        self.ids = itertools.count()

    def handle(self, **fields: object) -> list:
        n = next(self.ids)
        incoming = Incoming("telegram", str(n % 7), str(n % 7), update_id=f"h{n}", **fields)  # type: ignore[arg-type]
        return self.loop.run_until_complete(self.dialogue.handle(incoming))

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


def test_any_button_payload_gets_a_reply(tmp_path: Path):
    core = Core(tmp_path / "payloads.sqlite3")
    try:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(payload=PAYLOADS, name=st.text(max_size=20))
        def one(payload: str, name: str) -> None:
            replies = core.handle(payload=payload, user_name=name)
            assert replies
            for reply in replies:
                json.dumps(reply.text, ensure_ascii=False).encode("utf-8")  # storable, sendable

        one()
    finally:
        core.close()


def test_any_text_gets_a_reply(tmp_path: Path):
    core = Core(tmp_path / "texts.sqlite3")
    try:

        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(text=st.text(max_size=200), name=st.text(max_size=20))
        def one(text: str, name: str) -> None:
            assert core.handle(text=text, user_name=name)

        one()
    finally:
        core.close()
