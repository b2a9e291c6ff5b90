"""`gosbot` as a terminal user runs it: piped chat, ask, eval, the staff desk and stats, on one SQLite file."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from scenario import Chat, gosbot, passing_knowledge

from bot.dialogue import Dialogue, KnowledgeSource
from bot.knowledge import load_knowledge
from bot.storage import SqliteStore


@pytest.fixture
def knowledge_dir() -> Path:
    return passing_knowledge()


@pytest.fixture
def env(tmp_path: Path, knowledge_dir: Path) -> dict[str, str]:
    return {**os.environ, "GOSBOT_DB": str(tmp_path / "gosbot.sqlite3"), "GOSBOT_KNOWLEDGE": str(knowledge_dir)}


@pytest.fixture
async def core(env, knowledge_dir):
    """The in-process core on the same database file the commands use."""
    store = SqliteStore(env["GOSBOT_DB"])
    await store.open()
    yield Dialogue(KnowledgeSource(knowledge_dir, check_every=3600), store)
    await store.close()


def test_piped_chat_answers_each_line_and_presses_buttons_by_number(env, knowledge_dir):
    k = load_knowledge(knowledge_dir)
    flow = k.flows["code_not_arriving"]
    start = flow.steps[flow.start]
    index = next(i for i, o in enumerate(start.options) if o.goto)
    second = flow.steps[start.options[index].goto]
    hello = next(i.reply for i in k.smalltalk if i.id == "hello")

    result = gosbot("chat", env=env, stdin=f"привет\nне приходит смс\n{index + 1}\n\n/phone\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert hello in out
    assert start.text.strip() in out
    assert f"  [{index + 1}] {start.options[index].label}" in out
    assert second.text.strip() in out
    assert "8 800 100-70-10" in out
    assert out.index(hello) < out.index(start.text.strip()) < out.index(second.text.strip())

    with sqlite3.connect(env["GOSBOT_DB"]) as db:
        citizen = [r[0] for r in db.execute("SELECT text FROM transcript WHERE platform='console' AND role='citizen'")]
        state = json.loads(db.execute("SELECT state FROM sessions WHERE chat_id='local'").fetchone()[0])
    assert citizen == ["привет", "не приходит смс", "/phone"]  # the number press is a button, not text
    assert f"{flow.id}/{second.id}" in state["steps_tried"]


def test_ask_json_reads_stdin_one_object_per_line(env):
    questions = ["не приходит смс", "привет", "/phone", "звонили с номера 8 800 555-35-35, это госуслуги?"]
    result = gosbot("ask", "--json", env=env, stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == questions
    for row in rows:
        assert set(row) == {
            "text", "outcome", "faq_id", "flow_id", "topic", "score", "candidates", "rule", "topics", "phrasing", "shared"
        }  # fmt: skip
        assert isinstance(row["candidates"], list)
    assert rows[0]["topic"] == "code_not_arriving"
    assert rows[0]["outcome"] in ("flow", "answer")
    assert rows[0]["candidates"]
    assert {"topic", "score"} <= set(rows[0]["candidates"][0])
    assert rows[1]["outcome"] == "smalltalk"
    assert (rows[2]["outcome"], rows[2]["topic"]) == ("contacts", "phone_contacts")
    assert (rows[3]["outcome"], rows[3]["topic"]) == ("number_check", "fraud_security")


def test_eval_json_scores_a_small_file(env, tmp_path):
    tsv = tmp_path / "tiny.tsv"
    tsv.write_text(
        "text\ttopic\n"
        "не приходит смс с кодом\tcode_not_arriving\n"
        "/phone\tphone_contacts\n"
        "привет\tgreeting_smalltalk\n"
        "подскажите рецепт борща\tother_out_of_scope\n",
        encoding="utf-8",
    )
    result = gosbot("eval", str(tsv), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 4
    assert report["top1"] == 1.0
    assert report["confident_wrong"] == 0.0
    assert report["smalltalk"] == 1.0
    assert report["out_of_scope_abstention"] == 1.0
    assert set(report["per_topic"]) == {
        "code_not_arriving",
        "phone_contacts",
        "greeting_smalltalk",
        "other_out_of_scope",
    }


async def test_tickets_list_and_show_through_the_command(env, core):
    fraud = Chat(core, chat_id="100", platform="telegram")
    await fraud.press("f:fraud")
    await fraud.say("мне сказали код 123456, я его назвал")
    await fraud.press("op")
    plain = Chat(core, chat_id="200", platform="vk")
    await plain.say("/operator")

    result = gosbot("tickets", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    tickets = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["number"] for t in tickets] == [1, 2]
    required = {"number", "status", "priority", "topic", "platform", "chat_id", "created_at", "due_at", "transcript"}
    assert all(required <= set(t) for t in tickets)
    first = tickets[0]
    assert (first["platform"], first["chat_id"], first["status"]) == ("telegram", "100", "open")
    assert (first["priority"], first["topic"]) == ("urgent", "fraud_security")
    assert first["due_at"] > first["created_at"]
    assert all(set(m) >= {"role", "text"} for m in first["transcript"])
    said = [m["text"] for m in first["transcript"] if m["role"] == "citizen"]
    assert any("[код скрыт]" in text for text in said)
    assert "123456" not in result.stdout
    assert tickets[1]["priority"] == "normal"
    assert tickets[1]["platform"] == "vk"

    await core.desk.reply(1, "Смените пароль", "Ольга")
    await core.desk.close(1, "Ольга")
    # The citizen's platform gets the reply and the rating buttons through the outbox.
    outbox = await core.store.due(("telegram",), now=1e12)
    assert "Смените пароль" in outbox[0].reply.text
    assert [b.payload for b in outbox[-1].reply.buttons] == [f"r:1:{n}" for n in range(1, 6)]
    await fraud.press("r:1:5")

    shown = gosbot("tickets", "show", "1", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Оценка: 5/5" in shown.stdout
    assert "СРОЧНО" in shown.stdout
    assert "Ольга" in shown.stdout


async def test_stats_unanswered_groups_by_normalised_form(env, core, shipped):
    _, matcher = shipped
    vague = "не работает"
    assert matcher.decide(vague).outcome == "clarify", "precondition: a question the bot has to ask back"
    weather = ["Какая погода завтра в Москве?", "какая погода завтра в москве", "КАКАЯ ПОГОДА ЗАВТРА В МОСКВЕ!!!"]
    for n, text in enumerate(weather):
        await Chat(core, chat_id=f"w{n}").say(text)
    await Chat(core, chat_id="v1").say(vague)
    await Chat(core, chat_id="v2").say(vague)
    await Chat(core, chat_id="secret").say("какая погода завтра, пароль: Qwerty123!")
    await Chat(core, chat_id="ok").say("не приходит смс")  # answered: not in the report

    result = gosbot("stats", "unanswered", "--days", "7", env=env)
    assert result.returncode == 0, result.stderr
    counts = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s*(\d+)  (.+)$", result.stdout, re.MULTILINE)}
    weather_form = matcher.decide(weather[0]).normalized
    vague_form = matcher.decide(vague).normalized
    assert counts[weather_form] == 3
    assert counts[vague_form] == 2
    assert matcher.decide("не приходит смс").normalized not in counts
    assert "Qwerty123" not in result.stdout
    with sqlite3.connect(env["GOSBOT_DB"]) as db:
        rows = db.execute("SELECT text, outcome FROM unanswered").fetchall()
    assert {outcome for _, outcome in rows} == {"fallback", "clarify"}
    assert not any("Qwerty123" in text for text, _ in rows)


async def test_stats_unanswered_groups_bare_numbers_and_shortens_long_messages(env, core):
    for n, text in enumerate(["7", "12345", "  3 "]):
        await Chat(core, chat_id=f"n{n}").say(text)
    story = "непонятная история про кракозябры " * 120  # ~4,000 characters nobody can answer
    await Chat(core, chat_id="long").say(story)
    result = gosbot("stats", "unanswered", "--days", "7", env=env)
    assert result.returncode == 0, result.stderr
    assert "(empty)" not in result.stdout
    assert "(пусто)" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 120
    with sqlite3.connect(env["GOSBOT_DB"]) as db:
        keys = dict(db.execute("SELECT text, normalized FROM unanswered").fetchall())
    assert keys["7"] == keys["12345"] == keys["3"] == "(только цифры)"
    assert max(len(key) for key in keys.values()) <= 200
    tsv = gosbot("stats", "unanswered", "--tsv", env=env)
    assert all(len(line) <= 600 for line in tsv.stdout.splitlines())


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_ask_json_output_is_valid_json_whatever_the_input_bytes(env, locale):
    """Bytes that are not UTF-8 (on stdin or in an argument) become U+FFFD, never raw bytes in JSON."""
    import subprocess
    import sys

    from scenario import ROOT

    run_env = {k: v for k, v in env.items() if not k.startswith(("LC_", "PYTHONIO"))} | {"LC_ALL": locale}
    command = [sys.executable, "-m", "bot.cli", "ask", "--json"]
    piped = subprocess.run(
        command,
        input=b"\xff\xfe\xfa code \xed\xa0\x80 ne prihodit\n/phone\n\xc3\n",
        capture_output=True,
        cwd=ROOT,
        env=run_env,
        timeout=60,
        check=False,
    )
    argument = subprocess.run(
        [*command, os.fsdecode(b"\xffne prihodit kod \xed\xa0\x80")],
        capture_output=True,
        cwd=ROOT,
        env=run_env,
        timeout=60,
        check=False,
    )
    for result, count in ((piped, 3), (argument, 1)):
        assert result.returncode == 0, result.stderr
        lines = result.stdout.decode("utf-8").splitlines()  # strict: raises on any invalid byte
        objects = [json.loads(line) for line in lines]
        assert len(objects) == count
        assert all("\ufffd" in o["text"] for o in objects if o["text"] != "/phone")
    assert json.loads(piped.stdout.decode().splitlines()[1])["outcome"] == "contacts"


def test_check_reports_an_unreadable_file_like_any_problem(env, tmp_path):
    import shutil

    directory = tmp_path / "knowledge"
    shutil.copytree(env["GOSBOT_KNOWLEDGE"], directory)
    (directory / "topics.yaml").write_bytes(b"topics:\n  - id: \xff\n")
    (directory / "flows.yaml").unlink()
    (directory / "flows.yaml").mkdir()
    result = gosbot("check", str(directory), env=env)
    assert result.returncode == 1
    assert f"{directory / 'flows.yaml'}:1: is a folder, not a file" in result.stdout
    assert f"{directory / 'topics.yaml'}:2: not valid UTF-8 (byte 0xff)" in result.stdout
    assert "Traceback" not in result.stderr
