"""Choosing the decision thresholds by cross-validation, never in-sample.

    python -m bench.tune [--folds 5] [--seed 0] [--top 10]

Two sources of held-out decisions, both made by matchers that never saw the rows they decide:
- dev CV: `tests/data/dev.tsv` in K folds, each decided by a matcher trained on the knowledge and
  the other K-1 folds;
- examples CV: the knowledge's own examples in K folds, each decided by a matcher trained on the
  knowledge without that fold, the held-out examples typed with noise (bot.noise).
For every combination of thresholds in a grid it re-runs the decision rules over the cached
probabilities and rankings and prints the settings that keep confident-wrong answers rare and
out-of-scope abstention high while answering the most. The locked test set is not read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

from bot import noise
from bot.classifier import Labelled
from bot.evaluation import Row, folds, read_rows, score_decisions
from bot.knowledge import Knowledge, load_knowledge
from bot.matching import RANK_LIMIT, Matcher, Thresholds

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "dev.tsv"

GRID = {
    "answer": (0.35, 0.45, 0.55, 0.65),
    "margin": (0.1, 0.2, 0.3),
    "sure": (0.7, 0.8, 0.9),
    "out_of_scope": (0.3, 0.4, 0.5),
    "smalltalk": (0.4, 0.5, 0.6),
    "lexical_strong": (50.0, 60.0, 70.0, 101.0),
}


@dataclasses.dataclass
class Held:
    row: Row
    matcher: Matcher
    inputs: tuple  # (topics, content, normalized, ranking)


def _prepare(matcher: Matcher, row: Row) -> Held:
    normalized = matcher.normalizer(row.text)
    topics = matcher.model.predict(" ".join(normalized.words)) if normalized.words else []
    content = tuple(w for w in normalized.content if w not in matcher.smalltalk_words or w == "не")
    ranking = matcher.rank(content, limit=RANK_LIMIT)
    return Held(row, matcher, (topics, content, normalized, ranking))


def dev_cv(knowledge: Knowledge, k: int, seed: int) -> list[Held]:
    rows = read_rows(DEV)
    held: list[Held] = []
    for part in folds(rows, k, seed):
        inside = set(part)
        extra = tuple(Labelled(r.text, r.topic) for i, r in enumerate(rows) if i not in inside)
        matcher = Matcher(knowledge, extra)
        held.extend(_prepare(matcher, rows[i]) for i in part)
    return held


def examples_cv(knowledge: Knowledge, k: int, seed: int) -> list[Held]:
    rows = [Row(e.text, e.topic) for e in knowledge.examples]
    held: list[Held] = []
    for part in folds(rows, k, seed):
        inside = set(part)
        kept = tuple(e for i, e in enumerate(knowledge.examples) if i not in inside)
        matcher = Matcher(dataclasses.replace(knowledge, examples=kept))
        for i in part:
            typed = noise.variants(rows[i].text, 1, seed=seed + 7) or [rows[i].text]
            held.append(_prepare(matcher, Row(typed[0], rows[i].topic)))
    return held


def decide(held: Held, thresholds: Thresholds):  # type: ignore[no-untyped-def]
    topics, content, normalized, ranking = held.inputs
    matcher = held.matcher
    rule_smalltalk = matcher._smalltalk(held.row.text, normalized)
    if rule_smalltalk:
        from bot.matching import Decision

        return Decision("smalltalk", topic="greeting_smalltalk", smalltalk=rule_smalltalk)
    if not topics:
        from bot.matching import Decision

        return Decision("fallback")
    matcher.thresholds = thresholds
    return matcher.decide_with(held.row.text, topics, content, normalized, ranking)


def evaluate(held: list[Held], thresholds: Thresholds) -> dict[str, float | int]:
    return score_decisions([h.row for h in held], [decide(h, thresholds) for h in held]).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--max-wrong", type=float, default=0.025, help="confident-wrong allowed on both sources")
    args = parser.parse_args()
    knowledge = load_knowledge(ROOT / "knowledge")
    sources = {"dev": dev_cv(knowledge, args.folds, args.seed)}
    if knowledge.examples:
        sources["examples"] = examples_cv(knowledge, args.folds, args.seed)
    current = Thresholds()
    print("current thresholds:", current)
    for name, held in sources.items():
        print(f"  {name:<9}", evaluate(held, current))
    results = []
    for values in itertools.product(*GRID.values()):
        th = dataclasses.replace(current, **dict(zip(GRID, values, strict=True)))
        per = {name: evaluate(held, th) for name, held in sources.items()}
        ok = all(r["confident_wrong"] <= args.max_wrong and r["out_of_scope_abstention"] >= 0.9 for r in per.values())
        mean_top1 = sum(float(r["top1"]) for r in per.values()) / len(per)
        results.append((ok, mean_top1, th, per))
    results.sort(key=lambda r: (not r[0], -r[1]))
    for ok, top1, th, per in results[: args.top]:
        print(f"\n{'meets' if ok else 'misses'} limits, mean top-1 {top1:.3f}:", th)
        for name, r in per.items():
            print(f"  {name:<9}", r)


if __name__ == "__main__":
    main()
