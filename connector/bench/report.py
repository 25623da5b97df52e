"""What a bench run prints, and its JSON."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # "uvloop" or "asyncio"
    except RuntimeError:
        loop = ""
    return {"commit": commit, "python": platform.python_version(), "cpus": os.cpu_count(), "event_loop": loop,
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
    console.print(f"phases {o['phases']}; {o['orders']:,} orders, {o['skus']:,} SKUs, {o['merchants']} merchant(s), latency {o['latency_ms']:g} ms, "
                  f"warehouse rate limit {o['rate_limit'] or 'none'}/min, concurrency {o['concurrency']}; "
                  f"sandboxes in their own processes; commit {result['environment']['commit'] or '?'}, "
                  f"load average {result['environment']['load_average'][0]}, event loop {result['environment'].get('event_loop') or '?'}")
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
        if result.get("baseline"):
            b = result["baseline"]
            console.print(f"Naive loop ({b['client']}, same queue): {b['orders']:,} orders in {b['wall_s']:.2f} s = "
                          f"{b['per_second']:,.0f} orders/s, {b['cpu_ms_per_order']} ms CPU per order; {b['created']:,} created, "
                          f"{b['skipped']} skipped (no address), {b['failed']} failed; sandbox CPU {b['sandbox_cpu_s']:.1f} s")
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
    for what, profile in (("download + delivery", result.get("profile")), ("idle window", (result.get("idle") or {}).get("profile"))):
        if profile:
            t = Table("function", "calls", "own s", "cumulative s", box=None, title_justify="left",
                      title=f"Profile of {what}: top {len(profile['top'])} by own time, of {profile['total_s']} s in the event-loop thread (wall clock: "
                            f"epoll's poll is waiting for the sandboxes) "
                            f"(cProfile inflates the CPU figures above; full stats: {profile['file']})")
            for row in profile["top"]:
                t.add_row(row["function"], f"{row['calls']:,}", f"{row['own_s']:.3f}", f"{row['cumulative_s']:.3f}")
            console.print(t)
    if result.get("startup"):
        st = result["startup"]
        t = Table("command", "CPU s (median)", "user s", "sys s", "runs CPU s", "wall s", box=None,
                  title=f"Start-up (child processes; config with {st['merchants']} merchant(s))", title_justify="left")
        for name, c in st["commands"].items():
            t.add_row(name, f"{c['cpu_s']:.3f}", f"{c['user_s']:.3f}", f"{c['sys_s']:.3f}", " ".join(f"{x:.3f}" for x in c["cpu_s_runs"]),
                      f"{c['wall_s']:.3f}")
        console.print(t)
        for name, c in st["commands"].items():
            if c["rc"]:
                console.print(f"[red]{name} exited {c['rc']}: {c['error']}[/]")
    if result.get("idle"):
        i, w = result["idle"], result["idle"]["warm_up"]
        console.print(f"Idle: {i['merchants']:,} merchants (own keys, default schedules); built in {i['build']['wall_s']} s "
                      f"({i['build']['cpu_s']} s CPU, RSS {i['build']['rss_mb']} MB); warm-up {w['wall_s']} s until "
                      f"{w['jobs_started']:,}/{w['jobs']:,} jobs ran once ({w['passes_still_running']} passes still running): CPU {w['cpu_pct_of_a_core']}% of a core, "
                      f"lag p50 {w['lag_p50_s']} s / p99 {w['lag_p99_s']} s / max {w['lag_max_s']} s")
        console.print(f"Idle window {i['window_s']:g} s: CPU {i['cpu_pct_of_a_core']}% of a core ({i['cpu_s']} s), RSS {i['rss_end_mb']} MB "
                      f"(peak {i['peak_rss_mb']} MB), {i['passes']:,} scheduled passes, lag p50 {i['lag_p50_s']} s / p99 {i['lag_p99_s']} s / "
                      f"max {i['lag_max_s']} s, {i['missed']} missed, {i['passes_running_at_end']} passes running at the end; "
                      f"sandbox CPU {i['sandbox_cpu_s']} s; failed passes {i['failed_count']}")
        for e in i["failed"]:
            console.print(f"[red]{e}[/]")
        for e, count in i.get("raised", {}).items():
            console.print(f"[red]{count:,} pass(es) raised {e}[/]")
    if result.get("latency"):
        print_latency(result["latency"], console)
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

def print_latency(lat: dict[str, Any], console: Console) -> None:
    w, p, d = lat["webhooks"], lat["poll"], lat["default_schedule"]

    def cells(figures: dict[str, Any]) -> list[str]:
        return ["-" if figures[k] is None else f"{figures[k]:.3f}" for k in ("p50_s", "p99_s", "max_s")] + [str(figures["n"])]

    t = Table("path", "mode", "p50 s", "p99 s", "max s", "events", box=None, title_justify="left",
              title=f"Latency: {lat['events']} orders sent {lat['gap_s']:g} s apart, then shipped {lat['gap_s']:g} s apart; "
                    f"sandbox latency {lat['latency_ms']:g} ms (the connector: Runtime + scheduler + listener in this process)")
    for path, name in (("create", "order webhook -> warehouse create"), ("tracking", "warehouse ship webhook -> tracking posted")):
        t.add_row(name, "webhooks, default schedules", *cells(w[path]))
        t.add_row("", f"poll-only, every {p['schedule_s']:g} s", *cells(p[path]))
    console.print(t)
    console.print(f"Poll-only on the default schedules (not measured: it would take {d['shipment_upload_s'] / 60:g} minutes): an order waits "
                  f"for the next download ({d['order_download_s']:g} s) and then delivery ({d['order_delivery_s']:g} s): up to "
                  f"{d['create_worst_s']:g} s, about {d['create_median_s']:g} s typical; a shipment waits for the next shipments read: up to "
                  f"{d['tracking_worst_s']:g} s, about {d['tracking_median_s']:g} s typical")
    for r, mode in ((w, "webhooks"), (p, "poll-only")):
        console.print(f"{mode}: {r['created']}/{lat['events']} created ({r['created_once']} by a single create call), "
                      f"{r['tracked']}/{r['created']} tracking posted ({r['tracked_once']} in a single post)"
                      + (f"; UltraCart deliveries {r['ultracart_deliveries']}" if "ultracart_deliveries" in r else "")
                      + (f"; ShipBob: {'; '.join(r['registered'])}" if r.get("registered") else ""))
        if r.get("requests"):
            console.print(f"{mode}: vendor requests " + ", ".join(f"{k} {v}" for k, v in r["requests"].items()))
        for e in r["failed"] + [f"{n} pass(es) raised {e}" for e, n in r["raised"].items()]:
            console.print(f"[red]{mode}: {e}[/]")
        if r["strays"]:
            console.print(f"[red]{mode}: orders at ShipBob the bench did not send: {r['strays']}[/]")
