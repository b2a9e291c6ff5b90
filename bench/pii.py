"""Personal-data redaction measured on the labelled set `tests/data/pii.jsonl`.

    python -m bench.pii [--file F] [--mode rules|ner|both|all] [--mistakes] [--runs N]

Per message the set marks sensitive spans (with a category) and spans that must survive (with a
kind). A sensitive span counts as hidden when every letter and digit of it is inside what the
redaction removed. Precision is the share of removed letters and digits that were inside a
sensitive span. A harmless message (no sensitive span) is altered when anything in it is removed.
A keep span is destroyed when any of its letters or digits is removed.

Modes for names: `rules` (morphology and context, the default of the bot), `ner` (natasha's
slovnet PER spans instead of the name rules), `both` (union). The NER model's load time and the
memory it adds are printed when it is used.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import resource
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import DATA, load_average, machine, machine_header, source_state, summary_ms, write_results

PII_SET = DATA / "pii.jsonl"
TARGETS = {"recall": 0.99, "precision": 0.97, "harmless_altered": 0.02, "p99_ms": 5.0}

Finder = Callable[[str], list[tuple[int, int, str]]]


@dataclass
class Report:
    per_category: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # hidden, total
    removed: int = 0
    removed_sensitive: int = 0
    harmless: int = 0
    harmless_altered: int = 0
    keeps: Counter[str] = field(default_factory=Counter)
    keeps_destroyed: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    missed: list[tuple[int, str, str]] = field(default_factory=list)  # id, category, value
    over: list[tuple[int, str, str]] = field(default_factory=list)  # id, category, removed text
    destroyed: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        hidden = sum(h for h, _ in self.per_category.values())
        total = sum(t for _, t in self.per_category.values())
        return hidden / total if total else 1.0

    @property
    def precision(self) -> float:
        return self.removed_sensitive / self.removed if self.removed else 1.0

    @property
    def harmless_share(self) -> float:
        return self.harmless_altered / self.harmless if self.harmless else 0.0


def read_set(path: Path = PII_SET) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _chars(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if text[i].isalnum()}


def evaluate(rows: list[dict], finder: Finder) -> Report:
    report = Report()
    for row in rows:
        text = row["text"]
        report.messages += 1
        predicted = finder(text)
        removed: set[int] = set()
        for start, end, _ in predicted:
            removed |= _chars(text, start, end)
        sensitive: set[int] = set()
        for span in row["spans"]:
            chars = _chars(text, span["start"], span["end"])
            sensitive |= chars
            counts = report.per_category[span["category"]]
            counts[1] += 1
            if chars <= removed:
                counts[0] += 1
            else:
                report.missed.append((row["id"], span["category"], text[span["start"] : span["end"]]))
        report.removed += len(removed)
        report.removed_sensitive += len(removed & sensitive)
        for start, end, category in predicted:
            if not _chars(text, start, end) & sensitive:
                report.over.append((row["id"], category, text[start:end]))
        if not row["spans"]:
            report.harmless += 1
            if removed:
                report.harmless_altered += 1
        for keep in row.get("keep", []):
            report.keeps[keep["kind"]] += 1
            if _chars(text, keep["start"], keep["end"]) & removed:
                report.keeps_destroyed[keep["kind"]] += 1
                report.destroyed.append((row["id"], keep["kind"], text[keep["start"] : keep["end"]]))
    return report


def finder(mode: str) -> Finder:
    from bot.pii import ner
    from bot.safety import find_spans

    ner.use(mode in ("ner", "both"))
    if mode == "ner":
        from bot.pii.rules import NAME, Span, find

        def ner_names(text: str) -> list[tuple[int, int, str]]:
            spans, _ = find(text, names=False)
            taken = [(s.start, s.end) for s in spans]
            spans += [Span(s, e, NAME) for s, e in ner.person_spans(text) if not any(a < e and s < b for a, b in taken)]
            return [(s.start, s.end, s.category) for s in spans]

        return ner_names
    return lambda text: [(s.start, s.end, s.category) for s in find_spans(text)]


def latency(rows: list[dict], run: Finder, runs: int) -> dict[str, float]:
    """Per message: every timed run (raw), and the median of its runs (less disturbed by other
    processes on a shared machine). Both are reported."""
    texts = [r["text"] for r in rows]
    for text in texts:  # warm-up: dictionaries, caches, the NER model
        run(text)
    per_message: list[list[int]] = [[] for _ in texts]
    gc.disable()  # a collection inside one timed call is the interpreter's cost, not the redaction's
    try:
        for _ in range(runs):
            for i, text in enumerate(texts):
                t0 = time.perf_counter_ns()
                run(text)
                per_message[i].append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    raw = summary_ms([t for times in per_message for t in times])
    typical = summary_ms([int(statistics.median(times)) for times in per_message])
    return {**raw, "p99_of_medians_ms": typical["p99_ms"]}


def ner_cost() -> dict[str, float]:
    """Seconds to load the NER model and the resident memory it adds (MB)."""
    from bot.pii import ner

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    ner.load()
    return {
        "load_s": time.perf_counter() - t0,
        "rss_added_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before,
    }


def table(name: str, report: Report, speed: dict[str, float]) -> str:
    lines = [f"## {name}", "", "| category | hidden | of | recall |", "|---|---|---|---|"]
    for category, (hidden, total) in sorted(report.per_category.items()):
        lines.append(f"| {category} | {hidden} | {total} | {hidden / total:.1%} |")
    hidden = sum(h for h, _ in report.per_category.values())
    total = sum(t for _, t in report.per_category.values())
    kept = sum(report.keeps.values())
    lines += [
        f"| **all** | {hidden} | {total} | **{report.recall:.1%}** |",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| recall | {report.recall:.1%} | ≥ {TARGETS['recall']:.0%} |",
        f"| precision (removed letters/digits that were sensitive) | {report.precision:.1%} | ≥ {TARGETS['precision']:.0%} |",
        f"| harmless messages altered | {report.harmless_share:.1%} ({report.harmless_altered} of {report.harmless}) | ≤ {TARGETS['harmless_altered']:.0%} |",
        f"| keep spans intact | {kept - sum(report.keeps_destroyed.values())} of {kept} | all |",
        f"| latency per message, median / p99 (all runs) | {speed['median_ms']:.2f} / {speed['p99_ms']:.2f} ms | p99 ≤ {TARGETS['p99_ms']:.0f} ms |",
        f"| p99 of each message's median over the runs | {speed['p99_of_medians_ms']:.2f} ms | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pii")
    parser.add_argument("--file", default=str(PII_SET))
    parser.add_argument("--mode", choices=["rules", "ner", "both", "all"], default="all")
    parser.add_argument("--mistakes", action="store_true", help="list missed, over-redacted and destroyed spans")
    parser.add_argument("--runs", type=int, default=3, help="timed passes over the set")
    args = parser.parse_args(argv)
    rows = read_set(Path(args.file))
    info = machine()
    print(machine_header(info))
    print(
        f"set: {args.file}: {len(rows)} messages, {sum(len(r['spans']) for r in rows)} sensitive spans, "
        f"{sum(1 for r in rows if not r['spans'])} harmless messages, {sum(len(r.get('keep', [])) for r in rows)} keep spans\n"
    )
    modes = ["rules", "ner", "both"] if args.mode == "all" else [args.mode]
    if importlib.util.find_spec("natasha") is None and args.mode == "all":
        print("natasha is not installed (pip install -e '.[ner]'): measuring the rules only\n")
        modes = ["rules"]
    results = {}
    for mode in modes:
        cost = ner_cost() if mode in ("ner", "both") else None
        run = finder(mode)
        report = evaluate(rows, run)
        speed = latency(rows, run, args.runs)
        results[mode] = {
            "recall": report.recall,
            "precision": report.precision,
            "harmless_altered": report.harmless_share,
            **speed,
        }
        print(
            table(
                f"names by {mode}"
                + (f" (NER load {cost['load_s']:.2f} s, +{cost['rss_added_mb']:.0f} MB RSS)" if cost else ""),
                report,
                speed,
            )
        )
        print()
        if args.mistakes:
            for kind, items in (
                ("missed", report.missed),
                ("over-redacted", report.over),
                ("destroyed", report.destroyed),
            ):
                for row_id, category, value in items:
                    print(f"  {kind:<13} #{row_id:<4} {category:<18} {value!r}")
            print()
    print(f"load average at end {load_average()}")
    path = write_results("pii", {"machine": info, "source": source_state(), "set": args.file, "results": results})
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
