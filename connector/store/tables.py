"""The tables, declared with SQLAlchemy Core. Only `connector.store` reads or writes them.

Times are stored as timezone-aware UTC datetimes (`UTCDateTime`). JSON columns hold the domain
models (`order_json`, `warehouse_json`), the redacted raw vendor payload (`raw_json`) and typed
reasons (`hold_detail`, `cancel_reason`). Alembic migrations (connector/migrations) create them;
this file must describe the schema the newest migration leaves.
"""

from __future__ import annotations

from datetime import timezone

from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator


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


def _str(name: str, **kw) -> Column:
    return Column(name, String, nullable=False, default="", server_default="", **kw)


def _text(name: str) -> Column:
    return Column(name, Text, nullable=False, default="", server_default="")


def _ts(name: str, nullable: bool = True) -> Column:
    return Column(name, UTCDateTime(), nullable=nullable)


metadata = MetaData()

orders = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant", String, nullable=False),
    Column("dc", String, nullable=False),
    Column("order_id", String, nullable=False),
    Column("reference", String, nullable=False),
    Column("state", String, nullable=False),
    _str("reason"),  # the current reason in words (held, skipped, failed, cancelled)
    _str("hold_kind"),  # the typed reason's kind (counts by kind)
    _text("hold_detail"),  # the typed reason (connector.lifecycle.Reason JSON)
    _str("source"),  # poll | webhook
    _str("warehouse_order_id"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    _ts("first_attempt_at"),
    _ts("next_attempt_at"),
    _str("last_error"),
    _str("lease_owner"),
    _ts("lease_until"),
    _ts("received_at", nullable=False),
    _ts("acked_at"),
    _ts("updated_at", nullable=False),
    _ts("released_at"),  # an operator released it: a timed hold no longer applies
    _text("cancel_reason"),  # the cancellation asked for (by UltraCart or an operator), kept once carried out (Reason JSON)
    _str("customer"),  # ship-to name (or company), for searching
    _str("email"),  # the customer's e-mail, for searching
    _ts("ordered_at"),  # when the customer placed it (the cart's creation time)
    _text("sent_request"),  # the warehouse request body a dry run would have sent
    _text("order_json"),
    _text("warehouse_json"),
    _text("raw_json"),
    UniqueConstraint("merchant", "dc", "order_id", name="uq_orders_merchant_dc_order"),
    Index("ix_orders_merchant_state_due", "merchant", "state", "next_attempt_at"),
    Index("ix_orders_merchant_reference", "merchant", "reference"),
    Index("ix_orders_unacked", "merchant", "dc", "acked_at"),
    Index("ix_orders_email", "email"),
)

order_events = Table(
    "order_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("order_pk", Integer, ForeignKey("orders.id"), nullable=False),
    _ts("at", nullable=False),
    _str("from_state"),
    _str("to_state"),
    _str("actor"),
    _str("reason"),
    _str("request_id"),
    Index("ix_order_events_order", "order_pk", "id"),
)

shipments = Table(
    "shipments", metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant", String, nullable=False),
    Column("shipment_id", String, nullable=False),
    Column("reference", String, nullable=False),
    Column("order_pk", Integer, ForeignKey("orders.id"), nullable=True),
    Column("state", String, nullable=False, default="pending"),
    _str("reason"),
    _str("tracking"),  # comma-separated tracking numbers, for listing
    _text("shipment_json"),
    _ts("received_at", nullable=False),
    _ts("posted_at"),
    _ts("warehouse_acked_at"),
    UniqueConstraint("merchant", "shipment_id", name="uq_shipments_merchant_shipment"),
    Index("ix_shipments_merchant_state", "merchant", "state"),
    Index("ix_shipments_order", "order_pk"),
)

tasks = Table(
    "tasks", metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("key", String, nullable=False),
    _text("payload"),
    Column("state", String, nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    _ts("next_attempt_at"),
    _str("lease_owner"),
    _ts("lease_until"),
    _str("last_error"),
    _ts("failing_since"),  # first failed attempt since the last success (delivery failing since)
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    UniqueConstraint("merchant", "kind", "key", name="uq_tasks_merchant_kind_key"),
    Index("ix_tasks_due", "merchant", "kind", "state", "next_attempt_at"),
)

cursors = Table(
    "cursors", metadata,
    Column("merchant", String, primary_key=True),
    Column("name", String, primary_key=True),
    _str("value"),
    _ts("updated_at", nullable=False),
)

service_runs = Table(
    "service_runs", metadata,
    Column("merchant", String, primary_key=True),
    Column("service", String, primary_key=True),
    _ts("last_started_at"),
    _ts("last_finished_at"),
    _ts("last_success_at"),
    _str("last_outcome"),  # done | partial | throttled | paused | failed | interrupted
    _str("last_error"),
    _str("last_summary"),  # JSON counts of what the last pass did
    _str("stopped_because"),  # why the last pass ended early, in words
    _ts("resumes_at"),  # when the next pass may make progress (throttle reset, pause end)
    _ts("paused_until"),
    _str("pause_reason"),
    _str("note"),  # e.g. "disabled: the warehouse adapter has no inventory"
    _str("lease_owner"),  # the replica running this service now
    _ts("lease_until"),
)

inventory_pushed = Table(
    "inventory_pushed", metadata,
    Column("merchant", String, primary_key=True),
    Column("sku", String, primary_key=True),
    Column("quantity", Integer, nullable=False),
    _ts("pushed_at", nullable=False),
)

event_log = Table(
    "event_log", metadata,
    Column("id", Integer, primary_key=True),
    _ts("at", nullable=False),
    _str("merchant"),
    _str("kind"),  # vendor_call | webhook
    _str("vendor"),
    _str("order_id"),
    _str("method"),
    _str("url"),
    Column("status", Integer, nullable=True),
    _str("request_id"),
    Column("duration_ms", Float, nullable=True),
    _text("request_body"),
    _text("response_body"),
    _str("error"),
    Index("ix_event_log_merchant_at", "merchant", "at"),
    Index("ix_event_log_order", "order_id"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant", String, nullable=False),  # "" = the connector as a whole
    Column("category", String, nullable=False),
    Column("key", String, nullable=False),
    _text("message"),
    Column("state", String, nullable=False, default="open"),
    Column("count", Integer, nullable=False, default=1),
    _ts("first_at", nullable=False),
    _ts("last_at", nullable=False),
    _ts("sent_at"),  # queued in a digest e-mail (the outbox)
    _ts("delivered_at"),  # the SMTP server accepted that e-mail
    _ts("resolved_at"),
    UniqueConstraint("merchant", "category", "key", name="uq_alerts_merchant_category_key"),
    Index("ix_alerts_state_sent", "state", "sent_at"),
)

workers = Table(
    "workers", metadata,
    Column("worker_id", String, primary_key=True),  # host:pid
    _ts("started_at", nullable=False),
    _ts("seen_at", nullable=False),
    _str("config_path"),
    _ts("config_mtime"),
    _ts("config_loaded_at"),
    _str("database"),
    _str("listen"),
    _str("version"),
    _text("merchants"),  # JSON {merchant id: "ULTRACART-MERCHANT/DC"}: replicas must agree on who owns a DC
    Column("stopped", Boolean, nullable=False, default=False, server_default=false()),
)

consumptions = Table(
    "consumptions", metadata,
    Column("id", Integer, primary_key=True),
    Column("merchant", String, nullable=False),
    Column("order_id", String, nullable=False),
    Column("sku", String, nullable=False),  # the ledger's item code (after aliases and kits)
    _str("quantity"),  # to consume, a decimal
    _str("consumed"),  # consumed so far, a decimal
    _str("source"),  # order_ship | confirmed
    Column("state", String, nullable=False, default="pending"),  # pending | consuming | done | short | unknown_item | failed | held
    _text("draws"),  # JSON: [{unit, lot, before, quantity, status}]: what was (or is being) taken from which unit
    _str("reason"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    _ts("next_attempt_at"),
    _str("lease_owner"),
    _ts("lease_until"),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    UniqueConstraint("merchant", "order_id", "sku", name="uq_consumptions_merchant_order_sku"),
    Index("ix_consumptions_due", "merchant", "state", "next_attempt_at"),
)
