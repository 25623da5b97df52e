"""Shipment upload: warehouse shipments -> store -> tracking posted to UltraCart -> acknowledged
at the warehouse.

- Shipments are read with an overlapping window; the cursor advances in the same transaction
  that stores them, so a crash never skips any.
- Each warehouse shipment is stored once (unique per merchant and shipment id); voided labels are
  ignored, blank tracking numbers dropped.
- Tracking posts go through the outbox (`tasks`, kind `post_tracking`): batched <= 100, retried
  with backoff, and an order is `confirmed` only after UltraCart's 204. UltraCart's shipments call
  marks the whole DC portion shipped and has no per-line fields, so `post_tracking` chooses
  between one post when the order is complete (default) and one post per shipment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connector import metrics
from connector.domain import OrderState, Shipment, WarehouseOrder
from connector.errors import ErrorClass, VendorError
from connector.failpoints import failpoint
from connector.pipeline.context import ServiceContext, ServicePaused, ServiceThrottled
from connector.store import Transition

S = OrderState
CURSOR = "shipments_since"
TASK = "post_tracking"
POST_BATCH = 100
SHIPPABLE = (S.at_warehouse, S.partially_shipped, S.in_doubt)
# The create may be in flight: delivery runs beside this service and records a create only
# after the call returns, while the warehouse can already report the parcel.
SENDING = (S.ready, S.submitting)


async def warehouse_problems(ctx: ServiceContext) -> None:
    """Alert on the data problems an adapter reports (e.g. a malformed row in a partner's file)."""
    problems = getattr(ctx.warehouse, "problems", None) or ()
    await ctx.store.raise_alerts([(ctx.id, "warehouse_data", str(p)[:200], str(p)) for p in problems], now=ctx.now())


def clean(shipment: Shipment) -> Shipment:
    """Trim tracking numbers and drop blank and repeated ones."""
    seen: list[str] = []
    for t in shipment.tracking_numbers:
        t = (t or "").strip()
        if t and t not in seen:
            seen.append(t)
    return shipment.model_copy(update={"tracking_numbers": seen})


async def upload_shipments(ctx: ServiceContext) -> dict[str, int]:
    stats: dict[str, int] = {}
    try:
        stats.update(await read_shipments(ctx))
        failpoint("after_shipments_commit")
        stats.update(await post_tracking(ctx))
        stats.update(await acknowledge_at_warehouse(ctx))
    except VendorError as exc:
        if exc.error_class is ErrorClass.configuration:
            raise ServicePaused(str(exc)) from exc
        if exc.error_class is ErrorClass.rate_limited:
            raise ServiceThrottled(str(exc), exc.retry_after) from exc
        raise
    return stats


async def read_shipments(ctx: ServiceContext) -> dict[str, int]:
    cfg = ctx.merchant.shipments
    started = ctx.now()
    cursor = await ctx.store.get_cursor(ctx.id, CURSOR)
    since = datetime.fromisoformat(cursor) - timedelta(minutes=cfg.overlap_minutes) if cursor else started - timedelta(days=cfg.lookback_days)
    found = [clean(s) for s in await ctx.warehouse.shipments_since(since)]
    await warehouse_problems(ctx)
    stats = {"shipments_read": len(found), "shipments_new": 0, "voided": 0, "orphans": 0, "no_tracking": 0, "order_not_recorded": 0}
    existing = await ctx.store.shipment_rows(ctx.id, [s.shipment_id for s in found])
    orders = await ctx.store.orders_by_reference(ctx.id, [s.reference for s in found])
    upserts: list[dict[str, Any]] = []
    batch: dict[int, list[Shipment]] = defaultdict(list)  # order pk -> shipments now counting
    fresh: set[str] = set()  # shipments new or changed since they were stored
    orphans: list[tuple[str, str, str, str]] = []
    for s in found:
        old = existing.get(s.shipment_id)
        if old is not None and old.state == "posted":
            if s.voided:
                ctx.log.warning("a shipment whose tracking was already posted is now voided", shipment=s.shipment_id, reference=s.reference)
            continue
        order = orders.get(s.reference)
        state, reason = "pending", ""
        if s.voided:
            state, reason = "ignored", "voided label"
            stats["voided"] += 1
        elif not s.tracking_numbers and not cfg.allow_blank_tracking:
            state, reason = "waiting", "no tracking number yet"
            stats["no_tracking"] += 1
        elif order is None:
            state, reason = "orphan", f"no order with reference {s.reference} is known to the connector"
            stats["orphans"] += 1
            ctx.log.error("shipment for an unknown order; recorded, not posted", shipment=s.shipment_id, reference=s.reference)
            orphans.append((ctx.id, "orphan_shipment", s.shipment_id, f"shipment {s.shipment_id} (tracking {', '.join(s.tracking_numbers) or 'none'}) "
                            f"for reference {s.reference}, which the connector never sent"))
        elif order.state in SENDING:
            # Posting now would leave the order at_warehouse for ever once the create is
            # recorded (nothing moves it on after its tracking is posted): wait a pass.
            state, reason = "waiting", f"order not yet recorded at the warehouse (state {order.state})"
            stats["order_not_recorded"] += 1
        if old is None:
            stats["shipments_new"] += 1
        shipment_json = s.model_dump_json()
        # The read window overlaps, so most shipments are read again while their post waits.
        # Only a new or changed one may (re)queue a post: re-queuing an unchanged one would
        # reset its task, wiping the retry backoff and turning a permanent failure into a loop.
        if old is None or old.state != state or old.shipment_json != shipment_json:
            fresh.add(s.shipment_id)
            upserts.append(dict(shipment_id=s.shipment_id, reference=s.reference, order_pk=order.id if order else None, state=state,
                                reason=reason, tracking=",".join(s.tracking_numbers), shipment_json=shipment_json))
        if order is not None and state == "pending":
            batch[order.id].append(s)
    transitions, tasks = await _order_progress(ctx, orders, batch, fresh)
    await ctx.store.save_shipments(ctx.id, upserts, transitions, tasks, cursor=(CURSOR, started.isoformat()), actor="shipment_upload")
    await ctx.store.raise_alerts(orphans, now=ctx.now())
    stats["orders_shipped"] = sum(1 for t in transitions if t.to_state == S.shipped)
    return stats


async def _order_progress(ctx: ServiceContext, orders: dict[str, Any], batch: dict[int, list[Shipment]],
                          fresh: set[str]) -> tuple[list[Transition], list[dict[str, Any]]]:
    """Which orders are now partially or fully shipped, and which tracking posts are now due
    (only for orders with a shipment in `fresh`: the others' posts are already queued)."""
    by_pk = {o.id: o for o in orders.values()}
    earlier = await ctx.store.shipments_of_orders(batch)
    each = ctx.merchant.shipments.post_tracking == "each_shipment"
    transitions: list[Transition] = []
    tasks: list[dict[str, Any]] = []
    for pk, new in batch.items():
        order = by_pk[pk]
        new_ids = {s.shipment_id for s in new}
        counted = [Shipment.model_validate_json(r.shipment_json) for r in earlier.get(pk, [])
                   if r.state in ("pending", "posted") and r.shipment_id not in new_ids] + new
        complete = _covers(order.warehouse_json, counted)
        to_state = S.shipped if complete else S.partially_shipped
        if order.state in SHIPPABLE and (order.state != to_state):
            tracking = ", ".join(t for s in new for t in s.tracking_numbers)
            transitions.append(Transition(pk, to_state, SHIPPABLE, f"{len(counted)} shipment(s); tracking {tracking}",
                                          dict(reason="", lease_owner="", lease_until=None)))
        changed = [s for s in new if s.shipment_id in fresh]
        if each:
            for s in changed:
                tasks.append(dict(kind=TASK, key=s.shipment_id, payload=_post(order, [s]), replace=True))
        elif complete and changed:
            tasks.append(dict(kind=TASK, key=order.reference, payload=_post(order, counted), replace=True))
    return transitions, tasks


def _covers(warehouse_json: str, shipments: list[Shipment]) -> bool:
    """True when the shipments cover every line (a shipment without line detail covers all)."""
    if not warehouse_json or any(not s.lines for s in shipments):
        return True
    wanted: dict[str, int] = defaultdict(int)
    for line in WarehouseOrder.model_validate_json(warehouse_json).lines:
        wanted[line.sku] += line.quantity
    shipped: dict[str, int] = defaultdict(int)
    for s in shipments:
        for line in s.lines:
            shipped[line.sku] += line.quantity
    return all(shipped.get(sku, 0) >= q for sku, q in wanted.items())


def _post(order: Any, shipments: list[Shipment]) -> dict[str, Any]:
    """The outbox payload: UltraCart's FulfillmentShipment plus what recording the result needs."""
    def total(attr: str) -> float:
        return float(sum((getattr(s, attr) for s in shipments), Decimal(0)))

    tracking: list[str] = []
    for s in shipments:
        tracking += [t for t in s.tracking_numbers if t not in tracking]
    return dict(
        order_pk=order.id,
        shipment_ids=[s.shipment_id for s in shipments],
        body=dict(order_id=order.order_id, tracking_numbers=tracking, shipping_cost=total("shipping_cost"),
                  fulfillment_fee=total("fulfillment_fee"), package_cost=total("package_cost")),
    )


async def post_tracking(ctx: ServiceContext) -> dict[str, int]:
    stats = {"tracking_posts": 0, "tracking_posted": 0, "tracking_failed": 0, "orders_confirmed": 0}
    while True:
        tasks = await ctx.store.claim_tasks(ctx.id, TASK, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=POST_BATCH, now=ctx.now())
        if not tasks:
            break
        good, bad = await _post_isolating(ctx, tasks, stats)
        if good:
            failpoint("after_tracking_post_before_record")
            await _record_posted(ctx, good, stats)
        if bad is not None:
            raise bad
    return stats


async def _post_isolating(ctx: ServiceContext, tasks: list[Any], stats: dict[str, int]) -> tuple[list[Any], VendorError | None]:
    """Post a batch; when UltraCart rejects it as a whole, post one by one so a single bad record
    fails alone and the others go through."""
    try:
        await ctx.cart.post_shipments([json.loads(t.payload)["body"] for t in tasks])
        stats["tracking_posts"] += 1
        return tasks, None
    except VendorError as exc:
        if exc.error_class is not ErrorClass.permanent or len(tasks) == 1:
            await _task_failure(ctx, tasks, exc, stats)
            return [], exc if exc.error_class is not ErrorClass.permanent else None
    good = []
    for i, t in enumerate(tasks):
        part, err = await _post_isolating(ctx, [t], stats)
        good += part
        if err is not None:
            # Only the tasks not yet tried go back: the ones before `t` were posted or have
            # already failed for good (their rows still say "running": they were read at claim).
            await _task_failure(ctx, tasks[i + 1 :], err, stats, count=False)
            return good, err
    return good, None


async def _task_failure(ctx: ServiceContext, tasks: list[Any], exc: VendorError, stats: dict[str, int], count: bool = True) -> None:
    if not tasks:
        return
    attempts = max(t.attempts for t in tasks)
    d = ctx.retry.decide(exc, attempts=attempts, first_attempt_at=min(t.created_at for t in tasks), now=ctx.now())
    ids = [t.id for t in tasks]
    if d.action == "fail":
        stats["tracking_failed"] += len(ids)
        await ctx.store.finish_tasks(ids, state="failed", error=d.reason)
        ctx.log.error("tracking post failed for good", orders=[json.loads(t.payload)["body"]["order_id"] for t in tasks], error=d.reason)
    else:
        metrics.retry(ctx.id, "shipment_upload")
        await ctx.store.finish_tasks(ids, state="pending", next_attempt_at=d.next_attempt_at or ctx.now(), error=d.reason,
                                     count_attempt=count and d.count_attempt)


async def _record_posted(ctx: ServiceContext, tasks: list[Any], stats: dict[str, int]) -> None:
    payloads = [json.loads(t.payload) for t in tasks]
    posted_ids = {sid for p in payloads for sid in p["shipment_ids"]}
    pks = {p["order_pk"] for p in payloads}
    rows = await ctx.store.shipments_of_orders(pks)
    by_pk = await ctx.store.orders_by_pk(pks)  # one query, not one per order
    transitions = []
    for pk in pks:
        order = by_pk.get(pk)
        if order is None or order.state != S.shipped:
            continue
        live = [r for r in rows[pk] if r.state in ("pending", "posted")]
        if all(r.state == "posted" or r.shipment_id in posted_ids for r in live):
            tracking = ", ".join(t for p in payloads if p["order_pk"] == pk for t in p["body"]["tracking_numbers"])
            transitions.append(Transition(pk, S.confirmed, (S.shipped,), f"UltraCart accepted tracking {tracking}"))
    await ctx.store.complete_tracking_posts(ctx.id, [t.id for t in tasks], sorted(posted_ids), transitions, actor="shipment_upload")
    stats["tracking_posted"] += len(tasks)
    stats["orders_confirmed"] += len(transitions)


async def acknowledge_at_warehouse(ctx: ServiceContext) -> dict[str, int]:
    """Tell the warehouse which shipments' tracking reached UltraCart (when it supports that)."""
    if not ctx.warehouse.capabilities.shipment_ack:
        return {}
    done = 0
    while True:
        rows = await ctx.store.shipments_needing_warehouse_ack(ctx.id, limit=100)
        if not rows:
            break
        await ctx.warehouse.acknowledge_shipments([Shipment.model_validate_json(r.shipment_json) for r in rows])
        await ctx.store.mark_warehouse_acked(ctx.id, [r.shipment_id for r in rows])
        done += len(rows)
    return {"warehouse_acknowledged": done}
