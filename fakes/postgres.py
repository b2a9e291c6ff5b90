"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temp dir on 127.0.0.1.

Runs the server binaries as the `postgres` user when the tests run as root (PostgreSQL refuses to
run as root). Skips only when no server binary is installed.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fakes.ports import free_port


def server_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def throwaway_server(bin_dir: Path) -> Iterator[Server]:
    as_root = os.geteuid() == 0
    run_as: list[str] = []
    owner = pwd.getpwuid(os.geteuid()).pw_name
    tmp = Path(tempfile.mkdtemp(prefix="gosbot-pg-"))
    if as_root:
        owner = "postgres"
        entry = pwd.getpwnam(owner)
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
        run_as = ["runuser", "-u", owner, "--"]
    data, log = tmp / "data", tmp / "server.log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def run(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, env=env, capture_output=True, cwd=tmp)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", owner, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield Server("127.0.0.1", port, owner)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(
            f"{exc.cmd[len(run_as)]} failed: {exc.stderr.decode(errors='replace')}\n{server_log}"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_databases = itertools.count(1)


async def create_database(server: Server) -> str:
    """A fresh, empty database on the server; returns its URL."""
    name = f"gosbot_test_{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server.url(name)


async def drop_database(server: Server, url: str) -> None:
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        await admin.close()
