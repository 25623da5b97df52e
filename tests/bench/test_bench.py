"""`connector bench` through the real process on a small run: every figure is printed and the
JSON has every key. Nothing is timed here: the figures depend on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
import pytest

pytestmark = pytest.mark.slow  # soak, replicas and bench: CI runs them; `pytest -m 'not slow'` skips them locally

CMD = [sys.executable, "-m", "connector", "bench", "--no-progress"]
PHASES = ("download", "delivery", "shipments", "inventory", "inventory 1%")
PHASE_KEYS = {"name", "unit", "items", "wall_s", "per_second", "cpu_s", "cpu_ms", "cpu_ms_per_item", "peak_rss_mb", "sandbox_cpu_s",
              "requests", "requests_min", "requests_total", "requests_min_total", "round_trips_min", "lower_bound_s",
              "vs_lower_bound", "summaries", "errors"}


def bench(tmp_path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(CMD + [*args, "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_small_run_prints_every_figure_and_writes_every_key(tmp_path):
    text, data = bench(tmp_path, "--orders", "200", "--skus", "100", "--merchants", "2", "--baseline", "--baseline-client", "httpx")
    for phase in PHASES:
        assert f"\n {phase} " in text, phase
    for column in ("items", "wall s", "per s", "CPU ms/item", "peak RSS MB", "requests (min)", "round-trip bound s", "wall/bound", "sandbox CPU s"):
        assert column in text, column
    assert "Download + delivery:" in text and "orders/s" in text and "ms CPU per order" in text
    assert "Vendor requests against the minimum the APIs allow" in text
    for endpoint in ("ultracart fetch", "ultracart ack", "shipbob POST /order", "ultracart shipments", "ultracart inventory",
                     "shipbob GET /inventory-level/locations"):
        assert endpoint in text, endpoint
    assert "quantity pipeline" in text and "Targets" in text and "bench finished" in text

    assert [p["name"] for p in data["phases"]] == list(PHASES)
    for p in data["phases"]:
        assert PHASE_KEYS <= set(p), PHASE_KEYS - set(p)
        assert p["requests_total"] >= p["requests_min_total"], p["name"]
    assert {"changed", "quantity_pipeline_s"} <= set(data["phases"][-1])
    assert {"orders", "wall_s", "per_second", "cpu_ms_per_order", "peak_rss_mb"} <= set(data["order_flow"])
    assert data["targets"] and all({"target", "figure", "ok"} <= set(t) for t in data["targets"])
    assert {"options", "environment", "queued_left", "sendable", "ok"} <= set(data)
    # Nothing lost on the way: every queued order acknowledged, every sendable one created.
    assert data["ok"] and data["queued_left"] == 0 and data["phases"][1]["items"] == data["sendable"] == 190
    # The naive loop ran on its own copy of the same 200 orders: all acknowledged, each with an
    # address created once, and its CPU per order sits beside the connector's in the targets.
    naive = data["baseline"]
    assert naive["client"] == "httpx" and naive["orders"] == naive["acknowledged_at_ultracart"] == 200
    assert naive["created"] == naive["posted"] == naive["created_at_warehouse"] == naive["requests"]["shipbob POST /order"] == 198
    assert naive["failed"] == 0 and naive["skipped"] == 2 and naive["cpu_ms_per_order"] > 0
    assert "Naive loop (httpx, same queue): 200 orders" in text
    row = next(t for t in data["targets"] if "naive loop" in t["target"])
    ratio = data["order_flow"]["cpu_ms_per_order"] / naive["cpu_ms_per_order"]
    assert row["figure"].endswith(f"= {ratio:.2f}x") and row["ok"] == (ratio <= 0.5)


def test_latency_and_rate_limit_figures(tmp_path):
    text, data = bench(tmp_path, "--orders", "40", "--skus", "0", "--latency-ms", "5", "--rate-limit", "30", "--rate-minutes", "0.1")
    assert "Rate limit:" in text and "answered 429" in text
    assert {"limit_per_minute", "minutes", "requests", "answered_429", "used_pct", "pct_429"} <= set(data["rate"])
    assert data["phases"][0]["lower_bound_s"] > 0 and data["phases"][0]["vs_lower_bound"] is not None
    assert any("round-trip lower bound" in t["target"] for t in data["targets"])


def test_drain_time_is_compared_with_the_round_trip_bound(tmp_path):
    text, data = bench(tmp_path, "--orders", "40", "--skus", "0", "--latency-ms", "5")
    row = next(t for t in data["targets"] if t["target"].startswith("drain:"))
    dl, de = data["phases"][0], data["phases"][1]
    bound = dl["lower_bound_s"] + de["lower_bound_s"]
    ratio = data["order_flow"]["wall_s"] / bound
    assert bound > 0 and row["figure"].endswith(f"= {ratio:.2f}x") and row["ok"] == (ratio <= 1.5)
    assert "drain: download + delivery" in text


def test_soak_reports_rss_growth(tmp_path):
    text, data = bench(tmp_path, "--orders", "0", "--skus", "20", "--merchants", "2", "--soak-minutes", "0.2")
    assert "Soak:" in text and "after warm-up" in text
    assert {"minutes", "merchants", "rss_after_warm_up_mb", "rss_end_mb", "growth_pct", "cpu_pct_of_a_core", "rss_samples_mb"} <= set(data["soak"])
