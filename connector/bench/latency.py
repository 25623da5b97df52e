"""The latency phase (`--phases latency`): how long an order takes from UltraCart's webhook to the
warehouse create, and a shipment from the warehouse's ship webhook to the tracking posted at
UltraCart, as the daemon runs them.

The connector runs in this process as `connector run` runs it: a Runtime, the daemon's scheduler
(`connector.scheduler.Daemon`) and the web app (`connector.web.build_app`) served by uvicorn on
loopback, its kicks wired to the scheduler. The sandboxes run in their own processes
(`connector.bench.stamps`, which stamps creates and tracking posts on the shared monotonic clock).

Two runs, each with fresh sandboxes and a fresh database:

- webhooks: the DEFAULT schedules (a poll alone would take minutes), the merchant's webhook
  credentials and `public_url` pointing at the listener, the UltraCart sandbox subscribed
  (`fulfillment_transmit`) to `/webhooks/ultracart/{merchant}`, ShipBob's shipment webhooks
  registered through the adapter as `connector webhooks register` does;
- poll-only: no subscriptions at all, the order and shipment services every `--latency-poll-s`
  seconds (the default schedules, 5 and 15 minutes, would make this run take half an hour; what
  they mean for the poll-only latency is stated beside it, not measured).

In each run: `--latency-events` orders queued one at a time at the UltraCart sandbox,
`--latency-gap-s` apart (queuing is what makes UltraCart send `fulfillment_transmit`): per order,
the time from that moment to the ShipBob sandbox storing the create. Then each order shipped at
ShipBob the same gap apart (which sends `order.shipped`): per order, the time to the shipments
post carrying it being answered by the UltraCart sandbox. p50 / p99 / max of each."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from connector.bench.harness import SandboxProcess
from connector.bench.idle import percentile
from connector.bench.options import SB_TOKEN, UC_KEY, BenchOptions, bench_config

HOOK_USER, DC = "bench-hooks", "DC1"
POLLED = ("order_download", "order_delivery", "shipment_upload")
WAIT_WEBHOOKS_S = 60.0  # at most, for the last create or tracking post to arrive after the last event
READY_MAX_S = 30.0


def spread(values: list[float]) -> dict[str, Any]:
    r = lambda v: None if v is None else round(v, 3)  # noqa: E731
    return {"n": len(values), "p50_s": r(percentile(values, 0.5)), "p99_s": r(percentile(values, 0.99)),
            "max_s": r(max(values) if values else None)}


def default_schedule_bounds() -> dict[str, float]:
    """What the default schedules promise without webhooks (seconds; from the config defaults)."""
    from connector.config import ScheduleConfig

    s = ScheduleConfig()
    # An order waits for the next download, then for the next delivery pass after it; a shipment
    # waits for the next shipments read. On average about half of each period.
    return {"order_download_s": s.order_download, "order_delivery_s": s.order_delivery, "shipment_upload_s": s.shipment_upload,
            "create_worst_s": s.order_download + s.order_delivery, "create_median_s": (s.order_download + s.order_delivery) / 2,
            "tracking_worst_s": s.shipment_upload, "tracking_median_s": s.shipment_upload / 2}


async def latency_phase(opts: BenchOptions) -> dict[str, Any]:
    from connector import logs

    logs.configure("console", "error")
    out: dict[str, Any] = {"events": opts.latency_events, "gap_s": opts.latency_gap_s, "latency_ms": opts.latency_ms,
                           "poll_s": opts.latency_poll_s, "default_schedule": default_schedule_bounds()}
    out["webhooks"] = await one_run(opts, webhooks=True)
    out["poll"] = await one_run(opts, webhooks=False)
    return out


class Run:
    """One run's sandboxes, connector (runtime, scheduler, listener) and clocks."""

    def __init__(self, opts: BenchOptions, webhooks: bool):
        self.opts, self.webhooks = opts, webhooks
        self.workdir = Path(tempfile.mkdtemp(prefix="connector-bench-latency-"))
        lat = ["--latency-ms", str(opts.latency_ms)]
        self.uc = SandboxProcess("ultracart", ["--api-key", UC_KEY, "--dcs", DC, *lat], self.workdir, module="connector.bench.stamps")
        self.sb = SandboxProcess("shipbob", ["--token", SB_TOKEN, *lat], self.workdir, module="connector.bench.stamps")
        self.http = httpx.AsyncClient(timeout=30, trust_env=False)
        self.merchant = ""
        self.rt: Any = None
        self.daemon: Any = None
        self.runner: asyncio.Task | None = None
        self.web: Any = None
        self.serving: asyncio.Task | None = None
        self.sock: Any = None

    async def control(self, sandbox: SandboxProcess, path: str, body: Any = None) -> Any:
        r = await (self.http.post(sandbox.url + path, json=body) if body is not None else self.http.get(sandbox.url + path))
        if r.status_code >= 400:
            raise RuntimeError(f"{sandbox.kind} {path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    async def open(self) -> list[str]:
        """Everything up and subscribed; returns what the registration said."""
        from connector.bench.idle import lag_daemon
        from connector.tokens import warehouse_secret, warehouse_url
        from connector.config import from_dict
        from connector.listener import bind, server
        from connector.runtime import build_runtime
        from connector.web import Daemon as WebDaemon
        from connector.web import build_app

        uc_url, sb_url = await asyncio.gather(self.uc.start(), self.sb.start())
        self.sock = bind("127.0.0.1:0")
        public = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        run_id = ("w" if self.webhooks else "p") + secrets.token_hex(2)
        config = bench_config(replace(self.opts, merchants=1, baseline=False), run_id, uc_url, sb_url, f"sqlite:///{self.workdir / 'latency.db'}")
        del config["daemon"]["delivery_concurrency"]  # the defaults, as a merchant's config has them
        config["daemon"]["public_url"] = public
        m = config["merchants"][0]
        del m["warehouse"]["rate_per_minute"]
        password = secrets.token_urlsafe(16)
        m["ultracart"] |= {"webhook_username": HOOK_USER, "webhook_password": password}
        if not self.webhooks:
            m["schedule"] = dict.fromkeys(POLLED, float(self.opts.latency_poll_s))
        self.merchant = m["id"]
        self.rt = await build_runtime(from_dict(config, file="<bench latency>"), worker_id=f"bench-latency-{os.getpid()}")
        self.daemon = lag_daemon(self.rt)
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        app = build_app(self.rt, WebDaemon(healthy=lambda: self.daemon.healthy, kick=self.daemon.kick))
        self.web = server(app, self.sock)
        self.serving = asyncio.get_running_loop().create_task(self.web.serve(sockets=[self.sock]), name="bench listener")
        while not self.web.started:
            if self.serving.done():
                self.serving.result()
            await asyncio.sleep(0.01)
        said: list[str] = []
        if self.webhooks:
            # What `connector webhooks register` does for the warehouse, and what a merchant sets in UltraCart.
            ctx = self.rt.contexts[self.merchant]
            url = await warehouse_url(self.rt.store, public, self.merchant, create=True)
            secret = await warehouse_secret(self.rt.store, self.merchant, create=True)
            self.rt.redactor.add(url.rsplit("/", 1)[-1], secret)  # masked in the call records, as register does
            said = await ctx.warehouse.register_webhooks(url, secret)
            await self.control(self.uc, "/_sandbox/webhooks", {"url": f"{public}/webhooks/ultracart/{self.merchant}",
                                                               "events": ["fulfillment_transmit"], "username": HOOK_USER,
                                                               "password": password})
        self.runner = asyncio.get_running_loop().create_task(self.daemon.run(), name="bench daemon")
        # The first round (every service once, staggered over about a second) done before the clock starts.
        from connector.config import SERVICES

        t0 = time.monotonic()
        while (len(self.daemon.started) < len(SERVICES) or self.daemon.running) and time.monotonic() - t0 < READY_MAX_S:
            if self.runner.done():
                self.runner.result()
            await asyncio.sleep(0.05)
        return said

    async def close(self) -> dict[str, Any]:
        problems: dict[str, Any] = {"failed": [], "raised": {}}
        try:
            if self.daemon is not None:
                self.daemon.request_stop()
            if self.runner is not None:
                await self.runner
            if self.web is not None:
                self.web.should_exit = True
                if self.serving is not None:
                    await asyncio.wait({self.serving}, timeout=5)
            if self.rt is not None:
                problems["failed"] = sorted(f"{r.merchant} {r.service}: {r.last_error}" for r in await self.rt.store.runs.listing()
                                            if r.last_error and r.last_outcome != "throttled")
                problems["raised"] = dict(self.daemon.errors) if self.daemon is not None else {}
                await self.rt.aclose()
        finally:
            await self.http.aclose()
            if self.sock is not None:
                self.sock.close()
            self.uc.stop()
            self.sb.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    async def stamps(self) -> tuple[dict[str, Any], dict[str, Any]]:
        uc, sb = await asyncio.gather(self.control(self.uc, "/_sandbox/stamps"), self.control(self.sb, "/_sandbox/stamps"))
        return sb["created"], uc["tracking"]

    async def until(self, done: Any, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """Poll the stamps (every 50 ms) until `done(created, tracking)` or `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            created, tracking = await self.stamps()
            if done(created, tracking) or time.monotonic() > deadline:
                return created, tracking
            await asyncio.sleep(0.05)


def bench_order(i: int) -> dict[str, Any]:
    """The i-th order: a happy-path sample order (`L000i-0001`) of the bench's UltraCart merchant."""
    from connector.sandbox.samples import demo_orders

    [order] = demo_orders(f"L{i + 1:04d}", 1, seed=i + 1, distribution_center=DC)
    order["merchant_id"] = "BENCH"  # the config's ultracart.merchant_id: the receiver refuses another merchant's orders
    return order


def reference_of(order_id: str, created: dict[str, Any]) -> str | None:
    """The warehouse reference the connector gave an UltraCart order (`{merchant}-{order_id}`)."""
    return next((ref for ref in created if ref == order_id or ref.endswith("-" + order_id)), None)


async def one_run(opts: BenchOptions, webhooks: bool) -> dict[str, Any]:
    run = Run(opts, webhooks)
    n, gap = opts.latency_events, opts.latency_gap_s
    out: dict[str, Any] = {"webhooks": webhooks,
                           "schedule_s": None if webhooks else opts.latency_poll_s}
    wait = WAIT_WEBHOOKS_S if webhooks else 3 * opts.latency_poll_s + WAIT_WEBHOOKS_S
    try:
        out["registered"] = await run.open()
        # Orders, one at a time, `gap` apart: queuing one is UltraCart sending its fulfillment_transmit.
        orders = [bench_order(i) for i in range(n)]
        sent: dict[str, float] = {}
        t0 = time.monotonic()
        for i, order in enumerate(orders):
            await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
            sent[order["order_id"]] = time.monotonic()
            await run.control(run.uc, f"/_sandbox/orders?dc={DC}", {"orders": [order]})
        created, _ = await run.until(lambda c, t: all(reference_of(o, c) for o in sent), wait)
        refs = {o: reference_of(o, created) for o in sent}
        create_s = [created[r]["at"] - sent[o] for o, r in refs.items() if r]
        # Then each order ships at ShipBob, `gap` apart: ShipBob sending its order.shipped.
        shipped: dict[str, float] = {}
        t0 = time.monotonic()
        for i, (order_id, ref) in enumerate((o, r) for o, r in refs.items() if r):
            await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
            shipped[order_id] = time.monotonic()
            await run.control(run.sb, "/_sandbox/ship", {"reference": ref})
        created, tracking = await run.until(lambda c, t: all(o in t for o in shipped), wait)
        tracking_s = [tracking[o]["at"] - shipped[o] for o in shipped if o in tracking]
        out |= {"create": spread(create_s), "tracking": spread(tracking_s),
                "created": sum(1 for r in refs.values() if r), "created_once": sum(1 for r in refs.values() if r and created[r]["attempts"] == 1),
                "tracked": len(tracking_s), "tracked_once": sum(1 for o in shipped if o in tracking and tracking[o]["posts"] == 1),
                "strays": sorted(set(created) - {r for r in refs.values() if r})[:10]}
        uc, sb = await asyncio.gather(run.control(run.uc, "/_sandbox/counters"), run.control(run.sb, "/_sandbox/counters"))
        out["requests"] = {f"{vendor} {k}": v for vendor, c in (("ultracart", uc), ("shipbob", sb)) for k, v in sorted(c["requests"].items()) if v}
        if webhooks:
            hooks = await run.control(run.uc, "/_sandbox/webhooks")
            out["ultracart_deliveries"] = {s: sum(1 for d in hooks["deliveries"] if d["status"] == s)
                                           for s in {d["status"] for d in hooks["deliveries"]}}
    finally:
        out |= await run.close()
    return out
