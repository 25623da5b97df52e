"""The whole flow with ShipStation v2 as the warehouse, over real HTTP on loopback: UltraCart queue ->
pending ShipStation shipments exactly once -> labels -> tracking confirmed at UltraCart -> stock."""

from __future__ import annotations

import pytest

from connector.sandbox.samples import make_order
from tests.support.warehouse import deliver, flow_fixture, lose_a_create_reply, orders, states

pytestmark = pytest.mark.asyncio

SPLIT_ITEMS = [("BONE-5LB", 1), ("TREAT", 2)]  # two lines: Split Ship moves the second


flow = flow_fixture(warehouse="shipstation-v2", split_every=0, void_every=0)


def shipment_of(flow, reference: str) -> dict:
    return flow.sb.shipments[flow.sb.by_external[reference]]


async def test_orders_are_created_once_and_a_second_run_sends_nothing(flow, runtime):
    flow.uc.queue("DFLT", orders(8) + [make_order("DEMO-0009", ship_method="FedEx: 2Day"),
                                        make_order("DEMO-0010", items=[], kit={"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}})])
    await deliver(runtime)
    assert await states(runtime) == {"at_warehouse": 10}
    assert flow.sb.create_count == 10 and set(flow.kit.create_attempts().values()) == {1}
    first = shipment_of(flow, "acme-DEMO-0001")
    assert (first["carrier_id"], first["service_code"], first["shipment_status"]) == ("se-101", "usps_priority_mail", "pending")
    assert first["ship_from"]["city_locality"] == "Reno"  # the configured ship-from warehouse
    assert (shipment_of(flow, "acme-DEMO-0009")["carrier_id"], shipment_of(flow, "acme-DEMO-0009")["service_code"]) == ("se-103", "fedex_2day")
    assert [(i["sku"], i["quantity"]) for i in shipment_of(flow, "acme-DEMO-0010")["items"]] == [("BONE-5LB", 1), ("TREAT", 2)]
    # UltraCart sends some again (as it does until acknowledged); a second pass sends nothing.
    flow.uc.queue("DFLT", orders(3))
    await deliver(runtime)
    assert flow.uc.queued("DFLT") == []
    assert flow.sb.create_count == 10 and await states(runtime) == {"at_warehouse": 10}
    assert flow.sb.requests["POST /v2/shipments"] == 10


@pytest.mark.parametrize("fault", [{"status": 500, "after": True}, {"status": "reset", "after": True}])
async def test_a_create_whose_reply_is_lost_is_looked_up_not_sent_twice(flow, runtime, fault):
    row = await lose_a_create_reply(flow, runtime, "/v2/shipments", fault)
    assert row.warehouse_order_id == flow.sb.by_external[f"acme-{row.order_id}"]


async def test_labels_become_tracking_confirmed_at_ultracart(flow, runtime):
    flow.uc.queue("DFLT", [make_order("DEMO-0001", items=SPLIT_ITEMS), make_order("DEMO-0002"), make_order("DEMO-0003")])
    await deliver(runtime)
    flow.sb.plan("acme-DEMO-0001", split=True)
    flow.sb.plan("acme-DEMO-0002", void_first=True)
    labels = flow.sb.ship_all()
    assert len(labels) == 5  # two for the split order, a voided and a live one, one plain
    [r] = await runtime.run_once(service="shipment_upload")
    assert r.ok and not r.error, r
    assert r.did["voided"] == 1 and r.did["orders_confirmed"] == 3
    assert await states(runtime) == {"confirmed": 3}
    by_ref: dict[str, list[str]] = {}
    for lb in labels:  # the split-off shipment has its own generated external_shipment_id
        by_ref.setdefault(lb["external_shipment_id"], []).append(lb["tracking_number"])
    [child] = [s for s in flow.sb.shipments.values() if s.get("_child_of") == shipment_of(flow, "acme-DEMO-0001")["shipment_id"]]
    split_tracking = by_ref["acme-DEMO-0001"] + by_ref[child["external_shipment_id"]]
    assert sorted(flow.uc.tracking("DEMO-0001")) == sorted(split_tracking) and len(split_tracking) == 2
    voided, live = by_ref["acme-DEMO-0002"]
    assert flow.uc.tracking("DEMO-0002") == [live]  # the voided label never reaches the cart
    assert flow.uc.tracking("DEMO-0003") == by_ref["acme-DEMO-0003"]
    [record] = [s for post in flow.uc.shipment_posts for s in post if s["order_id"] == "DEMO-0001"]
    assert record["shipping_cost"] == pytest.approx(2 * 7.58)  # both labels' postage
    # The next pass reads the same labels (overlapping window) and posts nothing new.
    posts = len(flow.uc.shipment_posts)
    [again] = await runtime.run_once(service="shipment_upload")
    assert again.ok and again.did["shipments_new"] == 0 and len(flow.uc.shipment_posts) == posts


async def test_stock_is_pushed_from_available_per_inventory_warehouse(flow, runtime):
    first, second = flow.kit.warehouse_ids()
    flow.sb.set_stock("BONE-5LB", first, 7, on_hand=20)
    flow.sb.set_stock("BONE-5LB", second, 5, on_hand=9)
    flow.sb.set_stock("TREAT", first, 9, on_hand=30)
    [r] = await runtime.run_once(service="inventory_upload")
    assert r.ok and not r.error, r
    [sent] = [{i["itemId"]: i["quantity"] for i in post} for post in flow.uc.inventory_posts]
    assert {k: v for k, v in sent.items() if k != "BONE-5LB"} == {"Bone": 12, "GIFT-SET": 4}  # min(12 / 1, 9 / 2)
    assert flow.sb.requests["GET /v2/inventory"] == 1
