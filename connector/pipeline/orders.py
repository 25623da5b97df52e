"""Order download (UltraCart queue -> store -> acknowledgement) and order delivery (store ->
rules and mapping -> warehouse, exactly once).

Download promise: nothing is acknowledged before it is committed locally. A crash between the
commit and the acknowledgement only means UltraCart sends the order again; the unique key
(merchant, DC, order id) absorbs the repeat and the stored order is acknowledged next time.

Delivery promise: each order is created at most once per warehouse. Sends are claim (commit) ->
call (no transaction open) -> record (commit); an unknown outcome leaves the order `in_doubt`,
resolved by looking its reference up before anything is sent again. A steady window of creates
is kept in flight (claiming as each one finishes), so a slow warehouse drains at its budget.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from connector import metrics
from connector.domain import WarehouseOrder
from connector.errors import ErrorClass, TransientError, VendorError
from connector.failpoints import failpoint
from connector.lifecycle import PRE_WAREHOUSE, Actor, HoldKind, OrderState
from connector.pipeline.context import IdleWhen, ServiceContext
from connector.pipeline.intake import ALERTED_HOLDS, hold_alerts, prepare_orders, resolve_hold_alerts, take_in
from connector.store import Move, OrderRecord
from mappings.rules import decide

S = OrderState
A = Actor
ACK_BATCH = 100
MAX_ROUNDS = 10_000  # a queue of a million orders; past that something is wrong with the loop
QUEUE_IGNORES_ACKS = "ultracart_acks_ignored"
# Held orders the rules do not release: the cart's own hold, an operator's, and payloads that
# cannot be sent as they are (an operator re-reads them from UltraCart, or skips them).
NOT_REEVALUATED = (HoldKind.cart_hold, HoldKind.malformed, HoldKind.unsafe_text)


async def acknowledge(ctx: ServiceContext, ids: list[str], as_sent: dict[str, str] | None = None) -> int:
    """Acknowledge stored orders to UltraCart, 100 ids per call, then note that we did.

    `as_sent`: stored id -> the id UltraCart sent, where they differ (control characters removed)."""
    for i in range(0, len(ids), ACK_BATCH):
        chunk = ids[i : i + ACK_BATCH]
        ctx.store.check_file()  # committed to a deleted file is not committed: never acknowledge that
        await ctx.cart.acknowledge([(as_sent or {}).get(x, x) for x in chunk])
        failpoint("after_ack_before_record")
        await ctx.store.orders.mark_acked(ctx.id, ctx.dc, chunk)
    return len(ids)


async def acknowledge_pending(ctx: ServiceContext) -> int:
    """Acknowledge every stored order UltraCart has not yet been told about (crash leftovers and
    webhook arrivals)."""
    total = 0
    while ids := await ctx.store.orders.unacked_ids(ctx.id, ctx.dc, ACK_BATCH):
        total += await acknowledge(ctx, ids)
    return total


async def download_orders(ctx: ServiceContext) -> None:
    """Drain the DC queue: fetch <= 100, store them in one transaction, commit, acknowledge, repeat.

    In a dry run nothing is acknowledged, so UltraCart keeps handing back the same (at most 100)
    orders: one fetch per pass stores them, and the first live pass acknowledges them."""
    st = ctx.stats
    if ctx.merchant.dry_run:
        raws = await ctx.cart.fetch_orders()
        prepared = prepare_orders(ctx, raws)
        taken = await take_in(ctx, prepared, source="poll", actor=A.order_download)
        st.update(fetched=len(raws), new=len(taken.new), repeats=taken.repeats, changed=len(taken.replaced))
        ctx.notes.append("dry run: stored, not acknowledged (UltraCart returns the same orders until a live pass acknowledges them)")
        return
    st["acknowledged"] += await acknowledge_pending(ctx)
    previous: frozenset[str] | None = None
    for _ in range(MAX_ROUNDS):
        if ctx.stop_requested():
            ctx.notes.append("the daemon is stopping")
            return
        raws = await ctx.cart.fetch_orders()
        if not raws:
            break
        st["rounds"] += 1
        st["fetched"] += len(raws)
        prepared = prepare_orders(ctx, raws)
        st["unidentifiable"] += prepared.unidentifiable
        taken = await take_in(ctx, prepared, source="poll", actor=A.order_download)
        st["new"] += len(taken.new)
        st["repeats"] += taken.repeats
        st["changed"] += len(taken.replaced)
        st["held_at_intake"] += taken.held
        failpoint("after_commit_before_ack")
        # The whole batch, repeats included: a repeat means UltraCart did not get (or keep) our
        # earlier acknowledgement, and it will keep sending the order until it does.
        ids = [r.order_id for r in prepared.rows]
        st["acknowledged"] += await acknowledge(ctx, ids, prepared.ack_ids)
        batch = frozenset(ids)
        if batch and batch == previous:
            # UltraCart handed back the same orders right after acknowledging them: it is not
            # accepting acknowledgements. Stop rather than spin; alert once; the next pass retries.
            st["queue_ignores_acks"] = 1
            ctx.notes.append(f"UltraCart returned the same {len(batch)} order(s) after they were acknowledged")
            await ctx.alert([(ctx.id, QUEUE_IGNORES_ACKS, ctx.dc, f"Distribution center {ctx.dc}: UltraCart returned the same "
                              f"{len(batch)} order(s) right after they were acknowledged (e.g. {sorted(batch)[0]}).")])
            return
        if not prepared.rows:
            ctx.notes.append("the queue holds only orders without an order_id")
            return
        previous = batch
    await ctx.store.alerts.resolve(ctx.id, QUEUE_IGNORES_ACKS, now=ctx.now())


# ---------------------------------------------------------------------------- delivery
def delivery_idle(ctx: ServiceContext) -> IdleWhen | None:
    """A delivery pass has nothing to do when no order is before the warehouse (nothing to
    recover, look up, evaluate or send) and no hold alert is open (none to close). A dry run is
    never idle: it reports what it would send."""
    return None if ctx.merchant.dry_run else IdleWhen(no_orders_in=tuple(PRE_WAREHOUSE), no_alerts_in=tuple(ALERTED_HOLDS))


async def deliver_orders(ctx: ServiceContext) -> None:
    """One delivery pass: recover stale claims, resolve doubts, apply rules, send what is ready."""
    ctx.stats["recovered"] += await ctx.store.orders.expire_claims(ctx.id)
    await resolve_in_doubt(ctx)
    await evaluate_orders(ctx)
    if ctx.merchant.dry_run:
        ctx.notes.append("dry run: nothing is sent")
        return
    await send_ready(ctx)


async def _none() -> None:
    return None


async def evaluate_orders(ctx: ServiceContext) -> None:
    """Apply the order rules to new and held orders with the current config.

    Held orders are re-evaluated on every pass, so adding the missing mapping (and reloading)
    releases them without anyone touching the order.
    """
    st = ctx.stats
    rules, skus, methods = ctx.merchant.order_rules(), ctx.merchant.sku_map(), ctx.merchant.ship_methods
    caps = ctx.warehouse.capabilities
    catalog_loaded = False
    known_skus = known_methods = None
    after = 0
    while True:
        rows = await ctx.store.orders.in_states(ctx.id, (S.received, S.held), limit=500, after_pk=after)
        if not rows:
            break
        after = rows[-1].id
        if not catalog_loaded:
            # One catalog read per pass, and only when there is something to check; both at
            # once (an order pushed by webhook waits on them: one round trip, not two).
            known_skus, known_methods = await asyncio.gather(_none() if not caps.sku_catalog else ctx.warehouse.known_skus(),
                                                             _none() if not caps.ship_method_catalog else ctx.warehouse.known_ship_methods())
            catalog_loaded = True
        now = ctx.now()
        moves: list[Move] = []
        alerts = []
        for row in rows:
            held = row.hold if row.state == S.held else None
            if held is not None and held.kind in NOT_REEVALUATED or row.order is None:
                continue
            manual = str(held.details.get("note") or "") if held is not None and held.kind == HoldKind.manual_hold else None
            d = decide(row.order, rules=rules, skus=skus, ship_methods=methods, known_skus=known_skus, known_ship_methods=known_methods,
                       received_at=row.received_at, now=now, manual_hold=manual, dc=ctx.dc, released=row.released_at is not None)
            if d.outcome == "ready":
                wo = WarehouseOrder(reference=row.reference, order=row.order, ship_method=d.ship_method or "", lines=d.lines)
                why = f"mapped {len(d.lines)} line(s), ship method {d.ship_method!r}"
                if row.state == S.held:
                    why = f"released ({row.reason} no longer applies); {why}"
                    st["released"] += 1
                fields = dict(warehouse_json=wo.model_dump_json(), next_attempt_at=None)
                if ctx.merchant.dry_run:
                    # What a live run would send: the vendor's own request body, shown by `connector order`.
                    try:
                        fields["sent_request"] = json.dumps(await ctx.warehouse.create_request(wo), default=str)
                    except TransientError:
                        raise  # the pass stops as on any read that failed
                    except VendorError as exc:  # what the live create would have stopped on
                        fields["sent_request"] = json.dumps({"would_fail": exc.message})
                    why += " (dry run: not sent)"
                moves.append(Move(row.id, S.ready, (S.received, S.held), why, fields))
                st["ready"] += 1
            elif d.outcome == "hold":
                if row.state == S.held and row.hold_detail == d.why.to_json():
                    continue  # still held for the same reason: nothing to write
                moves.append(Move(row.id, S.held, (S.received, S.held), d.why))
                alerts += hold_alerts(ctx.id, row.order_id, d.why)
                st["held"] += 1
            else:
                moves.append(Move(row.id, S.skipped, (S.received, S.held), d.why))
                st["skipped"] += 1
        await ctx.store.orders.move_many(moves, actor=A.order_delivery)
        await ctx.alert(alerts)
    await resolve_hold_alerts(ctx)


async def resolve_in_doubt(ctx: ServiceContext) -> None:
    """Look every in-doubt order up by reference: found -> at the warehouse; absent -> ready (or
    cancelled, when the cart cancelled it meanwhile). A lookup that fails leaves the order in
    doubt for the next pass; a vendor error that concerns the whole pass stops it."""
    rows = await ctx.store.orders.in_states(ctx.id, (S.in_doubt,), limit=10_000)
    sem = asyncio.Semaphore(ctx.concurrency)

    async def one(row: OrderRecord) -> Move | None:
        async with sem:
            found = await ctx.warehouse.find_order(row.reference)
        if found is not None:
            ctx.stats["doubt_found"] += 1
            return Move(row.id, S.at_warehouse, (S.in_doubt,), f"found at the warehouse by reference {row.reference} (id {found.warehouse_order_id})",
                        dict(warehouse_order_id=found.warehouse_order_id, lease_owner="", lease_until=None, last_error=""))
        ctx.stats["doubt_absent"] += 1
        cancel = row.cancel_requested
        if cancel is not None:
            return Move(row.id, S.cancelled, (S.in_doubt,), cancel, dict(lease_owner="", lease_until=None))
        return Move(row.id, S.ready, (S.in_doubt,), f"not at the warehouse (reference {row.reference}); will send again", dict(lease_owner="", lease_until=None))

    for i in range(0, len(rows), 100):
        results = await asyncio.gather(*(one(r) for r in rows[i : i + 100]), return_exceptions=True)
        await ctx.store.orders.move_many([r for r in results if isinstance(r, Move)], actor=A.order_delivery)
        stop = None
        for row, r in zip(rows[i : i + 100], results):
            if isinstance(r, BaseException):
                ctx.stats["doubt_unresolved"] += 1
                if isinstance(r, VendorError) and r.error_class in (ErrorClass.configuration, ErrorClass.rate_limited):
                    stop = stop or r
                elif not isinstance(r, VendorError):
                    ctx.log.error("looking an in-doubt order up failed; it stays in doubt", order=row.order_id, error=f"{type(r).__name__}: {r}")
        if stop is not None:
            raise stop


async def send_ready(ctx: ServiceContext) -> None:
    """Create ready orders at the warehouse, `concurrency` creates in flight.

    Orders are claimed, and finished creates recorded, in steps of half the window, one
    transaction per step (one per order cost more CPU than the create itself): up to a step of
    claimed orders waits for a free slot, so the window stays full however slow the warehouse
    answers. A claimed order that never got its call (the pass stopped) is made ready again; if
    the process dies first, it is looked up like any other claim before anything is resent.

    A create's trouble is that order's alone (retry, fail, or in doubt), except rate limits and
    configuration errors, which stop claiming; calls already in flight are finished and
    recorded before the pass ends."""
    window = max(1, ctx.concurrency)
    step = max(1, window // 2)  # claim and record in steps of this many
    flying: dict[asyncio.Task, OrderRecord] = {}
    waiting: deque[OrderRecord] = deque()  # claimed, waiting for a slot
    finished: list[Created] = []
    stop: VendorError | None = None
    transient_run = attempted = 0
    last_transient: VendorError | None = None
    drained = False  # the last claim found fewer ready orders than it asked for

    try:
        while True:
            halted = stop is not None or ctx.stop_requested()
            if halted and waiting:
                await _unclaim(ctx, waiting, stop)
                attempted -= len(waiting)
                waiting.clear()
            while waiting and len(flying) < window:
                row = waiting.popleft()
                flying[asyncio.create_task(_create(ctx, row))] = row
            room = 0 if halted else window + step - len(flying) - len(waiting)
            if (not flying and not waiting) or len(finished) >= step or (room >= step and not drained):
                claimed = await _record_and_claim(ctx, finished, room)
                finished = []
                drained = len(claimed) < room
                attempted += len(claimed)
                if claimed:
                    failpoint("after_claim_before_send")
                    waiting.extend(claimed)
                    continue
                if not flying:
                    break
            transient_run, last_transient, stop = _tally(ctx, await _wait_some(flying), finished, window, transient_run, last_transient, stop)
    except Exception:
        # The pass is failing (the database, say): no claim of ours may be left submitting,
        # where this live process's heartbeat would renew it for ever. Let the calls in flight
        # end, record them and give the waiting orders back. (A cancel at stop is not caught:
        # the stop releases every claim of ours as in doubt.)
        await _give_back(ctx, flying, finished, waiting)
        raise
    if stop is None and attempted and transient_run == attempted and last_transient is not None:
        stop = _down(ctx, attempted, last_transient)  # raised so the circuit breaker counts the pass
    if ctx.stop_requested() and stop is None:
        ctx.notes.append("the daemon is stopping: no new orders were claimed")
    if stop is not None:
        raise stop


async def _give_back(ctx: ServiceContext, flying: dict[asyncio.Task, OrderRecord], finished: list[Created], waiting: deque[OrderRecord]) -> None:
    try:
        if flying:
            finished = finished + list(await asyncio.gather(*flying))  # _create never raises
        if finished:
            await ctx.store.orders.move_many([c.move for c in finished], actor=A.order_delivery)
        if waiting:
            await _unclaim(ctx, waiting, None)
    except Exception as exc:  # noqa: BLE001 - the original error is the one to report
        ctx.log.error("could not record the creates of a failing pass; their orders stay submitting until the daemon stops or restarts, then they are looked up",
                      error=f"{type(exc).__name__}: {exc}"[:300])


async def _unclaim(ctx: ServiceContext, rows: deque[OrderRecord], stop: VendorError | None) -> None:
    """Claimed orders whose call never started: ready again, the attempt not counted."""
    why = f"not sent: the pass stopped ({ctx.redactor.text(str(stop))})" if stop is not None else "not sent: the pass stopped"
    moves = []
    for r in rows:
        fields: dict[str, Any] = dict(lease_owner="", lease_until=None, attempts=max(0, r.attempts - 1))
        moves.append(Move(r.id, S.ready, (S.submitting,), why[:500], fields))
    await ctx.store.orders.move_many(moves, actor=A.order_delivery)


async def _wait_some(flying: dict[asyncio.Task, OrderRecord]) -> list[Created]:
    done, _ = await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        flying.pop(task)
    failpoint("after_send_before_record")
    return [task.result() for task in done]  # _create never raises


def _tally(ctx: ServiceContext, done: list[Created], finished: list[Created], window: int, transient_run: int,
           last_transient: VendorError | None, stop: VendorError | None) -> tuple[int, VendorError | None, VendorError | None]:
    """Add finished creates to `finished`; count a run of transient failures; decide whether to stop claiming."""
    for created in done:
        finished.append(created)
        error = created.error
        if error is None:
            transient_run = 0
        elif isinstance(error, VendorError) and error.error_class in (ErrorClass.configuration, ErrorClass.rate_limited):
            stop = stop or error
        elif isinstance(error, VendorError) and error.error_class is ErrorClass.transient:
            transient_run += 1
            last_transient = error
            if transient_run >= window and stop is None:
                # Every create in a window failed the same way: the warehouse is down, not
                # these orders. Stop instead of burning every queued order's attempts.
                stop = _down(ctx, transient_run, error)
    return transient_run, last_transient, stop


def _down(ctx: ServiceContext, n: int, error: VendorError) -> TransientError:
    return TransientError(f"every create of the last {n} failed; stopping this pass: {error}", vendor=ctx.warehouse.name)


@dataclass
class Created:
    """How one create ended: the order's next move, the error if it failed."""

    row: OrderRecord
    move: Move
    error: BaseException | None = None
    existed: bool = False  # the warehouse already had the reference

    @property
    def outcome(self) -> str:
        if self.existed:
            return "already_existed"
        return {S.at_warehouse: "created", S.ready: "retry", S.failed: "failed", S.in_doubt: "in_doubt"}[self.move.to]


async def _record_and_claim(ctx: ServiceContext, finished: list[Created], claim: int) -> list[OrderRecord]:
    if not finished and claim <= 0:
        return []
    async with ctx.store.atomic() as tx:
        if finished:
            await tx.orders.move_many([c.move for c in finished], actor=A.order_delivery)
        claimed = await tx.orders.claim_ready(ctx.id, owner=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=claim) if claim > 0 else []
    for c in finished:
        ctx.stats[c.outcome] += 1
    try:  # the claims are committed: nothing may keep them from their calls
        await ctx.alert([(ctx.id, "order_failed", c.row.order_id, f"order {c.row.order_id}: {c.move.reason}") for c in finished if c.move.to == S.failed])
    except Exception as exc:  # noqa: BLE001 - the orders' failures are recorded; only their alerts are lost, and said here
        ctx.log.error("could not raise the alerts of failed orders", orders=[c.row.order_id for c in finished if c.move.to == S.failed],
                      error=f"{type(exc).__name__}: {exc}"[:300])
    return claimed


async def _create(ctx: ServiceContext, row: OrderRecord) -> Created:
    """One create, never raising: the order's next move, and the error if it failed."""
    adapter = ctx.warehouse.name
    try:
        wo = row.warehouse_order
        result = await ctx.warehouse.create_order(wo)
    except VendorError as exc:
        return Created(row, _after_failure(ctx, row, exc), exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a 200 with a body we cannot read: the create may have happened
        why = f"unexpected error during the create, outcome unknown: {type(exc).__name__}: {ctx.redactor.text(str(exc))[:300]}"
        ctx.log.error("create failed unexpectedly; the order is in doubt and will be looked up", order=row.order_id, error=why)
        return Created(row, Move(row.id, S.in_doubt, (S.submitting,), why, dict(lease_owner="", lease_until=None, last_error=why)), exc)
    why = (f"created at {adapter} as {result.warehouse_order_id}" if not result.already_existed else
           f"{adapter} already had reference {row.reference} (id {result.warehouse_order_id}); not created again")
    fields: dict[str, Any] = dict(warehouse_order_id=result.warehouse_order_id, lease_owner="", lease_until=None, last_error="", next_attempt_at=None)
    return Created(row, Move(row.id, S.at_warehouse, (S.submitting,), why, fields), existed=result.already_existed)


def _after_failure(ctx: ServiceContext, row: OrderRecord, exc: VendorError) -> Move:
    decision = ctx.retry.decide(exc, attempts=row.attempts, first_attempt_at=row.first_attempt_at, now=ctx.now())
    fields: dict[str, Any] = dict(lease_owner="", lease_until=None, last_error=ctx.redactor.clipped(str(exc), 2000))
    if decision.action == "in_doubt":
        return Move(row.id, S.in_doubt, (S.submitting,), decision.reason, fields, exc.request_id)
    if decision.action == "fail":
        return Move(row.id, S.failed, (S.submitting,), decision.reason, fields, exc.request_id)
    metrics.retry(ctx.id, "order_delivery")
    fields["next_attempt_at"] = decision.next_attempt_at
    if not decision.count_attempt:
        fields["attempts"] = max(0, row.attempts - 1)
    return Move(row.id, S.ready, (S.submitting,), f"will retry at {decision.next_attempt_at:%Y-%m-%d %H:%M:%S}Z: {decision.reason}", fields, exc.request_id)

