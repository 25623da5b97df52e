"""The derived figures: the fewest vendor requests and round trips the APIs allow for what a
phase moved, the download + delivery figures, and the issue's targets with this run's figures."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from connector.bench.options import ACK, CATALOG_SIZE, FETCH, INVENTORY_POST, PAGE, TRACKING_POST, WAREHOUSE_ACK, pages, split

if TYPE_CHECKING:
    from connector.bench.phases import Bench


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
    naive = result.get("baseline")
    if flow and naive and naive.get("cpu_ms_per_order") and flow.get("cpu_ms_per_order"):
        ratio = flow["cpu_ms_per_order"] / naive["cpu_ms_per_order"]
        add(f"<= 0.5x the naive loop's CPU per order ({naive['client']}), same queue, same run",
            f"{flow['cpu_ms_per_order']} / {naive['cpu_ms_per_order']} ms = {ratio:.2f}x", ratio <= 0.5)
    if flow and o["latency_ms"] and not o["rate_limit"]:
        bound = phases[0]["lower_bound_s"] + phases[1]["lower_bound_s"]
        add("drain: download + delivery <= 1.5x the round-trip bound", f"{flow['wall_s']:.1f} s / {bound:.1f} s = {flow['wall_s'] / bound:.2f}x",
            flow["wall_s"] <= 1.5 * bound)
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
    if result.get("startup"):
        from connector.bench.startup import TARGET_S

        for name in ("connector --help", "connector check"):
            c = result["startup"]["commands"][name]
            add(f"`{name}` <= {TARGET_S} s CPU (child process, median of {result['startup']['repeats']})", f"{c['cpu_s']} s", c["cpu_s"] <= TARGET_S)
    if result.get("idle"):
        i = result["idle"]
        add(f"{i['merchants']:,} idle merchants: < 5% of one core ({i['window_s']:g} s window)", f"{i['cpu_pct_of_a_core']}%",
            i["cpu_pct_of_a_core"] < 5)
        peak = max(i["peak_rss_mb"], i["rss_end_mb"])
        add(f"{i['merchants']:,} idle merchants: < 300 MB RSS", f"{peak} MB", peak < 300)
        lags = [x for x in (i["lag_p99_s"], i["warm_up"]["lag_p99_s"]) if x is not None]
        add(f"{i['merchants']:,} idle merchants: schedule lag p99 < 1 s (warm-up and window)",
            f"window {i['lag_p99_s']} s ({i['passes']} passes), warm-up {i['warm_up']['lag_p99_s']} s ({i['warm_up']['passes']} passes)",
            bool(lags) and max(lags) < 1)
    if result.get("latency"):
        lat = result["latency"]
        w, p = lat["webhooks"], lat["poll"]
        sent = f"{lat['events']} orders {lat['gap_s']:g} s apart, latency {lat['latency_ms']:g} ms"

        def fig(path: dict[str, Any], key: str) -> str:
            return f"{path[key]} s" if path[key] is not None else "none arrived"

        def poll(path: str) -> str:
            return f"(poll-only every {p['schedule_s']:g} s: {fig(p[path], 'p50_s')} / {fig(p[path], 'max_s')})"

        c, t = w["create"], w["tracking"]
        add(f"order webhook -> warehouse create <= 2 s worst case ({sent})", f"max {fig(c, 'max_s')} {poll('create')}",
            c["max_s"] is not None and c["n"] == lat["events"] and c["max_s"] <= 2)
        add(f"order webhook -> warehouse create <= 0.5 s median ({sent})", f"p50 {fig(c, 'p50_s')}",
            c["p50_s"] is not None and c["n"] == lat["events"] and c["p50_s"] <= 0.5)
        add(f"warehouse ship webhook -> tracking posted <= 5 s worst case ({sent})", f"max {fig(t, 'max_s')} {poll('tracking')}",
            t["max_s"] is not None and t["n"] == lat["events"] and t["max_s"] <= 5)
    if result.get("soak"):
        s = result["soak"]
        add("RSS growth < 10% after warm-up (soak)", f"{s['growth_pct']}%", s["growth_pct"] < 10)
    return out
