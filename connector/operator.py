"""Operator actions on orders (release, retry, skip, unskip, hold, resend tracking, refresh),
each a lifecycle move recorded on the order's timeline with who asked. The command line and the
console are thin shells over these; tests call them directly.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from connector.lifecycle import LIVE_SHIPMENTS, NOT_SENT, Actor, HoldKind, OrderState, SkipKind
from connector.lifecycle import hold as hold_reason
from connector.lifecycle import skip as skip_reason
from connector.pipeline.shipments import TASK, _post
from connector.store import Move, OrderRecord, Store

S = OrderState
A = Actor.operator


@dataclass
class ActionResult:
    merchant: str
    order_id: str
    ok: bool
    message: str


class AmbiguousOrder(LookupError):
    pass


def who_am_i() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container): say so rather than guess
        return "unknown user"


async def find_one(store: Store, order_id: str, merchant: str | None) -> list[OrderRecord]:
    rows = await store.orders.find(order_id, merchant)
    if len({r.merchant for r in rows}) > 1:
        raise AmbiguousOrder(f"order {order_id} exists for several merchants ({', '.join(sorted({r.merchant for r in rows}))}); add --merchant")
    return rows


Build = Callable[[OrderRecord], tuple[Move | None, str, str]]


async def _act(store: Store, order_id: str, merchant: str | None, build: Build) -> list[ActionResult]:
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        move, ok_msg, refusal = build(row)
        if move is None:
            out.append(ActionResult(row.merchant, row.order_id, False, refusal))
            continue
        done = await store.orders.move(move, actor=A)
        out.append(ActionResult(row.merchant, row.order_id, done, ok_msg if done else "changed meanwhile; try again"))
    return out


def _by(text: str, who: str) -> str:
    return f"{text} (by {who})" if who else text


async def release(store: Store, order_id: str, merchant: str | None = None, *, who: str = "") -> list[ActionResult]:
    def build(row: OrderRecord):
        if row.state != S.held:
            return None, "", f"not held (state {row.state})"
        return release_move(row, who, store)
    return await _act(store, order_id, merchant, build)


def release_move(row: OrderRecord, who: str, store: Store) -> tuple[Move | None, str, str]:
    if row.hold_kind in (HoldKind.malformed, HoldKind.unsafe_text):
        return None, "", f"cannot release: {row.reason}; correct it in UltraCart and `connector refresh {row.order_id}`, or skip it"
    if row.hold_kind == HoldKind.cart_hold:
        return None, "", "held in UltraCart: release it there (the connector follows)"
    return (Move(row.id, S.received, (S.held,), _by(f"released by operator (was: {row.reason})", who), dict(released_at=store.clock.now())),
            "released: re-checked and sent on the next delivery pass", "")


async def retry(store: Store, order_id: str, merchant: str | None = None, *, who: str = "") -> list[ActionResult]:
    def build(row: OrderRecord):
        if row.state == S.held:
            return release_move(row, who, store)
        if row.state != S.failed:
            return None, "", f"not failed (state {row.state})"
        return (Move(row.id, S.ready, (S.failed,), _by(f"retry requested by operator (last error: {row.last_error[:200]})", who),
                     dict(attempts=0, next_attempt_at=None, first_attempt_at=None)),
                "queued: sent on the next delivery pass", "")
    return await _act(store, order_id, merchant, build)


async def retry_all_failed(store: Store, merchant: str | None = None, *, who: str = "") -> list[ActionResult]:
    out = []
    for row in await store.orders.listing(state=S.failed, merchant=merchant, limit=100_000):
        out += await retry(store, row.order_id, row.merchant, who=who)
    return out


async def skip(store: Store, order_id: str, merchant: str | None = None, *, reason: str, who: str = "") -> list[ActionResult]:
    if not reason.strip():
        raise ValueError("a reason is required to skip an order")

    def build(row: OrderRecord):
        if row.state not in NOT_SENT:
            return None, "", f"cannot skip an order in state {row.state}"
        return Move(row.id, S.skipped, tuple(NOT_SENT), skip_reason(SkipKind.operator, note=reason.strip(), by=who)), "skipped: it will never be sent", ""
    return await _act(store, order_id, merchant, build)


async def unskip(store: Store, order_id: str, merchant: str | None = None, *, who: str = "") -> list[ActionResult]:
    def build(row: OrderRecord):
        if row.state != S.skipped:
            return None, "", f"not skipped (state {row.state})"
        return (Move(row.id, S.received, (S.skipped,), _by(f"unskipped by operator (was: {row.reason})", who)),
                "back to evaluation: the next delivery pass applies the rules again", "")
    return await _act(store, order_id, merchant, build)


async def hold(store: Store, order_id: str, merchant: str | None = None, *, reason: str = "", who: str = "") -> list[ActionResult]:
    def build(row: OrderRecord):
        if row.state not in NOT_SENT:
            return None, "", f"cannot hold an order in state {row.state}"
        return Move(row.id, S.held, tuple(NOT_SENT), hold_reason(HoldKind.manual_hold, note=reason or "held by operator", by=who)), "held until released", ""
    return await _act(store, order_id, merchant, build)


async def resend_tracking(store: Store, order_id: str, merchant: str | None = None, *, who: str = "") -> list[ActionResult]:
    """Queue one more tracking post with every live shipment of the order."""
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        ships = [r for r in (await store.shipments.of_orders([row.id]))[row.id] if r.state in LIVE_SHIPMENTS]
        if not ships:
            out.append(ActionResult(row.merchant, row.order_id, False, "no shipments with tracking recorded for this order"))
            continue
        payload = _post(row, [r.shipment for r in ships])
        await store.tasks.put(row.merchant, TASK, f"resend:{row.reference}:{store.clock.now().isoformat()}", payload)
        await store.orders.move(Move(row.id, S(row.state), (S(row.state),), _by("tracking resend requested by operator", who)), actor=A)
        out.append(ActionResult(row.merchant, row.order_id, True,
                                f"queued: {len(payload['body']['tracking_numbers'])} tracking number(s) posted on the next shipment pass"))
    return out


Refresher = Callable[[OrderRecord], Awaitable[str]]


def refresher(rt: Any, who: str) -> Refresher:
    """Refresh one stored order through a runtime's merchant context (the command line's and the
    console's), its UltraCart call written to the event log at once."""
    from connector.pipeline.intake import refresh_one

    async def one(row: OrderRecord) -> str:
        ctx = rt.contexts.get(row.merchant)
        if ctx is None:
            return f"!merchant {row.merchant} is not enabled in the config"
        try:
            return await refresh_one(ctx, row, who=who)
        finally:
            sink = rt.sinks.get(row.merchant)
            if sink is not None:
                await sink.flush()
    return one


async def refresh(store: Store, order_id: str, merchant: str | None, refresher: Refresher) -> list[ActionResult]:
    """Re-read orders from UltraCart (`refresher` does it for one stored order and says what it did)."""
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        try:
            message = await refresher(row)
        except Exception as exc:  # noqa: BLE001 - one order's trouble is reported, the others go on
            out.append(ActionResult(row.merchant, row.order_id, False, f"{type(exc).__name__}: {exc}"))
            continue
        out.append(ActionResult(row.merchant, row.order_id, not message.startswith("!"), message.lstrip("!")))
    return out


async def cancel(store: Store, order_id: str, merchant: str | None = None, *, reason: str, who: str = "", done: bool = False) -> list[ActionResult]:
    """Cancel on the operator's word: an unsent order is never sent; one at the warehouse is
    cancelled there by the next order_changes pass (or reported too late). `done`: the order was
    cancelled by hand at the warehouse after the connector could not (cancel_failed -> cancelled)."""
    from connector.lifecycle import AT_WAREHOUSE, CancelKind
    from connector.lifecycle import cancel as cancel_reason
    from connector.pipeline.changes import cancel_task

    if not reason.strip() and not done:
        raise ValueError("a reason is required to cancel an order")
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        why = cancel_reason(CancelKind.operator, note=reason.strip() or "cancelled by hand at the warehouse", by=who)
        state = S(row.state)
        async with store.atomic() as tx:
            if done:
                if state != S.cancel_failed:
                    out.append(ActionResult(row.merchant, row.order_id, False, f"--done is for an order the warehouse could not cancel (state {state})"))
                    continue
                ok = await tx.orders.move(Move(row.id, S.cancelled, (S.cancel_failed,), why), actor=A)
                message = "recorded as cancelled by hand at the warehouse"
            elif state in NOT_SENT:
                ok = await tx.orders.move(Move(row.id, S.cancelled, (state,), why, dict(cancel_reason=why.to_json())), actor=A)
                message = "cancelled: it will never be sent"
            elif state in AT_WAREHOUSE or state == S.cancel_failed:
                ok = await tx.orders.move(Move(row.id, S.cancelling, (state,), why, dict(cancel_reason=why.to_json())), actor=A)
                if ok:
                    await tx.tasks.put_many(row.merchant, [cancel_task(row)])
                message = "cancelling: the warehouse is asked on the next order_changes pass (`connector order` shows the answer)"
            elif state in (S.submitting, S.in_doubt):
                ok = await tx.orders.move(Move(row.id, state, (state,), f"{why.text}; cancelled once the create's outcome is known",
                                               dict(cancel_reason=why.to_json())), actor=A)
                message = "remembered: cancelled once the create's outcome is known"
            else:
                out.append(ActionResult(row.merchant, row.order_id, False, f"cannot cancel an order in state {state}"))
                continue
        out.append(ActionResult(row.merchant, row.order_id, ok, message if ok else "changed meanwhile; try again"))
    return out


async def consume_again(store: Store, order_id: str, merchant: str | None = None) -> list[ActionResult]:
    """Try an order's stuck ledger consumptions again (after the item was added, stock corrected
    or a unit checked); consumed on the next ledger_consume pass."""
    consumptions = await store.ledger.listing(merchant, order_id=order_id)
    if not consumptions:
        return [ActionResult(merchant or "", order_id, False, "no ledger consumption for this order")]
    out = []
    for m in sorted({c.merchant for c in consumptions}):
        n = await store.ledger.retry(m, order_id)
        out.append(ActionResult(m, order_id, True, f"{n} line(s) queued again" if n else "nothing stuck: every line is consumed or under way"))
    return out
