"""One test suite for every Store: the in-memory fake, SQLite and PostgreSQL must behave alike.

Each test gets a fresh store with a `FakeClock` (PostgreSQL stamps leases with its own clock, so
lease expiry is driven by a negative lease length there, which works on all three)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import FakeClock
from connector.lifecycle import Actor, HoldKind, IllegalMove, OrderState, SkipKind, hold, skip
from connector.store.tasks import tried
from connector.store import Move, NewOrder, Store, WorkerRecord
from tests.support.pg import fresh_schema

S = OrderState
A = Actor


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request, tmp_path):
    clock = FakeClock()
    if request.param == "memory":
        s = Store.memory(clock=clock)
        s.test_clock = clock
        yield s
        return
    if request.param == "sqlite":
        s = await Store.open(f"sqlite:///{tmp_path / 'c.db'}", clock=clock)
        s.test_clock = clock
        yield s
        await s.close()
        return
    with fresh_schema() as url:
        s = await Store.open(url, clock=clock)
        s.test_clock = clock
        yield s
        await s.close()


def new(order_id: str, **kw) -> NewOrder:
    return NewOrder(order_id, f"acme-{order_id}", '{"order_id": "%s"}' % order_id, "{}", **kw)


async def stored(store: Store, *ids: str) -> list[int]:
    await store.orders.ingest("acme", "DFLT", [new(i) for i in ids], source="poll", actor=A.order_download)
    return [(await store.orders.find(i))[0].id for i in ids]


# ---------------------------------------------------------------------------------------- orders
async def test_ingest_stores_new_orders_once_and_returns_known_copies(store):
    first = await store.orders.ingest("acme", "DFLT", [new("A"), new("B"), new("A")], source="poll", actor=A.order_download)
    assert sorted(first.new) == ["A", "B"] and first.known == {}
    again = await store.orders.ingest("acme", "DFLT", [new("B"), new("C")], source="webhook", actor=A.webhook)
    assert again.new == ["C"] and set(again.known) == {"B"}
    assert again.known["B"].order_json == '{"order_id": "B"}' and again.known["B"].state == S.received
    a = (await store.orders.find("A"))[0]
    assert (a.state, a.reference, a.source) == (S.received, "acme-A", "poll")
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in await store.orders.timeline(a.id)] == [("", "received", "order_download", "received by poll")]
    # Another merchant, or another DC of the same merchant, is another order.
    other = await store.orders.ingest("beta", "DFLT", [new("A")], source="poll", actor=A.order_download)
    assert other.new == ["A"]


async def test_ingest_keeps_a_typed_hold_and_refuses_an_illegal_intake_state(store):
    await store.orders.ingest("acme", "DFLT", [new("H", state=S.held, reason=hold(HoldKind.malformed, error="items must be an array"))],
                              source="poll", actor=A.order_download)
    h = (await store.orders.find("H"))[0]
    assert (h.state, h.hold_kind, h.reason) == (S.held, "malformed", "malformed order: items must be an array")
    assert h.hold.details == {"error": "items must be an array"}
    with pytest.raises(IllegalMove):
        await store.orders.ingest("acme", "DFLT", [new("X", state=S.confirmed)], source="poll", actor=A.order_download)


async def test_acknowledgement_bookkeeping(store):
    await stored(store, "A", "B", "C")
    assert await store.orders.unacked_ids("acme", "DFLT", 2) == ["A", "B"]
    await store.orders.mark_acked("acme", "DFLT", ["A", "C"])
    assert await store.orders.unacked_ids("acme", "DFLT") == ["B"]


async def test_moves_are_compare_and_set_and_write_the_timeline(store):
    pk, = await stored(store, "A")
    why = hold(HoldKind.unknown_sku, skus=["X", "Y"])
    assert await store.orders.move(Move(pk, S.held, (S.received,), why), actor=A.order_delivery)
    a = await store.orders.get(pk)
    assert (a.state, a.hold_kind, a.reason, a.hold.details["skus"]) == (S.held, "unknown_sku", "unknown SKU: X, Y", ["X", "Y"])
    # Expecting a state the order is no longer in: not applied, nothing written.
    assert not await store.orders.move(Move(pk, S.ready, (S.received,), "mapped"), actor=A.order_delivery)
    assert (await store.orders.get(pk)).state == S.held
    # Leaving the hold with words clears the typed reason.
    assert await store.orders.move(Move(pk, S.ready, (S.held,), "released", fields={"warehouse_json": "{}"}), actor=A.order_delivery)
    a = await store.orders.get(pk)
    assert (a.state, a.reason, a.hold_kind, a.hold_detail, a.warehouse_json) == (S.ready, "released", "", "", "{}")
    # A note: same state, a timeline line, nothing else changes.
    assert await store.orders.move(Move(pk, S.ready, (S.ready,), "tracking resend requested"), actor=A.operator)
    steps = [(e.from_state, e.to_state, e.actor, e.reason) for e in await store.orders.timeline(pk)]
    assert steps[1:] == [("received", "held", "order_delivery", "unknown SKU: X, Y"), ("held", "ready", "order_delivery", "released"),
                         ("ready", "ready", "operator", "tracking resend requested")]
    assert (await store.orders.get(pk)).reason == "released"


async def test_an_illegal_move_raises_and_changes_nothing(store):
    pk, = await stored(store, "A")
    with pytest.raises(IllegalMove):
        await store.orders.move(Move(pk, S.confirmed, (S.received,), "no"), actor=A.operator)
    with pytest.raises(IllegalMove):  # the operator may not mark an order created at the warehouse
        await store.orders.move_many([Move(pk, S.at_warehouse, (S.received, S.ready), "no")], actor=A.operator)
    assert (await store.orders.get(pk)).state == S.received


async def test_many_moves_in_one_call_including_the_same_order_twice(store):
    a, b, c = await stored(store, "A", "B", "C")
    done = await store.orders.move_many([
        Move(a, S.ready, (S.received,), "ok", fields={"warehouse_json": "{}"}),
        Move(b, S.skipped, (S.received,), skip(SkipKind.test_order)),
        Move(c, S.in_doubt, (S.submitting,), "not applied"),
        Move(a, S.submitting, (S.ready,), "claimed"),
    ], actor=A.order_delivery)
    assert done == [True, True, False, True]
    states = {r.order_id: r.state for r in await store.orders.listing()}
    assert states == {"A": S.submitting, "B": S.skipped, "C": S.received}
    assert (await store.orders.get(b)).reason == "test order"


async def test_claims_take_due_ready_orders_once_and_dead_claims_become_in_doubt(store):
    a, b, c = await stored(store, "A", "B", "C")
    later = store.test_clock.now() + timedelta(hours=1)
    await store.orders.move_many([Move(a, S.ready, (S.received,)), Move(b, S.ready, (S.received,)),
                                  Move(c, S.ready, (S.received,), fields={"next_attempt_at": later})], actor=A.order_delivery)
    claimed = await store.orders.claim_ready("acme", owner="w1", lease_seconds=-1, limit=10)
    assert [r.order_id for r in claimed] == ["A", "B"] and all(r.attempts == 1 and r.state == S.submitting for r in claimed)
    assert claimed[0].first_attempt_at is not None
    assert await store.orders.claim_ready("acme", owner="w2", lease_seconds=60, limit=10) == []
    # Their (negative) lease has run out: a dead worker's claims.
    assert await store.orders.expire_claims("acme") == 2
    assert {r.state for r in await store.orders.in_states("acme", [S.in_doubt])} == {S.in_doubt}
    assert [e.actor for e in await store.orders.timeline(a)][-1] == "recovery"


async def test_live_claims_do_not_expire_and_clean_stops_release_their_own(store):
    a, b = await stored(store, "A", "B")
    await store.orders.move_many([Move(a, S.ready, (S.received,)), Move(b, S.ready, (S.received,))], actor=A.order_delivery)
    await store.orders.claim_ready("acme", owner="w1", lease_seconds=300, limit=1)
    await store.orders.claim_ready("acme", owner="w2", lease_seconds=300, limit=1)
    assert await store.orders.expire_claims("acme") == 0
    await store.renew_leases("w1", 300)
    assert await store.orders.release_claims("w1") == 1
    assert (await store.orders.get(a)).state == S.in_doubt and (await store.orders.get(b)).state == S.submitting
    assert await store.orders.recover_claims() == 1
    assert (await store.orders.get(b)).state == S.in_doubt


async def test_order_reads(store):
    a, b, c = await stored(store, "A", "B", "C")
    await store.orders.move(Move(b, S.held, (S.received,), hold(HoldKind.missing_address, fields=["city"])), actor=A.order_delivery)
    await store.orders.move(Move(c, S.skipped, (S.received,), skip(SkipKind.test_order)), actor=A.order_delivery)
    assert await store.orders.count() == 3 and await store.orders.count(state=S.held) == 1
    assert [r.order_id for r in await store.orders.listing(limit=2, offset=1)] == ["B", "C"]
    assert (await store.orders.listing())[0].order_json == ""  # listings leave the documents out
    assert await store.orders.counts_by_state("acme") == {("acme", "received"): 1, ("acme", "held"): 1, ("acme", "skipped"): 1}
    assert await store.orders.reasons("held") == {("acme", "missing ship-to address: city"): 1}
    assert [r.order_id for r in await store.orders.held("acme", [HoldKind.missing_address])] == ["B"]
    assert [r.order_id for r in await store.orders.find("acme-C")] == ["C"]
    refs = await store.orders.by_reference("acme", ["acme-A", "acme-Z"])
    assert list(refs) == ["acme-A"] and refs["acme-A"].id == a
    assert set(await store.orders.by_pks([a, c])) == {a, c}
    assert [r.order_id for r in await store.orders.in_states("acme", [S.received, S.held], after_pk=a)] == ["B"]
    assert await store.orders.oldest_pending("acme") == store.test_clock.now()
    assert await store.orders.in_flight_json("acme", store.test_clock.now()) == ['{"order_id": "A"}', '{"order_id": "B"}']
    cutoff = store.test_clock.now() + timedelta(seconds=1)
    assert [r.order_id for r in await store.orders.not_at_warehouse_since(["acme"], cutoff)] == ["A", "B"]
    assert await store.orders.unshipped_since(["acme"], cutoff) == []


# ---------------------------------------------------------------------------------------- shipments
async def test_shipments_are_stored_once_and_a_posted_one_is_final(store):
    a, = await stored(store, "A")
    row = dict(shipment_id="S1", reference="acme-A", order_pk=a, state="pending", reason="", tracking="1Z", shipment_json="{}")
    await store.shipments.upsert("acme", [row, dict(row, tracking="1Z,2Z")])
    assert (await store.shipments.by_ids("acme", ["S1"]))["S1"].tracking == "1Z,2Z"
    await store.shipments.mark_posted("acme", ["S1"])
    await store.shipments.upsert("acme", [dict(row, state="ignored", tracking="changed")])
    s1 = (await store.shipments.of_orders([a]))[a][0]
    assert (s1.state, s1.tracking) == ("posted", "1Z,2Z") and s1.posted_at is not None
    assert [s.shipment_id for s in await store.shipments.needing_ack("acme")] == ["S1"]
    await store.shipments.mark_acked("acme", ["S1"])
    assert await store.shipments.needing_ack("acme") == []
    assert [s.shipment_id for s in await store.shipments.listing("acme", "posted")] == ["S1"]


# ---------------------------------------------------------------------------------------- tasks
async def test_tasks_are_queued_once_claimed_under_leases_and_retried(store):
    await store.tasks.put("acme", "post", "k1", {"n": 1})
    await store.tasks.put("acme", "post", "k1", {"n": 2})  # known key, no replace: kept as it was
    assert (await store.tasks.listing("acme"))[0].data == {"n": 1}
    first = await store.tasks.claim("acme", "post", owner="w", lease_seconds=300, limit=10)
    assert [(t.key, t.attempts, t.state) for t in first] == [("k1", 1, "running")]
    assert await store.tasks.claim("acme", "post", owner="w2", lease_seconds=300, limit=10) == []
    later = store.test_clock.now() + timedelta(minutes=5)
    await store.tasks.finish([first[0].id], state="pending", next_attempt_at=later, error="boom", count_attempt=False)
    t = (await store.tasks.listing("acme"))[0]
    assert (t.state, t.attempts, t.last_error, t.failing_since) == ("pending", 0, "boom", store.test_clock.now())
    assert await store.tasks.claim("acme", "post", owner="w", lease_seconds=300, limit=10) == []  # not yet due
    store.test_clock.advance(301)
    again = await store.tasks.claim("acme", "post", owner="w", lease_seconds=300, limit=10)
    await store.tasks.finish([again[0].id], state="done")
    assert (await store.tasks.listing("acme"))[0].failing_since is None
    await store.tasks.put_many("acme", [dict(kind="post", key="k1", payload={"n": 3}, replace=True)])
    t = (await store.tasks.listing("acme"))[0]
    # Fresh attempts, but the new version says an earlier one was tried: it may have had its effect.
    assert (t.state, t.data, t.attempts) == ("pending", {"n": 3, "tried": True}, 0) and tried(t)
    await store.tasks.put_many("acme", [dict(kind="post", key="k2", payload={"n": 1}), dict(kind="post", key="k2", payload={"n": 2}, replace=True)])
    [k2] = [x for x in await store.tasks.listing("acme") if x.key == "k2"]
    assert k2.data == {"n": 2} and not tried(k2)  # never tried: nothing to check


async def test_a_task_replaced_while_its_dead_owner_held_it_is_marked_tried(store):
    await store.tasks.put("acme", "post", "k1", {"n": 1})
    [t] = await store.tasks.claim("acme", "post", owner="dead", lease_seconds=300, limit=10)
    await store.tasks.put_many("acme", [dict(kind="post", key="k1", payload={"n": 2}, replace=True)])
    [again] = await store.tasks.claim("acme", "post", owner="w", lease_seconds=300, limit=10)
    assert again.attempts == 1 and again.data == {"n": 2, "tried": True} and tried(again)


async def test_failed_overdue_recovered_and_expired_tasks(store):
    await store.tasks.put_many("acme", [dict(kind="post", key=k, payload={}) for k in ("a", "b", "c")])
    a, b, c = await store.tasks.claim("acme", "post", owner="w", lease_seconds=-1, limit=3)
    await store.tasks.finish([a.id], state="failed", error="refused")
    assert [t.key for t in await store.tasks.listing(state="failed")] == ["a"]
    assert await store.tasks.retry_failed("acme", "post") == 1
    # b and c are running under an expired lease: claimable again.
    assert sorted(t.key for t in await store.tasks.claim("acme", "post", owner="w2", lease_seconds=300, limit=10)) == ["a", "b", "c"]
    assert await store.tasks.recover() == 3
    store.test_clock.advance(3600)
    assert [t.key for t in await store.tasks.overdue(["acme"], "post", store.test_clock.now())] == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------- runs, cursors, workers
async def test_service_runs_record_outcomes_pauses_and_leases(store):
    await store.runs.started("acme", "order_delivery")
    await store.runs.finished("acme", "order_delivery", outcome="throttled", summary={"created": 3}, stopped_because="rate limited",
                              resumes_at=store.test_clock.now())
    run, = await store.runs.listing("acme")
    assert (run.last_outcome, run.summary, run.last_success_at, run.stopped_because) == ("throttled", {"created": 3}, None, "rate limited")
    await store.runs.finished("acme", "order_delivery", outcome="done", summary={})
    assert (await store.runs.listing("acme"))[0].last_success_at == store.test_clock.now()
    await store.runs.pause("acme", "order_delivery", store.test_clock.now() + timedelta(minutes=5), "bad key")
    assert (await store.runs.listing())[0].paused(store.test_clock.now())
    # A paused service does not start (the run says why), unless told to ignore the pause.
    paused = await store.runs.begin_pass("acme", "order_delivery", "w1", 300)
    assert paused is not None and paused.pause_reason == "bad key" and paused.lease_owner == ""
    assert await store.runs.begin_pass("acme", "order_delivery", "w1", 300, honour_pause=False) is None
    [run] = await store.runs.listing()
    assert (run.lease_owner, run.last_started_at) == ("w1", store.test_clock.now())
    other = await store.runs.begin_pass("acme", "order_delivery", "w2", 300, honour_pause=False)
    assert other is not None and other.lease_owner == "w1"
    assert await store.runs.begin_pass("acme", "order_delivery", "w1", 300, honour_pause=False) is None  # its own lease: renewed
    await store.runs.release("acme", "order_delivery", "w1")
    store.test_clock.advance(301)  # the pause is over
    assert await store.runs.begin_pass("acme", "order_delivery", "w2", -1) is None
    assert await store.runs.begin_pass("acme", "order_delivery", "w3", 300) is None  # w2's lease has run out
    assert await store.runs.begin_pass("globex", "order_delivery", "w3", 300) is None  # a first pass: its row is made
    # An idle pass is written as started and done in one step, only when the service may run.
    assert not await store.runs.idle_pass("initech", "order_delivery", "w3")  # no row yet: the runner takes the long way
    assert not await store.runs.idle_pass("acme", "order_delivery", "w1")  # w3 holds the lease
    assert await store.runs.idle_pass("acme", "order_delivery", "w3")  # its own lease: done, and let go
    [run] = [r for r in await store.runs.listing("acme") if r.service == "order_delivery"]
    assert (run.last_outcome, run.lease_owner, run.summary, run.last_success_at) == ("done", "", {}, store.test_clock.now())
    await store.runs.pause("acme", "order_delivery", store.test_clock.now() + timedelta(minutes=5), "bad key")
    assert not await store.runs.idle_pass("acme", "order_delivery", "w1")
    assert await store.runs.idle_pass("acme", "order_delivery", "w1", honour_pause=False)  # a forced pass that worked ends the pause
    assert not (await store.runs.listing("acme"))[0].paused(store.test_clock.now())
    await store.runs.note("acme", "inventory_upload", "disabled")
    assert {r.service: r.note for r in await store.runs.listing("acme")}["inventory_upload"] == "disabled"


async def test_an_idle_pass_is_recorded_only_while_its_probe_finds_nothing(store):
    assert await store.runs.begin_pass("acme", "order_delivery", "w1", -1) is None  # a lease that has run out already
    assert await store.runs.idle_pass("acme", "order_delivery", "w2")  # another owner's expired lease does not stop it
    probe = dict(no_orders_in=("received", "ready"), no_alerts_in=("unknown_sku",), no_own_alerts_in=("configuration",))
    assert await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    await stored(store, "A")  # an order arrives: the pass has work
    assert not await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    assert await store.runs.idle_pass("globex", "order_delivery", "w1") is False  # no row for globex yet
    [pk] = [r.id for r in await store.orders.listing()]
    await store.orders.move(Move(pk, "cancelled", ("received",), "test"), actor=Actor.operator)
    assert await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    # An open alert in a listed category (of this merchant) makes it a real pass; a resolved one does not.
    await store.alerts.raise_many([("acme", "unknown_sku", "X", "order B"), ("globex", "configuration", "order_delivery", "401")],
                                  now=store.test_clock.now())
    assert not await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    await store.alerts.resolve("acme", "unknown_sku")
    assert await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    # A closing-category alert counts only under this service's key: another service's pause is not this one's work.
    await store.alerts.raise_many([("acme", "configuration", "order_download", "401")], now=store.test_clock.now())
    assert await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)
    await store.alerts.raise_many([("acme", "configuration", "order_delivery", "401")], now=store.test_clock.now())
    assert not await store.runs.idle_pass("acme", "order_delivery", "w1", **probe)


async def test_cursors_and_workers(store):
    assert await store.cursors.get("acme", "c") is None
    await store.cursors.set("acme", "c", "1")
    await store.cursors.set("acme", "c", "2")
    assert await store.cursors.get("acme", "c") == "2"
    now = store.test_clock.now()
    await store.workers.register(WorkerRecord("h:1", now, now, config_path="/etc/c.toml", database="sqlite:///x", listen="127.0.0.1:8080"))
    store.test_clock.advance(5)
    await store.workers.seen("h:1", config_loaded_at=store.test_clock.now())
    w, = await store.workers.listing()
    assert (w.config_path, w.seen_at, w.config_loaded_at, w.stopped) == ("/etc/c.toml", store.test_clock.now(), store.test_clock.now(), False)


# ---------------------------------------------------------------------------------------- events, alerts, inventory
async def test_event_log(store):
    now = store.test_clock.now()
    await store.events.log([dict(at=now - timedelta(days=20), merchant="acme", kind="vendor_call", order_id="A", url="/old"),
                            dict(at=now, merchant="acme", kind="webhook", request_body='{"order_id": "B"}', url="/new"),
                            dict(at=now, merchant="beta", kind="vendor_call", url="/beta")])
    assert [e.url for e in await store.events.listing(merchant="acme")] == ["/old", "/new"]
    assert [e.url for e in await store.events.listing(order_id="B")] == ["/new"]
    assert [e.url for e in await store.events.listing(kind="vendor_call", limit=1)] == ["/beta"]
    assert await store.events.prune(now - timedelta(days=14)) == 1
    assert len(await store.events.listing()) == 2


async def test_alerts_are_deduplicated_resolved_and_come_back(store):
    now = store.test_clock.now()
    items = [("acme", "unknown_sku", "X", "order A"), ("acme", "unknown_sku", "Y", "order B")]
    assert await store.alerts.raise_many(items, now=now) == 2
    assert await store.alerts.raise_many([("acme", "unknown_sku", "X", "order C")], now=now) == 0
    x = [a for a in await store.alerts.open("acme") if a.key == "X"][0]
    assert (x.count, x.message) == (2, "order C")
    unsent = await store.alerts.claim_unsent()
    await store.alerts.mark_sent([a.id for a in unsent], now=now)
    await store.alerts.mark_delivered([x.id], now=now)
    assert await store.alerts.open(unsent_only=True) == []
    assert await store.alerts.resolve("acme", "unknown_sku", except_keys=["Y"]) == 1
    assert [a.key for a in await store.alerts.open()] == ["Y"]
    assert await store.alerts.raise_many([("acme", "unknown_sku", "X", "back")], now=now) == 1
    back = [a for a in await store.alerts.listing("acme", "open") if a.key == "X"][0]
    assert (back.count, back.sent_at, back.delivered_at) == (1, None, None)
    # One key closed across categories (a pass that worked clears its configuration and failure alerts).
    await store.alerts.raise_many([("acme", "configuration", "order_delivery", "bad key"), ("acme", "delivery_failed", "order_delivery", "500"),
                                   ("acme", "configuration", "order_download", "bad key")], now=now)
    assert await store.alerts.resolve("acme", ["configuration", "delivery_failed"], "order_delivery") == 2
    assert sorted((a.category, a.key) for a in await store.alerts.open()) == [("configuration", "order_download"), ("unknown_sku", "X"), ("unknown_sku", "Y")]


async def test_inventory_pushed(store):
    await store.inventory.record_pushed("acme", {"A": 1, "B": 2})
    await store.inventory.record_pushed("acme", {"B": 5, "C": 0})
    assert await store.inventory.pushed("acme") == {"A": 1, "B": 5, "C": 0}
    assert await store.inventory.pushed("beta") == {}


# ---------------------------------------------------------------------------------------- atomic
async def test_atomic_work_commits_together_or_not_at_all(store):
    pk, = await stored(store, "A")
    with pytest.raises(RuntimeError):
        async with store.atomic() as tx:
            await tx.orders.move(Move(pk, S.held, (S.received,), "x"), actor=A.order_delivery)
            await tx.tasks.put("acme", "post", "k", {})
            await tx.cursors.set("acme", "c", "v")
            raise RuntimeError("crash before commit")
    assert (await store.orders.get(pk)).state == S.received
    assert await store.tasks.listing() == [] and await store.cursors.get("acme", "c") is None
    async with store.atomic() as tx:
        await tx.orders.move(Move(pk, S.held, (S.received,), "x"), actor=A.order_delivery)
        await tx.tasks.put("acme", "post", "k", {})
    assert (await store.orders.get(pk)).state == S.held and len(await store.tasks.listing()) == 1


# ---------------------------------------------------------------------------------------- search, trouble, ledger
async def test_search_by_text_state_and_date_and_trouble_groups(store):
    rows = [NewOrder(f"S-{i}", f"acme-S-{i}", "{}", "{}", customer=name, email=f"{name.split()[0].lower()}@example.com")
            for i, name in enumerate(["Ada Lovelace", "Alan Turing", "Grace Hopper"])]
    await store.orders.ingest("acme", "DFLT", rows, source="poll", actor=A.order_download)
    await store.orders.ingest("beta", "BETA", [NewOrder("S-9", "beta-S-9", "{}", "{}", customer="Ada Byron")], source="poll", actor=A.order_download)
    pks = {r.order_id: r.id for r in await store.orders.listing(merchant="acme")}
    await store.orders.move(Move(pks["S-1"], S.held, (S.received,), hold(HoldKind.unknown_sku, skus=["X"])), actor=A.order_delivery)
    await store.orders.move(Move(pks["S-2"], S.held, (S.received,), hold(HoldKind.unknown_sku, skus=["X"])), actor=A.order_delivery)
    from connector.store import Search

    found, total = await store.orders.search(Search(text="ADA"))
    assert total == 2 and {r.order_id for r in found} == {"S-0", "S-9"}
    found, total = await store.orders.search(Search(text="grace@", merchant="acme"))
    assert [r.order_id for r in found] == ["S-2"] and total == 1
    found, total = await store.orders.search(Search(text="ada", merchants=("beta",)))
    assert [r.order_id for r in found] == ["S-9"]
    found, total = await store.orders.search(Search(state="held", limit=1))
    assert total == 2 and len(found) == 1
    assert (await store.orders.search(Search(text="50%_")))[1] == 0  # wildcards are text
    later = store.test_clock.now() + timedelta(seconds=1)
    assert (await store.orders.search(Search(since=later)))[1] == 0 and (await store.orders.search(Search(until=later)))[1] == 4
    [group] = await store.orders.trouble()
    assert (group.merchant, group.state, group.reason, group.count, sorted(group.order_ids)) == ("acme", "held", "unknown SKU: X", 2, ["S-1", "S-2"])


async def test_ledger_consumptions_are_asked_once_claimed_and_saved(store):
    new = await store.ledger.request("acme", [dict(order_id="A", sku="BONE", quantity=2, source="order_ship"),
                                              dict(order_id="A", sku="TREAT", quantity=1, source="order_ship")])
    assert sorted(new) == ["A:BONE", "A:TREAT"]
    assert await store.ledger.request("acme", [dict(order_id="A", sku="BONE", quantity=2, source="confirmed")]) == []
    first = await store.ledger.claim("acme", owner="w", lease_seconds=-1, limit=1)
    assert [(c.sku, c.state, c.attempts) for c in first] == [("BONE", "consuming", 1)]
    again = await store.ledger.claim("acme", owner="w2", lease_seconds=300, limit=5)  # BONE's lease ran out
    assert [c.sku for c in again] == ["BONE", "TREAT"]
    await store.ledger.save(again[0].id, state="done", draws=[{"unit": "U1", "quantity": "2", "status": "applied"}], consumed="2", release=True)
    [done] = await store.ledger.listing("acme", state="done")
    assert done.draw_list == [{"unit": "U1", "quantity": "2", "status": "applied"}] and done.consumed == "2"
    assert [c.sku for c in await store.ledger.listing(order_id="A")] == ["BONE", "TREAT"]
