"""Edits after hand-off, through the engine, against each warehouse sandbox: an order's address
or items changed in UltraCart after it reached the warehouse (issue 12, the row "at the
warehouse | address or items edited").

- ShipStation (v1 and v2) can take the change: the order_changes pass re-reads the order,
  queues an update, the adapter sends it, the warehouse holds the new address and lines, and the
  timeline says "updated at the warehouse", with no alert;
- an order that left the warehouse meanwhile (a label bought) is refused by the warehouse: an
  alert `changed_after_handoff` says what to change by hand;
- ShipBob has no update API (capabilities off): an alert names what changed and the warehouse
  order id, and nothing is sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.flow import Flow
from tests.support.warehouse import deliver, orders, states

pytestmark = pytest.mark.asyncio

NEW_ADDRESS = dict(address1="9 New Street", address2="", city="Shelbyville", postal_code="62565")


def make_flow(tmp_path, warehouse: str) -> Flow:
    return Flow(tmp_path, warehouse=warehouse)


@pytest.fixture(params=("shipstation", "shipstation-v2"))
def flow(request, tmp_path):
    f = make_flow(tmp_path, request.param)
    yield f
    f.close()


@pytest.fixture
def shipbob_flow(tmp_path):
    f = make_flow(tmp_path, "shipbob")
    yield f
    f.close()


async def changes(rt) -> None:
    [r] = await rt.run_once(service="order_changes")
    assert r.ok and not r.error, r


def held_at_warehouse(flow: Flow, reference: str) -> tuple[dict[str, str], dict[str, int]]:
    """(street, city, postal code) and {sku: quantity} of the order as the warehouse sandbox holds it."""
    sb: Any = flow.sb
    if flow.kit.name == "shipstation":
        order = sb.order(reference)
        to = order["shipTo"]
        address = {"address1": to["street1"], "city": to["city"], "postal_code": to["postalCode"]}
    else:
        with sb._lock:
            order = next(s for s in sb.shipments.values() if s["external_shipment_id"] == reference)
        to = order["ship_to"]
        address = {"address1": to["address_line1"], "city": to["city_locality"], "postal_code": to["postal_code"]}
    lines: dict[str, int] = {}
    for item in order["items"]:
        lines[item["sku"]] = lines.get(item["sku"], 0) + int(item["quantity"])
    return address, lines


async def timeline(rt, order_id: str) -> str:
    [row] = await rt.store.orders.find(order_id)
    return " | ".join(e.reason for e in await rt.store.orders.timeline(row.id))


async def test_an_address_edit_is_updated_at_the_warehouse(flow, runtime) -> None:
    rt = runtime
    flow.uc.queue("DFLT", orders(2))
    await deliver(rt)
    assert await states(rt) == {"at_warehouse": 2}
    before, lines = held_at_warehouse(flow, "acme-DEMO-0001")
    shipped_before = held_at_warehouse(flow, "acme-DEMO-0002")
    assert before["address1"] != NEW_ADDRESS["address1"]
    assert flow.kit.ship("acme-DEMO-0002")  # a label bought before the edit reached the connector
    for order_id in ("DEMO-0001", "DEMO-0002"):
        flow.uc.edit_address(order_id, **NEW_ADDRESS)
    await changes(rt)
    after, lines_after = held_at_warehouse(flow, "acme-DEMO-0001")
    assert after == {"address1": "9 New Street", "city": "Shelbyville", "postal_code": "62565"}
    assert lines_after == lines, "an address edit leaves the lines alone"
    told = await timeline(rt, "DEMO-0001")
    assert "updated at the warehouse: ship-to address1" in told and "9 New Street" in told
    # The shipped one could not be changed: a person is told what to change, and where.
    [alert] = await rt.store.alerts.open("acme", "changed_after_handoff")
    assert alert.key == "DEMO-0002" and "refused the update" in alert.message and "9 New Street" in alert.message
    assert held_at_warehouse(flow, "acme-DEMO-0002") == shipped_before, "a shipped order is left as it shipped"
    # Nothing else was raised, and the same copy read again changes nothing more.
    assert [a.key for a in await rt.store.alerts.open("acme")] == ["DEMO-0002"]
    await changes(rt)
    assert told == await timeline(rt, "DEMO-0001")


async def test_an_item_edit_is_updated_at_the_warehouse(flow, runtime) -> None:
    rt = runtime
    flow.uc.queue("DFLT", orders(1))
    await deliver(rt)
    assert held_at_warehouse(flow, "acme-DEMO-0001")[1] == {"BONE-5LB": 1}
    flow.uc.edit_items("DEMO-0001", quantities={"BONE-5LB": 3}, add=[("TREAT", 2)])
    flow.uc.edit_address("DEMO-0001", **NEW_ADDRESS)
    await changes(rt)
    told = await timeline(rt, "DEMO-0001")
    assert "updated at the warehouse" in told, told
    assert not await rt.store.alerts.open("acme")
    address, lines = held_at_warehouse(flow, "acme-DEMO-0001")
    assert address["address1"] == "9 New Street"
    assert lines == {"BONE-5LB": 3, "TREAT": 2}
    [row] = await rt.store.orders.find("DEMO-0001")
    assert {ln.sku: ln.quantity for ln in row.warehouse_order.lines} == {"BONE-5LB": 3, "TREAT": 2}, "the record says what the warehouse holds"


@pytest.fixture
async def shipbob_runtime(shipbob_flow):
    rt = await shipbob_flow.runtime()
    yield rt
    await rt.aclose()


async def test_shipbob_has_no_update_api_so_the_edit_is_alerted_naming_what_changed(shipbob_flow, shipbob_runtime) -> None:
    flow, rt = shipbob_flow, shipbob_runtime
    flow.uc.queue("DFLT", orders(1))
    await deliver(rt)
    [row] = await rt.store.orders.find("DEMO-0001")
    flow.uc.edit_address("DEMO-0001", **NEW_ADDRESS)
    flow.uc.edit_items("DEMO-0001", quantities={"BONE-5LB": 3})
    await changes(rt)
    [alert] = await rt.store.alerts.open("acme", "changed_after_handoff")
    assert alert.key == "DEMO-0001"
    for words in ("9 New Street", "Shelbyville", "BONE-5LB x1 -> x3", row.warehouse_order_id, "by hand"):
        assert words in alert.message, (words, alert.message)
    assert "updated at the warehouse" not in await timeline(rt, "DEMO-0001")
    assert await states(rt) == {"at_warehouse": 1}
