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

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connector import metrics
from connector.domain import Shipment, WarehouseOrder
from connector.errors import ErrorClass, VendorError
from connector.failpoints import failpoint
from connector.lifecycle import LIVE_SHIPMENTS, Actor, OrderState, ShipmentState, TaskState
from connector.pipeline.context import ServiceContext
from connector.pipeline.ledger import ask_to_consume, consumes_on
from connector.store import Move
from connector.store.tasks import tried

S = OrderState
SH = ShipmentState
A = Actor
CURSOR = "shipments_since"
TASK = "post_tracking"
POST_BATCH = 100
SHIPPABLE = (S.at_warehouse, S.partially_shipped, S.in_doubt, S.cancelling, S.cancel_failed)  # it shipped: a cancel came too late
# The create may be in flight: delivery runs beside this service and records a create only
# after the call returns, while the warehouse can already report the parcel.
SENDING = (S.ready, S.submitting)


async def warehouse_problems(ctx: ServiceContext) -> None:
    """Alert on the data problems an adapter reports (e.g. a malformed row in a partner's file)."""
    problems = ctx.warehouse.problems or ()
    await ctx.alert([(ctx.id, "warehouse_data", str(p)[:200], str(p)) for p in problems])


def clean(shipment: Shipment) -> Shipment:
    """Trim tracking numbers and drop blank and repeated ones."""
    seen: list[str] = []
    for t in shipment.tracking_numbers:
        t = (t or "").strip()
        if t and t not in seen:
            seen.append(t)
    return shipment.model_copy(update={"tracking_numbers": seen})


async def upload_shipments(ctx: ServiceContext) -> None:
    await read_shipments(ctx)
    failpoint("after_shipments_commit")
    await post_tracking(ctx)
    await acknowledge_at_warehouse(ctx)


async def read_shipments(ctx: ServiceContext) -> None:
    cfg = ctx.merchant.shipments
    started = ctx.now()
    cursor = await ctx.store.cursors.get(ctx.id, CURSOR)
    since = datetime.fromisoformat(cursor) - timedelta(minutes=cfg.overlap_minutes) if cursor else started - timedelta(days=cfg.lookback_days)
    found = [clean(s) for s in await ctx.warehouse.shipments_since(since)]
    await warehouse_problems(ctx)
    stats = ctx.stats
    stats["shipments_read"] += len(found)
    existing = await ctx.store.shipments.by_ids(ctx.id, [s.shipment_id for s in found])
    orders = await ctx.store.orders.by_reference(ctx.id, [s.reference for s in found])
    upserts: list[dict[str, Any]] = []
    batch: dict[int, list[Shipment]] = defaultdict(list)  # order pk -> shipments now counting
    fresh: set[str] = set()  # shipments new or changed since they were stored
    orphans: list[tuple[str, str, str, str]] = []
    for s in found:
        old = existing.get(s.shipment_id)
        if old is not None and old.state == SH.posted:
            if s.voided:
                ctx.log.warning("a shipment whose tracking was already posted is now voided", shipment=s.shipment_id, reference=s.reference)
            continue
        order = orders.get(s.reference)
        state, reason = SH.pending, ""
        if s.voided:
            state, reason = SH.ignored, "voided label"
            stats["voided"] += 1
        elif not s.tracking_numbers and not cfg.allow_blank_tracking:
            state, reason = SH.waiting, "no tracking number yet"
            stats["no_tracking"] += 1
        elif order is None:
            state, reason = SH.orphan, f"no order with reference {s.reference} is known to the connector"
            stats["orphans"] += 1
            ctx.log.error("shipment for an unknown order; recorded, not posted", shipment=s.shipment_id, reference=s.reference)
            orphans.append((ctx.id, "orphan_shipment", s.shipment_id, f"shipment {s.shipment_id} (tracking {', '.join(s.tracking_numbers) or 'none'}) "
                            f"for reference {s.reference}, which the connector never sent"))
        elif order.state in SENDING:
            # Posting now would leave the order at_warehouse for ever once the create is
            # recorded (nothing moves it on after its tracking is posted): wait a pass.
            state, reason = SH.waiting, f"order not yet recorded at the warehouse (state {order.state})"
            stats["order_not_recorded"] += 1
        if old is None:
            stats["shipments_new"] += 1
        shipment_json = s.model_dump_json()
        # The read window overlaps, so most shipments are read again while their post waits.
        # Only a new or changed one may (re)queue a post: re-queuing an unchanged one would
        # reset its task, wiping the retry backoff and turning a permanent failure into a loop.
        if old is None or old.state != state or old.shipment_json != shipment_json:
            fresh.add(s.shipment_id)
            upserts.append(dict(shipment_id=s.shipment_id, reference=s.reference, order_pk=order.id if order else None, state=str(state),
                                reason=reason, tracking=",".join(s.tracking_numbers), shipment_json=shipment_json))
        if order is not None and state == SH.pending:
            batch[order.id].append(s)
    moves, tasks = await _order_progress(ctx, orders, batch, fresh)
    # One transaction: the shipments, the order moves and tracking posts they cause, and the read
    # cursor, which therefore never passes uncommitted work.
    async with ctx.store.atomic() as tx:
        await tx.shipments.upsert(ctx.id, upserts)
        await tx.orders.move_many(moves, actor=A.shipment_upload)
        await tx.tasks.put_many(ctx.id, tasks)
        await tx.cursors.set(ctx.id, CURSOR, started.isoformat())
    await ctx.alert(orphans)
    stats["orders_shipped"] += sum(1 for m in moves if m.to == S.shipped)


async def _order_progress(ctx: ServiceContext, orders: dict[str, Any], batch: dict[int, list[Shipment]],
                          fresh: set[str]) -> tuple[list[Move], list[dict[str, Any]]]:
    """Which orders are now partially or fully shipped, and which tracking posts are now due
    (only for orders with a shipment in `fresh`: the others' posts are already queued)."""
    by_pk = {o.id: o for o in orders.values()}
    earlier = await ctx.store.shipments.of_orders(batch)
    each = ctx.merchant.shipments.post_tracking == "each_shipment"
    transitions: list[Move] = []
    tasks: list[dict[str, Any]] = []
    for pk, new in batch.items():
        order = by_pk[pk]
        new_ids = {s.shipment_id for s in new}
        counted = [r.shipment for r in earlier.get(pk, []) if r.state in LIVE_SHIPMENTS and r.shipment_id not in new_ids] + new
        complete = _covers(order.warehouse_json, counted)
        to_state = S.shipped if complete else S.partially_shipped
        if order.state in SHIPPABLE and (order.state != to_state):
            tracking = ", ".join(t for s in new for t in s.tracking_numbers)
            transitions.append(Move(pk, to_state, SHIPPABLE, f"{len(counted)} shipment(s); tracking {tracking}",
                                    dict(lease_owner="", lease_until=None)))
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


async def post_tracking(ctx: ServiceContext) -> None:
    stats = ctx.stats
    while True:
        tasks = await ctx.store.tasks.claim(ctx.id, TASK, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=POST_BATCH)
        if not tasks:
            break
        # A post tried before (its worker died, its answer was lost, or it was replaced after a
        # try) may have reached UltraCart: those are checked against the orders first.
        landed = await already_posted(ctx, [t for t in tasks if tried(t)])
        if landed:
            stats["tracking_found_posted"] += len(landed)
            await _record_posted(ctx, landed, stats)
            tasks = [t for t in tasks if t not in landed]
            if not tasks:
                continue
        good, bad = await _post_isolating(ctx, tasks, stats)
        if good:
            failpoint("after_tracking_post_before_record")
            await _record_posted(ctx, good, stats)
        if bad is not None:
            raise bad


async def already_posted(ctx: ServiceContext, tasks: list[Any]) -> list[Any]:
    """Of posts tried before (a worker died after posting, or the answer was lost), the ones
    UltraCart already has: every tracking number of the post is on the order. UltraCart's
    shipments call has no idempotency key, so a retried post is checked by reading the orders
    (one batch read of up to 500) instead of being sent twice."""
    if not tasks:
        return []
    ids = sorted({t.data["body"]["order_id"] for t in tasks})
    raws = await ctx.cart.get_orders(ids)
    have: dict[str, set[str]] = {}
    for raw in raws:
        shipping = raw.get("shipping") if isinstance(raw, dict) else None
        numbers = shipping.get("tracking_numbers") if isinstance(shipping, dict) else None
        if isinstance(numbers, list):
            have[str(raw.get("order_id"))] = {str(n).strip() for n in numbers if str(n).strip()}
    out = []
    for t in tasks:
        body = t.data["body"]
        wanted = {n for n in body["tracking_numbers"] if n}
        if wanted and wanted <= have.get(body["order_id"], set()):
            out.append(t)
    return out


async def _post_isolating(ctx: ServiceContext, tasks: list[Any], stats: dict[str, int]) -> tuple[list[Any], VendorError | None]:
    """Post a batch; when UltraCart rejects it as a whole, post one by one so a single bad record
    fails alone and the others go through."""
    try:
        await ctx.cart.post_shipments([t.data["body"] for t in tasks])
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
        await ctx.store.tasks.finish(ids, state=TaskState.failed, error=d.reason)
        ctx.log.error("tracking post failed for good", orders=[t.data["body"]["order_id"] for t in tasks], error=d.reason)
    else:
        metrics.retry(ctx.id, "shipment_upload")
        await ctx.store.tasks.finish(ids, state=TaskState.pending, next_attempt_at=d.next_attempt_at or ctx.now(), error=d.reason,
                                     count_attempt=count and d.count_attempt)


async def _record_posted(ctx: ServiceContext, tasks: list[Any], stats: dict[str, int]) -> None:
    """After UltraCart's 204: tasks done, shipments posted, orders confirmed, in one transaction."""
    payloads = [t.data for t in tasks]
    posted_ids = {sid for p in payloads for sid in p["shipment_ids"]}
    pks = {p["order_pk"] for p in payloads}
    rows = await ctx.store.shipments.of_orders(pks)
    by_pk = await ctx.store.orders.by_pks(pks)  # one query, not one per order
    moves = []
    for pk in pks:
        order = by_pk.get(pk)
        if order is None or order.state != S.shipped:
            continue
        live = [r for r in rows[pk] if r.state in LIVE_SHIPMENTS]
        if all(r.state == SH.posted or r.shipment_id in posted_ids for r in live):
            tracking = ", ".join(t for p in payloads if p["order_pk"] == pk for t in p["body"]["tracking_numbers"])
            moves.append(Move(pk, S.confirmed, (S.shipped,), f"UltraCart accepted tracking {tracking}"))
    async with ctx.store.atomic() as tx:
        await tx.tasks.finish([t.id for t in tasks], state=TaskState.done)
        await tx.shipments.mark_posted(ctx.id, sorted(posted_ids))
        done = await tx.orders.move_many(moves, actor=A.shipment_upload)
    stats["tracking_posted"] += len(tasks)
    stats["orders_confirmed"] += len(moves)
    if consumes_on(ctx, "confirmed"):
        for m, ok in zip(moves, done):
            order = by_pk[m.pk]
            if ok and order.warehouse_order is not None:
                stats["consumptions_asked"] += len(await ask_to_consume(ctx, order.warehouse_order.order, source="confirmed",
                                                                        lines=order.warehouse_order.lines))


async def acknowledge_at_warehouse(ctx: ServiceContext) -> None:
    """Tell the warehouse which shipments' tracking reached UltraCart (when it supports that)."""
    if not ctx.warehouse.capabilities.shipment_ack:
        return
    while True:
        rows = await ctx.store.shipments.needing_ack(ctx.id, limit=100)
        if not rows:
            break
        await ctx.warehouse.acknowledge_shipments([r.shipment for r in rows])
        await ctx.store.shipments.mark_acked(ctx.id, [r.shipment_id for r in rows])
        ctx.stats["warehouse_acknowledged"] += len(rows)
