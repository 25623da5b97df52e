"""The whole flow against UltraCart and Extensiv sandboxes over real HTTP: orders created in
Extensiv exactly once, lost replies resolved by reference lookup, parcels -> tracking confirmed at
UltraCart, stock per facility pushed to the store."""

from __future__ import annotations

import pytest

from tests.support.warehouse import deliver, flow_fixture, lose_a_create_reply, orders, states

pytestmark = pytest.mark.asyncio


# Plans are set per test (split, voided label), not every Nth order as in the demo.
flow = flow_fixture(warehouse="extensiv", split_every=0, void_every=0)


async def test_orders_are_created_once_and_a_second_run_creates_nothing(flow, runtime):
    flow.uc.queue("DFLT", orders(12, ship_method="FedEx: 2Day"))
    await deliver(runtime)
    assert await states(runtime) == {"at_warehouse": 12}
    assert flow.sb.create_count == 12 and set(flow.sb.create_attempts.values()) == {1}
    [order] = flow.sb.orders_with_reference("acme-DEMO-0001")
    assert order["RoutingInfo"]["Carrier"] == "FedEx" and order["RoutingInfo"]["Mode"] == "FedEx 2Day"
    assert order["ReadOnly"]["CustomerIdentifier"]["Id"] == flow.sb.customer_id and order["PoNum"] == "DEMO-0001"
    # UltraCart sends some again (as it does until acknowledged); delivery runs again.
    flow.uc.queue("DFLT", orders(5))
    await deliver(runtime)
    [r] = await runtime.run_once(service="order_delivery")
    assert r.ok
    assert flow.sb.create_count == 12 and set(flow.sb.create_attempts.values()) == {1}
    assert await states(runtime) == {"at_warehouse": 12}
    assert flow.sb.requests["POST /AuthServer/api/Token"] == 1  # one token served every call


@pytest.mark.parametrize("fault", [{"status": 500, "after": True}, {"status": "reset", "after": True}])
async def test_a_lost_create_reply_is_found_by_reference_not_sent_twice(flow, runtime, fault):
    await lose_a_create_reply(flow, runtime, "/orders", fault)


async def test_parcels_become_tracking_confirmed_at_ultracart(flow, runtime):
    two_lines = [("BONE-5LB", 1), ("TREAT", 2)]
    flow.uc.queue("DFLT", orders(3, items=two_lines))
    await deliver(runtime)
    flow.sb.plan("acme-DEMO-0002", split=True)
    flow.sb.plan("acme-DEMO-0003", void_first=True)
    packages = flow.sb.ship_all()
    [r] = await runtime.run_once(service="shipment_upload")
    assert r.ok and r.did["shipments_new"] == 4 and r.did["orders_confirmed"] == 3, r
    assert await states(runtime) == {"confirmed": 3}
    live = {p["PackageId"]: p["TrackingNumber"] for p in packages if p["TrackingNumber"]}
    assert len(flow.uc.tracking("DEMO-0002")) == 2  # both parcels of the split order
    [voided] = [p for p in packages if not p["TrackingNumber"]]
    assert voided["PackageContents"] == []
    assert sorted(t for o in ("DEMO-0001", "DEMO-0002", "DEMO-0003") for t in flow.uc.tracking(o)) == sorted(live.values())
    # The next pass reads the same closed orders again (overlapping window) and posts nothing.
    [again] = await runtime.run_once(service="shipment_upload")
    assert again.ok and again.did["shipments_new"] == 0 and len(flow.uc.shipment_posts) == 1


async def test_stock_per_facility_is_pushed_to_the_store(flow, runtime):
    flow.sb.set_stock("BONE-5LB", 1, 7, on_hand=20)
    flow.sb.set_stock("BONE-5LB", 2, 5)
    flow.sb.set_stock("TREAT", 1, 9, on_hand=30)
    [r] = await runtime.run_once(service="inventory_upload")
    assert r.ok and not r.error, r
    # "Bone" sells BONE-5LB from both facilities (available, never on hand); the GIFT-SET kit
    # makes min(12 / 1, 9 / 2) = 4.
    assert flow.uc.inventory_levels() == {"Bone": 12, "GIFT-SET": 4}
    assert flow.sb.requests["GET /inventory/stocksummaries"] == 1
