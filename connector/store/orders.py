"""OrderStore: orders and their timelines. Intake, compare-and-set moves checked against the
lifecycle, claims with leases, and the reads the services, alerts and operators need.

Rules kept here so no caller has to remember them:
- every state change is a compare-and-set (`UPDATE ... WHERE state = <what was read>`) checked
  against `connector.lifecycle.MOVES`, and writes a timeline entry;
- claims (`ready -> submitting`) carry a lease; a dead worker's claim becomes `in_doubt`;
- no transaction is ever open across a vendor call (callers claim, call, then record).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Interval, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.sql.elements import ClauseElement

from connector import lifecycle
from connector.lifecycle import PRE_WAREHOUSE, Actor, OrderState, Reason
from connector.store import tables as t
from connector.store.dialect import Db, chunks
from connector.store.records import IngestResult, NewOrder, OrderRecord, TimelineEntry

S = OrderState
O = t.orders
E = t.order_events
# What listings and matching read: everything but the large JSON documents.
LIGHT = [c for c in O.c if c.name not in ("order_json", "raw_json", "warehouse_json", "sent_request")]
NOT_AT_WAREHOUSE_YET = (S.received, S.held, S.ready, S.submitting, S.in_doubt)
UNSHIPPED = (S.at_warehouse, S.partially_shipped)


@dataclass
class Move:
    """One compare-and-set state change: applied only while the order is in one of `expect`.

    `reason` is words for the timeline, or a typed `Reason` (held, skipped, cancelled), whose
    kind and details are kept on the order too. `fields` sets other columns in the same update."""

    pk: int
    to: OrderState
    expect: tuple[OrderState, ...]
    reason: Reason | str = ""
    fields: dict[str, Any] | None = None
    request_id: str = ""


def move_values(current: str, m: Move, now: datetime) -> dict[str, Any] | None:
    """The column values a move writes, from the state it was read in (None: nothing to write)."""
    values: dict[str, Any] = {"updated_at": now}
    changed = str(m.to) != str(current)
    if changed:
        values["state"] = str(m.to)
    if isinstance(m.reason, Reason):
        values.update(reason=m.reason.text, hold_kind=str(m.reason.kind), hold_detail=m.reason.to_json())
    elif changed:
        values.update(reason=m.reason, hold_kind="", hold_detail="")
    values.update(m.fields or {})
    return values


def timeline_text(m: Move) -> str:
    return m.reason.text if isinstance(m.reason, Reason) else m.reason


class OrderStore(Protocol):
    """Orders, their timelines and claims (SQL in `SqlOrderStore`, in memory in `memory.py`)."""

    async def ingest(self, merchant: str, dc: str, new: Sequence[NewOrder], *, source: str, actor: Actor) -> IngestResult: ...
    async def unacked_ids(self, merchant: str, dc: str, limit: int = 100) -> list[str]: ...
    async def mark_acked(self, merchant: str, dc: str, order_ids: Iterable[str]) -> None: ...
    async def move(self, m: Move, *, actor: Actor) -> bool: ...
    async def move_many(self, moves: Sequence[Move], *, actor: Actor) -> list[bool]: ...
    async def claim_ready(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[OrderRecord]: ...
    async def expire_claims(self, merchant: str) -> int: ...
    async def recover_claims(self) -> int: ...
    async def release_claims(self, owner: str) -> int: ...
    async def renew_claims(self, owner: str, seconds: float) -> None: ...
    async def get(self, pk: int) -> OrderRecord | None: ...
    async def by_pks(self, pks: Iterable[int]) -> dict[int, OrderRecord]: ...
    async def find(self, order_id: str, merchant: str | None = None) -> list[OrderRecord]: ...
    async def by_reference(self, merchant: str, references: Iterable[str]) -> dict[str, OrderRecord]: ...
    async def in_states(self, merchant: str, states: Iterable[str], *, limit: int = 1000, after_pk: int = 0) -> list[OrderRecord]: ...
    async def timeline(self, pk: int) -> list[TimelineEntry]: ...
    async def listing(self, *, state: str | None = None, merchant: str | None = None, limit: int = 200, offset: int = 0) -> list[OrderRecord]: ...
    async def count(self, *, state: str | None = None, merchant: str | None = None) -> int: ...
    async def counts_by_state(self, merchant: str | None = None) -> dict[tuple[str, str], int]: ...
    async def reasons(self, state: str, merchant: str | None = None) -> dict[tuple[str, str], int]: ...
    async def oldest_pending(self, merchant: str | None = None) -> datetime | None: ...
    async def in_flight_json(self, merchant: str, since: datetime) -> list[str]: ...
    async def not_at_warehouse_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]: ...
    async def unshipped_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]: ...
    async def held(self, merchant: str, kinds: Iterable[str]) -> list[OrderRecord]: ...
    async def search(self, q: Search) -> tuple[list[OrderRecord], int]: ...
    async def trouble(self, merchant: str | None = None) -> list[TroubleGroup]: ...


@dataclass
class Search:
    """What `connector orders` and the console filter orders by (all optional, combined)."""

    merchant: str | None = None
    merchants: tuple[str, ...] | None = None  # only these (a merchant's own console login)
    state: str | None = None
    text: str = ""  # order id, reference, customer name or e-mail (a substring, case-insensitive)
    hold_kind: str | None = None
    reason: str | None = None  # exactly this reason
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    limit: int = 200
    offset: int = 0


@dataclass
class TroubleGroup:
    """Orders that need a person, grouped by state and reason ("unknown SKU: BONE-5LB: 37 orders")."""

    merchant: str
    state: str
    reason: str
    hold_kind: str
    count: int
    order_ids: list[str]  # a few of them, oldest first


TROUBLE = ("held", "failed", "in_doubt", "cancel_failed")


def check_moves(moves: Sequence[Move], actor: Actor) -> None:
    """Every move a caller asks for must be legal from each state it expects (a bug otherwise)."""
    for m in moves:
        for e in m.expect:
            lifecycle.check(e, m.to, actor)


class SqlOrderStore:
    """OrderStore on SQLite or PostgreSQL."""

    def __init__(self, db: Db):
        self.db = db

    # ------------------------------------------------------------------ intake
    async def ingest(self, merchant: str, dc: str, new: Sequence[NewOrder], *, source: str, actor: Actor) -> IngestResult:
        """Store orders (one transaction). New ids are stored; the known ones are returned with
        their stored copies so the caller can tell a repeat from a changed order."""
        result = IngestResult()
        if not new:
            return result
        for n in new:
            lifecycle.check(None, n.state, actor)
        now = self.db.now()
        ids = list(dict.fromkeys(n.order_id for n in new))
        async with self.db.write() as conn:
            for part in chunks(ids):
                q = select(*LIGHT, O.c.order_json).where(O.c.merchant == merchant, O.c.dc == dc, O.c.order_id.in_(part))
                for r in (await conn.execute(q)).all():
                    result.known[r.order_id] = OrderRecord.from_row(r)
            fresh: dict[str, NewOrder] = {}
            for n in new:
                if n.order_id not in result.known and n.order_id not in fresh:
                    fresh[n.order_id] = n
            if not fresh:
                return result
            stmt = self.db.dialect.insert_ignore(O, "merchant", "dc", "order_id").returning(O.c.id, O.c.order_id, O.c.state, O.c.reason)
            inserted = await conn.execute(stmt, [_new_row(merchant, dc, n, source, now) for n in fresh.values()])
            # Only the rows this statement inserted: a replica may have stored some meanwhile.
            rows = inserted.all()
            if rows:
                await conn.execute(insert(E), [
                    dict(order_pk=r.id, at=now, from_state="", to_state=r.state, actor=str(actor), reason=r.reason or f"received by {source}", request_id="")
                    for r in rows
                ])
            result.new = [r.order_id for r in rows]
        return result

    async def unacked_ids(self, merchant: str, dc: str, limit: int = 100) -> list[str]:
        async with self.db.read() as conn:
            q = select(O.c.order_id).where(O.c.merchant == merchant, O.c.dc == dc, O.c.acked_at.is_(None)).order_by(O.c.id).limit(limit)
            return list((await conn.execute(q)).scalars())

    async def mark_acked(self, merchant: str, dc: str, order_ids: Iterable[str]) -> None:
        ids = list(order_ids)
        if not ids:
            return
        async with self.db.write() as conn:
            for part in chunks(ids):
                await conn.execute(update(O).where(O.c.merchant == merchant, O.c.dc == dc, O.c.order_id.in_(part), O.c.acked_at.is_(None))
                                   .values(acked_at=self.db.now()))

    # ------------------------------------------------------------------ moves
    async def move(self, m: Move, *, actor: Actor) -> bool:
        return (await self.move_many([m], actor=actor))[0]

    async def move_many(self, moves: Sequence[Move], *, actor: Actor) -> list[bool]:
        """Apply compare-and-set moves in one transaction; returns which ones applied.

        A few statements for any number of moves: one read of the current states (rows locked on
        PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock), one executemany UPDATE
        per set of changed columns, one INSERT of timeline entries."""
        if not moves:
            return []
        check_moves(moves, actor)
        async with self.db.write() as conn:
            if len({m.pk for m in moves}) != len(moves):  # an order moved twice must see its first move
                return [(await self._apply_many(conn, [m], actor))[0] for m in moves]
            return await self._apply_many(conn, moves, actor)

    async def _apply_many(self, conn, moves: Sequence[Move], actor: Actor) -> list[bool]:
        now = self.db.now()
        current: dict[int, str] = {}
        for part in chunks([m.pk for m in moves]):
            current.update((await conn.execute(self.db.dialect.lock(select(O.c.id, O.c.state).where(O.c.id.in_(part))))).all())
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        entries: list[dict[str, Any]] = []
        done: list[bool] = []
        for m in moves:
            state = current.get(m.pk)
            if state is None or state not in m.expect:
                done.append(False)
                continue
            values = move_values(state, m, now)
            groups[tuple(sorted(values))].append({"b_pk": m.pk, "b_state": state, **values})
            text = timeline_text(m)
            if str(m.to) != state or text:
                entries.append(dict(order_pk=m.pk, at=now, from_state=state, to_state=str(m.to), actor=str(actor), reason=text, request_id=m.request_id))
            done.append(True)
        stmt = update(O).where(O.c.id == bindparam("b_pk"), O.c.state == bindparam("b_state"))
        for rows in groups.values():
            if any(isinstance(v, ClauseElement) for r in rows for v in r.values()):
                for r in rows:
                    await conn.execute(update(O).where(O.c.id == r["b_pk"], O.c.state == r["b_state"])
                                       .values(**{k: v for k, v in r.items() if not k.startswith("b_")}))
            else:
                await conn.execute(stmt, rows)
        if entries:
            await conn.execute(insert(E), entries)
        return done

    # ------------------------------------------------------------------ claims
    async def claim_ready(self, merchant: str, *, owner: str, lease_seconds: float, limit: int) -> list[OrderRecord]:
        """Claim due `ready` orders for sending (ready -> submitting, attempts + 1), atomically,
        with their timeline entries."""
        lifecycle.check(S.ready, S.submitting, Actor.order_delivery)
        now = self.db.now()
        params: dict[str, Any] = dict(b_merchant=merchant, b_now=now, b_limit=limit, b_owner=owner)
        if self.db.sqlite:
            params["b_lease_until"] = self.db.dialect.lease_until(self.db.clock, lease_seconds)
        else:
            params["b_lease_for"] = timedelta(seconds=lease_seconds)
        due, claim = _claim_statements(self.db.sqlite)
        async with self.db.write() as conn:
            ids = list((await conn.execute(due, params)).scalars())
            if not ids:
                return []
            rows = (await conn.execute(claim, {**params, "b_ids": ids})).all()
            records = sorted((OrderRecord.from_row(r) for r in rows), key=lambda r: r.id)
            if records:
                await conn.execute(insert(E), [dict(order_pk=r.id, at=now, from_state=S.ready, to_state=S.submitting, actor=Actor.order_delivery,
                                                    reason=f"attempt {r.attempts} ({owner})", request_id="") for r in records])
        return records

    async def _claims(self, where) -> list[int]:
        async with self.db.read() as conn:
            return list((await conn.execute(select(O.c.id).where(O.c.state == S.submitting, where))).scalars())

    async def expire_claims(self, merchant: str) -> int:
        """Orders left `submitting` by a dead worker become `in_doubt`: the create may have happened."""
        pks = await self._claims(and_(O.c.merchant == merchant, O.c.lease_until < self.db.dialect.lease_now(self.db.clock)))
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "lease expired while submitting (worker stopped); "
                                              "will look up before resending") for pk in pks], actor=Actor.recovery))

    async def recover_claims(self) -> int:
        """At start with the one-daemon lock held (SQLite): every claim is a dead process's."""
        pks = await self._claims(O.c.id > 0)
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "found submitting at start (the previous process stopped "
                                              "mid-send); will look up before resending") for pk in pks], actor=Actor.recovery))

    async def release_claims(self, owner: str) -> int:
        """On a clean stop: our own claims left (a call that never returned) are in doubt, looked
        up before anything is sent again; never resent blindly."""
        pks = await self._claims(O.c.lease_owner == owner)
        return sum(await self.move_many([Move(pk, S.in_doubt, (S.submitting,), "stopped while submitting; will look up before resending")
                                         for pk in pks], actor=Actor.shutdown))

    async def renew_claims(self, owner: str, seconds: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(O).where(O.c.lease_owner == owner, O.c.state == S.submitting)
                               .values(lease_until=self.db.dialect.lease_until(self.db.clock, seconds)))

    # ------------------------------------------------------------------ reads
    async def _records(self, query, cols=None) -> list[OrderRecord]:
        async with self.db.read() as conn:
            return [OrderRecord.from_row(r) for r in (await conn.execute(query)).all()]

    async def get(self, pk: int) -> OrderRecord | None:
        found = await self._records(select(O).where(O.c.id == pk))
        return found[0] if found else None

    async def by_pks(self, pks: Iterable[int]) -> dict[int, OrderRecord]:
        out: dict[int, OrderRecord] = {}
        for part in chunks(list(set(pks))):
            out.update({r.id: r for r in await self._records(select(O).where(O.c.id.in_(part)))})
        return out

    async def find(self, order_id: str, merchant: str | None = None) -> list[OrderRecord]:
        q = select(O).where(or_(O.c.order_id == order_id, O.c.reference == order_id))
        if merchant:
            q = q.where(O.c.merchant == merchant)
        return await self._records(q.order_by(O.c.id))

    async def by_reference(self, merchant: str, references: Iterable[str]) -> dict[str, OrderRecord]:
        """What matching shipments to orders needs: not the stored payloads (10,000 of them were 100 MB)."""
        out: dict[str, OrderRecord] = {}
        for part in chunks(list(set(references))):
            q = select(*LIGHT, O.c.warehouse_json).where(O.c.merchant == merchant, O.c.reference.in_(part))
            out.update({r.reference: r for r in await self._records(q)})
        return out

    async def in_states(self, merchant: str, states: Iterable[str], *, limit: int = 1000, after_pk: int = 0) -> list[OrderRecord]:
        q = select(O).where(O.c.merchant == merchant, O.c.state.in_([str(s) for s in states]), O.c.id > after_pk).order_by(O.c.id).limit(limit)
        return await self._records(q)

    async def timeline(self, pk: int) -> list[TimelineEntry]:
        async with self.db.read() as conn:
            return [TimelineEntry.from_row(r) for r in (await conn.execute(select(E).where(E.c.order_pk == pk).order_by(E.c.id))).all()]

    def _filtered(self, q, state: str | None, merchant: str | None):
        if state:
            q = q.where(O.c.state == state)
        if merchant:
            q = q.where(O.c.merchant == merchant)
        return q

    async def listing(self, *, state: str | None = None, merchant: str | None = None, limit: int = 200, offset: int = 0) -> list[OrderRecord]:
        return await self._records(self._filtered(select(*LIGHT), state, merchant).order_by(O.c.id).limit(limit).offset(offset))

    async def count(self, *, state: str | None = None, merchant: str | None = None) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(self._filtered(select(func.count()).select_from(O), state, merchant))).scalar() or 0)

    async def counts_by_state(self, merchant: str | None = None) -> dict[tuple[str, str], int]:
        q = select(O.c.merchant, O.c.state, func.count()).group_by(O.c.merchant, O.c.state)
        if merchant:
            q = q.where(O.c.merchant == merchant)
        async with self.db.read() as conn:
            return {(m, s): n for m, s, n in (await conn.execute(q)).all()}

    async def reasons(self, state: str, merchant: str | None = None) -> dict[tuple[str, str], int]:
        """How many orders in `state` per merchant and reason (holds by reason, skips by reason)."""
        q = select(O.c.merchant, O.c.reason, func.count()).where(O.c.state == state).group_by(O.c.merchant, O.c.reason)
        if merchant:
            q = q.where(O.c.merchant == merchant)
        async with self.db.read() as conn:
            return {(m, r): n for m, r, n in (await conn.execute(q)).all()}

    async def oldest_pending(self, merchant: str | None = None) -> datetime | None:
        q = select(func.min(O.c.received_at)).where(O.c.state.in_(list(PRE_WAREHOUSE)))
        if merchant:
            q = q.where(O.c.merchant == merchant)
        async with self.db.read() as conn:
            return (await conn.execute(q)).scalar()

    async def in_flight_json(self, merchant: str, since: datetime) -> list[str]:
        """order_json of orders the warehouse's stock cannot reflect yet: stored but not yet at the
        warehouse (held ones included: they may still ship), or created there after `since` (the
        stock snapshot's start), so stock is never over-promised."""
        q = select(O.c.order_json).where(O.c.merchant == merchant, or_(O.c.state.in_(list(PRE_WAREHOUSE)),
                                                                       and_(O.c.state == S.at_warehouse, O.c.updated_at >= since)))
        async with self.db.read() as conn:
            return [j for j in (await conn.execute(q)).scalars() if j]

    async def not_at_warehouse_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]:
        """Orders received before the cutoff and still not created at the warehouse (held ones too)."""
        q = select(*LIGHT).where(O.c.merchant.in_(list(merchants)), O.c.state.in_(list(NOT_AT_WAREHOUSE_YET)), O.c.received_at < before)
        return await self._records(q.order_by(O.c.merchant, O.c.id).limit(limit))

    async def unshipped_since(self, merchants: Sequence[str], before: datetime, *, limit: int = 1000) -> list[OrderRecord]:
        """Orders at the warehouse (or partly shipped) that have not moved since the cutoff."""
        q = select(*LIGHT).where(O.c.merchant.in_(list(merchants)), O.c.state.in_(list(UNSHIPPED)), O.c.updated_at < before)
        return await self._records(q.order_by(O.c.merchant, O.c.id).limit(limit))

    async def held(self, merchant: str, kinds: Iterable[str]) -> list[OrderRecord]:
        """Held orders of these hold kinds, with their typed reasons (which alerts still have a cause)."""
        q = select(*LIGHT).where(O.c.merchant == merchant, O.c.state == S.held, O.c.hold_kind.in_([str(k) for k in kinds]))
        return await self._records(q.order_by(O.c.id))

    def _search_filter(self, q, s: Search):
        if s.merchant:
            q = q.where(O.c.merchant == s.merchant)
        if s.merchants is not None:
            q = q.where(O.c.merchant.in_(list(s.merchants)))
        if s.state:
            q = q.where(O.c.state == s.state)
        if s.hold_kind:
            q = q.where(O.c.hold_kind == s.hold_kind)
        if s.reason is not None:
            q = q.where(O.c.reason == s.reason)
        if s.since:
            q = q.where(O.c.received_at >= s.since)
        if s.until:
            q = q.where(O.c.received_at < s.until)
        text = s.text.strip()
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(or_(*(func.lower(c).like(like.lower(), escape="\\") for c in (O.c.order_id, O.c.reference, O.c.customer, O.c.email))))
        return q

    async def search(self, q: Search) -> tuple[list[OrderRecord], int]:
        rows = await self._records(self._search_filter(select(*LIGHT), q).order_by(O.c.id.desc()).limit(q.limit).offset(q.offset))
        async with self.db.read() as conn:
            total = int((await conn.execute(self._search_filter(select(func.count()).select_from(O), q))).scalar() or 0)
        return rows, total

    async def trouble(self, merchant: str | None = None) -> list[TroubleGroup]:
        q = select(O.c.merchant, O.c.state, O.c.reason, O.c.hold_kind, func.count(), func.min(O.c.id)).where(O.c.state.in_(TROUBLE))
        if merchant:
            q = q.where(O.c.merchant == merchant)
        q = q.group_by(O.c.merchant, O.c.state, O.c.reason, O.c.hold_kind).order_by(func.count().desc())
        async with self.db.read() as conn:
            groups = (await conn.execute(q)).all()
            out = []
            for m, st, reason, kind, n, _ in groups:
                ids = (await conn.execute(select(O.c.order_id).where(O.c.merchant == m, O.c.state == st, O.c.reason == reason)
                                          .order_by(O.c.id).limit(20))).scalars()
                out.append(TroubleGroup(m, st, reason, kind, n, list(ids)))
        return out


def _new_row(merchant: str, dc: str, n: NewOrder, source: str, now: datetime) -> dict[str, Any]:
    reason = n.reason
    return dict(merchant=merchant, dc=dc, order_id=n.order_id, reference=n.reference, state=str(n.state),
                reason=reason.text if reason else "", hold_kind=str(reason.kind) if reason else "",
                hold_detail=reason.to_json() if reason else "", source=source, received_at=now, updated_at=now,
                order_json=n.order_json, raw_json=n.raw_json, warehouse_json="", attempts=0, last_error="", lease_owner="",
                warehouse_order_id="", cancel_reason="", customer=n.customer[:200], email=n.email[:200], ordered_at=n.ordered_at,
                sent_request="")


@functools.cache
def _claim_statements(sqlite: bool):
    """The claim as two prepared statements (building SQLAlchemy expressions anew on every claim
    cost more CPU than running them): the due rows' ids in order, locked (rows another replica is
    claiming are skipped on PostgreSQL); then those rows marked submitting and returned. Two
    statements, not an UPDATE over a LIMIT subquery: PostgreSQL may run such a subquery again
    for each row and so claim more rows than asked."""
    when = O.c.updated_at.type
    now = bindparam("b_now", type_=when)
    due = (select(O.c.id).where(O.c.merchant == bindparam("b_merchant"), O.c.state == S.ready,
                                or_(O.c.next_attempt_at.is_(None), O.c.next_attempt_at <= now))
           .order_by(O.c.id).limit(bindparam("b_limit")))
    if not sqlite:
        due = due.with_for_update(skip_locked=True)
    lease_until = bindparam("b_lease_until", type_=when) if sqlite else func.now() + bindparam("b_lease_for", type_=Interval())
    claim = (update(O).where(O.c.id.in_(bindparam("b_ids", expanding=True)), O.c.state == S.ready)
             .values(state=S.submitting, lease_owner=bindparam("b_owner"), lease_until=lease_until, attempts=O.c.attempts + 1,
                     updated_at=now, first_attempt_at=func.coalesce(O.c.first_attempt_at, now))
             .returning(*O.c))
    return due, claim
