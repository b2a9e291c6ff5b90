"""Keeping personal data no longer than needed, forgetting a citizen on request, and auditing a
database for personal data that is still there.

- `Retention` deletes, once a day (once between all workers sharing a database), closed tickets'
  transcripts, chat transcripts, the unanswered log, delivered outbox items and stale sessions
  older than GOSBOT_RETENTION_DAYS (default 90).
  Its clock and sleep are injectable, so tests run a year in a millisecond.
- `forget` erases one citizen (`gosbot forget --platform P --chat ID`).
- `audit` reads every text column of every table of a SQLite file with the redaction's own rules
  and reports where something still looks like personal data (`gosbot audit DB`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.safety import MARKS, find_spans
from bot.storage.base import Store

log = logging.getLogger(__name__)

DAY = 86400.0
HOUR = 3600.0
JOB = "retention"  # its name in the store's jobs table (one purge per period across workers)


class Retention:
    """The daily purge the running bot does (started with its other background tasks)."""

    def __init__(
        self,
        store: Store,
        days: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ):
        if days < 1:
            raise ValueError("the retention period is at least one day")
        self.store = store
        self.days = days
        self.clock = clock
        self.sleep = sleep

    async def purge_once(self) -> dict[str, int]:
        counts = await self.store.purge(self.clock() - self.days * DAY)
        if any(counts.values()):
            log.info(
                "retention (%d days): removed %s", self.days, ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            )
        return counts

    async def run(self, stop: asyncio.Event, every: float = DAY, check: float | None = None) -> None:
        """Purge now, then every `every` seconds until `stop` is set; a failed round is logged and retried.

        Several workers on one database purge once per period between them: each looks every
        `check` seconds (default `every`) and purges only when it claims the period (`claim_job`),
        so when the one that purged last is gone, another takes over within `check`."""
        while not stop.is_set():
            try:
                if await self.store.claim_job(JOB, self.clock(), every):
                    log.info("retention round (this worker; the next one is due in %.0f s)", every)
                    await self.purge_once()
            except Exception:
                log.exception("retention purge failed; retrying at the next round")
            waiter = asyncio.ensure_future(stop.wait())
            pause = asyncio.ensure_future(self.sleep(every if check is None else check))
            done, pending = await asyncio.wait({waiter, pause}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()


async def forget(store: Store, platform: str, chat_id: str) -> dict[str, int]:
    counts = await store.forget(platform, chat_id)
    log.info("forgot a citizen of %s: %s", platform, ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return counts


@dataclass(frozen=True)
class Finding:
    table: str
    rowid: int
    column: str
    category: str
    hint: str  # the found value with most of it masked, so the audit itself does not leak it


def audit(path: Path | str) -> list[Finding]:
    """Every place in a SQLite database where a text value still holds personal data."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    findings: list[Finding] = []
    with sqlite3.connect(uri, uri=True) as db:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        ]
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            select = ", ".join(f'"{c}"' for c in columns)
            for row in db.execute(f'SELECT rowid, {select} FROM "{table}"'):  # noqa: S608 - names from the schema
                for column, value in zip(columns, row[1:], strict=True):
                    if not isinstance(value, str) or not value:
                        continue
                    for text in _texts(value):
                        for span in find_spans(_without_marks(text)):
                            hint = _hint(text[span.start : span.end])
                            findings.append(Finding(table, row[0], column, span.category, hint))
    return findings


def _texts(value: str) -> list[str]:
    """The strings a value holds: itself, or every string inside it when it is JSON (sessions, outbox)."""
    if value[:1] not in "{[":
        return [value]
    try:
        data = json.loads(value)
    except ValueError:
        return [value]
    found: list[str] = []

    def walk(item: object) -> None:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for part in item.values():
                walk(part)
        elif isinstance(item, list):
            for part in item:
                walk(part)

    walk(data)
    return found


def _without_marks(text: str) -> str:
    # The marks are the redaction's own work; same length, so positions still fit the original.
    for mark in MARKS.values():
        text = text.replace(mark, " " * len(mark))
    return text


def _hint(value: str) -> str:
    if len(value) <= 4:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 4) + value[-2:]
