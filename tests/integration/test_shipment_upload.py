"""Shipment upload against the sandboxes over real HTTP: ShipBob shipments -> tracking posted to
UltraCart (once, batched, retried) -> acknowledged at ShipBob."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from connector import operator as op
from connector.domain import WarehouseOrder
from connector.pipeline.orders import evaluate_orders
from connector.sandbox.samples import make_order
from connector.clock import utcnow
from connector.lifecycle import Actor
from connector.store import Move

pytestmark = pytest.mark.asyncio

POST_PATH = "/fulfillment/distribution_centers/DFLT/shipments"
SPLIT_ITEMS = [("BONE-5LB", 1), ("TREAT", 2)]  # two lines: a split plan ships one per parcel


def orders(n: int, start: int = 1, **kw):
    return [make_order(f"DEMO-{i:04d}", **kw) for i in range(start, start + n)]


async def at_warehouse(flow, rt, queued: list[dict]) -> None:
    """Orders queued in UltraCart, downloaded and created in ShipBob."""
    flow.uc.queue("DFLT", queued)
    for service in ("order_download", "order_delivery"):
        [r] = await rt.run_once(service=service)
        assert r.ok and not r.error, r
    assert all(row.state == "at_warehouse" for row in await rt.store.orders.listing(limit=10_000))


async def upload(rt):
    [r] = await rt.run_once(service="shipment_upload")
    return r


async def state(rt, order_id: str) -> str:
    [row] = await rt.store.orders.find(order_id)
    return row.state


def labels(flow, reference: str) -> list[dict]:
    with flow.sb._lock:
        return [dict(s) for s in flow.sb.orders[reference]["shipments"]]


def set_parcel(flow, reference: str, index: int, **fields) -> None:
    """Change one sandbox parcel (the sandbox ships every parcel of an order at once)."""
    with flow.sb._lock:
        flow.sb.orders[reference]["shipments"][index].update(fields)


def records(flow, order_id: str) -> list[dict]:
    """Every shipment record UltraCart received for an order, over all posts."""
    return [s for post in flow.uc.shipment_posts for s in post if s["order_id"] == order_id]


def later(rt, minutes: float = 5) -> None:
    """Move the service's clock past any retry backoff (instead of sleeping through it)."""
    rt.clock.offset = max(rt.clock.offset, minutes * 60)


async def test_a_shipped_order_is_confirmed_acknowledged_and_not_read_again(flow, runtime):
    await at_warehouse(flow, runtime, orders(1))
    [parcel] = flow.sb.ship_all()
    tracking = parcel["tracking"]["tracking_number"]
    r = await upload(runtime)
    assert r.ok and r.did["shipments_new"] == 1 and r.did["orders_confirmed"] == 1
    assert await state(runtime, "DEMO-0001") == "confirmed"
    assert flow.uc.tracking("DEMO-0001") == [tracking]
    [record] = records(flow, "DEMO-0001")
    assert record["shipping_cost"] == 7.5  # ShipBob's invoice amount
    [row] = await runtime.store.orders.find("DEMO-0001")
    steps = [(e.from_state, e.to_state) for e in await runtime.store.orders.timeline(row.id)]
    assert steps[-2:] == [("at_warehouse", "shipped"), ("shipped", "confirmed")]
    # ShipBob is told the tracking reached the cart, and only after UltraCart accepted it.
    assert flow.sb.tracking_uploaded() == [parcel["id"]]
    calls = [(e.vendor, e.method, e.url) for e in await runtime.store.events.listing(merchant="acme", limit=1000)]
    posted = next(i for i, c in enumerate(calls) if c[1] == "POST" and c[2].endswith("/shipments"))
    flagged = next(i for i, c in enumerate(calls) if "batchUpdateTrackingUpload" in c[2])
    assert posted < flagged
    # The next pass reads nothing (ShipBob no longer returns it) and posts nothing.
    again = await upload(runtime)
    assert again.did["shipments_read"] == 0 and again.did["tracking_posts"] == 0
    assert len(flow.uc.shipment_posts) == 1 and flow.uc.requests["shipments"] == 1


@pytest.mark.parametrize("mode", ["when_complete", "each_shipment"])
async def test_a_split_order_is_partially_shipped_then_confirmed(flow, mode):
    flow.overrides["acme"] = {"shipments": {"post_tracking": mode}}
    rt = await flow.runtime()
    try:
        await at_warehouse(flow, rt, [make_order("DEMO-0001", items=SPLIT_ITEMS)])
        flow.sb.plan("acme-DEMO-0001", split=True)
        first, second = flow.sb.ship("acme-DEMO-0001")
        set_parcel(flow, "acme-DEMO-0001", 1, status="Processing")  # the second parcel is still in the building
        t1, t2 = first["tracking"]["tracking_number"], second["tracking"]["tracking_number"]

        await upload(rt)
        assert await state(rt, "DEMO-0001") == "partially_shipped"
        if mode == "when_complete":
            assert records(flow, "DEMO-0001") == [] and flow.sb.tracking_uploaded() == []
        else:
            assert [r["tracking_numbers"] for r in records(flow, "DEMO-0001")] == [[t1]]
            assert flow.sb.tracking_uploaded() == [first["id"]]

        set_parcel(flow, "acme-DEMO-0001", 1, status="Completed")
        r = await upload(rt)
        assert r.did["orders_confirmed"] == 1
        assert await state(rt, "DEMO-0001") == "confirmed"
        sent = records(flow, "DEMO-0001")
        if mode == "when_complete":
            assert len(sent) == 1  # one post for the order, with both parcels
            assert sent[0]["tracking_numbers"] == [t1, t2] and sent[0]["shipping_cost"] == 15.0
        else:
            assert [s["tracking_numbers"] for s in sent] == [[t1], [t2]]
            assert [s["shipping_cost"] for s in sent] == [7.5, 7.5]
        assert flow.sb.tracking_uploaded() == sorted([first["id"], second["id"]])
        await upload(rt)
        assert len(records(flow, "DEMO-0001")) == len(sent)
    finally:
        await rt.aclose()


async def test_split_parcels_read_together_make_one_post_when_complete(flow, runtime):
    await at_warehouse(flow, runtime, [make_order("DEMO-0001", items=SPLIT_ITEMS), make_order("DEMO-0002")])
    flow.sb.plan("acme-DEMO-0001", split=True)
    shipped = flow.sb.ship_all()
    assert len(shipped) == 3
    await upload(runtime)
    [record] = records(flow, "DEMO-0001")
    assert record["tracking_numbers"] == [s["tracking"]["tracking_number"] for s in shipped[:2]]
    assert record["shipping_cost"] == 15.0
    assert len(flow.uc.shipment_posts) == 1  # both orders in one call
    assert await state(runtime, "DEMO-0001") == await state(runtime, "DEMO-0002") == "confirmed"


async def test_a_voided_label_is_never_posted(flow, runtime):
    await at_warehouse(flow, runtime, orders(1))
    flow.sb.plan("acme-DEMO-0001", void_first=True)
    voided, good = flow.sb.ship("acme-DEMO-0001")
    assert voided["status"] == "Cancelled" and voided["tracking"]["tracking_number"]
    r = await upload(runtime)
    assert r.did["voided"] == 1
    assert flow.uc.tracking("DEMO-0001") == [good["tracking"]["tracking_number"]]
    assert await state(runtime, "DEMO-0001") == "confirmed"
    [ignored] = await runtime.store.shipments.listing("acme", state="ignored")
    assert ignored.shipment_id == str(voided["id"]) and ignored.reason == "voided label"
    await upload(runtime)
    assert flow.uc.tracking("DEMO-0001") == [good["tracking"]["tracking_number"]]
    assert voided["tracking"]["tracking_number"] not in json.dumps(flow.uc.shipment_posts)


async def test_blank_tracking_numbers_are_dropped_and_a_parcel_without_one_waits(flow, runtime):
    await at_warehouse(flow, runtime, orders(2))
    flow.sb.plan("acme-DEMO-0001", tracking=" 1ZAAA , ,1ZAAA;  ")
    flow.sb.plan("acme-DEMO-0002", tracking="   ")
    flow.sb.ship_all()
    r = await upload(runtime)
    assert r.did["no_tracking"] == 1
    assert flow.uc.tracking("DEMO-0001") == ["1ZAAA"]
    assert records(flow, "DEMO-0002") == []
    assert await state(runtime, "DEMO-0002") == "at_warehouse"
    [waiting] = await runtime.store.shipments.listing("acme", state="waiting")
    assert waiting.reference == "acme-DEMO-0002"
    # ShipBob fills the tracking number in later: now it goes.
    parcel = labels(flow, "acme-DEMO-0002")[0]
    set_parcel(flow, "acme-DEMO-0002", 0, tracking=dict(parcel["tracking"], tracking_number="1ZLATE"))
    await upload(runtime)
    assert flow.uc.tracking("DEMO-0002") == ["1ZLATE"]
    assert await state(runtime, "DEMO-0002") == "confirmed"


async def test_blank_tracking_is_posted_when_allowed(flow):
    flow.overrides["acme"] = {"shipments": {"allow_blank_tracking": True}}
    rt = await flow.runtime()
    try:
        await at_warehouse(flow, rt, orders(1))
        flow.sb.plan("acme-DEMO-0001", tracking=" ")
        flow.sb.ship_all()
        await upload(rt)
        [record] = records(flow, "DEMO-0001")
        assert record["tracking_numbers"] == []
        assert await state(rt, "DEMO-0001") == "confirmed"
    finally:
        await rt.aclose()


async def test_250_shipped_orders_go_in_three_posts_and_a_second_run_posts_nothing(flow):
    flow.overrides["acme"] = {"warehouse": {"rate_per_minute": 100_000}}
    rt = await flow.runtime()
    try:
        await at_warehouse(flow, rt, orders(250))
        assert len(flow.sb.ship_all()) == 250
        r = await upload(rt)
        assert r.ok and r.did["orders_confirmed"] == 250
        assert [len(p) for p in flow.uc.shipment_posts] == [100, 100, 50]
        assert len({s["order_id"] for p in flow.uc.shipment_posts for s in p}) == 250
        assert len(flow.sb.tracking_uploaded()) == 250
        assert flow.sb.requests["POST /shipment:batchUpdateTrackingUpload"] == 3
        again = await upload(rt)
        assert again.did["shipments_read"] == 0 and again.did["tracking_posts"] == 0
        assert flow.uc.requests["shipments"] == 3
        assert (await rt.store.orders.counts_by_state("acme")) == {("acme", "confirmed"): 250}
    finally:
        await rt.aclose()


async def test_a_shipment_for_an_unknown_order_is_recorded_as_orphan_not_posted(flow, runtime):
    await at_warehouse(flow, runtime, orders(1))
    body = {"reference_id": "acme-DEMO-0999", "shipping_method": "Standard", "type": "DTC",
            "recipient": {"name": "Walk In", "address": {"address1": "1 Main St", "city": "Cicero", "country": "US"}},
            "products": [{"reference_id": "TREAT", "name": "Treat", "quantity": 1}]}
    headers = {"Authorization": f"Bearer {flow.sb_token}", "shipbob_channel_id": "1"}
    async with httpx.AsyncClient(base_url=flow.sb_server.url) as client:
        reply = await client.post("/2026-01/order", json=body, headers=headers)
    assert reply.status_code == 201
    flow.sb.ship_all()
    r = await upload(runtime)
    assert r.did["orphans"] == 1
    [orphan] = await runtime.store.shipments.listing("acme", state="orphan")
    assert orphan.reference == "acme-DEMO-0999" and orphan.order_pk is None and "acme-DEMO-0999" in orphan.reason
    assert [s["order_id"] for p in flow.uc.shipment_posts for s in p] == ["DEMO-0001"]
    assert await runtime.store.orders.find("DEMO-0999") == []
    await upload(runtime)
    assert flow.uc.requests["shipments"] == 1


async def test_a_throttled_post_stays_pending_until_its_backoff_then_goes(flow, runtime):
    await at_warehouse(flow, runtime, orders(2))
    flow.sb.ship_all()
    flow.uc.faults.script = [{"method": "POST", "path": POST_PATH, "status": 429}]
    started = utcnow()
    r = await upload(runtime)
    assert r.outcome == "throttled", r
    tasks = await runtime.store.tasks.listing("acme", "post_tracking")
    assert len(tasks) == 2 and {t.state for t in tasks} == {"pending"}
    assert all(t.next_attempt_at is not None and t.next_attempt_at.replace(tzinfo=started.tzinfo) > started for t in tasks)
    assert all(t.last_error for t in tasks)
    assert {t.attempts for t in tasks} == {0}  # being throttled costs no attempt
    assert await state(runtime, "DEMO-0001") == "shipped"  # not confirmed without UltraCart's 204
    assert flow.uc.shipment_posts == [] and flow.sb.tracking_uploaded() == []

    await upload(runtime)  # too early: the backoff holds, even though the shipments are read again
    assert flow.uc.shipment_posts == []
    assert {t.state for t in await runtime.store.tasks.listing("acme", "post_tracking")} == {"pending"}

    later(runtime)
    r = await upload(runtime)
    assert r.ok and not r.error and r.did["orders_confirmed"] == 2
    assert [len(p) for p in flow.uc.shipment_posts] == [2]
    assert len(flow.sb.tracking_uploaded()) == 2
    assert {t.state for t in await runtime.store.tasks.listing("acme", "post_tracking")} == {"done"}


@pytest.mark.parametrize("after", [False, True], ids=["lost-before", "lost-after"])
async def test_a_post_with_a_lost_answer_is_checked_before_it_is_made_again(flow, runtime, after):
    """A 5xx on a tracking post is in doubt (UltraCart has no idempotency key): it is not repeated
    in the call; the next pass reads the orders and posts only what UltraCart does not have."""
    await at_warehouse(flow, runtime, orders(2))
    flow.sb.ship_all()
    flow.uc.faults.script = [{"method": "POST", "path": POST_PATH, "status": 500, "after": after}]
    r = await upload(runtime)
    assert not r.ok and "500" in r.error
    tasks = await runtime.store.tasks.listing("acme", "post_tracking")
    assert {t.state for t in tasks} == {"pending"} and {t.attempts for t in tasks} == {1}
    assert [len(p) for p in flow.uc.shipment_posts] == ([2] if after else [])
    assert await state(runtime, "DEMO-0001") == "shipped"

    r = await upload(runtime)
    assert r.ok and r.did["orders_confirmed"] == 2
    assert r.did["tracking_found_posted"] == (2 if after else 0)
    assert [len(p) for p in flow.uc.shipment_posts] == [2], "posted exactly once"
    assert {t.state for t in await runtime.store.tasks.listing("acme", "post_tracking")} == {"done"}


async def test_a_rejected_record_fails_alone_and_the_others_go(flow, runtime):
    await at_warehouse(flow, runtime, orders(3))
    flow.sb.ship_all()
    # The batch is refused, then (posted one by one) only the first record is.
    flow.uc.faults.script = [{"method": "POST", "path": POST_PATH, "status": 400}] * 2
    r = await upload(runtime)
    assert r.ok, r
    tasks = await runtime.store.tasks.listing("acme", "post_tracking")
    [failed] = [t for t in tasks if t.state == "failed"]
    assert failed.last_error.startswith("ultracart 400: sandbox: injected fault")  # the vendor's message
    bad = json.loads(failed.payload)["body"]["order_id"]
    good = sorted({"DEMO-0001", "DEMO-0002", "DEMO-0003"} - {bad})
    assert sorted(s["order_id"] for p in flow.uc.shipment_posts for s in p) == good
    assert [await state(runtime, o) for o in good] == ["confirmed", "confirmed"]
    assert await state(runtime, bad) == "shipped"
    # A failed post stays failed (listed for the operator); later passes do not resend it.
    later(runtime)
    await upload(runtime)
    assert [t.state for t in await runtime.store.tasks.listing("acme", "post_tracking") if t.id == failed.id] == ["failed"]
    assert records(flow, bad) == []
    # The operator fixes the cause in UltraCart and resends.
    [res] = await op.resend_tracking(runtime.store, bad)
    assert res.ok, res
    await upload(runtime)
    assert len(records(flow, bad)) == 1 and await state(runtime, bad) == "confirmed"


async def test_a_permanent_failure_is_kept_when_a_later_record_hits_a_transient_error(flow, runtime):
    await at_warehouse(flow, runtime, orders(3))
    flow.sb.ship_all()
    flow.uc.faults.script = [{"method": "POST", "path": POST_PATH, "status": 400}] * 2 + \
                            [{"method": "POST", "path": POST_PATH, "status": 503}]
    await upload(runtime)
    by_order = {json.loads(t.payload)["body"]["order_id"]: t for t in await runtime.store.tasks.listing("acme", "post_tracking")}
    assert by_order["DEMO-0001"].state == "failed"
    assert by_order["DEMO-0002"].state == by_order["DEMO-0003"].state == "pending"
    assert by_order["DEMO-0003"].attempts == 0  # never tried: its attempt is given back
    later(runtime)
    await upload(runtime)
    assert sorted(s["order_id"] for p in flow.uc.shipment_posts for s in p) == ["DEMO-0002", "DEMO-0003"]
    assert (await runtime.store.tasks.listing("acme", "post_tracking"))[0].state == "failed"


async def test_resend_tracking_posts_a_confirmed_order_again(flow, runtime):
    await at_warehouse(flow, runtime, orders(1))
    [parcel] = flow.sb.ship_all()
    await upload(runtime)
    [res] = await op.resend_tracking(runtime.store, "DEMO-0001")
    assert res.ok and res.message.startswith("queued")
    await upload(runtime)
    sent = records(flow, "DEMO-0001")
    assert [s["tracking_numbers"] for s in sent] == [[parcel["tracking"]["tracking_number"]]] * 2
    assert await state(runtime, "DEMO-0001") == "confirmed"
    await upload(runtime)
    assert len(records(flow, "DEMO-0001")) == 2


async def test_a_parcel_read_while_its_create_is_being_recorded_waits_for_the_order(flow, runtime):
    # Delivery and shipment upload run side by side in the daemon, and ShipBob may report a
    # parcel before delivery has recorded the create. Here the three steps of a send are done
    # by hand (claim, call, record) with a shipment pass between the call and the record.
    ctx = runtime.contexts["acme"]
    flow.uc.queue("DFLT", orders(1))
    await runtime.run_once(service="order_download")
    await evaluate_orders(ctx)
    [row] = await runtime.store.orders.claim_ready("acme", owner="test-worker", lease_seconds=60, limit=1)
    created = await ctx.warehouse.create_order(WarehouseOrder.model_validate_json(row.warehouse_json))
    [parcel] = flow.sb.ship_all()
    r = await upload(runtime)
    assert r.ok and records(flow, "DEMO-0001") == [] and await state(runtime, "DEMO-0001") == "submitting"
    [waiting] = await runtime.store.shipments.listing("acme", state="waiting")
    assert waiting.shipment_id == str(parcel["id"])
    await runtime.store.orders.move(Move(row.id, "at_warehouse", ("submitting",), "created",
                                         dict(warehouse_order_id=created.warehouse_order_id)), actor=Actor.order_delivery)
    await upload(runtime)
    assert await state(runtime, "DEMO-0001") == "confirmed"
    assert [r["tracking_numbers"] for r in records(flow, "DEMO-0001")] == [[parcel["tracking"]["tracking_number"]]]
