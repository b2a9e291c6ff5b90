"""Closing the loop for editors: labelled questions back into `knowledge/examples/`.

`gosbot stats unanswered --tsv` exports what citizens asked that the bot did not answer (or answered
unsure) as `text<TAB>topic<TAB>count<TAB>outcome`, the topic column left empty. An editor fills in the
topic (for small talk `greeting_smalltalk:<intent>`, e.g. `greeting_smalltalk:thanks`) and merges the
file with `gosbot examples merge FILE.tsv`: each labelled row is appended to
`examples/<topic>.yaml` unless the same message (after normalisation) is already filed there.
Rows with an empty topic are skipped; an unknown topic or intent is reported and nothing is written.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge import EXAMPLES_DIR, Knowledge
from bot.normalize import fold

SMALLTALK = "greeting_smalltalk"
_SPACE = re.compile(r"[^\w]+")


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    unlabelled: int = 0
    errors: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    return _SPACE.sub(" ", fold(text)).strip()


def read_labelled(path: Path) -> list[tuple[int, str, str]]:
    """(line, text, label) for every row of a `text<TAB>topic…` file (a header row is skipped)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "text"):
                continue
            text = row[0].strip()
            label = row[1].strip() if len(row) > 1 else ""
            if text:
                rows.append((number, text, label))
    return rows


def merge(path: Path, directory: Path, knowledge: Knowledge) -> MergeReport:
    """Append the labelled rows of `path` to the examples files in `directory`."""
    report = MergeReport()
    intents = {i.id for i in knowledge.smalltalk}
    seen = {(_key(e.text), e.topic) for e in knowledge.examples}
    planned: dict[tuple[str, str], list[str]] = defaultdict(list)  # (topic, intent) → texts
    for line, text, label in read_labelled(path):
        if not label:
            report.unlabelled += 1
            continue
        topic, _, intent = label.partition(":")
        if topic not in knowledge.topics:
            report.errors.append(f"{path}:{line}: unknown topic '{topic}' (see topics.yaml)")
            continue
        if topic == SMALLTALK and intent not in intents:
            report.errors.append(
                f"{path}:{line}: small talk needs an intent, e.g. '{SMALLTALK}:thanks' ({', '.join(sorted(intents))})"
            )
            continue
        if topic != SMALLTALK and intent:
            report.errors.append(f"{path}:{line}: only {SMALLTALK} takes an intent after ':'")
            continue
        if "\n" in text or (_key(text), topic) in seen:
            report.duplicates += 1
            continue
        seen.add((_key(text), topic))
        planned[(topic, intent)].append(text)
    if report.errors:
        return report
    for (topic, intent), texts in sorted(planned.items()):
        _append(directory / EXAMPLES_DIR / f"{topic}.yaml", topic, intent, texts)
        report.added[label_of(topic, intent)] += len(texts)
    return report


def label_of(topic: str, intent: str) -> str:
    return f"{topic}:{intent}" if intent else topic


def _append(file: Path, topic: str, intent: str, texts: list[str]) -> None:
    """Add items at the end of the file's list; a new file gets the header an editor would write."""
    items = "".join(f"{'    ' if intent else '  '}- {json.dumps(t, ensure_ascii=False)}\n" for t in texts)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        body = f"intents:\n  {intent}:\n" if intent else "examples:\n"
        file.write_text(
            f"# Training examples for the topic classifier (merged from labelled questions).\ntopic: {topic}\n"
            + body
            + items,
            encoding="utf-8",
        )
        return
    text = file.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    if intent:
        # A new block for the intent at the end of `intents:` (a repeated key would be a YAML error,
        # so an intent already present gets its items after its own last line).
        lines = text.splitlines(keepends=True)
        start = next((i for i, ln in enumerate(lines) if ln.rstrip() == f"  {intent}:"), None)
        if start is None:
            text += f"  {intent}:\n" + items
        else:
            end = start + 1
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            text = "".join(lines[:end]) + items + "".join(lines[end:])
    else:
        text += items
    file.write_text(text, encoding="utf-8")
