"""What `connector bench` was asked for, the constants it works with, and the bench merchants'
config (the same shape a merchant's `connector.toml` has)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

UC_KEY, SB_TOKEN = "bench-ultracart-key", "bench-warehouse-token"
SHIP_METHODS = {"USPS: Priority Mail": "Standard", "UPS: Ground": "Standard", "FedEx: 2Day": "2-Day"}
CATALOG_SIZE = 6  # the sample catalog in the ShipBob sandbox (connector.sandbox.serve.CATALOG)
# The APIs' batch limits: the minimum requests follow from them.
FETCH, ACK, TRACKING_POST, INVENTORY_POST, PAGE, WAREHOUSE_ACK = 100, 100, 100, 500, 250, 100
UNLIMITED_RATE = 1_000_000.0  # the adapter's limiter must not pace a sandbox that has no limit
BASELINE_DC = "BASE"
# orders: download, delivery, shipments, inventory (and --baseline); startup: CPU of `connector
# --help` / `check`; idle: --idle-merchants on default schedules for --idle-seconds; latency:
# webhook -> create and ship webhook -> tracking, beside the poll-only figures (latency.py).
PHASE_GROUPS = ("orders", "startup", "idle", "latency")  # the naive loop's own copy of the queue


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
    baseline: bool = False  # also run the naive loop (baseline.py) on the same queue
    baseline_client: str = "auto"  # auto (the SDK when installed) | sdk | httpx
    phases: str = "orders,startup"  # comma separated, of PHASE_GROUPS
    idle_merchants: int = 1000
    idle_seconds: float = 60.0
    latency_events: int = 20  # latency phase: orders sent (and then shipped) one at a time
    latency_gap_s: float = 0.5  # latency phase: between two of them
    latency_poll_s: float = 10.0  # latency phase, poll-only run: the order and shipment schedules
    profile: str | None = None  # cProfile download + delivery (and the idle window) into this file; inflates their CPU

    @property
    def phase_groups(self) -> list[str]:
        groups = [p.strip() for p in self.phases.split(",") if p.strip()]
        unknown = sorted(set(groups) - set(PHASE_GROUPS))
        if unknown or not groups:
            raise ValueError(f"unknown phase(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PHASE_GROUPS)}")
        return groups

    @property
    def accounts(self) -> int:
        """ShipBob accounts: one per merchant, and the naive loop's own (the last) with --baseline."""
        return self.merchants + (1 if self.baseline else 0)



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


def bench_config(opts: BenchOptions, run: str, uc_url: str, sb_url: str, db_url: str, schedule: str | None = None,
                 own_keys: bool = False) -> dict[str, Any]:
    """`own_keys`: every merchant its own UltraCart key (`UC_KEY-i`, which `connector.bench.keys` accepts)."""
    merchants = []
    for i in range(opts.merchants):
        m: dict[str, Any] = {
            "id": f"{run}-{i + 1}",
            "ultracart": {"merchant_id": "BENCH", "api_key": f"{UC_KEY}-{i}" if own_keys else UC_KEY, "distribution_center": f"DC{i + 1}", "base_url": uc_url},
            "warehouse": {"adapter": "shipbob", "base_url": f"{sb_url}/a{i}", "channel_id": 1,
                          "token": SB_TOKEN if opts.accounts == 1 else f"{SB_TOKEN}-{i}",
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
