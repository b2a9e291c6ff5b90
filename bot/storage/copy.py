"""Moving up: everything in a SQLite file copied into an empty PostgreSQL database.

Both stores share one migration history, so the tables match column for column; rows keep their
ids and ticket numbers, and PostgreSQL's sequences continue after the highest copied number. The
SQLite file is read in one transaction (a consistent snapshot even if a bot still writes to it) and
PostgreSQL is written in one transaction (all or nothing). Stop the bot before copying: whatever it
writes to the SQLite file after the snapshot is not copied.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bot.storage.migrations import TABLES
from bot.storage.postgres import PostgresStore
from bot.storage.sqlite import SqliteStore


class CopyError(Exception):
    """The copy was refused or did not add up; nothing was written."""


def _snapshot(path: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("BEGIN")  # one read transaction: every table from the same moment
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table, key in TABLES:
            columns = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
            order = f" ORDER BY {key}" if key else ""
            tables[table] = (columns, con.execute(f"SELECT {', '.join(columns)} FROM {table}{order}").fetchall())
        con.rollback()
        return tables
    finally:
        con.close()


async def copy_sqlite_to_postgres(sqlite_file: Path, postgres_url: str) -> dict[str, int]:
    """Copy every row; returns rows per table. Refuses a PostgreSQL database that already holds data."""
    source = SqliteStore(sqlite_file)
    await source.open()  # brings an older file up to the current schema first
    await source.close()
    snapshot = await asyncio.to_thread(_snapshot, sqlite_file)

    target = PostgresStore(postgres_url, max_size=2)
    await target.open()
    try:
        async with target.pool.acquire() as con, con.transaction():
            for table, _ in TABLES:
                if await con.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    raise CopyError(f"the PostgreSQL database already has rows in {table}; copy into an empty one")
            for table, key in TABLES:
                columns, rows = snapshot[table]
                if rows:
                    await con.copy_records_to_table(table, records=rows, columns=columns)
                if key:
                    await con.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                        f"COALESCE((SELECT MAX({key}) FROM {table}), 0) + 1, false)"
                    )
            counts = {table: int(await con.fetchval(f"SELECT COUNT(*) FROM {table}")) for table, _ in TABLES}
            expected = {table: len(rows) for table, (_, rows) in snapshot.items()}
            if counts != expected:
                raise CopyError(f"row counts differ after the copy: {counts} != {expected}")
    finally:
        await target.close()
    return counts
