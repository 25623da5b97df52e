"""ShipmentStore: warehouse shipments, stored once per warehouse shipment id, and their tracking
posts' bookkeeping. A posted shipment is final: later readings never change it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update

from connector.lifecycle import ShipmentState
from connector.store import tables as t
from connector.store.dialect import Db, chunks
from connector.store.records import ShipmentRecord

SH = t.shipments
POSTED = ShipmentState.posted


class ShipmentStore(Protocol):
    async def by_ids(self, merchant: str, shipment_ids: Iterable[str]) -> dict[str, ShipmentRecord]: ...
    async def of_orders(self, pks: Iterable[int]) -> dict[int, list[ShipmentRecord]]: ...
    async def upsert(self, merchant: str, shipments: Sequence[dict[str, Any]]) -> None: ...
    async def mark_posted(self, merchant: str, shipment_ids: Sequence[str]) -> None: ...
    async def needing_ack(self, merchant: str, limit: int = 500) -> list[ShipmentRecord]: ...
    async def mark_acked(self, merchant: str, shipment_ids: Iterable[str]) -> None: ...
    async def listing(self, merchant: str | None = None, state: str | None = None, limit: int = 200) -> list[ShipmentRecord]: ...


class SqlShipmentStore:
    def __init__(self, db: Db):
        self.db = db

    async def _records(self, query) -> list[ShipmentRecord]:
        async with self.db.read() as conn:
            return [ShipmentRecord.from_row(r) for r in (await conn.execute(query)).all()]

    async def by_ids(self, merchant: str, shipment_ids: Iterable[str]) -> dict[str, ShipmentRecord]:
        out: dict[str, ShipmentRecord] = {}
        for part in chunks(list(set(shipment_ids))):
            out.update({r.shipment_id: r for r in await self._records(select(SH).where(SH.c.merchant == merchant, SH.c.shipment_id.in_(part)))})
        return out

    async def of_orders(self, pks: Iterable[int]) -> dict[int, list[ShipmentRecord]]:
        pks = list(set(pks))
        out: dict[int, list[ShipmentRecord]] = {pk: [] for pk in pks}
        for part in chunks(pks):
            for r in await self._records(select(SH).where(SH.c.order_pk.in_(part)).order_by(SH.c.id)):
                out[r.order_pk].append(r)
        return out

    async def upsert(self, merchant: str, shipments: Sequence[dict[str, Any]]) -> None:
        """Insert new shipments and update the ones not yet posted, one executemany each.

        Each item: shipment_id, reference, order_pk, state, reason, tracking, shipment_json."""
        if not shipments:
            return
        now = self.db.now()
        items = list({s["shipment_id"]: s for s in shipments}.values())  # read twice: the last reading wins
        async with self.db.write() as conn:
            known: dict[str, str] = {}
            for part in chunks([s["shipment_id"] for s in items]):
                q = select(SH.c.shipment_id, SH.c.state).where(SH.c.merchant == merchant, SH.c.shipment_id.in_(part))
                known.update((await conn.execute(q)).all())
            fresh = [dict(s, merchant=merchant, received_at=now) for s in items if s["shipment_id"] not in known]
            changed: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for s in items:
                if known.get(s["shipment_id"], POSTED) != POSTED:
                    values = {k: v for k, v in s.items() if k != "shipment_id"}
                    changed[tuple(sorted(values))].append({"b_sid": s["shipment_id"], **values})
            if fresh:
                await conn.execute(self.db.dialect.insert_ignore(SH, "merchant", "shipment_id"), fresh)
            stmt = update(SH).where(SH.c.merchant == merchant, SH.c.shipment_id == bindparam("b_sid"), SH.c.state != POSTED)
            for rows in changed.values():
                await conn.execute(stmt, rows)

    async def mark_posted(self, merchant: str, shipment_ids: Sequence[str]) -> None:
        if not shipment_ids:
            return
        async with self.db.write() as conn:
            for part in chunks(list(shipment_ids)):
                await conn.execute(update(SH).where(SH.c.merchant == merchant, SH.c.shipment_id.in_(part))
                                   .values(state=POSTED, posted_at=self.db.now()))

    async def needing_ack(self, merchant: str, limit: int = 500) -> list[ShipmentRecord]:
        return await self._records(select(SH).where(SH.c.merchant == merchant, SH.c.state == POSTED, SH.c.warehouse_acked_at.is_(None))
                                   .order_by(SH.c.id).limit(limit))

    async def mark_acked(self, merchant: str, shipment_ids: Iterable[str]) -> None:
        async with self.db.write() as conn:
            for part in chunks(list(shipment_ids)):
                await conn.execute(update(SH).where(SH.c.merchant == merchant, SH.c.shipment_id.in_(part)).values(warehouse_acked_at=self.db.now()))

    async def listing(self, merchant: str | None = None, state: str | None = None, limit: int = 200) -> list[ShipmentRecord]:
        q = select(SH)
        if merchant:
            q = q.where(SH.c.merchant == merchant)
        if state:
            q = q.where(SH.c.state == state)
        return await self._records(q.order_by(SH.c.id).limit(limit))
