"""`connector demo`, `connector sandbox` and `connector bench`: the product against its loopback
simulators, with no config, no network and no credentials."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from connector.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run_async
from connector.cli.output import emit_json, fail, say


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(sandbox)
    app.command()(bench)


def _kit_names() -> list[str]:
    from connector.sandbox.kits import KITS

    return sorted(KITS)


def demo(orders_count: int = typer.Option(50, "--orders", help="how many sample orders"),
         warehouse: str = typer.Option("shipbob", "--warehouse", help="which warehouse adapter's sandbox to use"),
         keep: Optional[Path] = typer.Option(None, "--keep", help="keep the demo's config and database in this folder"),
         ledger: str = typer.Option("", "--ledger", help="also consume the shipped orders' stock in this inventory ledger's sandbox (aligni)"),
         as_json: bool = typer.Option(False, "--json", help="print the summary as JSON")) -> None:
    """Run every service against local sandboxes with sample orders; no config, no network."""
    from connector import logs
    from connector.demo import LEDGERS, print_summary, run_demo

    if warehouse not in _kit_names():
        fail(f"no sandbox for warehouse {warehouse!r}; available: {', '.join(_kit_names())}")
        raise typer.Exit(EXIT_USAGE)
    if ledger and ledger not in LEDGERS:
        fail(f"no sandbox for ledger {ledger!r}; available: {', '.join(LEDGERS)}")
        raise typer.Exit(EXIT_USAGE)
    logs.configure("console", "error")
    summary = run_async(run_demo(orders_count, warehouse, keep.resolve() if keep else None, ledger))
    if as_json:
        emit_json(summary)
    else:
        print_summary(summary, say)
    raise typer.Exit(EXIT_OK if summary["ok"] else EXIT_FAILED)


def sandbox(warehouse: str = typer.Option("shipbob", "--warehouse", help="which warehouse adapter's sandbox"),
            orders_count: int = typer.Option(20, "--orders", help="orders queued at start"),
            folder: Path = typer.Option(Path("connector-sandbox"), "--dir", help="where the config (and the database) go")) -> None:
    """Serve the UltraCart and warehouse simulators with a ready config until Ctrl-C."""
    from connector.playground import Playground

    if warehouse not in _kit_names():
        fail(f"no sandbox for warehouse {warehouse!r}; available: {', '.join(_kit_names())}")
        raise typer.Exit(EXIT_USAGE)
    play = Playground(folder.resolve(), warehouse=warehouse, orders=orders_count)
    for line in play.describe():
        say(line)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        play.stop()
        say("sandboxes stopped")


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
    baseline: bool = typer.Option(False, "--baseline", help="also run a naive script-like loop on the same queue and compare CPU per order"),
    baseline_client: str = typer.Option("auto", "--baseline-client", help="the naive loop's UltraCart client: auto (the SDK when installed), sdk, httpx"),
    phases: str = typer.Option("orders,startup", "--phases", help="comma separated: orders (download, delivery, shipments, inventory), startup, idle, latency"),
    idle_merchants: int = typer.Option(1000, "--idle-merchants", help="idle phase: merchants, each with its own credentials"),
    idle_seconds: float = typer.Option(60.0, "--idle-seconds", help="idle phase: the measured window after the first round of passes"),
    latency_events: int = typer.Option(20, "--latency-events", help="latency phase: orders sent through the webhooks (then shipped), one at a time"),
    latency_gap_s: float = typer.Option(0.5, "--latency-gap-s", help="latency phase: seconds between two orders (and two shipments)"),
    latency_poll_s: float = typer.Option(10.0, "--latency-poll-s", help="latency phase, poll-only run: the order and shipment schedules (seconds)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="cProfile download + delivery (and the idle window, FILE.idle) into FILE; print the top 15"),
) -> None:
    """The performance benchmark: sandboxes in their own processes, figures per phase."""
    from connector import logs
    import sys

    from rich.console import Console

    from connector.bench import BenchOptions, print_bench, run_bench, write_json

    out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 400)

    logs.configure("console", "error")
    options = BenchOptions(orders=orders_count, skus=skus, merchants=merchants, latency_ms=latency_ms, rate_limit=rate_limit,
                           rate_minutes=rate_minutes, concurrency=concurrency, store=store, soak_minutes=soak_minutes, progress=progress,
                           baseline=baseline, baseline_client=baseline_client, phases=phases, idle_merchants=idle_merchants,
                           idle_seconds=idle_seconds, latency_events=latency_events, latency_gap_s=latency_gap_s,
                           latency_poll_s=latency_poll_s, profile=profile)
    try:
        options.phase_groups
    except ValueError as exc:
        fail(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    result = run_async(run_bench(options, out))
    print_bench(result, out)
    if json_path:
        write_json(result, json_path)


__all__ = ["register", "json"]
