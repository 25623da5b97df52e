"""The tables. Only `connector.store` reads or writes them; everything else calls Store methods.

Times are stored as timezone-aware UTC datetimes. JSON columns hold pydantic dumps of the
domain models (`order_json`, `warehouse_json`) and the redacted raw vendor payload (`raw_json`).
"""

from __future__ import annotations

from datetime import datetime

from datetime import timezone

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ts(**kw) -> Field:
    return Field(default=None, sa_column=Column(UTCDateTime(), **kw))


class OrderRow(SQLModel, table=True):
    """One cart order for one merchant and distribution center, and where it is in its life."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("merchant", "dc", "order_id", name="uq_orders_merchant_dc_order"),
        Index("ix_orders_merchant_state_due", "merchant", "state", "next_attempt_at"),
        Index("ix_orders_merchant_reference", "merchant", "reference"),
        Index("ix_orders_unacked", "merchant", "dc", "acked_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    merchant: str
    dc: str
    order_id: str
    reference: str
    state: str
    reason: str = ""  # why held / skipped / failed, in words an operator can act on
    hold_kind: str = ""  # stable code of the hold (counts by reason)
    source: str = "poll"  # poll | webhook
    warehouse_order_id: str = ""
    attempts: int = 0
    first_attempt_at: datetime | None = _ts()
    next_attempt_at: datetime | None = _ts()
    last_error: str = ""
    lease_owner: str = ""
    lease_until: datetime | None = _ts()
    received_at: datetime | None = _ts(nullable=False)
    acked_at: datetime | None = _ts()
    updated_at: datetime | None = _ts(nullable=False)
    order_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    warehouse_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    raw_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class OrderEvent(SQLModel, table=True):
    """The order's timeline: every transition, who made it, when and why."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_pk", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    order_pk: int = Field(foreign_key="orders.id")
    at: datetime | None = _ts(nullable=False)
    from_state: str = ""
    to_state: str = ""
    actor: str = ""  # service name, "operator", "webhook"
    reason: str = ""
    request_id: str = ""


class ShipmentRow(SQLModel, table=True):
    """A warehouse shipment, stored once per warehouse shipment id, and its tracking post."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("merchant", "shipment_id", name="uq_shipments_merchant_shipment"),
        Index("ix_shipments_merchant_state", "merchant", "state"),
        Index("ix_shipments_order", "order_pk"),
    )

    id: int | None = Field(default=None, primary_key=True)
    merchant: str
    shipment_id: str
    reference: str
    order_pk: int | None = Field(default=None, foreign_key="orders.id")
    state: str = "pending"  # pending | posted | ignored | orphan
    reason: str = ""
    tracking: str = ""  # comma-separated tracking numbers, for listing
    shipment_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    received_at: datetime | None = _ts(nullable=False)
    posted_at: datetime | None = _ts()
    warehouse_acked_at: datetime | None = _ts()


class TaskRow(SQLModel, table=True):
    """The outbox: durable work with retries (tracking posts, acknowledgements, alert e-mails)."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("merchant", "kind", "key", name="uq_tasks_merchant_kind_key"),
        Index("ix_tasks_due", "merchant", "kind", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    merchant: str
    kind: str
    key: str
    payload: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    state: str = "pending"  # pending | running | done | failed
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    lease_owner: str = ""
    lease_until: datetime | None = _ts()
    last_error: str = ""
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)


class CursorRow(SQLModel, table=True):
    """A bookmark (e.g. shipments read up to T); advanced only after what it covers is committed."""

    __tablename__ = "cursors"

    merchant: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    value: str = ""
    updated_at: datetime | None = _ts(nullable=False)


class ServiceRunRow(SQLModel, table=True):
    """The last run of each merchant's service, and whether it is paused (for status and health)."""

    __tablename__ = "service_runs"

    merchant: str = Field(primary_key=True)
    service: str = Field(primary_key=True)
    last_started_at: datetime | None = _ts()
    last_finished_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_error: str = ""
    last_summary: str = ""
    paused_until: datetime | None = _ts()
    pause_reason: str = ""
    note: str = ""  # e.g. "disabled: the warehouse adapter has no inventory"
    lease_owner: str = ""  # the replica running this service now (PostgreSQL replicas)
    lease_until: datetime | None = _ts()


class InventoryPushedRow(SQLModel, table=True):
    """The last quantity UltraCart accepted for each store SKU."""

    __tablename__ = "inventory_pushed"

    merchant: str = Field(primary_key=True)
    sku: str = Field(primary_key=True)
    quantity: int
    pushed_at: datetime | None = _ts(nullable=False)


class EventLogRow(SQLModel, table=True):
    """Every vendor call and webhook, redacted, kept for `event_log_days`."""

    __tablename__ = "event_log"
    __table_args__ = (Index("ix_event_log_merchant_at", "merchant", "at"), Index("ix_event_log_order", "order_id"))

    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(nullable=False)
    merchant: str = ""
    kind: str = ""  # vendor_call | webhook
    vendor: str = ""
    order_id: str = ""
    method: str = ""
    url: str = ""
    status: int | None = None
    request_id: str = ""
    duration_ms: float | None = None
    request_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    response_body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str = ""
