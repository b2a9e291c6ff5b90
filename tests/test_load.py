"""The load and fault suite, short: `python -m bench.load` with a few dozen citizens, on SQLite (one
process, polling) and, when PostgreSQL's server binaries are installed, on PostgreSQL (three workers
behind the driver's proxy, one SIGKILLed mid-run and restarted), both at once. About a minute on
a quiet 2-core machine; starting four bot processes at once is most of it (on a machine loaded by
other work, 100 s of start-up alone was seen). Every check the
suite makes must hold: each message answered by one turn, no reply lost, no duplicate without a
cause, each ticket created once, each operator reply delivered exactly once.

getChatMember is faulted like every other call: a failed membership check is asked again, and an
operator whose check could not be made at all is told so (tests/telegram/test_telegram_staff_faults.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from fakes.postgres import server_bin_dir

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["--citizens", "30", "--messages", "8", "--ramp", "2", "--settle", "60"]


async def run_suite(args: list[str], results: Path) -> tuple[int, str, dict]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        *SHORT,
        *args,
        "--results",
        str(results),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 360)
    except TimeoutError:
        proc.send_signal(signal.SIGINT)  # the suite stops its bots and its PostgreSQL on the way out
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    found = sorted(results.glob("load-*.json"))  # noqa: ASYNC240 - after the run, nothing else waits
    return proc.returncode or 0, text, json.loads(found[0].read_text()) if found else {}


def assert_held(name: str, code: int, output: str, result: dict) -> None:
    tail = "\n".join(line for line in output.splitlines() if "WARNING" not in line)[-4000:]
    assert result, f"{name}: no results written:\n{tail}"
    assert sum(sum(kinds.values()) for kinds in result["faults_injected"].values()) > 0, "no fault was injected"
    assert result["messages_sent"] > 0
    assert result["failed_checks"] == [], f"{name}: {result['failed_checks']}\n{tail}"
    assert all(result["checks"].values())
    assert result["replies_lost"] == 0
    assert result["duplicates_not_allowed"] == 0
    assert result["operator_replies_lost"] == 0
    assert result["operator_replies_duplicated"] == 0
    assert result["tickets"] > 0, "no ticket was opened: the handoff path went untested"
    assert code == 0, f"{name}: exit {code}\n{tail}"


async def test_load_suite_short(tmp_path: Path):
    runs = {"sqlite": run_suite(["--store", "sqlite"], tmp_path / "sqlite")}
    if server_bin_dir() is not None:
        runs["postgres"] = run_suite(["--store", "postgres", "--workers", "3", "--kill"], tmp_path / "postgres")
    outcomes = dict(zip(runs, await asyncio.gather(*runs.values()), strict=True))
    for name, (code, output, result) in outcomes.items():
        assert_held(name, code, output, result)
    if "postgres" in outcomes:
        assert outcomes["postgres"][2]["killed"] == 1, "the worker was not killed mid-run"
    else:
        pytest.skip("SQLite mode held every check; PostgreSQL mode not run: no server binaries (initdb, pg_ctl)")
