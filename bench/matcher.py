"""Matcher latency and accuracy, each next to a naive rapidfuzz baseline measured in the same run.

    python -m bench.matcher [--sizes shipped,1000,10000] [--seed 20240601] [--folds 5]

Accuracy, the headline first: the locked test set (tests/data/locked.tsv, written before tuning by
someone who had not read the knowledge, never tuned on), then dev.tsv cross-validated (each fold
decided by a matcher trained on the knowledge and the other folds; the thresholds were chosen on
these folds by bench.tune).

Latency: every locked and dev text is decided one at a time and timed with perf_counter_ns. Per FAQ
size: the Matcher is built (timed: normalising and training the classifier included) right after
the normaliser's word caches and the classifier cache are cleared, like after a restart, and its
memory is the traced peak of a second build; the first pass over all queries is the cold pass (it
also warms the per-token fuzzy expansion cache); the second pass is the warm figure. The baseline is
`rapidfuzz.process.extractOne(text, phrasings, scorer=fuzz.WRatio)` over every raw phrasing,
canonical question and flow title/phrasing, no normalisation; it keeps no state between calls, so
10 warm-up queries precede its one timed pass.

The baseline answers with the topic of its best phrasing when the WRatio score reaches a cutoff
(80, and the best of a sweep on dev.tsv), else falls back. Synthetic FAQ growth is deterministic
(random.Random(seed)).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import pickle
import random
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from rapidfuzz import fuzz, process

from bench.common import (
    DEV_TSV,
    KNOWLEDGE,
    LOCKED_TSV,
    load_average,
    log,
    machine,
    machine_header,
    source_state,
    summary_ms,
    table,
    write_results,
)
from bot import classifier, normalize
from bot.cli import decide as cli_decide
from bot.evaluation import Report, Row, cross_validate, read_rows, score, score_decisions
from bot.knowledge import FaqEntry, Knowledge, load_knowledge
from bot.matching import Decision, Matcher

BASELINE_CUTOFF = 80.0
SWEEP = tuple(range(50, 101))
BASELINE_WARMUP = 10
AIM_P99_MS = {1000: 10.0}
AIM_P99_SHIPPED_MS = 3.0

# Services a large FAQ would have an entry (or ten) about; mixed into synthetic phrasings.
SERVICES = (
    "загранпаспорт нового образца",
    "паспорт в 14 лет",
    "замена паспорта в 20 лет",
    "замена паспорта в 45 лет",
    "водительское удостоверение",
    "международное водительское удостоверение",
    "регистрация автомобиля",
    "снятие автомобиля с учета",
    "штрафы гибдд",
    "налоговый вычет за лечение",
    "налоговый вычет за квартиру",
    "декларация 3-ндфл",
    "налог на имущество",
    "транспортный налог",
    "материнский капитал",
    "единое пособие на детей",
    "пособие по безработице",
    "пособие по уходу за ребенком",
    "выплата на первоклассника",
    "пенсия по старости",
    "накопительная пенсия",
    "выписка из лицевого счета снилс",
    "справка о несудимости",
    "справка о доходах",
    "выписка из егрн",
    "кадастровый паспорт",
    "регистрация права собственности",
    "прописка ребенка",
    "временная регистрация",
    "регистрация брака",
    "расторжение брака",
    "свидетельство о рождении",
    "смена фамилии",
    "полис омс",
    "запись к врачу",
    "прикрепление к поликлинике",
    "вызов врача на дом",
    "диспансеризация",
    "запись в детский сад",
    "запись в первый класс",
    "электронный дневник",
    "путевка в лагерь",
    "охотничий билет",
    "разрешение на оружие",
    "воинский учет",
    "повестка из военкомата",
    "загранпаспорт ребенку",
    "ипотека для семей",
    "субсидия на жкх",
    "показания счетчиков",
    "оплата жкх",
    "справка из пфр",
    "инн физического лица",
    "электронная подпись",
    "получение гражданства",
    "патент для мигранта",
    "лицензия такси",
    "регистрация ип",
    "самозанятость",
    "банкротство физлица",
)


# -- synthetic FAQ growth ------------------------------------------------------------------------


def vocabulary(knowledge: Knowledge) -> list[str]:
    """Russian words as they occur (with repeats, so draws follow their real frequency)."""
    texts: list[str] = []
    for entry in knowledge.faq.values():
        texts.extend((entry.question, *entry.phrasings, entry.answer))
    for flow in knowledge.flows.values():
        texts.extend((flow.title, *flow.phrasings, *(s.text for s in flow.steps.values())))
    texts.extend(SERVICES)
    words = re.findall(r"[а-яё]{4,}", "\n".join(texts).lower())
    return words


def grow(knowledge: Knowledge, size: int, seed: int, words: list[str]) -> Knowledge:
    """`knowledge` with its FAQ grown to `size` entries by realistic-looking variations of real ones.

    Synthetic entry i copies a real entry (same topic), then in its question and each phrasing
    replaces about a third of the words of 4+ letters with words drawn from the vocabulary
    (frequency-weighted), and names a service in half of them, so postings lists and the vocabulary
    grow the way a large FAQ's do, and synthetic entries compete with the real ones.
    """
    real = list(knowledge.faq.values())
    if size <= len(real):
        return knowledge
    rng = random.Random(seed)
    faq: dict[str, FaqEntry] = dict(knowledge.faq)
    for i in range(1, size - len(real) + 1):
        base = rng.choice(real)
        service = rng.choice(SERVICES)
        texts = [_mutate(t, rng, words, service) for t in (base.question, *base.phrasings)]
        ident = f"syn_{i:05d}"
        faq[ident] = FaqEntry(
            id=ident,
            topic=base.topic,
            question=texts[0],
            phrasings=tuple(dict.fromkeys(texts[1:])),
            answer=base.answer,
            related=(),
        )
    return dataclasses.replace(knowledge, faq=faq, version=f"{knowledge.version}+syn{size}")


def _mutate(text: str, rng: random.Random, words: list[str], service: str) -> str:
    tokens = text.split()
    out = []
    for token in tokens:
        if len(token) >= 4 and token.isalpha() and rng.random() < 0.35:
            out.append(rng.choice(words))
        else:
            out.append(token)
    if rng.random() < 0.5:
        out.insert(rng.randrange(len(out) + 1), service)
    return " ".join(out)


# -- the naive baseline --------------------------------------------------------------------------


class Baseline:
    """extractOne(WRatio) over the raw phrasings; the best phrasing's topic when the score reaches a cutoff."""

    def __init__(self, knowledge: Knowledge, processor: Callable[[str], str] | None = None):
        self.choices: list[str] = []
        self.topics: list[str] = []
        self.processor = processor
        for entry in knowledge.faq.values():
            for text in (entry.question, *entry.phrasings):
                self.choices.append(text)
                self.topics.append(entry.topic)
        for flow in knowledge.flows.values():
            for text in (flow.title, *flow.phrasings):
                self.choices.append(text)
                self.topics.append(flow.topic)

    def best(self, text: str) -> tuple[float, int]:
        found = process.extractOne(text, self.choices, scorer=fuzz.WRatio, processor=self.processor)
        if found is None:
            return 0.0, -1
        return float(found[1]), int(found[2])

    def decision(self, best: tuple[float, int], cutoff: float) -> Decision:
        value, index = best
        if index < 0 or value < cutoff:
            return Decision("fallback", score=value)
        return Decision("answer", topic=self.topics[index], score=value)


def baseline_report(rows: list[Row], bests: dict[str, tuple[float, int]], base: Baseline, cutoff: float) -> Report:
    return score(rows, lambda text: base.decision(bests[text], cutoff))


def utility(report: Report) -> int:
    """Right decisions (eval README rules) minus confident-wrong answers, which are the worst outcome."""
    right = report.correct + report.abstained + report.smalltalk_right
    return right - report.confident_wrong


# -- timing --------------------------------------------------------------------------------------


def clear_word_caches() -> None:
    """Forget lemmas of words seen so far (as after a restart); the dictionaries stay loaded."""
    for name in ("lemma", "is_known", "from_translit", "spell_fix"):
        fn = getattr(normalize, name, None)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
    classifier._cache.clear()


def timed_pass(texts: list[str], fn: Callable[[str], Any]) -> tuple[list[int], dict[str, Any]]:
    gc.collect()
    samples: list[int] = []
    results: dict[str, Any] = {}
    clock = time.perf_counter_ns
    for text in texts:
        start = clock()
        result = fn(text)
        samples.append(clock() - start)
        results[text] = result
    return samples, results


def measure_size(label: str, knowledge: Knowledge, rows: list[Row], texts: list[str]) -> dict[str, Any]:
    faq_entries = len(knowledge.faq)
    clear_word_caches()
    gc.collect()
    start = time.perf_counter()
    matcher = Matcher(knowledge)
    build_s = time.perf_counter() - start
    log(f"[{label}] {faq_entries} FAQ entries, {len(matcher.docs)} docs, built in {build_s:.2f} s")
    clear_word_caches()
    gc.collect()
    tracemalloc.start()
    Matcher(knowledge)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    model_mb = len(pickle.dumps(matcher.model)) / 2**20
    log(f"[{label}] training peak {peak / 2**20:.0f} MiB, model {model_mb:.1f} MiB pickled")

    def decide(text: str) -> Decision:
        return cli_decide(matcher, text)

    cold, _ = timed_pass(texts, decide)
    warm, decisions = timed_pass(texts, decide)
    ours = score(rows, lambda text: decisions[text])
    log(f"[{label}] matcher warm median {statistics.median(warm) / 1e6:.2f} ms")

    start = time.perf_counter()
    base = Baseline(knowledge)
    base_build_s = time.perf_counter() - start
    # extractOne keeps no state between calls: a short warm-up (allocator, CPU caches) is enough.
    timed_pass(texts[:BASELINE_WARMUP], base.best)
    base_samples, bests = timed_pass(texts, base.best)
    theirs = baseline_report(rows, bests, base, BASELINE_CUTOFF)
    log(f"[{label}] baseline median {statistics.median(base_samples) / 1e6:.2f} ms over {len(base.choices)} strings")

    return {
        "label": label,
        "queries": len(texts),
        "faq_entries": faq_entries,
        "flows": len(knowledge.flows),
        "matcher": {
            "docs": len(matcher.docs),
            "vocabulary": len(getattr(matcher, "postings", {})),
            "build_s": round(build_s, 3),
            "build_peak_mib": round(peak / 2**20, 1),
            "model_mib": round(model_mb, 2),
            "cold": summary_ms(cold),
            "warm": summary_ms(warm),
            "accuracy": ours.summary(),
        },
        "baseline": {
            "strings": len(base.choices),
            "build_s": round(base_build_s, 3),
            "warm": summary_ms(base_samples),
            "cutoff": BASELINE_CUTOFF,
            "accuracy": theirs.summary(),
        },
        "aim_p99_ms": AIM_P99_SHIPPED_MS if label == "shipped" else AIM_P99_MS.get(faq_entries),
        "_bests": bests,
        "_base": base,
        "_matcher": matcher,
    }


# -- accuracy on the shipped knowledge -----------------------------------------------------------


def accuracy_section(
    dev: list[Row], locked: list[Row], shipped: dict[str, Any], knowledge: Knowledge, folds: int
) -> dict[str, Any]:
    matcher: Matcher = shipped["_matcher"]
    base: Baseline = shipped["_base"]
    ours_locked = score(locked, lambda text: cli_decide(matcher, text))
    log(f"dev.tsv {folds}-fold cross-validation (one training per fold)")
    ours_dev = score_decisions(dev, cross_validate(dev, knowledge, folds))
    bests = {text: base.best(text) for text in {r.text for r in dev + locked}}
    sweep = []
    for cutoff in SWEEP:
        report = baseline_report(dev, bests, base, cutoff)
        sweep.append({"cutoff": cutoff, "utility": utility(report), **report.summary()})
    best = max(sweep, key=lambda s: (s["utility"], -s["confident_wrong"]))  # the baseline tuned on dev
    return {
        "locked": {
            "matcher": {**ours_locked.summary(), "utility": utility(ours_locked)},
            "baseline_cutoff_80": baseline_report(locked, bests, base, BASELINE_CUTOFF).summary(),
            "baseline_dev_best_cutoff": {
                "cutoff": best["cutoff"],
                **baseline_report(locked, bests, base, best["cutoff"]).summary(),
            },
            "per_topic": {t: vars(v) for t, v in sorted(ours_locked.per_topic.items())},
        },
        "dev_cv": {
            "folds": folds,
            "matcher": {**ours_dev.summary(), "utility": utility(ours_dev)},
            "baseline_cutoff_80": next(s for s in sweep if s["cutoff"] == BASELINE_CUTOFF),
            "baseline_dev_best_cutoff": best,
        },
        "baseline_sweep_dev": sweep,
        "utility_definition": "in-scope correct + out-of-scope abstained + small talk right - confident-wrong",
    }


# -- output --------------------------------------------------------------------------------------


def _ms(x: dict[str, float], key: str) -> str:
    return f"{x[key]:.2f}"


def print_latency(sizes: list[dict[str, Any]]) -> None:
    headers = [
        "FAQ entries",
        "docs",
        "vocab",
        "build s",
        "build MiB",
        "model MiB",
        "cold med",
        "cold p99",
        "warm med",
        "warm p99",
        "aim p99",
        "base med",
        "base p99",
        "base strings",
    ]
    body = []
    for s in sizes:
        m, b = s["matcher"], s["baseline"]
        aim = s["aim_p99_ms"]
        verdict = "" if aim is None else (f"≤{aim:g} ok" if m["warm"]["p99_ms"] <= aim else f"≤{aim:g} MISSED")
        body.append(
            [
                f"{s['faq_entries']} ({s['label']})",
                str(m["docs"]),
                str(m["vocabulary"]),
                f"{m['build_s']:.2f}",
                f"{m['build_peak_mib']:.0f}",
                f"{m['model_mib']:.1f}",
                _ms(m["cold"], "median_ms"),
                _ms(m["cold"], "p99_ms"),
                _ms(m["warm"], "median_ms"),
                _ms(m["warm"], "p99_ms"),
                verdict or "-",
                _ms(b["warm"], "median_ms"),
                _ms(b["warm"], "p99_ms"),
                str(b["strings"]),
            ]
        )
    print(
        f"Latency per question, ms ({s['queries']} locked + dev texts; matcher = bot.cli.decide; base = extractOne WRatio)"
    )
    print(table(headers, body))
    print()
    headers = ["FAQ entries", "matcher top-1", "matcher conf-wrong", "base@80 top-1", "base@80 conf-wrong"]
    body = [
        [
            f"{s['faq_entries']} ({s['label']})",
            f"{s['matcher']['accuracy']['top1']:.1%}",
            f"{s['matcher']['accuracy']['confident_wrong']:.1%}",
            f"{s['baseline']['accuracy']['top1']:.1%}",
            f"{s['baseline']['accuracy']['confident_wrong']:.1%}",
        ]
        for s in sizes
    ]
    print("Accuracy on locked.tsv as the FAQ grows (synthetic entries carry real topics: same-topic distractors)")
    print(table(headers, body))
    print()


def print_accuracy(acc: dict[str, Any]) -> None:
    metrics = [
        ("top-1 (in scope)", "top1"),
        ("confident-wrong (in scope)", "confident_wrong"),
        ("clarify (in scope)", "clarify"),
        ("out-of-scope abstention", "out_of_scope_abstention"),
        ("small talk", "smalltalk"),
    ]
    for title, part in (
        ("locked.tsv (headline)", acc["locked"]),
        (f"dev.tsv, {acc['dev_cv']['folds']}-fold CV", acc["dev_cv"]),
    ):
        cut = part["baseline_dev_best_cutoff"]["cutoff"]
        columns = [
            ("matcher", part["matcher"]),
            ("baseline @80", part["baseline_cutoff_80"]),
            (f"baseline @{cut} (best on dev)", part["baseline_dev_best_cutoff"]),
        ]
        headers = [title, *(name for name, _ in columns)]
        body = [[label, *(f"{c[key]:.1%}" for _, c in columns)] for label, key in metrics]
        print(table(headers, body))
        print()
    headers = ["locked.tsv topic", "rows", "right", "clarify", "wrong"]
    body = [
        [t, str(v["total"]), str(v["correct"]), str(v["clarify"]), str(v["wrong"])]
        for t, v in acc["locked"]["per_topic"].items()
    ]
    print(table(headers, body))
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matcher", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="shipped,1000,10000", help="comma-separated FAQ sizes")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--folds", type=int, default=5, help="dev.tsv cross-validation folds")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_header(info))
    dev = read_rows(DEV_TSV)
    locked = read_rows(LOCKED_TSV)
    rows = locked
    texts = list(dict.fromkeys(r.text for r in locked + dev))
    knowledge = load_knowledge(KNOWLEDGE)
    print(
        f"knowledge {knowledge.version}: {len(knowledge.faq)} FAQ entries, {len(knowledge.flows)} flows; "
        f"{len(knowledge.examples)} examples; {len(texts)} locked + dev texts; seed {args.seed}"
    )
    print()
    words = vocabulary(knowledge)
    sizes: list[dict[str, Any]] = []
    started = time.perf_counter()
    for raw in args.sizes.split(","):
        raw = raw.strip()
        if raw == "shipped":
            k, label = knowledge, "shipped"
        else:
            k, label = grow(knowledge, int(raw), args.seed, words), "synthetic"
        sizes.append(measure_size(label, k, rows, texts))
    accuracy = None
    shipped = next((s for s in sizes if s["label"] == "shipped"), None)

    print_latency(sizes)
    if shipped is not None:
        accuracy = accuracy_section(dev, locked, shipped, knowledge, args.folds)
        print_accuracy(accuracy)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s; load average at end {load_average()} (on {info['cpu_count']} CPUs)")

    payload = {
        "benchmark": "matcher",
        "machine": info,
        "source": source_state(),
        "knowledge_version": knowledge.version,
        "seed": args.seed,
        "queries": len(texts),
        "percentile_method": "nearest rank",
        "sizes": [{k: v for k, v in s.items() if not k.startswith("_")} for s in sizes],
        "accuracy_shipped": accuracy,
        "total_s": round(total, 1),
        "load_average_at_end": load_average(),
    }
    path = write_results("matcher", payload)
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
