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
from bot.classifier import REGULARISATION, Labelled
from bot.evaluation import Row, folds, read_rows, score_decisions
from bot.knowledge import Knowledge, load_knowledge
from bot.matching import RANK_LIMIT, Matcher, Thresholds, possible_topics

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "dev.tsv"

GRID = {
    "answer": (0.3, 0.4, 0.5, 0.6, 0.7),
    "margin": (0.1, 0.2, 0.3),
    "sure": (0.7, 0.85),
    "out_of_scope": (0.3, 0.45, 0.6),
    "smalltalk": (0.5,),
    "lexical_strong": (60.0, 101.0),
}
WRONG_COST = 4.0  # a confident-wrong answer costs as much as four right ones gain


@dataclasses.dataclass
class Held:
    row: Row
    matcher: Matcher
    inputs: tuple  # (topics, content, normalized, ranking)


def _prepare(matcher: Matcher, row: Row) -> Held:
    normalized = matcher.normalizer(row.text)
    topics = matcher.model.predict(" ".join(normalized.words)) if normalized.words else []
    content = tuple(w for w in normalized.content if w not in matcher.smalltalk_words or w == "не")
    ranking = matcher.rank(content, limit=RANK_LIMIT, topics=possible_topics(topics))
    return Held(row, matcher, (topics, content, normalized, ranking))


def dev_cv(knowledge: Knowledge, k: int, seed: int, c: float) -> list[Held]:
    rows = read_rows(DEV)
    held: list[Held] = []
    for part in folds(rows, k, seed):
        inside = set(part)
        extra = tuple(Labelled(r.text, r.topic) for i, r in enumerate(rows) if i not in inside)
        matcher = Matcher(knowledge, extra, c=c)
        held.extend(_prepare(matcher, rows[i]) for i in part)
    return held


def examples_cv(knowledge: Knowledge, k: int, seed: int, c: float) -> list[Held]:
    rows = [Row(e.text, e.topic) for e in knowledge.examples]
    held: list[Held] = []
    for part in folds(rows, k, seed):
        inside = set(part)
        kept = tuple(e for i, e in enumerate(knowledge.examples) if i not in inside)
        matcher = Matcher(dataclasses.replace(knowledge, examples=kept), c=c)
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
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--c", default=str(REGULARISATION), help="comma-separated regularisation values to try")
    parser.add_argument("--max-wrong", type=float, default=0.025, help="confident-wrong allowed on dev CV")
    args = parser.parse_args()
    knowledge = load_knowledge(ROOT / "knowledge")
    current = Thresholds()
    results = []
    for c in (float(v) for v in args.c.split(",")):
        sources = {"dev": dev_cv(knowledge, args.folds, args.seed, c)}
        if knowledge.examples:
            sources["examples"] = examples_cv(knowledge, args.folds, args.seed, c)
        print(f"C={c}, current thresholds {current}:")
        for name, held in sources.items():
            print(f"  {name:<9}", evaluate(held, current))
        for values in itertools.product(*GRID.values()):
            th = dataclasses.replace(current, **dict(zip(GRID, values, strict=True)))
            per = {name: evaluate(held, th) for name, held in sources.items()}
            dev = per["dev"]
            ok = (
                float(dev["confident_wrong"]) <= args.max_wrong
                and float(dev["out_of_scope_abstention"]) >= 0.9
                and float(dev["smalltalk"]) >= 0.9
            )
            gain = sum(float(r["top1"]) - WRONG_COST * float(r["confident_wrong"]) for r in per.values()) / len(per)
            results.append((ok, gain, c, th, per))
    results.sort(key=lambda r: (not r[0], -r[1]))
    for ok, gain, c, th, per in results[: args.top]:
        print(
            f"\n{'meets' if ok else 'misses'} the dev limits, gain {gain:.3f} (top-1 - {WRONG_COST:g} x wrong), C={c}:",
            th,
        )
        for name, r in per.items():
            print(f"  {name:<9}", r)


if __name__ == "__main__":
    main()
