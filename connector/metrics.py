"""Prometheus metrics: process-wide counters the engine bumps, and gauges read from the Store.

Counters (vendor calls, retries, alerts, webhooks) live in one module-level registry because they
count events of the whole process; call the helpers below from anywhere in the engine. Gauges
(orders by state, last success per service, oldest pending order) describe durable state, so they
are not kept in memory at all: `read_store()` queries the Store when /metrics is scraped and
`MetricsExposition` renders that snapshot next to the counters.

Labels are merchants, services, vendors, states: small fixed sets. Never an order id, and never a
value a stranger controls (an unknown webhook merchant is counted under merchant "").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from connector.lifecycle import OrderState

if TYPE_CHECKING:  # at run time only the web layer hands a Store in; adapters may import this module
    from connector.store import Store

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files: the first things asked about a daemon

VENDOR_CALLS = Counter("connector_vendor_calls", "HTTP calls to vendors (UltraCart, warehouses), by response status "
                       "('error' when no response arrived)", ["vendor", "status"], registry=REGISTRY)
RETRIES = Counter("connector_retries", "Work rescheduled for a later attempt", ["merchant", "service"], registry=REGISTRY)
ALERTS_SENT = Counter("connector_alerts_sent", "Alert e-mails sent", ["category"], registry=REGISTRY)
WEBHOOKS = Counter("connector_webhooks", "Webhook deliveries received, by outcome", ["merchant", "outcome"], registry=REGISTRY)


def vendor_call(vendor: str, status: int | str | None) -> None:
    """One vendor HTTP call finished with `status` (None: timeout, reset, refused...)."""
    VENDOR_CALLS.labels(vendor, "error" if status is None else str(status)).inc()


def retry(merchant: str, service: str) -> None:
    """An order or task of `service` was rescheduled instead of finishing."""
    RETRIES.labels(merchant, service).inc()


def alert_sent(category: str) -> None:
    ALERTS_SENT.labels(category).inc()


def webhook(merchant: str, outcome: str) -> None:
    """One webhook delivery: accepted, unauthorized, not_configured, unknown_merchant, too_large, timeout,
    malformed, error (the store failed; the sender retries)."""
    WEBHOOKS.labels(merchant, outcome).inc()


# ------------------------------------------------------------------------------ store gauges
@dataclass
class StoreSnapshot:
    """What the Store said at scrape time; `ok` is False when it could not be read."""

    ok: bool = True
    orders: dict[tuple[str, str], int] = field(default_factory=dict)  # (merchant, state) -> count
    last_success: dict[tuple[str, str], float] = field(default_factory=dict)  # (merchant, service) -> unix s
    paused: dict[tuple[str, str], bool] = field(default_factory=dict)
    oldest_pending_age: dict[str, float] = field(default_factory=dict)  # merchant -> seconds
    outcome: dict[tuple[str, str], str] = field(default_factory=dict)  # (merchant, service) -> how the last pass ended
    alert_delivery_failing_since: float | None = None  # unix s; None while e-mails go through
    database_fault: bool = False


async def read_store(store: Store, merchants: Iterable[str]) -> StoreSnapshot:
    """Query the Store for the gauges. Raises what the database raises; the caller decides."""
    now = datetime.now(timezone.utc)
    merchants = list(merchants)
    counts = await store.orders.counts_by_state()
    # Configured merchants get every state, zeros included, so a series never vanishes mid-graph.
    orders = {(m, s.value): 0 for m in merchants for s in OrderState}
    orders.update(counts)
    snap = StoreSnapshot(orders=orders)
    for run in await store.runs.listing():
        if run.last_success_at is not None:
            snap.last_success[(run.merchant, run.service)] = run.last_success_at.timestamp()
        snap.paused[(run.merchant, run.service)] = run.paused(now)
        snap.outcome[(run.merchant, run.service)] = run.last_outcome
    for m in sorted(set(merchants) | {m for m, _ in counts}):
        oldest = await store.orders.oldest_pending(m)
        snap.oldest_pending_age[m] = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    from connector.store.tasks import ALERT_EMAIL, failing_since

    since, _ = await failing_since(store.tasks, *ALERT_EMAIL)
    snap.alert_delivery_failing_since = since.timestamp() if since else None
    return snap


class _StoreGauges(Collector):
    """Turns the snapshot taken for the current scrape into gauge families."""

    def __init__(self) -> None:
        self.snapshot = StoreSnapshot(ok=False)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        yield GaugeMetricFamily("connector_store_up", "1 when the database answered this scrape's queries", value=int(snap.ok))
        if not snap.ok:
            return
        g = GaugeMetricFamily("connector_orders", "Orders by merchant and state", labels=["merchant", "state"])
        for (m, s), n in sorted(snap.orders.items()):
            g.add_metric([m, s], n)
        yield g
        g = GaugeMetricFamily("connector_service_last_success_timestamp_seconds",
                              "Unix time of the last successful pass per merchant and service", labels=["merchant", "service"])
        for (m, s), t in sorted(snap.last_success.items()):
            g.add_metric([m, s], t)
        yield g
        g = GaugeMetricFamily("connector_service_paused", "1 while a service is paused by a configuration error",
                              labels=["merchant", "service"])
        for (m, s), p in sorted(snap.paused.items()):
            g.add_metric([m, s], int(p))
        yield g
        g = GaugeMetricFamily("connector_service_last_outcome", "1 for how the last pass of each service ended "
                              "(done, throttled, paused, failed, interrupted)", labels=["merchant", "service", "outcome"])
        for (m, s), o in sorted(snap.outcome.items()):
            if o:
                g.add_metric([m, s, o], 1)
        yield g
        yield GaugeMetricFamily("connector_alert_delivery_failing_since_timestamp_seconds",
                                "Unix time since which alert e-mails have been failing (0 while they go through)",
                                value=snap.alert_delivery_failing_since or 0)
        yield GaugeMetricFamily("connector_database_fault", "1 while the database refuses writes or its file was replaced",
                                value=int(snap.database_fault))
        g = GaugeMetricFamily("connector_oldest_pending_order_age_seconds",
                              "Age of the oldest order not yet at the warehouse (0 when none)", labels=["merchant"])
        for m, age in sorted(snap.oldest_pending_age.items()):
            g.add_metric([m], age)
        yield g


class _ProcessCounters(Collector):
    """Forwards the process-wide registry into an app's registry."""

    def collect(self):
        return REGISTRY.collect()


class MetricsExposition:
    """One app's /metrics: its own registry holding the process counters and the store gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gauges = _StoreGauges()
        self.registry.register(_ProcessCounters())
        self.registry.register(self._gauges)

    def render(self, snapshot: StoreSnapshot) -> bytes:
        # Set and render in one synchronous step: no await in between, so concurrent scrapes on
        # the event loop cannot see each other's snapshot.
        self._gauges.snapshot = snapshot
        return generate_latest(self.registry)
