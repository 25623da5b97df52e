"""What the Store hands out: plain records, never database rows.

Each record carries the columns its readers use. Listing queries may leave the large JSON
documents empty (`order_json` etc.); the `order` / `warehouse_order` / `shipment` properties parse
a document once and keep it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property
from typing import Any

from connector.domain import Order, Shipment, WarehouseOrder
from connector.lifecycle import Reason


def _record(cls):
    """A dataclass whose instances can be built from a mapping of columns, extra keys ignored."""
    cls = dataclass(cls)
    names = frozenset(f.name for f in fields(cls))

    def from_row(klass, row: Any) -> Any:
        data = row._mapping if hasattr(row, "_mapping") else row
        return klass(**{k: v for k, v in data.items() if k in names})

    cls.from_row = classmethod(from_row)
    cls.columns = names
    return cls


@_record
class OrderRecord:
    """One cart order for one merchant and distribution center, and where it is in its life."""

    id: int
    merchant: str
    order_id: str
    state: str
    dc: str = ""
    reference: str = ""
    reason: str = ""
    hold_kind: str = ""
    hold_detail: str = ""
    source: str = ""
    warehouse_order_id: str = ""
    attempts: int = 0
    first_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""
    lease_owner: str = ""
    lease_until: datetime | None = None
    received_at: datetime | None = None
    acked_at: datetime | None = None
    updated_at: datetime | None = None
    released_at: datetime | None = None
    cancel_reason: str = ""
    customer: str = ""
    email: str = ""
    ordered_at: datetime | None = None
    sent_request: str = ""
    order_json: str = ""
    warehouse_json: str = ""
    raw_json: str = ""

    @cached_property
    def order(self) -> Order | None:
        return Order.model_validate_json(self.order_json) if self.order_json else None

    @cached_property
    def warehouse_order(self) -> WarehouseOrder | None:
        return WarehouseOrder.model_validate_json(self.warehouse_json) if self.warehouse_json else None

    @property
    def hold(self) -> Reason | None:
        """The typed reason it is held (or skipped) for, with its details."""
        return Reason.from_json(self.hold_detail)

    @property
    def cancel_requested(self) -> Reason | None:
        return Reason.from_json(self.cancel_reason)


@_record
class TimelineEntry:
    """One line of an order's timeline: a move (or a note when from == to), who, when and why."""

    at: datetime
    from_state: str
    to_state: str
    actor: str
    reason: str = ""
    request_id: str = ""


@_record
class ShipmentRecord:
    """A warehouse shipment, stored once per warehouse shipment id, and its tracking post."""

    id: int
    merchant: str
    shipment_id: str
    reference: str
    state: str
    order_pk: int | None = None
    reason: str = ""
    tracking: str = ""
    shipment_json: str = ""
    received_at: datetime | None = None
    posted_at: datetime | None = None
    warehouse_acked_at: datetime | None = None

    @cached_property
    def shipment(self) -> Shipment:
        return Shipment.model_validate_json(self.shipment_json)


@_record
class TaskRecord:
    """An outbox task: durable work retried until done (tracking posts, alert e-mails, cancels)."""

    id: int
    merchant: str
    kind: str
    key: str
    payload: str  # JSON text
    state: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str = ""
    lease_until: datetime | None = None
    last_error: str = ""
    failing_since: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @cached_property
    def data(self) -> Any:
        """The payload, parsed."""
        return json.loads(self.payload) if self.payload else None


@_record
class ServiceRun:
    """The last pass of one merchant's service: what it did, how it ended, and whether it is paused."""

    merchant: str
    service: str
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    last_outcome: str = ""
    last_error: str = ""
    last_summary: str = ""
    stopped_because: str = ""
    resumes_at: datetime | None = None
    paused_until: datetime | None = None
    pause_reason: str = ""
    note: str = ""
    lease_owner: str = ""
    lease_until: datetime | None = None

    @property
    def summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.last_summary) if self.last_summary else {}
        except ValueError:
            return {}

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@_record
class EventRecord:
    """One vendor call or webhook delivery in the event log (bodies redacted)."""

    id: int
    at: datetime
    merchant: str = ""
    kind: str = ""
    vendor: str = ""
    order_id: str = ""
    method: str = ""
    url: str = ""
    status: int | None = None
    request_id: str = ""
    duration_ms: float | None = None
    request_body: str = ""
    response_body: str = ""
    error: str = ""


@_record
class AlertRecord:
    """One problem an administrator should hear about, and whether they have been told."""

    id: int
    merchant: str
    category: str
    key: str
    message: str = ""
    state: str = "open"
    count: int = 1
    first_at: datetime | None = None
    last_at: datetime | None = None
    sent_at: datetime | None = None  # queued in a digest
    delivered_at: datetime | None = None  # the SMTP server accepted the digest
    resolved_at: datetime | None = None


@_record
class WorkerRecord:
    """A running (or stopped) connector process: what config and database it runs with."""

    worker_id: str
    started_at: datetime
    seen_at: datetime
    config_path: str = ""
    config_mtime: datetime | None = None
    config_loaded_at: datetime | None = None
    database: str = ""
    listen: str = ""
    version: str = ""
    merchants: str = ""  # JSON {merchant id: "ULTRACART-MERCHANT/DC"}
    stopped: bool = False


@dataclass
class NewOrder:
    """An order arriving from the cart (poll or webhook), ready to be stored."""

    order_id: str
    reference: str
    order_json: str  # canonical domain Order ("" when the payload could not be parsed)
    raw_json: str  # the redacted payload as received
    state: str = "received"
    reason: Reason | None = None  # why it is held or skipped at intake
    customer: str = ""  # for searching: the ship-to name (or company)
    email: str = ""
    ordered_at: datetime | None = None

    @property
    def hold_kind(self) -> str:
        return str(self.reason.kind) if self.reason else ""


@_record
class ConsumptionRecord:
    """One order line's stock to consume in the merchant's inventory ledger, and how far it got."""

    id: int
    merchant: str
    order_id: str
    sku: str
    quantity: str  # a decimal
    state: str
    consumed: str = "0"
    source: str = ""
    draws: str = ""  # JSON list
    reason: str = ""
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str = ""
    lease_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def draw_list(self) -> list[dict[str, Any]]:
        return json.loads(self.draws) if self.draws else []


@dataclass
class IngestResult:
    """What storing a batch did: the ids stored for the first time, and the stored copies of the
    ids that were already known (the caller decides whether a repeat brings changes)."""

    new: list[str] = field(default_factory=list)
    known: dict[str, OrderRecord] = field(default_factory=dict)
