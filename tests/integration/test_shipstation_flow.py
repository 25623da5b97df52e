"""The whole flow with ShipStation v1 as the warehouse, over real HTTP: UltraCart sandbox ->
connector -> ShipStation sandbox -> tracking back to UltraCart; inventory switched off."""

from __future__ import annotations

import pytest

from connector.pipeline.inventory import NO_INVENTORY
from connector.sandbox.samples import make_order
from tests.support.warehouse import flow_fixture, lose_a_create_reply, orders, states

pytestmark = pytest.mark.asyncio


# Nothing split or voided unless a test plans it (the kit's demo default splits every 9th).
flow = flow_fixture(databases=("sqlite", "postgres"), warehouse="shipstation", split_every=0, void_every=0)


async def run(rt, service: str):
    [r] = await rt.run_once(service=service)
    return r


async def test_orders_reach_shipstation_exactly_once_and_a_second_run_creates_nothing(flow, runtime):
    ss = flow.kit.sandbox
    flow.uc.queue("DFLT", orders(6) + [make_order("DEMO-0007", ship_method="FedEx: 2Day")])
    for service in ("order_download", "order_delivery"):
        r = await run(runtime, service)
        assert r.ok and not r.error, r
    assert await states(runtime) == {"at_warehouse": 7}
    assert ss.create_count == 7 and ss.update_count == 0
    order = ss.order("acme-DEMO-0001")
    assert (order["orderNumber"], order["carrierCode"], order["serviceCode"]) == ("DEMO-0001", "stamps_com", "usps_priority_mail")
    assert order["requestedShippingService"] == "USPS: Priority Mail" and order["advancedOptions"]["storeId"] == 310001
    assert ss.order("acme-DEMO-0007")["serviceCode"] == "fedex_2day"
    # UltraCart sends some again (until acknowledged they come back): absorbed, nothing sent.
    flow.uc.queue("DFLT", orders(3))
    for service in ("order_download", "order_delivery"):
        await run(runtime, service)
    assert ss.create_count == 7 and ss.update_count == 0
    assert all(n == 1 for n in ss.create_attempts.values())
    assert await states(runtime) == {"at_warehouse": 7}


async def test_a_method_shipstation_lacks_is_held_until_it_is_connected(flow, runtime):
    flow.overrides["acme"] = {"ship_methods": {"UPS: Ground": "ups:ups_teleport"}}
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", [make_order("DEMO-0001", ship_method="UPS: Ground"), make_order("DEMO-0002")])
        await rt.run_once()
        [held] = await rt.store.orders.find("DEMO-0001")
        assert held.state == "held" and held.reason == "warehouse does not know ship method: ups:ups_teleport"
        assert flow.kit.sandbox.create_count == 1
    finally:
        await rt.aclose()
    flow.kit.sandbox.add_method("ups", "ups_teleport")  # the 3PL connects the service in ShipStation
    rt = await flow.runtime()  # a restart (or the catalog cache expiring) reads the carriers again
    try:
        await rt.run_once(service="order_delivery")
        [released] = await rt.store.orders.find("DEMO-0001")
        assert released.state == "at_warehouse"
        assert flow.kit.sandbox.order("acme-DEMO-0001")["serviceCode"] == "ups_teleport"
    finally:
        await rt.aclose()


@pytest.mark.parametrize("fault", [{"status": 500, "after": True}, {"status": "reset", "after": True}])
async def test_a_lost_create_reply_is_resolved_by_lookup_not_sent_twice(flow, runtime, fault):
    row = await lose_a_create_reply(flow, runtime, "/orders/createorder", fault)
    assert row.warehouse_order_id == str(flow.kit.sandbox.order(f"acme-{row.order_id}")["orderId"])


async def test_labels_become_tracking_at_ultracart_split_and_voided_included(flow, runtime):
    ss = flow.kit.sandbox
    two_lines = [("BONE-5LB", 1), ("TREAT", 2)]
    flow.uc.queue("DFLT", [make_order("DEMO-0001"), make_order("DEMO-0002", items=two_lines), make_order("DEMO-0003", items=two_lines)])
    for service in ("order_download", "order_delivery"):
        await run(runtime, service)
    ss.plan("acme-DEMO-0002", split=True)
    ss.plan("acme-DEMO-0003", void_first=True)
    labels = ss.ship_all()
    assert len(labels) == 5
    r = await run(runtime, "shipment_upload")
    assert r.ok and not r.error, r
    assert r.did["voided"] == 1 and r.did["orders_confirmed"] == 3
    assert await states(runtime) == {"confirmed": 3}
    by_order = {}
    for label in labels:
        by_order.setdefault(label["orderNumber"], []).append(label)
    assert flow.uc.tracking("DEMO-0001") == [by_order["DEMO-0001"][0]["trackingNumber"]]
    assert sorted(flow.uc.tracking("DEMO-0002")) == sorted(lb["trackingNumber"] for lb in by_order["DEMO-0002"])
    voided, live = by_order["DEMO-0003"]
    assert voided["voided"] and flow.uc.tracking("DEMO-0003") == [live["trackingNumber"]]
    # The next pass re-reads the same Pacific day and posts nothing again.
    again = await run(runtime, "shipment_upload")
    assert again.did["shipments_new"] == 0 and again.did["tracking_posts"] == 0
    assert sum(len(p) for p in flow.uc.shipment_posts) == 3


async def test_inventory_is_disabled_with_its_reason(flow, runtime):
    r = await run(runtime, "inventory_upload")
    assert r.ok and r.outcome == "disabled" and r.stopped_because == NO_INVENTORY
    [run_row] = [x for x in await runtime.store.runs.listing("acme") if x.service == "inventory_upload"]
    assert run_row.note == NO_INVENTORY
    assert flow.uc.inventory_posts == []


async def test_a_spent_key_budget_reschedules_delivery_without_spending_attempts(flow, runtime):
    ss = flow.kit.sandbox
    flow.uc.queue("DFLT", orders(4))
    await run(runtime, "order_download")
    # Another tool on the same key has left 5 calls in ShipStation's minute: the catalog read
    # (carriers + 3 service lists) and one lookup fit, then ShipStation says 0 remaining.
    ss.faults.update({"rate_limit_per_minute": 5, "retry_after_s": 30})
    r = await run(runtime, "order_delivery")
    assert r.outcome == "throttled", r
    rows = await runtime.store.orders.listing()
    assert all(x.attempts == 0 for x in rows) and {x.state for x in rows} <= {"ready", "received"}
    assert ss.create_count == 0
