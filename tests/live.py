"""Running a real adapter in a background event loop, so that hypothesis' synchronous examples can
drive it: each example submits coroutines to the loop and waits for them."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")


class Background:
    """An event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Errors(logging.Handler):
    """Every ERROR (or worse) any logger writes: an exception a handler swallowed shows up here."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Errors:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()}" + (f" {r.exc_info[1]!r}" if r.exc_info else "") for r in self.records]
        self.records.clear()
        return found


# Text as platforms may deliver it: any code point, lone surrogates included (a JSON "\ud800").
ODD_CHARS = st.sampled_from(["\ud800", "\udfff", "\udc00", "x", "\x00", "\u200b", "😀", "й", "\n", "{", "%", "/"])
ODD_TEXT = st.one_of(st.text(max_size=60), st.text(alphabet=ODD_CHARS, max_size=20), st.text(max_size=5000))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def as_json(value: Any) -> str:
    """JSON as a platform would send it: non-ASCII escaped, so surrogates travel as "\\ud800"."""
    return json.dumps(value, ensure_ascii=True)
