"""The entry point: run the bench (or the soak) and return every figure as JSON-able data."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console

from connector.bench.figures import order_flow, targets
from connector.bench.options import BenchOptions
from connector.bench.phases import Bench, soak
from connector.bench.report import environment


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
    naive = result.get("baseline")
    naive_ok = naive is None or (not naive["failed"] and naive["posted"] == naive["created"] == naive["created_at_warehouse"])
    result["ok"] = (not errors and not result["queued_left"] and naive_ok
                    and (bool(options.rate_limit) or delivered == result["sendable"]))
    return result
