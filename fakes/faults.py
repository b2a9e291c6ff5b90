"""A seeded mix of the trouble real platforms cause, for the fakes to inject at a set rate.

Each faultable call draws once: with probability `rate` it gets one fault, picked evenly from the
platform's kinds:

- "429" (Telegram): Too Many Requests with `retry_after` seconds — a wait the platform imposes;
- "vk6" / "vk9" (VK): error 6 "too many requests per second", error 9 "flood control";
- "500": an HTTP 500, nothing done;
- "slow": the answer comes `slow` seconds late (the call is done);
- "drop": the connection is closed before the platform did anything;
- "delivered-drop": the platform did the call (a message reached its chat), then the connection
  was closed, so the bot never learns it. A resend of such a message is the only duplicate a
  citizen may see on Telegram (VK drops it by random_id); the fakes record each one.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

TELEGRAM_KINDS = ("429", "500", "slow", "drop", "delivered-drop")
VK_KINDS = ("vk6", "vk9", "500", "slow", "drop", "delivered-drop")


@dataclass
class FaultMix:
    rate: float = 0.0
    seed: int = 1
    retry_after: int = 1  # seconds a 429 asks for
    slow: tuple[float, float] = (0.2, 1.0)  # seconds a slow answer is late (uniform)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, kinds: tuple[str, ...]) -> str | None:
        """The fault for one call, or None (most calls)."""
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(kinds)
        self.counts[kind] += 1
        return kind

    def delay(self) -> float:
        return self._rng.uniform(*self.slow)
