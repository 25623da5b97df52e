"""InventoryStore: the last quantity UltraCart accepted for each store SKU (recorded only after
its 204), so the inventory upload sends only what changed.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import bindparam, select, update

from connector.store import tables as t
from connector.store.dialect import Db, chunks

P = t.inventory_pushed


class InventoryStore(Protocol):
    async def pushed(self, merchant: str) -> dict[str, int]: ...
    async def record_pushed(self, merchant: str, quantities: dict[str, int]) -> None: ...


class SqlInventoryStore:
    def __init__(self, db: Db):
        self.db = db

    async def pushed(self, merchant: str) -> dict[str, int]:
        async with self.db.read() as conn:
            return {sku: q for sku, q in (await conn.execute(select(P.c.sku, P.c.quantity).where(P.c.merchant == merchant))).all()}

    async def record_pushed(self, merchant: str, quantities: dict[str, int]) -> None:
        if not quantities:
            return
        now = self.db.now()
        async with self.db.write() as conn:
            existing: set[str] = set()
            for part in chunks(list(quantities)):
                existing |= set((await conn.execute(select(P.c.sku).where(P.c.merchant == merchant, P.c.sku.in_(part)))).scalars())
            new = [dict(merchant=merchant, sku=s, quantity=q, pushed_at=now) for s, q in quantities.items() if s not in existing]
            old = [dict(b_sku=s, quantity=q, pushed_at=now) for s, q in quantities.items() if s in existing]
            if new:
                await conn.execute(self.db.dialect.insert_ignore(P, "merchant", "sku"), new)
            if old:
                await conn.execute(update(P).where(P.c.merchant == merchant, P.c.sku == bindparam("b_sku")), old)
