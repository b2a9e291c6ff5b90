"""The full knowledge check: structure (bot.knowledge) plus what only the matcher can tell.

A phrasing that the matcher ranks closer to another entry than to its own (its own other phrasings,
itself left out) will send citizens to the wrong answer, so it is a problem like a missing field.
"""

from __future__ import annotations

from pathlib import Path

from bot.knowledge import FaqEntry, Knowledge, KnowledgeError, load_knowledge, parse_knowledge, read_texts
from bot.matching import Matcher
from bot.yamlpos import Problem


def confusions(matcher: Matcher) -> list[Problem]:
    """Phrasings that, left out of their own entry, would be answered confidently by another topic.

    That is exactly the citizen's experience: someone writing this phrasing gets another topic's
    answer. Another entry of the same topic winning is not reported: the citizen still lands in the
    right place, and near-ties there are the matcher's "did you mean".
    """
    problems: list[Problem] = []
    k = matcher.knowledge
    for doc_index, doc in enumerate(matcher.docs):
        own = matcher.targets[doc.target]
        if own.kind == "oos":
            continue
        ranking = matcher.rank(doc.tokens, exclude_doc=doc_index)
        decision = matcher.decide_ranked(ranking, doc.tokens)
        if decision.outcome not in ("answer", "flow") or decision.topic == own.topic:
            continue
        own_score = next((c.score for c in ranking if c.target_id == own.id), 0.0)
        item = k.faq.get(own.id) or k.flows.get(own.id)
        if item is None:
            continue
        phrasing, line = _phrasing_of(matcher, item, doc.tokens)
        problems.append(
            Problem(
                item.file,
                line,
                f"phrasing '{phrasing}' of '{own.id}' matches '{decision.target_id}' ({decision.topic}) better "
                f"({decision.score:.0f} against {own_score:.0f}); reword it or move it",
            )
        )
    return problems


def _phrasing_of(matcher: Matcher, item, tokens: tuple[str, ...]) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    texts = list(item.phrasings)
    lines = list(item.phrasing_lines)
    if isinstance(item, FaqEntry):
        texts.insert(0, item.question)
        lines.insert(0, item.line)
    for text, line in zip(texts, lines, strict=False):
        if matcher.normalizer(text).content == tokens:
            return text, line
    return " ".join(tokens), item.line


def validate_texts(texts: dict[str, str]) -> tuple[Knowledge, Matcher]:
    """Parse, validate and build the matcher; raise KnowledgeError with every problem."""
    knowledge = parse_knowledge(texts)
    matcher = Matcher(knowledge)
    problems = confusions(matcher)
    if problems:
        raise KnowledgeError(problems)
    return knowledge, matcher


def validate_dir(directory: Path | str) -> tuple[Knowledge, Matcher]:
    return validate_texts(read_texts(Path(directory)))


def check_dir(directory: Path | str) -> list[Problem]:
    """Every problem in a knowledge directory ([] when it is good)."""
    try:
        validate_dir(directory)
    except KnowledgeError as exc:
        return exc.problems
    return []


__all__ = ["check_dir", "confusions", "load_knowledge", "validate_dir", "validate_texts"]
