"""What the connector says is true: a pass reports what it did and why it stopped; an interrupted
pass is not a success; a database fault is one clear line and heals; an alert's cause going away
closes it; a corrected copy from UltraCart replaces the held one."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3

import pytest
from structlog.testing import capture_logs

from connector.lifecycle import Actor
from connector.pipeline.orders import evaluate_orders
from connector.sandbox.samples import make_order
from connector.store.engine import make_engine
from tests.support.warehouse import orders

pytestmark = pytest.mark.asyncio


async def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_throttled_pass_reports_what_it_did_why_it_stopped_and_when_it_resumes(flow, runtime):
    flow.uc.queue("DFLT", orders(30))
    await runtime.run_once(service="order_download")
    await evaluate_orders(runtime.contexts["acme"])
    flow.sb.faults.update({"rate_limit_per_minute": 6, "retry_after_s": 30})  # the vendor's own budget, spent after 6 calls
    r = await runtime.run_service("acme", "order_delivery")
    assert r.outcome == "throttled" and r.did["created"] >= 1, r
    assert "rate limited by shipbob" in r.stopped_because and r.resumes_at is not None
    assert r.line().startswith("throttled: ") and f"created {r.did['created']}" in r.line() and "resumes at" in r.line()
    [run] = [x for x in await runtime.store.runs.listing("acme") if x.service == "order_delivery"]
    assert (run.last_outcome, run.summary["created"], run.last_success_at) == ("throttled", r.did["created"], None)
    assert run.stopped_because == r.stopped_because and run.resumes_at == r.resumes_at
    left = [o for o in await runtime.store.orders.listing() if o.state == "ready"]
    assert left and all(o.attempts == 0 for o in left), "a rate limit spends no attempts"


async def test_a_stop_finishes_the_creates_in_hand_and_records_the_pass_as_interrupted(flow, runtime):
    flow.uc.queue("DFLT", orders(20))
    await runtime.run_once(service="order_download")
    await evaluate_orders(runtime.contexts["acme"])
    flow.sb.faults.update({"latency_ms": 300})
    running = asyncio.create_task(runtime.run_service("acme", "order_delivery"))
    await wait_for(lambda: flow.sb.requests.get("POST /order", 0) >= 1)
    runtime.stopping.set()  # SIGTERM
    r = await running
    assert r.outcome == "interrupted" and "stopping" in r.stopped_because
    states = {o.state for o in await runtime.store.orders.listing()}
    assert "submitting" not in states and "in_doubt" not in states, "no call in hand was abandoned"
    created = sum(1 for o in await runtime.store.orders.listing() if o.state == "at_warehouse")
    assert created == r.did["created"] == flow.kit.created() and created < 20
    [run] = [x for x in await runtime.store.runs.listing("acme") if x.service == "order_delivery"]
    assert run.last_outcome == "interrupted" and run.last_success_at is None


async def test_a_cancelled_pass_is_recorded_as_interrupted_not_as_a_success(flow, runtime):
    flow.uc.queue("DFLT", orders(5))
    flow.uc.faults.update({"latency_ms": 2000})
    task = asyncio.create_task(runtime.run_service("acme", "order_download"))
    await wait_for(lambda: sum(flow.uc.requests.values()) >= 1 or task.done())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [run] = [x for x in await runtime.store.runs.listing("acme") if x.service == "order_download"]
    assert run.last_outcome == "interrupted" and run.last_success_at is None


@pytest.mark.parametrize("flow", ["sqlite"], indirect=True)
async def test_a_deleted_database_file_stops_the_passes_with_one_line_and_nothing_is_acknowledged(flow, runtime, tmp_path):
    db = flow.tmp / "connector.db"
    backup = tmp_path / "backup.db"
    await runtime.store.probe_write()
    with sqlite3.connect(db) as c:  # an operator's backup: everything in the main file
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(db, backup)
    for f in flow.tmp.glob("connector.db*"):
        if not f.name.endswith(".lock"):
            f.unlink()
    flow.uc.queue("DFLT", orders(3))
    with capture_logs() as logs:
        r = await runtime.run_service("acme", "order_download")
    assert r.outcome == "skipped" and "deleted or replaced" in r.stopped_because
    assert flow.uc.acknowledged == [], "nothing committed to a deleted file may be acknowledged"
    assert not db.exists(), "no new, empty database is created under a running daemon"
    assert not any("exc_info" in e or "exception" in e for e in logs)
    assert runtime.health.database is not None
    # The operator restores the file: the next pass picks it up and works.
    shutil.copy(backup, db)
    r = await runtime.run_service("acme", "order_download")
    assert r.outcome == "done" and r.did["new"] == 3 and runtime.health.database is None


@pytest.mark.parametrize("flow", ["sqlite"], indirect=True)
async def test_a_database_that_refuses_writes_is_reported_and_recovered_from(flow, runtime):
    db = runtime.store.backend.db
    good = db.engine
    db.engine = make_engine(f"sqlite:///file:{flow.tmp / 'connector.db'}?mode=ro&uri=true")  # as a read-only or full disk would
    flow.uc.queue("DFLT", orders(2))
    try:
        with capture_logs() as logs:
            first = await runtime.run_service("acme", "order_download")
            second = await runtime.run_service("acme", "order_download")
        assert first.outcome in ("failed", "skipped") and "readonly" in (first.error + first.stopped_because)
        assert second.outcome == "skipped" and second.stopped_because.startswith("database unavailable")
        faults = [e for e in logs if e["event"].startswith("database fault")]
        assert len(faults) == 1, "one line for the fault, not one traceback per pass"
        assert flow.uc.acknowledged == []
    finally:
        await db.engine.dispose()
        db.engine = good
    r = await runtime.run_service("acme", "order_download")
    assert r.outcome == "done" and r.did["new"] == 2 and runtime.health.database is None


async def test_a_hold_alert_closes_when_no_order_has_its_cause_any_more(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("MYSTERY-SKU", 1)]), make_order("DEMO-0002", items=[("MYSTERY-SKU", 2)])])
    await runtime.run_once(service="order_download")
    await runtime.run_service("acme", "order_delivery")
    [alert] = await runtime.store.alerts.open("acme", "unknown_sku")
    assert alert.key == "MYSTERY-SKU"
    from connector import operator as op

    await op.skip(runtime.store, "DEMO-0001", reason="duplicate")
    await runtime.run_service("acme", "order_delivery")
    assert len(await runtime.store.alerts.open("acme", "unknown_sku")) == 1, "DEMO-0002 still has the cause"
    await op.skip(runtime.store, "DEMO-0002", reason="sent by hand")
    await runtime.run_service("acme", "order_delivery")
    assert await runtime.store.alerts.open("acme", "unknown_sku") == []
    [closed] = await runtime.store.alerts.listing("acme", "resolved")
    assert closed.key == "MYSTERY-SKU"


async def test_a_corrected_copy_from_ultracart_replaces_the_held_one_and_flows(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-0028", address={"address1": "", "city": ""})])
    await runtime.run_once(service="order_download")
    await runtime.run_service("acme", "order_delivery")
    [held] = await runtime.store.orders.find("DEMO-0028")
    assert held.state == "held" and held.hold_kind == "missing_address"
    assert [a.key for a in await runtime.store.alerts.open("acme", "missing_address")] == ["DEMO-0028"]
    # The merchant corrects the address in UltraCart and the order is transmitted again.
    flow.uc.queue("DFLT", [make_order("DEMO-0028", address={"address1": "1 Main St", "city": "Springfield"})])
    r = await runtime.run_service("acme", "order_download")
    assert r.did["changed"] == 1
    await runtime.run_service("acme", "order_delivery")
    [row] = await runtime.store.orders.find("DEMO-0028")
    assert row.state == "at_warehouse"
    why = [e.reason for e in await runtime.store.orders.timeline(row.id) if e.to_state == "received" and e.from_state == "held"]
    assert why and "address1 '(blank)' -> '1 Main St'" in why[0] and "city" in why[0]
    assert await runtime.store.alerts.open("acme", "missing_address") == []
    # A copy that did not change is a repeat: nothing happens.
    flow.uc.queue("DFLT", [make_order("DEMO-0028", address={"address1": "1 Main St", "city": "Springfield"})])
    assert (await runtime.run_service("acme", "order_download")).did["changed"] == 0


async def test_a_copy_that_arrives_after_the_order_reached_the_warehouse_changes_nothing_there(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-0001")])
    await runtime.run_once(service="order_download")
    await runtime.run_service("acme", "order_delivery")
    flow.uc.queue("DFLT", [make_order("DEMO-0001", address={"address1": "2 Other Rd"})])
    await runtime.run_service("acme", "order_download")
    [row] = await runtime.store.orders.find("DEMO-0001")
    assert row.state == "at_warehouse" and flow.kit.created() == 1
    assert row.order.ship_to.address1 != "2 Other Rd"


async def test_an_illegal_move_by_code_raises_instead_of_doing_nothing(runtime, flow):
    from connector.lifecycle import IllegalMove
    from connector.store import Move

    flow.uc.queue("DFLT", [make_order("DEMO-0001")])
    await runtime.run_once(service="order_download")
    [row] = await runtime.store.orders.find("DEMO-0001")
    with pytest.raises(IllegalMove):
        await runtime.store.orders.move(Move(row.id, "confirmed", ("received",), "nope"), actor=Actor.operator)
