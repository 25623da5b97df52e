"""UltraCartClient against the UltraCart sandbox over real loopback HTTP.

When ../shared/specs is present, the Fulfillment traffic of the ordinary tests also goes through
the spec validator, requests AND the sandbox's responses, which keeps the sandbox faithful. The
Order and Item API traffic, which that spec does not cover, goes through the documented-facts
checker (tests/adapters/test_ultracart_documented.py), requests and responses alike.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.ultracart import ORDER_EXPAND, UltraCartClient, parse_order, parse_webhook
from connector.errors import ConfigurationError, PermanentError, RateLimitedError
from connector.sandbox.samples import EST, demo_orders, make_catalog, make_order, order_history
from connector.sandbox.server import SandboxServer
from connector.sandbox.ultracart import UltraCartSandbox
from tests.adapters.test_ultracart_documented import DocumentedFacts, FactsTransport
from tests.support import openapi

DC = "DFLT"
DC_PATH = f"/fulfillment/distribution_centers/{DC}"


@pytest.fixture(scope="module")
def served():
    sandbox = UltraCartSandbox(distribution_centers=(DC, "EAST"))
    with SandboxServer(sandbox.app) as server:
        yield sandbox, server


@pytest.fixture
def sandbox(served):
    sandbox, _ = served
    sandbox.reset()
    sandbox.api_key = f"sandbox-{uuid.uuid4().hex}"  # a fresh credential: its own rate limiter
    return sandbox


@pytest.fixture
def url(served):
    return served[1].url


@pytest.fixture
def transport():
    """Order/Item traffic checked against the documented facts; Fulfillment traffic against the
    spec when the specs are there (the tests run either way)."""
    facts = FactsTransport(DocumentedFacts(), responses=True)
    if not (openapi.SPECS_DIR / "ultracart-fulfillment.yaml").is_file():
        yield facts
        facts.assert_valid()
        return
    checked = openapi.ValidatingTransport(openapi.spec_validator("ultracart-fulfillment.yaml"), inner=facts, responses=True,
                                          skip_paths=("/_sandbox", "/order/", "/item/"))
    yield checked
    checked.assert_valid()
    facts.assert_valid()


@pytest.fixture
async def client(sandbox, url, transport):
    async with UltraCartClient(url, sandbox.api_key, DC, transport=transport) as client:
        yield client


def _orders(n: int, start: int = 1) -> list[dict]:
    # Light orders keep 250 of them fast; shape is covered by the parser tests.
    return [make_order(f"DEMO-{i:04d}", items=[("TREAT", 1)]) for i in range(start, start + n)]


async def test_same_100_orders_until_acknowledged(sandbox, client):
    sandbox.queue(DC, _orders(150))
    first = [o["order_id"] for o in await client.fetch_orders()]
    again = [o["order_id"] for o in await client.fetch_orders()]
    assert first == again == [f"DEMO-{i:04d}" for i in range(1, 101)]
    await client.acknowledge(first[:40])
    assert [o["order_id"] for o in await client.fetch_orders()][:2] == ["DEMO-0041", "DEMO-0042"]
    await client.acknowledge(first[40:])
    rest = await client.fetch_orders()
    assert [o["order_id"] for o in rest] == [f"DEMO-{i:04d}" for i in range(101, 151)]
    assert rest[0]["items"][0]["merchant_item_id"] == "TREAT"
    assert sandbox.requests["fetch"] == 4 and sandbox.requests["ack"] == 2


async def test_250_orders_drain_in_three_rounds(sandbox, client):
    sandbox.queue(DC, _orders(250))
    sizes = []
    while orders := await client.fetch_orders():
        sizes.append(len(orders))
        await client.acknowledge([o["order_id"] for o in orders])
    assert sizes == [100, 100, 50]
    assert sandbox.acknowledged == [f"DEMO-{i:04d}" for i in range(1, 251)]
    assert sandbox.queued(DC) == [] and sandbox.requests["fetch"] == 4 and sandbox.requests["ack"] == 3


async def test_shipments_and_inventory_are_recorded_per_post(sandbox, client):
    await client.post_shipments([{"order_id": "DEMO-1", "tracking_numbers": ["1Z1"], "shipping_cost": 7.45}])
    await client.post_shipments([{"order_id": "DEMO-2", "tracking_numbers": ["1Z2", "1Z3"]}])
    await client.post_inventory([{"itemId": "BONE-5LB", "quantity": 12}, {"itemId": "TREAT", "quantity": 0}])
    assert len(sandbox.shipment_posts) == 2 and sandbox.tracking("DEMO-2") == ["1Z2", "1Z3"]
    assert sandbox.shipment_posts[0] == [{"order_id": "DEMO-1", "tracking_numbers": ["1Z1"], "shipping_cost": 7.45}]
    assert sandbox.inventory_levels() == {"BONE-5LB": 12, "TREAT": 0} and len(sandbox.inventory_posts) == 1
    assert [dc.code for dc in await client.distribution_centers()] == [DC, "EAST"]


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PUT", "acknowledgements", [f"DEMO-{i}" for i in range(101)], "order_ids can not contain more than 100 records at a time"),
        ("POST", "shipments", [{"order_id": f"D-{i}", "tracking_numbers": ["1"]} for i in range(101)],
         "shipments can not contain more than 100 records at a time"),
        ("POST", "inventory", [{"itemId": f"S{i}", "quantity": 1} for i in range(501)],
         "inventories can not contain more than 500 records at a time"),
    ],
)
async def test_limit_messages_come_back_as_permanent_errors(sandbox, url, method, path, body, message):
    # The client refuses these sizes itself, so go one layer down (its HttpClient) to hear the
    # server; and without the spec validator, which would refuse them too.
    async with UltraCartClient(url, sandbox.api_key, DC) as client:
        with pytest.raises(PermanentError) as info:
            await client.http.request(method, f"{DC_PATH}/{path}", json=body)
    assert info.value.message == message and info.value.status == 400
    assert info.value.request_id and info.value.request_id in str(info.value)
    assert sandbox.acknowledged == [] and sandbox.shipment_posts == [] and sandbox.inventory_posts == []


async def test_scripted_500_then_success_through_the_retry(sandbox, client):
    sandbox.queue(DC, _orders(3))
    sandbox.faults.script = [{"method": "GET", "path": f"{DC_PATH}/orders", "status": 500}]
    assert len(await client.fetch_orders()) == 3
    assert sandbox.faults.counts == {"500": 1} and sandbox.requests["fetch"] == 1


async def test_ack_lost_after_processing_is_retried_harmlessly(sandbox, client):
    sandbox.queue(DC, _orders(2))
    sandbox.faults.script = [{"method": "PUT", "path": f"{DC_PATH}/acknowledgements", "status": 502, "after": True}]
    await client.acknowledge(["DEMO-0001"])
    assert sandbox.acknowledged == ["DEMO-0001", "DEMO-0001"] and sandbox.queued(DC) == ["DEMO-0002"]


async def test_429_fault_carries_retry_after(sandbox, client):
    sandbox.faults.update({"retry_after_s": 3})
    sandbox.faults.script = [{"path": f"{DC_PATH}/orders", "status": 429}]
    with pytest.raises(RateLimitedError) as info:
        await client.fetch_orders()
    assert info.value.retry_after == 3 and info.value.request_id


async def test_wrong_key_and_unknown_dc_are_configuration_errors(sandbox, url, transport):
    async with UltraCartClient(url, "not-the-key", DC, transport=transport) as client:
        with pytest.raises(ConfigurationError) as info:
            await client.fetch_orders()
    assert info.value.status == 401
    async with UltraCartClient(url, sandbox.api_key, "NOPE", transport=transport) as client:
        with pytest.raises(ConfigurationError, match="distribution center") as info:
            await client.fetch_orders()
    assert info.value.status == 400 and info.value.request_id


async def test_version_header_json_and_request_ids(sandbox, url):
    headers = {"x-ultracart-simple-key": sandbox.api_key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url) as http:
        missing = await http.get(f"{DC_PATH}/orders", headers=headers)
        wrong = await http.get(f"{DC_PATH}/orders", headers={**headers, "X-UltraCart-Api-Version": "2099-01-01"})
        versioned = {**headers, "X-UltraCart-Api-Version": "2017-03-01"}
        bad_json = await http.put(f"{DC_PATH}/acknowledgements", headers=versioned, content=b"[not json")
        prefixed = await http.get(f"/rest/v2{DC_PATH}/orders", headers=versioned)
    for response in (missing, wrong, bad_json):
        assert response.status_code == 400 and response.headers["UC-REST-ERROR"]
        body = response.json()
        assert set(body) == {"error", "metadata"} and set(body["error"]) == {"developer_message", "user_message"}
    assert "Invalid JSON" in bad_json.headers["UC-REST-ERROR"]
    assert prefixed.status_code == 200 and prefixed.json()["success"] is True
    ids = [r.headers["X-UltraCart-Request-Id"] for r in (missing, wrong, bad_json, prefixed)]
    assert all(ids) and len(set(ids)) == 4


async def test_control_api(sandbox, url):
    async with httpx.AsyncClient(base_url=url) as http:
        queued = await http.post("/_sandbox/orders", params={"dc": "EAST"}, json=_orders(2))
        faults = await http.post("/_sandbox/faults", json={"script": [{"path": "/fulfillment", "status": 503}]})
        bad = await http.post("/_sandbox/faults", json={"no_such_knob": 1})
        state = (await http.get("/_sandbox/state")).json()
    assert queued.json() == {"queued": ["DEMO-0001", "DEMO-0002"]} and faults.status_code == 200
    assert bad.status_code == 400
    assert state["queued"] == {DC: [], "EAST": ["DEMO-0001", "DEMO-0002"]}
    assert state["requests"] == {"dcs": 0, "fetch": 0, "ack": 0, "shipments": 0, "inventory": 0,
                                 "order": 0, "orders_batch": 0, "orders_query": 0, "items": 0,
                                 "webhooks": 0}
    assert sandbox.faults.script == [{"path": "/fulfillment", "status": 503}]


# -- the Order API ----------------------------------------------------------------------------------

def _headers(sandbox) -> dict[str, str]:
    return {"x-ultracart-simple-key": sandbox.api_key, "X-UltraCart-Api-Version": "2017-03-01", "Accept": "application/json"}


async def test_get_order_with_the_client_expansion_parses_like_the_full_order(sandbox, client):
    orders = demo_orders(count=50)  # every special: kit, coupons, gift, notes, options, PayPal, no address
    sandbox.queue(DC, orders)
    for raw in orders:
        fetched = await client.get_order(raw["order_id"])
        assert "taxes" not in fetched and "marketing" not in fetched  # only what was asked for
        assert parse_order(fetched) == parse_order(raw), raw["order_id"]
    assert sandbox.requests["order"] == 50


async def test_expansions_decide_what_comes_back(sandbox, url):
    sandbox.queue(DC, [make_order("DEMO-1")])
    async with httpx.AsyncClient(base_url=url, headers=_headers(sandbox)) as http:
        bare = (await http.get("/order/orders/DEMO-1")).json()["order"]
        items = (await http.get("/rest/v2/order/orders/DEMO-1", params={"_expand": "item"})).json()["order"]
        payment = (await http.get("/order/orders/DEMO-1", params={"_expand": "payment"})).json()["order"]
        with_tx = (await http.get("/order/orders/DEMO-1", params={"_expand": "payment,payment.transaction"})).json()["order"]
    assert {"order_id", "merchant_id", "current_stage", "creation_dts", "language_iso_code"} <= set(bare)
    assert not {"billing", "shipping", "items", "summary", "payment", "coupons"} & set(bare)
    assert "items" in items and "billing" not in items and "coupons" not in items
    assert "transactions" not in payment["payment"] and with_tx["payment"]["transactions"]


async def test_orders_are_known_after_acknowledgement_and_from_history(url, transport):
    history = order_history(days=2, per_day=2)
    sandbox = UltraCartSandbox(api_key=f"k-{uuid.uuid4().hex}", history=history)
    with SandboxServer(sandbox.app) as server:
        sandbox.queue(DC, [make_order("DEMO-1"), make_order("DEMO-2")])
        async with UltraCartClient(server.url, sandbox.api_key, DC, transport=transport) as client:
            await client.acknowledge(["DEMO-1"])
            assert (await client.get_order("DEMO-1"))["order_id"] == "DEMO-1"  # acked, still an order
            assert (await client.get_order("DEMO-2"))["order_id"] == "DEMO-2"  # still queued
            assert (await client.get_order("HIST-00003"))["current_stage"] == "Completed Order"
            assert await client.get_order("DEMO-404") is None
    sandbox.close()


async def test_a_missing_order_is_ultracarts_400(sandbox, url):
    async with httpx.AsyncClient(base_url=url, headers=_headers(sandbox)) as http:
        response = await http.get("/order/orders/DEMO-404", params={"_expand": ORDER_EXPAND})
    assert response.status_code == 400 and "does not exist" in response.headers["UC-REST-ERROR"]
    assert set(response.json()) == {"error", "metadata"} and response.headers["X-UltraCart-Request-Id"]


async def test_get_orders_batches_of_500_leave_out_unknown_ids(sandbox, client):
    sandbox.add_history(_orders(1100))
    ids = [f"DEMO-{i:04d}" for i in range(1, 1101)]
    orders = await client.get_orders([*ids[:600], "NOPE-1", *ids[600:]])
    assert [o["order_id"] for o in orders] == ids
    assert sandbox.requests["orders_batch"] == 3


async def test_batch_limit_and_body_errors(sandbox, url):
    async with httpx.AsyncClient(base_url=url, headers=_headers(sandbox)) as http:
        too_many = await http.post("/order/orders/batch", json={"order_ids": [f"D-{i}" for i in range(501)]})
        not_ids = await http.post("/order/orders/batch", json={"order_ids": "DEMO-1"})
    assert too_many.status_code == 400 and "500" in too_many.headers["UC-REST-ERROR"]
    assert not_ids.status_code == 400 and "order_ids" in not_ids.headers["UC-REST-ERROR"]


async def test_query_orders_by_creation_window_in_pages(sandbox, client):
    end = datetime(2026, 3, 2, tzinfo=EST)
    history = order_history(days=30, per_day=15, end=end)  # 450 orders, one every 96 minutes
    sandbox.add_history(history)
    sandbox.queue(DC, [make_order("DEMO-NEW", created=end + timedelta(hours=1))])  # outside the window
    start = end - timedelta(days=20)
    expected = [o["order_id"] for o in history if start <= datetime.fromisoformat(o["creation_dts"]) <= end]
    orders = await client.query_orders(start, end)
    assert [o["order_id"] for o in orders] == expected and len(expected) == 300
    assert sandbox.requests["orders_query"] == 2  # 200 + 100
    assert parse_order(orders[0]).ship_method == "USPS: Priority Mail"


async def test_query_paging_metadata_as_ultracart_sends_it(sandbox, url):
    sandbox.add_history(order_history(days=5, per_day=1, end=datetime(2026, 3, 2, tzinfo=EST)))
    query = {"creation_date_begin": "2026-02-01T00:00:00.000-05:00", "creation_date_end": "2026-03-02T00:00:00.000-05:00"}
    async with httpx.AsyncClient(base_url=url, headers=_headers(sandbox)) as http:
        first = (await http.post("/order/orders/query", params={"_limit": 2, "_offset": 0}, json=query)).json()
        last = (await http.post("/order/orders/query", params={"_limit": 2, "_offset": 4}, json=query)).json()
        default = (await http.post("/order/orders/query", json=query)).json()
        empty = await http.post("/order/orders/query", json={"query_target": "origin"})
        too_big = await http.post("/order/orders/query", params={"_limit": 201}, json=query)
        unsupported = await http.post("/order/orders/query", json={**query, "email": "x@example.com"})
    assert first["metadata"]["result_set"] == {"count": 2, "offset": 0, "limit": 2, "more": True, "next_offset": 2, "total_records": 5}
    assert last["metadata"]["result_set"] == {"count": 1, "offset": 4, "limit": 2, "next_offset": 0, "total_records": 5}
    assert default["metadata"]["result_set"]["limit"] == 100 and default["metadata"]["payload_name"] == "orders"
    assert [o["order_id"] for o in default["orders"]] == [f"HIST-{i:05d}" for i in range(1, 6)]
    assert set(default["orders"][0]) <= {"merchant_id", "order_id", "current_stage", "current_stage_histories",
                                         "creation_dts", "language_iso_code"}  # no _expand: no blocks
    for response, words in ((empty, "criteria"), (too_big, "_limit"), (unsupported, "email")):
        assert response.status_code == 400 and words in response.headers["UC-REST-ERROR"]


async def test_query_by_stage_and_refund_date(sandbox, url):
    sandbox.add_history(order_history(days=3, per_day=1, end=datetime(2026, 3, 2, tzinfo=EST)))
    sandbox.clock = lambda: datetime(2026, 3, 5, 12, tzinfo=EST)
    sandbox.refund("HIST-00002", "damaged")
    sandbox.reject("HIST-00003", "fraud")
    async with httpx.AsyncClient(base_url=url, headers=_headers(sandbox)) as http:
        rejected = (await http.post("/order/orders/query", json={"current_stage": "Rejected"})).json()["orders"]
        refunded = (await http.post("/order/orders/query", json={"refund_date_begin": "2026-03-05T00:00:00-05:00"})).json()["orders"]
    assert [o["order_id"] for o in rejected] == ["HIST-00003"] and [o["order_id"] for o in refunded] == ["HIST-00002"]


# -- the Item API -----------------------------------------------------------------------------------


async def test_items_catalog_in_pages_with_kits(sandbox, client):
    skus = [f"SKU-{i:05d}" for i in range(4100)]
    sandbox.set_catalog(make_catalog(skus, kits={"GIFT-SET": {"SKU-00001": 1, "SKU-00002": 2}}))
    items = await client.items()
    assert [i.sku for i in items] == [*skus, "GIFT-SET"]
    assert sandbox.requests["items"] == 3  # 2000 + 2000 + 101
    kit = items[-1]
    assert kit.kit and [(c.sku, c.quantity) for c in kit.components] == [("SKU-00001", 1), ("SKU-00002", 2)]
    assert not items[0].kit and items[0].components == ()


async def test_item_api_expansion_and_limits(url):
    sandbox = UltraCartSandbox(api_key=f"k-{uuid.uuid4().hex}", catalog=make_catalog())
    with SandboxServer(sandbox.app) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=_headers(sandbox)) as http:
            bare = (await http.get("/item/items")).json()
            kits = (await http.get("/item/items", params={"_expand": "kit_definition", "_limit": 3, "_offset": 5})).json()
            too_big = await http.get("/item/items", params={"_limit": 2001})
    sandbox.close()
    assert bare["metadata"]["result_set"]["limit"] == 100 and len(bare["items"]) == 8
    assert "kit_definition" not in bare["items"][0] and "pricing" not in bare["items"][0]
    assert {"merchant_item_id", "description", "kit"} <= set(bare["items"][0])
    assert [i["merchant_item_id"] for i in kits["items"]] == ["BOWL-L", "COLLAR-M", "GIFT-SET"]
    assert kits["items"][-1]["kit_definition"]["components"][1]["component_merchant_item_id"] == "TREAT"
    assert too_big.status_code == 400 and "_limit" in too_big.headers["UC-REST-ERROR"]


# -- mutations ----------------------------------------------------------------------------------------


async def test_mutations_read_back_through_the_client(sandbox, client):
    sandbox.queue(DC, [make_order("DEMO-1", items=[("TREAT", 2), ("LEASH-RED", 1)]), make_order("DEMO-2")])
    moment = datetime(2026, 3, 3, 16, 45, 9, tzinfo=EST)
    sandbox.clock = lambda: moment

    async def read(order_id="DEMO-1"):
        return parse_order(await client.get_order(order_id))

    sandbox.refund("DEMO-1", "CustomerCancel", items={"TREAT": 1})
    order = await read()
    assert (order.refunded_at, order.refund_reason) == (moment, "CustomerCancel")
    assert [(l.sku, l.quantity, l.quantity_refunded) for l in order.lines] == [("TREAT", 2, 1), ("LEASH-RED", 1, 0)]
    sandbox.edit_address("DEMO-1", address1="9 New Rd", city="Reno", state_region="NV", postal_code="89501")
    order = await read()
    assert (order.ship_to.address1, order.ship_to.city, order.ship_to.state) == ("9 New Rd", "Reno", "NV")
    sandbox.edit_items("DEMO-1", quantities={"LEASH-RED": 4}, add=[("BOWL-L", 3)], remove=["TREAT"])
    order = await read()
    assert [(l.sku, l.quantity, l.line_no) for l in order.lines] == [("LEASH-RED", 4, 2), ("BOWL-L", 3, 3)]
    sandbox.hold("DEMO-1")
    assert (await read()).on_hold
    sandbox.release_hold("DEMO-1")
    order = await read()
    assert not order.on_hold and order.stage == "Shipping Department"
    sandbox.set_stage("DEMO-1", "Pre-ordered")
    assert (await read()).stage == "Pre-ordered"
    sandbox.reject("DEMO-1", "Customer called to cancel")
    order = await read()
    assert (order.stage, order.rejected_at, order.reject_reason) == ("Rejected", moment, "Customer called to cancel")
    histories = (await client.get_order("DEMO-1"))["current_stage_histories"]
    assert [h["after_stage"] for h in histories] == ["Shipping Department", "Hold", "Shipping Department", "Pre-ordered", "Rejected"]
    # The DC queue hands out the order as it is now.
    fetched = {o["order_id"]: parse_order(o) for o in await client.fetch_orders()}
    assert fetched["DEMO-1"].stage == "Rejected" and fetched["DEMO-1"].ship_to.city == "Reno"
    # A null quantity (the Fulfillment spec summary calls it a number, so only the Order API reads it here).
    sandbox.edit_items("DEMO-1", quantities={"BOWL-L": None})
    assert [(l.sku, l.quantity) for l in (await read()).lines] == [("LEASH-RED", 4), ("BOWL-L", None)]
    sandbox.mark_shipped("DEMO-2", ["1Z999"])
    raw = await client.get_order("DEMO-2")
    assert raw["current_stage"] == "Completed Order" and raw["shipping"]["tracking_numbers"] == ["1Z999"]
    assert all(i["shipped_dts"] for i in raw["items"])
    sandbox.delete("DEMO-2")
    assert await client.get_order("DEMO-2") is None and sandbox.queued(DC) == ["DEMO-1"]


async def test_full_refund_marks_every_unit_and_the_payment(sandbox, client):
    sandbox.queue(DC, [make_order("DEMO-1", items=[("TREAT", 2), ("BOWL-L", 1)])])
    sandbox.refund("DEMO-1", "duplicate", items={"TREAT": 1})
    sandbox.refund("DEMO-1", "duplicate")
    raw = await client.get_order("DEMO-1")
    assert [(i["quantity"], i["quantity_refunded"]) for i in raw["items"]] == [(2, 2), (1, 1)]
    assert raw["payment"]["payment_status"] == "Refunded"
    assert raw["summary"]["total_refunded"]["value"] == 31.0  # 2 x 6.50 + 18.00
    assert raw["items"][0]["total_refunded"]["value"] == 13.0


def test_mutations_refuse_what_ultracart_would_not_do(sandbox):
    sandbox.queue(DC, [make_order("DEMO-1", items=[("TREAT", 2)])])
    with pytest.raises(KeyError, match="DEMO-404"):
        sandbox.reject("DEMO-404")
    with pytest.raises(ValueError, match="no line with SKU 'BONE-5LB'"):
        sandbox.refund("DEMO-1", items={"BONE-5LB": 1})
    with pytest.raises(ValueError, match="fewer than 3"):
        sandbox.refund("DEMO-1", items={"TREAT": 3})
    with pytest.raises(ValueError, match="not on hold"):
        sandbox.release_hold("DEMO-1")
    with pytest.raises(ValueError, match="OrderShipping fields"):
        sandbox.edit_address("DEMO-1", street="1 Main St")
    with pytest.raises(ValueError, match="no line with SKU"):
        sandbox.edit_items("DEMO-1", remove=["NOPE"])
    order = sandbox.order("DEMO-1")
    assert "refund_dts" not in order and order["items"][0].get("quantity_refunded") is None  # nothing half-done


async def test_ignore_acks_keeps_returning_acknowledged_orders(sandbox, client):
    sandbox.queue(DC, _orders(3))
    sandbox.ignore_acks = True
    first = [o["order_id"] for o in await client.fetch_orders()]
    await client.acknowledge(first)
    assert [o["order_id"] for o in await client.fetch_orders()] == first and sandbox.acknowledged == first
    sandbox.ignore_acks = False
    await client.acknowledge(first)
    assert await client.fetch_orders() == []


# -- webhooks -----------------------------------------------------------------------------------------

HOOK_USER, HOOK_PASSWORD = "hooks", "s3cret-hook"


class Receiver:
    """A real webhook receiver on loopback: records every POST; can answer any status or hang."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []  # (Authorization header, body)
        self.status = 200
        self.gate: threading.Event | None = None  # while set to an unset Event, replies wait
        self.entered = threading.Event()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.entered.set()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 30)
        with self._lock:
            self.received.append((request.headers.get("authorization", ""), body))
        return Response(status_code=self.status)

    def events(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(name, order["order_id"]) for _, body in self.received for name, order in parse_webhook(body)]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
        self.status, self.gate = 200, None
        self.entered.clear()


@pytest.fixture(scope="module")
def receiver_server():
    receiver = Receiver()
    with SandboxServer(receiver.app) as server:
        yield receiver, f"{server.url}/hook"


@pytest.fixture
def receiver(receiver_server):
    receiver_server[0].reset()
    return receiver_server


ALL_EVENTS = ("fulfillment_transmit", "fulfillment_hold", "order_reject", "order_refund", "order_update",
              "order_stage_change", "order_delete", "order_ship")


async def test_fulfillment_transmit_reaches_a_real_receiver_with_basic_auth(sandbox, receiver):
    hook, url = receiver
    sandbox.webhooks.subscribe(url, events=["fulfillment_transmit"], username=HOOK_USER, password=HOOK_PASSWORD)
    sandbox.queue(DC, _orders(12))
    deliveries = sandbox.webhooks.wait()
    assert [len(d.events) for d in deliveries] == [10, 2]  # UltraCart bundles, 10 events per delivery here
    assert all(d.status == "delivered" and d.http_status == 200 for d in deliveries)
    assert hook.events() == [("fulfillment_transmit", f"DEMO-{i:04d}") for i in range(1, 13)]
    expected = "Basic " + base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    assert {auth for auth, _ in hook.received} == {expected}
    order = parse_webhook(hook.received[0][1])[0][1]
    assert parse_order(order) == parse_order(_orders(1)[0])  # the whole order, as the DC fetch has it


async def test_each_change_fires_its_events(sandbox, receiver, client):
    hook, url = receiver
    sandbox.queue(DC, [make_order("DEMO-1", items=[("TREAT", 2)]), make_order("DEMO-2"), make_order("DEMO-3")])
    sandbox.webhooks.subscribe(url, events=ALL_EVENTS, maximum_events=1)
    expected = []
    for change, events in [
        (lambda: sandbox.refund("DEMO-1", "damaged", items={"TREAT": 1}), ["order_refund"]),
        (lambda: sandbox.edit_address("DEMO-1", city="Reno"), ["order_update"]),
        (lambda: sandbox.edit_items("DEMO-1", quantities={"TREAT": 3}), ["order_update"]),
        (lambda: sandbox.hold("DEMO-1"), ["fulfillment_hold", "order_stage_change"]),
        (lambda: sandbox.release_hold("DEMO-1"), ["order_stage_change"]),
        (lambda: sandbox.set_stage("DEMO-1", "Pre-ordered"), ["order_stage_change"]),
        (lambda: sandbox.reject("DEMO-1", "fraud"), ["order_reject", "order_stage_change"]),
        (lambda: sandbox.mark_shipped("DEMO-2", ["1Z1"]), ["order_ship", "order_stage_change"]),
        (lambda: sandbox.delete("DEMO-2"), ["order_delete"]),
    ]:
        order = change()
        expected += [(e, order["order_id"]) for e in events]
    await client.post_shipments([{"order_id": "DEMO-3", "tracking_numbers": ["9400"]}, {"order_id": "UNKNOWN-1", "tracking_numbers": ["1"]}])
    expected += [("order_ship", "DEMO-3"), ("order_stage_change", "DEMO-3")]
    sandbox.webhooks.wait()
    assert hook.events() == expected
    bodies = {name: order for _, body in hook.received for name, order in parse_webhook(body)}
    assert bodies["order_reject"]["reject_reason"] == "fraud" and bodies["order_refund"]["refund_reason"] == "damaged"
    assert bodies["order_ship"]["shipping"]["tracking_numbers"] == ["9400"]
    assert (await client.get_order("DEMO-3"))["current_stage"] == "Completed Order"


async def test_compressed_events_and_expansion(sandbox, receiver):
    hook, url = receiver
    sandbox.webhooks.subscribe(url, events=["fulfillment_transmit"], compress_events=True, expansion="item,shipping")
    sandbox.queue(DC, _orders(2))
    sandbox.webhooks.wait()
    (_, body), = hook.received
    assert isinstance(json.loads(body)["events"], str)  # base64 of gzip
    pairs = parse_webhook(body)
    assert [o["order_id"] for _, o in pairs] == ["DEMO-0001", "DEMO-0002"]
    assert "items" in pairs[0][1] and "shipping" in pairs[0][1] and "billing" not in pairs[0][1]


async def test_lost_late_and_repeated_deliveries(sandbox, receiver):
    hook, url = receiver
    sandbox.queue(DC, [make_order("DEMO-1", items=[("TREAT", 2)])])
    sandbox.webhooks.subscribe(url, events=["order_reject", "order_refund", "order_update"])
    sandbox.webhooks.hold()
    sandbox.refund("DEMO-1", "first")
    sandbox.edit_address("DEMO-1", city="Lost City")
    sandbox.reject("DEMO-1", "second")
    first, lost, second = sandbox.webhooks.deliveries()
    assert [d.status for d in (first, lost, second)] == ["held", "held", "held"] and hook.received == []
    sandbox.webhooks.drop([lost.id])
    sandbox.webhooks.release([second.id, first.id])  # the reject arrives before the refund
    sandbox.webhooks.wait()
    assert hook.events() == [("order_reject", "DEMO-1"), ("order_refund", "DEMO-1")]
    settled = {d.id: d for d in sandbox.webhooks.deliveries()}
    assert settled[second.id].sent_seq < settled[first.id].sent_seq and settled[lost.id].status == "dropped"
    # The refund as delivered is the order as it was then: no reject yet.
    refund_body = parse_webhook(hook.received[1][1])[0][1]
    assert "reject_dts" not in refund_body and refund_body["refund_reason"] == "first"
    again = sandbox.webhooks.redeliver(first.id)  # a repeat, as UltraCart's retries and reflows send
    (repeat,) = sandbox.webhooks.wait([again])
    assert repeat.repeat_of == first.id and repeat.status == "delivered"
    assert hook.received[-1][1] == hook.received[1][1]
    sandbox.webhooks.resume()
    sandbox.set_stage("DEMO-1", "Completed Order")  # not subscribed: nothing is sent
    assert len(sandbox.webhooks.deliveries()) == 4


async def test_failed_deliveries_are_recorded(sandbox, receiver):
    hook, url = receiver
    hook.status = 503
    sandbox.webhooks.subscribe(url, events=["fulfillment_transmit"])
    sandbox.queue(DC, _orders(1))
    (failed,) = sandbox.webhooks.wait()
    assert (failed.status, failed.http_status) == ("failed", 503)
    hook.status = 200
    (ok,) = sandbox.webhooks.wait([sandbox.webhooks.redeliver(failed.id)])
    assert ok.status == "delivered"


async def test_unreachable_receiver_is_a_failed_delivery(sandbox):
    with SandboxServer(Starlette()) as closed:
        dead = f"{closed.url}/hook"
    sandbox.webhooks.subscribe(dead, events=["fulfillment_transmit"], timeout_s=5)
    sandbox.queue(DC, _orders(1))
    (delivery,) = sandbox.webhooks.wait()
    assert delivery.status == "failed" and delivery.http_status is None and "Connect" in delivery.error


async def test_a_slow_receiver_never_blocks_the_api(sandbox, receiver, client):
    hook, url = receiver
    hook.gate = threading.Event()
    sandbox.webhooks.subscribe(url, events=["fulfillment_transmit"])
    sandbox.queue(DC, _orders(2))
    assert await asyncio.to_thread(hook.entered.wait, 10)  # the delivery is in the receiver, which hangs
    assert [o["order_id"] for o in await client.fetch_orders()] == ["DEMO-0001", "DEMO-0002"]
    assert (await client.get_order("DEMO-0001"))["order_id"] == "DEMO-0001"
    assert sandbox.webhooks.deliveries()[0].status == "pending"
    hook.gate.set()
    (delivery,) = sandbox.webhooks.wait()
    assert delivery.status == "delivered"


def test_subscriptions_refuse_unknown_events(sandbox):
    with pytest.raises(ValueError, match="order_cancel"):
        sandbox.webhooks.subscribe("http://127.0.0.1:9/hook", events=["order_cancel"])
    with pytest.raises(ValueError, match="http"):
        sandbox.webhooks.subscribe("ftp://example.com/hook", events=["order_reject"])


async def test_control_api_for_history_catalog_changes_and_webhooks(sandbox, url, receiver):
    hook, hook_url = receiver
    async with httpx.AsyncClient(base_url=url) as http:
        history = await http.post("/_sandbox/history", json={"days": 3, "per_day": 2, "skus": ["bone-5lb", "00123"],
                                                               "ship_methods": ["Pigeon: Express"], "end": "2026-03-02T00:00:00-05:00"})
        catalog = await http.post("/_sandbox/catalog", json={"skus": ["BONE-5LB", "123"], "kits": {"GIFT-SET": {"BONE-5LB": 1}}})
        sub = await http.post("/_sandbox/webhooks", json={"url": hook_url, "events": ["order_reject", "order_update"],
                                                          "username": HOOK_USER, "password": HOOK_PASSWORD})
        settings = await http.post("/_sandbox/settings", json={"ignore_acks": True})
        held = await http.post("/_sandbox/webhooks/hold", json={"hold": True})
        rejected = await http.post("/_sandbox/orders/HIST-00001/reject", json={"reason": "chargeback"})
        edited = await http.post("/_sandbox/orders/HIST-00002/edit_items", json={"add": [["TREAT", 1]]})
        released = await http.post("/_sandbox/webhooks/release", json={})
        unknown_action = await http.post("/_sandbox/orders/HIST-00001/cancel", json={})
        unknown_order = await http.post("/_sandbox/orders/NOPE/reject", json={})
        bad_args = await http.post("/_sandbox/orders/HIST-00001/refund", json={"items": {"NOPE": 1}})
        bad_setting = await http.post("/_sandbox/settings", json={"ignore_ack": True})
        sandbox.webhooks.wait()
        listing = (await http.get("/_sandbox/webhooks")).json()
        redelivered = await http.post("/_sandbox/webhooks/redeliver", json={"id": listing["deliveries"][0]["id"]})
        removed = await http.delete(f"/_sandbox/webhooks/{sub.json()['oid']}")
    assert history.json() == {"orders": 6} and catalog.json() == {"catalog": 3}
    assert sub.status_code == 200 and sub.json()["password"] == "***" and sub.json()["username"] == HOOK_USER
    assert settings.json() == {"ignore_acks": True, "denied_permissions": []} and sandbox.ignore_acks and held.json() == {"hold": True}
    assert rejected.json()["order"]["current_stage"] == "Rejected" and edited.json()["order"]["items"][-1]["merchant_item_id"] == "TREAT"
    assert len(released.json()["release"]) == 2
    assert unknown_action.status_code == 404 and unknown_order.status_code == 404 and "NOPE" in unknown_order.json()["error"]
    assert bad_args.status_code == 400 and bad_setting.status_code == 400
    assert [d["status"] for d in listing["deliveries"]] == ["delivered", "delivered"]
    # order_stage_change also fired on the reject, but this webhook did not subscribe to it.
    assert [d["events"] for d in listing["deliveries"]] == [[["order_reject", "HIST-00001"]], [["order_update", "HIST-00002"]]]
    assert redelivered.status_code == 200 and removed.status_code == 204 and sandbox.webhooks.subscriptions == []
    assert {o["shipping"]["shipping_method"] for o in (sandbox.order("HIST-00001"), sandbox.order("HIST-00002"))} == {"Pigeon: Express"}
    assert [i["merchant_item_id"] for i in sandbox.order("HIST-00001")["items"]] == ["bone-5lb"]
