"""Messages per second through the core with durable SQLite storage, next to the in-memory store.

    python -m bench.throughput [--chats 200] [--messages 10] [--runs 3] [--seed 7]

One Dialogue over the shipped knowledge; N chats each send M messages in order (a chat waits for
its reply before the next message, as a person does), and all chats run at once via
asyncio.gather. A chat's messages are a realistic mix: dev.tsv questions (in scope, out of scope,
typos, layouts), small talk, and button presses by payload taken from the bot's previous reply
(flow options, "did you mean" offers, leave/stay, back, home), plus a few chats that call an
operator and cancel. The choices depend only on the chat's own replies, so every run and both
stores process exactly the same messages.

Per store: `--runs` runs, each on a fresh store (SQLite: a new file in a temp dir, WAL, as the bot
opens it; the log shows its trips to the connection's thread and its COMMITs), interleaved
memory/SQLite; the run with the median throughput is reported. One untimed warm-up run first
fills the matcher's caches. Latency per message is measured from the
call of Dialogue.handle to its return, so under this load it includes waiting for the event loop
and for the store (Little's law: about chats / throughput once the store makes chats queue).
Then, for each store, `--sequential-chats` of the same chats run one after another: the unloaded
latency of one message, without queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    DEV_TSV,
    KNOWLEDGE,
    load_average,
    log,
    machine,
    machine_header,
    source_state,
    summary_ms,
    table,
    write_results,
)
from bot.dialogue import Dialogue, KnowledgeSource
from bot.evaluation import read_rows
from bot.knowledge import load_knowledge
from bot.matching import Matcher
from bot.messages import Incoming, Reply
from bot.storage import MemoryStore, SqliteStore
from bot.storage.base import Store

SMALLTALK = (
    "здравствуйте",
    "Добрый день!",
    "привет",
    "спасибо",
    "спасибо большое, помогло",
    "ок",
    "ты бот?",
    "до свидания",
)
PRESS_BUTTON = 0.45  # chance to press one of the last reply's buttons instead of typing
SMALL_TALK = 0.10
OPERATOR_CHATS = 0.05  # chats that ask for a person midway and then cancel
NO_PRESS = ("op", "n:", "cancel", "r:")  # handoffs are scripted separately


@dataclass
class Kind:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


@dataclass
class RunResult:
    store: str
    wall_s: float
    messages: int
    replies: int
    latencies_ns: list[int]
    kinds: dict[str, int]
    trips: int = 0  # SQLite: trips to the connection's thread
    commits: int = 0  # SQLite: turn transactions committed (turns of one trip share one)

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s


async def chat(
    dialogue: Dialogue, index: int, messages: int, seed: int, texts: list[str], lat: list[int], kinds: Kind
) -> int:
    rng = random.Random(seed * 100_003 + index)
    chat_id = f"bench{index:05d}"
    operator_at = messages // 2 if rng.random() < OPERATOR_CHATS else -1
    last: list[Reply] = []
    replies = 0
    for n in range(messages):
        text, payload, kind = "", None, "question"
        buttons = [b.payload for r in last for b in r.buttons if not b.payload.startswith(NO_PRESS)]
        if n == operator_at:
            payload, kind = "op", "operator"
        elif n == operator_at + 1 and operator_at >= 0:
            payload, kind = "cancel", "cancel"
        elif n == 0 and rng.random() < 0.4:
            text, kind = rng.choice(SMALLTALK[:3]), "smalltalk"
        elif buttons and rng.random() < PRESS_BUTTON:
            payload, kind = rng.choice(buttons), "button"
        elif rng.random() < SMALL_TALK:
            text, kind = rng.choice(SMALLTALK), "smalltalk"
        else:
            text = rng.choice(texts)
        kinds.add(kind)
        incoming = Incoming(
            platform="bench",
            chat_id=chat_id,
            user_id=chat_id,
            text=text,
            payload=payload,
            update_id=f"{chat_id}-{n}",
        )
        start = time.perf_counter_ns()
        last = await dialogue.handle(incoming)
        lat.append(time.perf_counter_ns() - start)
        replies += len(last)
    return replies


async def one_run(
    name: str,
    source: KnowledgeSource,
    args: argparse.Namespace,
    texts: list[str],
    tmp: Path,
    run: int,
    *,
    sequential: int = 0,
) -> RunResult:
    """All chats at once; or, with `sequential`, that many chats one after another (no queueing)."""
    store: Store = SqliteStore(tmp / f"run{run}.sqlite3") if name == "sqlite" else MemoryStore()
    await store.open()
    before = store.trips if isinstance(store, SqliteStore) else (0, 0)
    try:
        dialogue = Dialogue(source, store)
        lat: list[int] = []
        kinds = Kind()
        gc.collect()
        start = time.perf_counter()
        if sequential:
            replies = [await chat(dialogue, i, args.messages, args.seed, texts, lat, kinds) for i in range(sequential)]
        else:
            replies = await asyncio.gather(
                *(chat(dialogue, i, args.messages, args.seed, texts, lat, kinds) for i in range(args.chats))
            )
        wall = time.perf_counter() - start
        after = store.trips if isinstance(store, SqliteStore) else (0, 0)
    finally:
        await store.close()
    trips, commits = (a - b for a, b in zip(after, before, strict=True))
    return RunResult(name, wall, len(lat), sum(replies), lat, kinds.counts, trips, commits)


def median_run(runs: list[RunResult]) -> RunResult:
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[len(ordered) // 2]


def describe(r: RunResult) -> dict[str, Any]:
    return {
        "wall_s": round(r.wall_s, 3),
        "trips": r.trips,
        "commits": r.commits,
        "messages": r.messages,
        "replies": r.replies,
        "msgs_per_s": round(r.rate, 1),
        "latency": summary_ms(r.latencies_ns),
    }


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    load_at_start = load_average()
    print(machine_header(info))
    knowledge = load_knowledge(KNOWLEDGE)
    matcher = Matcher(knowledge)
    source = KnowledgeSource.fixed(knowledge, matcher)
    texts = list(dict.fromkeys(r.text for r in read_rows(DEV_TSV)))
    print(
        f"knowledge {knowledge.version}: {len(knowledge.faq)} FAQ entries, {len(knowledge.flows)} flows; "
        f"{args.chats} chats x {args.messages} messages, {args.runs} runs per store, seed {args.seed}"
    )
    started = time.perf_counter()
    results: dict[str, list[RunResult]] = {"memory": [], "sqlite": []}
    with tempfile.TemporaryDirectory(prefix="gosbot-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        warm = await one_run("memory", source, args, texts, tmp, 0)
        log(f"warm-up: {warm.rate:.0f} msgs/s (not counted)")
        for run in range(1, args.runs + 1):
            for name in ("memory", "sqlite"):
                r = await one_run(name, source, args, texts, tmp, run)
                results[name].append(r)
                extra = f", {r.trips} trips, {r.commits} commits" if name == "sqlite" else ""
                log(f"run {run} {name}: {r.wall_s:.2f} s, {r.rate:.0f} msgs/s{extra}")
        alone = {
            name: await one_run(name, source, args, texts, tmp, 99, sequential=args.sequential_chats)
            for name in ("memory", "sqlite")
        }
    total = time.perf_counter() - started

    chosen = {name: median_run(runs) for name, runs in results.items()}
    headers = ["store", "messages", "wall s", "msgs/s", "lat median ms", "lat p99 ms", "runs msgs/s"]
    body = []
    for name in ("memory", "sqlite"):
        r, d = chosen[name], describe(chosen[name])
        body.append(
            [
                name,
                str(r.messages),
                f"{r.wall_s:.2f}",
                f"{r.rate:.0f}",
                f"{d['latency']['median_ms']:.2f}",
                f"{d['latency']['p99_ms']:.2f}",
                " / ".join(f"{x.rate:.0f}" for x in results[name]),
            ]
        )
    print()
    print("Throughput through Dialogue.handle (median run of each store; latency under full concurrency)")
    print(table(headers, body))
    print()
    print(f"Unloaded latency: {args.sequential_chats} of the same chats one after another (no queueing), ms")
    headers = ["store", "messages", "msgs/s", "lat median ms", "lat p99 ms"]
    body = []
    for name in ("memory", "sqlite"):
        r, d = alone[name], describe(alone[name])
        lat_ms = d["latency"]
        body.append([name, str(r.messages), f"{r.rate:.0f}", f"{lat_ms['median_ms']:.2f}", f"{lat_ms['p99_ms']:.2f}"])
    print(table(headers, body))
    ratio = chosen["sqlite"].rate / chosen["memory"].rate
    print(f"\nSQLite keeps {ratio:.0%} of the in-memory throughput")
    kinds = chosen["memory"].kinds
    print("message mix: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(
        f"total {total:.0f} s; load average {load_at_start} at start, {load_average()} at end "
        f"(on {info['cpu_count']} CPUs)"
    )

    payload = {
        "benchmark": "throughput",
        "machine": info,
        "source": source_state(),
        "knowledge_version": knowledge.version,
        "chats": args.chats,
        "messages_per_chat": args.messages,
        "runs": args.runs,
        "seed": args.seed,
        "percentile_method": "nearest rank",
        "message_mix": kinds,
        "median_run": {name: describe(r) for name, r in chosen.items()},
        "sequential": {"chats": args.sequential_chats, **{name: describe(r) for name, r in alone.items()}},
        "all_runs": {name: [describe(r) for r in runs] for name, runs in results.items()},
        "sqlite_over_memory": round(ratio, 3),
        "total_s": round(total, 1),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
    }
    path = write_results("throughput", payload)
    print(f"results: {path.relative_to(path.parents[2])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sequential-chats", type=int, default=50, help="chats for the unloaded-latency run")
    args = parser.parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
