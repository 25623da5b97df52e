"""Order download (UltraCart queue -> store -> acknowledgement) and order delivery (store ->
rules and mapping -> warehouse, exactly once).

Download promise: nothing is acknowledged before it is committed locally. A crash between the
commit and the acknowledgement only means UltraCart sends the order again; the unique key
(merchant, DC, order id) absorbs the repeat and the stored order is acknowledged next time.

Delivery promise: each order is created at most once per warehouse. Sends are claim (commit) ->
call (no transaction open) -> record (commit); an unknown outcome leaves the order `in_doubt`,
resolved by looking its reference up before anything is sent again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from adapters.base import order_reference
from connector import metrics
from connector.domain import Order, OrderState, WarehouseOrder
from connector.errors import ErrorClass, TransientError, VendorError
from connector.failpoints import failpoint
from connector.pipeline.context import ServiceContext, ServicePaused, ServiceThrottled
from connector.redact import DEFAULT as REDACT
from connector.store import NewOrder, Transition
from mappings.rules import decide

S = OrderState
ACK_BATCH = 100
MAX_ROUNDS = 10_000
FREE_TEXT = ("customer_notes", "internal_notes", "special_instructions", "gift_message")
RELEASED = "operator_release"  # hold_kind of an order an operator released: a timed hold is lifted  # a queue of a million orders; past that something is wrong with the loop


def _vendor_stop(ctx: ServiceContext, exc: VendorError) -> Exception:
    """The pass-level reaction to an error that is not one record's fault."""
    if exc.error_class is ErrorClass.configuration:
        return ServicePaused(str(exc))
    if exc.error_class is ErrorClass.rate_limited:
        return ServiceThrottled(str(exc), exc.retry_after)
    return exc


def prepare_orders(ctx: ServiceContext, raws: Sequence[Any]) -> tuple[list[NewOrder], int]:
    """Raw UltraCart orders -> rows to store. A malformed order with an id is stored `held` with
    the parser's reason (so it is acknowledged and listed); one without an id cannot be stored."""
    out: list[NewOrder] = []
    unidentifiable = 0
    for raw in raws:
        order_id = str(raw.get("order_id") or "").strip() if isinstance(raw, dict) else ""
        if not order_id:
            unidentifiable += 1
            ctx.log.error("order without order_id in the queue; cannot store or acknowledge it", payload=str(REDACT.data(raw))[:300])
            continue
        raw_json = json.dumps(REDACT.data(raw), default=str)
        reference = order_reference(ctx.id, order_id)
        try:
            order = ctx.parse_order(raw)
        except ValueError as exc:
            out.append(NewOrder(order_id, reference, "", raw_json, S.held, f"malformed order: {exc}", "malformed"))
            continue
        # Customers type card numbers into notes: mask free text in the parsed order too.
        order = order.model_copy(update={f: REDACT.text(getattr(order, f)) for f in FREE_TEXT})
        out.append(NewOrder(order_id, reference, order.model_dump_json(), raw_json))
    return out, unidentifiable


async def acknowledge(ctx: ServiceContext, ids: list[str]) -> int:
    """Acknowledge stored orders to UltraCart, 100 ids per call, then note that we did."""
    for i in range(0, len(ids), ACK_BATCH):
        chunk = ids[i : i + ACK_BATCH]
        await ctx.cart.acknowledge(chunk)
        failpoint("after_ack_before_record")
        await ctx.store.mark_acked(ctx.id, ctx.dc, chunk)
    return len(ids)


async def acknowledge_pending(ctx: ServiceContext) -> int:
    """Acknowledge every stored order UltraCart has not yet been told about (crash leftovers and
    webhook arrivals)."""
    total = 0
    while ids := await ctx.store.unacked_order_ids(ctx.id, ctx.dc, ACK_BATCH):
        total += await acknowledge(ctx, ids)
    return total


async def download_orders(ctx: ServiceContext) -> dict[str, int]:
    """Drain the DC queue: fetch <= 100, store them in one transaction, commit, acknowledge, repeat."""
    stats = {"fetched": 0, "new": 0, "repeats": 0, "acknowledged": 0, "unidentifiable": 0, "rounds": 0}
    try:
        stats["acknowledged"] += await acknowledge_pending(ctx)
        previous: frozenset[str] | None = None
        for _ in range(MAX_ROUNDS):
            raws = await ctx.cart.fetch_orders()
            if not raws:
                break
            stats["rounds"] += 1
            stats["fetched"] += len(raws)
            rows, bad = prepare_orders(ctx, raws)
            stats["unidentifiable"] += bad
            new = await ctx.store.ingest_orders(ctx.id, ctx.dc, rows, source="poll", actor="order_download")
            await ctx.store.raise_alerts([a for r in rows if r.order_id in new and r.hold_kind
                                          for a in hold_alerts(ctx.id, r.order_id, r.hold_kind, r.reason)], now=ctx.now())
            stats["new"] += len(new)
            stats["repeats"] += len(rows) - len(new)
            failpoint("after_commit_before_ack")
            # The whole batch, repeats included: a repeat means UltraCart did not get (or keep)
            # our earlier acknowledgement, and it will keep sending the order until it does.
            stats["acknowledged"] += await acknowledge(ctx, [r.order_id for r in rows])
            batch = frozenset(r.order_id for r in rows)
            if batch == previous or (not rows and bad):
                # UltraCart handed back the same orders after they were acknowledged (or only
                # orders we cannot identify): stop rather than spin; the next pass tries again.
                ctx.log.warning("queue returned the same orders after acknowledgement; stopping this pass", count=len(raws))
                break
            previous = batch
    except VendorError as exc:
        raise _vendor_stop(ctx, exc) from exc
    return stats


# ---------------------------------------------------------------------------- delivery
async def deliver_orders(ctx: ServiceContext) -> dict[str, int]:
    """One delivery pass: recover stale claims, resolve doubts, apply rules, send what is ready."""
    stats: dict[str, int] = {}
    try:
        stats["recovered"] = await ctx.store.expire_leases(ctx.id, ctx.now())
        stats.update(await resolve_in_doubt(ctx))
        stats.update(await evaluate_orders(ctx))
        stats.update(await send_ready(ctx))
    except VendorError as exc:
        raise _vendor_stop(ctx, exc) from exc
    return stats


async def evaluate_orders(ctx: ServiceContext) -> dict[str, int]:
    """Apply the order rules to new and held orders with the current config.

    Held orders are re-evaluated on every pass, so adding the missing mapping (and reloading)
    releases them without anyone touching the order.
    """
    counts = {"ready": 0, "held": 0, "skipped": 0, "released": 0}
    rules, skus, methods = ctx.merchant.order_rules(), ctx.merchant.sku_map(), ctx.merchant.ship_methods
    released_rules = rules.model_copy(update={"hold_minutes": 0})
    caps = ctx.warehouse.capabilities
    catalog_loaded = False
    known_skus = known_methods = None
    alerts: list[tuple[str, str, str, str]] = []
    after = 0
    while True:
        rows = await ctx.store.orders_in_states(ctx.id, (S.received, S.held), limit=500, after_pk=after)
        if not rows:
            break
        after = rows[-1].id
        if not catalog_loaded:
            # One catalog read per pass, and only when there is something to check.
            known_skus = await ctx.warehouse.known_skus() if caps.sku_catalog else None
            known_methods = await ctx.warehouse.known_ship_methods() if caps.ship_method_catalog else None
            catalog_loaded = True
        now = ctx.now()
        transitions: list[Transition] = []
        for row in rows:
            if row.hold_kind == "malformed":
                continue
            order = Order.model_validate_json(row.order_json)
            manual = row.reason.removeprefix("manual hold: ") if row.hold_kind == "manual_hold" else None
            d = decide(order, rules=released_rules if row.hold_kind == RELEASED else rules, skus=skus, ship_methods=methods, known_skus=known_skus,
                       known_ship_methods=known_methods, received_at=row.received_at, now=now, manual_hold=manual)
            if d.outcome == "ready":
                wo = WarehouseOrder(reference=row.reference, order=order, ship_method=d.ship_method or "", lines=d.lines)
                why = f"mapped {len(d.lines)} line(s), ship method {d.ship_method!r}"
                if row.state == S.held:
                    why = f"released ({row.reason} no longer applies); {why}"
                    counts["released"] += 1
                transitions.append(Transition(row.id, S.ready, (S.received, S.held), why,
                                              dict(warehouse_json=wo.model_dump_json(), hold_kind="", reason="", next_attempt_at=None)))
                counts["ready"] += 1
            elif d.outcome == "hold":
                if row.state == S.held and row.reason == d.reason and row.hold_kind == d.hold_kind:
                    continue  # still held for the same reason: nothing to write
                transitions.append(Transition(row.id, S.held, (S.received, S.held), d.reason, dict(hold_kind=d.hold_kind, reason=d.reason)))
                alerts += hold_alerts(ctx.id, row.order_id, d.hold_kind, d.reason)
                counts["held"] += 1
            else:
                transitions.append(Transition(row.id, S.skipped, (S.received, S.held), d.reason, dict(reason=d.reason)))
                counts["skipped"] += 1
        await ctx.store.transition_many(transitions, actor="order_delivery")
        await ctx.store.raise_alerts(alerts, now=now)
        alerts = []
    return counts


def hold_alerts(merchant: str, order_id: str, hold_kind: str, reason: str) -> list[tuple[str, str, str, str]]:
    """The alerts a hold raises, keyed so that a hundred orders with one cause are one alert."""
    text = REDACT.text(f"order {order_id}: {reason}")
    if hold_kind == "unknown_sku":
        return [(merchant, "unknown_sku", sku.strip(), text) for sku in reason.split(":", 1)[1].split(",")]
    if hold_kind == "unmapped_ship_method":
        return [(merchant, "unmapped_ship_method", reason.split(":", 1)[1].strip(), text)]
    if hold_kind in ("missing_address", "malformed"):
        return [(merchant, "missing_address" if hold_kind == "missing_address" else "malformed_order", order_id, text)]
    return []


async def resolve_in_doubt(ctx: ServiceContext) -> dict[str, int]:
    """Look every in-doubt order up by reference: found -> at the warehouse; absent -> ready."""
    counts = {"doubt_found": 0, "doubt_absent": 0}
    rows = await ctx.store.orders_in_states(ctx.id, (S.in_doubt,), limit=10_000)
    sem = asyncio.Semaphore(ctx.concurrency)

    async def one(row) -> Transition:
        async with sem:
            found = await ctx.warehouse.find_order(row.reference)
        if found is not None:
            counts["doubt_found"] += 1
            return Transition(row.id, S.at_warehouse, (S.in_doubt,), f"found at the warehouse by reference {row.reference} (id {found.warehouse_order_id})",
                              dict(warehouse_order_id=found.warehouse_order_id, lease_owner="", lease_until=None, last_error=""))
        counts["doubt_absent"] += 1
        return Transition(row.id, S.ready, (S.in_doubt,), f"not at the warehouse (reference {row.reference}); will send again",
                          dict(lease_owner="", lease_until=None))

    for i in range(0, len(rows), 100):
        results = await asyncio.gather(*(one(r) for r in rows[i : i + 100]), return_exceptions=True)
        ok = [r for r in results if isinstance(r, Transition)]
        await ctx.store.transition_many(ok, actor="order_delivery")
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
    return counts


async def send_ready(ctx: ServiceContext) -> dict[str, int]:
    """Claim ready orders in chunks and create them at the warehouse, several at a time."""
    counts = {"created": 0, "already_existed": 0, "retry": 0, "failed": 0, "in_doubt": 0}
    sem = asyncio.Semaphore(ctx.concurrency)
    adapter = ctx.warehouse.name
    stop: Exception | None = None

    async def one(row) -> tuple[Transition, VendorError | None]:
        wo = WarehouseOrder.model_validate_json(row.warehouse_json)
        try:
            async with sem:
                result = await ctx.warehouse.create_order(wo)
        except VendorError as exc:
            return _after_failure(ctx, row, exc), exc
        key = "already_existed" if result.already_existed else "created"
        counts[key] += 1
        why = f"created at {adapter} as {result.warehouse_order_id}" if not result.already_existed else \
            f"{adapter} already had reference {row.reference} (id {result.warehouse_order_id}); not created again"
        return Transition(row.id, S.at_warehouse, (S.submitting,), why,
                          dict(warehouse_order_id=result.warehouse_order_id, lease_owner="", lease_until=None, last_error="", next_attempt_at=None)), None

    while stop is None:
        rows = await ctx.store.claim_ready(ctx.id, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=max(ctx.concurrency * 4, 20), now=ctx.now())
        if not rows:
            break
        failpoint("after_claim_before_send")
        results = await asyncio.gather(*(one(r) for r in rows))
        failpoint("after_send_before_record")
        await ctx.store.transition_many([t for t, _ in results], actor="order_delivery")
        failed = [(ctx.id, "order_failed", row.order_id, REDACT.text(f"order {row.order_id}: {t.reason}"))
                  for row, (t, _) in zip(rows, results) if t.to_state == S.failed]
        await ctx.store.raise_alerts(failed, now=ctx.now())
        errors = [e for _, e in results if e is not None]
        for t, e in results:
            if e is not None:
                counts[{S.ready: "retry", S.failed: "failed", S.in_doubt: "in_doubt"}[t.to_state]] += 1
        for e in errors:
            if e.error_class in (ErrorClass.configuration, ErrorClass.rate_limited):
                stop = _vendor_stop(ctx, e)
                break
        if stop is None and errors and len(errors) == len(results) and all(e.error_class is ErrorClass.transient for e in errors):
            # The whole chunk failed the same way: the warehouse is down, not these orders.
            # Stop the pass instead of burning every queued order's attempts.
            # Raised so the runtime's circuit breaker counts it.
            raise TransientError(f"every create in a chunk of {len(results)} failed; stopping this pass: {errors[0]}", vendor=ctx.warehouse.name)
    if stop is not None:
        raise stop
    return counts


def _after_failure(ctx: ServiceContext, row, exc: VendorError) -> Transition:
    decision = ctx.retry.decide(exc, attempts=row.attempts, first_attempt_at=row.first_attempt_at, now=ctx.now())
    fields: dict[str, Any] = dict(lease_owner="", lease_until=None, last_error=str(exc)[:2000])
    if decision.action == "in_doubt":
        return Transition(row.id, S.in_doubt, (S.submitting,), decision.reason, fields, exc.request_id)
    if decision.action == "fail":
        return Transition(row.id, S.failed, (S.submitting,), decision.reason, fields, exc.request_id)
    metrics.retry(ctx.id, "order_delivery")
    fields["next_attempt_at"] = decision.next_attempt_at
    if not decision.count_attempt:
        fields["attempts"] = max(0, row.attempts - 1)
    return Transition(row.id, S.ready, (S.submitting,), f"will retry at {decision.next_attempt_at:%Y-%m-%d %H:%M:%S}Z: {decision.reason}", fields, exc.request_id)
