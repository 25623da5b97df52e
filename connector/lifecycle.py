"""The order's life in one place: its states, the moves allowed between them (and who may cause
each), and the typed reasons an order is held, skipped or cancelled.

Every state change (the services, the operator commands, webhooks, the Store's claims and
recovery) is checked against `MOVES`; a move outside it raises `IllegalMove`, never a silent
no-op. A compare-and-set that finds the order already moved on by someone else is not illegal:
it simply does not apply.

This module is vocabulary, like `connector.domain`: no I/O, importable from `mappings`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OrderState(StrEnum):
    """Where an order is in its life. A comment per state says who moves it on."""

    received = "received"  # stored (and acknowledged or about to be); the rules have not looked at it yet
    held = "held"  # a rule, an operator or the cart stopped it (typed reason kept); released when the cause is gone
    skipped = "skipped"  # never sent (date filter, test order, operator); still acknowledged; an operator may unskip
    ready = "ready"  # mapped and allowed; waiting for delivery (maybe until next_attempt_at)
    submitting = "submitting"  # claimed by a delivery worker; the warehouse call is (or was) under way
    in_doubt = "in_doubt"  # the create may or may not have happened: looked up by reference before anything else
    at_warehouse = "at_warehouse"  # created at the warehouse exactly once
    partially_shipped = "partially_shipped"  # some lines have shipments
    shipped = "shipped"  # every line shipped; UltraCart has not yet accepted the tracking
    confirmed = "confirmed"  # terminal: UltraCart accepted the tracking
    failed = "failed"  # attempts exhausted or a permanent error; an operator retries or skips it
    cancelling = "cancelling"  # cancelled in the cart after hand-off: the warehouse is being asked to cancel
    cancelled = "cancelled"  # terminal: never sent, or the warehouse cancelled it
    cancel_failed = "cancel_failed"  # the warehouse refused the cancel (too late) or has no cancel API: a person acts


S = OrderState
TERMINAL = frozenset({S.confirmed, S.cancelled})
NOT_SENT = (S.received, S.held, S.ready, S.failed)  # the warehouse has never been asked to create these
PRE_WAREHOUSE = (S.received, S.held, S.ready, S.submitting, S.in_doubt)  # may still reach the warehouse
AT_WAREHOUSE = (S.at_warehouse, S.partially_shipped)  # created there, not (fully) shipped
SHIPPED = (S.shipped, S.confirmed)


class Actor(StrEnum):
    """Who causes a move: a service, an operator command, a webhook, or the daemon's own recovery."""

    order_download = "order_download"
    order_delivery = "order_delivery"
    shipment_upload = "shipment_upload"
    order_changes = "order_changes"  # the reconciliation re-read and the cancels it sends
    webhook = "webhook"  # UltraCart told us (orders in, changes)
    operator = "operator"  # a command line or console action
    ledger = "ledger"  # the inventory ledger consumption (timeline notes only)
    recovery = "recovery"  # a dead worker's claim found at start or after its lease expired
    shutdown = "shutdown"  # a clean stop releasing its own claims


A = Actor
_INTAKE = {A.order_download, A.webhook}
_CART = {A.order_changes, A.webhook}  # UltraCart said the order changed (by webhook or by re-read)


def _moves() -> dict[tuple[OrderState | None, OrderState], frozenset[Actor]]:
    m: dict[tuple[OrderState | None, OrderState], set[Actor]] = {}

    def allow(froms: Iterable[OrderState | None], tos: Iterable[OrderState], actors: Iterable[Actor]) -> None:
        for f in froms:
            for t in tos:
                m.setdefault((f, t), set()).update(actors)

    # Intake: a new order is stored received, or held/skipped at once when it cannot be read or is not ours.
    allow([None], [S.received, S.held, S.skipped], _INTAKE)
    # The rules.
    allow([S.received, S.held], [S.ready, S.held, S.skipped], [A.order_delivery])
    # A fresh copy of an unsent order (UltraCart sent it again, or an operator re-read it) is evaluated afresh.
    allow(NOT_SENT, [S.received], _INTAKE | _CART | {A.operator})
    allow(NOT_SENT, [S.held], _INTAKE)  # ... or held, when the new copy cannot be sent as it is
    # Sending.
    allow([S.ready], [S.submitting], [A.order_delivery])
    allow([S.submitting], [S.at_warehouse, S.ready, S.failed, S.in_doubt], [A.order_delivery])
    allow([S.submitting], [S.in_doubt], [A.recovery, A.shutdown])
    allow([S.in_doubt], [S.at_warehouse, S.ready], [A.order_delivery])
    # Shipping.
    allow([S.at_warehouse, S.partially_shipped, S.in_doubt, S.cancelling, S.cancel_failed],
          [S.partially_shipped, S.shipped], [A.shipment_upload])
    allow([S.shipped], [S.confirmed], [A.shipment_upload])
    # Operators.
    allow([S.held], [S.received], [A.operator])  # release: re-checked on the next delivery pass
    allow([S.failed], [S.ready], [A.operator])  # retry with fresh attempts
    allow(NOT_SENT, [S.held], [A.operator])  # hold
    allow(NOT_SENT, [S.skipped], [A.operator])  # skip (with a reason)
    allow([S.skipped], [S.received], [A.operator])  # unskip: back to evaluation
    # The cart holds an unsent order for review, and releases it.
    allow(NOT_SENT, [S.held], _CART)
    # Cancellations: an unsent order is never sent; a sent one is cancelled at the warehouse.
    allow(NOT_SENT, [S.cancelled], _CART | {A.operator})
    allow([S.in_doubt], [S.cancelled], [A.order_delivery])  # looked up, not there, and cancelled meanwhile
    allow([S.at_warehouse, S.partially_shipped], [S.cancelling], _CART | {A.operator})
    allow([S.cancel_failed], [S.cancelling], [A.operator])  # try again on the operator's word
    allow([S.cancelling], [S.cancelled, S.cancel_failed], [A.order_changes])
    allow([S.cancelling], [S.cancel_failed], [A.operator])
    allow([S.cancel_failed], [S.cancelled], [A.operator])  # cancelled by hand at the warehouse
    frozen = {k: frozenset(v) for k, v in m.items()}
    return frozen


MOVES: dict[tuple[OrderState | None, OrderState], frozenset[Actor]] = _moves()


class IllegalMove(RuntimeError):
    """Code asked for a move the lifecycle does not allow: a bug, never a race."""


def allowed(from_state: OrderState | str | None, to_state: OrderState | str, actor: Actor | str) -> bool:
    """Whether `actor` may move an order from `from_state` to `to_state`. Staying in the same state
    (a timeline note, a field update) is always allowed."""
    if from_state is not None and str(from_state) == str(to_state):
        return True
    key = (S(from_state) if from_state is not None else None, S(to_state))
    return Actor(actor) in MOVES.get(key, frozenset())


def check(from_state: OrderState | str | None, to_state: OrderState | str, actor: Actor | str) -> None:
    if not allowed(from_state, to_state, actor):
        raise IllegalMove(f"{actor} may not move an order from {from_state or '(new)'} to {to_state}")


def moves_table() -> str:
    """The allowed moves as a Markdown table (the README's copy is tested against this)."""
    rows = ["| from | to | who may cause it |", "|---|---|---|"]
    order = list(S)
    for (f, t), actors in sorted(MOVES.items(), key=lambda kv: (-1 if kv[0][0] is None else order.index(kv[0][0]), order.index(kv[0][1]))):
        rows.append(f"| {f or '(new)'} | {t} | {', '.join(sorted(actors))} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------- reasons
class HoldKind(StrEnum):
    """Why an order is held: stable codes, so holds are counted, alerted and released by kind."""

    unmapped_ship_method = "unmapped_ship_method"  # no map entry, or the warehouse lacks the method
    unknown_sku = "unknown_sku"  # the warehouse does not know a (mapped) SKU
    missing_address = "missing_address"  # the ship-to cannot be delivered to
    invalid_lines = "invalid_lines"  # no lines, a missing, fractional, zero, negative or absurd quantity
    timed_hold = "timed_hold"  # `hold_minutes` after receipt have not passed yet
    manual_hold = "manual_hold"  # an operator holds it
    cart_hold = "cart_hold"  # UltraCart holds it for review (fulfillment_hold); released there
    malformed = "malformed"  # the payload could not be read
    unsafe_text = "unsafe_text"  # control characters or nesting the connector will not store or send


class SkipKind(StrEnum):
    """Why an order is skipped (never sent)."""

    before_earliest_date = "before_earliest_date"
    test_order = "test_order"
    operator = "operator_skip"  # values are unique across the reason kinds: a stored reason names its kind alone
    other_distribution_center = "other_distribution_center"  # no line is for this merchant's DC


class CancelKind(StrEnum):
    """Why an order is cancelled (or a cancel is being asked for)."""

    rejected = "rejected"  # rejected in UltraCart
    refunded = "refunded"  # fully refunded in UltraCart
    deleted = "deleted"  # deleted in UltraCart
    operator = "operator_cancel"  # `connector cancel`


def _how(details: Mapping[str, Any]) -> str:
    return f"; {details['how']}" if details.get("how") else ""


def _by(details: Mapping[str, Any]) -> str:
    return f" (by {details['by']})" if details.get("by") else ""


def _listed(details: Mapping[str, Any], key: str) -> str:
    return ", ".join(str(v) for v in details.get(key) or ())


_TEXTS: dict[str, Any] = {
    HoldKind.unmapped_ship_method: lambda d: (f"warehouse does not know ship method: {d.get('method', '')}" if d.get("at_warehouse")
                                              else f"unmapped ship method: {d.get('method') or '(none)'}"),
    HoldKind.unknown_sku: lambda d: f"unknown SKU: {_listed(d, 'skus')}",
    HoldKind.missing_address: lambda d: f"missing ship-to address: {_listed(d, 'fields')}",
    HoldKind.invalid_lines: lambda d: "; ".join(d.get("problems") or ["no lines to send"]),
    HoldKind.timed_hold: lambda d: f"timed hold until {d.get('until', '')}",
    HoldKind.manual_hold: lambda d: f"manual hold: {d['note']}" if str(d.get("note") or "").strip() else "manual hold",
    HoldKind.cart_hold: lambda d: "held in UltraCart" + (f" ({d['detail']})" if d.get("detail") else "") + "; released when UltraCart releases it",
    HoldKind.malformed: lambda d: f"malformed order: {d.get('error', '')}",
    HoldKind.unsafe_text: lambda d: f"unsafe content removed or refused at {_listed(d, 'paths')}" + (f": {d['error']}" if d.get("error") else ""),
    SkipKind.before_earliest_date: lambda d: f"before earliest order date {d.get('earliest')} (created {d.get('created')})",
    SkipKind.test_order: lambda d: "test order",
    SkipKind.operator: lambda d: f"skipped by operator: {d.get('note') or 'no reason given'}" + _by(d),
    SkipKind.other_distribution_center: lambda d: f"no line for this distribution center (lines are for {_listed(d, 'dcs') or 'none'})",
    CancelKind.rejected: lambda d: "rejected in UltraCart" + (f": {d['detail']}" if d.get("detail") else "") + _how(d),
    CancelKind.refunded: lambda d: "refunded in full in UltraCart" + (f": {d['detail']}" if d.get("detail") else "") + _how(d),
    CancelKind.deleted: lambda d: "deleted in UltraCart" + _how(d),
    CancelKind.operator: lambda d: f"cancelled by operator: {d.get('note') or 'no reason given'}" + _by(d) + _how(d),
}


@dataclass(frozen=True)
class Reason:
    """A typed reason with its structured details (the SKUs, the method, the address fields...).

    `text` is the operator's words, always derived from the details, so nothing ever parses a
    reason string back."""

    kind: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        render = _TEXTS.get(self.kind)
        return render(self.details) if render else str(self.details.get("text") or self.kind)

    def to_json(self) -> str:
        return json.dumps({"kind": str(self.kind), "details": dict(self.details)}, default=str, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Reason | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(data["kind"], data.get("details") or {})

    def __str__(self) -> str:
        return self.text


def hold(kind: HoldKind, **details: Any) -> Reason:
    return Reason(kind, details)


def skip(kind: SkipKind, **details: Any) -> Reason:
    return Reason(kind, details)


def cancel(kind: CancelKind, **details: Any) -> Reason:
    return Reason(kind, details)


# ---------------------------------------------------------------------------------------- other states
class ShipmentState(StrEnum):
    """A warehouse shipment as the connector recorded it."""

    waiting = "waiting"  # no tracking number yet, or the order's create is not yet recorded
    pending = "pending"  # counts toward its order; its tracking is due (or queued) for UltraCart
    posted = "posted"  # UltraCart accepted its tracking (final)
    ignored = "ignored"  # a voided label
    orphan = "orphan"  # no order with its reference is known


LIVE_SHIPMENTS = (ShipmentState.pending, ShipmentState.posted)


class TaskState(StrEnum):
    """An outbox task (tracking post, alert e-mail, cancel...)."""

    pending = "pending"  # due at next_attempt_at (or now)
    running = "running"  # claimed by a worker under a lease
    done = "done"
    failed = "failed"  # given up: listed for an operator


class AlertState(StrEnum):
    open = "open"
    resolved = "resolved"
