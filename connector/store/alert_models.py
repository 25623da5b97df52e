"""The `alerts` table: one row per distinct problem (merchant, category, key), deduplicated.

A row is `open` until the cause is fixed (`resolved`). `sent_at` is when it went into a digest
(queued in the outbox in the same transaction); repeats of a sent alert only bump `count` and
`last_at`, so an operator is told once per problem, not once per pass.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from connector.store.models import _ts


class AlertRow(SQLModel, table=True):
    """One problem an administrator should hear about, and whether they have been told."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("merchant", "category", "key", name="uq_alerts_merchant_category_key"),
        Index("ix_alerts_state_sent", "state", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    merchant: str  # "" = the connector as a whole, not one merchant
    category: str  # a key of connector.alerts.CATEGORIES
    key: str  # what makes the problem distinct within its category (a SKU, an order id, a service)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # latest detail, redacted
    state: str = "open"  # open | resolved
    count: int = 1  # times raised since it was (re)opened
    first_at: datetime | None = _ts(nullable=False)
    last_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()  # None: not yet in a digest
    resolved_at: datetime | None = _ts()
