"""The full knowledge check: structure (bot.knowledge), then what only the trained matcher can tell.

Problems stop a reload and fail `gosbot check`. Warnings are shown to editors but do not stop
anything: training material that contradicts itself — the same message filed under two topics, or
an example that everything else the classifier learned reads as another topic.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from bot import classifier
from bot.knowledge import Knowledge, KnowledgeError, load_knowledge, parse_knowledge, read_texts
from bot.matching import Matcher
from bot.yamlpos import Problem

MISFIT_C = 0.5  # a strongly regularised classifier for the check: one odd example cannot bend it
MISFIT_RATIO = 4.0  # an example it finds this many times likelier to be another topic than its own


def _labelled(k: Knowledge) -> list[tuple[str, str, str, int]]:
    """Every labelled text an editor wrote: (text, topic, file, line)."""
    rows: list[tuple[str, str, str, int]] = []
    for e in k.faq.values():
        rows.append((e.question, e.topic, e.file, e.line))
        rows.extend((t, e.topic, e.file, n) for t, n in zip(e.phrasings, e.phrasing_lines, strict=False))
    for f in k.flows.values():
        rows.extend((t, f.topic, f.file, n) for t, n in zip(f.phrasings, f.phrasing_lines, strict=False))
    rows.extend((x.text, x.topic, x.file, x.line) for x in k.examples)
    return rows


def warnings(matcher: Matcher) -> list[Problem]:
    """Contradictions in the training material, as file:line warnings."""
    k = matcher.knowledge
    found: list[Problem] = []
    rows = _labelled(k)
    lemmas = [matcher.lemmas(text) for text, *_ in rows]
    by_text: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(lemmas):
        if key:
            by_text[key].append(index)
    for indexes in by_text.values():
        first = rows[indexes[0]]
        for index in indexes[1:]:
            text, topic, file, line = rows[index]
            if topic != first[1]:
                found.append(
                    Problem(
                        file,
                        line,
                        f"warning: '{text}' ({topic}) says the same as '{first[0]}' ({first[1]}) "
                        f"at {first[2]}:{first[3]}; keep it under one topic",
                    )
                )
    examples = [i for i, (_, _, file, _) in enumerate(rows) if file.startswith("examples/") and lemmas[i]]
    if examples:
        usable = [i for i, key in enumerate(lemmas) if key]
        model = classifier.fit([lemmas[i] for i in usable], [rows[i][1] for i in usable], c=MISFIT_C)
        predictions = model.predict_many([lemmas[i] for i in examples])
        for index, ranked in zip(examples, predictions, strict=True):
            text, topic, file, line = rows[index]
            best, p = ranked[0]
            own = dict(ranked).get(topic, 0.0)
            if best != topic and p >= MISFIT_RATIO * own:
                found.append(
                    Problem(
                        file,
                        line,
                        f"warning: '{text}' is filed under {topic}, but everything else the classifier learned "
                        f"reads it as {best} ({p:.0%}); move it, reword it, or add examples that tell them apart",
                    )
                )
    return sorted(found, key=lambda p: (p.file, p.line, p.message))


# A reply must never ask the citizen for what fraudsters ask for. "Пришлите номер заявления" is fine;
# "пришлите код из СМС" or "назовите серию и номер паспорта" is refused; "никому не сообщайте код" is advice.
_ASK = re.compile(
    r"(?<![\w])(?P<verb>(?:пришлите|пришли|присылайте|отправьте|отправь|отправляйте|сообщите|сообщи|сообщайте|"
    r"назовите|назови|называйте|продиктуйте|продиктуй|скиньте|скинь|напишите|напиши)(?![\w])|"
    r"укаж\w*\s+(?:здесь|сюда|мне|нам|в\s+(?:чат|ответ\w*|сообщени\w*))|"
    r"введ\w*\s+(?:здесь|сюда|в\s+(?:чат|ответ\w*|сообщени\w*)))"
    r"(?P<gap>[^.!?\n]{0,40}?)"
    r"(?<![\w«\"])(?P<what>парол\w*|\bкод\w*(?!\s+(?:ошибки|подразделени\w*|региона))|\bпин\w*|cvv|cvc|паспорт\w*|"
    r"сери\w*\s+и\s+номер\w*|снилс\w*|\bинн\b|полис\w*|номер\w*\s+(?:карты|счёта|счета|документ\w*|"
    r"удостоверени\w*|свидетельств\w*)|данные\s+(?:карты|паспорта|документ\w*))",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"(?:\bне|\bни|никому|никогда|нельзя|запрещ\w*)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)


def _asks_for_secret(text: str) -> str | None:
    for m in _ASK.finditer(text):
        if _NEGATED.search(text[max(0, m.start() - 30) : m.start()]) or re.search(r"\bне\b", m.group("gap")):
            continue
        return m.group()
    return None


def asking_for_secrets(knowledge: Knowledge, texts: dict[str, str]) -> list[Problem]:
    """Every reply that asks a citizen for a password, a code or a document's number."""
    k = knowledge
    replies: list[tuple[str, str, int]] = [(e.answer, e.file, e.line) for e in k.faq.values()]
    for f in k.flows.values():
        for step in f.steps.values():
            replies.append((step.text, f.file, f.line))
            replies.extend((o.label, f.file, f.line) for o in step.options)
    replies.extend((text, "messages.yaml", 1) for text in k.messages.values())
    replies.extend((i.reply, "messages.yaml", 1) for i in k.smalltalk)
    problems = []
    for text, file, line in replies:
        asked = _asks_for_secret(text)
        if asked:
            problems.append(
                Problem(
                    file,
                    _line_of(texts.get(file, ""), asked) or line,
                    f"a reply asks the citizen for personal data ('{asked}'): support never asks for passwords, "
                    "codes or documents' numbers in the chat; tell them where to enter it themselves instead",
                )
            )
    return problems


def _line_of(source: str, fragment: str) -> int | None:
    head = fragment.split()[0] if fragment.split() else fragment
    for number, line in enumerate(source.splitlines(), start=1):
        if fragment in line or (head in line and fragment.split()[-1] in line):
            return number
    return None


def validate_texts(texts: dict[str, str]) -> tuple[Knowledge, Matcher]:
    """Parse, validate and build (train) the matcher; raise KnowledgeError with every problem."""
    knowledge = parse_knowledge(texts)
    asking = asking_for_secrets(knowledge, texts)
    if asking:
        raise KnowledgeError(asking)
    return knowledge, Matcher(knowledge)


def validate_dir(directory: Path | str) -> tuple[Knowledge, Matcher]:
    return validate_texts(read_texts(Path(directory)))


def check_dir(directory: Path | str) -> list[Problem]:
    """Every problem in a knowledge directory ([] when it is good); warnings are not problems."""
    return check_all(directory)[0]


def check_all(directory: Path | str) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) of a knowledge directory."""
    try:
        _, matcher = validate_dir(directory)
    except KnowledgeError as exc:
        return exc.problems, []
    return [], warnings(matcher)


__all__ = [
    "asking_for_secrets",
    "check_all",
    "check_dir",
    "load_knowledge",
    "validate_dir",
    "validate_texts",
    "warnings",
]
