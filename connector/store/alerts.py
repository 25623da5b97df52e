"""Alert queries, mixed into `Store`: raise (deduplicated), list, resolve, queue digests, and the
reads behind the stuck-order checks.

Digest e-mails go through the outbox (`tasks`, kind `alert_email`, merchant "" because one
e-mail may cover several merchants). Queuing a digest and marking its alerts sent is one
transaction, so a crash either leaves the alerts unsent (queued again next time) or leaves a
task that is retried until the SMTP server accepts it; never neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from uuid import uuid4
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from connector.domain import OrderState as S
from connector.store.alert_models import AlertRow
from connector.store.models import CursorRow, OrderRow, TaskRow

alerts_t = AlertRow.__table__
_orders = OrderRow.__table__
_tasks = TaskRow.__table__
_cursors = CursorRow.__table__

EMAIL_TASK = "alert_email"
EMAIL_MERCHANT = ""  # alert e-mails are the connector's own tasks, not one merchant's
DIGEST_CURSOR = "alerts.last_digest_at"
KEY_MAX = 200
# Not yet at the warehouse and not waiting on a known cause: `held` orders have their own alert
# (unknown SKU, ship method, address) and `failed` ones raise order_failed.
NOT_YET_AT_WAREHOUSE = (S.received, S.ready, S.submitting, S.in_doubt)
AT_WAREHOUSE_UNSHIPPED = (S.at_warehouse, S.partially_shipped)

Recipients = Callable[[str], Sequence[str]]
Render = Callable[[Sequence[Row]], dict[str, Any]]


class AlertQueries:
    """Named queries for the alerts table; mixed into `Store` (uses `self.engine` and the outbox)."""

    async def raise_alert(self, merchant: str, category: str, key: str, message: str, *, now: datetime) -> bool:
        """Record a problem. True when it is new (or came back after being resolved) and so will be
        in the next digest; False for a repeat, which only bumps `count` and `last_at`."""
        return bool(await self.raise_alerts([(merchant, category, key, message)], now=now))

    async def raise_alerts(self, items: Sequence[tuple[str, str, str, str]], *, now: datetime) -> int:
        """`raise_alert` for many (merchant, category, key, message) in one transaction (the
        stuck-order check raises hundreds each pass). Returns how many were new."""
        if not items:
            return 0
        try:
            return await self._upsert_alerts(items, now)
        except IntegrityError:
            # Two replicas inserted the same new alert at once (PostgreSQL): the row exists now,
            # so the second try counts it as a repeat.
            return await self._upsert_alerts(items, now)

    async def _upsert_alerts(self, items: Sequence[tuple[str, str, str, str]], now: datetime) -> int:
        new = 0
        async with self.engine.begin() as conn:
            for merchant, category, key, message in items:
                key = key[:KEY_MAX]
                fresh = dict(state="open", count=1, first_at=now, last_at=now, sent_at=None, resolved_at=None, message=message)
                row = (await conn.execute(select(alerts_t.c.id, alerts_t.c.state).where(
                    alerts_t.c.merchant == merchant, alerts_t.c.category == category, alerts_t.c.key == key))).first()
                if row is None:
                    await conn.execute(insert(alerts_t).values(merchant=merchant, category=category, key=key, **fresh))
                    new += 1
                elif row.state == "resolved":
                    await conn.execute(update(alerts_t).where(alerts_t.c.id == row.id).values(**fresh))
                    new += 1
                else:
                    await conn.execute(update(alerts_t).where(alerts_t.c.id == row.id).values(
                        count=alerts_t.c.count + 1, last_at=now, message=message))
        return new

    async def open_alerts(self, merchant: str | None = None, category: str | None = None, *, unsent_only: bool = False) -> list[Row]:
        """Open alerts, oldest first."""
        q = select(alerts_t).where(alerts_t.c.state == "open")
        if merchant is not None:
            q = q.where(alerts_t.c.merchant == merchant)
        if category is not None:
            q = q.where(alerts_t.c.category == category)
        if unsent_only:
            q = q.where(alerts_t.c.sent_at.is_(None))
        async with self.engine.connect() as conn:
            return list((await conn.execute(q.order_by(alerts_t.c.id))).all())

    async def resolve_alerts(self, merchant: str, category: str, key: str | None = None, *,
                             except_keys: Iterable[str] = (), now: datetime | None = None) -> int:
        """Close open alerts (one key, or every key of the category but `except_keys`) because the
        cause is gone; raised again later, they are new and e-mailed again. Returns how many."""
        q = update(alerts_t).where(alerts_t.c.merchant == merchant, alerts_t.c.category == category, alerts_t.c.state == "open")
        if key is not None:
            q = q.where(alerts_t.c.key == key[:KEY_MAX])
        keep = [k[:KEY_MAX] for k in except_keys]
        if keep:
            q = q.where(alerts_t.c.key.not_in(keep))
        async with self.engine.begin() as conn:
            return (await conn.execute(q.values(state="resolved", resolved_at=now or datetime.now(timezone.utc)))).rowcount

    async def list_alerts(self, merchant: str | None = None, state: str | None = None, *, limit: int = 500) -> list[Row]:
        """Alerts for the operator (`connector alerts`), most recently raised first."""
        q = select(alerts_t)
        if merchant is not None:
            q = q.where(alerts_t.c.merchant == merchant)
        if state is not None:
            q = q.where(alerts_t.c.state == state)
        async with self.engine.connect() as conn:
            return list((await conn.execute(q.order_by(alerts_t.c.last_at.desc(), alerts_t.c.id.desc()).limit(limit))).all())

    async def queue_digest(self, recipients: Recipients, render: Render, *, now: datetime,
                           min_interval: timedelta | None = None) -> int:
        """In one transaction: take the unsent open alerts, queue one `alert_email` task per group
        of addresses that should see the same alerts, and mark those alerts sent.

        `recipients(merchant)` gives the addresses for a merchant's alerts; `render(alerts)` gives
        the payload ({"subject", "body"}), to which "to" and "alert_ids" are added. Alerts nobody
        would receive stay unsent. With `min_interval`, nothing is queued if the last digest was
        queued less than that long ago. Returns the number of e-mails queued.
        """
        async with self.engine.begin() as conn:
            if min_interval is not None:
                last = (await conn.execute(select(_cursors.c.value).where(
                    _cursors.c.merchant == EMAIL_MERCHANT, _cursors.c.name == DIGEST_CURSOR))).scalar()
                if last and now - datetime.fromisoformat(last) < min_interval:
                    return 0
            q = select(alerts_t).where(alerts_t.c.state == "open", alerts_t.c.sent_at.is_(None)).order_by(alerts_t.c.id)
            # SKIP LOCKED on PostgreSQL: two replicas never put one alert in two digests.
            rows = list((await conn.execute(self._lock(q))).all())
            groups = _group_by_recipients(rows, recipients)
            sent: list[int] = []
            for to, members in groups:
                payload = dict(render(members), to=list(to), alert_ids=[r.id for r in members])
                await self._put_task(conn, EMAIL_MERCHANT, kind=EMAIL_TASK, key=uuid4().hex, payload=payload, now=now)
                sent += [r.id for r in members]
            if not sent:
                return 0
            await conn.execute(update(alerts_t).where(alerts_t.c.id.in_(sorted(set(sent)))).values(sent_at=now))
            await self._set_cursor(conn, EMAIL_MERCHANT, DIGEST_CURSOR, now.isoformat(), now)
            return len(groups)

    # ------------------------------------------------------------------ reads for check_stuck
    async def orders_not_at_warehouse_since(self, merchants: Sequence[str], received_before: datetime, *, limit: int = 1000) -> list[Row]:
        """Orders received before the cutoff that are still not created at the warehouse."""
        q = select(_orders.c.merchant, _orders.c.order_id, _orders.c.state, _orders.c.reason, _orders.c.last_error,
                   _orders.c.attempts, _orders.c.received_at).where(
            _orders.c.merchant.in_(list(merchants)), _orders.c.state.in_(list(NOT_YET_AT_WAREHOUSE)),
            _orders.c.received_at < received_before)
        async with self.engine.connect() as conn:
            return list((await conn.execute(q.order_by(_orders.c.merchant, _orders.c.id).limit(limit))).all())

    async def orders_unshipped_since(self, merchants: Sequence[str], unchanged_before: datetime, *, limit: int = 1000) -> list[Row]:
        """Orders at the warehouse (or partly shipped) with no progress since the cutoff.

        `updated_at` is set by every transition, so it is when the order last moved."""
        q = select(_orders.c.merchant, _orders.c.order_id, _orders.c.state, _orders.c.warehouse_order_id, _orders.c.updated_at).where(
            _orders.c.merchant.in_(list(merchants)), _orders.c.state.in_(list(AT_WAREHOUSE_UNSHIPPED)),
            _orders.c.updated_at < unchanged_before)
        async with self.engine.connect() as conn:
            return list((await conn.execute(q.order_by(_orders.c.merchant, _orders.c.id).limit(limit))).all())

    async def tracking_posts_overdue(self, merchants: Sequence[str], due_before: datetime, *, kind: str = "post_tracking", limit: int = 1000) -> list[Row]:
        """Tracking posts (outbox tasks) due since before the cutoff and still not accepted, and
        those that failed for good whatever their age.

        A post task exists only once the tracking is meant to go (for `when_complete`, when the
        whole order has shipped), so a partial shipment waiting by design is not counted."""
        q = select(_tasks.c.merchant, _tasks.c.key, _tasks.c.state, _tasks.c.attempts, _tasks.c.last_error,
                   _tasks.c.payload, _tasks.c.created_at).where(
            _tasks.c.merchant.in_(list(merchants)), _tasks.c.kind == kind,
            or_(_tasks.c.state == "failed", and_(_tasks.c.state.in_(["pending", "running"]), _tasks.c.created_at < due_before)))
        async with self.engine.connect() as conn:
            return list((await conn.execute(q.order_by(_tasks.c.merchant, _tasks.c.id).limit(limit))).all())


def _group_by_recipients(rows: Sequence[Row], recipients: Recipients) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Addresses that should see exactly the same alerts share one e-mail.

    The 3PL's address sees every merchant; a merchant's own address sees its alerts only; an
    address in both lists gets one e-mail, not two."""
    seen_by: dict[str, list[Row]] = {}
    for r in rows:
        for addr in dict.fromkeys(a.strip() for a in recipients(r.merchant) if a and a.strip()):
            seen_by.setdefault(addr, []).append(r)
    groups: dict[tuple[int, ...], tuple[list[str], list[Row]]] = {}
    for addr, members in seen_by.items():
        ids = tuple(r.id for r in members)
        groups.setdefault(ids, ([], members))[0].append(addr)
    return [(tuple(addrs), members) for addrs, members in groups.values()]
