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
    chat = Chat(Dialogue(KnowledgeSource(directory, check_every=0), MemoryStore()))
    await chat.press(f"a:{entry}")
    assert NEW_LINE not in chat.text
    edit_answer(directory, entry)
    await chat.press(f"a:{entry}")  # no explicit refresh: handle() looks at the files
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
