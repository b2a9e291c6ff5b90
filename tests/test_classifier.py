"""The learned topic classifier: deterministic, retrained on reload, cross-validated, total over any text."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario import Chat, copy_knowledge, gosbot, passing_knowledge

from bot import classifier, noise
from bot.classifier import Labelled
from bot.dialogue import LOW_CONFIDENCE, Dialogue, KnowledgeSource
from bot.evaluation import Row, cross_validate, folds
from bot.knowledge import load_knowledge
from bot.matching import OUTCOMES, Matcher, Thresholds
from bot.storage import MemoryStore


@pytest.fixture
def env_for_cli(tmp_path) -> dict[str, str]:
    return {**os.environ, "GOSBOT_DB": str(tmp_path / "gosbot.sqlite3"), "GOSBOT_KNOWLEDGE": str(passing_knowledge())}


NEW_WORD = "фрумпелька"  # a word no knowledge file uses
NEW_EXAMPLES = [
    f"на сайте одни {NEW_WORD} вместо букв",
    f"вижу {NEW_WORD} на странице",
    f"{NEW_WORD} на экране ничего не прочитать",
    f"почему на госуслугах {NEW_WORD}",
    f"текст превратился в {NEW_WORD}",
    f"{NEW_WORD} вместо текста в браузере",
]


def test_training_is_deterministic(shipped):
    knowledge, _ = shipped
    texts = ["не приходит смс", "ни магу зайти", "сколько будет 2+2", "спасиба бальшое"]
    runs = []
    for _ in range(2):
        classifier._cache.clear()  # train from scratch, not from the cache
        matcher = Matcher(knowledge)
        runs.append([matcher.model.predict(matcher.lemmas(t)) for t in texts])
    assert runs[0] == runs[1]


def test_noise_is_deterministic_and_noisy():
    text = "Здравствуйте, не приходит код подтверждения на телефон"
    first = noise.variants(text, 4, seed=1)
    assert first == noise.variants(text, 4, seed=1)
    assert first != noise.variants(text, 4, seed=2)
    assert text not in first
    assert len(first) >= 3
    assert noise.wrong_layout("не код") == "yt rjl"
    assert noise.transliterate("не приходит") == "ne prihodit"


def test_the_classifier_learns_what_the_examples_teach(tmp_path):
    """Examples alone move a message to a topic: training reads knowledge/examples/."""
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    question = f"у меня на госуслугах {NEW_WORD} какие-то"
    before = Matcher(load_knowledge(directory)).decide(question)
    assert before.topics[0][0] != "page_display" or before.topics[0][1] < 0.5
    lines = ["topic: page_display", "examples:", *(f'  - "{t}"' for t in NEW_EXAMPLES)]
    (directory / "examples" / "page_display_extra.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    after = Matcher(load_knowledge(directory)).decide(question)
    assert after.topics[0][0] == "page_display"
    assert after.outcome in ("answer", "flow")
    assert after.topic == "page_display"


async def test_a_bad_examples_file_is_refused_and_the_last_good_knowledge_answers(tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    source = KnowledgeSource(directory, check_every=3600)
    chat = Chat(Dialogue(source, MemoryStore()))
    await chat.say("не приходит смс с кодом")
    good = chat.text
    version = source.knowledge.version

    bad = directory / "examples" / "broken.yaml"
    bad.write_text('topic: no_such_topic\nexamples:\n  - "что-то"\n  - [1, 2]\n', encoding="utf-8")
    assert source.refresh(force=True) is False
    assert "examples/broken.yaml:1: unknown topic 'no_such_topic' (see topics.yaml)" in source.problems
    assert "examples/broken.yaml:4: each item of 'examples' must be non-empty text" in source.problems
    assert source.knowledge.version == version
    await chat.say("не приходит смс с кодом")
    assert chat.text == good

    # Fixed: the new examples take effect on the next reload (the classifier is retrained).
    lines = ["topic: page_display", "examples:", *(f'  - "{t}"' for t in NEW_EXAMPLES)]
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert source.refresh(force=True) is True
    assert source.problems == []
    assert source.matcher.decide(f"опять {NEW_WORD} на сайте").topic == "page_display"


def test_folds_partition_the_rows_by_topic_and_depend_only_on_the_seed():
    rows = [Row(f"text {i}", f"topic{i % 3}") for i in range(20)]
    parts = folds(rows, 4, seed=7)
    assert parts == folds(rows, 4, seed=7)
    assert parts != folds(rows, 4, seed=8)
    assert sorted(i for p in parts for i in p) == list(range(20))
    for part in parts:  # stratified: every fold holds every topic
        assert {rows[i].topic for i in part} == {"topic0", "topic1", "topic2"}


def test_cross_validation_never_trains_on_the_row_it_decides(shipped, monkeypatch):
    knowledge, _ = shipped
    rows = [Row(f"{NEW_WORD} номер {i}", "page_display") for i in range(6)]
    rows += [Row("не приходит смс", "code_not_arriving"), Row("забыл пароль", "forgot_password")]
    seen: list[tuple[Labelled, ...]] = []
    real = Matcher.__post_init__

    def spy(self: Matcher) -> None:
        seen.append(self.extra)
        real(self)

    monkeypatch.setattr(Matcher, "__post_init__", spy)
    first = cross_validate(rows, knowledge, 3, seed=1)
    assert len(seen) == 3
    for extra, part in zip(seen, folds(rows, 3, seed=1), strict=True):
        held = {rows[i].text for i in part}
        assert held
        assert not held & {e.text for e in extra}
    again = cross_validate(rows, knowledge, 3, seed=1)
    assert [(d.outcome, d.topic, d.topics) for d in first] == [(d.outcome, d.topic, d.topics) for d in again]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_text_yields_a_decision(shipped, text):
    _, matcher = shipped
    decision = matcher.decide(text)
    assert decision.outcome in OUTCOMES
    if decision.outcome in ("answer", "flow"):
        assert decision.target_id
        assert decision.topics
        assert decision.rule


def test_ask_explains_the_decision(env_for_cli):
    out = gosbot("ask", "не приходит смс на телефон", env=env_for_cli)
    assert out.returncode == 0, out.stderr
    assert "rule:      classifier: code_not_arriving" in out.stdout
    assert "classifier: code_not_arriving " in out.stdout
    assert "phrasing:  " in out.stdout
    assert "shared:    " in out.stdout
    assert "смс" in out.stdout
    row = json.loads(gosbot("ask", "--json", "не приходит смс на телефон", env=env_for_cli).stdout)
    assert row["topics"][0]["topic"] == "code_not_arriving"
    assert 0.5 < row["topics"][0]["probability"] <= 1
    assert "смс" in row["shared"]
    assert row["phrasing"]


def test_eval_cv_reports_cross_validated_figures(env_for_cli, tmp_path):
    labelled = tmp_path / "small.tsv"
    lines = ["text\ttopic"] + [f"{t}\tpage_display" for t in NEW_EXAMPLES] + ["не приходит смс\tcode_not_arriving"] * 3
    labelled.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = gosbot("eval", str(labelled), "--cv", "3", "--seed", "1", "--json", env=env_for_cli)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["rows"] == 9
    assert 0 <= figures["top1"] <= 1
    assert gosbot("eval", str(labelled), "--cv", "1", env=env_for_cli).returncode == 2


def test_unanswered_export_labelled_and_merged_back(env_for_cli, tmp_path):
    directory = copy_knowledge(tmp_path / "knowledge", passing_knowledge())
    env = {**env_for_cli, "GOSBOT_KNOWLEDGE": str(directory)}
    nonsense = f"{NEW_WORD} и снова {NEW_WORD}"  # nothing in the knowledge speaks of it: unanswered
    chat = gosbot("chat", "--chat", "c1", env=env, stdin=f"{nonsense}\n{nonsense}\n")
    assert chat.returncode == 0, chat.stderr
    export = gosbot("stats", "unanswered", "--tsv", env=env)
    assert export.returncode == 0, export.stderr
    header, *rows = export.stdout.splitlines()
    assert header == "text\ttopic\tcount\toutcome"
    text, topic, count, outcome = rows[0].split("\t")
    assert NEW_WORD in text
    assert topic == ""
    assert count == "2"
    assert outcome

    labelled = tmp_path / "labelled.tsv"
    labelled.write_text(
        f"{header}\n{text}\tpage_display\t2\t{outcome}\nпросто строка без темы\t\t1\tfallback\n", encoding="utf-8"
    )
    merged = gosbot("examples", "merge", str(labelled), env=env)
    assert merged.returncode == 0, merged.stderr
    assert "1 added, 0 already there, 1 without a topic" in merged.stdout
    assert NEW_WORD in (directory / "examples" / "page_display.yaml").read_text(encoding="utf-8")
    assert gosbot("check", str(directory), env=env).returncode == 0
    again = gosbot("examples", "merge", str(labelled), env=env)
    assert "0 added, 1 already there" in again.stdout

    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("text\ttopic\nчто-то\tno_such_topic\n", encoding="utf-8")
    before = (directory / "examples" / "page_display.yaml").read_text(encoding="utf-8")
    refused = gosbot("examples", "merge", str(wrong), env=env)
    assert refused.returncode == 1
    assert "wrong.tsv:2: unknown topic 'no_such_topic'" in refused.stderr
    assert (directory / "examples" / "page_display.yaml").read_text(encoding="utf-8") == before


async def test_an_unsure_answer_is_logged_for_editors(shipped):
    """An answer given with a topic probability below LOW_CONFIDENCE lands in the log as 'unsure'."""
    knowledge, matcher = shipped
    eager = Matcher(knowledge, thresholds=Thresholds(answer=0.0, margin=0.0, lexical_strong=101.0))
    store = MemoryStore()
    chat = Chat(Dialogue(KnowledgeSource.fixed(knowledge, eager), store))
    question = next(
        t
        for t in ("не работает", "проблема с сайтом", "ошибка", "документы")
        if eager.decide(t).probability < LOW_CONFIDENCE
    )
    assert eager.decide(question).outcome in ("answer", "flow")
    await chat.say(question)
    assert [(text, outcome) for text, _, outcome, _ in store.unanswered_log] == [(question, "unsure")]
    await chat.say("/cancel")
    sure = "не приходит смс с кодом подтверждения"
    assert matcher.decide(sure).probability >= LOW_CONFIDENCE
    await Chat(Dialogue(KnowledgeSource.fixed(knowledge, matcher), store), chat_id="other").say(sure)
    assert len(store.unanswered_log) == 1


def test_the_fast_path_computes_what_scikit_learn_computes(shipped):
    _, matcher = shipped
    texts = ["не приходит смс", "ни магу зайти в личный кабинет", "", "привет", "ghbdtn", "кракозябры " * 50]
    lemmas = [matcher.lemmas(t) for t in texts]
    for fast, reference in zip(
        (matcher.model.predict(t) for t in lemmas), matcher.model.predict_many(lemmas), strict=True
    ):
        assert [t for t, _ in fast][:3] == [t for t, _ in reference][:3]
        reference_p = dict(reference)
        assert all(abs(p - reference_p[t]) < 1e-5 for t, p in fast)
