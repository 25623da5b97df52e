"""AlertStore: one row per distinct problem (merchant, category, key), deduplicated.

An alert is `open` until its cause is gone (`resolved`); raised again later, it is new and
e-mailed again. `sent_at` is when it went into a digest e-mail (queued in the outbox in the same
transaction), `delivered_at` when the SMTP server accepted that e-mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from connector.lifecycle import AlertState
from connector.store import tables as t
from connector.store.dialect import Db, chunks
from connector.store.records import AlertRecord

AL = t.alerts
KEY_MAX = 200
Item = tuple[str, str, str, str]  # merchant, category, key, message


class AlertStore(Protocol):
    async def raise_many(self, items: Sequence[Item], *, now: datetime) -> int: ...
    async def open(self, merchant: str | None = None, category: str | None = None, *, unsent_only: bool = False) -> list[AlertRecord]: ...
    async def resolve(self, merchant: str, category: str | Sequence[str], key: str | None = None, *, except_keys: Iterable[str] = (),
                      now: datetime | None = None) -> int: ...
    async def listing(self, merchant: str | None = None, state: str | None = None, *, limit: int = 500) -> list[AlertRecord]: ...
    async def claim_unsent(self) -> list[AlertRecord]: ...
    async def mark_sent(self, alert_ids: Sequence[int], *, now: datetime) -> None: ...
    async def mark_delivered(self, alert_ids: Sequence[int], *, now: datetime) -> None: ...


class SqlAlertStore:
    def __init__(self, db: Db):
        self.db = db

    async def raise_many(self, items: Sequence[Item], *, now: datetime) -> int:
        """Record problems in one transaction. Returns how many are new (or came back after being
        resolved) and so will be in the next digest; a repeat only bumps `count` and `last_at`."""
        if not items:
            return 0
        try:
            return await self._upsert(items, now)
        except IntegrityError:
            # Two replicas inserted the same new alert at once (PostgreSQL): the row exists now,
            # so the second try counts it as a repeat.
            return await self._upsert(items, now)

    async def _upsert(self, items: Sequence[Item], now: datetime) -> int:
        new = 0
        async with self.db.write() as conn:
            for merchant, category, key, message in items:
                key = key[:KEY_MAX]
                fresh = dict(state=AlertState.open, count=1, first_at=now, last_at=now, sent_at=None, delivered_at=None, resolved_at=None, message=message)
                row = (await conn.execute(select(AL.c.id, AL.c.state).where(AL.c.merchant == merchant, AL.c.category == category, AL.c.key == key))).first()
                if row is None:
                    await conn.execute(insert(AL).values(merchant=merchant, category=category, key=key, **fresh))
                    new += 1
                elif row.state == AlertState.resolved:
                    await conn.execute(update(AL).where(AL.c.id == row.id).values(**fresh))
                    new += 1
                else:
                    await conn.execute(update(AL).where(AL.c.id == row.id).values(count=AL.c.count + 1, last_at=now, message=message))
        return new

    async def _records(self, q) -> list[AlertRecord]:
        async with self.db.read() as conn:
            return [AlertRecord.from_row(r) for r in (await conn.execute(q)).all()]

    async def open(self, merchant: str | None = None, category: str | None = None, *, unsent_only: bool = False) -> list[AlertRecord]:
        """Open alerts, oldest first."""
        q = select(AL).where(AL.c.state == AlertState.open)
        if merchant is not None:
            q = q.where(AL.c.merchant == merchant)
        if category is not None:
            q = q.where(AL.c.category == category)
        if unsent_only:
            q = q.where(AL.c.sent_at.is_(None))
        return await self._records(q.order_by(AL.c.id))

    async def resolve(self, merchant: str, category: str | Sequence[str], key: str | None = None, *, except_keys: Iterable[str] = (),
                      now: datetime | None = None) -> int:
        """Close open alerts (one key, or every key of the category, or categories, but
        `except_keys`) because the cause is gone. Returns how many."""
        which = [AL.c.merchant == merchant, AL.c.state == AlertState.open,
                 AL.c.category == category if isinstance(category, str) else AL.c.category.in_(list(category))]
        if key is not None:
            which.append(AL.c.key == key[:KEY_MAX])
        keep = [k[:KEY_MAX] for k in except_keys]
        if keep:
            which.append(AL.c.key.not_in(keep))
        # Asked after every successful pass, and almost always with nothing open: a read costs far
        # less than a write transaction (SQLite's writer lock, PostgreSQL's WAL).
        async with self.db.read() as conn:
            if (await conn.execute(select(AL.c.id).where(*which).limit(1))).first() is None:
                return 0
        async with self.db.write() as conn:
            return (await conn.execute(update(AL).where(*which).values(state=AlertState.resolved, resolved_at=now or self.db.now()))).rowcount

    async def listing(self, merchant: str | None = None, state: str | None = None, *, limit: int = 500) -> list[AlertRecord]:
        """Alerts for the operator, most recently raised first."""
        q = select(AL)
        if merchant is not None:
            q = q.where(AL.c.merchant == merchant)
        if state is not None:
            q = q.where(AL.c.state == state)
        return await self._records(q.order_by(AL.c.last_at.desc(), AL.c.id.desc()).limit(limit))

    async def claim_unsent(self) -> list[AlertRecord]:
        """Open alerts not yet in a digest (rows locked, skipping locked ones, on PostgreSQL: two
        replicas never put one alert in two digests). Use inside `Store.atomic()`."""
        q = select(AL).where(AL.c.state == AlertState.open, AL.c.sent_at.is_(None)).order_by(AL.c.id)
        async with self.db.read() as conn:
            return [AlertRecord.from_row(r) for r in (await conn.execute(self.db.dialect.claim(q))).all()]

    async def _stamp(self, alert_ids: Sequence[int], **values) -> None:
        async with self.db.write() as conn:
            for part in chunks(sorted(set(alert_ids))):
                await conn.execute(update(AL).where(AL.c.id.in_(part)).values(**values))

    async def mark_sent(self, alert_ids: Sequence[int], *, now: datetime) -> None:
        await self._stamp(alert_ids, sent_at=now)

    async def mark_delivered(self, alert_ids: Sequence[int], *, now: datetime) -> None:
        await self._stamp(alert_ids, delivered_at=now)
