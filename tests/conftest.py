"""Shared fixtures: the shipped knowledge, real SQLite files in tmp_path, and a guard against the internet."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gated import GatedStore
from scenario import Chat

from bot.dialogue import Dialogue, KnowledgeSource
from bot.knowledge import load_knowledge
from bot.matching import Matcher
from bot.storage import MemoryStore, SqliteStore
from bot.storage.base import Store
from bot.storage.postgres import PostgresStore
from fakes.postgres import Server, create_database, drop_database, server_bin_dir, throwaway_server

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return True  # unix sockets, socketpairs


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any test that tries to reach beyond 127.0.0.1 fails loudly (the python-telegram-bot OfflineRequest idea)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    def guarded_ex(self: socket.socket, address: object) -> int:
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_ex)


@pytest.fixture(scope="session")
def shipped() -> tuple:
    """The shipped knowledge and its matcher, built once per test session."""
    knowledge = load_knowledge(KNOWLEDGE)
    return knowledge, Matcher(knowledge)


@pytest.fixture
def source(shipped: tuple) -> KnowledgeSource:
    return KnowledgeSource.fixed(*shipped)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "gosbot.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """One store of the kind a test is parametrized with (indirect): "memory", "sqlite" or "postgres"."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "contract.sqlite3")
        await sqlite.open()
        yield sqlite
        await sqlite.close()
        return
    server = request.getfixturevalue("postgres_server")  # sync, session-wide: allowed from here
    url = await create_database(server)
    postgres = PostgresStore(url)
    await postgres.open()
    yield postgres
    await postgres.close()
    await drop_database(server, url)


@pytest.fixture
async def dialogue(source: KnowledgeSource, sqlite_store: SqliteStore) -> Dialogue:
    return Dialogue(source, sqlite_store)


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """One real PostgreSQL server for the whole session, started here (skipped only without its binaries)."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql to run these tests")
    with throwaway_server(bin_dir) as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: Server) -> AsyncIterator[str]:
    """A fresh, empty database on the session's server."""
    url = await create_database(postgres_server)
    yield url
    await drop_database(postgres_server, url)


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[GatedStore]:
    """A SQLite store whose commits wait at `gated.gate` (see tests/gated.py)."""
    store = GatedStore(tmp_path / "gated.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def chat(dialogue: Dialogue) -> Chat:
    """A citizen talking to the core through `dialogue`."""
    return Chat(dialogue)
