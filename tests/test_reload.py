"""Editors change the knowledge while the bot runs: good edits take effect, bad ones are refused."""

from __future__ import annotations

import re
from pathlib import Path

from scenario import Chat, copy_knowledge, passing_knowledge

from bot.dialogue import Dialogue, KnowledgeSource
from bot.knowledge import load_knowledge
from bot.storage import MemoryStore

NEW_LINE = "Это ответ после правки редактора."


def edit_answer(directory: Path, entry_id: str) -> None:
    """Put NEW_LINE first in the block answer of one FAQ entry."""
    path = directory / "faq.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s*- id: {entry_id}\s*$", line))
    answer = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("answer: |"))
    indent = re.match(r"^\s*", lines[answer + 1]).group(0)
    lines.insert(answer + 1, f"{indent}{NEW_LINE}\n")
    path.write_text("".join(lines), encoding="utf-8")


def shortest_block_answer(directory: Path) -> str:
    k = load_knowledge(directory)
    text = (directory / "faq.yaml").read_text(encoding="utf-8")
    ids = [e.id for e in sorted(k.faq.values(), key=lambda e: len(e.answer))]
    return next(i for i in ids if re.search(rf"- id: {i}\n(?:.*\n)*?\s*answer: \|", text))


async def test_an_edit_takes_effect_and_a_bad_edit_is_refused(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    entry = shortest_block_answer(directory)
    source = KnowledgeSource(directory, check_every=3600)
    chat = Chat(Dialogue(source, MemoryStore()))
    await chat.press(f"a:{entry}")
    before = chat.text
    assert NEW_LINE not in before

    edit_answer(directory, entry)
    assert source.refresh(force=True) is True
    await chat.press(f"a:{entry}")
    assert chat.text.startswith(NEW_LINE)
    good_version = source.knowledge.version

    # A bad edit: a duplicate id. It is refused with file:line, and the last good knowledge answers.
    faq = directory / "faq.yaml"
    text = faq.read_text(encoding="utf-8")
    faq.write_text(text + f"\n  - id: {entry}\n    topic: login_problems\n", encoding="utf-8")
    duplicate_line = text.count("\n") + 2
    assert source.refresh(force=True) is False
    assert any(p.startswith(f"faq.yaml:{duplicate_line}: duplicate id '{entry}'") for p in source.problems)
    assert source.knowledge.version == good_version
    await chat.press(f"a:{entry}")
    assert chat.text.startswith(NEW_LINE)
    await chat.say("/phone")
    assert "8 800 100-70-10" in chat.text

    # Mending the file clears the problems.
    faq.write_text(text, encoding="utf-8")
    assert source.refresh(force=True) is True
    assert source.problems == []


async def test_the_dialogue_checks_for_edits_by_itself(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    entry = shortest_block_answer(directory)
    source = KnowledgeSource(directory, check_every=0)
    chat = Chat(Dialogue(source, MemoryStore()))
    await chat.press(f"a:{entry}")
    assert NEW_LINE not in chat.text
    edit_answer(directory, entry)
    await chat.press(f"a:{entry}")  # no explicit refresh: handle() looks at the files …
    assert NEW_LINE not in chat.text  # … and answers with the last good knowledge while validating
    assert source.reloading is not None
    assert await source.reloading is True
    await chat.press(f"a:{entry}")
    assert chat.text.startswith(NEW_LINE)


async def test_a_syntax_error_is_refused_with_its_line(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    source = KnowledgeSource(directory, check_every=3600)
    version = source.knowledge.version
    flows = directory / "flows.yaml"
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text + "  - id: broken\n   title: [unclosed\n", encoding="utf-8")
    assert source.refresh(force=True) is False
    assert any(re.match(r"^flows\.yaml:\d+: YAML syntax", p) for p in source.problems)
    assert source.knowledge.version == version
    chat = Chat(Dialogue(source, MemoryStore()))
    await chat.say("/start")
    assert chat.text == source.knowledge.text("welcome")


def test_refresh_without_changes_does_nothing(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    source = KnowledgeSource(directory, check_every=3600)
    assert source.refresh(force=True) is False
    assert source.refresh() is False
    assert source.problems == []


async def test_validation_runs_off_the_event_loop(tmp_path, monkeypatch):
    """Reloading builds the matcher (seconds, soon a classifier): other chats must not wait for it."""
    import asyncio
    import time

    import bot.dialogue

    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    source = KnowledgeSource(directory, check_every=0)
    real = bot.dialogue.validate_dir

    def slow_validate(path):
        time.sleep(1.0)  # a blocking validation: on the loop, it would hold every chat for a second
        return real(path)

    monkeypatch.setattr(bot.dialogue, "validate_dir", slow_validate)
    dialogue = Dialogue(source, MemoryStore())
    edit_answer(directory, shortest_block_answer(directory))
    await Chat(dialogue, chat_id="editor").say("/phone")  # sees the edit, starts the reload
    assert source.reloading is not None
    assert not source.reloading.done()
    lags = []
    for n in range(10):  # meanwhile other citizens are answered at once
        before = time.monotonic()
        chat = Chat(dialogue, chat_id=f"c{n}")
        await chat.say("/phone")
        assert "8 800 100-70-10" in chat.text
        lags.append(time.monotonic() - before)
        await asyncio.sleep(0.05)
    assert max(lags) < 0.3, lags
    assert await source.reloading is True


async def test_unreadable_knowledge_files_are_refused_and_the_last_good_answers(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    source = KnowledgeSource(directory, check_every=0)
    version = source.knowledge.version
    chat = Chat(Dialogue(source, MemoryStore()))
    faq = directory / "faq.yaml"
    good = faq.read_bytes()

    faq.write_bytes(good.replace("ответ".encode(), b"\xff\xfe", 1))  # one invalid UTF-8 byte pair
    bad_line = good[: good.index("ответ".encode())].count(b"\n") + 1
    await chat.say("/phone")  # the message that notices the edit is answered
    assert "8 800 100-70-10" in chat.text
    assert await source.reloading is False
    assert source.problems == [f"faq.yaml:{bad_line}: not valid UTF-8 (byte 0xff); save the file as UTF-8"]
    assert source.knowledge.version == version

    faq.unlink()
    faq.mkdir()  # a folder where the file should be
    await chat.say("/phone")
    assert "8 800 100-70-10" in chat.text
    assert await source.reloading is False
    assert source.problems == ["faq.yaml:1: is a folder, not a file"]
    assert source.refresh(force=True) is False  # the synchronous path says the same
    await chat.say("/start")
    assert chat.text == source.knowledge.text("welcome")

    faq.rmdir()
    faq.write_bytes(good)
    await chat.say("/phone")
    assert await source.reloading is True
    assert source.problems == []
