"""The whole flow with a file-exchange warehouse: UltraCart sandbox over HTTP, the warehouse's
folder served locally or by a real SFTP server on loopback. Orders become order files exactly
once, shipment files become tracking confirmed at UltraCart, stock files become store quantities.
"""

from __future__ import annotations

import pytest

from connector.sandbox.samples import make_order
from tests.support.flow import Flow
from tests.support.warehouse import deliver, orders, states

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["local", "sftp"])
def flow(tmp_path, request):
    f = Flow(tmp_path, warehouse="files", transport=request.param, split_every=0, void_every=0)
    yield f
    f.close()
    f.kit.close()


@pytest.fixture
def sftp_flow(tmp_path):
    f = Flow(tmp_path, warehouse="files", transport="sftp", split_every=0, void_every=0)
    yield f
    f.close()
    f.kit.close()


async def test_orders_become_files_exactly_once_and_tracking_and_stock_come_back(flow):
    wh = flow.sb
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", [make_order("DEMO-0001", items=[("BONE-5LB", 1), ("TREAT", 2)]), *orders(5, start=2)])
        await deliver(rt)
        assert await states(rt) == {"at_warehouse": 6}
        assert wh.created() == 6 and set(wh.create_attempts.values()) == {1}
        # UltraCart sends some again and a second run happens: nothing new reaches the warehouse.
        flow.uc.queue("DFLT", orders(3))
        await deliver(rt)
        assert wh.created() == 6 and await states(rt) == {"at_warehouse": 6}

        wh.plan("acme-DEMO-0001", split=True)
        wh.plan("acme-DEMO-0002", void_first=True)
        wh.ship_all()
        [r] = await rt.run_once(service="shipment_upload")
        assert r.ok and r.did["voided"] == 1 and r.did["orders_confirmed"] == 6, r
        assert await states(rt) == {"confirmed": 6}
        assert flow.uc.tracking("DEMO-0001") == ["1ZFX0000000101", "1ZFX0000000102"]  # both parcels of the split
        assert flow.uc.tracking("DEMO-0002") == ["1ZFX0000000202"]  # the voided label's number is not posted
        assert r.did["warehouse_acknowledged"] == 7
        out = wh.root / "out"
        assert not list(out.glob("shp_*.csv")) and len(list((out / "archive").glob("shp_*.csv"))) == 1
        [again] = await rt.run_once(service="shipment_upload")
        assert again.did["shipments_read"] == 0 and len(flow.uc.shipment_posts) == 1

        wh.set_stock("BONE-5LB", "east", 7)
        wh.set_stock("BONE-5LB", "west", 5)
        wh.set_stock("TREAT", "east", 9)
        [inv] = await rt.run_once(service="inventory_upload")
        assert inv.ok, inv
        pushed = {i["itemId"]: i["quantity"] for post in flow.uc.inventory_posts for i in post}
        assert pushed["Bone"] == 12 and pushed["GIFT-SET"] == 4
    finally:
        await rt.aclose()


@pytest.mark.parametrize("fault", [{"status": "reset", "after": True}, {"status": 500, "after": True}, {"status": "timeout", "after": True}])
async def test_a_lost_rename_reply_is_looked_up_not_sent_twice(sftp_flow, fault):
    flow, wh = sftp_flow, sftp_flow.sb
    flow.overrides["acme"] = {"warehouse": {"timeout_s": 0.5}}
    flow.kit.faults.timeout_s = 1.5  # a held reply outlasts the adapter's timeout
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(3))
        [r] = await rt.run_once(service="order_download")
        flow.kit.faults.script = [{"method": "RENAME", "path": "/in/.ord_", **fault}]
        await rt.run_once(service="order_delivery")
        # Creates share one SFTP connection: a dropped or stalled one leaves every rename then in
        # flight unknown, so one or more orders are in doubt (never failed, never resent blindly).
        first = await states(rt)
        assert first.get("in_doubt", 0) >= 1 and sum(first.values()) == 3 and set(first) <= {"in_doubt", "at_warehouse"}
        doubts = [row for row in await rt.store.orders.listing() if row.state == "in_doubt"]
        [r] = await rt.run_once(service="order_delivery")
        # The faulted rename happened: found by reference. A rename cut off with it did not: the
        # temp file says so, and that order is sent (once) now.
        assert r.did.get("doubt_found", 0) >= 1
        assert r.did.get("doubt_found", 0) + r.did.get("doubt_absent", 0) == len(doubts)
        assert await states(rt) == {"at_warehouse": 3}
        assert wh.created() == 3 and set(wh.create_attempts.values()) == {1}
    finally:
        await rt.aclose()


async def test_bad_rows_are_reported_and_the_rest_of_the_file_flows(tmp_path):
    flow = Flow(tmp_path, warehouse="files", split_every=0, void_every=0)
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(2))
        await deliver(rt)
        flow.sb.pick_up()
        flow.sb.drop("shp_manual.csv", "reference,shipment_id,tracking_number,sku,quantity\n"
                                       "acme-DEMO-0001,M1,1ZGOOD,BONE-5LB,1\n"
                                       "acme-DEMO-0002,M2,1ZBAD,TREAT,some\n")
        [r] = await rt.run_once(service="shipment_upload")
        assert r.ok and r.did["shipments_read"] == 1
        assert flow.uc.tracking("DEMO-0001") == ["1ZGOOD"] and flow.uc.tracking("DEMO-0002") == []
        problems = [e for e in await rt.store.events.listing(merchant="acme", limit=500) if e.method == "PARSE"]
        assert [p.error for p in problems] == ["shp_manual.csv line 3: quantity 'some' is not a number; row skipped"]
        assert rt.contexts["acme"].warehouse.problems[0].line == 3
    finally:
        await rt.aclose()
        flow.close()


async def test_a_rejected_order_becomes_a_cancel_request_file_and_a_person_confirms_it(flow):
    rt = await flow.runtime()
    try:
        flow.uc.queue("DFLT", orders(2))
        await deliver(rt)
        flow.uc.reject("DEMO-0001", reason="customer cancelled")
        [r] = await rt.run_once(service="order_changes")
        assert r.ok, r
        assert await states(rt) == {"at_warehouse": 1, "cancel_failed": 1}
        [request] = list((flow.sb.root / "in").glob("cnl_*.csv"))
        lines = request.read_text().splitlines()
        assert lines[0] == "reference,order_id,reason,requested_at" and lines[1].startswith("acme-DEMO-0001,DEMO-0001,cancelled in UltraCart,")
        [alert] = await rt.store.alerts.open("acme", "cancel_by_hand")
        assert request.name in alert.message and "connector cancel DEMO-0001 --done" in alert.message
        [row] = await rt.store.orders.find("DEMO-0001")
        assert request.name in row.reason
    finally:
        await rt.aclose()
