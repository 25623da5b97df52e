"""Orders change after hand-off: the connector learns of every change UltraCart makes (webhooks,
and a scheduled re-read of every open order as the backstop) and acts on it.

| the order is                      | UltraCart says                          | the connector does |
|-----------------------------------|-----------------------------------------|--------------------|
| not sent (received/held/ready/failed) | rejected, refunded in full, deleted | `cancelled`; never sent |
| at the warehouse, not shipped     | rejected, refunded in full              | `cancelling` -> cancel at the warehouse -> `cancelled`, or `cancel_failed` + an alert saying what to do |
| at the warehouse                  | refunded in part, address or items edited | updated at the warehouse where its API allows, else an alert naming what changed |
| not sent                          | held (fulfillment_hold)                 | held (cart hold) until UltraCart releases it |
| shipped / confirmed               | rejected or refunded                    | a timeline entry and an alert: shipped before it was cancelled |

A cancel at the warehouse is claim (outbox task) -> call -> record, like a create: a crash
between the warehouse's answer and the record is resolved by looking the order up first.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from connector.domain import CancelOutcome, Order, WarehouseOrder
from connector.errors import ErrorClass, TransientError, VendorError
from connector.failpoints import failpoint
from connector.lifecycle import AT_WAREHOUSE, NOT_SENT, SHIPPED, Actor, HoldKind, OrderState, Reason, TaskState, hold
from connector.pipeline.context import Alert, ServiceContext
from connector.pipeline.intake import prepare_orders, replacement
from connector.store import Move, NewOrder, OrderRecord
from connector.store.tasks import tried
from mappings.changes import cart_change
from mappings.rules import lines_for_dc
from mappings.skus import map_lines

S = OrderState
CANCEL_TASK = "cancel_order"
UPDATE_TASK = "update_order"
BATCH_READ = 500  # UltraCart's batch order read takes at most 500 ids
RECENTLY_SHIPPED_HOURS = 24
OPEN = (S.received, S.held, S.ready, S.submitting, S.in_doubt, S.failed, S.at_warehouse, S.partially_shipped, S.cancel_failed)


# ---------------------------------------------------------------------------------------- learning
async def apply_cart_copy(ctx: ServiceContext, record: OrderRecord, new: NewOrder, *, event: str, actor: Actor) -> str:
    """Act on what a fresh UltraCart copy of a stored order says. Returns what was done ("" when
    the copy brings nothing new). Idempotent: the same copy twice does nothing the second time."""
    if not new.order_json:
        return ""
    new_order = Order.model_validate_json(new.order_json)
    held_by_cart = record.state == S.held and record.hold_kind == HoldKind.cart_hold
    change = cart_change(record.order, new_order, event=event, was_held_by_cart=held_by_cart)
    if not change.anything:
        return ""
    state = S(record.state)
    keep = dict(order_json=new.order_json, raw_json=new.raw_json)  # the next comparison is against this copy
    moves: list[Move] = []
    alerts: list[Alert] = []
    tasks: list[dict[str, Any]] = []
    did = ""
    known_cancel = record.cancel_requested
    if change.cancel is not None and known_cancel is None:  # cancel_reason: the cancellation already taken in
        c = change.cancel
        if state in NOT_SENT:
            moves.append(Move(record.id, S.cancelled, (state,), c, dict(keep, cancel_reason=c.to_json())))
            did = f"cancelled before it was sent: {c.text}"
        elif state in (S.submitting, S.in_doubt):
            # The create may have happened: remembered, acted on once the lookup says where it is.
            moves.append(Move(record.id, state, (state,), f"{c.text}; will be cancelled once the create's outcome is known",
                              dict(keep, cancel_reason=c.to_json())))
            did = "cancellation remembered until the create's outcome is known"
        elif state in AT_WAREHOUSE:
            moves.append(Move(record.id, S.cancelling, (state,), c, dict(keep, cancel_reason=c.to_json())))
            tasks.append(cancel_task(record))
            did = f"cancelling at the warehouse: {c.text}"
        elif state in SHIPPED:
            moves.append(Move(record.id, state, (state,), f"{c.text} after it shipped", dict(keep, cancel_reason=c.to_json())))
            alerts.append((ctx.id, "shipped_before_cancel", record.order_id,
                           f"Order {record.order_id} was {c.text} after it shipped (warehouse order {record.warehouse_order_id or '?'}): "
                           "intercept the parcel with the carrier or arrange a return."))
            did = "recorded: cancelled after it shipped"
        else:
            moves.append(Move(record.id, state, (state,), f"UltraCart says: {c.text}", dict(keep, cancel_reason=c.to_json())))
            did = "recorded"
    elif change.cancel is None and state not in (S.cancelled, S.cancelling, S.cancel_failed):
        if change.hold is True:
            if state in NOT_SENT:
                moves.append(Move(record.id, S.held, (state,), hold(HoldKind.cart_hold, detail=new_order.stage or event), keep))
                did = "held: UltraCart holds it"
            elif state in AT_WAREHOUSE:
                moves.append(Move(record.id, state, (state,), "put on hold in UltraCart after it reached the warehouse", keep))
                alerts.append((ctx.id, "held_after_handoff", record.order_id,
                               f"Order {record.order_id} was put on hold in UltraCart after it reached the warehouse (warehouse order "
                               f"{record.warehouse_order_id or '?'}): hold it at the warehouse if it must not ship."))
                did = "alerted: held after hand-off"
        elif change.hold is False and held_by_cart:
            moves.append(Move(record.id, S.received, (S.held,), "released in UltraCart; evaluated afresh", dict(keep, warehouse_json="")))
            did = "released: UltraCart released its hold"
        if change.edits or change.refunds:
            what = "; ".join(change.refunds + change.edits)
            if state in NOT_SENT and not moves:
                move = replacement(record, new)
                if move is not None:
                    moves.append(move)
                    did = f"took the changed copy: {what}"
            elif state in AT_WAREHOUSE + (S.submitting, S.in_doubt):
                moves.append(Move(record.id, state, (state,), f"changed in UltraCart after hand-off: {what}", keep))
                address, lines = bool([e for e in change.edits if e.startswith("ship-to")]), bool(change.refunds or
                                                                                                  [e for e in change.edits if not e.startswith(("ship-to", "ship method"))])
                if state in AT_WAREHOUSE and _can_update(ctx, address=address, lines=lines):
                    tasks.append(dict(kind=UPDATE_TASK, key=f"{record.reference}:{hashlib.sha1(new.order_json.encode()).hexdigest()[:12]}",
                                      payload=dict(order_pk=record.id, address=address, lines=lines, what=what)))
                    did = f"updating at the warehouse: {what}"
                else:
                    alerts.append((ctx.id, "changed_after_handoff", record.order_id,
                                   f"Order {record.order_id} changed in UltraCart after it reached the warehouse (warehouse order "
                                   f"{record.warehouse_order_id or '?'}): {what}. Make the same change at the warehouse by hand."))
                    did = f"alerted: changed after hand-off ({what})"
            elif state in SHIPPED:
                moves.append(Move(record.id, state, (state,), f"changed in UltraCart after it shipped: {what}", keep))
                did = "recorded: changed after it shipped"
    if not moves:
        return ""
    async with ctx.store.atomic() as tx:
        applied = await tx.orders.move_many(moves, actor=actor)
        if all(applied):
            await tx.tasks.put_many(ctx.id, tasks)
    if not all(applied):
        return ""  # the order moved on meanwhile: the next re-read sees it afresh
    await ctx.alert(alerts)
    return did


def cancel_task(record: OrderRecord) -> dict[str, Any]:
    return dict(kind=CANCEL_TASK, key=record.reference, replace=True,
                payload=dict(order_pk=record.id, order_id=record.order_id, reference=record.reference, warehouse_order_id=record.warehouse_order_id))


def _can_update(ctx: ServiceContext, *, address: bool, lines: bool) -> bool:
    caps = ctx.warehouse.capabilities
    return (not address or getattr(caps, "update_address", False)) and (not lines or getattr(caps, "update_lines", False))


async def take_cart_copies(ctx: ServiceContext, raws: list[dict[str, Any]], *, event: str, actor: Actor) -> dict[str, str]:
    """Fresh copies of orders (webhook events): the ones the connector knows are acted on.
    Returns order id -> what was done ("" when nothing was new) for every known order."""
    prepared = prepare_orders(ctx, raws)
    known = {}
    for row in prepared.rows:
        found = [r for r in await ctx.store.orders.find(row.order_id, ctx.id) if r.dc == ctx.dc]
        if found:
            known[row.order_id] = (found[0], row)
    return {order_id: await apply_cart_copy(ctx, record, row, event=event, actor=actor) for order_id, (record, row) in known.items()}


# ---------------------------------------------------------------------------------------- the service
async def follow_changes(ctx: ServiceContext) -> None:
    """The `order_changes` service: re-read open orders from UltraCart (the backstop for lost
    webhooks), escalate cancellations remembered while a create was in doubt, then carry out
    cancels and updates at the warehouse."""
    await reconcile(ctx)
    await escalate_remembered_cancels(ctx)
    await send_cancels(ctx)
    await send_updates(ctx)


async def reconcile(ctx: ServiceContext) -> None:
    """Re-read every open order (not yet shipped, or shipped in the last day) with the batch
    order read: O(open orders / 500) calls."""
    since = ctx.now().timestamp() - RECENTLY_SHIPPED_HOURS * 3600
    after = 0
    while True:
        rows = await ctx.store.orders.in_states(ctx.id, OPEN + (S.shipped, S.confirmed), limit=BATCH_READ, after_pk=after)
        if not rows:
            break
        after = rows[-1].id
        rows = [r for r in rows if r.state not in SHIPPED or (r.updated_at and r.updated_at.timestamp() >= since)]
        if not rows:
            continue
        raws = await ctx.cart.get_orders([r.order_id for r in rows])
        ctx.stats["reread"] += len(raws)
        by_id = {str(r.get("order_id")): r for r in raws if isinstance(r, dict)}
        for record in rows:
            raw = by_id.get(record.order_id)
            if raw is None:
                continue  # not in the batch answer: absence alone does not mean deleted
            prepared = prepare_orders(ctx, [raw])
            if prepared.rows and await apply_cart_copy(ctx, record, prepared.rows[0], event="reread", actor=Actor.order_changes):
                ctx.stats["changes_applied"] += 1


async def escalate_remembered_cancels(ctx: ServiceContext) -> None:
    """An order whose cancellation arrived while its create was in doubt, and which turned out to
    be at the warehouse: cancel it there now."""
    for record in await ctx.store.orders.in_states(ctx.id, AT_WAREHOUSE):
        reason = record.cancel_requested
        if reason is None:
            continue
        async with ctx.store.atomic() as tx:
            if await tx.orders.move(Move(record.id, S.cancelling, (S(record.state),), reason), actor=Actor.order_changes):
                await tx.tasks.put_many(ctx.id, [cancel_task(record)])
                ctx.stats["cancels_queued"] += 1


async def send_cancels(ctx: ServiceContext) -> None:
    while True:
        tasks = await ctx.store.tasks.claim(ctx.id, CANCEL_TASK, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=20)
        if not tasks:
            return
        for task in tasks:
            await _cancel_one(ctx, task)


async def _cancel_one(ctx: ServiceContext, task: Any) -> None:
    p = task.data
    record = await ctx.store.orders.get(p["order_pk"])
    if record is None or record.state != S.cancelling:
        await ctx.store.tasks.finish([task.id], state=TaskState.done)
        if record is not None and record.state in SHIPPED + (S.partially_shipped,):
            await ctx.alert([(ctx.id, "shipped_before_cancel", record.order_id,
                              f"Order {record.order_id} shipped before the warehouse could cancel it: intercept the parcel or arrange a return.")])
        return
    reason = record.cancel_requested or Reason("cancelled", {"text": "cancelled"})
    try:
        if tried(task):
            # An earlier attempt's answer was lost: look before asking again.
            found = await ctx.warehouse.find_order(record.reference)
            if found is not None and found.cancelled:
                await _record_cancel(ctx, task, record, S.cancelled, reason, "the warehouse already shows it cancelled")
                return
        result = await ctx.warehouse.cancel_order(record.reference)
    except VendorError as exc:
        if exc.error_class in (ErrorClass.rate_limited, ErrorClass.configuration):
            await ctx.store.tasks.finish([task.id], state=TaskState.pending, next_attempt_at=ctx.now(), error=str(exc), count_attempt=False)
            raise
        if exc.error_class is ErrorClass.permanent:
            await _record_cancel(ctx, task, record, S.cancel_failed, f"the warehouse refused the cancel: {exc}", "")
            await ctx.alert([(ctx.id, "cancel_failed", record.order_id, f"Order {record.order_id}: the warehouse refused the cancel ({exc}). "
                              f"Cancel warehouse order {record.warehouse_order_id or record.reference} by hand, then `connector cancel {record.order_id} --done`.")])
            return
        # Transient, or in doubt: the same as no answer (an in-doubt error must not come back due
        # "now", or the claim loop would ask again at once).
        await _later(ctx, task, record, f"{exc}", "cancel_retry")
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a 200 with a body nobody can read: the cancel may have happened
        await _later(ctx, task, record, f"unexpected answer: {type(exc).__name__}: {ctx.redactor.text(str(exc))[:300]}", "cancel_in_doubt")
        return
    failpoint("after_cancel_before_record")
    if result.outcome is CancelOutcome.cancelled:
        await _record_cancel(ctx, task, record, S.cancelled, reason, f"cancelled at {ctx.warehouse.name}")
    elif result.outcome is CancelOutcome.too_late:
        await _record_cancel(ctx, task, record, S.cancel_failed, f"too late to cancel at {ctx.warehouse.name}: {result.reason}", "")
        await ctx.alert([(ctx.id, "cancel_too_late", record.order_id,
                          f"Order {record.order_id} ({reason.text}) could not be cancelled at the warehouse: {result.reason}. "
                          f"Warehouse order {record.warehouse_order_id or record.reference}: intercept the parcel with the carrier or "
                          "arrange a return.")])
    elif result.outcome is CancelOutcome.by_hand:
        await _record_cancel(ctx, task, record, S.cancel_failed, f"cancel by hand at the warehouse: {result.reason}", "")
        await ctx.alert([(ctx.id, "cancel_by_hand", record.order_id,
                          f"Order {record.order_id} ({reason.text}): {result.reason or ctx.warehouse.name + ' cannot cancel it'}. Make sure "
                          f"warehouse order {record.warehouse_order_id or record.reference} (reference {record.reference}) is cancelled "
                          f"there, then `connector cancel {record.order_id} --done`.")])
    else:  # unknown: looked up on the next attempt before asking again
        await _later(ctx, task, record, f"outcome unknown: {result.reason}", "cancel_in_doubt")


async def _later(ctx: ServiceContext, task: Any, record: OrderRecord, error: str, stat: str) -> None:
    """No usable answer (timeout, 5xx, an unknown outcome, a body nobody can read): try again
    after a backoff like any transient failure, looking the order up first (the task is marked
    tried); when the retry policy gives up, the order ends `cancel_failed` with an alert, never
    left `cancelling` in silence. A warehouse that never answers must not spin the pass."""
    d = ctx.retry.decide(TransientError(error, vendor=ctx.warehouse.name), attempts=task.attempts, first_attempt_at=task.created_at, now=ctx.now())
    ctx.stats[stat] += 1
    if d.action != "fail":
        await ctx.store.tasks.finish([task.id], state=TaskState.pending, next_attempt_at=d.next_attempt_at or ctx.now(), error=error)
        return
    await _record_cancel(ctx, task, record, S.cancel_failed, f"the warehouse never confirmed the cancel: {error}", "")
    await ctx.alert([(ctx.id, "cancel_failed", record.order_id, f"Order {record.order_id}: {ctx.warehouse.name} never confirmed the "
                      f"cancel ({error}). Check warehouse order {record.warehouse_order_id or record.reference} there; cancel it by "
                      f"hand if it is still open, then `connector cancel {record.order_id} --done`.")])


async def _record_cancel(ctx: ServiceContext, task: Any, record: OrderRecord, to: S, reason: Reason | str, note: str) -> None:
    why = Reason(reason.kind, {**reason.details, "how": note}) if note and isinstance(reason, Reason) else reason
    async with ctx.store.atomic() as tx:
        await tx.orders.move(Move(record.id, to, (S.cancelling,), why), actor=Actor.order_changes)
        await tx.tasks.finish([task.id], state=TaskState.done)
    ctx.stats["cancelled" if to == S.cancelled else "cancel_failed"] += 1


async def send_updates(ctx: ServiceContext) -> None:
    """Address and line changes the warehouse's API can take (capabilities update_address/lines)."""
    tasks = await ctx.store.tasks.claim(ctx.id, UPDATE_TASK, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=20)
    for task in tasks:
        p = task.data
        record = await ctx.store.orders.get(p["order_pk"])
        if record is None or record.state not in AT_WAREHOUSE or record.order is None or record.warehouse_order is None:
            await ctx.store.tasks.finish([task.id], state=TaskState.done)
            continue
        lines = record.warehouse_order.lines
        if p["lines"]:
            # The lines as UltraCart has them now, mapped as at hand-off (aliases, kits, refunded
            # units taken off): the stored warehouse order still holds the old ones.
            mapping = map_lines(lines_for_dc(record.order.lines, ctx.dc), ctx.merchant.sku_map())
            if mapping.problems:
                await ctx.store.tasks.finish([task.id], state=TaskState.done, error="; ".join(mapping.problems))
                await ctx.alert([(ctx.id, "changed_after_handoff", record.order_id,
                                  f"Order {record.order_id} changed in UltraCart after it reached the warehouse ({p['what']}), and its new "
                                  f"lines cannot be sent ({'; '.join(mapping.problems)}): change warehouse order "
                                  f"{record.warehouse_order_id} by hand.")])
                continue
            lines = mapping.lines
        wo = WarehouseOrder(reference=record.reference, order=record.order, ship_method=record.warehouse_order.ship_method, lines=lines)
        try:
            said = await ctx.warehouse.update_order(wo, record.warehouse_order_id, address=p["address"], lines=p["lines"])
        except VendorError as exc:
            if exc.error_class in (ErrorClass.rate_limited, ErrorClass.configuration):
                await ctx.store.tasks.finish([task.id], state=TaskState.pending, next_attempt_at=ctx.now(), error=str(exc), count_attempt=False)
                raise
            if exc.error_class is ErrorClass.permanent:
                await ctx.store.tasks.finish([task.id], state=TaskState.done, error=str(exc))
                await ctx.alert([(ctx.id, "changed_after_handoff", record.order_id,
                                  f"Order {record.order_id} changed in UltraCart after it reached the warehouse ({p['what']}) and the "
                                  f"warehouse refused the update ({exc}): change warehouse order {record.warehouse_order_id} by hand.")])
                continue
            await ctx.store.tasks.finish([task.id], state=TaskState.pending, next_attempt_at=ctx.now(), error=str(exc))
            continue
        await ctx.store.orders.move(Move(record.id, S(record.state), (S(record.state),), f"updated at the warehouse: {p['what']} ({said})",
                                         dict(warehouse_json=wo.model_dump_json())),  # what the warehouse holds now
                                    actor=Actor.order_changes)
        await ctx.store.tasks.finish([task.id], state=TaskState.done)
        ctx.stats["updated_at_warehouse"] += 1
