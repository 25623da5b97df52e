"""UltraCartClient against the UltraCart sandbox over real loopback HTTP.

When ../shared/specs is present, the traffic of the ordinary tests also goes through the spec
validator, requests AND the sandbox's responses, which keeps the sandbox faithful.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from adapters.ultracart import UltraCartClient
from connector.errors import ConfigurationError, PermanentError, RateLimitedError
from connector.sandbox.samples import make_order
from connector.sandbox.server import SandboxServer
from connector.sandbox.ultracart import UltraCartSandbox
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
    """Validating when the specs are there; the tests run either way."""
    if not (openapi.SPECS_DIR / "ultracart-fulfillment.yaml").is_file():
        yield None
        return
    checked = openapi.ValidatingTransport(openapi.spec_validator("ultracart-fulfillment.yaml"), responses=True)
    yield checked
    checked.assert_valid()


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
    assert state["requests"] == {"dcs": 0, "fetch": 0, "ack": 0, "shipments": 0, "inventory": 0}
    assert sandbox.faults.script == [{"path": "/fulfillment", "status": 503}]
