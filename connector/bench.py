"""`connector bench`: the connector's throughput, CPU, memory and vendor-request economy, measured
against the loopback sandboxes.

The sandboxes run in child processes (`python -m connector.sandbox.serve`), so the CPU and memory
figures are the connector's alone; the connector runs in this process exactly as the daemon does
(a Runtime on a SQLite file, or `--store URL`). Phases, each measured on its own:

    download   N orders from the UltraCart queue (fetch <= 100, store, acknowledge)
    delivery   rules + mapping + one ShipBob create per order (bounded by --rate-minutes with --rate-limit)
    shipments  ShipBob shipments -> tracking posted to UltraCart -> flagged uploaded at ShipBob
    inventory  K SKUs of stock, first a full push, then again after 1% of them changed

Per phase: wall time, items per second, connector CPU ms per item (`time.process_time`, every
thread of this process), peak RSS (VmHWM, reset per phase through /proc/self/clear_refs), the
vendor requests made (the sandboxes' counters) against the minimum the APIs allow, and wall time
against the round-trip lower bound for the latency. See `minimum_requests` and `round_trips`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

UC_KEY, SB_TOKEN = "bench-ultracart-key", "bench-warehouse-token"
SHIP_METHODS = {"USPS: Priority Mail": "Standard", "UPS: Ground": "Standard", "FedEx: 2Day": "2-Day"}
CATALOG_SIZE = 6  # the sample catalog in the ShipBob sandbox (connector.sandbox.serve.CATALOG)
# The APIs' batch limits: the minimum requests follow from them.
FETCH, ACK, TRACKING_POST, INVENTORY_POST, PAGE, WAREHOUSE_ACK = 100, 100, 100, 500, 250, 100
UNLIMITED_RATE = 1_000_000.0  # the adapter's limiter must not pace a sandbox that has no limit


@dataclass
class BenchOptions:
    """What `connector bench` was asked for (the CLI options, one to one)."""

    orders: int = 10_000
    skus: int = 50_000
    merchants: int = 1
    latency_ms: float = 0.0
    rate_limit: int = 0  # warehouse requests per minute (0 = unlimited)
    rate_minutes: float = 2.0  # with rate_limit: how long the delivery phase runs (whole minutes: the vendor's window)
    concurrency: int = 8  # [daemon] delivery_concurrency, and the lower bound's parallelism
    store: str | None = None
    soak_minutes: float = 0.0
    progress: bool = True


# ------------------------------------------------------------------------------ sandboxes
class SandboxProcess:
    """One sandbox served by `python -m connector.sandbox.serve` in a child process."""

    def __init__(self, kind: str, args: list[str], workdir: Path):
        self.kind, self.args = kind, args
        self.ready = workdir / f"{kind}.url"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    async def start(self, timeout: float = 30.0) -> str:
        cmd = [sys.executable, "-m", "connector.sandbox.serve", self.kind, "--port", "0", "--ready-file", str(self.ready), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} sandbox exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} sandbox did not start within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        self.url = self.ready.read_text().strip()
        return self.url

    def cpu_s(self) -> float:
        """CPU seconds the sandbox process used so far (to tell when it, not the connector, is the bottleneck)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, however it dies (Linux), so no sandbox lingers."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ------------------------------------------------------------------------------ measuring
def _status_kb(name: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: `5` in clear_refs resets VmHWM); False when impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measure:
    """Wall, CPU and peak RSS of one stretch of the connector's work."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_kb: int = 0
    _t0: float = 0.0
    _c0: float = 0.0

    def start(self) -> Measure:
        _reset_peak_rss()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> Measure:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.peak_rss_kb = _status_kb("VmHWM")
        return self


@contextmanager
def timed(module: Any, names: tuple[str, ...], totals: dict[str, float]) -> Iterator[None]:
    """Time calls of module-level functions (the inventory quantity pipeline) while inside."""
    originals = {n: getattr(module, n) for n in names}

    def wrap(name: str, fn: Callable) -> Callable:
        def timed_call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0
        return timed_call

    for n, fn in originals.items():
        setattr(module, n, wrap(n, fn))
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(module, n, fn)


# ------------------------------------------------------------------------------ the bench
def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def chunks(n: int, size: int = 2000) -> list[int]:
    """Orders are generated in chunks, which keeps the sandbox responsive."""
    return [min(size, n - start) for start in range(0, n, size)]


def sendable_orders(count: int) -> int:
    """Of `demo_orders(count)`, the ones that should reach the warehouse: from 12 orders on, it
    holds three (unmapped method, unknown SKU, no address) and two are skipped (test, too old)."""
    return count - 5 if count >= 12 else count


def pages(n: int, size: int = PAGE) -> int:
    return max(1, math.ceil(n / size))


def bench_config(opts: BenchOptions, run: str, uc_url: str, sb_url: str, db_url: str, schedule: str | None = None) -> dict[str, Any]:
    merchants = []
    for i in range(opts.merchants):
        m: dict[str, Any] = {
            "id": f"{run}-{i + 1}",
            "ultracart": {"merchant_id": "BENCH", "api_key": UC_KEY, "distribution_center": f"DC{i + 1}", "base_url": uc_url},
            "warehouse": {"adapter": "shipbob", "base_url": f"{sb_url}/a{i}", "channel_id": 1,
                          "token": SB_TOKEN if opts.merchants == 1 else f"{SB_TOKEN}-{i}",
                          "rate_per_minute": float(opts.rate_limit) if opts.rate_limit else UNLIMITED_RATE},
            "orders": {"earliest_order_date": "2026-01-01", "skip_test_orders": True},
            "ship_methods": SHIP_METHODS,
            "skus": {"aliases": {"Bone": "BONE-5LB"}, "kits": {"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}}},
            # Every warehouse SKU is sold under its own name, so K generated SKUs are K store items.
            "inventory": {"push_by_alias": False},
        }
        if schedule:
            m["schedule"] = dict.fromkeys(("order_download", "order_delivery", "shipment_upload", "inventory_upload"), schedule)
        merchants.append(m)
    return {"daemon": {"database_url": db_url, "log_level": "error", "delivery_concurrency": opts.concurrency}, "merchants": merchants}


class Bench:
    """One bench run: sandboxes, a Runtime wired to them, and the phases."""

    def __init__(self, opts: BenchOptions, console: Console | None):
        self.opts = opts
        self.console = console
        self.workdir = Path(tempfile.mkdtemp(prefix="connector-bench-"))
        self.run_id = "b" + secrets.token_hex(2)  # fresh merchant ids: a reused --store holds older runs
        self.orders = split(opts.orders, opts.merchants)
        self.skus = split(opts.skus, opts.merchants)
        self.uc = SandboxProcess("ultracart", ["--api-key", UC_KEY, "--dcs", ",".join(f"DC{i + 1}" for i in range(opts.merchants)),
                                               "--latency-ms", str(opts.latency_ms)], self.workdir)
        self.sb = SandboxProcess("shipbob", ["--token", SB_TOKEN, "--accounts", str(opts.merchants), "--latency-ms", str(opts.latency_ms),
                                             "--rate-limit", str(opts.rate_limit)], self.workdir)
        self.client = httpx.AsyncClient(timeout=600)
        self.rt: Any = None
        self.last_before: dict[str, int] = {}
        self.delivery_before: dict[str, int] = {}
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
            m = Measure().start()
            results = await work()
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

    async def queue_orders(self) -> None:
        for i, n in enumerate(self.orders):
            for j, count in enumerate(chunks(n)):
                await self.control(self.uc, "/_sandbox/generate", {"dc": f"DC{i + 1}", "prefix": f"M{i + 1}C{j}", "count": count})

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
        left = (await self.counters())["_queued"]
        return {"phases": phases, "queued_left": left, "sendable": sendable,
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


# ------------------------------------------------------------------------------ the figures
def minimum_requests(name: str, s: dict[str, int], *, catalog: int = CATALOG_SIZE) -> dict[str, int]:
    """The fewest requests the APIs allow for what one merchant's phase moved (`s`: its summary)."""
    if name == "download":
        n = s.get("new", 0) + s.get("repeats", 0)
        return {"ultracart fetch": math.ceil(n / FETCH) + 1, "ultracart ack": math.ceil(n / ACK)}  # + the empty fetch that ends it
    if name == "delivery":
        evaluated = s.get("ready", 0) + s.get("held", 0) + s.get("skipped", 0)
        out = {"shipbob POST /order": s.get("created", 0) + s.get("already_existed", 0)}
        if evaluated:
            out |= {"shipbob GET /product": pages(catalog), "shipbob GET /shipping-method": 1}
        return out
    if name == "shipments":
        listed = s.get("orders_listed", 0)
        return {"shipbob GET /order": listed // PAGE + 1, "ultracart shipments": math.ceil(s.get("tracking_posted", 0) / TRACKING_POST),
                "shipbob POST /shipment:batchUpdateTrackingUpload": math.ceil(s.get("warehouse_acknowledged", 0) / WAREHOUSE_ACK)}
    return {"shipbob GET /inventory-level/locations": pages(s.get("stock_skus", 0)),
            "ultracart inventory": math.ceil(s.get("changed", 0) / INVENTORY_POST)}


def round_trips(name: str, mins: dict[str, int], concurrency: int) -> int:
    """Round trips that cannot overlap: the queue's fetch -> ack chain and paged reads are
    sequential; creates, posts and flags are independent and run `concurrency` at a time."""
    par = lambda key: math.ceil(mins.get(key, 0) / concurrency)  # noqa: E731
    if name == "download":
        return mins["ultracart fetch"] + mins["ultracart ack"]
    if name == "delivery":
        return mins.get("shipbob GET /product", 0) + par("shipbob POST /order")
    if name == "shipments":
        return mins["shipbob GET /order"] + par("ultracart shipments") + par("shipbob POST /shipment:batchUpdateTrackingUpload")
    return mins["shipbob GET /inventory-level/locations"] + par("ultracart inventory")


def finish(phases: list[dict[str, Any]], bench: Bench, pipeline: dict[str, dict[str, float]]) -> None:
    """Add the derived figures to each phase: items, rates, minimums, the lower bound."""
    opts = bench.opts
    created_by: dict[str, int] = {}
    for p in phases:
        per_merchant_mins, trips = defaultdict(int), 0
        if p["name"] == "delivery":
            # A throttled pass returns no summary: the creates are counted at the warehouse.
            created = p["made"].get("_created", 0)
            if sum(s.get("created", 0) + s.get("already_existed", 0) for s in p["summaries"].values()) != created:
                p["summaries"] = {m: {**p["summaries"].get(m, {}), "created": n, "already_existed": 0, "ready": n}
                                  for m, n in zip(bench.rt.contexts, split(created, opts.merchants))}
        for merchant, s in p["summaries"].items():
            s = dict(s)
            if p["name"] == "shipments":
                s["orders_listed"] = created_by.get(merchant, 0)
            if p["name"].startswith("inventory"):
                s["stock_skus"] = bench.skus[int(merchant.rsplit("-", 1)[1]) - 1]  # only generated SKUs have stock
            mins = minimum_requests(p["name"], s)
            for k, v in mins.items():
                per_merchant_mins[k] += v
            trips = max(trips, round_trips(p["name"], mins, opts.concurrency))  # merchants run side by side
            if p["name"] == "delivery":
                created_by[merchant] = s.get("created", 0) + s.get("already_existed", 0)
        sums = defaultdict(int)
        for s in p["summaries"].values():
            for k, v in s.items():
                sums[k] += v
        items = {"download": sums["new"], "delivery": sums["created"] + sums["already_existed"],
                 "shipments": sums["orders_confirmed"]}.get(p["name"], sums["skus"])
        p["items"] = items
        p["per_second"] = round(items / p["wall_s"], 1) if p["wall_s"] else 0.0
        p["cpu_ms"] = round(p["cpu_s"] * 1000, 1)
        p["cpu_ms_per_item"] = round(p["cpu_s"] * 1000 / items, 3) if items else None
        p["requests"] = {k: v for k, v in p["made"].items() if not k.startswith("_") and (v or k in per_merchant_mins)}
        p["requests_min"] = dict(per_merchant_mins)
        p["requests_total"] = sum(v for k, v in p["requests"].items() if not k.endswith("answers"))
        p["requests_min_total"] = sum(per_merchant_mins.values())
        p["round_trips_min"] = trips
        bound = trips * opts.latency_ms / 1000
        p["lower_bound_s"] = round(bound, 3)
        p["vs_lower_bound"] = round(p["wall_s"] / bound, 2) if bound and not (opts.rate_limit and p["name"] == "delivery") else None
        if p["name"].startswith("inventory"):
            p["changed"] = sums["changed"]
            p["quantity_pipeline_s"] = round(sum(pipeline.get(p["name"], {}).values()), 4)
        p["wall_s"], p["cpu_s"] = round(p["wall_s"], 3), round(p["cpu_s"], 3)
        del p["made"]


def order_flow(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Download + delivery together: the figures the first target is about."""
    dl, de = phases[0], phases[1]
    wall, cpu, n = dl["wall_s"] + de["wall_s"], dl["cpu_s"] + de["cpu_s"], dl["items"]
    return {"orders": n, "wall_s": round(wall, 3), "per_second": round(n / wall, 1) if wall else 0.0,
            "cpu_ms_per_order": round(cpu * 1000 / n, 3) if n else None, "peak_rss_mb": max(dl["peak_rss_mb"], de["peak_rss_mb"])}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets that this run's options make measurable, each with its figure."""
    o, phases, out = result["options"], result["phases"], []

    def add(what: str, figure: str, ok: bool) -> None:
        out.append({"target": what, "figure": figure, "ok": bool(ok)})

    flow = result.get("order_flow") or {}
    if flow and not o["latency_ms"] and not o["rate_limit"]:
        add(">= 1,000 orders/s through download + delivery", f"{flow['per_second']:,.0f}/s", flow["per_second"] >= 1000)
        add("<= 1 ms connector CPU per order (download + delivery)", f"{flow['cpu_ms_per_order']} ms", (flow["cpu_ms_per_order"] or 0) <= 1)
        peak = max(p["peak_rss_mb"] for p in phases)
        add("peak RSS <= 200 MB", f"{peak} MB", peak <= 200)
    if phases and o["latency_ms"]:
        timed_phases = [p for p in phases if p["vs_lower_bound"] is not None]
        wall, bound = sum(p["wall_s"] for p in timed_phases), sum(p["lower_bound_s"] for p in timed_phases)
        add("wall <= 1.3x the round-trip lower bound (all phases)", f"{wall:.1f} s / {bound:.1f} s = {wall / bound:.2f}x" if bound else "-",
            bound and wall <= 1.3 * bound)
    if result.get("rate"):
        r = result["rate"]
        add(f">= 95% of {r['limit_per_minute']}/min used", f"{r['used_pct']}%", r["used_pct"] >= 95)
        add("< 1% of warehouse requests answered 429", f"{r['pct_429']}%", r["pct_429"] < 1)
    last = phases[-1] if phases else {}
    if last and o["skus"] >= 100:
        posts = last["requests"].get("ultracart inventory", 0)
        add(f"1% of {o['skus']:,} SKUs changed -> {last['requests_min'].get('ultracart inventory', 0)} inventory post(s)",
            f"{posts} post(s), {last['changed']} items", posts == last["requests_min"].get("ultracart inventory", 0))
        add("quantity pipeline < 1 s", f"{last['quantity_pipeline_s']} s", last["quantity_pipeline_s"] < 1)
    if result.get("soak"):
        s = result["soak"]
        add("RSS growth < 10% after warm-up (soak)", f"{s['growth_pct']}%", s["growth_pct"] < 10)
    return out


# ------------------------------------------------------------------------------ soak
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


# ------------------------------------------------------------------------------ entry points
async def run_bench(options: BenchOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the bench (or, with `soak_minutes`, the soak); returns every figure as JSON-able data."""
    bench = Bench(options, console)
    result: dict[str, Any] = {"version": 1, "options": asdict(options), "environment": environment()}
    try:
        if options.soak_minutes:
            await bench.open(schedule="1m")
            result |= {"phases": [], "soak": await soak(bench)}
            result["targets"] = targets(result)
            result["ok"] = not result["soak"]["failed"]  # the targets are reported, not enforced: machines differ
            return result
        await bench.open()
        result |= await bench.run()
    finally:
        await bench.close()
    result["order_flow"] = order_flow(result["phases"])
    result["targets"] = targets(result)
    errors = [e for p in result["phases"] for e in p["errors"]]
    delivered = result["phases"][1]["items"]
    result["ok"] = not errors and not result["queued_left"] and (bool(options.rate_limit) or delivered == result["sendable"])
    return result


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"commit": commit, "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(result: dict[str, Any], path: str) -> None:
    text = json.dumps(result, indent=2, default=str) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text)


def print_bench(result: dict[str, Any], console: Console) -> None:
    o = result["options"]
    console.rule("connector bench")
    console.print(f"{o['orders']:,} orders, {o['skus']:,} SKUs, {o['merchants']} merchant(s), latency {o['latency_ms']:g} ms, "
                  f"warehouse rate limit {o['rate_limit'] or 'none'}/min, concurrency {o['concurrency']}; "
                  f"sandboxes in their own processes; commit {result['environment']['commit'] or '?'}, "
                  f"load average {result['environment']['load_average'][0]}")
    if result["phases"]:
        t = Table("phase", "items", "wall s", "per s", "CPU ms/item", "peak RSS MB", "requests (min)", "round-trip bound s", "wall/bound", "sandbox CPU s",
                  box=None, title="Per phase (CPU and RSS: the connector process only)", title_justify="left")
        for p in result["phases"]:
            t.add_row(p["name"], f"{p['items']:,} {p['unit']}s", f"{p['wall_s']:.2f}", f"{p['per_second']:,.0f}",
                      "-" if p["cpu_ms_per_item"] is None else f"{p['cpu_ms_per_item']:.3f}", f"{p['peak_rss_mb']:.0f}",
                      f"{p['requests_total']:,} ({p['requests_min_total']:,})", f"{p['lower_bound_s']:.2f}",
                      "-" if p["vs_lower_bound"] is None else f"{p['vs_lower_bound']:.2f}x", f"{p['sandbox_cpu_s']:.1f}")
        console.print(t)
        f = result["order_flow"]
        console.print(f"Download + delivery: {f['orders']:,} orders in {f['wall_s']:.2f} s = {f['per_second']:,.0f} orders/s, "
                      f"{f['cpu_ms_per_order']} ms CPU per order, peak RSS {f['peak_rss_mb']:.0f} MB")
        r = Table("phase", "vendor request", "made", "minimum", box=None, title="Vendor requests against the minimum the APIs allow", title_justify="left")
        for p in result["phases"]:
            for k in sorted(set(p["requests"]) | set(p["requests_min"])):
                r.add_row(p["name"], k, f"{p['requests'].get(k, 0):,}", "-" if k not in p["requests_min"] else f"{p['requests_min'][k]:,}")
        console.print(r)
        for p in result["phases"]:
            if "quantity_pipeline_s" in p:
                console.print(f"{p['name']}: {p['changed']:,} changed of {p['items']:,} SKUs; quantity pipeline {p['quantity_pipeline_s']:.3f} s")
            for e in p["errors"]:
                console.print(f"[red]{e}[/]")
    if result.get("rate"):
        r = result["rate"]
        console.print(f"Rate limit: {r['requests']:,} warehouse requests in {r['minutes']:g} min at {r['limit_per_minute']}/min: "
                      f"{r['used_pct']}% of the budget used, {r['answered_429']} answered 429 ({r['pct_429']}%)")
    if result.get("soak"):
        s = result["soak"]
        console.print(f"Soak: {s['merchants']} merchants for {s['minutes']:g} min, {s['orders_created']:,} orders created; RSS "
                      f"{s['rss_after_warm_up_mb']} MB after warm-up -> {s['rss_end_mb']} MB ({s['growth_pct']:+}%), "
                      f"CPU {s['cpu_pct_of_a_core']}% of a core")
        for e in s["failed"]:
            console.print(f"[red]{e}[/]")
    console.print("[bold]Targets[/] (the issue's; measured on this machine)")
    for t in result["targets"]:
        console.print(f"  {'[green]met[/]' if t['ok'] else '[red]missed[/]':<6} {t['target']}: {t['figure']}")
    console.print("[bold green]bench finished[/]" if result["ok"] else "[bold red]bench finished with problems (see above)[/]")
