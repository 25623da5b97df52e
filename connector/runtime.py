"""The running connector: the store, one context per merchant (its UltraCart client and its
warehouse adapter), the pass runner, the clock, the redactor and the rate limiters.

`build_runtime()` is the one way to assemble it: `connector run`, `run --once`, `check --online`,
`demo` and `bench` all use it, so what they test is what runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import structlog

from adapters.base import AdapterContext
from adapters.http import Limiters
from adapters.ultracart import UltraCartClient, parse_order
from connector.calls import EventSink
from connector.clock import SYSTEM, Clock
from connector.config import SERVICES, Config, MerchantConfig
from connector.health import Health, database_fault
from connector.pipeline.context import ServiceContext
from connector.pipeline.services import SERVICES as SERVICE_TABLE
from connector.redact import DEFAULT as PROCESS_REDACTOR
from connector.redact import Redactor
from connector.runner import PassReport, PassRunner
from connector.store import Store, WorkerRecord
from connector.store.engine import SqliteLock, sqlite_path

log = structlog.get_logger("connector")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Reloaded:
    """What applying a new config changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{what} {', '.join(ids)}" for what, ids in (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if ids]
        return "; ".join(parts) or "no merchant changed"


class Runtime:
    """The connector, assembled from a config (see `build_runtime`)."""

    def __init__(self, config: Config, store: Store, *, clock: Clock = SYSTEM, worker_id: str | None = None,
                 transports: dict[str, httpx.AsyncBaseTransport] | None = None, redactor: Redactor | None = None):
        self.config = config
        self.store = store
        self.clock = clock
        self.worker_id = worker_id or default_worker_id()
        self.transports = transports or {}
        self.redactor = redactor or Redactor()
        self.limiters = Limiters()  # one per vendor credential, shared by the merchants using it
        self.health = Health()
        self.stopping = asyncio.Event()
        self.runner = PassRunner(store, clock, self.health, worker_id=self.worker_id, lease_seconds=config.daemon.lease_seconds)
        self.contexts: dict[str, ServiceContext] = {}
        self.sinks: dict[str, EventSink] = {}
        self._retired: list[ServiceContext] = []
        self._lock: SqliteLock | None = None
        self._heartbeat: asyncio.Task | None = None
        self.running: dict[tuple[str, str], int] = {}
        self._use_secrets(config)
        for m in config.merchants:
            if m.enabled:
                self.contexts[m.id] = self._context(m)

    def context_for(self, merchant_id: str) -> ServiceContext:
        """The context of a configured merchant, enabled or not (a disabled one is being onboarded:
        its context is built for the reads and closed with the runtime, never scheduled)."""
        if merchant_id not in self.contexts:
            m = next(m for m in self.config.merchants if m.id == merchant_id)
            ctx = self._context(m)
            self._retired.append(ctx)
            return ctx
        return self.contexts[merchant_id]

    def owned_dcs(self) -> dict[str, str]:
        """merchant id -> "ULTRACART-MERCHANT/DC": what this process downloads from."""
        return {m.id: f"{m.ultracart.merchant_id.upper()}/{m.ultracart.distribution_center.upper()}" for m in self.config.merchants if m.enabled}

    def _use_secrets(self, config: Config) -> None:
        secrets = config.secrets()
        self.redactor.add(*secrets)
        PROCESS_REDACTOR.add(*secrets)  # the log processors are process-wide

    def _context(self, m: MerchantConfig) -> ServiceContext:
        sink = self.sinks[m.id] = EventSink(self.store, m.id, self.clock)
        uc = m.ultracart
        cart = UltraCartClient(uc.base_url, uc.api_key, uc.distribution_center, on_call=sink, redactor=self.redactor,
                               transport=self.transports.get("ultracart"), rate_per_minute=uc.rate_per_minute, limiters=self.limiters)
        warehouse = ledger = None
        if m.has_warehouse:
            actx = AdapterContext(merchant=m.id, on_call=sink, redactor=self.redactor, transport=self.transports.get("warehouse"),
                                  limiters=self.limiters)
            warehouse = m.adapter_class(m.warehouse_settings, actx)
        if m.ledger_class is not None:
            lctx = AdapterContext(merchant=m.id, on_call=sink, redactor=self.redactor, transport=self.transports.get("ledger"),
                                  limiters=self.limiters)
            ledger = m.ledger_class(m.ledger_adapter_settings, lctx)
        return ServiceContext(merchant=m, store=self.store, cart=cart, warehouse=warehouse, ledger=ledger, parse_order=parse_order,
                              worker_id=self.worker_id, concurrency=self.config.daemon.delivery_concurrency,
                              lease_seconds=self.config.daemon.lease_seconds, clock=self.clock, redactor=self.redactor,
                              stopping=self.stopping)

    # ------------------------------------------------------------------ running passes
    async def run_service(self, merchant: str, service: str, *, honour_pause: bool = True) -> PassReport:
        """One pass of one service; never raises for vendor or database trouble (it is reported)."""
        ctx = self.contexts[merchant]
        key = (merchant, service)
        self.running[key] = self.running.get(key, 0) + 1
        try:
            return await self.runner.run(ctx, SERVICE_TABLE[service], self.sinks[merchant], honour_pause=honour_pause)
        finally:
            self.running[key] -= 1

    async def run_once(self, merchant: str | None = None, service: str | None = None) -> list[PassReport]:
        """Every (or the chosen) service of every (or the chosen) merchant, once, in flow order."""
        merchants = [merchant] if merchant else list(self.contexts)
        services = [service] if service else list(SERVICES)
        reports: list[PassReport] = []
        for s in services:
            if self.stopping.is_set():
                break
            reports += await asyncio.gather(*(self.run_service(m, s, honour_pause=False) for m in merchants))
        if not self.stopping.is_set():
            await self.housekeeping()
            await self.alerts_pass(force=True)
        return reports

    async def housekeeping(self) -> int:
        """Drop event-log rows older than `event_log_days`, close retired adapters; returns rows dropped."""
        await self._close_retired()
        try:
            return await self.store.events.prune(self.clock.now() - timedelta(days=self.config.daemon.event_log_days))
        except Exception as exc:  # noqa: BLE001 - a database fault is reported by the health checks
            log.error("housekeeping failed", error=database_fault(exc) or f"{type(exc).__name__}: {exc}")
            return 0

    async def alerts_pass(self, *, force: bool = False) -> dict[str, int]:
        """Look for stuck orders, then queue and send due alert digests. Never raises."""
        from connector.alerts import check_stuck, send_digests

        try:
            stuck = await check_stuck(self.store, self.config, now=self.clock.now())
            sent = await send_digests(self.store, self.config, now=self.clock.now(), worker_id=self.worker_id, force=force,
                                      redactor=self.redactor)
            return {**stuck, **sent}
        except Exception as exc:  # noqa: BLE001 - alerting trouble must not stop the flow
            fault = database_fault(exc)
            if fault:
                log.error("alerts pass failed: database fault", error=fault)
            else:
                log.exception("alerts pass failed", error=str(exc))
            return {"error": 1}

    # ------------------------------------------------------------------ config reload
    async def apply_config(self, new: Config) -> Reloaded:
        """Use a new (already validated) config without losing work in hand: new merchants start,
        removed ones stop taking passes, changed ones get fresh adapters; passes running with the
        old ones finish with them, and those are closed once idle."""
        old = {m.id: m for m in self.config.merchants if m.enabled}
        fresh = {m.id: m for m in new.merchants if m.enabled}
        result = Reloaded()
        self._use_secrets(new)
        self.config = new
        for mid in old.keys() - fresh.keys():
            self._retired.append(self.contexts.pop(mid))
            result.removed.append(mid)
        for mid, m in fresh.items():
            if mid not in old:
                self.contexts[mid] = self._context(m)
                result.added.append(mid)
            elif m.model_dump() != old[mid].model_dump() or m._file_aliases != old[mid]._file_aliases:
                self._retired.append(self.contexts[mid])
                self.contexts[mid] = self._context(m)
                result.changed.append(mid)
        await self._close_retired()
        return result

    async def _close_retired(self) -> None:
        busy = {m for (m, _), n in self.running.items() if n > 0}
        keep = []
        for ctx in self._retired:
            if ctx.id in busy:
                keep.append(ctx)
                continue
            await _close_context(ctx)
        self._retired = keep

    # ------------------------------------------------------------------ lifetime
    async def start(self, *, config_path: str = "", config_mtime: Any = None, listen: str = "") -> None:
        """Register this process (status shows which config and database it runs with) and start
        the lease heartbeat."""
        from connector import __version__

        now = self.clock.now()
        await self.store.workers.register(WorkerRecord(self.worker_id, now, now, config_path=config_path, config_mtime=config_mtime,
                                                       config_loaded_at=now, database=self.store.url, listen=listen, version=__version__,
                                                       merchants=json.dumps(self.owned_dcs(), sort_keys=True)))
        self._heartbeat = asyncio.create_task(self._beat(), name="lease heartbeat")
        await self.learn_stored_secrets()

    async def learn_stored_secrets(self) -> None:
        """Secrets the connector made and keeps in its database (the warehouse webhooks' path
        tokens and signing secrets, the control token) are masked like the config's own."""
        from connector.tokens import stored_secrets

        made = await stored_secrets(self.store, list(self.contexts))
        self.redactor.add(*made)
        PROCESS_REDACTOR.add(*made)

    async def _beat(self) -> None:
        """Renew this worker's leases every third of their length while the process lives."""
        seconds = self.config.daemon.lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                await self.store.renew_leases(self.worker_id, seconds)
                await self.store.workers.seen(self.worker_id)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; leases outlast two misses
                log.warning("could not renew leases", error=database_fault(exc) or str(exc))

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.close_adapters()
        for sink in self.sinks.values():
            await sink.settle()
        try:
            await self.store.orders.release_claims(self.worker_id)
            await self.store.workers.seen(self.worker_id, stopped=True)
        except Exception as exc:  # noqa: BLE001 - claims left behind are recovered on the next start
            log.error("could not release claims at stop", error=database_fault(exc) or str(exc))
        await self.store.close()
        if self._lock is not None:
            self._lock.release()


    async def close_adapters(self) -> None:
        """Close every merchant's vendor clients, leaving the store open (a command that borrowed
        the runtime for a few calls on its own store)."""
        for ctx in list(self.contexts.values()) + self._retired:
            await _close_context(ctx)


async def _close_context(ctx: ServiceContext) -> None:
    for adapter in (ctx.cart, ctx.warehouse, ctx.ledger):
        if adapter is not None:
            await adapter.aclose()


async def build_runtime(config: Config, *, store: Store | None = None, clock: Clock = SYSTEM, worker_id: str | None = None,
                        transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> Runtime:
    """Open the store (migrating it) unless one is given and, on SQLite, take the one-daemon lock
    and recover the claims a killed process left behind."""
    lock = None
    if store is None:
        url = config.daemon.database_url
        path = sqlite_path(url)
        if path is not None:
            lock = SqliteLock(path)
            lock.acquire()
        try:
            store = await Store.open(url, clock=clock)
        except BaseException:
            if lock:
                lock.release()
            raise
    rt = Runtime(config, store, clock=clock, worker_id=worker_id, transports=transports)
    rt._lock = lock
    if lock is not None:
        orders_back, tasks_back = await store.recover_all()
        if orders_back or tasks_back:
            log.warning("recovered work left by a stopped process", orders_in_doubt=orders_back, tasks_due=tasks_back)
    return rt
