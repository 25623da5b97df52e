"""TaskStore: the outbox. Durable work retried until done (tracking posts, alert e-mails,
cancels), claimed under leases so a dead worker's task becomes due again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, or_, select, update

from connector.lifecycle import TaskState
from connector.store import tables as t
from connector.store.dialect import Db, chunks
from connector.store.records import TaskRecord

T = t.tasks
TS = TaskState
ALERT_EMAIL = ("", "alert_email")  # (merchant, kind) of the alert digests: the connector's own, no merchant's


class TaskStore(Protocol):
    async def put(self, merchant: str, kind: str, key: str, payload: Any, *, replace: bool = False) -> None: ...
    async def put_many(self, merchant: str, tasks: Sequence[dict[str, Any]]) -> None: ...
    async def claim(self, merchant: str, kind: str, *, owner: str, lease_seconds: float, limit: int) -> list[TaskRecord]: ...
    async def finish(self, task_ids: Sequence[int], *, state: str, next_attempt_at: datetime | None = None, error: str = "",
                     count_attempt: bool = True) -> None: ...
    async def listing(self, merchant: str | None = None, kind: str | None = None, state: str | None = None) -> list[TaskRecord]: ...
    async def retry_failed(self, merchant: str | None, kind: str, key: str | None = None) -> int: ...
    async def overdue(self, merchants: Sequence[str], kind: str, before: datetime, *, limit: int = 1000) -> list[TaskRecord]: ...
    async def recover(self) -> int: ...
    async def renew(self, owner: str, seconds: float) -> None: ...


async def failing_since(tasks: TaskStore, merchant: str, kind: str) -> tuple[datetime | None, str]:
    """Since when the oldest unfinished task of this kind has been failing, and its last error;
    (None, "") when none is failing."""
    waiting = [t for t in await tasks.listing(merchant, kind) if t.state != TS.done and t.failing_since is not None]
    if not waiting:
        return None, ""
    oldest = min(waiting, key=lambda t: t.failing_since)
    return oldest.failing_since, oldest.last_error


def dumps(payload: Any) -> str:
    return json.dumps(payload, default=str)


def mark_tried(payload: Any) -> Any:
    """The payload of a replaced task whose earlier version may have had its effect."""
    return {**payload, "tried": True} if isinstance(payload, dict) else payload


def tried_payload(text: str | None) -> bool:
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return False
    return isinstance(data, dict) and bool(data.get("tried"))


def tried(task: TaskRecord) -> bool:
    """Whether this task (or an earlier version of it) may already have had its effect: tried
    before, or replaced after a try. Such a task is checked before it acts again."""
    return task.attempts > 1 or (isinstance(task.data, dict) and bool(task.data.get("tried")))


class SqlTaskStore:
    def __init__(self, db: Db):
        self.db = db

    async def put(self, merchant: str, kind: str, key: str, payload: Any, *, replace: bool = False) -> None:
        await self.put_many(merchant, [dict(kind=kind, key=key, payload=payload, replace=replace)])

    async def put_many(self, merchant: str, tasks: Sequence[dict[str, Any]]) -> None:
        """Queue tasks (kind, key, payload, replace): a new key is inserted; a known one is left as
        it is unless `replace`, which makes it pending again with the new payload and fresh attempts.

        A replaced task that was ever tried (or was running when its owner died) may already have
        had its effect: its new payload carries `"tried": true` (see `tried`), so the worker checks
        before acting again, however many attempts the new version has made."""
        if not tasks:
            return
        now = self.db.now()
        by_kind: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for task in tasks:
            by_kind[task["kind"]][task["key"]] = task  # the same key twice: the last one wins
        async with self.db.write() as conn:
            for kind, group in by_kind.items():
                known: dict[str, int] = {}
                was_tried: set[str] = set()
                for part in chunks(list(group)):
                    q = select(T.c.key, T.c.id, T.c.state, T.c.attempts, T.c.payload).where(T.c.merchant == merchant, T.c.kind == kind, T.c.key.in_(part))
                    for key, pk, state, attempts, payload in (await conn.execute(q)).all():
                        known[key] = pk
                        if attempts or state != TS.pending or tried_payload(payload):
                            was_tried.add(key)
                new = [dict(merchant=merchant, kind=kind, key=k, payload=dumps(x["payload"]), state=TS.pending, attempts=0,
                            created_at=now, updated_at=now, last_error="", lease_owner="") for k, x in group.items() if k not in known]
                again = [dict(b_id=known[k], payload=dumps(mark_tried(x["payload"]) if k in was_tried else x["payload"]), state=TS.pending,
                              attempts=0, next_attempt_at=None, updated_at=now, last_error="", failing_since=None)
                         for k, x in group.items() if k in known and x.get("replace")]
                if new:
                    await conn.execute(self.db.dialect.insert_ignore(T, "merchant", "kind", "key"), new)
                if again:
                    await conn.execute(update(T).where(T.c.id == bindparam("b_id")), again)

    async def claim(self, merchant: str, kind: str, *, owner: str, lease_seconds: float, limit: int) -> list[TaskRecord]:
        now = self.db.now()
        d = self.db.dialect
        async with self.db.write() as conn:
            due = or_(T.c.state == TS.pending, and_(T.c.state == TS.running, T.c.lease_until < d.lease_now(self.db.clock)))
            q = select(T.c.id).where(T.c.merchant == merchant, T.c.kind == kind, due,
                                     or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= now)).order_by(T.c.id).limit(limit)
            ids = list((await conn.execute(d.claim(q))).scalars())
            if not ids:
                return []
            await conn.execute(update(T).where(T.c.id.in_(ids), due).values(
                state=TS.running, lease_owner=owner, lease_until=d.lease_until(self.db.clock, lease_seconds), attempts=T.c.attempts + 1, updated_at=now))
            rows = (await conn.execute(select(T).where(T.c.id.in_(ids), T.c.lease_owner == owner, T.c.state == TS.running).order_by(T.c.id))).all()
            return [TaskRecord.from_row(r) for r in rows]

    async def finish(self, task_ids: Sequence[int], *, state: str, next_attempt_at: datetime | None = None, error: str = "",
                     count_attempt: bool = True) -> None:
        """Tasks done, failed, or back to pending (at `next_attempt_at`) after a failed attempt."""
        if not task_ids:
            return
        now = self.db.now()
        values: dict[str, Any] = dict(state=state, next_attempt_at=next_attempt_at, last_error=error[:2000], lease_owner="", updated_at=now)
        values["failing_since"] = None if state == TS.done else func.coalesce(T.c.failing_since, now) if error else T.c.failing_since
        if not count_attempt:
            values["attempts"] = T.c.attempts - 1
        async with self.db.write() as conn:
            for part in chunks(list(task_ids)):
                await conn.execute(update(T).where(T.c.id.in_(part)).values(**values))

    async def listing(self, merchant: str | None = None, kind: str | None = None, state: str | None = None) -> list[TaskRecord]:
        q = select(T)
        for col, val in ((T.c.merchant, merchant), (T.c.kind, kind), (T.c.state, state)):
            if val is not None:
                q = q.where(col == val)
        async with self.db.read() as conn:
            return [TaskRecord.from_row(r) for r in (await conn.execute(q.order_by(T.c.id))).all()]

    async def retry_failed(self, merchant: str | None, kind: str, key: str | None = None) -> int:
        q = update(T).where(T.c.kind == kind, T.c.state == TS.failed)
        if merchant:
            q = q.where(T.c.merchant == merchant)
        if key:
            q = q.where(T.c.key == key)
        async with self.db.write() as conn:
            return (await conn.execute(q.values(state=TS.pending, attempts=0, next_attempt_at=None, updated_at=self.db.now()))).rowcount

    async def overdue(self, merchants: Sequence[str], kind: str, before: datetime, *, limit: int = 1000) -> list[TaskRecord]:
        """Tasks due since before the cutoff and still not done, and the failed ones whatever their age."""
        q = select(T).where(T.c.merchant.in_(list(merchants)), T.c.kind == kind,
                            or_(T.c.state == TS.failed, and_(T.c.state.in_([TS.pending, TS.running]), T.c.created_at < before)))
        async with self.db.read() as conn:
            return [TaskRecord.from_row(r) for r in (await conn.execute(q.order_by(T.c.merchant, T.c.id).limit(limit))).all()]

    async def recover(self) -> int:
        """At start (SQLite, one daemon): tasks left running by a dead process are due again."""
        async with self.db.write() as conn:
            return (await conn.execute(update(T).where(T.c.state == TS.running).values(state=TS.pending, lease_owner="", updated_at=self.db.now()))).rowcount

    async def renew(self, owner: str, seconds: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(T).where(T.c.lease_owner == owner, T.c.state == TS.running)
                               .values(lease_until=self.db.dialect.lease_until(self.db.clock, seconds)))

