"""The running connector: the store, one context per merchant, and `run_service` that runs one
pass of one service with its bookkeeping (last run, pause on configuration errors, event log).

The CLI (`run --once`, `demo`), the scheduler and the web listener all drive this one object.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import structlog

from adapters.base import AdapterContext
from adapters.http import CallRecord
from adapters.ultracart import UltraCartClient, parse_order
from connector import metrics
from connector.alerts import check_stuck, raise_alert, send_digests
from connector.breaker import Breaker
from connector.config import SERVICES, Config, MerchantConfig
from connector.pipeline.context import ServiceContext, ServicePaused, ServiceThrottled
from connector.pipeline.inventory import upload_inventory
from connector.pipeline.orders import deliver_orders, download_orders
from connector.pipeline.shipments import upload_shipments
from connector.errors import VendorError
from connector.redact import DEFAULT as REDACT
from connector.store import Store, utcnow
from connector.store.engine import SqliteLock, sqlite_path

ServiceFn = Callable[[ServiceContext], Awaitable[dict[str, Any]]]
SERVICE_FUNCTIONS: dict[str, ServiceFn] = {
    "order_download": download_orders,
    "order_delivery": deliver_orders,
    "shipment_upload": upload_shipments,
    "inventory_upload": upload_inventory,
}
PAUSE_MINUTES = 5


@dataclass
class ServiceResult:
    """What one pass did: `ok`, its counters, and the error in words when it did not finish."""

    merchant: str
    service: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    skipped: str = ""
    seconds: float = 0.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EventSink:
    """Buffers redacted vendor-call records and writes them to the event log in batches."""

    def __init__(self, store: Store, merchant: str):
        self.store, self.merchant = store, merchant
        self.buffer: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}

    def __call__(self, rec: CallRecord) -> None:
        key = f"{rec.vendor} {rec.method}"
        self.calls[key] = self.calls.get(key, 0) + 1
        metrics.vendor_call(rec.vendor, rec.status)
        self.buffer.append(dict(
            at=utcnow(), merchant=self.merchant, kind="vendor_call", vendor=rec.vendor, order_id=rec.extra.get("order_id", ""),
            method=rec.method, url=rec.url, status=rec.status, request_id=rec.request_id, duration_ms=rec.duration_ms,
            request_body=_dump(rec.request_body), response_body=_dump(rec.response_body), error=rec.error,
        ))

    async def flush(self) -> None:
        rows, self.buffer = self.buffer, []
        await self.store.log_events(rows)


def _dump(body: Any) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text[:20_000]


class Runtime:
    """The connector, assembled from a config: open it, run services, close it."""

    def __init__(self, config: Config, store: Store, *, worker_id: str | None = None,
                 transports: dict[str, httpx.AsyncBaseTransport] | None = None):
        self.config = config
        self.store = store
        self.worker_id = worker_id or default_worker_id()
        self.transports = transports or {}
        self.contexts: dict[str, ServiceContext] = {}
        self._lock: SqliteLock | None = None
        self.breakers: dict[tuple[str, str], Breaker] = {}
        self._heartbeat: asyncio.Task | None = None
        self.sinks: dict[str, EventSink] = {}
        self.log = structlog.get_logger("connector")
        REDACT.add(*config.secrets())
        for m in config.merchants:
            if m.enabled:
                self.contexts[m.id] = self._context(m)

    @classmethod
    async def open(cls, config: Config, **kw: Any) -> Runtime:
        """Open the store (migrating it) and, on SQLite, take the one-daemon lock and recover the
        claims a killed process left behind."""
        url = config.daemon.database_url
        lock = None
        path = sqlite_path(url)
        if path is not None:
            lock = SqliteLock(path)
            lock.acquire()
        try:
            store = await Store.open(url)
        except BaseException:
            if lock:
                lock.release()
            raise
        rt = cls(config, store, **kw)
        rt._lock = lock
        rt._heartbeat = asyncio.create_task(rt._beat(), name="lease heartbeat")
        if lock is not None:
            orders_back, tasks_back = await store.recover_all_leases()
            if orders_back or tasks_back:
                rt.log.warning("recovered work left by a stopped process", orders_in_doubt=orders_back, tasks_due=tasks_back)
        return rt

    def _context(self, m: MerchantConfig) -> ServiceContext:
        sink = self.sinks[m.id] = EventSink(self.store, m.id)
        uc = m.ultracart
        cart = UltraCartClient(uc.base_url, uc.api_key, uc.distribution_center, on_call=sink, redactor=REDACT,
                               transport=self.transports.get("ultracart"), rate_per_minute=uc.rate_per_minute)
        actx = AdapterContext(merchant=m.id, on_call=sink, redactor=REDACT, transport=self.transports.get("warehouse"))
        warehouse = m.adapter_class(m.warehouse_settings, actx)
        return ServiceContext(merchant=m, store=self.store, cart=cart, warehouse=warehouse, parse_order=parse_order,
                              worker_id=self.worker_id, concurrency=self.config.daemon.delivery_concurrency,
                              lease_seconds=self.config.daemon.lease_seconds)

    async def _beat(self) -> None:
        """Renew this worker's leases every third of their length while the process lives."""
        interval = self.config.daemon.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew_leases(self.worker_id, self.config.daemon.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; leases outlast two misses
                self.log.warning("could not renew leases", error=str(exc))

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for ctx in self.contexts.values():
            await ctx.cart.aclose()
            await ctx.warehouse.aclose()
        await self.store.release_own_leases(self.worker_id)
        await self.store.close()
        if self._lock is not None:
            self._lock.release()

    async def run_service(self, merchant: str, service: str, *, honour_pause: bool = True) -> ServiceResult:
        """One pass of one service; never raises for vendor trouble (it is recorded instead)."""
        ctx = self.contexts[merchant]
        log = self.log.bind(merchant=merchant, service=service)
        breaker = self.breakers.setdefault((merchant, service), Breaker())
        if honour_pause and not breaker.allows(utcnow()):
            return ServiceResult(merchant, service, ok=False, skipped=f"circuit open until {breaker.open_until:%H:%M:%S}Z after {breaker.failures} failed passes")
        if honour_pause:
            run = next((r for r in await self.store.service_runs(merchant) if r.service == service), None)
            if run is not None and run.paused_until is not None and run.paused_until > utcnow():
                return ServiceResult(merchant, service, ok=False, skipped=f"paused until {run.paused_until:%H:%M:%S}Z: {run.pause_reason}")
        if not await self.store.lease_service(merchant, service, self.worker_id, self.config.daemon.lease_seconds):
            return ServiceResult(merchant, service, ok=True, skipped="running on another replica")
        started = time.perf_counter()
        await self.store.service_started(merchant, service)
        result = ServiceResult(merchant, service, ok=True)
        try:
            result.summary = await SERVICE_FUNCTIONS[service](ctx)
        except ServicePaused as exc:
            until = exc.until or utcnow() + timedelta(minutes=PAUSE_MINUTES)
            await self.store.pause_service(merchant, service, until, exc.reason)
            await raise_alert(self.store, merchant, "configuration", service, f"{service} paused until {until:%Y-%m-%d %H:%M}Z: {exc.reason}")
            log.error("service paused: configuration problem", reason=exc.reason, until=until.isoformat())
            result.ok, result.error = False, f"paused: {exc.reason}"
        except ServiceThrottled as exc:
            log.warning("vendor rate limit reached; the next pass resumes", reason=exc.reason, retry_after=exc.retry_after)
            result.error = f"throttled: {exc.reason}"
        except asyncio.CancelledError:
            raise
        except VendorError as exc:
            result.ok, result.error = False, str(exc)
            until = breaker.failure(utcnow())
            log.error("service pass failed", error=str(exc), consecutive_failures=breaker.failures,
                      circuit_open_until=until.isoformat() if until else None)
        except Exception as exc:  # noqa: BLE001 - one merchant's failure must not stop the others
            log.exception("service pass failed", error=str(exc))
            result.ok, result.error = False, f"{type(exc).__name__}: {exc}"
        else:
            breaker.success()
            await self.store.pause_service(merchant, service, None, "")
            await self.store.resolve_alerts(merchant, "configuration", service)
            if service == "inventory_upload":
                await self.store.resolve_alerts(merchant, "inventory_failing", service)
        finally:
            result.seconds = round(time.perf_counter() - started, 3)
            await self.sinks[merchant].flush()
            await self.store.service_finished(merchant, service, ok=result.ok, summary=result.summary, error=result.error)
            await self.store.release_service(merchant, service, self.worker_id)
        if not result.ok and service == "inventory_upload" and not result.error.startswith("paused"):
            await raise_alert(self.store, merchant, "inventory_failing", service, f"inventory upload failed: {result.error}")
        if result.ok:
            log.info("service pass done", seconds=result.seconds, **{k: v for k, v in result.summary.items() if v})
        return result

    async def housekeeping(self) -> int:
        """Drop event-log rows older than `event_log_days`; returns how many went."""
        return await self.store.prune_event_log(utcnow() - timedelta(days=self.config.daemon.event_log_days))

    async def alerts_pass(self, *, force: bool = False) -> dict[str, int]:
        """Look for stuck orders, then queue and send due alert digests. Never raises."""
        try:
            stuck = await check_stuck(self.store, self.config, now=utcnow())
            sent = await send_digests(self.store, self.config, now=utcnow(), worker_id=self.worker_id, force=force)
            return {**stuck, **sent}
        except Exception as exc:  # noqa: BLE001 - alerting trouble must not stop the flow
            self.log.exception("alerts pass failed", error=str(exc))
            return {"error": 1}

    async def run_once(self, merchant: str | None = None, service: str | None = None) -> list[ServiceResult]:
        """Every (or the chosen) service of every (or the chosen) merchant, once, in flow order."""
        merchants = [merchant] if merchant else list(self.contexts)
        services = [service] if service else list(SERVICES)
        results = []
        for s in services:
            results += await asyncio.gather(*(self.run_service(m, s, honour_pause=False) for m in merchants))
        await self.housekeeping()
        await self.alerts_pass(force=True)
        return results
