"""LedgerStore: order lines' stock to consume in the merchant's inventory ledger. One row per
(merchant, order, item): whatever announces a shipment twice (a repeated webhook, the webhook and
this connector's own confirmation) asks for it once. A consumption is claimed under a lease,
its draws (which unit, how much, the unit's quantity before) are recorded before each ledger
call, and the outcome after it, so a crash in between is resolved by reading the unit back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update

from connector.store import tables as t
from connector.store.dialect import Db
from connector.store.records import ConsumptionRecord

C = t.consumptions
OPEN = ("pending", "consuming")


class LedgerStore(Protocol):
    async def request(self, merchant: str, lines: Sequence[dict[str, Any]]) -> list[str]: ...
    async def claim(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[ConsumptionRecord]: ...
    async def save(self, pk: int, *, state: str, draws: list[dict[str, Any]], consumed: str, reason: str = "",
                   next_attempt_at: Any = None, release: bool = False) -> None: ...
    async def listing(self, merchant: str | None = None, *, order_id: str | None = None, state: str | None = None,
                      limit: int = 500) -> list[ConsumptionRecord]: ...
    async def retry(self, merchant: str, order_id: str) -> int: ...
    async def recover(self) -> int: ...


class SqlLedgerStore:
    def __init__(self, db: Db):
        self.db = db

    async def request(self, merchant: str, lines: Sequence[dict[str, Any]]) -> list[str]:
        """Ask for consumptions (order_id, sku, quantity, source); returns "order_id:sku" of the new
        ones (a line asked for before is not asked again)."""
        if not lines:
            return []
        now = self.db.now()
        rows = [dict(merchant=merchant, order_id=x["order_id"], sku=x["sku"], quantity=str(x["quantity"]), consumed="0", source=x["source"],
                     state="pending", draws="", reason="", attempts=0, lease_owner="", created_at=now, updated_at=now) for x in lines]
        async with self.db.write() as conn:
            stmt = self.db.dialect.insert_ignore(C, "merchant", "order_id", "sku").returning(C.c.order_id, C.c.sku)
            return [f"{r.order_id}:{r.sku}" for r in (await conn.execute(stmt, rows)).all()]

    async def claim(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[ConsumptionRecord]:
        now = self.db.now()
        d = self.db.dialect
        async with self.db.write() as conn:
            due = or_(C.c.state == "pending", and_(C.c.state == "consuming", C.c.lease_until < d.lease_now(self.db.clock)))
            q = select(C.c.id).where(C.c.merchant == merchant, due, or_(C.c.next_attempt_at.is_(None), C.c.next_attempt_at <= now)) \
                .order_by(C.c.id).limit(limit)
            ids = list((await conn.execute(d.claim(q))).scalars())
            if not ids:
                return []
            await conn.execute(update(C).where(C.c.id.in_(ids), due).values(
                state="consuming", lease_owner=owner, lease_until=d.lease_until(self.db.clock, lease_seconds), attempts=C.c.attempts + 1, updated_at=now))
            rows = (await conn.execute(select(C).where(C.c.id.in_(ids), C.c.lease_owner == owner).order_by(C.c.id))).all()
            return [ConsumptionRecord.from_row(r) for r in rows]

    async def save(self, pk: int, *, state: str, draws: list[dict[str, Any]], consumed: str, reason: str = "",
                   next_attempt_at: Any = None, release: bool = False) -> None:
        values: dict[str, Any] = dict(state=state, draws=json.dumps(draws, default=str), consumed=consumed, reason=reason[:2000],
                                      updated_at=self.db.now(), next_attempt_at=next_attempt_at)
        if release:
            values.update(lease_owner="", lease_until=None)
        async with self.db.write() as conn:
            await conn.execute(update(C).where(C.c.id == pk).values(**values))

    async def listing(self, merchant: str | None = None, *, order_id: str | None = None, state: str | None = None,
                      limit: int = 500) -> list[ConsumptionRecord]:
        q = select(C)
        for col, val in ((C.c.merchant, merchant), (C.c.order_id, order_id), (C.c.state, state)):
            if val is not None:
                q = q.where(col == val)
        async with self.db.read() as conn:
            return [ConsumptionRecord.from_row(r) for r in (await conn.execute(q.order_by(C.c.id).limit(limit))).all()]

    async def retry(self, merchant: str, order_id: str) -> int:
        """An operator fixed the cause (added the item, restocked, checked a unit): try again."""
        async with self.db.write() as conn:
            res = await conn.execute(update(C).where(C.c.merchant == merchant, C.c.order_id == order_id,
                                                     C.c.state.in_(["unknown_item", "short", "failed", "held"]))
                                     .values(state="pending", attempts=0, next_attempt_at=None, lease_owner="", updated_at=self.db.now()))
            return res.rowcount

    async def recover(self) -> int:
        """At start (SQLite, one daemon): consumptions left claimed by a dead process are due again
        (their draws left `sent` are read back before anything else)."""
        async with self.db.write() as conn:
            return (await conn.execute(update(C).where(C.c.state == "consuming").values(state="pending", lease_owner="", lease_until=None))).rowcount
