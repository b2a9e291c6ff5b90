"""One trip to the SQLite thread for many callers, and one COMMIT for many turns (group commit).

What concurrent coroutines ask of the store while a trip is under way waits in a queue; the next
trip takes the whole queue and runs it on the connection's thread in one hop. Two kinds of work:

- a call, `fn(connection, *args)`: reads, and writes that commit (or roll back) on their own; run
  in the order they were queued;
- a turn (everything one handled message changes): the trip writes all its turns, after the calls,
  in ONE transaction and commits it once. Each caller is answered only after that COMMIT returned,
  so nothing is acknowledged before it is committed. When a turn's writes fail, the transaction is
  rolled back, that turn fails alone and the others are written again without it; when the COMMIT
  itself fails, or the database stays locked by another process, every turn of it fails (none is
  committed).

All work queued at the same moment is concurrent, so running the calls before the turns is one of
the orders the callers could have seen anyway. This module knows nothing of the tables: the store
passes the function that writes one turn.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
W = TypeVar("W")  # what one turn is (the store's Turn)

# Puts `fn(connection)` on the connection's thread now (no await) and returns the future of its result.
Send = Callable[[Callable[[sqlite3.Connection], Any]], "asyncio.Future[Any]"]


@dataclass
class _Work(Generic[W]):
    future: asyncio.Future[Any]
    call: Callable[[sqlite3.Connection], Any] | None = None
    turn: W | None = None


class Batcher(Generic[W]):
    """`send(fn)` puts `fn(connection)` on the connection's thread; `write_turn(connection, turn)`
    writes one turn without committing (what it returns is the turn's result); while `lock` is held (a caller running several statements
    of its own), no trip is sent.

    One trip at a time. A trip is sent at once, from the caller that finds none under way, so the
    database works while the event loop goes on with other chats; what is asked meanwhile goes in
    the next trip, sent when this one's answer arrives."""

    def __init__(self, send: Send, write_turn: Callable[[sqlite3.Connection, W], Any], lock: asyncio.Lock):
        self._send = send
        self._write_turn = write_turn
        self._lock = lock
        self._queue: list[_Work[W]] = []
        self._busy = False  # a trip is under way, or waits for the lock
        self._idle: list[asyncio.Future[None]] = []  # drain() waiting for the queue to empty
        self._waiting: asyncio.Task[None] | None = None
        self.trips = 0  # trips sent (for tests and the benchmark)
        self.commits = 0  # turn transactions committed

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._submit(lambda con: fn(con, *args), None)
        return result

    async def turn(self, turn: W) -> Any:
        """Returns, once the turn is committed, what `write_turn` returned for it; raises what made it
        fail (then nothing of it is saved)."""
        return await self._submit(None, turn)

    async def drain(self) -> None:
        """Wait until everything queued so far has been done (before closing the connection)."""
        while self._busy or self._queue:
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle

    async def _submit(self, call: Callable[[sqlite3.Connection], Any] | None, turn: W | None) -> Any:
        work: _Work[W] = _Work(asyncio.get_running_loop().create_future(), call, turn)
        self._queue.append(work)
        self._next()
        return await work.future

    def _next(self) -> None:
        """Send the queue as one trip, unless a trip is under way (its end calls this again)."""
        if self._busy:
            return
        # A caller cancelled before its trip was sent: its work is not done (not acknowledged,
        # not committed).
        batch = [w for w in self._queue if not w.future.done()]
        self._queue = []
        if not batch:
            for idle in self._idle:
                if not idle.done():
                    idle.set_result(None)
            self._idle = []
            return
        self._busy = True
        if self._lock.locked():
            self._waiting = asyncio.get_running_loop().create_task(self._when_unlocked(batch))
        else:
            self._go(batch)

    async def _when_unlocked(self, batch: list[_Work[W]]) -> None:
        try:
            async with self._lock:
                pass
        except asyncio.CancelledError:
            self._finish(batch, None)
            raise
        self._waiting = None
        self._go(batch)

    def _go(self, batch: list[_Work[W]]) -> None:
        self.trips += 1
        try:
            future = self._send(functools.partial(self._trip, batch=batch))
        except BaseException as exc:  # the connection is closed
            self._finish(batch, exc)
            return
        future.add_done_callback(functools.partial(self._answered, batch))

    def _answered(self, batch: list[_Work[W]], future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._finish(batch, None)
        elif (exc := future.exception()) is not None:
            self._finish(batch, exc)
        else:
            for w, (ok, value) in zip(batch, future.result(), strict=True):
                if w.future.done():
                    continue
                if ok:
                    w.future.set_result(value)
                else:
                    w.future.set_exception(value)
            self._busy = False
            self._next()

    def _finish(self, batch: list[_Work[W]], exc: BaseException | None) -> None:
        """The trip failed as a whole (exc) or was cancelled (None): every caller of it learns so."""
        for w in batch:
            if w.future.done():
                continue
            if exc is None:
                w.future.cancel()
            else:
                w.future.set_exception(exc)
        self._busy = False
        self._next()

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
        for i, outcome in self._commit_turns(con, [(i, batch[i].turn) for i in turns]).items():
            outcomes[i] = outcome
        return outcomes

    def _commit_turns(self, con: sqlite3.Connection, turns: list[tuple[int, W | None]]) -> dict[int, tuple[bool, Any]]:
        """Write the turns in one transaction and commit; each turn's outcome by position: what
        `write_turn` returned in the attempt that committed, or what made it fail."""
        outcomes: dict[int, tuple[bool, Any]] = {}
        while turns:
            written: list[tuple[int, Any]] = []
            try:
                for i, turn in turns:
                    assert turn is not None
                    written.append((i, self._write_turn(con, turn)))
                con.commit()
                self.commits += 1
                outcomes.update((i, (True, value)) for i, value in written)
                return outcomes
            except Exception as exc:
                con.rollback()
                if len(written) == len(turns) or _locked(exc):
                    # The COMMIT failed (nothing of any turn is saved), or another process holds the
                    # database past busy_timeout: no turn is to blame, and each would wait as long.
                    outcomes.update((i, (False, exc)) for i, _ in turns)
                    return outcomes
                outcomes[turns[len(written)][0]] = (False, exc)
                turns = turns[: len(written)] + turns[len(written) + 1 :]
            except BaseException:
                con.rollback()
                raise
        return outcomes


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
