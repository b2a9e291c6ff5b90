"""Persistence behind one small interface: `Store`, with an in-memory twin and SQLite."""

from bot.storage.base import Store
from bot.storage.memory import MemoryStore
from bot.storage.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store"]
