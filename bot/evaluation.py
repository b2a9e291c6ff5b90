"""Scoring decisions on a labelled TSV (text<TAB>topic): top-1, confident-wrong, clarify, abstention.

The rules: an in-scope row is right when the bot answers (or starts a flow) with the row's topic; a
confident answer with another topic is confident-wrong; a "did you mean" is counted apart; an
out-of-scope row is right when the bot does not answer confidently; small talk when it says small
talk. `cross_validate` trains on the knowledge plus K-1 folds of the file and decides the last,
so a figure on a file the thresholds were tuned with is never an in-sample one.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.classifier import Labelled
from bot.matching import Decision, Matcher, Thresholds

if TYPE_CHECKING:
    from bot.knowledge import Knowledge

NOT_IN_SCOPE = ("greeting_smalltalk", "other_out_of_scope")
CONFIDENT = ("answer", "flow", "contacts", "number_check")


@dataclass(frozen=True)
class Row:
    text: str
    topic: str


@dataclass
class TopicScore:
    total: int = 0
    correct: int = 0
    clarify: int = 0
    wrong: int = 0


@dataclass
class Report:
    rows: int = 0
    in_scope: int = 0
    correct: int = 0
    confident_wrong: int = 0
    clarify: int = 0
    clarify_right: int = 0
    out_of_scope: int = 0
    abstained: int = 0
    smalltalk: int = 0
    smalltalk_right: int = 0
    per_topic: dict[str, TopicScore] = field(default_factory=lambda: defaultdict(TopicScore))
    mistakes: list[tuple[str, str, str, str | None]] = field(default_factory=list)

    def ratio(self, part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "top1": round(self.ratio(self.correct, self.in_scope), 4),
            "confident_wrong": round(self.ratio(self.confident_wrong, self.in_scope), 4),
            "clarify": round(self.ratio(self.clarify, self.in_scope), 4),
            "clarify_with_right_option": round(self.ratio(self.clarify_right, self.in_scope), 4),
            "out_of_scope_abstention": round(self.ratio(self.abstained, self.out_of_scope), 4),
            "smalltalk": round(self.ratio(self.smalltalk_right, self.smalltalk), 4),
        }


def read_rows(path: Path | str) -> list[Row]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return []
        return [Row(r[0], r[1]) for r in reader if len(r) >= 2 and r[0].strip()]


def decision_topic(decision: Decision) -> str | None:
    if decision.outcome == "contacts":
        return "phone_contacts"
    return decision.topic


def folds(rows: list[Row], k: int, seed: int) -> list[list[int]]:
    """K folds of row indexes, stratified by topic, shuffled by `seed` (the same seed, the same folds)."""
    rng = random.Random(seed)
    by_topic: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_topic[row.topic].append(index)
    result: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for topic in sorted(by_topic):
        indexes = by_topic[topic]
        rng.shuffle(indexes)
        for i, index in enumerate(indexes):
            result[(offset + i) % k].append(index)
        offset += len(indexes)
    return [sorted(f) for f in result]


def cross_validate(
    rows: list[Row],
    knowledge: Knowledge,
    k: int,
    *,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> list[Decision]:
    """Each row decided by a matcher trained on the knowledge and the other K-1 folds of `rows`."""
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    decisions: list[Decision | None] = [None] * len(rows)
    parts = folds(rows, k, seed)
    for held_out in parts:
        held = set(held_out)
        extra = tuple(Labelled(r.text, r.topic) for i, r in enumerate(rows) if i not in held)
        matcher = Matcher(knowledge, extra) if thresholds is None else Matcher(knowledge, extra, thresholds)
        for index in held_out:
            decisions[index] = matcher.decide(rows[index].text)
    return [d for d in decisions if d is not None]


def score(rows: Iterable[Row], decide: Callable[[str], Decision]) -> Report:
    rows = list(rows)
    return score_decisions(rows, [decide(row.text) for row in rows])


def score_decisions(rows: list[Row], decisions: list[Decision]) -> Report:
    report = Report()
    for row, decision in zip(rows, decisions, strict=True):
        report.rows += 1
        topic = decision_topic(decision)
        stats = report.per_topic[row.topic]
        stats.total += 1
        if row.topic == "greeting_smalltalk":
            report.smalltalk += 1
            ok = decision.outcome == "smalltalk"
            report.smalltalk_right += ok
            stats.correct += ok
        elif row.topic == "other_out_of_scope":
            report.out_of_scope += 1
            ok = decision.outcome not in CONFIDENT
            report.abstained += ok
            stats.correct += ok
        else:
            report.in_scope += 1
            if decision.outcome in CONFIDENT:
                ok = topic == row.topic
                report.correct += ok
                stats.correct += ok
                if not ok:
                    report.confident_wrong += 1
                    stats.wrong += 1
            else:
                ok = False
                if decision.outcome == "clarify":
                    report.clarify += 1
                    stats.clarify += 1
                    report.clarify_right += any(c.topic == row.topic for c in decision.candidates)
        if not ok:
            report.mistakes.append((row.text, row.topic, decision.outcome, topic))
    return report


def format_report(report: Report) -> str:
    s = report.summary()
    lines = [
        f"rows: {report.rows} (in scope {report.in_scope}, out of scope {report.out_of_scope}, small talk {report.smalltalk})",
        f"top-1 accuracy (in scope):      {s['top1']:.1%}",
        f"confident-wrong (in scope):     {s['confident_wrong']:.1%}",
        f"clarify (in scope):             {s['clarify']:.1%} (right topic offered: {s['clarify_with_right_option']:.1%})",
        f"out-of-scope abstention:        {s['out_of_scope_abstention']:.1%}",
        f"small talk:                     {s['smalltalk']:.1%}",
        "",
        f"{'topic':<22} {'rows':>4} {'right':>6} {'clarify':>7} {'wrong':>5}",
    ]
    for topic in sorted(report.per_topic):
        t = report.per_topic[topic]
        lines.append(f"{topic:<22} {t.total:>4} {t.correct:>6} {t.clarify:>7} {t.wrong:>5}")
    return "\n".join(lines)
