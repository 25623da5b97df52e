"""The Store: every query the connector makes, each behind a named method.

Rules kept here so no caller has to remember them:
- writes are short transactions (`BEGIN IMMEDIATE` on SQLite), never open across a vendor call;
- state changes are compare-and-set (`UPDATE ... WHERE state IN (...)`), so two workers (or two
  replicas on PostgreSQL) can never both claim an order, and each change writes a timeline event;
- every datetime is aware UTC.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.domain import OrderState
from connector.store.alerts import AlertQueries
from connector.store.engine import is_sqlite, make_engine, migrate
from connector.store.models import (
    CursorRow,
    EventLogRow,
    InventoryPushedRow,
    OrderEvent,
    OrderRow,
    ServiceRunRow,
    ShipmentRow,
    TaskRow,
)

orders = OrderRow.__table__
events = OrderEvent.__table__
shipments_t = ShipmentRow.__table__
tasks_t = TaskRow.__table__
cursors_t = CursorRow.__table__
runs_t = ServiceRunRow.__table__
pushed_t = InventoryPushedRow.__table__
eventlog_t = EventLogRow.__table__

S = OrderState
PRE_WAREHOUSE = (S.received, S.held, S.ready, S.submitting, S.in_doubt)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class NewOrder:
    """An order arriving from the cart (poll or webhook), ready to be stored."""

    order_id: str
    reference: str
    order_json: str  # canonical domain Order ("" when the payload could not be parsed)
    raw_json: str  # the redacted payload as received
    state: str = S.received
    reason: str = ""
    hold_kind: str = ""


@dataclass
class Transition:
    """One compare-and-set state change: only applied while the order is in `expect`."""

    pk: int
    to_state: str
    expect: tuple[str, ...]
    reason: str = ""
    fields: dict[str, Any] | None = None
    request_id: str = ""


class Store(AlertQueries):
    """The one gateway to the database (SQLite by default, PostgreSQL for replicas)."""

    def __init__(self, engine: AsyncEngine, url: str):
        self.engine = engine
        self.url = url
        self.sqlite = is_sqlite(url)

    @classmethod
    async def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        engine = make_engine(url)
        if migrate_schema:
            await migrate(engine)
        return cls(engine, url)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True

    def _insert_new(self, table, *index: str):
        """INSERT that skips rows whose unique key exists (another replica got there first)."""
        dialect = sqlite_dialect if self.sqlite else pg_dialect
        return dialect.insert(table).on_conflict_do_nothing(index_elements=list(index))

    def _lock(self, stmt):
        """Row locks for claims on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
        return stmt if self.sqlite else stmt.with_for_update(skip_locked=True)

    # ------------------------------------------------------------------ intake
    async def ingest_orders(self, merchant: str, dc: str, new: Sequence[NewOrder], *, source: str, actor: str) -> list[str]:
        """Store orders (one transaction); returns the ids that were new. Repeats are absorbed."""
        if not new:
            return []
        now = utcnow()
        ids = [n.order_id for n in new]
        async with self.engine.begin() as conn:
            existing = set(
                (await conn.execute(select(orders.c.order_id).where(orders.c.merchant == merchant, orders.c.dc == dc, orders.c.order_id.in_(ids)))).scalars()
            )
            fresh: dict[str, NewOrder] = {}
            for n in new:
                if n.order_id not in existing and n.order_id not in fresh:
                    fresh[n.order_id] = n
            if not fresh:
                return []
            inserted = await conn.execute(
                self._insert_new(orders, "merchant", "dc", "order_id").returning(orders.c.id, orders.c.order_id, orders.c.state, orders.c.reason),
                [
                    dict(
                        merchant=merchant, dc=dc, order_id=n.order_id, reference=n.reference, state=n.state, reason=n.reason,
                        hold_kind=n.hold_kind, source=source, received_at=now, updated_at=now, order_json=n.order_json,
                        raw_json=n.raw_json, warehouse_json="", attempts=0, last_error="", lease_owner="", warehouse_order_id="",
                    )
                    for n in fresh.values()
                ],
            )
            # Only the rows this statement inserted: a replica may have stored some meanwhile.
            rows = inserted.all()
            if not rows:
                return []
            await conn.execute(insert(events), [
                dict(order_pk=r.id, at=now, from_state="", to_state=r.state, actor=actor, reason=r.reason or f"received by {source}", request_id="")
                for r in rows
            ])
        return [r.order_id for r in rows]

    async def unacked_order_ids(self, merchant: str, dc: str, limit: int = 100) -> list[str]:
        async with self.engine.connect() as conn:
            q = select(orders.c.order_id).where(orders.c.merchant == merchant, orders.c.dc == dc, orders.c.acked_at.is_(None)).order_by(orders.c.id).limit(limit)
            return list((await conn.execute(q)).scalars())

    async def mark_acked(self, merchant: str, dc: str, order_ids: Iterable[str]) -> None:
        ids = list(order_ids)
        if not ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(update(orders).where(orders.c.merchant == merchant, orders.c.dc == dc, orders.c.order_id.in_(ids), orders.c.acked_at.is_(None)).values(acked_at=utcnow()))

    # ------------------------------------------------------------------ transitions
    async def transition(self, t: Transition, *, actor: str) -> bool:
        return (await self.transition_many([t], actor=actor))[0]

    async def transition_many(self, ts: Sequence[Transition], *, actor: str) -> list[bool]:
        """Apply compare-and-set transitions in one transaction; returns which ones applied."""
        if not ts:
            return []
        async with self.engine.begin() as conn:
            return await self._transitions(conn, ts, actor, utcnow())

    async def _transitions(self, conn: AsyncConnection, ts: Sequence[Transition], actor: str, now: datetime) -> list[bool]:
        """Compare-and-set many transitions in the open transaction with a few statements: one read
        of the current states (rows locked on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds
        the write lock), one executemany UPDATE per set of changed columns, one INSERT of events.
        Three statements per order were most of the delivery pass's CPU."""
        plain = all(not isinstance(v, ClauseElement) for t in ts for v in (t.fields or {}).values())
        if len({t.pk for t in ts}) != len(ts) or not plain:  # an order twice must see its first change
            return [await self._transition(conn, t, actor, now) for t in ts]
        pks = [t.pk for t in ts]
        current: dict[int, str] = {}
        for i in range(0, len(pks), 500):
            q = select(orders.c.id, orders.c.state).where(orders.c.id.in_(pks[i : i + 500]))
            current.update((await conn.execute(q if self.sqlite else q.with_for_update())).all())
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        new_events: list[dict[str, Any]] = []
        done: list[bool] = []
        for t in ts:
            state = current.get(t.pk)
            if state is None or state not in t.expect:
                done.append(False)
                continue
            values = dict(state=t.to_state, updated_at=now, **(t.fields or {}))
            if t.to_state != state or "reason" not in values:
                values.setdefault("reason", t.reason)
            groups[tuple(sorted(values))].append({"b_pk": t.pk, "b_state": state, **values})
            if t.to_state != state or t.reason:
                new_events.append(dict(order_pk=t.pk, at=now, from_state=state, to_state=t.to_state, actor=actor, reason=t.reason, request_id=t.request_id))
            done.append(True)
        stmt = update(orders).where(orders.c.id == bindparam("b_pk"), orders.c.state == bindparam("b_state"))
        for rows in groups.values():
            await conn.execute(stmt, rows)
        if new_events:
            await conn.execute(insert(events), new_events)
        return done

    async def _transition(self, conn: AsyncConnection, t: Transition, actor: str, now: datetime) -> bool:
        current = (await conn.execute(select(orders.c.state).where(orders.c.id == t.pk))).scalar()
        if current is None or current not in t.expect:
            return False
        values = dict(state=t.to_state, updated_at=now, **(t.fields or {}))
        if t.to_state != current or "reason" not in values:
            values.setdefault("reason", t.reason)
        res = await conn.execute(update(orders).where(orders.c.id == t.pk, orders.c.state == current).values(**values))
        if res.rowcount != 1:
            return False
        if t.to_state != current or t.reason:
            await conn.execute(insert(events).values(order_pk=t.pk, at=now, from_state=current, to_state=t.to_state, actor=actor, reason=t.reason, request_id=t.request_id))
        return True

    async def orders_in_states(self, merchant: str, states: Iterable[str], *, limit: int = 1000, after_pk: int = 0) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(orders).where(orders.c.merchant == merchant, orders.c.state.in_(list(states)), orders.c.id > after_pk).order_by(orders.c.id).limit(limit)
            return list((await conn.execute(q)).all())

    async def claim_ready(self, merchant: str, *, owner: str, lease_seconds: float, limit: int, now: datetime | None = None) -> list[Row]:
        """Claim due `ready` orders for sending (ready -> submitting, attempts + 1), atomically."""
        now = now or utcnow()
        async with self.engine.begin() as conn:
            q = select(orders.c.id).where(
                orders.c.merchant == merchant, orders.c.state == S.ready,
                or_(orders.c.next_attempt_at.is_(None), orders.c.next_attempt_at <= now),
            ).order_by(orders.c.id).limit(limit)
            ids = list((await conn.execute(self._lock(q))).scalars())
            if not ids:
                return []
            await conn.execute(
                update(orders).where(orders.c.id.in_(ids), orders.c.state == S.ready).values(
                    state=S.submitting, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=orders.c.attempts + 1, updated_at=now,
                    first_attempt_at=func.coalesce(orders.c.first_attempt_at, now),
                )
            )
            rows = list((await conn.execute(select(orders).where(orders.c.id.in_(ids), orders.c.state == S.submitting, orders.c.lease_owner == owner))).all())
            await conn.execute(insert(events), [
                dict(order_pk=r.id, at=now, from_state=S.ready, to_state=S.submitting, actor=owner, reason=f"attempt {r.attempts}", request_id="")
                for r in rows
            ])
        return rows

    async def expire_leases(self, merchant: str, now: datetime | None = None) -> int:
        """Orders left `submitting` by a dead worker become `in_doubt`: the create may have happened."""
        now = now or utcnow()
        stale = [r.id for r in await self._stale_leases(merchant, now)]
        ts = [Transition(pk, S.in_doubt, (S.submitting,), "lease expired while submitting (worker stopped); will look up before resending") for pk in stale]
        return sum(await self.transition_many(ts, actor="recovery"))

    async def _stale_leases(self, merchant: str, now: datetime) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(orders.c.id).where(orders.c.merchant == merchant, orders.c.state == S.submitting, orders.c.lease_until < now)
            return list((await conn.execute(q)).all())

    async def renew_leases(self, owner: str, seconds: float) -> None:
        """Heartbeat: push back the expiry of everything `owner` holds (orders being sent, tasks
        being run, service passes), so only a dead worker's claims ever expire."""
        until = utcnow() + timedelta(seconds=seconds)
        async with self.engine.begin() as conn:
            await conn.execute(update(orders).where(orders.c.lease_owner == owner, orders.c.state == S.submitting).values(lease_until=until))
            await conn.execute(update(tasks_t).where(tasks_t.c.lease_owner == owner, tasks_t.c.state == "running").values(lease_until=until))
            await conn.execute(update(runs_t).where(runs_t.c.lease_owner == owner).values(lease_until=until))

    async def recover_all_leases(self) -> tuple[int, int]:
        """At start with the single-daemon lock held (SQLite): every claim is a dead process's.

        Orders left `submitting` become `in_doubt` (looked up before any resend); tasks left
        `running` become due again. Returns (orders, tasks) recovered.
        """
        async with self.engine.connect() as conn:
            pks = list((await conn.execute(select(orders.c.id).where(orders.c.state == S.submitting))).scalars())
        ts = [Transition(pk, S.in_doubt, (S.submitting,), "found submitting at start (the previous process stopped mid-send); will look up before resending") for pk in pks]
        n_orders = sum(await self.transition_many(ts, actor="recovery"))
        async with self.engine.begin() as conn:
            n_tasks = (await conn.execute(update(tasks_t).where(tasks_t.c.state == "running").values(state="pending", lease_owner="", updated_at=utcnow()))).rowcount
            await conn.execute(update(runs_t).where(runs_t.c.lease_owner != "").values(lease_owner="", lease_until=None))
        return n_orders, n_tasks

    async def release_own_leases(self, owner: str) -> int:
        """On a clean stop: our `submitting` orders whose call never started go back... as in_doubt.

        We cannot know whether a cancelled call reached the warehouse, so they are marked in doubt
        and resolved by lookup on the next pass, never resent blindly.
        """
        async with self.engine.connect() as conn:
            pks = list((await conn.execute(select(orders.c.id).where(orders.c.state == S.submitting, orders.c.lease_owner == owner))).scalars())
        ts = [Transition(pk, S.in_doubt, (S.submitting,), "stopped while submitting; will look up before resending") for pk in pks]
        return sum(await self.transition_many(ts, actor="shutdown"))

    # ------------------------------------------------------------------ reading orders
    async def find_orders(self, order_id: str, merchant: str | None = None) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(orders).where(or_(orders.c.order_id == order_id, orders.c.reference == order_id))
            if merchant:
                q = q.where(orders.c.merchant == merchant)
            return list((await conn.execute(q)).all())

    async def order_by_pk(self, pk: int) -> Row | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(orders).where(orders.c.id == pk))).first()

    async def orders_by_pk(self, pks: Iterable[int]) -> dict[int, Row]:
        pks = list(set(pks))
        out: dict[int, Row] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(pks), 500):
                out.update({r.id: r for r in (await conn.execute(select(orders).where(orders.c.id.in_(pks[i : i + 500])))).all()})
        return out

    async def orders_by_reference(self, merchant: str, references: Iterable[str]) -> dict[str, Row]:
        """What matching shipments to orders needs, by reference: not the stored payloads (the raw
        order and its parsed copy are most of a row: 10,000 of them were 100 MB)."""
        refs = list(set(references))
        out: dict[str, Row] = {}
        cols = (orders.c.id, orders.c.order_id, orders.c.reference, orders.c.state, orders.c.warehouse_json)
        async with self.engine.connect() as conn:
            for i in range(0, len(refs), 500):
                q = select(*cols).where(orders.c.merchant == merchant, orders.c.reference.in_(refs[i : i + 500]))
                for r in (await conn.execute(q)).all():
                    out[r.reference] = r
        return out

    async def timeline(self, pk: int) -> list[Row]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(events).where(events.c.order_pk == pk).order_by(events.c.id))).all())

    async def list_orders(self, *, state: str | None = None, merchant: str | None = None, limit: int = 200) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(orders.c.id, orders.c.merchant, orders.c.order_id, orders.c.state, orders.c.reason, orders.c.attempts,
                       orders.c.warehouse_order_id, orders.c.updated_at, orders.c.last_error, orders.c.received_at,
                       orders.c.next_attempt_at)
            if state:
                q = q.where(orders.c.state == state)
            if merchant:
                q = q.where(orders.c.merchant == merchant)
            return list((await conn.execute(q.order_by(orders.c.id).limit(limit))).all())

    async def counts_by_state(self, merchant: str | None = None) -> dict[tuple[str, str], int]:
        async with self.engine.connect() as conn:
            q = select(orders.c.merchant, orders.c.state, func.count()).group_by(orders.c.merchant, orders.c.state)
            if merchant:
                q = q.where(orders.c.merchant == merchant)
            return {(m, s): n for m, s, n in (await conn.execute(q)).all()}

    async def reasons(self, state: str, merchant: str | None = None) -> dict[tuple[str, str], int]:
        """How many orders in `state` per merchant and reason (holds by reason, skips by reason)."""
        async with self.engine.connect() as conn:
            q = select(orders.c.merchant, orders.c.reason, func.count()).where(orders.c.state == state).group_by(orders.c.merchant, orders.c.reason)
            if merchant:
                q = q.where(orders.c.merchant == merchant)
            return {(m, r): n for m, r, n in (await conn.execute(q)).all()}

    async def oldest_pending(self, merchant: str | None = None) -> datetime | None:
        async with self.engine.connect() as conn:
            q = select(func.min(orders.c.received_at)).where(orders.c.state.in_(list(PRE_WAREHOUSE)))
            if merchant:
                q = q.where(orders.c.merchant == merchant)
            return (await conn.execute(q)).scalar()

    async def in_flight_orders(self, merchant: str, since: datetime) -> list[str]:
        """order_json of orders the warehouse snapshot cannot reflect yet: stored but not yet at
        the warehouse (held ones included: they may still ship), or created there after `since`
        (the snapshot's start), so stock is never over-promised."""
        async with self.engine.connect() as conn:
            q = select(orders.c.order_json).where(
                orders.c.merchant == merchant,
                or_(orders.c.state.in_(list(PRE_WAREHOUSE)),
                    and_(orders.c.state == S.at_warehouse, orders.c.updated_at >= since)),
            )
            return [j for j in (await conn.execute(q)).scalars() if j]

    # ------------------------------------------------------------------ shipments
    async def shipment_rows(self, merchant: str, shipment_ids: Iterable[str]) -> dict[str, Row]:
        ids = list(set(shipment_ids))
        out: dict[str, Row] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(shipments_t).where(shipments_t.c.merchant == merchant, shipments_t.c.shipment_id.in_(ids[i : i + 500]))
                out.update({r.shipment_id: r for r in (await conn.execute(q)).all()})
        return out

    async def shipments_of_orders(self, pks: Iterable[int]) -> dict[int, list[Row]]:
        pks = list(set(pks))
        out: dict[int, list[Row]] = {pk: [] for pk in pks}
        async with self.engine.connect() as conn:
            for i in range(0, len(pks), 500):
                q = select(shipments_t).where(shipments_t.c.order_pk.in_(pks[i : i + 500])).order_by(shipments_t.c.id)
                for r in (await conn.execute(q)).all():
                    out[r.order_pk].append(r)
        return out

    async def save_shipments(self, merchant: str, upserts: Sequence[dict[str, Any]], transitions: Sequence[Transition], tasks: Sequence[dict[str, Any]], *, cursor: tuple[str, str] | None, actor: str) -> None:
        """One transaction: new/updated shipments, the order transitions they cause, the tracking
        tasks they make due, and the read cursor (which therefore never passes uncommitted work)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            await self._upsert_shipments(conn, merchant, upserts, now)
            await self._transitions(conn, transitions, actor, now)
            await self._put_tasks(conn, merchant, tasks, now)
            if cursor:
                await self._set_cursor(conn, merchant, cursor[0], cursor[1], now)

    async def _upsert_shipments(self, conn: AsyncConnection, merchant: str, upserts: Sequence[dict[str, Any]], now: datetime) -> None:
        """Insert new shipments and update the ones not yet posted, one executemany each."""
        if not upserts:
            return
        upserts = list({u["shipment_id"]: u for u in upserts}.values())  # read twice: the last reading wins
        sids = [u["shipment_id"] for u in upserts]
        known: dict[str, str] = {}
        for i in range(0, len(sids), 500):
            q = select(shipments_t.c.shipment_id, shipments_t.c.state).where(shipments_t.c.merchant == merchant, shipments_t.c.shipment_id.in_(sids[i : i + 500]))
            known.update((await conn.execute(q)).all())
        fresh = [dict(u, merchant=merchant, received_at=now) for u in upserts if u["shipment_id"] not in known]
        changed: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for u in upserts:
            if known.get(u["shipment_id"], "posted") != "posted":  # a posted shipment is final
                values = {k: v for k, v in u.items() if k != "shipment_id"}
                changed[tuple(sorted(values))].append({"b_sid": u["shipment_id"], **values})
        if fresh:
            await conn.execute(self._insert_new(shipments_t, "merchant", "shipment_id"), fresh)
        stmt = update(shipments_t).where(shipments_t.c.merchant == merchant, shipments_t.c.shipment_id == bindparam("b_sid"), shipments_t.c.state != "posted")
        for rows in changed.values():
            await conn.execute(stmt, rows)

    async def _put_tasks(self, conn: AsyncConnection, merchant: str, tasks: Sequence[dict[str, Any]], now: datetime) -> None:
        """`_put_task` for many tasks: one read of the existing keys, then one INSERT and one UPDATE."""
        if len({(t["kind"], t["key"]) for t in tasks}) != len(tasks):
            for task in tasks:
                await self._put_task(conn, merchant, now=now, **task)
            return
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in tasks:
            by_kind[t["kind"]].append(t)
        for kind, group in by_kind.items():
            keys = [t["key"] for t in group]
            known: dict[str, int] = {}
            for i in range(0, len(keys), 500):
                q = select(tasks_t.c.key, tasks_t.c.id).where(tasks_t.c.merchant == merchant, tasks_t.c.kind == kind, tasks_t.c.key.in_(keys[i : i + 500]))
                known.update((await conn.execute(q)).all())
            new = [dict(merchant=merchant, kind=kind, key=t["key"], payload=json.dumps(t["payload"], default=str), state="pending", attempts=0,
                        created_at=now, updated_at=now, last_error="", lease_owner="") for t in group if t["key"] not in known]
            again = [dict(b_id=known[t["key"]], payload=json.dumps(t["payload"], default=str), state="pending", attempts=0, next_attempt_at=None,
                          updated_at=now, last_error="") for t in group if t["key"] in known and t.get("replace")]
            if new:
                await conn.execute(self._insert_new(tasks_t, "merchant", "kind", "key"), new)
            if again:
                await conn.execute(update(tasks_t).where(tasks_t.c.id == bindparam("b_id")), again)

    async def orders_with_live_shipments(self, merchant: str, states: Iterable[str]) -> list[Row]:
        """Orders in `states` that have shipments counting toward them (pending or posted): the
        ones whose state may lag what the warehouse shipped."""
        live = select(shipments_t.c.order_pk).where(shipments_t.c.merchant == merchant, shipments_t.c.state.in_(["pending", "posted"]))
        async with self.engine.connect() as conn:
            q = select(orders).where(orders.c.merchant == merchant, orders.c.state.in_(list(states)), orders.c.id.in_(live)).order_by(orders.c.id)
            return list((await conn.execute(q)).all())

    async def task_keys(self, merchant: str, kind: str, keys: Iterable[str]) -> set[str]:
        keys = list(set(keys))
        found: set[str] = set()
        async with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                q = select(tasks_t.c.key).where(tasks_t.c.merchant == merchant, tasks_t.c.kind == kind, tasks_t.c.key.in_(keys[i : i + 500]))
                found |= set((await conn.execute(q)).scalars())
        return found

    async def advance_orders(self, merchant: str, transitions: Sequence[Transition], tasks: Sequence[dict[str, Any]], *, actor: str) -> None:
        """Order transitions caused by shipments and the tracking posts they make due, together."""
        now = utcnow()
        async with self.engine.begin() as conn:
            await self._transitions(conn, transitions, actor, now)
            await self._put_tasks(conn, merchant, tasks, now)

    async def shipments_needing_warehouse_ack(self, merchant: str, limit: int = 500) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(shipments_t).where(shipments_t.c.merchant == merchant, shipments_t.c.state == "posted", shipments_t.c.warehouse_acked_at.is_(None)).limit(limit)
            return list((await conn.execute(q)).all())

    async def mark_warehouse_acked(self, merchant: str, shipment_ids: Iterable[str]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(shipments_t).where(shipments_t.c.merchant == merchant, shipments_t.c.shipment_id.in_(list(shipment_ids))).values(warehouse_acked_at=utcnow()))

    async def list_shipments(self, merchant: str | None = None, state: str | None = None, limit: int = 200) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(shipments_t)
            if merchant:
                q = q.where(shipments_t.c.merchant == merchant)
            if state:
                q = q.where(shipments_t.c.state == state)
            return list((await conn.execute(q.order_by(shipments_t.c.id).limit(limit))).all())

    async def complete_tracking_posts(self, merchant: str, task_ids: Sequence[int], shipment_ids: Sequence[str], transitions: Sequence[Transition], *, actor: str) -> None:
        """After UltraCart's 204: tasks done, shipments posted, orders confirmed, in one transaction."""
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(update(tasks_t).where(tasks_t.c.id.in_(list(task_ids))).values(state="done", updated_at=now, lease_owner="", last_error=""))
            if shipment_ids:
                await conn.execute(update(shipments_t).where(shipments_t.c.merchant == merchant, shipments_t.c.shipment_id.in_(list(shipment_ids))).values(state="posted", posted_at=now))
            await self._transitions(conn, transitions, actor, now)

    # ------------------------------------------------------------------ tasks (outbox)
    async def put_task(self, merchant: str, kind: str, key: str, payload: Any, *, replace: bool = False) -> None:
        async with self.engine.begin() as conn:
            await self._put_task(conn, merchant, kind=kind, key=key, payload=payload, replace=replace, now=utcnow())

    async def _put_task(self, conn: AsyncConnection, merchant: str, *, kind: str, key: str, payload: Any, now: datetime, replace: bool = False) -> None:
        body = json.dumps(payload, default=str)
        row = (await conn.execute(select(tasks_t.c.id, tasks_t.c.state).where(tasks_t.c.merchant == merchant, tasks_t.c.kind == kind, tasks_t.c.key == key))).first()
        if row is None:
            await conn.execute(self._insert_new(tasks_t, "merchant", "kind", "key").values(
                merchant=merchant, kind=kind, key=key, payload=body, state="pending", attempts=0, created_at=now, updated_at=now, last_error="", lease_owner=""))
        elif replace:
            await conn.execute(update(tasks_t).where(tasks_t.c.id == row.id).values(payload=body, state="pending", attempts=0, next_attempt_at=None, updated_at=now, last_error=""))

    async def claim_tasks(self, merchant: str, kind: str, *, owner: str, lease_seconds: float, limit: int, now: datetime | None = None) -> list[Row]:
        now = now or utcnow()
        async with self.engine.begin() as conn:
            due = or_(tasks_t.c.state == "pending", and_(tasks_t.c.state == "running", tasks_t.c.lease_until < now))
            q = select(tasks_t.c.id).where(tasks_t.c.merchant == merchant, tasks_t.c.kind == kind, due,
                                           or_(tasks_t.c.next_attempt_at.is_(None), tasks_t.c.next_attempt_at <= now)).order_by(tasks_t.c.id).limit(limit)
            ids = list((await conn.execute(self._lock(q))).scalars())
            if not ids:
                return []
            await conn.execute(update(tasks_t).where(tasks_t.c.id.in_(ids), due).values(
                state="running", lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds), attempts=tasks_t.c.attempts + 1, updated_at=now))
            return list((await conn.execute(select(tasks_t).where(tasks_t.c.id.in_(ids), tasks_t.c.lease_owner == owner, tasks_t.c.state == "running"))).all())

    async def finish_tasks(self, task_ids: Sequence[int], *, state: str, next_attempt_at: datetime | None = None, error: str = "", count_attempt: bool = True) -> None:
        """Tasks done, failed, or back to pending (with `next_attempt_at`) after a failed attempt."""
        values: dict[str, Any] = dict(state=state, next_attempt_at=next_attempt_at, last_error=error[:2000], lease_owner="", updated_at=utcnow())
        if not count_attempt:
            values["attempts"] = tasks_t.c.attempts - 1
        async with self.engine.begin() as conn:
            await conn.execute(update(tasks_t).where(tasks_t.c.id.in_(list(task_ids))).values(**values))

    async def list_tasks(self, merchant: str | None = None, kind: str | None = None, state: str | None = None) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(tasks_t)
            for col, val in ((tasks_t.c.merchant, merchant), (tasks_t.c.kind, kind), (tasks_t.c.state, state)):
                if val:
                    q = q.where(col == val)
            return list((await conn.execute(q.order_by(tasks_t.c.id))).all())

    async def retry_tasks(self, merchant: str | None, kind: str, key: str | None = None) -> int:
        async with self.engine.begin() as conn:
            q = update(tasks_t).where(tasks_t.c.kind == kind, tasks_t.c.state == "failed")
            if merchant:
                q = q.where(tasks_t.c.merchant == merchant)
            if key:
                q = q.where(tasks_t.c.key == key)
            return (await conn.execute(q.values(state="pending", attempts=0, next_attempt_at=None, updated_at=utcnow()))).rowcount

    # ------------------------------------------------------------------ cursors
    async def get_cursor(self, merchant: str, name: str) -> str | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(cursors_t.c.value).where(cursors_t.c.merchant == merchant, cursors_t.c.name == name))).scalar()

    async def set_cursor(self, merchant: str, name: str, value: str) -> None:
        async with self.engine.begin() as conn:
            await self._set_cursor(conn, merchant, name, value, utcnow())

    async def _set_cursor(self, conn: AsyncConnection, merchant: str, name: str, value: str, now: datetime) -> None:
        res = await conn.execute(update(cursors_t).where(cursors_t.c.merchant == merchant, cursors_t.c.name == name).values(value=value, updated_at=now))
        if res.rowcount == 0:
            await conn.execute(self._insert_new(cursors_t, "merchant", "name").values(merchant=merchant, name=name, value=value, updated_at=now))

    # ------------------------------------------------------------------ inventory
    async def inventory_pushed(self, merchant: str) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(pushed_t.c.sku, pushed_t.c.quantity).where(pushed_t.c.merchant == merchant))).all()
            return {sku: q for sku, q in rows}

    async def record_pushed(self, merchant: str, quantities: dict[str, int]) -> None:
        """Remember what UltraCart accepted (called only after its 204)."""
        if not quantities:
            return
        now = utcnow()
        async with self.engine.begin() as conn:
            existing = set((await conn.execute(select(pushed_t.c.sku).where(pushed_t.c.merchant == merchant, pushed_t.c.sku.in_(list(quantities))))).scalars())
            new = [dict(merchant=merchant, sku=s, quantity=q, pushed_at=now) for s, q in quantities.items() if s not in existing]
            if new:
                await conn.execute(self._insert_new(pushed_t, "merchant", "sku"), new)
            for s, q in quantities.items():
                if s in existing:
                    await conn.execute(update(pushed_t).where(pushed_t.c.merchant == merchant, pushed_t.c.sku == s).values(quantity=q, pushed_at=now))

    # ------------------------------------------------------------------ service runs
    async def service_started(self, merchant: str, service: str) -> None:
        await self._upsert_run(merchant, service, last_started_at=utcnow())

    async def service_finished(self, merchant: str, service: str, *, ok: bool, summary: dict[str, Any] | None = None, error: str = "") -> None:
        now = utcnow()
        values: dict[str, Any] = dict(last_finished_at=now, last_error=error[:2000], last_summary=json.dumps(summary or {}, default=str))
        if ok:
            values["last_success_at"] = now
        await self._upsert_run(merchant, service, **values)

    async def pause_service(self, merchant: str, service: str, until: datetime | None, reason: str) -> None:
        await self._upsert_run(merchant, service, paused_until=until, pause_reason=reason)

    async def set_service_note(self, merchant: str, service: str, note: str) -> None:
        await self._upsert_run(merchant, service, note=note)

    async def _upsert_run(self, merchant: str, service: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            res = await conn.execute(update(runs_t).where(runs_t.c.merchant == merchant, runs_t.c.service == service).values(**values))
            if res.rowcount == 0:
                base = dict(last_error="", last_summary="", pause_reason="", note="")
                await conn.execute(self._insert_new(runs_t, "merchant", "service").values(merchant=merchant, service=service, **{**base, **values}))

    async def lease_service(self, merchant: str, service: str, owner: str, seconds: float) -> bool:
        """Take the right to run one merchant's service for a while (replicas share the work this
        way). Correctness never depends on it: claims and unique keys make overlapping passes safe."""
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(self._insert_new(runs_t, "merchant", "service").values(
                merchant=merchant, service=service, last_error="", last_summary="", pause_reason="", note="", lease_owner=""))
            res = await conn.execute(update(runs_t).where(
                runs_t.c.merchant == merchant, runs_t.c.service == service,
                or_(runs_t.c.lease_until.is_(None), runs_t.c.lease_until < now, runs_t.c.lease_owner == owner),
            ).values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds)))
            return res.rowcount == 1

    async def release_service(self, merchant: str, service: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(runs_t).where(runs_t.c.merchant == merchant, runs_t.c.service == service, runs_t.c.lease_owner == owner)
                               .values(lease_owner="", lease_until=None))

    async def service_runs(self, merchant: str | None = None) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(runs_t)
            if merchant:
                q = q.where(runs_t.c.merchant == merchant)
            return list((await conn.execute(q.order_by(runs_t.c.merchant, runs_t.c.service))).all())

    # ------------------------------------------------------------------ event log
    async def log_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            async with self.engine.begin() as conn:
                await conn.execute(insert(eventlog_t), [dict(r) for r in rows])

    async def events_log(self, *, merchant: str | None = None, order_id: str | None = None, limit: int = 100) -> list[Row]:
        async with self.engine.connect() as conn:
            q = select(eventlog_t)
            if merchant:
                q = q.where(eventlog_t.c.merchant == merchant)
            if order_id:
                q = q.where(or_(eventlog_t.c.order_id == order_id, eventlog_t.c.request_body.contains(order_id)))
            return list(reversed((await conn.execute(q.order_by(eventlog_t.c.id.desc()).limit(limit))).all()))

    async def prune_event_log(self, older_than: datetime) -> int:
        async with self.engine.begin() as conn:
            return (await conn.execute(delete(eventlog_t).where(eventlog_t.c.at < older_than))).rowcount
