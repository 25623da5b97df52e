"""The daemon: one APScheduler job per merchant and service, passes started at once when work
arrives (`kick`), a watchdog for a stalled scheduler, config reload, and a clean stop.

Jobs are declared from the config (MemoryJobStore): durable state lives in the database, not in
the scheduler. A merchant's service never runs twice at once in this process (one lock each; a
kick during a pass makes that pass run once more when it ends), nor across replicas (the service
lease in the database).

APScheduler 3 compares wall-clock times, so a backward step of the machine's clock freezes every
job until the clock catches up. The watchdog measures on the monotonic clock: a job that has not
run for two intervals (plus grace) marks the scheduler stalled (`/readyz` 503) and is
rescheduled to run now.

On SIGTERM/SIGINT the daemon stops claiming work, lets passes in hand finish their calls (within
`STOP_GRACE_S`), records interrupted passes as interrupted, and exits. SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import SERVICES
from connector.errors import ConfigError
from connector.health import Fault
from connector.runtime import Runtime

DISABLED_EVERY_S = 3600.0

STOP_GRACE_S = 8.0
WATCH_EVERY_S = 5.0
STALL_GRACE_S = 30.0
log = structlog.get_logger("connector.scheduler")


class Daemon:
    """Runs every merchant's services on their schedules until asked to stop."""

    def __init__(self, runtime: Runtime, *, load_config: Callable[[], object] | None = None, config_path: str = ""):
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # our listener reports what matters
        self.runtime = runtime
        self.load_config = load_config
        self.config_path = config_path
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.running: set[asyncio.Task] = set()
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.again: set[tuple[str, str]] = set()
        self.busy: set[str] = set()  # jobs whose run has fired and not ended
        self.last_run: dict[str, float] = {}  # job id -> monotonic time it last ran (or was scheduled)
        self.intervals: dict[str, float] = {}
        self._watchdog: asyncio.Task | None = None
        # Passes beyond this many wait for a slot: a thousand merchants starting at once would
        # otherwise queue on the database's connections until they time out and fail.
        self.slots = asyncio.Semaphore(runtime.config.daemon.max_concurrent_passes)

    @property
    def stopping(self) -> asyncio.Event:
        return self.runtime.stopping

    @property
    def healthy(self) -> bool:
        return self.scheduler.running and not self.stopping.is_set() and self.runtime.health.scheduler is None

    # ------------------------------------------------------------------ passes
    async def _job(self, merchant: str, service: str) -> None:
        job_id = f"{merchant}:{service}"
        self.last_run[job_id] = time.monotonic()
        self.busy.add(job_id)  # running or waiting for a slot: late, but not stalled
        try:
            await self.pass_now(merchant, service)
        finally:
            self.busy.discard(job_id)
            self.last_run[job_id] = time.monotonic()

    async def pass_now(self, merchant: str, service: str) -> None:
        """Run one pass unless one is running, in which case that one runs once more after."""
        if self.stopping.is_set() or merchant not in self.runtime.contexts:
            return
        key = (merchant, service)
        lock = self.locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            self.again.add(key)
            return
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            async with lock:
                while True:
                    self.again.discard(key)
                    async with self.slots:
                        if self.stopping.is_set() or merchant not in self.runtime.contexts:
                            break  # while it waited for a slot, the daemon was asked to stop or the merchant removed
                        self.pass_started(merchant, service)
                        await self.runtime.run_service(merchant, service)
                    if key not in self.again or self.stopping.is_set() or merchant not in self.runtime.contexts:
                        break
        except asyncio.CancelledError:
            log.warning("pass cancelled at stop; its claims are looked up on the next start", job=f"{merchant}:{service}")
        finally:
            self.running.discard(task)

    def pass_started(self, merchant: str, service: str) -> None:
        """A pass got its slot and starts now (the bench measures schedule lag here)."""

    def kick(self, merchant: str, service: str) -> None:
        """Start a pass now (work arrived: a webhook, a release): debounced by `pass_now`."""
        if not self.stopping.is_set():
            asyncio.get_running_loop().create_task(self.pass_now(merchant, service), name=f"kick {merchant}:{service}")

    # ------------------------------------------------------------------ jobs
    def schedule(self) -> None:
        self.scheduler.add_job(self.runtime.housekeeping, IntervalTrigger(hours=1), id="housekeeping", coalesce=True,
                               max_instances=1, misfire_grace_time=3600, next_run_time=_now() + timedelta(seconds=30))
        self.scheduler.add_job(self.runtime.alerts_pass, IntervalTrigger(seconds=60), id="alerts", coalesce=True,
                               max_instances=1, misfire_grace_time=120, next_run_time=_now() + timedelta(seconds=20))
        self.scheduler.add_listener(self._event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        for i, merchant in enumerate(self.runtime.contexts):
            self._schedule_merchant(merchant, i)

    def _schedule_merchant(self, merchant: str, index: int = 0) -> None:
        ctx = self.runtime.contexts[merchant]
        now = _now()
        from connector.pipeline.services import SERVICES as RUNNABLE

        for j, service in enumerate(SERVICES):
            seconds = getattr(ctx.merchant.schedule, service)
            if RUNNABLE[service].disabled(ctx):
                # Off for this merchant by its config (no ledger, a dry run...): its first pass
                # records why for `status`; after that an hourly note is plenty (a reload that
                # turns it on schedules the merchant again).
                seconds = max(seconds, DISABLED_EVERY_S)
            job_id = f"{merchant}:{service}"
            self.intervals[job_id] = seconds
            self.last_run[job_id] = time.monotonic()
            self.scheduler.add_job(
                self._job, IntervalTrigger(seconds=seconds), args=[merchant, service], id=job_id, replace_existing=True,
                name=f"{merchant} {service}", coalesce=True, max_instances=1, misfire_grace_time=max(30, int(seconds)),
                # Start soon, staggered so that many merchants do not all hit the vendors at once
                # (20 merchants a second, spread over at most a minute or the job's interval).
                next_run_time=now + timedelta(seconds=0.2 * j + (0.05 * index) % min(seconds, 60.0)),
            )

    def _unschedule_merchant(self, merchant: str) -> None:
        for service in SERVICES:
            job_id = f"{merchant}:{service}"
            self.intervals.pop(job_id, None)
            self.last_run.pop(job_id, None)
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)

    def _event(self, event) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            return  # a pass longer than its interval: the next run simply waits (coalesced), as intended
        kind = {EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}.get(event.code, "event")
        log.warning("scheduled job " + kind, job=event.job_id)

    async def watch(self) -> None:
        """Every few seconds (monotonic): find jobs overdue by two intervals, say so, run them now."""
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            mono = time.monotonic()
            late = [j for j, every in self.intervals.items()
                    if j not in self.busy and mono - self.last_run.get(j, mono) > 2 * every + STALL_GRACE_S]
            health = self.runtime.health
            if not late:
                if health.scheduler is not None:
                    log.warning("scheduler runs again", was=health.scheduler.what)
                    health.scheduler = None
                continue
            what = f"{len(late)} job(s) overdue (e.g. {late[0]}, {mono - self.last_run[late[0]]:.0f} s since its last run); the clock may have been set back"
            if health.scheduler is None:
                health.scheduler = Fault(what, self.runtime.clock.now())
                log.error("scheduler stalled; rescheduling its jobs to run now", detail=what)
            for job_id in late:
                job = self.scheduler.get_job(job_id)
                if job is not None:
                    job.modify(next_run_time=_now())
                self.last_run[job_id] = mono - self.intervals[job_id]  # give it one interval to run before saying it again

    # ------------------------------------------------------------------ reload
    async def reload(self) -> str:
        """Validate the config file again and apply it; on any error keep the old one (one line)."""
        if self.load_config is None:
            return "config error: this daemon was started without a config file to reload"
        try:
            new = self.load_config()
        except ConfigError as exc:
            log.error("config reload refused; the running config is kept", error=str(exc))
            return f"config error: {exc}"
        changes = await self.runtime.apply_config(new)  # type: ignore[arg-type]
        for merchant in changes.removed + changes.changed:
            self._unschedule_merchant(merchant)
        for merchant in changes.added + changes.changed:
            self._schedule_merchant(merchant)
        mtime = _mtime(self.config_path)
        try:
            await self.runtime.store.workers.seen(self.runtime.worker_id, config_loaded_at=self.runtime.clock.now(), config_mtime=mtime,
                                                  merchants=json.dumps(self.runtime.owned_dcs(), sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - the reload itself worked
            log.warning("could not record the reload", error=str(exc))
        log.info("config reloaded", file=self.config_path, changes=changes.line())
        # Held orders may be released by the new mappings: deliver now rather than in a minute.
        for merchant in self.runtime.contexts:
            self.kick(merchant, "order_delivery")
        return f"reloaded {self.config_path}: {changes.line()}"

    # ------------------------------------------------------------------ lifetime
    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload(), name="reload"))

    def request_stop(self, why: str = "") -> None:
        if not self.stopping.is_set():
            log.info("stopping: no new work is claimed; calls in hand are finished", signal=why)
            self.stopping.set()

    async def run(self, *, started: Callable[[], None] | None = None) -> None:
        self.schedule()
        self.scheduler.start()
        self._watchdog = asyncio.create_task(self.watch(), name="scheduler watchdog")
        if started is not None:
            started()
        await self.stopping.wait()
        self.scheduler.shutdown(wait=False)
        self._watchdog.cancel()
        if self.running:
            done, pending = await asyncio.wait(set(self.running), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
                log.warning("passes still running at stop were cancelled; their claims are looked up on the next start", count=len(pending))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _mtime(path: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(Path(path).stat().st_mtime, timezone.utc)
    except OSError:
        return None
