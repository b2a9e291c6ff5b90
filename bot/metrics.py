"""What operations watch: Prometheus metrics and the health report, kept in one place.

The core and the adapters call tiny hooks (`metrics.message_in(platform)` …); the gauges that
describe stored state (open and overdue tickets, the outbox backlog) are read from the store when
someone scrapes, so every worker sharing one database reports the same figures. One `Metrics` per
process, owned by the composition root and handed to the Dialogue: no global registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.records import OPEN_STATUSES
from bot.storage.base import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST
STORE_TIMEOUT = 5.0  # a store that does not answer a COUNT in this long is not healthy


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("gosbot_messages_in", "Citizens' messages handled", ["platform"], registry=r)
        self.messages_out = Counter("gosbot_messages_out", "Replies produced for citizens", ["platform"], registry=r)
        self.decisions = Counter("gosbot_decisions", "Matcher decisions by outcome", ["outcome"], registry=r)
        self.handoffs = Counter(
            "gosbot_handoffs", "Tickets opened (conversations handed to people)", ["platform"], registry=r
        )
        self.duplicates = Counter(
            "gosbot_duplicate_updates", "Updates delivered again and dropped", ["platform"], registry=r
        )
        self.outbox_retries = Counter(
            "gosbot_outbox_retries", "Outbox deliveries put off to retry", ["platform"], registry=r
        )
        self.platform_errors = Counter(
            "gosbot_platform_errors", "Errors from platform APIs", ["platform", "code"], registry=r
        )
        self.reply_latency = Histogram(
            "gosbot_reply_latency_seconds",
            "From a citizen's message reaching the core to its replies being ready",
            ["platform"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.open_tickets = Gauge("gosbot_open_tickets", "Tickets open or taken", registry=r)
        self.overdue_tickets = Gauge("gosbot_overdue_tickets", "Open tickets past their answer time", registry=r)
        self.outbox_backlog = Gauge(
            "gosbot_outbox_backlog", "Outbox items waiting to be delivered", ["platform"], registry=r
        )
        self.platform_up = Gauge(
            "gosbot_platform_connected", "1 while a platform is connected", ["platform"], registry=r
        )
        self.knowledge_loaded = Gauge(
            "gosbot_knowledge_loaded_timestamp", "When the knowledge in use was loaded", registry=r
        )
        self.platforms: dict[str, bool] = {}

    # -- hooks at the call sites -----------------------------------------------------------------

    def message_in(self, platform: str) -> None:
        self.messages_in.labels(platform).inc()

    def turn_done(self, platform: str, replies: int, seconds: float) -> None:
        self.messages_out.labels(platform).inc(replies)
        self.reply_latency.labels(platform).observe(seconds)

    def decision(self, outcome: str) -> None:
        self.decisions.labels(outcome).inc()

    def handoff(self, platform: str) -> None:
        self.handoffs.labels(platform).inc()

    def duplicate(self, platform: str) -> None:
        self.duplicates.labels(platform).inc()

    def retry(self, platform: str) -> None:
        self.outbox_retries.labels(platform).inc()

    def platform_error(self, platform: str, code: object) -> None:
        self.platform_errors.labels(platform, str(code)).inc()

    def connected(self, platform: str, up: bool) -> None:
        self.platforms[platform] = up
        self.platform_up.labels(platform).set(1 if up else 0)

    # -- reading stored state --------------------------------------------------------------------

    async def refresh(self, store: Store, now: float, platforms: tuple[str, ...]) -> None:
        tickets = await store.list_tickets()
        self.open_tickets.set(sum(1 for t in tickets if t.status in OPEN_STATUSES))
        self.overdue_tickets.set(len(await store.list_tickets(overdue_at=now)))
        for platform in platforms:
            self.outbox_backlog.labels(platform).set(await store.pending_count(platform))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class HealthReport:
    healthy: bool
    checks: dict[str, Any] = field(default_factory=dict)


async def health(
    store: Store,
    metrics: Metrics,
    knowledge_loaded_at: float,
    knowledge_problems: list[str],
    clock: Callable[[], float] = time.time,
) -> HealthReport:
    """Healthy when the store answers and every configured platform is connected. The backlog and
    the knowledge are reported, not judged: a refused knowledge edit leaves the last good one serving."""
    checks: dict[str, Any] = {}
    healthy = True
    try:
        backlog = await asyncio.wait_for(store.pending_count(), STORE_TIMEOUT)
        checks["storage"] = "ok"
        checks["outbox_backlog"] = backlog
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
        healthy = False
        checks["storage"] = f"unreachable: {type(exc).__name__}"
    checks["platforms"] = {name: "connected" if up else "disconnected" for name, up in metrics.platforms.items()}
    if not all(metrics.platforms.values()):
        healthy = False
    checks["knowledge"] = {
        "loaded_at": knowledge_loaded_at,
        "age_s": round(clock() - knowledge_loaded_at, 1),
        "last_edit_refused": bool(knowledge_problems),
    }
    return HealthReport(healthy, checks)
