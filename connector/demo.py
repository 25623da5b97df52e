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

from connector.config import from_dict
from connector.runtime import build_runtime
from connector.sandbox.kits import WarehouseKit, make_kit
from connector.sandbox.samples import demo_orders
from connector.sandbox.server import SandboxServer
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


LEDGERS = ("aligni",)  # inventory ledgers the demo has a sandbox for


async def run_demo(count: int = 50, warehouse: str = "shipbob", keep: Path | None = None, ledger: str = "") -> dict[str, Any]:
    """Run the demo; with `keep`, its config (`connector.toml`) and database stay in that folder
    so `connector status`, `orders`, `order` and `events` can be explored afterwards. With
    `ledger="aligni"` the merchant also keeps its stock in Aligni's sandbox, and the shipped
    orders' units are consumed there."""
    tmp = keep or Path(tempfile.mkdtemp(prefix="connector-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    uc = UltraCartSandbox(api_key=UC_KEY, merchant_id="DEMO", distribution_centers=("DFLT",))
    kit = make_kit(warehouse, products=PRODUCTS, ship_methods=("Standard", "Expedited", "2-Day"), credential=SB_TOKEN)
    for sku, per_fc in STOCK.items():
        for fc, qty in zip(kit.warehouse_ids(), per_fc):
            kit.set_stock(sku, fc, qty)
    ledger_kit = None
    if ledger:
        from connector.sandbox.aligni import AligniKit

        ledger_kit = AligniKit()
    try:
        with SandboxServer(uc.app) as ucs, _serve(kit.app) as wh_url, _ledger(ledger_kit) as ledger_block:
            uc.queue("DFLT", demo_orders("DEMO", count))
            db = tmp / "demo.db"
            for old in tmp.glob("demo.db*"):
                old.unlink()
            raw = demo_config(ucs.url, kit.warehouse_config(wh_url, tmp), kit.ship_methods, f"sqlite:///{db}")
            if ledger_block is not None:
                raw["merchants"][0]["ledger"] = dict(ledger_block, consume_on=["confirmed"])
                stock_before = ledger_kit.stock()
            cfg = from_dict(raw, file="<demo>")
            rt = await build_runtime(cfg, store=await Store.open(cfg.daemon.database_url), worker_id="demo")
            try:
                results = await rt.run_once(service="order_download")
                results += await rt.run_once(service="order_delivery")
                changes, changed = await _merchant_changes(rt.store, uc, kit)
                results += await rt.run_once(service="order_changes")
                told = await _changes_told(rt.store, changes, changed)
                kit.ship_all()
                results += await rt.run_once(service="shipment_upload")
                if ledger_block is not None:
                    results += await rt.run_once(service="ledger_consume")
                results += await rt.run_once(service="inventory_upload")
                summary = await _summary(rt.store, results, uc, kit, ucs.url, wh_url)
                if ledger_block is not None:
                    summary["ledger"] = await _ledger_told(rt.store, stock_before, ledger_kit.stock())
                summary["changes"] = told
            finally:
                await rt.aclose()
            if keep is not None:
                (tmp / "connector.toml").write_text(config_toml(raw))
                summary["kept"] = str(tmp)
            return summary
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _ledger(kit: Any) -> Iterator[dict[str, Any] | None]:
    if kit is None:
        yield None
        return
    try:
        yield kit.start()
    finally:
        kit.stop()


async def _ledger_told(store: Store, before: dict, after: dict) -> dict[str, Any]:
    rows = await store.ledger.listing("demo")
    states = Counter(r.state for r in rows)
    return {"lines": len(rows), "by_state": dict(states), "orders": len({r.order_id for r in rows}),
            "consumed": {sku: str(before[sku] - after.get(sku, 0)) for sku in sorted(before) if before[sku] != after.get(sku, 0)},
            "problems": [(r.order_id, r.sku, r.state, r.reason) for r in rows if r.state != "done"]}


async def _merchant_changes(store: Store, uc: UltraCartSandbox, kit: WarehouseKit) -> tuple[dict[str, str], dict[str, str]]:
    """After hand-off, the merchant rejects orders in UltraCart: one never sent (held), one at the
    warehouse, and, where the warehouse sandbox can pick, one already picked. Returns what was
    done to each order and the state each was in."""
    rows = await store.orders.listing(merchant="demo", limit=10_000)
    held = sorted(r.order_id for r in rows if r.state == "held")
    at_wh = sorted(r.order_id for r in rows if r.state == "at_warehouse")
    plan: dict[str, str] = {}
    if held:
        plan[held[-1]] = "rejected in UltraCart while held"
    if at_wh:
        plan[at_wh[0]] = "rejected in UltraCart at the warehouse"
    sandbox = getattr(kit, "sandbox", None)
    if len(at_wh) > 1 and hasattr(sandbox, "pick"):
        [row] = [r for r in rows if r.order_id == at_wh[1]]
        sandbox.pick(row.reference)
        plan[at_wh[1]] = "rejected in UltraCart after the warehouse picked it"
    before = {r.order_id: r.state for r in rows if r.order_id in plan}
    for order_id in plan:
        uc.reject(order_id, reason="the customer cancelled")
    return plan, before


async def _changes_told(store: Store, plan: dict[str, str], before: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for order_id, what in plan.items():
        [row] = await store.orders.find(order_id, "demo")
        out.append({"order_id": order_id, "what": what, "was": before[order_id], "now": row.state, "reason": row.reason or ""})
    return out


def config_toml(raw: dict[str, Any], written_by: str = "`connector demo --keep`: the demo's merchant and its sandboxes (stopped now)") -> str:
    """The demo's config as a TOML file, its sandboxes' URLs included; `written_by` says whose."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Written by {written_by}."))
    doc["daemon"] = raw["daemon"]
    merchants = tomlkit.aot()
    for m in raw["merchants"]:
        merchants.append(tomlkit.item(m))
    doc["merchants"] = merchants
    return tomlkit.dumps(doc)


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    """Serve a warehouse sandbox on loopback (a file-based one has no server: "")."""
    if app is None:
        yield ""
        return
    with SandboxServer(app) as server:
        yield server.url


async def _summary(store: Store, results, uc: UltraCartSandbox, kit: WarehouseKit, uc_url: str, wh_url: str) -> dict[str, Any]:
    states = {s: n for (_, s), n in (await store.orders.counts_by_state("demo")).items()}
    rows = await store.orders.listing(merchant="demo", limit=10_000)
    held = [(r.order_id, r.reason) for r in rows if r.state == "held"]
    skipped = [(r.order_id, r.reason) for r in rows if r.state == "skipped"]
    failed = [(r.order_id, r.last_error) for r in rows if r.state == "failed"]
    shipments = Counter(s.state for s in await store.shipments.listing("demo", limit=10_000))
    pushed = uc.inventory_posts
    last_push = {i["itemId"]: i["quantity"] for post in pushed for i in post}
    by_service = {r.service: r.did for r in results}
    return {
        "ok": all(r.ok and not r.error for r in results) and not failed,
        "warehouse": kit.name,
        "sandboxes": {"ultracart": uc_url, kit.name: wh_url or "(files)"},
        "services": {r.service: {"outcome": str(r.outcome), "ok": r.ok, "error": r.error, "stopped_because": r.stopped_because,
                                 "seconds": r.seconds, **r.did} for r in results},
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


def print_summary(s: dict[str, Any], say) -> None:
    """The demo's story, in plain lines (`say` prints one)."""
    wh = s["warehouse"]
    say("== UltraCart order-flow connector: demo ==")
    say(f"Sandboxes on loopback: UltraCart {s['sandboxes']['ultracart']}, warehouse ({wh}) {s['sandboxes'][wh]}")
    d = s["download"]
    say(f"Downloaded {d.get('fetched', 0)} orders from the DC queue in {d.get('rounds', 0)} round(s); "
        f"stored {d.get('new', 0)}, acknowledged {s['acknowledged']}; left in the queue: {s['queued_left']}")
    say(f"Created at the warehouse ({wh}): {s['warehouse_orders']} order(s), each exactly once (reference demo-<order id>)")
    say("Orders by state: " + ", ".join(f"{state} {n}" for state, n in sorted(s["orders_by_state"].items(), key=lambda kv: -kv[1])))
    if s["held"]:
        say("Held (released automatically once the cause is fixed in the config, or by `connector release ID`):")
        for oid, why in s["held"]:
            say(f"  {oid}  {why}")
    if s["skipped"]:
        say("Skipped (acknowledged, never sent):")
        for oid, why in s["skipped"]:
            say(f"  {oid}  {why}")
    for oid, why in s["failed"]:
        say(f"  FAILED {oid}  {why}")
    if s.get("changes"):
        say("Changed after hand-off (the merchant rejected these in UltraCart; the connector learned it by re-reading open orders):")
        for c in s["changes"]:
            say(f"  {c['order_id']}  {c['what']}: {c['was']} -> {c['now']}" + (f" ({c['reason']})" if c["reason"] else ""))
    ships = s["shipments"]
    say(f"Tracking: {sum(ships.values())} warehouse shipment(s) read ({ships.get('ignored', 0)} voided label ignored); "
        f"{s['orders_with_tracking']} order(s) sent tracking to UltraCart in {s['tracking_posts']} post(s); "
        f"confirmed: {s['orders_by_state'].get('confirmed', 0)}")
    if s.get("ledger"):
        lg = s["ledger"]
        say(f"Ledger (aligni): {lg['lines']} line(s) of {lg['orders']} confirmed order(s): "
            + ", ".join(f"{state} {n}" for state, n in sorted(lg["by_state"].items())) + "; units consumed at the demo's location: "
            + (", ".join(f"{sku} {q}" for sku, q in lg["consumed"].items()) or "none"))
        for oid, sku, state, why in lg["problems"][:10]:  # short or unknown: alerted with exact figures
            say(f"  {oid} {sku}: {state}" + (f" ({why})" if why else ""))
    inv = s["services"].get("inventory_upload", {})
    if inv.get("outcome") == "disabled":
        say(f"Inventory: {inv.get('stopped_because') or 'disabled'}")
    else:
        clamped = ", ".join(f"{sku} ({sum(STOCK[sku])} available < minimum 5 -> 0)" for sku in s["clamped"]) or "none"
        say(f"Inventory: {len(s['inventory_pushed'])} item(s) pushed in {s['inventory_posts']} post(s): "
            + ", ".join(f"{k}={v}" for k, v in sorted(s["inventory_pushed"].items())) + f"; clamped: {clamped}")
    req = s["requests"]
    say("Requests: UltraCart " + ", ".join(f"{k} {v}" for k, v in sorted(req["ultracart"].items()) if v)
        + f"; {wh} " + (", ".join(f"{k} {v}" for k, v in sorted(req[wh].items())) or "(files, no HTTP)"))
    for name, r in s["services"].items():
        if r["error"]:
            say(f"{name}: {r['error']}")
    say("demo finished: nothing lost, nothing sent twice" if s["ok"] else "demo finished with problems (see above)")
    if s.get("kept"):
        say(f"Kept in {s['kept']}: explore with `connector status -c {s['kept']}/connector.toml`, `connector orders -c ...`, "
            f"`connector order DEMO-0014 -c ...`, `connector events -c ...`")
    else:
        say("Next: `connector demo --keep DIR` keeps the demo's config and database to explore with `connector status`, "
            "`orders`, `order ID`, `events`; `connector sandbox` serves the simulators with a ready config until Ctrl-C.")
