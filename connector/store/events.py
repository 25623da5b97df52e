"""EventStore: the event log. Every vendor call and webhook delivery, redacted, kept for
`event_log_days` (pruned hourly).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, or_, select

from connector.store import tables as t
from connector.store.dialect import Db
from connector.store.records import EventRecord

EV = t.event_log
BLANK: dict[str, Any] = dict(merchant="", kind="", vendor="", order_id="", method="", url="", status=None, request_id="",
                             duration_ms=None, request_body="", response_body="", error="")


class EventStore(Protocol):
    async def log(self, rows: Sequence[dict[str, Any]]) -> None: ...
    async def listing(self, *, merchant: str | None = None, order_id: str | None = None, kind: str | None = None,
                      limit: int = 100) -> list[EventRecord]: ...
    async def prune(self, older_than: datetime) -> int: ...


class SqlEventStore:
    def __init__(self, db: Db):
        self.db = db

    async def log(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            async with self.db.write() as conn:
                await conn.execute(insert(EV), [{**BLANK, **r} for r in rows])

    async def listing(self, *, merchant: str | None = None, order_id: str | None = None, kind: str | None = None,
                      limit: int = 100) -> list[EventRecord]:
        """The newest `limit` events matching, oldest first."""
        q = select(EV)
        if merchant:
            q = q.where(EV.c.merchant == merchant)
        if kind:
            q = q.where(EV.c.kind == kind)
        if order_id:
            q = q.where(or_(EV.c.order_id == order_id, EV.c.request_body.contains(order_id)))
        async with self.db.read() as conn:
            rows = (await conn.execute(q.order_by(EV.c.id.desc()).limit(limit))).all()
        return [EventRecord.from_row(r) for r in reversed(rows)]

    async def prune(self, older_than: datetime) -> int:
        async with self.db.write() as conn:
            return (await conn.execute(delete(EV).where(EV.c.at < older_than))).rowcount
