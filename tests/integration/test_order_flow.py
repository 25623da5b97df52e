"""The order flow against the sandboxes over real HTTP: download, rules, delivery, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector import operator as op
from connector.sandbox.samples import make_order
from connector.lifecycle import Actor
from connector.store import Move
from tests.support.warehouse import lose_a_create_reply, orders, states

pytestmark = pytest.mark.asyncio


async def test_orders_flow_to_shipbob_exactly_once_and_a_second_run_sends_nothing(flow, runtime):
    flow.uc.queue("DFLT", orders(30))
    results = await runtime.run_once(service="order_download") + await runtime.run_once(service="order_delivery")
    assert all(r.ok and not r.error for r in results), results
    assert await states(runtime) == {"at_warehouse": 30}
    assert flow.sb.create_count == 30 and flow.uc.queued("DFLT") == []
    assert sorted(flow.uc.acknowledged) == [f"DEMO-{i:04d}" for i in range(1, 31)]
    # UltraCart sends some of them again (as it does until acknowledged): absorbed.
    flow.uc.queue("DFLT", orders(5))
    await runtime.run_once(service="order_download")
    await runtime.run_once(service="order_delivery")
    assert flow.uc.queued("DFLT") == []  # the repeats were acknowledged again
    assert flow.sb.create_count == 30
    assert await states(runtime) == {"at_warehouse": 30}
    order = flow.sb.orders["acme-DEMO-0001"]
    assert order["reference_id"] == "acme-DEMO-0001"


async def test_a_large_queue_drains_100_at_a_time(flow, runtime):
    flow.uc.queue("DFLT", orders(250))
    r = (await runtime.run_once(service="order_download"))[0]
    assert r.did["fetched"] == 250 and r.did["new"] == 250 and r.did["rounds"] == 3
    assert flow.uc.requests["ack"] == 3  # 100 + 100 + 50 ids
    assert flow.uc.queued("DFLT") == []


async def test_a_malformed_order_is_held_with_its_reason_and_the_others_flow(flow, runtime):
    bad = make_order("DEMO-0666")
    bad["items"] = "not a list"
    flow.uc.queue("DFLT", orders(3) + [bad])
    await runtime.run_once(service="order_download")
    await runtime.run_once(service="order_delivery")
    assert await states(runtime) == {"at_warehouse": 3, "held": 1}
    [row] = await runtime.store.orders.find("DEMO-0666")
    assert row.reason.startswith("malformed order:") and "items" in row.reason
    assert "DEMO-0666" in flow.uc.acknowledged  # acknowledged: UltraCart would resend it forever
    assert flow.sb.create_count == 3


async def test_unmapped_method_is_held_then_released_when_the_config_gains_it(flow, tmp_path):
    flow.uc.queue("DFLT", [make_order("DEMO-0001", ship_method="Pigeon: Carrier Express"), make_order("DEMO-0002")])
    rt = await flow.runtime()
    try:
        await rt.run_once()
        [row] = await rt.store.orders.find("DEMO-0001")
        assert row.state == "held" and row.reason == "unmapped ship method: Pigeon: Carrier Express"
        assert flow.sb.create_count == 1
    finally:
        await rt.aclose()
    flow.overrides["acme"] = {"ship_methods": {"Pigeon: Carrier Express": "Expedited"}}
    rt = await flow.runtime()  # the config reloaded with the new mapping
    try:
        await rt.run_once(service="order_delivery")
        [row] = await rt.store.orders.find("DEMO-0001")
        assert row.state == "at_warehouse"
        assert flow.sb.orders["acme-DEMO-0001"]["shipping_method"] == "Expedited"
        timeline = [e.reason for e in await rt.store.orders.timeline(row.id)]
        assert any("no longer applies" in t for t in timeline)
    finally:
        await rt.aclose()


async def test_unknown_sku_and_missing_address_hold_with_reasons(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("MYSTERY-SKU", 1), ("TREAT", 2)]), make_order("DEMO-0002", address=False)])
    await runtime.run_once()
    rows = {r.order_id: r for r in await runtime.store.orders.listing()}
    assert rows["DEMO-0001"].reason == "unknown SKU: MYSTERY-SKU"
    assert rows["DEMO-0002"].reason.startswith("missing ship-to address")
    assert flow.sb.create_count == 0


async def test_manual_hold_and_release(flow, runtime):
    flow.overrides["acme"] = {"orders": {"hold_minutes": 60}}
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(2))
        await rt.run_once()
        assert await states(rt) == {"held": 2}
        [row] = await rt.store.orders.find("DEMO-0001")
        assert row.reason.startswith("timed hold until")
        [res] = await op.release(rt.store, "DEMO-0001")
        assert res.ok
        await rt.run_once(service="order_delivery")
        assert (await rt.store.orders.find("DEMO-0001"))[0].state == "at_warehouse"
        assert (await rt.store.orders.find("DEMO-0002"))[0].state == "held"
        [res] = await op.hold(rt.store, "DEMO-0002", reason="customer called")
        assert res.ok and (await rt.store.orders.find("DEMO-0002"))[0].reason == "manual hold: customer called"
    finally:
        await rt.aclose()


@pytest.mark.parametrize("fault", [{"status": 500, "after": True}, {"status": "reset", "after": True}])
async def test_a_create_whose_reply_is_lost_is_looked_up_not_sent_twice(flow, runtime, fault):
    await lose_a_create_reply(flow, runtime, "/2026-01/order", fault)


async def test_a_rejected_order_fails_with_the_vendor_message_and_can_be_retried(flow, runtime):
    flow.uc.queue("DFLT", orders(2))
    await runtime.run_once(service="order_download")
    flow.sb.faults.script = [{"method": "POST", "path": "/2026-01/order", "status": 400}]
    await runtime.run_once(service="order_delivery")
    failed = [r for r in await runtime.store.orders.listing() if r.state == "failed"]
    assert len(failed) == 1 and "400" in failed[0].last_error
    assert (await states(runtime))["at_warehouse"] == 1
    [res] = await op.retry(runtime.store, failed[0].order_id)
    assert res.ok
    await runtime.run_once(service="order_delivery")
    assert await states(runtime) == {"at_warehouse": 2}


async def test_transient_errors_are_retried_later_with_backoff(flow, runtime):
    from connector.pipeline.orders import evaluate_orders

    flow.uc.queue("DFLT", orders(1))
    await runtime.run_once(service="order_download")
    await evaluate_orders(runtime.contexts["acme"])  # ready, not yet sent
    # A 5xx on a create is in doubt (it may have happened); a refused connection is the
    # transient case: nothing reached the warehouse.
    flow.sb_server.stop()
    r = await runtime.run_service("acme", "order_delivery")
    [row] = await runtime.store.orders.listing()
    assert row.state == "ready" and row.attempts == 1 and "cannot connect" in row.last_error
    assert row.next_attempt_at is not None and not r.ok and "every create" in r.error


async def test_a_warehouse_that_keeps_failing_opens_the_circuit_instead_of_burning_attempts(flow, runtime):
    from connector.pipeline.orders import evaluate_orders

    flow.uc.queue("DFLT", orders(3))
    await runtime.run_once(service="order_download")
    await evaluate_orders(runtime.contexts["acme"])
    flow.sb_server.stop()
    for _ in range(3):
        for r in await runtime.store.orders.listing():  # make them due again at once
            await runtime.store.orders.move(Move(r.id, "ready", ("ready",), "", dict(next_attempt_at=None)), actor=Actor.order_delivery)
        assert not (await runtime.run_service("acme", "order_delivery")).ok
    skipped = await runtime.run_service("acme", "order_delivery")
    assert skipped.stopped_because.startswith("circuit open until")
    assert all(r.attempts <= 3 for r in await runtime.store.orders.listing())


async def test_bad_warehouse_credentials_pause_only_that_merchant(tmp_path):
    from tests.support.flow import Flow

    f = Flow(tmp_path, merchants=("acme", "globex"))
    try:
        f.overrides["globex"] = {"warehouse": {"token": "wrong-token"}}
        rt = await f.runtime()
        try:
            f.uc.queue("DFLT", orders(2))
            await rt.run_once(merchant="acme", service="order_download")
            f.uc.queue("GLOBEX", orders(2, start=3))
            await rt.run_once(merchant="globex", service="order_download")
            results = await rt.run_once(service="order_delivery")
            by = {r.merchant: r for r in results}
            assert by["acme"].ok and by["globex"].outcome == "paused" and "401" in by["globex"].error
            assert (await rt.store.orders.counts_by_state("acme")) == {("acme", "at_warehouse"): 2}
            globex = await rt.store.orders.listing(merchant="globex")
            assert {r.state for r in globex} == {"received"} and all(r.attempts == 0 for r in globex)  # nothing spent
            run = [x for x in await rt.store.runs.listing("globex") if x.service == "order_delivery"][0]
            assert run.paused_until is not None and "401" in run.pause_reason
            skipped = await rt.run_service("globex", "order_delivery")
            assert skipped.stopped_because.startswith("paused until")
        finally:
            await rt.aclose()
    finally:
        f.close()


async def test_a_pass_another_replica_holds_is_skipped_and_a_working_pass_closes_its_alerts(flow, runtime):
    from connector.clock import utcnow

    # Another replica holds the delivery lease: this process skips the pass and says why.
    assert await runtime.store.runs.begin_pass("acme", "order_delivery", "replica-2", 300) is None
    skipped = await runtime.run_service("acme", "order_delivery")
    assert skipped.outcome == "skipped" and skipped.stopped_because == "running on another replica"
    [run] = [x for x in await runtime.store.runs.listing("acme") if x.service == "order_delivery"]
    assert run.lease_owner == "replica-2" and run.last_outcome == ""  # nothing recorded as done
    await runtime.store.runs.release("acme", "order_delivery", "replica-2")
    # Its pass works again: the configuration and failure alerts of that service close, others stay.
    await runtime.store.alerts.raise_many([("acme", "configuration", "order_delivery", "paused: 401"),
                                           ("acme", "configuration", "order_download", "paused: 401")], now=utcnow())
    assert (await runtime.run_service("acme", "order_delivery")).outcome == "done"
    assert [(a.category, a.key) for a in await runtime.store.alerts.open("acme")] == [("configuration", "order_download")]
    [run] = [x for x in await runtime.store.runs.listing("acme") if x.service == "order_delivery"]
    assert (run.last_outcome, run.lease_owner) == ("done", "")  # the lease let go in the same write


async def test_an_idle_delivery_pass_is_one_statement_and_honours_its_pause(flow, runtime):
    from sqlalchemy import event

    from connector.clock import utcnow

    assert (await runtime.run_service("acme", "order_delivery")).outcome == "done"  # the first pass makes its row
    # Another service's pause is not delivery's work: still the idle path (one UPDATE).
    await runtime.store.alerts.raise_many([("acme", "configuration", "order_download", "download paused: 401")], now=utcnow())
    statements: list[str] = []
    event.listen(runtime.store.backend.engine.sync_engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    report = await runtime.run_service("acme", "order_delivery")
    assert (report.outcome, report.counts) == ("done", "nothing to do")
    statements = [x for x in statements if not x.startswith("BEGIN")]  # SQLite's BEGIN IMMEDIATE is a statement
    assert len(statements) == 1 and statements[0].startswith("UPDATE service_runs"), statements
    # Paused, with nothing to do: skipped with the pause's reason, nothing written.
    until = runtime.clock.now() + timedelta(minutes=5)
    await runtime.store.runs.pause("acme", "order_delivery", until, "bad key")
    [before] = [r for r in await runtime.store.runs.listing("acme") if r.service == "order_delivery"]
    skipped = await runtime.run_service("acme", "order_delivery")
    assert skipped.outcome == "skipped" and skipped.stopped_because == f"paused until {until:%H:%M:%S}Z: bad key"
    [after] = [r for r in await runtime.store.runs.listing("acme") if r.service == "order_delivery"]
    assert (after.last_started_at, after.paused_until) == (before.last_started_at, before.paused_until)
    # A forced pass (run --once) that works ends the pause.
    assert (await runtime.run_service("acme", "order_delivery", honour_pause=False)).outcome == "done"
    [forced] = [r for r in await runtime.store.runs.listing("acme") if r.service == "order_delivery"]
    assert forced.paused_until is None and forced.last_outcome == "done"
    assert [(a.category, a.key) for a in await runtime.store.alerts.open("acme")] == [("configuration", "order_download")]


async def test_rate_limited_warehouse_reschedules_without_spending_attempts(flow, runtime):
    flow.uc.queue("DFLT", orders(2))
    await runtime.run_once(service="order_download")
    flow.sb.faults.update({"retry_after_s": 30})
    flow.sb.faults.script = [{"method": "POST", "path": "/2026-01/order", "status": 429}]
    r = (await runtime.run_once(service="order_delivery"))[0]
    assert r.outcome == "throttled" and r.stopped_because.startswith("rate limited") and r.resumes_at is not None
    rows = await runtime.store.orders.listing()
    waiting = [x for x in rows if x.state == "ready"]
    assert waiting and all(x.attempts == 0 for x in waiting)


async def test_status_counts_and_timeline_are_recorded(flow, runtime):
    flow.uc.queue("DFLT", orders(2) + [make_order("DEMO-0009", test_order=True)])
    flow.overrides["acme"] = {}
    await runtime.run_once()
    [row] = await runtime.store.orders.find("DEMO-0001")
    steps = [(e.from_state, e.to_state) for e in await runtime.store.orders.timeline(row.id)]
    assert steps[:4] == [("", "received"), ("received", "ready"), ("ready", "submitting"), ("submitting", "at_warehouse")]
    runs = {r.service: r for r in await runtime.store.runs.listing("acme")}
    assert set(runs) == {"order_download", "order_delivery", "order_changes", "shipment_upload", "ledger_consume", "inventory_upload"}
    # A service this merchant does not use is recorded as disabled, with why; the others succeeded.
    assert runs["ledger_consume"].last_success_at is None and "ledger" in runs["ledger_consume"].note
    assert all(r.last_success_at is not None for name, r in runs.items() if name != "ledger_consume")


async def test_orders_claimed_but_not_sent_when_a_pass_stops_are_ready_again_without_a_spent_attempt(flow, runtime):
    # Delivery claims a step ahead of the window. With one create in flight and one waiting, a
    # 429 on the first stops the pass: the waiting order never had a call, so it is ready again,
    # nothing in doubt, no attempt spent.
    runtime.contexts["acme"].concurrency = 1
    flow.uc.queue("DFLT", orders(30))
    await runtime.run_once(service="order_download")
    flow.sb.faults.update({"retry_after_s": 30})
    flow.sb.faults.script = [{"method": "POST", "path": "/2026-01/order", "status": 429}]
    r = (await runtime.run_once(service="order_delivery"))[0]
    assert r.outcome == "throttled"
    rows = await runtime.store.orders.listing(limit=100)
    states = {x.state for x in rows}
    assert states <= {"at_warehouse", "ready"}, states  # nothing left submitting or in doubt
    created = [x for x in rows if x.state == "at_warehouse"]
    assert created == [] and flow.sb.orders == {}
    ready = [x for x in rows if x.state == "ready"]
    assert len(ready) == 30 - len(created) and all(x.attempts == 0 for x in ready)
    reasons = [e.reason for x in ready for e in await runtime.store.orders.timeline(x.id) if e.from_state == "submitting"]
    assert reasons and all("rate limit" in why or "not sent" in why for why in reasons), reasons
    assert any("not sent" in why for why in reasons), reasons
