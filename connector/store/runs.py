"""Service runs (the last pass of each merchant's service, pauses, the leases replicas share the
work by), cursors (bookmarks advanced only with what they cover) and workers (which processes
run, with which config and database).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import bindparam, case, exists, func, or_, select, update

from connector.lifecycle import AlertState
from connector.store import tables as t
from connector.store.dialect import Db
from connector.store.records import ServiceRun, WorkerRecord

R = t.service_runs
O = t.orders
AL = t.alerts
C = t.cursors
W = t.workers
_RUN_DEFAULTS = dict(last_error="", last_summary="", pause_reason="", note="", lease_owner="", last_outcome="", stopped_because="")


def ended_values(now: Any, outcome: str, summary: dict[str, Any] | None = None, error: str = "", stopped_because: str = "",
                 resumes_at: datetime | None = None) -> dict[str, Any]:
    """The columns a pass's end writes (both stores, both ways of ending): only `done` counts as a
    success, and ends a pause."""
    values: dict[str, Any] = dict(last_finished_at=now, last_outcome=outcome, last_error=error[:2000],
                                  last_summary=json.dumps(summary or {}, default=str), stopped_because=stopped_because[:2000],
                                  resumes_at=resumes_at)
    if outcome == "done":
        values.update(last_success_at=now, paused_until=None, pause_reason="")
    return values


class RunStore(Protocol):
    async def started(self, merchant: str, service: str) -> None: ...
    async def finished(self, merchant: str, service: str, *, outcome: str, summary: dict[str, Any], error: str = "",
                       stopped_because: str = "", resumes_at: datetime | None = None, release: str = "") -> None: ...
    async def pause(self, merchant: str, service: str, until: datetime | None, reason: str) -> None: ...
    async def note(self, merchant: str, service: str, note: str) -> None: ...
    async def begin_pass(self, merchant: str, service: str, owner: str, seconds: float, *, honour_pause: bool = True) -> ServiceRun | None: ...
    async def idle_pass(self, merchant: str, service: str, owner: str, *, honour_pause: bool = True, no_orders_in: Iterable[str] = (),
                        no_alerts_in: Iterable[str] = (), no_own_alerts_in: Iterable[str] = ()) -> bool: ...
    async def release(self, merchant: str, service: str, owner: str) -> None: ...
    async def renew(self, owner: str, seconds: float) -> None: ...
    async def clear_leases(self) -> None: ...
    async def listing(self, merchant: str | None = None) -> list[ServiceRun]: ...


class CursorStore(Protocol):
    async def get(self, merchant: str, name: str) -> str | None: ...
    async def set(self, merchant: str, name: str, value: str) -> None: ...


class WorkerStore(Protocol):
    async def register(self, worker: WorkerRecord) -> None: ...
    async def seen(self, worker_id: str, **changes: Any) -> None: ...
    async def listing(self) -> list[WorkerRecord]: ...


class SqlRunStore:
    def __init__(self, db: Db):
        self.db = db

    async def _upsert(self, merchant: str, service: str, **values: Any) -> None:
        async with self.db.write() as conn:
            res = await conn.execute(update(R).where(R.c.merchant == merchant, R.c.service == service).values(**values))
            if res.rowcount == 0:  # a new row holds no lease: expressions over the old row do not apply
                plain = {k: v for k, v in values.items() if not hasattr(v, "compile")}
                await conn.execute(self.db.dialect.insert_ignore(R, "merchant", "service").values(
                    merchant=merchant, service=service, **{**_RUN_DEFAULTS, **plain}))

    async def started(self, merchant: str, service: str) -> None:
        await self._upsert(merchant, service, last_started_at=self.db.now())

    async def finished(self, merchant: str, service: str, *, outcome: str, summary: dict[str, Any], error: str = "",
                       stopped_because: str = "", resumes_at: datetime | None = None, release: str = "") -> None:
        """Record how a pass ended: `outcome` done, throttled, paused, failed or interrupted; only
        `done` counts as a success, and ends a pause. With `release`, that owner's lease is let go
        in the same write (an idle pass is then three statements, not six transactions)."""
        values = ended_values(self.db.now(), outcome, summary, error, stopped_because, resumes_at)
        if release:
            mine = R.c.lease_owner == release
            values.update(lease_owner=case((mine, ""), else_=R.c.lease_owner), lease_until=case((mine, None), else_=R.c.lease_until))
        await self._upsert(merchant, service, **values)

    async def pause(self, merchant: str, service: str, until: datetime | None, reason: str) -> None:
        await self._upsert(merchant, service, paused_until=until, pause_reason=reason)

    async def note(self, merchant: str, service: str, note: str) -> None:
        await self._upsert(merchant, service, note=note)

    async def begin_pass(self, merchant: str, service: str, owner: str, seconds: float, *, honour_pause: bool = True) -> ServiceRun | None:
        """Take the right to run one merchant's service for a while (replicas share the work this
        way) and record that a pass starts now, in one write. None when the pass may start; else
        the run as it stands, which says why not: paused (with `honour_pause`), or leased by
        another replica. Correctness never depends on the lease: claims and unique keys make
        overlapping passes safe."""
        d, now = self.db.dialect, self.db.now()
        which = [R.c.merchant == merchant, R.c.service == service, *_may_run(owner, now, d.lease_now(self.db.clock), honour_pause)]
        take = update(R).where(*which).values(lease_owner=owner, lease_until=d.lease_until(self.db.clock, seconds), last_started_at=now)
        row = select(R).where(R.c.merchant == merchant, R.c.service == service)
        async with self.db.write() as conn:
            if (await conn.execute(take)).rowcount == 1:
                return None
            found = (await conn.execute(row)).first()
            if found is None:  # the service's first pass
                # (The insert's rowcount cannot tell whether another replica inserted first:
                # PostgreSQL's driver reports -1 for ON CONFLICT DO NOTHING.)
                await conn.execute(d.insert_ignore(R, "merchant", "service").values(merchant=merchant, service=service, **_RUN_DEFAULTS))
                if (await conn.execute(take)).rowcount == 1:
                    return None
                found = (await conn.execute(row)).first()
            return ServiceRun.from_row(found)

    async def idle_pass(self, merchant: str, service: str, owner: str, *, honour_pause: bool = True, no_orders_in: Iterable[str] = (),
                        no_alerts_in: Iterable[str] = (), no_own_alerts_in: Iterable[str] = ()) -> bool:
        """Record a pass that has nothing to do as started and done now, in one UPDATE, when the
        merchant has no order in a state of `no_orders_in`, no open alert in a category of
        `no_alerts_in` and none in a category of `no_own_alerts_in` keyed by this service (the
        service's idle probe, and the alerts a working pass would close), and the service may run:
        not paused (with `honour_pause`), no live lease of another owner (`owner`'s own is let
        go). False, and nothing written, otherwise or when the service has no row yet: run the pass."""
        states, categories, own = [str(s) for s in no_orders_in], list(no_alerts_in), list(no_own_alerts_in)
        # Asked every minute for every merchant: one prepared statement per shape, not built anew.
        done = _idle_statement(self.db.sqlite, honour_pause, bool(states), bool(categories), bool(own))
        params = dict(p_merchant=merchant, p_service=service, p_owner=owner, p_now=self.db.now(), p_states=states, p_categories=categories,
                      p_own=own)
        async with self.db.write() as conn:
            return (await conn.execute(done, params)).rowcount == 1

    async def release(self, merchant: str, service: str, owner: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(R).where(R.c.merchant == merchant, R.c.service == service, R.c.lease_owner == owner)
                               .values(lease_owner="", lease_until=None))

    async def renew(self, owner: str, seconds: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(R).where(R.c.lease_owner == owner).values(lease_until=self.db.dialect.lease_until(self.db.clock, seconds)))

    async def clear_leases(self) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(R).where(R.c.lease_owner != "").values(lease_owner="", lease_until=None))

    async def listing(self, merchant: str | None = None) -> list[ServiceRun]:
        q = select(R)
        if merchant:
            q = q.where(R.c.merchant == merchant)
        async with self.db.read() as conn:
            return [ServiceRun.from_row(r) for r in (await conn.execute(q.order_by(R.c.merchant, R.c.service))).all()]


class SqlCursorStore:
    def __init__(self, db: Db):
        self.db = db

    async def get(self, merchant: str, name: str) -> str | None:
        async with self.db.read() as conn:
            return (await conn.execute(select(C.c.value).where(C.c.merchant == merchant, C.c.name == name))).scalar()

    async def set(self, merchant: str, name: str, value: str) -> None:
        now = self.db.now()
        async with self.db.write() as conn:
            res = await conn.execute(update(C).where(C.c.merchant == merchant, C.c.name == name).values(value=value, updated_at=now))
            if res.rowcount == 0:
                await conn.execute(self.db.dialect.insert_ignore(C, "merchant", "name").values(merchant=merchant, name=name, value=value, updated_at=now))


class SqlWorkerStore:
    def __init__(self, db: Db):
        self.db = db

    async def register(self, worker: WorkerRecord) -> None:
        values = {k: getattr(worker, k) for k in WorkerRecord.columns}
        async with self.db.write() as conn:
            res = await conn.execute(update(W).where(W.c.worker_id == worker.worker_id).values(**values))
            if res.rowcount == 0:
                await conn.execute(self.db.dialect.insert_ignore(W, "worker_id").values(**values))

    async def seen(self, worker_id: str, **changes: Any) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(W).where(W.c.worker_id == worker_id).values(seen_at=self.db.now(), **changes))

    async def listing(self) -> list[WorkerRecord]:
        async with self.db.read() as conn:
            return [WorkerRecord.from_row(r) for r in (await conn.execute(select(W).order_by(W.c.seen_at.desc()))).all()]


@functools.cache
def _idle_statement(sqlite: bool, honour_pause: bool, states: bool, categories: bool, own: bool) -> Any:
    """`SqlRunStore.idle_pass`'s UPDATE for one shape, with bound parameters p_merchant, p_service,
    p_owner, p_now, p_states, p_categories, p_own (a column's own name is reserved in an UPDATE).
    Leases compare with the database's clock on PostgreSQL."""
    now = bindparam("p_now", type_=R.c.last_started_at.type)
    which = [R.c.merchant == bindparam("p_merchant"), R.c.service == bindparam("p_service"),
             *_may_run(bindparam("p_owner"), now, now if sqlite else func.now(), honour_pause)]
    if states:
        which.append(~exists().where(O.c.merchant == bindparam("p_merchant"), O.c.state.in_(bindparam("p_states", expanding=True))))
    if categories:
        which.append(~exists().where(AL.c.merchant == bindparam("p_merchant"), AL.c.state == AlertState.open,
                                     AL.c.category.in_(bindparam("p_categories", expanding=True))))
    if own:
        which.append(~exists().where(AL.c.merchant == bindparam("p_merchant"), AL.c.state == AlertState.open,
                                     AL.c.category.in_(bindparam("p_own", expanding=True)), AL.c.key == bindparam("p_service")))
    return update(R).where(*which).values(last_started_at=now, lease_owner="", lease_until=None, **ended_values(now, "done"))


def _may_run(owner: Any, now: Any, lease_now: Any, honour_pause: bool) -> list[Any]:
    """A pass of the service may start: no live lease of another owner, and (with `honour_pause`)
    not paused."""
    which = [or_(R.c.lease_until.is_(None), R.c.lease_until < lease_now, R.c.lease_owner == owner)]
    if honour_pause:
        which.append(or_(R.c.paused_until.is_(None), R.c.paused_until <= now))
    return which
