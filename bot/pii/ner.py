"""Optional names from natasha's slovnet NER (weights ship inside the `natasha` wheel; nothing is
downloaded). Off by default: on the labelled set the rules alone found names as well, and the model
costs a second to load, ~200 MB and milliseconds per message (bench.pii measures both ways).

`use(True)` turns it on; the model loads once, lazily, on the first message that could hold a name.
"""

from __future__ import annotations

import re
import threading
from typing import Any

_enabled = False
_model: Any = None
_lock = threading.Lock()
# Only a message with two capitalised words in a row, or a patronymic, can hold a full name.
_CANDIDATE = re.compile(r"[А-ЯЁ][а-яё]+[\s,]+[А-ЯЁ][а-яё.]|(?:ович|евич|овн|евн|ичн)\w{0,3}\b", re.IGNORECASE)


def use(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def load() -> Any:
    """The NER tagger (loaded on first call)."""
    global _model
    with _lock:
        if _model is None:
            from natasha import NewsEmbedding, NewsNERTagger

            _model = NewsNERTagger(NewsEmbedding())
    return _model


def person_spans(text: str) -> list[tuple[int, int]]:
    """PER spans of two or more words (a lone first name is not a full name)."""
    if not _enabled or not _CANDIDATE.search(text):
        return []
    markup = load()(text)
    return [
        (s.start, s.stop)
        for s in markup.spans
        if s.type == "PER" and len(re.findall(r"[А-ЯЁа-яё]+", text[s.start : s.stop])) >= 2
    ]
