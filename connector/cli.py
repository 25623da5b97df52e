"""The `connector` command: the daemon, one-shot runs, config checks, the operator's view and
actions, and the demo. Exit codes: 0 ok, 1 something failed, 2 bad config or usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from connector import config as configmod
from connector import logs
from connector import operator as op
from connector.config import SERVICES, Config
from connector.errors import ConfigError, ConnectorError
from connector.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True, help="UltraCart order-flow connector: orders to the warehouse, tracking and stock back.")
# When piped (grep, scripts), never truncate columns to 80 characters.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 400)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = typer.Option(None, "-c", "--config", help="config file (else $CONNECTOR_CONFIG, else ./connector.toml)")
MerchantOpt = typer.Option(None, "--merchant", "-m", help="only this merchant")


def main() -> None:
    app()


def load_config(path: Optional[str]) -> Config:
    try:
        cfg = configmod.load(path)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/]: {exc}")
        raise typer.Exit(2) from None
    logs.configure(cfg.daemon.log_format, cfg.daemon.log_level)
    return cfg


def run_async(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_store(cfg: Config, fn: Callable[[Store], Awaitable[Any]]) -> Any:
    store = await Store.open(cfg.daemon.database_url)
    try:
        return await fn(store)
    finally:
        await store.close()


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    seconds = int((datetime.now(timezone.utc) - ts).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


# ----------------------------------------------------------------------------- daemon
@app.command()
def run(
    config: Optional[str] = ConfigOpt,
    once: bool = typer.Option(False, "--once", help="one pass of the services, then exit (0 when nothing failed)"),
    merchant: Optional[str] = MerchantOpt,
    service: Optional[str] = typer.Option(None, "--service", "-s", help="only this service: " + ", ".join(SERVICES)),
) -> None:
    """Run the daemon (or one pass with --once)."""
    cfg = load_config(config)
    if merchant and merchant not in {m.id for m in cfg.merchants}:
        err.print(f"unknown merchant {merchant!r}; configured: {', '.join(m.id for m in cfg.merchants)}")
        raise typer.Exit(2)
    if service and service not in SERVICES:
        err.print(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    if once:
        raise typer.Exit(run_async(_run_once(cfg, merchant, service)))
    run_async(_daemon(cfg))


async def open_runtime(cfg: Config):
    from connector.runtime import Runtime
    from connector.store.engine import DatabaseBusy

    try:
        return await Runtime.open(cfg)
    except DatabaseBusy as exc:
        err.print(f"[bold red]cannot start[/]: {exc}")
        raise typer.Exit(2) from None


async def _run_once(cfg: Config, merchant: str | None, service: str | None) -> int:
    rt = await open_runtime(cfg)
    try:
        results = await rt.run_once(merchant, service)
    finally:
        await rt.aclose()
    failed = 0
    for r in results:
        counts = ", ".join(f"{k}={v}" for k, v in r.summary.items() if v) or "nothing to do"
        mark = "ok" if r.ok and not r.error else ("FAILED" if not r.ok else "partial")
        failed += not r.ok
        out.print(f"{r.merchant:<16} {r.service:<17} {mark:<7} {counts}" + (f"  [{r.error}]" if r.error else ""))
    return 1 if failed else 0


async def _daemon(cfg: Config) -> None:
    import uvicorn

    from connector.scheduler import Daemon
    from connector.web import build_app, parse_listen

    rt = await open_runtime(cfg)
    daemon = Daemon(rt)
    daemon.install_signal_handlers()
    host, port = parse_listen(cfg.daemon.listen)
    server = uvicorn.Server(uvicorn.Config(build_app(rt, lambda: daemon.healthy), host=host, port=port, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the daemon owns the signals
    web = asyncio.create_task(server.serve())
    try:
        await daemon.run()
    finally:
        server.should_exit = True
        await asyncio.wait({web}, timeout=2)
        await rt.aclose()


# ----------------------------------------------------------------------------- config
@app.command()
def check(config: Optional[str] = ConfigOpt, online: bool = typer.Option(False, "--online", help="also test each merchant's credentials and DC")) -> None:
    """Validate the config file (and, with --online, every merchant's credentials)."""
    cfg = load_config(config)
    out.print(f"{cfg.source}: ok ({len(cfg.merchants)} merchant(s))")
    if online:
        raise typer.Exit(run_async(_check_online(cfg)))


async def _check_online(cfg: Config) -> int:
    from adapters.base import AdapterContext
    from adapters.ultracart import UltraCartClient

    bad = 0
    for m in cfg.merchants:
        uc = m.ultracart
        client = UltraCartClient(uc.base_url, uc.api_key, uc.distribution_center)
        try:
            dcs = await client.distribution_centers()
            codes = [d.code for d in dcs]
            if uc.distribution_center in codes:
                out.print(f"{m.id}: UltraCart ok, distribution center {uc.distribution_center} found")
            else:
                bad += 1
                out.print(f"{m.id}: UltraCart distribution center {uc.distribution_center!r} not found; this key sees: {', '.join(codes) or 'none'}")
        except ConnectorError as exc:
            bad += 1
            out.print(f"{m.id}: UltraCart FAILED: {exc}")
        finally:
            await client.aclose()
        adapter = m.adapter_class(m.warehouse_settings, AdapterContext(merchant=m.id))
        try:
            out.print(f"{m.id}: warehouse ({adapter.name}) ok: {await adapter.check()}")
        except ConnectorError as exc:
            bad += 1
            out.print(f"{m.id}: warehouse ({adapter.name}) FAILED: {exc}")
        finally:
            await adapter.aclose()
    return 1 if bad else 0


# ----------------------------------------------------------------------------- operator view
@app.command()
def status(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Per merchant: last run of each service, orders by state, holds by reason, failures."""
    cfg = load_config(config)
    run_async(with_store(cfg, lambda s: _status(s, cfg, merchant)))


async def _status(store: Store, cfg: Config, merchant: str | None) -> None:
    runs = await store.service_runs(merchant)
    counts = await store.counts_by_state(merchant)
    holds = await store.reasons("held", merchant)
    failed = await store.list_orders(state="failed", merchant=merchant, limit=20)
    tasks_failed = [t for t in await store.list_tasks(merchant, state="failed")]
    orphans = await store.list_shipments(merchant, state="orphan")
    merchants = [merchant] if merchant else sorted({m.id for m in cfg.merchants} | {m for m, _ in counts})
    for m in merchants:
        out.rule(f"[bold]{m}")
        t = Table("service", "last run", "last success", "state", box=None)
        for r in [r for r in runs if r.merchant == m]:
            state = "paused: " + r.pause_reason if r.paused_until and r.paused_until > datetime.now(timezone.utc) else (r.last_error or "ok")
            if r.note:
                state = r.note
            t.add_row(r.service, ago(r.last_finished_at), ago(r.last_success_at), state)
        out.print(t)
        by_state = {s: n for (mm, s), n in counts.items() if mm == m}
        out.print("orders: " + (", ".join(f"{s} {n}" for s, n in sorted(by_state.items())) or "none"))
        for (mm, reason), n in sorted(holds.items()):
            if mm == m:
                out.print(f"  held {n:>5}  {reason}")
        for row in [f for f in failed if f.merchant == m]:
            out.print(f"  failed {row.order_id}: {row.last_error or row.reason}")
        for task in [t for t in tasks_failed if t.merchant == m]:
            out.print(f"  {task.kind} failed for {task.key}: {task.last_error}")
        for s in [o for o in orphans if o.merchant == m]:
            out.print(f"  shipment {s.shipment_id} for unknown order {s.reference}")


@app.command()
def orders(config: Optional[str] = ConfigOpt, state: Optional[str] = typer.Option(None, "--state"), merchant: Optional[str] = MerchantOpt,
           limit: int = typer.Option(200, "--limit")) -> None:
    """List orders (optionally of one state or merchant)."""
    cfg = load_config(config)
    rows = run_async(with_store(cfg, lambda s: s.list_orders(state=state, merchant=merchant, limit=limit)))
    t = Table("merchant", "order", "state", "attempts", "warehouse id", "updated", "reason / last error", box=None)
    for r in rows:
        t.add_row(r.merchant, r.order_id, r.state, str(r.attempts), r.warehouse_order_id, ago(r.updated_at), r.reason or r.last_error)
    out.print(t)


@app.command()
def order(order_id: str, config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """One order: where it is, and its timeline."""
    cfg = load_config(config)

    async def show(store: Store) -> int:
        rows = await store.find_orders(order_id, merchant)
        if not rows:
            err.print(f"no order {order_id}")
            return 1
        for r in rows:
            out.rule(f"{r.merchant} {r.order_id}")
            out.print(f"state {r.state}" + (f" ({r.reason})" if r.reason else "") + f"; reference {r.reference}; warehouse id {r.warehouse_order_id or '-'}")
            out.print(f"received {r.received_at:%Y-%m-%d %H:%M:%S}Z via {r.source}; acknowledged {'yes' if r.acked_at else 'not yet'}; attempts {r.attempts}")
            if r.last_error:
                out.print(f"last error: {r.last_error}")
            t = Table("when (UTC)", "from", "to", "by", "why", box=None)
            for e in await store.timeline(r.id):
                t.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.from_state, e.to_state, e.actor, e.reason + (f" [request {e.request_id}]" if e.request_id else ""))
            out.print(t)
            for s in (await store.shipments_of_orders([r.id]))[r.id]:
                out.print(f"shipment {s.shipment_id}: {s.state} {s.tracking} {s.reason}")
        return 0

    raise typer.Exit(run_async(with_store(cfg, show)))


@app.command()
def events(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt, order_id: Optional[str] = typer.Option(None, "--order"),
           limit: int = typer.Option(50, "--limit"), full: bool = typer.Option(False, "--full", help="print the (redacted) bodies")) -> None:
    """The event log: vendor calls (and webhooks), newest last, bodies redacted."""
    cfg = load_config(config)
    rows = run_async(with_store(cfg, lambda s: s.events_log(merchant=merchant, order_id=order_id, limit=limit)))
    for e in rows:
        out.print(f"{e.at:%Y-%m-%d %H:%M:%S} {e.merchant} {e.kind} {e.method} {e.url} -> {e.status or e.error} "
                  f"{e.duration_ms or 0:.0f}ms" + (f" [request {e.request_id}]" if e.request_id else ""))
        if full:
            if e.request_body:
                out.print("  request: " + e.request_body[:4000])
            if e.response_body:
                out.print("  response: " + e.response_body[:4000])


@app.command()
def alerts(config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
           state: Optional[str] = typer.Option("open", "--state", help="open, resolved, or all"),
           resolve: Optional[str] = typer.Option(None, "--resolve", help="close CATEGORY or CATEGORY:KEY (with --merchant)")) -> None:
    """Alerts raised (deduplicated): what, how often, since when, whether e-mailed."""
    cfg = load_config(config)

    async def go(store: Store) -> int:
        if resolve:
            category, _, key = resolve.partition(":")
            n = await store.resolve_alerts(merchant or "", category, key or None)
            out.print(f"resolved {n} alert(s)")
            return 0 if n else 1
        rows = await store.list_alerts(merchant, None if state == "all" else state)
        t = Table("merchant", "category", "key", "times", "first", "last", "e-mailed", "detail", box=None)
        for a in rows:
            t.add_row(a.merchant or "-", a.category, a.key, str(a.count), ago(a.first_at), ago(a.last_at),
                      ago(a.sent_at) if a.sent_at else "not yet", a.message[:200])
        out.print(t)
        return 0

    raise typer.Exit(run_async(with_store(cfg, go)))


# ----------------------------------------------------------------------------- operator actions
def _act(config: Optional[str], action: Callable[[Store], Awaitable[list[op.ActionResult]]]) -> None:
    cfg = load_config(config)
    try:
        results = run_async(with_store(cfg, action))
    except op.AmbiguousOrder as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    for r in results:
        out.print(f"{r.merchant} {r.order_id}: {r.message}")
    raise typer.Exit(0 if results and all(r.ok for r in results) else 1)


def _each(ids: list[str], fn, merchant, **kw) -> Callable[[Store], Awaitable[list[op.ActionResult]]]:
    async def go(store: Store) -> list[op.ActionResult]:
        res: list[op.ActionResult] = []
        for i in ids:
            res += await fn(store, i, merchant, **kw)
        return res
    return go


@app.command()
def release(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Release held orders (re-checked and sent on the next delivery pass)."""
    _act(config, _each(order_ids, op.release, merchant))


@app.command()
def retry(order_ids: Optional[list[str]] = typer.Argument(None), config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
          all_failed: bool = typer.Option(False, "--all-failed", help="every failed order")) -> None:
    """Put failed orders back in the queue with fresh attempts."""
    if all_failed:
        _act(config, lambda s: op.retry_all_failed(s, merchant))
    if not order_ids:
        err.print("name order ids or use --all-failed")
        raise typer.Exit(2)
    _act(config, _each(order_ids, op.retry, merchant))


@app.command()
def skip(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
         reason: str = typer.Option("", "--reason", help="recorded in the timeline")) -> None:
    """Never send these orders (recorded with your reason)."""
    _act(config, _each(order_ids, op.skip, merchant, reason=reason))


@app.command()
def hold(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt,
         reason: str = typer.Option("", "--reason", help="recorded in the timeline")) -> None:
    """Hold orders until released."""
    _act(config, _each(order_ids, op.hold, merchant, reason=reason))


@app.command("resend-tracking")
def resend_tracking(order_ids: list[str], config: Optional[str] = ConfigOpt, merchant: Optional[str] = MerchantOpt) -> None:
    """Post these orders' tracking to UltraCart again (on the next shipment pass)."""
    _act(config, _each(order_ids, op.resend_tracking, merchant))


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(orders_count: int = typer.Option(50, "--orders", help="how many sample orders"),
         warehouse: str = typer.Option("shipbob", "--warehouse", help="which warehouse adapter's sandbox to use"),
         as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Run every service against local sandboxes with sample orders; no config, no network."""
    from connector.demo import run_demo
    from connector.sandbox.kits import KITS

    if warehouse not in KITS:
        err.print(f"no sandbox for warehouse {warehouse!r}; available: {', '.join(sorted(KITS))}")
        raise typer.Exit(2)
    logs.configure("console", "error")
    summary = run_async(run_demo(orders_count, warehouse))
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        from connector.demo import print_summary

        print_summary(summary, out)
    raise typer.Exit(0 if summary["ok"] else 1)


# ----------------------------------------------------------------------------- bench
@app.command()
def bench(
    orders_count: int = typer.Option(10_000, "--orders", help="orders queued at the UltraCart sandbox"),
    skus: int = typer.Option(50_000, "--skus", help="SKUs in the warehouse catalog (inventory phases)"),
    merchants: int = typer.Option(1, "--merchants", help="merchants the orders are spread over"),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="added to every sandbox reply"),
    rate_limit: int = typer.Option(0, "--rate-limit", help="warehouse requests per minute (0 = unlimited)"),
    rate_minutes: float = typer.Option(2.0, "--rate-minutes", help="with --rate-limit: how long the delivery phase runs"),
    concurrency: int = typer.Option(8, "--concurrency", help="creates in flight per merchant"),
    store: Optional[str] = typer.Option(None, "--store", help="database URL (default: a temporary SQLite file)"),
    soak_minutes: float = typer.Option(0.0, "--soak-minutes", help="also run every merchant on 1-minute schedules this long and report RSS growth"),
    json_path: Optional[str] = typer.Option(None, "--json", help="also write the figures to this file"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """The performance benchmark: sandboxes in their own processes, figures per phase."""
    from connector.bench import BenchOptions, print_bench, run_bench, write_json

    logs.configure("console", "error")
    options = BenchOptions(orders=orders_count, skus=skus, merchants=merchants, latency_ms=latency_ms, rate_limit=rate_limit,
                           rate_minutes=rate_minutes, concurrency=concurrency, store=store, soak_minutes=soak_minutes, progress=progress)
    result = run_async(run_bench(options, out))
    print_bench(result, out)
    if json_path:
        write_json(result, json_path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
