"""`gosbot check`: every rule has a broken copy of the shipped knowledge that trips it at the right line."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from scenario import KNOWLEDGE, copy_knowledge, gosbot, passing_knowledge

from bot.check import check_all, check_dir
from bot.knowledge import load_knowledge
from bot.yamlpos import Problem

MARK = "# <-"  # marks the line a problem must be reported at

PHRASINGS = "[тестовая фраза один, тестовая фраза два, тестовая фраза три, тестовая фраза четыре, тестовая фраза пять, тестовая фраза шесть]"


def append(path: Path, snippet: str) -> int:
    """Append `snippet` to a knowledge file; return the line number of the line marked `# <-`."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    base = text.count("\n")
    lines = snippet.strip("\n").splitlines()
    marked = [i for i, line in enumerate(lines) if MARK in line]
    assert len(marked) == 1, "a fixture marks exactly one line"
    path.write_text(text + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return base + 2 + marked[0]  # +1 for the blank separator line, +1 for 1-based lines


def faq_entry(ident: str, *, topic: str = "login_problems", extra: str = "", answer: str = "Короткий ответ.") -> str:
    return f"""
  - id: {ident}
    topic: {topic}
    question: Тестовый вопрос {ident.split()[0]}
    phrasings: {PHRASINGS}
    answer: {answer}
{extra}"""


def find(problems: list[Problem], file: str, line: int, pattern: str) -> Problem:
    for p in problems:
        if p.file == file and p.line == line and re.search(pattern, p.message):
            return p
    raise AssertionError(f"no {file}:{line}: /{pattern}/ among:\n" + "\n".join(map(str, problems)))


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return copy_knowledge(tmp_path / "knowledge")


FAQ_CASES = {
    "yaml_syntax": (
        """
  - id: broken_indent
    topic: login_problems
   question: Отступ съехал  # <-
""",
        r"^YAML syntax",
    ),
    "missing_field": (
        f"""
  - id: no_answer_here  # <-
    topic: login_problems
    question: Где ответ
    phrasings: {PHRASINGS}
""",
        r"missing field 'answer'",
    ),
    "unknown_topic": (
        faq_entry("topic_typo", topic="login_problemz  # <-"),
        r"unknown topic 'login_problemz'",
    ),
    "unknown_placeholder": (
        faq_entry("placeholder_typo", answer="Позвоните по номеру {hotlien}.  # <-"),
        r"unknown placeholder \{hotlien\}",
    ),
    "placeholder_in_a_block": (
        """
  - id: block_placeholder
    topic: login_problems
    question: Плейсхолдер в блоке
    phrasings: [раз раз, два два, три три, четыре четыре, пять пять, шесть шесть]
    answer: |
      Первая строка ответа.
      Вторая строка: позвоните {hotlne}.  # <-
      Третья строка.
""",
        r"unknown placeholder \{hotlne\}",
    ),
    "de_indented_block_line": (
        """
  - id: block_indent
    topic: login_problems
    question: Строка блока без отступа
    phrasings: [раз раз, два два, три три, четыре четыре, пять пять, шесть шесть]
    answer: |
      Первая строка ответа.
    1. Эта строка потеряла отступ  # <-
      2. А эта нет.
    related: []
""",
        r"^YAML syntax: this line is not indented like the text it belongs to",
    ),
    "unverified_placeholder": (
        faq_entry("unverified_contact", answer="Пишите на {support_email}.  # <-"),
        r"placeholder \{support_email\} names an unverified contact",
    ),
    "literal_phone": (
        faq_entry("literal_phone", answer="Звоните 8 800 555-35-35.  # <-"),
        r"literal phone number",
    ),
    "missing_related": (
        faq_entry("dangling_related", extra="    related: [no_such_entry]  # <-"),
        r"related entry 'no_such_entry' of 'dangling_related' does not exist",
    ),
    "too_few_phrasings": (
        """
  - id: too_few
    topic: login_problems
    question: Мало формулировок
    phrasings: [раз, два]  # <-
    answer: Ответ.
""",
        r"at least 6 phrasings are needed, found 2",
    ),
    "answer_too_long": (
        faq_entry("too_long", answer="Очень длинный ответ. " * 40 + " # <-"),
        r"answer is \d+ characters .*at most 700",
    ),
}


@pytest.mark.parametrize("case", FAQ_CASES)
def test_a_broken_faq_is_reported_at_its_line(broken, case):
    snippet, pattern = FAQ_CASES[case]
    line = append(broken / "faq.yaml", snippet)
    problems = check_dir(broken)
    find(problems, "faq.yaml", line, pattern)


def test_a_duplicate_id_names_both_places(broken, shipped):
    k, _ = shipped
    first = next(iter(k.faq.values()))
    line = append(broken / "faq.yaml", faq_entry(f"{first.id}  # <-"))
    problem = find(check_dir(broken), "faq.yaml", line, rf"duplicate id '{first.id}'")
    assert f"first defined at faq.yaml:{first.line}" in problem.message


def flow(ident: str, steps: str) -> str:
    return f"""
  - id: {ident}
    topic: login_problems
    title: Тестовый раздел {ident.split()[0]}
    phrasings: {PHRASINGS}
    start: first
    steps:
{steps}"""


FLOW_CASES = {
    "dangling_goto": (
        flow(
            "test_goto",
            """
      - id: first
        text: Первый шаг.
        options:
          - label: Дальше  # <-
            goto: nowhere
          - label: Готово
            goto: done
      - id: done
        text: Конец.
        end: true
""",
        ),
        r"option 'Дальше' leads to step 'nowhere', which flow 'test_goto' does not have",
    ),
    "unreachable_step": (
        flow(
            "test_orphan",
            """
      - id: first
        text: Первый шаг.
        end: true
      - id: orphan  # <-
        text: Сюда не попасть.
        end: true
""",
        ),
        r"step 'orphan' of flow 'test_orphan' cannot be reached from 'first'",
    ),
    "ends_nowhere": (
        flow(
            "test_loop  # <-",
            """
      - id: first
        text: Туда.
        options:
          - label: Дальше
            goto: second
      - id: second
        text: Обратно.
        options:
          - label: Назад к первому
            goto: first
""",
        ),
        r"flow 'test_loop' can end nowhere",
    ),
    "step_without_way_out": (
        flow(
            "test_dead_end",
            """
      - id: first  # <-
        text: Тупик без кнопок.
""",
        ),
        r"step 'first' has no options and is not 'end: true'",
    ),
    "missing_other_flow": (
        flow(
            "test_other_flow",
            """
      - id: first
        text: Шаг.
        options:
          - label: В другой раздел  # <-
            flow: no_such_flow
        end: true
""",
        ),
        r"leads to flow 'no_such_flow', which does not exist",
    ),
}


@pytest.mark.parametrize("case", FLOW_CASES)
def test_a_broken_flow_is_reported_at_its_line(broken, case):
    snippet, pattern = FLOW_CASES[case]
    line = append(broken / "flows.yaml", snippet)
    find(check_dir(broken), "flows.yaml", line, pattern)


def test_a_phrasing_copied_into_another_topic_is_a_warning_at_its_line(tmp_path):
    """The same message filed under two topics contradicts the training: warned, with both places."""
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    assert check_all(directory) == ([], [])
    k = load_knowledge(directory)
    source = next(iter(k.faq.values()))
    phrasing = source.phrasings[0]
    target = next(e for e in k.faq.values() if e.topic != source.topic and e.phrasing_lines)
    path = directory / "faq.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    after = target.phrasing_lines[-1]
    indent = lines[after - 1][: len(lines[after - 1]) - len(lines[after - 1].lstrip())]
    lines.insert(after, f"{indent}- {phrasing}\n")
    path.write_text("".join(lines), encoding="utf-8")

    problems, warnings = check_all(directory)
    assert problems == []  # a warning does not stop a reload
    warning = find(
        warnings, "faq.yaml", after + 1, rf"^warning: '{re.escape(phrasing)}' \({target.topic}\) says the same as"
    )
    assert f"({source.topic}) at faq.yaml:" in warning.message


def test_an_example_filed_under_the_wrong_topic_is_a_warning(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    k = load_knowledge(directory)
    # A clear fraud message, filed by mistake as a file-upload example among many real ones.
    uploads = [p for e in k.faq.values() if e.topic == "file_upload" for p in e.phrasings]
    lines = ["topic: file_upload", "examples:", *(f"  - {json.dumps(t, ensure_ascii=False)}" for t in uploads)]
    lines.append('  - "мне позвонили из поддержки и попросили продиктовать код из смс"')
    (directory / "examples").mkdir(exist_ok=True)
    (directory / "examples" / "file_upload.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems, warnings = check_all(directory)
    assert problems == []
    find(
        warnings,
        "examples/file_upload.yaml",
        len(lines),
        r"^warning: .* is filed under file_upload, but .* reads it as fraud_security",
    )


def test_every_problem_is_reported_at_once(broken):
    faq_line = append(broken / "faq.yaml", FAQ_CASES["unknown_topic"][0])
    flow_line = append(broken / "flows.yaml", FLOW_CASES["dangling_goto"][0])
    (broken / "topics.yaml").write_text(
        (broken / "topics.yaml").read_text(encoding="utf-8").replace("priority: urgent}", "priority: high}", 1),
        encoding="utf-8",
    )
    problems = check_dir(broken)
    find(problems, "faq.yaml", faq_line, "unknown topic")
    find(problems, "flows.yaml", flow_line, "leads to step 'nowhere'")
    assert any(p.file == "topics.yaml" and "priority must be one of" in p.message for p in problems)
    assert problems == sorted(problems, key=lambda p: (p.file, p.line, p.message))


def test_a_missing_file_is_reported(broken):
    (broken / "messages.yaml").unlink()
    assert Problem("messages.yaml", 1, "file is missing") in check_dir(broken)


# -- the command ---------------------------------------------------------------------------------


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "GOSBOT_DB": str(tmp_path / "cli.sqlite3"), "PYTHONPATH": ""}


def test_check_command_prints_file_line_message_and_fails(broken, tmp_path):
    faq_line = append(broken / "faq.yaml", FAQ_CASES["missing_related"][0])
    flow_line = append(broken / "flows.yaml", FLOW_CASES["unreachable_step"][0])
    result = gosbot("check", str(broken), env=env(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines
    assert all(re.match(r"^\S+\.yaml:\d+: \S.*$", line) for line in lines), lines
    assert (
        f"{broken / 'faq.yaml'}:{faq_line}: related entry 'no_such_entry' of 'dangling_related' does not exist" in lines
    )
    assert any(line.startswith(f"{broken / 'flows.yaml'}:{flow_line}: step 'orphan'") for line in lines)
    assert "problem" in result.stderr


def test_check_command_passes_good_knowledge(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    result = gosbot("check", str(directory), env=env(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "ok" in result.stdout


def test_check_command_refuses_a_missing_directory(tmp_path):
    result = gosbot("check", str(tmp_path / "nope"), env=env(tmp_path))
    assert result.returncode == 1


def test_shipped_knowledge_passes_check(tmp_path):
    result = gosbot("check", str(KNOWLEDGE), env=env(tmp_path))
    assert result.returncode == 0, result.stdout


def test_fixture_copies_are_independent(broken):
    # Guard for the helpers above: breaking a copy never touches the shipped files.
    append(broken / "faq.yaml", FAQ_CASES["literal_phone"][0])
    assert "8 800 555-35-35" not in (KNOWLEDGE / "faq.yaml").read_text(encoding="utf-8")
    shutil.rmtree(broken)
