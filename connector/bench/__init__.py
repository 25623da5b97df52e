"""`connector bench`: the connector's throughput, CPU, memory and vendor-request economy, measured
against the loopback sandboxes.

The sandboxes run in child processes (`python -m connector.sandbox.serve`), so the CPU and memory
figures are the connector's alone; the connector runs in this process exactly as the daemon does
(a Runtime on a SQLite file, or `--store URL`). Phases, each measured on its own:

    download   N orders from the UltraCart queue (fetch <= 100, store, acknowledge)
    delivery   rules + mapping + one ShipBob create per order (bounded by --rate-minutes with --rate-limit)
    shipments  ShipBob shipments -> tracking posted to UltraCart -> flagged uploaded at ShipBob
    inventory  K SKUs of stock, first a full push, then again after 1% of them changed

(`--phases orders`), and besides them:

    --baseline   the naive loop (read the queue, acknowledge, one ShipBob post per order) on an
                 identical copy of the queue, and the connector/naive CPU-per-order ratio
    startup      CPU of a fresh `connector --help` and `connector check` (in the default phases)
    idle         N merchants with their own credentials on default schedules (`--phases idle`)
    latency      order webhook -> warehouse create and warehouse ship webhook -> tracking posted,
                 p50/p99/max over `--latency-events` sent `--latency-gap-s` apart, the daemon's
                 scheduler on default schedules; beside the same without webhooks, polled every
                 `--latency-poll-s` (`--phases latency`)
    --profile    cProfile of download + delivery (and the idle window)

Per phase: wall time, items per second, connector CPU ms per item (`time.process_time`, every
thread of this process), peak RSS (VmHWM, reset per phase through /proc/self/clear_refs), the
vendor requests made (the sandboxes' counters) against the minimum the APIs allow, and wall time
against the round-trip lower bound for the latency. See `figures.minimum_requests` and
`figures.round_trips`.

Modules: `options` (what was asked, the bench config), `harness` (sandbox processes, `Measure`,
profiles), `phases` (the order phases and the soak), `baseline` (the naive loop), `startup`,
`idle`, `keys` (the UltraCart sandbox with a key per merchant), `latency`, `stamps` (the
sandboxes stamping creates and tracking posts), `figures` (derived figures, targets), `report`
(printing, JSON), `run` (the entry point). Names are loaded on first use, so importing the
package costs nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "BenchOptions": "options", "bench_config": "options", "split": "options", "chunks": "options", "sendable_orders": "options",
    "SandboxProcess": "harness", "Measure": "harness",
    "Bench": "phases", "soak": "phases",
    "minimum_requests": "figures", "round_trips": "figures", "finish": "figures", "order_flow": "figures", "targets": "figures",
    "environment": "report", "write_json": "report", "print_bench": "report",
    "run_bench": "run",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'connector.bench' has no attribute {name!r}")
    value = getattr(import_module(f"connector.bench.{module}"), name)
    globals()[name] = value
    return value
