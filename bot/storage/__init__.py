"""Persistence behind one small interface: `Store`, with an in-memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.base import Store
from bot.storage.memory import MemoryStore
from bot.storage.postgres import PostgresStore
from bot.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["MemoryStore", "PostgresStore", "SqliteStore", "Store", "store_for"]


def store_for(settings: Settings) -> Store:
    """PostgreSQL when GOSBOT_DATABASE_URL is set, else the SQLite file GOSBOT_DB (not yet opened)."""
    if settings.database_url:
        return PostgresStore(settings.database_url)
    return SqliteStore(settings.db, busy_timeout=settings.db_busy_timeout)
