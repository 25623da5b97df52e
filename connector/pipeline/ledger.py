"""Stock consumed where the merchant keeps it: when an order ships, each line's quantity is
consumed in the merchant's inventory ledger (Aligni), at one location and sublocation, drawn from
the inventory units the configured rule picks (`mappings.units.pick_units`).

- What asks: UltraCart's `order_ship` webhook (orders shipped by anyone, this connector or not)
  and/or this connector confirming an order (`consume_on`). Each (order, item) is asked once
  (`store.ledger`), whatever arrives twice or by both paths. SKUs go through the merchant's
  aliases and kits, as for the warehouse.
- How: a consumption is claimed under a lease; before each ledger call its draw (unit, quantity,
  the unit's quantity before) is recorded as `sent`, after it as `applied`. A draw left `sent`
  (a crash, a timeout, a 5xx) is resolved by reading the unit back before anything is retried,
  so nothing is ever consumed twice.
- What it says: an unknown item and a shortfall each raise one alert with the exact figures
  (requested, consumed from which unit, short), on the order's timeline too when the connector
  knows the order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connector.domain import Order
from connector.errors import ErrorClass, RateLimitedError, VendorError
from connector.failpoints import failpoint
from connector.lifecycle import Actor
from connector.pipeline.context import ServiceContext
from connector.store import Move
from mappings.skus import map_lines
from mappings.units import pick_units

BATCH = 20


def ledger_disabled(ctx: ServiceContext) -> str:
    return "" if ctx.ledger is not None else "no [merchants.ledger] configured"


def consumes_on(ctx: ServiceContext, trigger: str) -> bool:
    s = ctx.merchant.ledger_settings
    return ctx.ledger is not None and s is not None and trigger in s.consume_on


async def ask_to_consume(ctx: ServiceContext, order: Order, *, source: str, lines: list[Any] | None = None) -> list[str]:
    """Ask for the consumption of an order's shipped lines (warehouse lines, or the cart's lines
    mapped through the merchant's aliases and kits). Returns the new "order:sku" keys."""
    if lines is None:
        mapping = map_lines(order.lines, ctx.merchant.sku_map())
        lines = mapping.lines
    wanted: dict[str, int] = {}
    for ln in lines:
        wanted[ln.sku] = wanted.get(ln.sku, 0) + int(ln.quantity)
    return await ctx.store.ledger.request(ctx.id, [dict(order_id=order.order_id, sku=sku, quantity=q, source=source)
                                                   for sku, q in wanted.items() if q > 0])


async def consume_ledger(ctx: ServiceContext) -> None:
    """The `ledger_consume` service: carry out the asked consumptions."""
    while not ctx.stop_requested():
        rows = await ctx.store.ledger.claim(ctx.id, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=BATCH)
        if not rows:
            return
        for row in rows:
            await consume_one(ctx, row)


async def consume_one(ctx: ServiceContext, row: Any) -> None:
    settings = ctx.merchant.ledger_settings
    assert settings is not None
    draws: list[dict[str, Any]] = row.draw_list
    quantity = Decimal(row.quantity)

    async def save(state: str, reason: str = "", *, retry: bool = False) -> None:
        consumed = sum((Decimal(d["quantity"]) for d in draws if d["status"] == "applied"), Decimal(0))
        await ctx.store.ledger.save(row.id, state=state, draws=draws, consumed=str(consumed), reason=reason, release=state != "consuming",
                                    next_attempt_at=ctx.now() if retry else None)

    try:
        items = await ctx.ledger.find_items([row.sku])
        item = items.get(row.sku)
        if item is None:
            await save("unknown_item", f"{ctx.ledger.name} has no item {row.sku}")
            await _tell(ctx, row, "unknown_item", row.sku,
                        f"Order {row.order_id}: {ctx.ledger.name} has no item {row.sku} ({quantity.normalize():f} shipped, nothing consumed). "
                        f"Add the item to {ctx.ledger.name} (or map the SKU in [merchants.skus]), then `connector consume {row.order_id}`.")
            return
        # A draw whose answer was lost: read the unit back before anything else.
        for d in draws:
            if d["status"] == "sent":
                from adapters.ledger import consumption_outcome

                now = await ctx.ledger.unit(item, d["unit"])
                outcome = consumption_outcome(Decimal(d["before"]), Decimal(d["quantity"]), now)
                if outcome == "unknown":
                    await save("held", f"unit {d['unit']} changed in another way after {d['quantity']} was sent: check it in {ctx.ledger.name}")
                    await _tell(ctx, row, "ledger_check", f"{row.order_id}:{row.sku}",
                                f"Order {row.order_id}, item {row.sku}: a consumption of {d['quantity']} from unit {d['unit']} may or may not "
                                f"have happened (the unit changed otherwise too). Check the unit's history in {ctx.ledger.name}; nothing "
                                "more is consumed for this line until you do.")
                    return
                d["status"] = "applied" if outcome == "applied" else "not_applied"
        remaining = quantity - sum((Decimal(d["quantity"]) for d in draws if d["status"] == "applied"), Decimal(0))
        if remaining > 0:
            units = await ctx.ledger.units(item, settings.location, settings.sublocation)
            pick = pick_units(units, remaining, settings.unit_selection)
            for draw in pick.draws:
                unit = draw.unit
                d = dict(unit=unit.id, lot=unit.lot_code or "", before=str(unit.quantity), quantity=str(draw.quantity), status="sent")
                draws.append(d)
                await save("consuming")  # recorded before the call: a crash leaves it "sent", resolved by reading back
                try:
                    await ctx.ledger.consume(item, unit, draw.quantity, memo=f"UltraCart order {row.order_id} shipped")
                except VendorError as exc:
                    if exc.error_class is ErrorClass.in_doubt:
                        await save("consuming", f"outcome unknown: {exc}", retry=True)  # read back on the next attempt
                        return
                    d["status"] = "not_applied"  # refused before anything changed: pick again next time
                    raise
                failpoint("after_consume_before_record")
                d["status"] = "applied"
                await save("consuming")
            remaining = pick.shortfall
    except RateLimitedError:
        await save("pending", "rate limited", retry=True)
        raise
    except VendorError as exc:
        if exc.error_class is ErrorClass.configuration:
            await save("pending", str(exc), retry=True)
            raise
        if exc.error_class is ErrorClass.permanent and type(exc).__name__ == "ReadBackMismatchError":
            await save("held", str(exc))
            await _tell(ctx, row, "ledger_check", f"{row.order_id}:{row.sku}", f"Order {row.order_id}, item {row.sku}: {exc}. Check the unit in "
                        f"{ctx.ledger.name}; nothing more is consumed for this line until you do.")
            return
        decision = ctx.retry.decide(exc, attempts=row.attempts, first_attempt_at=row.created_at, now=ctx.now())
        await save("failed" if decision.action == "fail" else "pending", str(exc), retry=decision.action != "fail")
        ctx.stats["consume_retry"] += 1
        return
    applied = [d for d in draws if d["status"] == "applied"]
    consumed = sum((Decimal(d["quantity"]) for d in applied), Decimal(0))
    from_units = ", ".join(f"{Decimal(d['quantity']).normalize():f} from unit {d['unit']}" + (f" (lot {d['lot']})" if d.get("lot") else "")
                           for d in applied) or "nothing"
    if remaining > 0:
        await save("short", f"{remaining.normalize():f} short")
        await _tell(ctx, row, "insufficient_inventory", f"{row.order_id}:{row.sku}",
                    f"Order {row.order_id}, item {row.sku}: {quantity.normalize():f} shipped; consumed {consumed.normalize():f} ({from_units}); "
                    f"{remaining.normalize():f} short: not enough available at {settings.location}"
                    + (f" / {settings.sublocation}" if settings.sublocation else "") + ". Adjust the stock in the ledger by hand.")
        ctx.stats["consumed_short"] += 1
    else:
        await save("done", f"consumed {consumed.normalize():f}: {from_units}")
        await _note(ctx, row.order_id, f"{ctx.ledger.name}: consumed {row.sku} x{consumed.normalize():f} ({from_units})")
        ctx.stats["consumed"] += 1


async def _tell(ctx: ServiceContext, row: Any, category: str, key: str, text: str) -> None:
    await ctx.alert([(ctx.id, category, key, text)])
    await _note(ctx, row.order_id, text)
    ctx.stats[category] += 1


async def _note(ctx: ServiceContext, order_id: str, text: str) -> None:
    """A line on the order's timeline, when the connector knows the order."""
    for record in await ctx.store.orders.find(order_id, ctx.id):
        await ctx.store.orders.move(Move(record.id, record.state, (record.state,), text), actor=Actor.ledger)
