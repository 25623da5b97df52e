"""UltraCartClient against respx: every request it sends is checked against the Fulfillment spec."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import pytest

from adapters.ultracart import UltraCartClient
from connector.domain import DistributionCenter
from connector.errors import ConfigurationError, ErrorClass, InDoubtError, PermanentError, RateLimitedError, TransientError
from tests.support.openapi import spec_validator, validated_router

BASE = "https://secure.ultracart.com/rest/v2"
DC_PATH = "/fulfillment/distribution_centers/DFLT"


@pytest.fixture
def router():
    """A respx router validating each request against ../shared/specs/ultracart-fulfillment.yaml."""
    validator = spec_validator("ultracart-fulfillment.yaml")
    router = validated_router(validator, base_url=BASE)
    yield router
    router.assert_valid()


@pytest.fixture
def api_key() -> str:
    # The rate limiter is per credential and process-wide: a fresh key keeps a 429 in one test
    # from pacing the next.
    return f"uc-key-{uuid.uuid4().hex}"


@pytest.fixture
async def client(router, api_key):
    calls = []
    client = UltraCartClient(BASE, api_key, "DFLT", transport=router.transport(), on_call=calls.append)
    client.calls = calls
    yield client
    await client.aclose()


def _error(status: int, message: str, request_id: str = "RID-1", **headers: str) -> httpx.Response:
    body = {"error": {"developer_message": f"dev: {message}", "user_message": message}, "metadata": {}}
    return httpx.Response(status, json=body, headers={"UC-REST-ERROR": message, "X-UltraCart-Request-Id": request_id, **headers})


# -- requests ------------------------------------------------------------------------------------


async def test_headers_and_distribution_centers(router, client, api_key):
    route = router.get("/fulfillment/distribution_centers").respond(
        200, json={"distribution_centers": [{"code": "DFLT", "name": "Main", "distribution_center_oid": 7}, {"name": "no code"}],
                   "success": True, "metadata": {}})
    assert await client.distribution_centers() == [DistributionCenter(code="DFLT", name="Main")]
    request = route.calls.last.request
    assert request.headers["x-ultracart-simple-key"] == api_key
    assert request.headers["X-UltraCart-Api-Version"] == "2017-03-01"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"


async def test_fetch_orders_returns_raw_dicts(router, client):
    orders = [{"order_id": "DEMO-1", "items": []}, {"order_id": "DEMO-2"}]
    route = router.get(f"{DC_PATH}/orders").respond(200, json={"orders": orders, "success": True, "metadata": {}})
    assert await client.fetch_orders() == orders
    assert route.calls.last.request.url == f"{BASE}{DC_PATH}/orders"  # no query string, no paging
    router.get(f"{DC_PATH}/orders").respond(200, json={"success": True, "metadata": {}})
    assert await client.fetch_orders() == []


async def test_acknowledge_sends_a_json_array_and_accepts_204(router, client):
    route = router.put(f"{DC_PATH}/acknowledgements").respond(204)
    assert await client.acknowledge(["DEMO-1", "DEMO-2"]) is None
    request = route.calls.last.request
    assert json.loads(request.content) == ["DEMO-1", "DEMO-2"]
    assert request.headers["Content-Type"] == "application/json"


async def test_acknowledge_limits_are_checked_before_sending(router, client):
    route = router.put(f"{DC_PATH}/acknowledgements").respond(204)
    with pytest.raises(ValueError, match="at most 100"):
        await client.acknowledge([f"DEMO-{i}" for i in range(101)])
    with pytest.raises(ValueError, match="non-blank strings"):
        await client.acknowledge(["DEMO-1", 2])
    await client.acknowledge([])  # nothing to say: no call
    await client.acknowledge([f"DEMO-{i}" for i in range(100)])
    assert route.call_count == 1


async def test_post_shipments_body(router, client):
    route = router.post(f"{DC_PATH}/shipments").respond(204)
    await client.post_shipments([
        {"order_id": "DEMO-1", "tracking_numbers": ["1Z999AA10123456784", ""], "shipping_cost": Decimal("7.45"),
         "fulfillment_fee": Decimal("2"), "package_cost": 0.5},
        {"order_id": "DEMO-2", "tracking_numbers": ["9400111899223197428490"]},
    ])
    assert json.loads(route.calls.last.request.content) == [
        {"order_id": "DEMO-1", "tracking_numbers": ["1Z999AA10123456784"], "shipping_cost": 7.45,
         "fulfillment_fee": 2, "package_cost": 0.5},
        {"order_id": "DEMO-2", "tracking_numbers": ["9400111899223197428490"]},
    ]
    with pytest.raises(ValueError, match="at most 100"):
        await client.post_shipments([{"order_id": f"D-{i}", "tracking_numbers": ["1"]} for i in range(101)])
    with pytest.raises(ValueError, match="tracking_number"):
        await client.post_shipments([{"order_id": "D-1", "tracking_number": "1Z"}])
    with pytest.raises(ValueError, match="tracking_numbers must be a list"):
        await client.post_shipments([{"order_id": "D-1", "tracking_numbers": "1Z"}])
    assert route.call_count == 1


async def test_post_inventory_uses_camel_case_item_id(router, client):
    route = router.post(f"{DC_PATH}/inventory").respond(204)
    await client.post_inventory([{"itemId": "BONE-5LB", "quantity": 12}, {"item_id": "TREAT", "quantity": Decimal("0")}])
    assert json.loads(route.calls.last.request.content) == [
        {"itemId": "BONE-5LB", "quantity": 12}, {"itemId": "TREAT", "quantity": 0}]
    with pytest.raises(ValueError, match="at most 500"):
        await client.post_inventory([{"itemId": f"S{i}", "quantity": 1} for i in range(501)])
    with pytest.raises(ValueError, match="negative"):
        await client.post_inventory([{"itemId": "S", "quantity": -1}])
    with pytest.raises(ValueError, match="must be a number"):
        await client.post_inventory([{"itemId": "S", "quantity": "7"}])
    await client.post_inventory([{"itemId": f"S{i}", "quantity": i} for i in range(500)])
    assert route.call_count == 2


async def test_dc_code_is_escaped_in_the_path(router, api_key):
    route = router.get("/fulfillment/distribution_centers/DC%202/orders").respond(200, json={"orders": []})
    async with UltraCartClient(BASE, api_key, "DC 2", transport=router.transport()) as client:
        assert await client.fetch_orders() == []
    assert route.called


# -- errors ----------------------------------------------------------------------------------------


async def test_uc_rest_error_and_request_id_reach_the_error(router, client):
    message = "order_ids can not contain more than 100 records at a time"
    router.put(f"{DC_PATH}/acknowledgements").mock(return_value=_error(400, message, "REQ-4711"))
    with pytest.raises(PermanentError) as info:
        await client.acknowledge(["DEMO-1"])
    err = info.value
    assert message in str(err) and "REQ-4711" in str(err)
    assert (err.status, err.request_id, err.message, err.vendor) == (400, "REQ-4711", message, "ultracart")
    (record,) = client.calls
    assert record.status == 400 and record.request_id == "REQ-4711" and "REQ-4711" in record.error


async def test_error_body_is_read_when_the_header_is_missing(router, client):
    body = {"error": {"developer_message": "Server side object 'order' could not be updated.", "user_message": "x"}, "metadata": {}}
    router.post(f"{DC_PATH}/shipments").respond(400, json=body, headers={"X-UltraCart-Request-Id": "R9"})
    with pytest.raises(PermanentError, match="could not be updated") as info:
        await client.post_shipments([{"order_id": "DEMO-1", "tracking_numbers": ["1Z"]}])
    assert "R9" in str(info.value)


async def test_429_with_retry_after_is_rate_limited(router, client):
    route = router.get(f"{DC_PATH}/orders").mock(return_value=_error(429, "rate limit exceeded", "R429", **{"Retry-After": "7"}))
    with pytest.raises(RateLimitedError) as info:
        await client.fetch_orders()
    assert info.value.retry_after == 7 and info.value.error_class is ErrorClass.rate_limited
    assert route.call_count == 1  # never slept on or retried inside the call
    with pytest.raises(RateLimitedError):  # the credential is paused: no request goes out
        await client.fetch_orders()
    assert route.call_count == 1


@pytest.mark.parametrize("status", [401, 410])
async def test_bad_credentials_are_configuration_errors(router, client, status):
    router.get(f"{DC_PATH}/orders").mock(return_value=_error(status, "Invalid credentials"))
    with pytest.raises(ConfigurationError, match="Invalid credentials"):
        await client.fetch_orders()


async def test_unknown_dc_is_a_configuration_error(router, client):
    router.get(f"{DC_PATH}/orders").mock(return_value=_error(400, "Invalid distribution center code 'DFLT'", "R-DC"))
    with pytest.raises(ConfigurationError) as info:
        await client.fetch_orders()
    assert info.value.status == 400 and info.value.request_id == "R-DC" and "DFLT" in str(info.value)


async def test_dc_words_on_a_write_stay_permanent(router, client):
    # On a write the message may be about one record; only the body-less fetch proves the DC wrong.
    router.post(f"{DC_PATH}/shipments").mock(return_value=_error(400, "DEMO-1 has no items at this distribution center"))
    with pytest.raises(PermanentError) as info:
        await client.post_shipments([{"order_id": "DEMO-1", "tracking_numbers": ["1Z"]}])
    assert not isinstance(info.value, ConfigurationError)


async def test_500_on_get_is_retried_then_transient(router, client):
    route = router.get(f"{DC_PATH}/orders").mock(return_value=_error(500, "boom", "R500"))
    with pytest.raises(TransientError, match="boom"):
        await client.fetch_orders()
    assert route.call_count == 3


async def test_a_5xx_on_a_tracking_post_is_in_doubt_not_repeated(router, client):
    # No idempotency key, and a second post may e-mail the customer again: the caller reads the
    # order before it posts again (connector.pipeline.shipments.already_posted).
    route = router.post(f"{DC_PATH}/shipments").mock(side_effect=[_error(503, "busy"), httpx.Response(204)])
    with pytest.raises(InDoubtError):
        await client.post_shipments([{"order_id": "DEMO-1", "tracking_numbers": ["1Z"]}])
    assert route.call_count == 1


async def test_unreadable_200_is_transient(router, client):
    router.get(f"{DC_PATH}/orders").respond(200, text="<html>maintenance</html>")
    with pytest.raises(TransientError, match="unreadable"):
        await client.fetch_orders()


async def test_the_api_key_never_reaches_the_call_records(router, client, api_key):
    router.get(f"{DC_PATH}/orders").respond(200, json={"orders": [{"order_id": "D-1", "note": f"echo {api_key}"}]})
    await client.fetch_orders()
    (record,) = client.calls
    assert api_key not in json.dumps(record.response_body) and api_key not in record.url
