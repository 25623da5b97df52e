"""The daemon's clock: one APScheduler job per merchant and service, and a clean stop.

Jobs are declared from the config on every start (MemoryJobStore): durable state lives in the
database, not in the scheduler. `coalesce=True` and `max_instances=1` mean a slow pass is never
run twice at once and missed runs collapse into one. On SIGTERM/SIGINT the daemon stops taking
work, lets passes in hand finish (or cancels them after a grace period, their claimed orders
becoming in-doubt and resolved by lookup), and exits within 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime, timedelta, timezone

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import SERVICES
from connector.runtime import Runtime

STOP_GRACE_S = 8.0
log = structlog.get_logger("connector.scheduler")


class Daemon:
    """Runs every merchant's services on their schedules until asked to stop."""

    def __init__(self, runtime: Runtime):
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # our listener reports what matters
        self.runtime = runtime
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.running: set[asyncio.Task] = set()
        self.stopping = asyncio.Event()

    @property
    def healthy(self) -> bool:
        return self.scheduler.running and not self.stopping.is_set()

    async def _job(self, merchant: str, service: str) -> None:
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            await self.runtime.run_service(merchant, service)
        except asyncio.CancelledError:
            # Cancelled at stop after the grace period: its claims are in doubt and looked up
            # on the next start, so there is nothing more to say than that.
            log.warning("pass cancelled at stop", job=f"{merchant}:{service}")
        finally:
            self.running.discard(task)

    def schedule(self) -> None:
        now = datetime.now(timezone.utc)
        for i, (merchant, ctx) in enumerate(self.runtime.contexts.items()):
            for j, service in enumerate(SERVICES):
                seconds = getattr(ctx.merchant.schedule, service)
                self.scheduler.add_job(
                    self._job, IntervalTrigger(seconds=seconds), args=[merchant, service], id=f"{merchant}:{service}",
                    name=f"{merchant} {service}", coalesce=True, max_instances=1, misfire_grace_time=max(30, int(seconds)),
                    # Start soon, staggered so that many merchants do not all hit the vendors at once.
                    next_run_time=now + timedelta(seconds=0.2 * j + 0.05 * (i % 200)),
                )
        self.scheduler.add_job(self.runtime.housekeeping, IntervalTrigger(hours=1), id="housekeeping", coalesce=True,
                               max_instances=1, misfire_grace_time=3600, next_run_time=now + timedelta(seconds=30))
        self.scheduler.add_job(self.runtime.alerts_pass, IntervalTrigger(seconds=60), id="alerts", coalesce=True,
                               max_instances=1, misfire_grace_time=120, next_run_time=now + timedelta(seconds=20))
        self.scheduler.add_listener(self._event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def _event(self, event) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            # A pass longer than its interval: the next run simply waits (coalesced), as intended.
            log.debug("previous pass still running; this run skipped", job=event.job_id)
            return
        kind = {EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}.get(event.code, "event")
        log.warning("scheduled job " + kind, job=event.job_id)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)

    def request_stop(self, why: str = "") -> None:
        if not self.stopping.is_set():
            log.info("stopping: no new work; finishing what is in hand", signal=why)
            self.stopping.set()

    async def run(self) -> None:
        self.schedule()
        self.scheduler.start()
        log.info("daemon started", merchants=len(self.runtime.contexts), worker=self.runtime.worker_id)
        await self.stopping.wait()
        self.scheduler.shutdown(wait=False)
        if self.running:
            done, pending = await asyncio.wait(set(self.running), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
                log.warning("cancelled passes still running at stop; their claims will be looked up on restart", count=len(pending))
