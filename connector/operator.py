"""Operator actions on orders (release, retry, skip, hold, resend tracking), each a recorded
transition. The CLI is a thin shell over these; tests call them directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from connector.domain import OrderState, Shipment
from connector.pipeline.orders import RELEASED
from connector.pipeline.shipments import TASK, _post
from connector.store import Store, Transition, utcnow

S = OrderState
ACTOR = "operator"
RETRYABLE = (S.failed, S.cancel_failed)
SKIPPABLE = (S.received, S.held, S.ready, S.failed)
HOLDABLE = (S.received, S.held, S.ready, S.failed)


@dataclass
class ActionResult:
    merchant: str
    order_id: str
    ok: bool
    message: str


class AmbiguousOrder(LookupError):
    pass


async def find_one(store: Store, order_id: str, merchant: str | None) -> list:
    rows = await store.find_orders(order_id, merchant)
    if len({r.merchant for r in rows}) > 1:
        raise AmbiguousOrder(f"order {order_id} exists for several merchants ({', '.join(sorted({r.merchant for r in rows}))}); add --merchant")
    return rows


async def _act(store: Store, order_id: str, merchant: str | None, build) -> list[ActionResult]:
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        t, ok_msg, refusal = build(row)
        if t is None:
            out.append(ActionResult(row.merchant, row.order_id, False, refusal))
            continue
        done = await store.transition(t, actor=ACTOR)
        out.append(ActionResult(row.merchant, row.order_id, done, ok_msg if done else "changed meanwhile; try again"))
    return out


async def release(store: Store, order_id: str, merchant: str | None = None) -> list[ActionResult]:
    def build(row):
        if row.state != S.held:
            return None, "", f"not held (state {row.state})"
        return release_transition(row)
    return await _act(store, order_id, merchant, build)


async def retry(store: Store, order_id: str, merchant: str | None = None) -> list[ActionResult]:
    def build(row):
        if row.state == S.held:
            return release_transition(row)
        if row.state not in RETRYABLE:
            return None, "", f"not failed (state {row.state})"
        return (Transition(row.id, S.ready, RETRYABLE, f"retry requested by operator (last error: {row.last_error[:200]})",
                           dict(attempts=0, next_attempt_at=None, first_attempt_at=None)),
                "queued: sent on the next delivery pass", "")
    return await _act(store, order_id, merchant, build)


def release_transition(row):
    if row.hold_kind == "malformed":
        return None, "", f"cannot release: {row.reason}; fix it in UltraCart or skip it"
    return (Transition(row.id, S.received, (S.held,), f"released by operator (was: {row.reason})", dict(hold_kind=RELEASED)),
            "released: re-checked and sent on the next delivery pass", "")


async def retry_all_failed(store: Store, merchant: str | None = None) -> list[ActionResult]:
    out = []
    for row in await store.list_orders(state=S.failed, merchant=merchant, limit=100_000):
        out += await retry(store, row.order_id, row.merchant)
    return out


async def skip(store: Store, order_id: str, merchant: str | None = None, reason: str = "") -> list[ActionResult]:
    def build(row):
        if row.state not in SKIPPABLE:
            return None, "", f"cannot skip an order in state {row.state}"
        why = f"skipped by operator: {reason or 'no reason given'}"
        return Transition(row.id, S.skipped, SKIPPABLE, why, dict(reason=why)), "skipped", ""
    return await _act(store, order_id, merchant, build)


async def hold(store: Store, order_id: str, merchant: str | None = None, reason: str = "") -> list[ActionResult]:
    def build(row):
        if row.state not in HOLDABLE:
            return None, "", f"cannot hold an order in state {row.state}"
        why = f"manual hold: {reason or 'held by operator'}"
        return Transition(row.id, S.held, HOLDABLE, why, dict(reason=why, hold_kind="manual_hold")), "held", ""
    return await _act(store, order_id, merchant, build)


async def resend_tracking(store: Store, order_id: str, merchant: str | None = None) -> list[ActionResult]:
    """Queue one more tracking post with every live shipment of the order."""
    rows = await find_one(store, order_id, merchant)
    if not rows:
        return [ActionResult(merchant or "", order_id, False, "no such order")]
    out = []
    for row in rows:
        ships = [r for r in (await store.shipments_of_orders([row.id]))[row.id] if r.state in ("pending", "posted")]
        if not ships:
            out.append(ActionResult(row.merchant, row.order_id, False, "no shipments with tracking recorded for this order"))
            continue
        payload = _post(row, [Shipment.model_validate_json(r.shipment_json) for r in ships])
        await store.put_task(row.merchant, TASK, f"resend:{row.reference}:{utcnow().isoformat()}", payload)
        await store.transition(Transition(row.id, row.state, (row.state,), "tracking resend requested by operator"), actor=ACTOR)
        out.append(ActionResult(row.merchant, row.order_id, True,
                                f"queued: {len(json.loads(json.dumps(payload))['body']['tracking_numbers'])} tracking number(s) posted on the next shipment pass"))
    return out
