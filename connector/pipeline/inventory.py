"""Inventory upload: warehouse stock -> the quantity pipeline (`mappings.inventory`) -> only the
changed quantities posted to UltraCart (<= 500 per call), recorded only after UltraCart's 204.

Never from a stale snapshot: in-flight units are read after the stock snapshot and include the
orders that reached the warehouse while it was being read, so stock is never over-promised.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from connector.domain import Order
from connector.failpoints import failpoint
from connector.pipeline.context import ServiceContext
from connector.pipeline.shipments import warehouse_problems
from mappings.inventory import changes, compute
from mappings.skus import SkuMap

POST_BATCH = 500
FULL_PUSH_CURSOR = "inventory_full_push"
NO_INVENTORY = "disabled: the warehouse adapter has no inventory capability"


def bought_units(order_jsons: list[str], skus: SkuMap) -> dict[str, int]:
    """Units per store SKU of in-flight orders, counting a kit once: as its parent when the
    config explodes it, else as the components UltraCart sent (as the order mapping does)."""
    units: dict[str, int] = defaultdict(int)
    for text in order_jsons:
        lines = Order.model_validate_json(text).lines
        exploded_parents = {ln.line_no for ln in lines if ln.kit and skus.kit_for(ln.sku) is not None}
        has_components = {ln.parent_line_no for ln in lines if ln.kit_component}
        for ln in lines:
            if ln.kit_component and ln.parent_line_no in exploded_parents:
                continue
            if ln.kit and ln.line_no not in exploded_parents and ln.line_no in has_components:
                continue
            units[ln.sku] += int(ln.quantity or 0)
    return dict(units)


def inventory_disabled(ctx: ServiceContext) -> str:
    """Why the inventory upload does not run for this merchant ("" when it does)."""
    if not ctx.merchant.inventory.enabled:
        return "disabled in the config ([merchants.inventory] enabled = false)"
    if ctx.merchant.inventory.source == "ledger":
        return "" if getattr(ctx.ledger.capabilities, "stock", False) else "disabled: the ledger adapter cannot read stock"
    if ctx.warehouse is None:
        return "disabled: no warehouse to read stock from (set [merchants.inventory] source = \"ledger\")"
    if not ctx.warehouse.capabilities.inventory:
        return NO_INVENTORY
    return ""


async def read_stock(ctx: ServiceContext) -> list:
    """Stock levels from where the merchant keeps them: the warehouse, or the inventory ledger."""
    if ctx.merchant.inventory.source == "ledger":
        s = ctx.merchant.ledger_settings
        return await ctx.ledger.stock_levels(s.location, s.sublocation)
    levels = await ctx.warehouse.stock_levels()
    await warehouse_problems(ctx)
    return levels


async def upload_inventory(ctx: ServiceContext) -> None:
    cfg = ctx.merchant.inventory
    skus = ctx.merchant.sku_map()
    snapshot_started = ctx.now()
    levels = await read_stock(ctx)
    # A file-based warehouse's snapshot may be older than this pass: count from its own time.
    as_of = min((ctx.warehouse.snapshot_at if ctx.merchant.inventory.source == "warehouse" else None) or snapshot_started, snapshot_started)
    in_flight = bought_units(await ctx.store.orders.in_flight_json(ctx.id, since=as_of), skus) if cfg.subtract_in_flight else {}
    result = compute(levels, ctx.merchant.inventory_rules(), skus, in_flight)
    last_full = await ctx.store.cursors.get(ctx.id, FULL_PUSH_CURSOR)
    full = last_full is None or datetime.fromisoformat(last_full) < snapshot_started - timedelta(hours=cfg.full_push_hours)
    todo = changes(result.quantities, await ctx.store.inventory.pushed(ctx.id), full=full)
    st = ctx.stats
    st.update(stock_rows=len(levels), skus=len(result.quantities), changed=len(todo), full_push=int(full),
              clamped=sum(1 for t in result.traces.values() if t.clamped))
    items = sorted(todo.items())
    for i in range(0, len(items), POST_BATCH):
        chunk = dict(items[i : i + POST_BATCH])
        await ctx.cart.post_inventory([{"itemId": sku, "quantity": q} for sku, q in chunk.items()])
        failpoint("after_inventory_post_before_record")
        await ctx.store.inventory.record_pushed(ctx.id, chunk)
        st["inventory_posts"] += 1
        st["pushed"] += len(chunk)
    if full:
        await ctx.store.cursors.set(ctx.id, FULL_PUSH_CURSOR, snapshot_started.isoformat())
