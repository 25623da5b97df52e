"""`connector demo`: the whole flow against loopback sandboxes, with no config and no network.

It seeds a realistic batch of UltraCart orders (several ship methods and SKUs, an alias, a kit,
and one each of: unmapped ship method, unknown SKU, no address, test order, too old), runs every
service for a sample merchant over real HTTP, ships the orders in the ShipBob sandbox (one split
in two shipments, one voided label), and reports what happened and why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.config import from_dict
from connector.runtime import Runtime
from connector.sandbox.samples import demo_orders
from connector.sandbox.server import SandboxServer
from connector.sandbox.kits import WarehouseKit, make_kit
from connector.sandbox.ultracart import UltraCartSandbox
from connector.store import Store

UC_KEY, SB_TOKEN = "demo-ultracart-key", "demo-warehouse-token"
PRODUCTS = ("BONE-5LB", "TREAT", "LEASH-RED", "LEASH-BLUE", "BOWL-L", "COLLAR-M")
# stock per SKU in fulfillment centers 1 and 2; LEASH-BLUE is below the minimum level of 5
STOCK = {"BONE-5LB": (120, 80), "TREAT": (300, 0), "LEASH-RED": (25, 10), "LEASH-BLUE": (2, 1), "BOWL-L": (40, 40), "COLLAR-M": (0, 60)}


def demo_config(uc_url: str, warehouse: dict[str, Any], methods: tuple[str, ...], db_url: str) -> dict[str, Any]:
    return {
        "daemon": {"database_url": db_url, "log_level": "error"},
        "merchants": [{
            "id": "demo",
            "ultracart": {"merchant_id": "DEMO", "api_key": UC_KEY, "distribution_center": "DFLT", "base_url": uc_url},
            "warehouse": warehouse,
            "orders": {"earliest_order_date": "2026-01-01", "skip_test_orders": True},
            "ship_methods": {"USPS: Priority Mail": methods[0], "UPS: Ground": methods[0], "FedEx: 2Day": methods[-1]},
            "skus": {
                "aliases": {"Bone": "BONE-5LB", "BONE-5LB": "BONE-5LB", "TREAT": "TREAT", "LEASH-RED": "LEASH-RED",
                            "LEASH-BLUE": "LEASH-BLUE", "BOWL-L": "BOWL-L", "COLLAR-M": "COLLAR-M"},
                "kits": {"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}},
            },
            "inventory": {"minimum_level": 5},
        }],
    }


async def run_demo(count: int = 50, warehouse: str = "shipbob") -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="connector-demo-"))
    uc = UltraCartSandbox(api_key=UC_KEY, merchant_id="DEMO", distribution_centers=("DFLT",))
    kit = make_kit(warehouse, products=PRODUCTS, ship_methods=("Standard", "Expedited", "2-Day"), credential=SB_TOKEN)
    for sku, per_fc in STOCK.items():
        for fc, qty in zip(kit.warehouse_ids(), per_fc):
            kit.set_stock(sku, fc, qty)
    try:
        with SandboxServer(uc.app) as ucs, _serve(kit.app) as wh_url:
            uc.queue("DFLT", demo_orders("DEMO", count))
            raw = demo_config(ucs.url, kit.warehouse_config(wh_url, tmp), kit.ship_methods, f"sqlite:///{tmp / 'demo.db'}")
            cfg = from_dict(raw, file="<demo>")
            rt = Runtime(cfg, await Store.open(cfg.daemon.database_url), worker_id="demo")
            try:
                results = await rt.run_once(service="order_download")
                results += await rt.run_once(service="order_delivery")
                kit.ship_all()
                results += await rt.run_once(service="shipment_upload")
                results += await rt.run_once(service="inventory_upload")
                return await _summary(rt.store, results, uc, kit, ucs.url, wh_url)
            finally:
                await rt.aclose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    """Serve a warehouse sandbox on loopback (a file-based one has no server: "")."""
    if app is None:
        yield ""
        return
    with SandboxServer(app) as server:
        yield server.url


async def _summary(store: Store, results, uc: UltraCartSandbox, kit: WarehouseKit, uc_url: str, wh_url: str) -> dict[str, Any]:
    states = {s: n for (_, s), n in (await store.counts_by_state("demo")).items()}
    rows = await store.list_orders(merchant="demo", limit=10_000)
    held = [(r.order_id, r.reason) for r in rows if r.state == "held"]
    skipped = [(r.order_id, r.reason) for r in rows if r.state == "skipped"]
    failed = [(r.order_id, r.last_error) for r in rows if r.state == "failed"]
    shipments = Counter(s.state for s in await store.list_shipments("demo", limit=10_000))
    pushed = uc.inventory_posts
    last_push = {i["itemId"]: i["quantity"] for post in pushed for i in post}
    by_service = {r.service: r.summary for r in results}
    return {
        "ok": all(r.ok and not r.error for r in results) and not failed,
        "warehouse": kit.name,
        "sandboxes": {"ultracart": uc_url, kit.name: wh_url or "(files)"},
        "services": {r.service: {"ok": r.ok, "error": r.error, "seconds": r.seconds, **r.summary} for r in results},
        "orders_by_state": states,
        "held": held,
        "skipped": skipped,
        "failed": failed,
        "shipments": dict(shipments),
        "tracking_posts": len(uc.shipment_posts),
        "orders_with_tracking": len({p["order_id"] for post in uc.shipment_posts for p in post}),
        "inventory_posts": len(pushed),
        "inventory_pushed": last_push,
        "clamped": sorted(sku for sku, q in last_push.items() if q == 0 and sum(STOCK.get(sku, (0, 0))) > 0),
        "acknowledged": len(set(uc.acknowledged)),
        "queued_left": len(uc.queued("DFLT")),
        "requests": {"ultracart": dict(uc.requests), kit.name: dict(getattr(getattr(kit, "sandbox", None), "requests", {}) or {})},
        "warehouse_orders": kit.created(),
        "download": by_service.get("order_download", {}),
    }


def print_summary(s: dict[str, Any], out: Console) -> None:
    out.rule("[bold]UltraCart order-flow connector: demo")
    wh = s["warehouse"]
    out.print(f"Sandboxes on loopback: UltraCart {s['sandboxes']['ultracart']}, warehouse ({wh}) {s['sandboxes'][wh]}")
    d = s["download"]
    out.print(f"Downloaded {d.get('fetched', 0)} orders from the DC queue in {d.get('rounds', 0)} round(s); "
              f"stored {d.get('new', 0)}, acknowledged {s['acknowledged']}; left in the queue: {s['queued_left']}")
    out.print(f"Created at the warehouse ({wh}): {s['warehouse_orders']} order(s), each exactly once (reference demo-<order id>)")
    t = Table("state", "orders", box=None, title="Orders by state", title_justify="left")
    for state, n in sorted(s["orders_by_state"].items(), key=lambda kv: -kv[1]):
        t.add_row(state, str(n))
    out.print(t)
    if s["held"]:
        out.print("[bold]Held[/] (released automatically once the cause is fixed in the config, or by `connector release ID`):")
        for oid, why in s["held"]:
            out.print(f"  {oid}  {why}")
    if s["skipped"]:
        out.print("[bold]Skipped[/] (acknowledged, never sent):")
        for oid, why in s["skipped"]:
            out.print(f"  {oid}  {why}")
    for oid, why in s["failed"]:
        out.print(f"  FAILED {oid}  {why}")
    ships = s["shipments"]
    out.print(f"Tracking: {sum(ships.values())} warehouse shipment(s) read ({ships.get('ignored', 0)} voided label ignored); "
              f"{s['orders_with_tracking']} order(s) sent tracking to UltraCart in {s['tracking_posts']} post(s); "
              f"confirmed: {s['orders_by_state'].get('confirmed', 0)}")
    if s["services"].get("inventory_upload", {}).get("disabled"):
        out.print("Inventory: disabled (the warehouse adapter has no inventory capability)")
    clamped = ", ".join(f"{sku} ({sum(STOCK[sku])} available < minimum 5 -> 0)" for sku in s["clamped"]) or "none"
    if not s["services"].get("inventory_upload", {}).get("disabled"):
        out.print(f"Inventory: {len(s['inventory_pushed'])} item(s) pushed in {s['inventory_posts']} post(s): "
              + ", ".join(f"{k}={v}" for k, v in sorted(s["inventory_pushed"].items())) + f"; clamped: {clamped}")
    req = s["requests"]
    out.print("Requests: UltraCart " + ", ".join(f"{k} {v}" for k, v in sorted(req["ultracart"].items()))
              + f"; {wh} " + (", ".join(f"{k} {v}" for k, v in sorted(req[wh].items())) or "(files, no HTTP)"))
    for name, r in s["services"].items():
        if r["error"]:
            out.print(f"[red]{name}: {r['error']}[/]")
    out.print("[bold green]demo finished: nothing lost, nothing sent twice[/]" if s["ok"] else "[bold red]demo finished with problems (see above)[/]")
