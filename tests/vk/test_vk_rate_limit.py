"""The VK client's pacing: at most `rate` calls a second, and a retry keeps its first attempt's place."""

from __future__ import annotations

import asyncio
import time

from adapters.vk.api import RateLimiter


async def test_calls_are_paced_and_an_older_call_goes_first():
    limiter = RateLimiter(20.0)  # one start every 50 ms
    started: list[tuple[str, float]] = []

    async def call(name: str, since: float | None = None) -> None:
        await limiter.wait(since)
        started.append((name, time.monotonic()))

    now = time.monotonic()
    first = asyncio.create_task(call("first"))
    await asyncio.sleep(0)  # the first takes the free slot at once
    newer = [asyncio.create_task(call(f"new{n}", now + 1 + n)) for n in range(3)]
    await asyncio.sleep(0)
    retry = asyncio.create_task(call("retry", now - 5))  # a retry of a call made before all of them
    await asyncio.gather(first, *newer, retry)
    assert [name for name, _ in started] == ["first", "retry", "new0", "new1", "new2"]
    gaps = [b - a for (_, a), (_, b) in zip(started, started[1:], strict=False)]
    assert min(gaps) >= 0.045  # paced: 20 a second


async def test_a_cancelled_wait_gives_its_turn_to_the_next():
    limiter = RateLimiter(20.0)
    await limiter.wait()
    gone = asyncio.create_task(limiter.wait())
    kept = asyncio.create_task(limiter.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.wait_for(kept, 1.0)
    assert gone.cancelled()
