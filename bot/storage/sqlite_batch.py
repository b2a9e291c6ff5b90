"""One trip to the SQLite thread for many callers, and one COMMIT for many turns (group commit).

What concurrent coroutines ask of the store while a trip is under way waits in a queue; the next
trip takes the whole queue and runs it on the connection's thread in one hop. Two kinds of work:

- a call, `fn(connection, *args)`: reads, and writes that commit (or roll back) on their own; run
  in the order they were queued;
- a turn (everything one handled message changes): the trip writes all its turns, after the calls,
  in ONE transaction and commits it once. Each caller is answered only after that COMMIT returned,
  so nothing is acknowledged before it is committed. When a turn's writes fail, the transaction is
  rolled back, that turn fails alone and the others are written again without it; when the COMMIT
  itself fails, every turn of it fails (none is committed).

All work queued at the same moment is concurrent, so running the calls before the turns is one of
the orders the callers could have seen anyway. This module knows nothing of the tables: the store
passes the function that writes one turn.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
W = TypeVar("W")  # what one turn is (the store's Turn)

Hop = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


@dataclass
class _Work(Generic[W]):
    future: asyncio.Future[Any]
    call: Callable[[sqlite3.Connection], Any] | None = None
    turn: W | None = None


class Batcher(Generic[W]):
    """`hop(fn)` runs `fn(connection)` on the connection's thread and returns its result;
    `write_turn(connection, turn)` writes one turn without committing."""

    def __init__(self, hop: Hop, write_turn: Callable[[sqlite3.Connection, W], None]):
        self._hop = hop
        self._write_turn = write_turn
        self._queue: list[_Work[W]] = []
        self._task: asyncio.Task[None] | None = None
        self.trips = 0  # hops made (for tests and the benchmark)
        self.commits = 0  # turn transactions committed

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._submit(lambda con: fn(con, *args), None)
        return result

    async def turn(self, turn: W) -> None:
        """Returns once the turn is committed; raises what made it fail (then nothing of it is saved)."""
        await self._submit(None, turn)

    async def drain(self) -> None:
        """Wait until everything queued so far has been done (before closing the connection)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _submit(self, call: Callable[[sqlite3.Connection], Any] | None, turn: W | None) -> Any:
        loop = asyncio.get_running_loop()
        work: _Work[W] = _Work(loop.create_future(), call, turn)
        self._queue.append(work)
        if self._task is None:
            self._task = loop.create_task(self._run())
        return await work.future

    async def _run(self) -> None:
        try:
            while self._queue:
                # A caller cancelled before its trip started: its work is not done (not acknowledged,
                # not committed).
                batch = [w for w in self._queue if not w.future.done()]
                self._queue = []
                if not batch:
                    continue
                self.trips += 1
                try:
                    outcomes = await self._hop(functools.partial(self._trip, batch=batch))
                except asyncio.CancelledError:
                    for w in batch:
                        w.future.cancel()
                    raise
                except BaseException as exc:  # the hop itself failed (connection closed …)
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                for w, (ok, value) in zip(batch, outcomes, strict=True):
                    if w.future.done():
                        continue
                    if ok:
                        w.future.set_result(value)
                    else:
                        w.future.set_exception(value)
        finally:
            self._task = None
            for w in self._queue:  # only when cancelled: nobody is left to run them
                w.future.cancel()
            self._queue = []

    # -- on the connection's thread ------------------------------------------------------------------

    def _trip(self, con: sqlite3.Connection, batch: list[_Work[W]]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        turns: list[int] = []
        for i, w in enumerate(batch):
            if w.call is None:
                turns.append(i)
                continue
            try:
                outcomes[i] = (True, w.call(con))
            except Exception as exc:
                outcomes[i] = (False, exc)
        for i, failure in self._commit_turns(con, [(i, batch[i].turn) for i in turns]).items():
            outcomes[i] = (False, failure)
        return outcomes

    def _commit_turns(self, con: sqlite3.Connection, turns: list[tuple[int, W | None]]) -> dict[int, Exception]:
        """Write the turns in one transaction and commit; returns the failed ones by position."""
        failed: dict[int, Exception] = {}
        while turns:
            written = 0
            try:
                for _, turn in turns:
                    assert turn is not None
                    self._write_turn(con, turn)
                    written += 1
                con.commit()
                self.commits += 1
                return failed
            except Exception as exc:
                con.rollback()
                if written == len(turns):  # the COMMIT failed: nothing of any turn is saved
                    failed.update((i, exc) for i, _ in turns)
                    return failed
                failed[turns[written][0]] = exc
                turns = turns[:written] + turns[written + 1 :]
            except BaseException:
                con.rollback()
                raise
        return failed
