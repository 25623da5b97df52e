"""Intake: raw UltraCart orders (from the DC queue or a webhook) -> stored orders.

One order's trouble never stops the others: every step of one order (shape check, control
characters, redaction, parsing) runs in isolation, and an order that fails any of them is stored
`held` with the reason (so it is acknowledged and listed) or, without an id, counted and logged.

- The payload is bounded first (depth, size): a 600-deep array must not reach any recursive walk.
- Control characters and lone surrogates are removed (PostgreSQL cannot store NUL) and the order
  is held naming where they were: an SKU with a NUL in it is not one to send as it is.
- The payload is redacted (card numbers anywhere, configured secrets) before it is stored, and
  parsed from the redacted copy, so card data reaches neither the database nor a warehouse.
- A copy UltraCart sends again while the order is not yet at the warehouse replaces the stored
  one when it differs (the timeline says what changed) and is evaluated afresh.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.base import order_reference
from connector.domain import Order
from connector import jsontext
from connector.lifecycle import NOT_SENT, Actor, HoldKind, OrderState, hold
from connector.pipeline.context import Alert, ServiceContext
from connector.store import Move, NewOrder, OrderRecord
from connector.untrusted import UntrustedInput, check_shape, plainly_safe, strip_controls
from mappings.changes import describe_changes

S = OrderState
MAX_DEPTH = 64  # UltraCart's deepest real block is about 6 levels
MAX_STRING = 100_000  # a note longer than this is not a note


@dataclass
class Prepared:
    """Raw orders turned into rows to store, and what could not be."""

    rows: list[NewOrder] = field(default_factory=list)
    ack_ids: dict[str, str] = field(default_factory=dict)  # stored id -> the id UltraCart knows it by (if different)
    unidentifiable: int = 0


def raw_order_id(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    value = raw.get("order_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip()[:200] if isinstance(value, str) else ""


def prepare_orders(ctx: ServiceContext, raws: Sequence[Any]) -> Prepared:
    out = Prepared()
    for raw in raws:
        cart_id = raw_order_id(raw)
        if not cart_id:
            out.unidentifiable += 1
            ctx.log.error("order without order_id; cannot store or acknowledge it", payload=_glimpse(ctx, raw))
            continue
        try:
            row = prepare_one(ctx, raw, cart_id)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, this order alone is held with the reason
            row = _held_unreadable(ctx, cart_id, HoldKind.malformed, error=f"{type(exc).__name__}: {exc}"[:300])
        out.rows.append(row)
        if row.order_id != cart_id:
            out.ack_ids[row.order_id] = cart_id
    return out


def prepare_one(ctx: ServiceContext, raw: dict[str, Any], cart_id: str) -> NewOrder:
    if plainly_safe(raw, max_depth=MAX_DEPTH, max_string=MAX_STRING):
        clean, changed = raw, []  # most orders: proven from their text, without two walks
    else:
        try:
            check_shape(raw, max_depth=MAX_DEPTH, max_string=MAX_STRING)
        except UntrustedInput as exc:
            return _held_unreadable(ctx, cart_id, HoldKind.unsafe_text, paths=[str(exc).split(" ", 1)[0]], error=str(exc)[:300])
        clean, changed = strip_controls(raw)
    order_id = raw_order_id(clean) or "(blank)"
    redacted = ctx.redactor.data(clean)
    raw_json = jsontext.dumps(redacted)
    reference = order_reference(ctx.id, order_id)
    try:
        order = ctx.parse_order(redacted)
    except ValueError as exc:
        return NewOrder(order_id, reference, "", raw_json, S.held, hold(HoldKind.malformed, error=ctx.redactor.text(str(exc))[:500]))
    found = dict(customer=order.ship_to.name or order.ship_to.company or order.bill_to.name, email=order.email, ordered_at=order.created_at)
    if changed:
        return NewOrder(order_id, reference, order.model_dump_json(), raw_json, S.held, hold(HoldKind.unsafe_text, paths=changed[:20],
                        error="control characters removed; check the order in UltraCart"), **found)
    return NewOrder(order_id, reference, order.model_dump_json(), raw_json, **found)


def _held_unreadable(ctx: ServiceContext, cart_id: str, kind: HoldKind, **details: Any) -> NewOrder:
    """An order whose payload cannot be kept as it is: stored with its id and the reason only."""
    clean_id = strip_controls(cart_id)[0] or "(blank)"
    stub = json.dumps({"order_id": clean_id, "payload_not_kept": details.get("error", "")})
    return NewOrder(clean_id, order_reference(ctx.id, clean_id), "", stub, S.held, hold(kind, **details))


def _glimpse(ctx: ServiceContext, raw: Any) -> str:
    try:
        check_shape(raw, max_depth=MAX_DEPTH)
        return str(ctx.redactor.data(raw))[:300]
    except Exception:  # noqa: BLE001 - only a hint for the log
        return f"(a {type(raw).__name__} that cannot be shown)"


# ---------------------------------------------------------------------------------------- storing
@dataclass
class Taken:
    """What storing a batch did: which ids are new, which known copies were replaced."""

    new: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    repeats: int = 0
    held: int = 0


async def take_in(ctx: ServiceContext, prepared: Prepared, *, source: str, actor: Actor) -> Taken:
    """Store prepared orders, replace changed copies of unsent ones, and alert on intake holds."""
    result = await ctx.store.orders.ingest(ctx.id, ctx.dc, prepared.rows, source=source, actor=actor)
    taken = Taken(new=set(result.new))
    moves = []
    for row in prepared.rows:
        old = result.known.get(row.order_id)
        if old is None:
            continue
        taken.repeats += 1
        move = replacement(old, row)
        if move is not None:
            moves.append(move)
            taken.replaced.add(row.order_id)
    if moves:
        await ctx.store.orders.move_many(moves, actor=actor)
    fresh = [r for r in prepared.rows if r.order_id in taken.new and r.reason is not None]
    taken.held = len(fresh)
    await ctx.alert([a for r in fresh for a in hold_alerts(ctx.id, r.order_id, r.reason)])
    return taken


def replacement(old: OrderRecord, new: NewOrder) -> Move | None:
    """A move that replaces the stored copy of an unsent order with a changed one (None: keep)."""
    if old.state not in NOT_SENT or not new.order_json or new.order_json == old.order_json:
        return None
    if old.hold_kind in (HoldKind.malformed, HoldKind.unsafe_text) or not old.order_json:
        what = "a readable copy of an order that could not be read before"
    else:
        diff = describe_changes(Order.model_validate_json(old.order_json), Order.model_validate_json(new.order_json))
        if not diff:
            return None
        what = "; ".join(diff)
    copy = dict(order_json=new.order_json, raw_json=new.raw_json, warehouse_json="", customer=new.customer[:200], email=new.email[:200],
                ordered_at=new.ordered_at)
    if new.reason is not None:
        return Move(old.id, S.held, (S(old.state),), new.reason, fields=copy)
    return Move(old.id, S.received, (S(old.state),), f"UltraCart sent a changed copy ({what}); evaluated afresh",
                fields=dict(copy, attempts=0, first_attempt_at=None, next_attempt_at=None, last_error="", released_at=None))


def hold_alerts(merchant: str, order_id: str, reason: Any) -> list[Alert]:
    """The alerts a hold raises, keyed so that a hundred orders with one cause are one alert."""
    kind, d = str(reason.kind), reason.details
    text = f"order {order_id}: {reason.text}"
    if kind == HoldKind.unknown_sku:
        return [(merchant, "unknown_sku", str(sku), text) for sku in d.get("skus") or ()]
    if kind == HoldKind.unmapped_ship_method:
        return [(merchant, "unmapped_ship_method", str(d.get("method") or "(none)"), text)]
    category = {HoldKind.missing_address: "missing_address", HoldKind.malformed: "malformed_order",
                HoldKind.unsafe_text: "malformed_order", HoldKind.invalid_lines: "invalid_lines"}.get(kind)
    return [(merchant, category, order_id, text)] if category else []


# Hold kinds whose alert is keyed by cause; resolved when no held order still has that cause.
ALERTED_HOLDS = {"unknown_sku": [HoldKind.unknown_sku], "unmapped_ship_method": [HoldKind.unmapped_ship_method],
                 "missing_address": [HoldKind.missing_address], "malformed_order": [HoldKind.malformed, HoldKind.unsafe_text],
                 "invalid_lines": [HoldKind.invalid_lines]}


async def resolve_hold_alerts(ctx: ServiceContext) -> int:
    """Close the hold alerts whose cause no held order has any more (shipped, skipped, fixed)."""
    held = await ctx.store.orders.held(ctx.id, [k for kinds in ALERTED_HOLDS.values() for k in kinds])
    live: dict[str, set[str]] = {c: set() for c in ALERTED_HOLDS}
    for r in held:
        for merchant, category, key, _ in hold_alerts(ctx.id, r.order_id, r.hold) if r.hold else ():
            live[category].add(key)
    open_now = {(a.category, a.key) for a in await ctx.store.alerts.listing(ctx.id, state="open", limit=100_000) if a.category in live}
    closed = 0
    for category, keys in live.items():
        if any(c == category and k not in keys for c, k in open_now):  # one read decides; write only what closes
            closed += await ctx.store.alerts.resolve(ctx.id, category, except_keys=sorted(keys), now=ctx.now())
    return closed


async def refresh_one(ctx: ServiceContext, row: OrderRecord, *, who: str = "") -> str:
    """Re-read one order from UltraCart's order API and treat the copy as if UltraCart had sent
    it again: an unsent order takes the new copy and is evaluated afresh. Returns what happened
    (a leading "!" marks a refusal)."""
    raw = await ctx.cart.get_order(row.order_id)
    if raw is None:
        return f"!UltraCart has no order {row.order_id}"
    prepared = prepare_orders(ctx, [raw])
    if not prepared.rows:
        return "!UltraCart's copy has no order_id"
    new = prepared.rows[0]
    if row.state not in NOT_SENT:
        return f"!already {row.state}: re-reading cannot change what the warehouse has (changes after hand-off are followed by order_changes)"
    move = replacement(row, new)
    if move is None:
        still = f"; still {row.state}" + (f": {row.reason}" if row.reason else "")
        return f"UltraCart's copy is unchanged{still}"
    if isinstance(move.reason, str):
        move.reason = f"{move.reason} (re-read by {who or 'an operator'})"
    if not await ctx.store.orders.move(move, actor=Actor.operator):
        return "!changed meanwhile; try again"
    return "re-read from UltraCart: " + (move.reason if isinstance(move.reason, str) else f"held: {move.reason.text}") + "; the next delivery pass applies the rules"
