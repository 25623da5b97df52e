"""The pass runner: runs one pass of one merchant's service and decides, in one place, what its
ending means.

Services count what they do and raise the error taxonomy's errors; the runner turns that into a
`PassReport` (what the pass did, how it ended, why it stopped early, when it can resume) and
applies the consequences: a rate limit ends the pass until the vendor's reset (never a sleep in
a job); a configuration error pauses that merchant's service and alerts; transient trouble
counts toward the circuit breaker; a database fault is one clear line and turns `/readyz` to 503;
an interrupted pass is recorded as interrupted, never as a success.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from connector.breaker import Breaker
from connector.calls import EventSink
from connector.clock import Clock
from connector.errors import ErrorClass, VendorError
from connector.health import Health, database_fault
from connector.pipeline.context import ServiceContext
from connector.pipeline.services import Service
from connector.store import Store

PAUSE_MINUTES = 5
log = structlog.get_logger("connector")


class Outcome(StrEnum):
    """How a pass ended."""

    done = "done"  # it did all there was to do
    throttled = "throttled"  # a vendor's rate limit ended it early; the next pass resumes
    paused = "paused"  # a configuration error (credentials, DC): the service rests, an alert says why
    failed = "failed"  # vendor trouble or an error: counted by the circuit breaker
    interrupted = "interrupted"  # the daemon was stopping
    skipped = "skipped"  # not run: paused, circuit open, running elsewhere, database down
    disabled = "disabled"  # not run for this merchant (e.g. the warehouse has no inventory)


NOT_FAILED = (Outcome.done, Outcome.throttled, Outcome.skipped, Outcome.disabled)


@dataclass
class PassReport:
    """What one pass did and how it ended, in words that are true."""

    merchant: str
    service: str
    outcome: Outcome
    did: Counter = field(default_factory=Counter)  # what it did (missing counts read as 0)
    stopped_because: str = ""
    resumes_at: datetime | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in NOT_FAILED

    @property
    def counts(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.did.items() if v) or "nothing to do"

    def line(self) -> str:
        text = f"{self.outcome}: {self.counts}"
        if self.stopped_because:
            text += f"; stopped early: {self.stopped_because}"
        if self.resumes_at is not None:
            text += f" (resumes at {self.resumes_at:%H:%M:%S}Z)"
        return text


class PassRunner:
    """Runs passes with their bookkeeping; one per process (it holds the circuit breakers)."""

    def __init__(self, store: Store, clock: Clock, health: Health, *, worker_id: str, lease_seconds: float):
        self.store, self.clock, self.health = store, clock, health
        self.worker_id, self.lease_seconds = worker_id, lease_seconds
        self.breakers: dict[tuple[str, str], Breaker] = {}

    async def run(self, ctx: ServiceContext, service: Service, sink: EventSink, *, honour_pause: bool = True) -> PassReport:
        merchant, name = ctx.id, service.name
        now = self.clock.now()
        disabled = service.disabled(ctx)
        if disabled:
            await self._quietly(self.store.runs.note(merchant, name, disabled))
            return PassReport(merchant, name, Outcome.disabled, stopped_because=disabled)
        skipped = await self._skip_reason(ctx, name, honour_pause, now)
        if skipped:
            return PassReport(merchant, name, Outcome.skipped, stopped_because=skipped)
        started = time.perf_counter()
        report = PassReport(merchant, name, Outcome.done)
        when = service.idle(ctx) if service.idle is not None else None
        try:
            async with self.store.atomic() as tx:
                # A service that can tell it has nothing to do (and no alert of its own to close)
                # is recorded as started and done in one UPDATE, when it may run (not paused, not
                # leased elsewhere): an idle pass is one statement.
                idle = when is not None and await tx.runs.idle_pass(merchant, name, self.worker_id, honour_pause=honour_pause,
                                                                    no_orders_in=when.no_orders_in,
                                                                    no_alerts_in=when.no_alerts_in, no_own_alerts_in=service.closes)
                # Otherwise one write: the pause read, the lease taken and the start recorded.
                blocked = None if idle else await tx.runs.begin_pass(merchant, name, self.worker_id, self.lease_seconds,
                                                                      honour_pause=honour_pause)
        except Exception as exc:  # noqa: BLE001 - a database fault is reported, not raised
            return self._database_down(merchant, name, exc)
        if blocked is not None:
            why = (f"paused until {blocked.paused_until:%H:%M:%S}Z: {blocked.pause_reason}" if honour_pause and blocked.paused(self.clock.now())
                   else "running on another replica")
            return PassReport(merchant, name, Outcome.skipped, stopped_because=why)
        if idle:
            report.seconds = round(time.perf_counter() - started, 3)
            await self._record(ctx, service, report, sink, finished=True)
            return report
        pctx = ctx.for_pass()
        try:
            await service.run(pctx)
            if pctx.stop_requested() and pctx.notes:
                report.outcome = Outcome.interrupted
        except asyncio.CancelledError:
            report.outcome, report.stopped_because = Outcome.interrupted, "the daemon stopped while the pass was running"
            raise
        except VendorError as exc:
            self._vendor_error(report, exc, service)
            report.error = ctx.redactor.text(report.error)  # a vendor's words can echo order text
        except Exception as exc:  # noqa: BLE001 - one merchant's failure must not stop the others
            fault = database_fault(exc)
            report.outcome = Outcome.failed
            if fault:
                report.error = f"database: {fault}"
                if self.health.database_failed(fault, self.clock.now()):
                    log.error("database fault: passes fail until it is fixed", merchant=merchant, service=name, error=fault)
            else:
                report.error = f"internal error: {type(exc).__name__}: {ctx.redactor.text(str(exc))[:300]}"
                log.exception("service pass failed with an internal error", merchant=merchant, service=name)
                self._breaker(merchant, name).failure(self.clock.now())
        finally:
            report.did = Counter({k: int(v) for k, v in pctx.stats.items()})
            report.seconds = round(time.perf_counter() - started, 3)
            if pctx.notes and not report.stopped_because:
                report.stopped_because = "; ".join(pctx.notes)
            await self._record(ctx, service, report, sink)
        return report

    async def _skip_reason(self, ctx: ServiceContext, name: str, honour_pause: bool, now: datetime) -> str:
        try:
            self.store.check_file()  # a stat: a deleted or swapped SQLite file must stop every pass
        except Exception as exc:  # noqa: BLE001
            if self.health.database_failed(database_fault(exc), now):
                log.error("database fault: passes are skipped until it is fixed", error=database_fault(exc))
        if self.health.database is not None:
            fault = await self._probe()
            if fault:
                return f"database unavailable: {fault}"
        if not honour_pause:
            return ""
        breaker = self._breaker(ctx.id, name)
        if not breaker.allows(now):
            return f"circuit open until {breaker.open_until:%H:%M:%S}Z after {breaker.failures} failed passes"
        return ""

    async def _probe(self) -> str:
        """After a database fault: try again with fresh connections (a file restored, permissions
        fixed); "" when it works again, else the fault in one line."""
        for attempt in range(2):
            try:
                await self.store.ping()
                await self.store.probe_write()
            except Exception as exc:  # noqa: BLE001
                self.health.database_failed(database_fault(exc) or type(exc).__name__, self.clock.now())
                await self.store.reset()
                continue
            ended = self.health.database_ok()
            if ended is not None:
                log.warning("database works again", was=ended.what, since=ended.since.isoformat())
            return ""
        return self.health.database.what if self.health.database else "unavailable"

    def _breaker(self, merchant: str, service: str) -> Breaker:
        return self.breakers.setdefault((merchant, service), Breaker())

    def _vendor_error(self, report: PassReport, exc: VendorError, service: Service) -> None:
        now = self.clock.now()
        if exc.error_class is ErrorClass.rate_limited:
            wait = exc.retry_after if exc.retry_after is not None else 60.0
            report.outcome, report.stopped_because = Outcome.throttled, f"rate limited by {exc.vendor or 'the vendor'}"
            report.resumes_at = now + timedelta(seconds=min(wait, 3600))
        elif exc.error_class is ErrorClass.configuration:
            report.outcome, report.error = Outcome.paused, str(exc)
            report.stopped_because = f"configuration problem: {exc}"
            report.resumes_at = now + timedelta(minutes=PAUSE_MINUTES)
        else:
            report.outcome, report.error = Outcome.failed, str(exc)
            until = self._breaker(report.merchant, report.service).failure(now)
            if until is not None:
                report.resumes_at = until
                report.stopped_because = f"circuit open after {self._breaker(report.merchant, report.service).failures} failed passes"

    async def _record(self, ctx: ServiceContext, service: Service, report: PassReport, sink: EventSink, *, finished: bool = False) -> None:
        """The pass's consequences; `finished` when its end is already written (an idle pass)."""
        merchant, name, store = ctx.id, service.name, self.store
        if finished:
            await self._quietly(sink.flush())
        else:
            await self._quietly(self._finish_alone(merchant, service, report, sink))
        if report.outcome is Outcome.paused:
            await self._quietly(store.runs.pause(merchant, name, report.resumes_at, report.error))
            await self._quietly(ctx.alert([(merchant, "configuration", name, f"{name} paused until {report.resumes_at:%Y-%m-%d %H:%M}Z: {report.error}")]))
        elif report.outcome is Outcome.done:
            self._breaker(merchant, name).success()
        if report.outcome is Outcome.failed and service.failure_alert:
            await self._quietly(ctx.alert([(merchant, service.failure_alert, name, f"{name} failed: {report.error}")]))
        level = log.info if report.outcome in (Outcome.done, Outcome.interrupted) else log.warning
        level("service pass " + str(report.outcome), merchant=merchant, service=name, seconds=report.seconds,
              stopped_because=report.stopped_because or None, resumes_at=report.resumes_at.isoformat() if report.resumes_at else None,
              error=report.error or None, **{k: v for k, v in report.did.items() if v})

    async def _finish(self, tx: Store, merchant: str, service: Service, report: PassReport) -> None:
        """In `tx`: how the pass ended, the lease let go, and on success any pause ended and the
        alerts a working pass disproves closed (its configuration and failure alerts). All or
        nothing: when the database fails here, the run still reads as started and its lease
        runs out by itself (other replicas wait up to `lease_seconds`)."""
        await tx.runs.finished(merchant, service.name, outcome=report.outcome, summary=report.did, error=report.error,
                               stopped_because=report.stopped_because, resumes_at=report.resumes_at, release=self.worker_id)
        if report.outcome is Outcome.done:
            await tx.alerts.resolve(merchant, service.closes, service.name, now=self.clock.now())

    async def _finish_alone(self, merchant: str, service: Service, report: PassReport, sink: EventSink) -> None:
        async with self.store.atomic() as tx:
            await sink.flush(tx)  # the pass's vendor-call records go in the same write
            await self._finish(tx, merchant, service, report)

    def _database_down(self, merchant: str, name: str, exc: BaseException) -> PassReport:
        fault = database_fault(exc)
        if not fault:
            raise exc
        if self.health.database_failed(fault, self.clock.now()):
            log.error("database fault: passes are skipped until it is fixed", error=fault)
        return PassReport(merchant, name, Outcome.skipped, stopped_because=f"database unavailable: {fault}")

    async def _quietly(self, work: Any) -> None:
        """Bookkeeping that must not turn a pass's report into a traceback when the database is down."""
        try:
            await work
        except Exception as exc:  # noqa: BLE001
            fault = database_fault(exc)
            if not fault:
                log.error("could not record the pass", error=f"{type(exc).__name__}: {exc}")
                return
            if self.health.database_failed(fault, self.clock.now()):
                log.error("database fault: passes are skipped until it is fixed", error=fault)
