"""The idle phase: N merchants (`--idle-merchants`, 1,000 by default), each with its own UltraCart
key, DC and ShipBob account, on the default schedules, with empty queues: the daemon's scheduler
and passes as they run for a 3PL whose merchants have nothing to send.

First a warm-up, until every merchant's service has started once (the staggered first round, up
to about 11 s after start); then the measured window (`--idle-seconds`, 60 s by default: one
period of the 60 s services, so their second round falls inside it). Per stretch: CPU share of one
core (`time.process_time` of this process over wall time; the sandboxes are other processes), RSS
(VmRSS at the end, VmHWM over the window) and schedule lag: for every scheduled pass, the time
from its due time (APScheduler's scheduled run time, the earliest when runs were coalesced) to the
moment the pass got its slot and started (`Daemon.pass_started`).

The lag is observed by a subclass of the daemon (`LagDaemon`), not by changing the scheduler."""

from __future__ import annotations

import asyncio
import cProfile
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connector.bench.harness import Measure, SandboxProcess, _status_kb, profile_summary
from connector.bench.options import SB_TOKEN, UC_KEY, BenchOptions, bench_config

WARM_UP_MAX_S = 300.0
SETTLE_MAX_S = 60.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def lag_figures(lags: list[float]) -> dict[str, Any]:
    r = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {"passes": len(lags), "lag_p50_s": r(percentile(lags, 0.5)), "lag_p99_s": r(percentile(lags, 0.99)),
            "lag_max_s": r(max(lags) if lags else None)}


def lag_daemon(runtime: Any) -> Any:
    """The daemon, recording each scheduled pass's lag behind its due time."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED

    from connector.scheduler import Daemon

    class LagDaemon(Daemon):
        def __init__(self, rt: Any):
            super().__init__(rt)
            self.due: dict[str, datetime] = {}
            self.lags: list[float] = []
            self.started: set[str] = set()
            self.missed = 0
            self.errors: dict[str, int] = {}  # passes that raised (the database's pool exhausted, say): kind -> count
            self.scheduler.add_listener(self._seen, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)

        def _seen(self, event: Any) -> None:
            if event.code == EVENT_JOB_MISSED:
                self.missed += 1
            elif event.code == EVENT_JOB_ERROR:
                what = f"{type(event.exception).__name__}: {str(event.exception).split(' (Background', 1)[0][:160]}"
                self.errors[what] = self.errors.get(what, 0) + 1
            elif event.scheduled_run_times:
                self.due[event.job_id] = min(event.scheduled_run_times)

        def pass_started(self, merchant: str, service: str) -> None:
            # When the pass really starts (it may have waited for a slot), not when its job fired.
            job_id = f"{merchant}:{service}"
            due = self.due.pop(job_id, None)
            if due is not None:
                self.lags.append((datetime.now(timezone.utc) - due).total_seconds())
            self.started.add(job_id)

    return LagDaemon(runtime)


async def idle_phase(opts: BenchOptions) -> dict[str, Any]:
    from connector import logs
    from connector.config import SERVICES, from_dict
    from connector.runtime import build_runtime

    n = opts.idle_merchants
    workdir = Path(tempfile.mkdtemp(prefix="connector-bench-idle-"))
    uc = SandboxProcess("ultracart", ["--api-key", UC_KEY, "--dcs", ",".join(f"DC{i + 1}" for i in range(n))], workdir,
                        module="connector.bench.keys")
    sb = SandboxProcess("shipbob", ["--token", SB_TOKEN, "--accounts", str(n)], workdir)
    rt = daemon = runner = None
    out: dict[str, Any] = {"merchants": n, "window_s": opts.idle_seconds}
    try:
        # Critical only: with 1,000 merchants a failing pass logs a traceback each; the failures are
        # counted and the first ones listed in the figures.
        logs.configure("console", "critical")
        uc_url, sb_url = await asyncio.gather(uc.start(timeout=120), sb.start(timeout=120))
        config = bench_config(replace(opts, merchants=n, baseline=False), "i" + secrets.token_hex(2), uc_url, sb_url,
                              opts.store or f"sqlite:///{workdir / 'idle.db'}", own_keys=True)
        del config["daemon"]["delivery_concurrency"]  # the defaults, as a 3PL's config would have them
        for m in config["merchants"]:
            del m["warehouse"]["rate_per_minute"]
        t0, c0 = time.perf_counter(), time.process_time()
        rt = await build_runtime(from_dict(config, file="<bench idle>"), worker_id=f"bench-idle-{os.getpid()}")
        out["build"] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                        "rss_mb": round(_status_kb("VmRSS") / 1024, 1)}

        daemon = lag_daemon(rt)
        # A pass that raises is counted below (`errors`); APScheduler would print a traceback for each.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        jobs = n * len(SERVICES)
        t0, c0 = time.perf_counter(), time.process_time()
        runner = asyncio.get_running_loop().create_task(daemon.run())
        # Warm-up: every merchant's service started once, and those passes done.
        while len(daemon.started) < jobs and time.perf_counter() - t0 < WARM_UP_MAX_S and not runner.done():
            await asyncio.sleep(0.1)
        settle = time.perf_counter()
        while daemon.running and time.perf_counter() - settle < SETTLE_MAX_S:
            await asyncio.sleep(0.1)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["warm_up"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_pct_of_a_core": round(100 * cpu / wall, 1),
                          "passes_still_running": len(daemon.running),
                          "jobs_started": len(daemon.started), "jobs": jobs, "rss_mb": round(_status_kb("VmRSS") / 1024, 1),
                          **lag_figures(daemon.lags)}
        daemon.lags.clear()

        sandbox_cpu = uc.cpu_s() + sb.cpu_s()
        profiler = cProfile.Profile() if opts.profile else None
        measure = Measure().start()
        if profiler is not None:
            profiler.enable()
        samples = []
        end = time.perf_counter() + opts.idle_seconds
        while (left := end - time.perf_counter()) > 0 and not runner.done():
            await asyncio.sleep(min(1.0, left))
            samples.append(_status_kb("VmRSS"))
        if profiler is not None:
            profiler.disable()
            out["profile"] = profile_summary(profiler, f"{opts.profile}.idle")
        measure.stop()
        out |= {"cpu_s": round(measure.cpu_s, 3), "cpu_pct_of_a_core": round(100 * measure.cpu_s / measure.wall_s, 2),
                "rss_end_mb": round(_status_kb("VmRSS") / 1024, 1), "peak_rss_mb": round(measure.peak_rss_kb / 1024, 1),
                "rss_samples_mb": [round(kb / 1024, 1) for kb in samples[:: max(1, len(samples) // 10)]],
                "sandbox_cpu_s": round(uc.cpu_s() + sb.cpu_s() - sandbox_cpu, 2), "missed": daemon.missed,
                "passes_running_at_end": len(daemon.running),
                **lag_figures(daemon.lags)}
    finally:
        if daemon is not None:
            daemon.request_stop()
        if runner is not None:
            await runner
        if rt is not None:
            failed = sorted(f"{r.merchant} {r.service}: {r.last_error}" for r in await rt.store.runs.listing()
                            if r.last_error and r.last_outcome != "throttled")
            errors = dict(daemon.errors) if daemon is not None else {}
            out |= {"failed_count": len(failed) + sum(errors.values()), "failed": failed[:10], "raised": errors}
            await rt.aclose()
        uc.stop()
        sb.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out
