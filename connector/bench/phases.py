"""One bench run: the sandboxes, a Runtime wired to them exactly as the daemon's, and the phases
(download, delivery, shipments, inventory, inventory 1%), or the soak."""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from connector.bench.figures import finish
from connector.bench.harness import Measure, SandboxProcess, _status_kb, profile_summary, timed
from connector.bench.options import (BASELINE_DC, SB_TOKEN, SHIP_METHODS, UC_KEY, BenchOptions, bench_config, chunks, sendable_orders,
                                     split)


PROFILED = ("download", "delivery")  # what --profile covers: the order flow of the first target


class Bench:
    """One bench run: sandboxes, a Runtime wired to them, and the phases."""

    def __init__(self, opts: BenchOptions, console: Console | None):
        self.opts = opts
        self.console = console
        self.workdir = Path(tempfile.mkdtemp(prefix="connector-bench-"))
        self.run_id = "b" + secrets.token_hex(2)  # fresh merchant ids: a reused --store holds older runs
        self.orders = split(opts.orders, opts.merchants)
        self.skus = split(opts.skus, opts.merchants)
        self.uc = SandboxProcess("ultracart", ["--api-key", UC_KEY, "--dcs", ",".join([f"DC{i + 1}" for i in range(opts.merchants)] + ([BASELINE_DC] if opts.baseline else [])),
                                               "--latency-ms", str(opts.latency_ms)], self.workdir)
        self.sb = SandboxProcess("shipbob", ["--token", SB_TOKEN, "--accounts", str(opts.accounts), "--latency-ms", str(opts.latency_ms),
                                             "--rate-limit", str(opts.rate_limit)], self.workdir)
        self.client = httpx.AsyncClient(timeout=600)
        self.rt: Any = None
        self.last_before: dict[str, int] = {}
        self.delivery_before: dict[str, int] = {}
        self.profiler = cProfile.Profile() if opts.profile else None  # download + delivery only (PROFILED)
        self.at_deadline: dict[str, int] = {}

    # -- plumbing -------------------------------------------------------------------------
    async def open(self, schedule: str | None = None) -> None:
        from connector import logs
        from connector.config import from_dict
        from connector.runtime import build_runtime

        logs.configure("console", "error")  # a log line per pass at most: not what is measured
        uc_url, sb_url = await asyncio.gather(self.uc.start(), self.sb.start())
        db_url = self.opts.store or f"sqlite:///{self.workdir / 'bench.db'}"
        cfg = from_dict(bench_config(self.opts, self.run_id, uc_url, sb_url, db_url, schedule), file="<bench>")
        self.rt = await build_runtime(cfg, worker_id=f"bench-{os.getpid()}")

    async def close(self) -> None:
        try:
            if self.rt is not None:
                await self.rt.aclose()
            await self.client.aclose()
        finally:
            self.uc.stop()
            self.sb.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def control(self, sandbox: SandboxProcess, path: str, body: Any = None) -> Any:
        """A control-API call; big replies are drained, not parsed (they would bloat our RSS)."""
        async with self.client.stream("POST" if body is not None else "GET", sandbox.url + path, json=body) as r:
            if r.status_code >= 400:
                raise RuntimeError(f"{sandbox.kind} {path}: HTTP {r.status_code}")
            if path.endswith(("counters", "generate", "catalog")):
                return json.loads(await r.aread())
            async for _ in r.aiter_raw():
                pass
        return None

    async def counters(self) -> dict[str, int]:
        uc, sb = await asyncio.gather(self.control(self.uc, "/_sandbox/counters"), self.control(self.sb, "/_sandbox/counters"))
        flat = {f"ultracart {k}": v for k, v in uc["requests"].items() if k != "dcs"}
        flat |= {f"shipbob {k}": v for k, v in sb["requests"].items()}
        flat |= {f"ultracart {k} answers": v for k, v in uc["faults"].items()} | {f"shipbob {k} answers": v for k, v in sb["faults"].items()}
        flat |= {"_created": sb["created"], "_acknowledged": uc["acknowledged"], "_tracking": uc["tracking_records"],
                 "_inventory_items": uc["inventory_items"], "_queued": uc["queued"]}
        return flat

    async def each_merchant(self, service: str) -> list[Any]:
        return list(await asyncio.gather(*(self.rt.run_service(m, service, honour_pause=False) for m in self.rt.contexts)))

    # -- phases ---------------------------------------------------------------------------
    async def phase(self, name: str, unit: str, work: Callable[[], Awaitable[list[Any]]], progress: tuple[str, int] | None = None) -> dict[str, Any]:
        before = self.last_before = await self.counters()
        sandbox_cpu = self.uc.cpu_s() + self.sb.cpu_s()
        with self.progress(name, progress):
            profiling = self.profiler is not None and name in PROFILED
            m = Measure().start()
            if profiling:
                self.profiler.enable()
            try:
                results = await work()
            finally:
                if profiling:
                    self.profiler.disable()
            m.stop()
        sandbox_cpu = self.uc.cpu_s() + self.sb.cpu_s() - sandbox_cpu
        after = await self.counters()
        made = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        summaries: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r in results:
            for k, v in r.did.items():
                if isinstance(v, int):
                    summaries[r.merchant][k] += v
        return {"name": name, "unit": unit, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_rss_mb": round(m.peak_rss_kb / 1024, 1),
                "sandbox_cpu_s": round(sandbox_cpu, 2),
                "made": made, "summaries": {k: dict(v) for k, v in summaries.items()},
                "errors": sorted({f"{r.merchant} {r.service}: {r.error}" for r in results if r.error and r.outcome != "throttled"})}

    @contextmanager
    def progress(self, name: str, spec: tuple[str, int] | None) -> Iterator[None]:
        """A progress bar fed by the sandbox counters, on a terminal only (it costs our CPU)."""
        if not (self.opts.progress and spec and self.console is not None and self.console.is_terminal):
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        key, total = spec
        bar = Progress(TextColumn(f"{name:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=self.console, transient=True, refresh_per_second=2)
        task = bar.add_task(name, total=total)

        async def poll() -> None:
            start = None
            while True:
                value = (await self.counters()).get(key, 0)
                start = value if start is None else start
                bar.update(task, completed=value - start)
                await asyncio.sleep(0.5)

        poller = asyncio.get_running_loop().create_task(poll())
        with bar:
            try:
                yield
            finally:
                poller.cancel()

    async def queue_orders(self, dc: str | None = None) -> None:
        """Every merchant's orders in its own DC's queue; with `dc`, the same orders all in that one."""
        for i, n in enumerate(self.orders):
            for j, count in enumerate(chunks(n)):
                await self.control(self.uc, "/_sandbox/generate", {"dc": dc or f"DC{i + 1}", "prefix": f"M{i + 1}C{j}", "count": count})

    async def baseline(self) -> dict[str, Any]:
        """The naive loop (baseline.py) on its own copy of the same queue, into its own ShipBob account."""
        from connector.bench.baseline import naive_loop

        await self.queue_orders(BASELINE_DC)
        before, sandbox_cpu = await self.counters(), self.uc.cpu_s() + self.sb.cpu_s()
        account = self.opts.accounts - 1
        done = naive_loop(uc_url=self.uc.url, api_key=UC_KEY, dc=BASELINE_DC, sb_url=f"{self.sb.url}/a{account}",
                          token=SB_TOKEN if self.opts.accounts == 1 else f"{SB_TOKEN}-{account}", channel_id=1,
                          ship_methods=SHIP_METHODS, client=self.opts.baseline_client)
        sandbox_cpu = self.uc.cpu_s() + self.sb.cpu_s() - sandbox_cpu
        after = await self.counters()
        made = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        return done.figures() | {"sandbox_cpu_s": round(sandbox_cpu, 2), "created_at_warehouse": made["_created"],
                                 "acknowledged_at_ultracart": made["_acknowledged"],
                                 "requests": {k: v for k, v in made.items() if v and not k.startswith("_")}}

    async def deliver(self) -> list[Any]:
        """One pass; with a rate limit, passes for `rate_minutes` (a daemon on a 1 s schedule)."""
        if not self.opts.rate_limit:
            return await self.each_merchant("order_delivery")
        results: list[Any] = []
        deadline = time.monotonic() + self.opts.rate_minutes * 60
        self.delivery_before, self.at_deadline = self.last_before, {}

        async def snapshot() -> None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            self.at_deadline = await self.counters()

        watcher = asyncio.get_running_loop().create_task(snapshot())
        while time.monotonic() < deadline:
            results += await self.each_merchant("order_delivery")
            left = sum(n for (_, state), n in (await self.rt.store.orders.counts_by_state()).items() if state in ("ready", "submitting"))
            if not left:
                break
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        await watcher if not watcher.done() else None
        return results

    async def ship_everything(self) -> None:
        for i in range(self.opts.merchants):
            await self.control(self.sb, f"/a{i}/_sandbox/ship", {})

    async def shelve(self, change_every: int = 0) -> None:
        for i, k in enumerate(self.skus):
            await self.control(self.sb, f"/a{i}/_sandbox/catalog", {"skus": k, "change_every": change_every})

    async def run(self) -> dict[str, Any]:
        from connector.pipeline import inventory as inventory_module

        opts, sendable = self.opts, sum(sendable_orders(c) for n in self.orders for c in chunks(n))
        await self.queue_orders()
        naive = await self.baseline() if opts.baseline else None
        phases = [await self.phase("download", "order", lambda: self.each_merchant("order_download"), ("_acknowledged", opts.orders))]
        phases.append(await self.phase("delivery", "order", self.deliver, ("_created", sendable)))
        await self.ship_everything()
        if opts.rate_limit:
            await asyncio.sleep(61)  # the warehouse's window is spent: the next phases start afresh
        phases.append(await self.phase("shipments", "order", lambda: self.each_merchant("shipment_upload"), ("_tracking", sendable)))
        await self.shelve()
        pipeline: dict[str, dict[str, float]] = {}
        for name, change_every in (("inventory", 0), ("inventory 1%", 100)):
            if change_every:
                await self.shelve(change_every)
            pipeline[name] = {}
            with timed(inventory_module, ("bought_units", "compute", "changes"), pipeline[name]):
                phases.append(await self.phase(name, "sku", lambda: self.each_merchant("inventory_upload"),
                                               ("_inventory_items", opts.skus if not change_every else opts.skus // 100)))
        finish(phases, self, pipeline)
        profile = profile_summary(self.profiler, self.opts.profile) if self.profiler is not None else None
        left = (await self.counters())["_queued"]
        return {"phases": phases, "queued_left": left, "sendable": sendable, "baseline": naive, "profile": profile,
                "rate": self.rate_figures() if opts.rate_limit else None}

    def rate_figures(self) -> dict[str, Any]:
        """Warehouse requests in the first `rate_minutes` of the delivery phase against R per minute."""
        start, end = self.delivery_before, self.at_deadline or self.delivery_before
        window = {k: end.get(k, 0) - start.get(k, 0) for k in end if k.startswith("shipbob ")}
        sent = sum(v for k, v in window.items() if not k.endswith("answers"))
        throttled = window.get("shipbob 429 answers", 0)
        budget = self.opts.rate_limit * self.opts.rate_minutes
        return {"limit_per_minute": self.opts.rate_limit, "minutes": self.opts.rate_minutes, "requests": sent, "answered_429": throttled,
                "used_pct": round(100 * (sent - throttled) / budget, 1) if budget else 0.0,
                "pct_429": round(100 * throttled / sent, 2) if sent else 0.0}



async def soak(bench: Bench) -> dict[str, Any]:
    """The daemon itself for `soak_minutes`: every merchant on 1-minute schedules, a few new
    orders per merchant each minute, RSS sampled every 5 s."""
    from connector.scheduler import Daemon

    opts, daemon = bench.opts, Daemon(bench.rt)
    # Passes still queued for a database connection when the soak ends are cancelled; APScheduler
    # would print a traceback for each. The figures below say what was done.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    await bench.shelve()
    runner = asyncio.get_running_loop().create_task(daemon.run())
    started, cpu0 = time.monotonic(), time.process_time()
    warm_up = min(120.0, opts.soak_minutes * 60 / 2)
    samples: list[tuple[float, int]] = []
    wave = 0
    try:
        while (elapsed := time.monotonic() - started) < opts.soak_minutes * 60:
            if elapsed >= wave * 60:
                for i in range(opts.merchants):
                    await bench.control(bench.uc, "/_sandbox/generate", {"dc": f"DC{i + 1}", "prefix": f"S{wave}M{i + 1}", "count": 5})
                wave += 1
            samples.append((elapsed, _status_kb("VmRSS")))
            await asyncio.sleep(5)
    finally:
        daemon.request_stop()
        await runner
    warm = next((kb for t, kb in samples if t >= warm_up), samples[-1][1])
    end = max(kb for t, kb in samples[-3:])
    counters = await bench.counters()
    failed = sorted(f"{r.merchant} {r.service}: {r.last_error}" for r in await bench.rt.store.runs.listing()
                    if r.last_error and r.last_outcome != "throttled")
    return {"minutes": opts.soak_minutes, "merchants": opts.merchants, "orders_queued": wave * 5 * opts.merchants, "failed": failed,
            "orders_created": counters["_created"], "rss_after_warm_up_mb": round(warm / 1024, 1), "rss_end_mb": round(end / 1024, 1),
            "growth_pct": round(100 * (end - warm) / warm, 1), "cpu_pct_of_a_core": round(100 * (time.process_time() - cpu0) / (time.monotonic() - started), 1),
            "rss_samples_mb": [round(kb / 1024, 1) for _, kb in samples[::6]]}
