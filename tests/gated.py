"""A SQLite store whose commits wait at a gate: shows whether a platform is acknowledged before the
turn is committed; `full` makes commits fail like a full disk."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.storage import SqliteStore
from bot.storage.base import Turn


class GatedStore(SqliteStore):
    """Commits a turn only when the gate is open; `full` makes commits fail like a full disk."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0
        self.full = False

    async def commit_turn(self, turn: Turn) -> int | None:
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return await super().commit_turn(turn)
