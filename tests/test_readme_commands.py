"""Every command the README documents runs as written in a fresh clone (issue 11, items 7 and 9).

The repository is cloned into a temp directory (what is committed, nothing of this machine), and
each command of the quick start and of the commands table runs there with this environment's
Python (`python -m bot.cli` stands for `.venv/bin/gosbot`: the same entry point, and nothing is
installed from the network). Defaults are the README's: the knowledge in ./knowledge, the database
./gosbot.sqlite3. Outside the clone `gosbot` says in one line where it looked and what to set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scenario import ROOT

README = ROOT / "README.md"
COVERED = {"chat", "ask", "eval", "check", "examples", "tickets", "stats", "run", "migrate", "copy"}


def documented_commands() -> set[str]:
    """The first word after `gosbot` in each row of the README's commands table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `gosbot (\w+)", table, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("fresh") / "gosbot"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, capture_output=True, timeout=120)
    return dest


def gosbot_in(cwd: Path, clone: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GOSBOT_", "TELEGRAM_", "VK_")) and k != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(clone)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_readme_names_no_command_this_test_does_not_run():
    assert documented_commands() == COVERED


def test_the_repository_names_no_machine_path(clone):
    found = subprocess.run(
        ["git", "grep", "-nE", "/(work|root|home)/"], cwd=clone, capture_output=True, text=True, check=False
    )
    assert found.stdout == ""


def test_every_documented_command_runs_in_a_fresh_clone(clone):
    def run(*args: str, stdin: str = "", code: int = 0) -> str:
        result = gosbot_in(clone, clone, *args, stdin=stdin)
        assert result.returncode == code, f"gosbot {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout

    # Quick start: the terminal chat, interactive input piped, and the README's own piped example.
    assert "8 800 100-70-10" in run("chat", stdin="/phone\n")
    demo = run("chat", "--chat", "demo", stdin="привет\nне приходит код\n1\n")
    assert "Здравствуйте" in demo
    assert (clone / "gosbot.sqlite3").exists()  # the documented default database

    # The commands table, row by row.
    assert "outcome:" in run("ask", "не приходит смс")
    decided = [
        json.loads(line) for line in run("ask", "--json", stdin="забыл пароль\nкак записаться к врачу\n").splitlines()
    ]
    assert [d["text"] for d in decided] == ["забыл пароль", "как записаться к врачу"]
    report = json.loads(run("eval", "tests/data/dev.tsv", "--json"))
    assert report["rows"] == len((clone / "tests/data/dev.tsv").read_text(encoding="utf-8").splitlines()) - 1
    assert "mistakes" in run("eval", "tests/data/dev.tsv", "--mistakes")
    assert "knowledge: ok" in run("check")

    labelled = clone / "todo.tsv"
    labelled.write_text("text\ttopic\nна экране госуслуг всё съехало набок\tpage_display\n", encoding="utf-8")
    assert "1 added" in run("examples", "merge", "todo.tsv")
    assert "knowledge: ok" in run("check", "knowledge")

    run("chat", "--chat", "citizen", stdin="/operator\n")
    assert "№" in run("tickets", "list")
    listed = [json.loads(line) for line in run("tickets", "list", "--status", "open", "--json").splitlines()]
    assert [t["number"] for t in listed] == [1]
    run("tickets", "list", "--overdue")
    assert "Обращение № 1" in run("tickets", "show", "1")
    run("tickets", "take", "1", "--as", "Ирина")
    run("tickets", "reply", "1", "Проверьте, пожалуйста, раздел «Безопасность» в профиле")
    run("tickets", "note", "1", "Звонил повторно")
    run("tickets", "close", "1")
    shown = run("tickets", "show", "1")
    assert "Ирина" in shown
    assert "Статус: закрыто" in shown

    run("chat", "--chat", "weather", stdin="какая завтра погода в сочи\n")
    assert "погода" in run("stats", "unanswered", "--days", "7")
    assert run("stats", "unanswered", "--tsv").startswith("text\ttopic\tcount\toutcome")

    # `gosbot run` without tokens is the terminal chat.
    assert "8 800 100-70-10" in run("run", stdin="/phone\n")

    # Moving up: the schema is current; copy-db refuses, in one line, a server it cannot reach.
    assert "schema version" in run("migrate")
    refused = gosbot_in(clone, clone, "copy-db", "gosbot.sqlite3", "postgresql://127.0.0.1:1/none")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1


def test_outside_the_repository_one_line_says_where_it_looked(clone, tmp_path):
    result = gosbot_in(tmp_path, clone, "ask", "не приходит смс")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(tmp_path / "knowledge") in lines[0]
    assert "GOSBOT_KNOWLEDGE" in lines[0]
