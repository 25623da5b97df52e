"""The ShipBob adapter against respx: request shapes, error handling, paging, rate headers.

Every request the adapter sends goes through a `ValidatingRouter`, so it is checked against
ShipBob's 2026-01 OpenAPI document (path, method, query names, headers, body) as it is sent.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from adapters.base import AdapterContext
from adapters.http import Limiters
from adapters.shipbob import ShipBobAdapter, adapter as adapter_module
from connector.domain import Address, CancelOutcome, Order, Shipment, WarehouseLine, WarehouseOrder
from connector.errors import ConfigurationError, PermanentError, RateLimitedError, TransientError
from tests.support.openapi import spec_validator, validated_router

BASE = "https://api.shipbob.com"
V = "/2026-01"


@pytest.fixture
def router():
    r = validated_router(spec_validator("shipbob-2026-01-openapi.json"), base_url=BASE)
    yield r
    r.assert_valid()


@pytest.fixture
def token() -> str:
    return "pat-test"


@pytest.fixture
async def adapter(router, token):
    config = {"adapter": "shipbob", "token": token, "channel_id": "42"}
    # Rate limiters of its own (the runtime's are shared): a 429 here never slows another test.
    a = ShipBobAdapter(config, AdapterContext(merchant="acme", transport=router.transport(), limiters=Limiters()))
    yield a
    await a.aclose()


def an_order(reference: str = "acme-1001") -> WarehouseOrder:
    cart = Order(
        order_id="DEMO-1001",
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        ship_to=Address(
            first_name="Ada", last_name="Lovelace", company="Engines Ltd", address1="12 Way", address2="Unit 3",
            city="Springfield", state="IL", postal_code="62701", country_code="us", phone="555-0100",
        ),
        email="ada@example.com",
        total=Decimal("31.50"),
        gift=True,
        gift_message="Happy birthday",
    )
    lines = [
        WarehouseLine(sku="BONE-5LB", quantity=2, description="Bone, 5 lb", unit_price=Decimal("9.75")),
        WarehouseLine(sku="TREAT", quantity=1),
        WarehouseLine(sku="TREAT", quantity=2, cart_sku="GIFT-SET"),
    ]
    return WarehouseOrder(reference=reference, order=cart, ship_method="Ground", lines=lines)


# -- the validator itself -------------------------------------------------------------------


class TestSpecValidator:
    """tests/support/openapi.py catches what a vendor would reject, for both spec flavours."""

    def test_shipbob_good_and_bad_requests(self) -> None:
        v = spec_validator("shipbob-2026-01-openapi.json")
        headers = {"Authorization": "Bearer x", "shipbob_channel_id": "1"}
        v.validate_request(httpx.Request("GET", "http://127.0.0.1:9/2026-01/order", headers=headers, params={"ReferenceIds": "a"}))
        bad = [
            httpx.Request("GET", "http://127.0.0.1:9/2026-01/order", params={"ReferenceIds": "a"}),  # no token
            httpx.Request("GET", f"{BASE}/2026-01/order", headers=headers, params={"ReferenceId": "a"}),  # misspelt
            httpx.Request("GET", f"{BASE}/2026-01/shippingmethod", headers=headers),  # 1.0 path
            httpx.Request("POST", f"{BASE}/2026-01/order", headers={"Authorization": "Bearer x"}, json={}),  # no channel
            httpx.Request("POST", f"{BASE}/2026-01/shipment:batchUpdateTrackingUpload", headers=headers, json={"shipment_ids": ["x"]}),
        ]
        for request in bad:
            with pytest.raises(AssertionError):
                v.validate_request(request)

    def test_ultracart_good_and_bad_requests(self) -> None:
        v = spec_validator("ultracart-fulfillment.yaml")
        headers = {"x-ultracart-simple-key": "k", "X-UltraCart-Api-Version": "2017-03-01"}
        for base in ("https://secure.ultracart.com/rest/v2", "http://127.0.0.1:9"):
            v.validate_request(httpx.Request("GET", f"{base}/fulfillment/distribution_centers/DFLT/orders", headers=headers))
            v.validate_request(httpx.Request("PUT", f"{base}/fulfillment/distribution_centers/DFLT/acknowledgements", headers=headers, json=["1"]))
        with pytest.raises(AssertionError, match="simpleKey|Security"):
            v.validate_request(httpx.Request("GET", f"{BASE}/fulfillment/distribution_centers", headers={"X-UltraCart-Api-Version": "2017-03-01"}))
        with pytest.raises(AssertionError, match="X-UltraCart-Api-Version"):
            v.validate_request(httpx.Request("GET", f"{BASE}/fulfillment/distribution_centers", headers={"x-ultracart-simple-key": "k"}))
        with pytest.raises(AssertionError, match="array"):
            v.validate_request(
                httpx.Request("PUT", f"{BASE}/fulfillment/distribution_centers/DFLT/acknowledgements", headers=headers, json={"a": 1})
            )


# -- create ---------------------------------------------------------------------------------


async def test_create_sends_a_complete_order(adapter, router, token) -> None:
    route = router.post(f"{V}/order").respond(201, json={"id": 555, "reference_id": "acme-1001"})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.reference, result.already_existed) == ("555", "acme-1001", False)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.headers["shipbob_channel_id"] == "42"
    body = json.loads(request.content)
    assert body["reference_id"] == "acme-1001"
    assert body["order_number"] == "DEMO-1001"
    assert (body["type"], body["shipping_method"]) == ("DTC", "Ground")
    assert body["recipient"] == {
        "name": "Ada Lovelace",
        "address": {
            "address1": "12 Way", "address2": "Unit 3", "city": "Springfield", "state": "IL",
            "zip_code": "62701", "country": "US", "company_name": "Engines Ltd",
        },
        "email": "ada@example.com",
        "phone_number": "555-0100",
    }
    # Lines with the same warehouse SKU are merged; the name falls back to the SKU.
    assert body["products"] == [
        {"reference_id": "BONE-5LB", "name": "Bone, 5 lb", "quantity": 2, "unit_price": 9.75},
        {"reference_id": "TREAT", "name": "TREAT", "quantity": 3},
    ]
    assert body["purchase_date"] == "2026-03-04T05:06:07Z"
    assert body["gift_message"] == "Happy birthday"
    assert body["financials"] == {"total_price": 31.5}


async def test_duplicate_reference_is_looked_up(adapter, router) -> None:
    create = router.post(f"{V}/order").respond(422, json={"": ["Cannot insert order with existing ReferenceId"]})
    lookup = router.get(f"{V}/order", params={"ReferenceIds": "acme-1001"}).respond(
        200, json=[{"id": 9, "reference_id": "acme-1001-x"}, {"id": 777, "reference_id": "acme-1001"}]
    )
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("777", True)
    assert create.call_count == 1 and lookup.call_count == 1


async def test_duplicate_reference_outside_our_channel_is_permanent(adapter, router) -> None:
    router.post(f"{V}/order").respond(422, json={"": ["Cannot insert order with existing ReferenceId"]})
    router.get(f"{V}/order").respond(200, json=[])
    with pytest.raises(PermanentError, match="outside channel 42"):
        await adapter.create_order(an_order())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (422, {"": ["Product with reference id BONE-5LB is inactive"]}, "inactive"),
        (400, {"Recipient.Address.Country": ["The Country field is required."]}, "Recipient.Address.Country: The Country field is required."),
        (400, {"errors": {"Products": ["At least one product is required"]}, "title": "One or more validation errors occurred."}, "At least one product"),
    ],
)
async def test_other_rejections_are_permanent_with_shipbobs_message(adapter, router, status, body, expected) -> None:
    router.post(f"{V}/order").respond(status, json=body)
    lookup = router.get(f"{V}/order").respond(200, json=[])
    with pytest.raises(PermanentError) as caught:
        await adapter.create_order(an_order())
    assert expected in caught.value.message
    assert caught.value.status == status
    assert lookup.call_count == 0


async def test_find_order(adapter, router) -> None:
    router.get(f"{V}/order", params={"ReferenceIds": "acme-1"}).respond(200, json=[{"id": 5, "reference_id": "acme-1"}])
    router.get(f"{V}/order", params={"ReferenceIds": "acme-2"}).respond(200, json=[])
    found = await adapter.find_order("acme-1")
    assert found is not None and found.warehouse_order_id == "5" and not found.already_existed
    assert await adapter.find_order("acme-2") is None


async def test_find_order_says_when_shipbob_cancelled_it(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=[{"id": 5, "reference_id": "acme-1", "status": "Cancelled"}])
    found = await adapter.find_order("acme-1")
    assert found is not None and (found.status, found.cancelled) == ("Cancelled", True)


# -- cancel ---------------------------------------------------------------------------------


def listed(status: str = "Processing", order_id: int = 5, reference: str = "acme-1") -> list[dict]:
    return [{"id": order_id, "reference_id": reference, "status": status}]


def cancelled_body(status: str, *results: tuple[int, bool, str | None]) -> dict:
    return {
        "order_id": 5,
        "status": status,
        "canceled_shipment_results": [{"shipment_id": sid, "action": "Cancel", "is_success": ok, "reason": why} for sid, ok, why in results],
    }


async def test_cancel_posts_cancel_for_the_order_found_by_reference(adapter, router) -> None:
    lookup = router.get(f"{V}/order", params={"ReferenceIds": "acme-1"}).respond(200, json=listed())
    cancel = router.post(f"{V}/order/5:cancel").respond(200, json=cancelled_body("Success", (900, True, None)))
    result = await adapter.cancel_order("acme-1")
    assert (result.outcome, result.reference, result.warehouse_order_id) == (CancelOutcome.cancelled, "acme-1", "5")
    assert lookup.call_count == 1 and cancel.call_count == 1
    request = cancel.calls.last.request
    assert request.headers["shipbob_channel_id"] == "42" and request.content == b""


async def test_cancel_of_an_order_already_cancelled_sends_nothing(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=listed("Cancelled"))
    cancel = router.post(f"{V}/order/5:cancel").respond(200, json=cancelled_body("Success"))
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.cancelled and "already" in result.reason
    assert cancel.call_count == 0


@pytest.mark.parametrize(
    ("status", "results", "words"),
    [
        ("Failure", [(900, False, "Shipment is already picked and can no longer be canceled.")], ["Failure", "shipment 900: Shipment is already picked"]),
        ("PartialSuccess", [(900, True, None), (901, False, "Shipment is packed")], ["shipment 901: Shipment is packed", "cancelled shipment 900"]),
        ("Failure", [], ["could not cancel order 5 (Failure)"]),
    ],
)
async def test_a_refused_cancel_is_too_late_in_shipbobs_words(adapter, router, status, results, words) -> None:
    router.get(f"{V}/order").respond(200, json=listed())
    router.post(f"{V}/order/5:cancel").respond(200, json=cancelled_body(status, *results))
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.too_late
    for word in words:
        assert word in result.reason


async def test_a_422_is_too_late_unless_the_order_is_cancelled_by_now(adapter, router) -> None:
    lookup = router.get(f"{V}/order")
    lookup.side_effect = [httpx.Response(200, json=listed()), httpx.Response(200, json=listed("Fulfilled"))]
    router.post(f"{V}/order/5:cancel").respond(422, json={"": ["Order 5 is Fulfilled and cannot be canceled."]})
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.too_late
    assert "Order 5 is Fulfilled and cannot be canceled." in result.reason
    # Cancelled by somebody else between our read and our call: it will not ship.
    lookup.side_effect = [httpx.Response(200, json=listed()), httpx.Response(200, json=listed("Cancelled"))]
    assert (await adapter.cancel_order("acme-1")).outcome is CancelOutcome.cancelled


@pytest.mark.parametrize("failure", [httpx.Response(500, json={"": ["boom"]}), httpx.Response(503), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")])
async def test_a_lost_cancel_answer_is_unknown_and_not_resent(adapter, router, failure) -> None:
    router.get(f"{V}/order").respond(200, json=listed())
    cancel = router.post(f"{V}/order/5:cancel")
    cancel.side_effect = [failure, httpx.Response(200, json=cancelled_body("Success"))]
    result = await adapter.cancel_order("acme-1")
    assert (result.outcome, result.warehouse_order_id) == (CancelOutcome.unknown, "5") and result.reason
    assert cancel.call_count == 1


async def test_an_undocumented_answer_is_unknown(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=listed())
    router.post(f"{V}/order/5:cancel").respond(200, json={"order_id": 5})
    assert (await adapter.cancel_order("acme-1")).outcome is CancelOutcome.unknown


async def test_cancel_of_a_reference_shipbob_lacks_is_permanent(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=[{"id": 6, "reference_id": "acme-10", "status": "Processing"}])
    cancel = router.post(url__regex=r".*:cancel$").respond(200, json=cancelled_body("Success"))
    with pytest.raises(PermanentError, match="no ShipBob order with reference acme-1 in channel 42"):
        await adapter.cancel_order("acme-1")
    assert cancel.call_count == 0


@pytest.mark.parametrize(("status", "error"), [(404, PermanentError), (400, PermanentError), (429, RateLimitedError), (401, ConfigurationError)])
async def test_other_cancel_refusals_are_raised(adapter, router, status, error) -> None:
    router.get(f"{V}/order").respond(200, json=listed())
    router.post(f"{V}/order/5:cancel").respond(status, json={"orderId": ["bad"]} if status == 400 else None)
    with pytest.raises(error):
        await adapter.cancel_order("acme-1")


async def test_a_failed_lookup_before_a_cancel_is_raised(adapter, router) -> None:
    router.get(f"{V}/order").respond(503)
    cancel = router.post(url__regex=r".*:cancel$").respond(200, json=cancelled_body("Success"))
    with pytest.raises(TransientError):
        await adapter.cancel_order("acme-1")
    assert cancel.call_count == 0


# -- rate limiting --------------------------------------------------------------------------


async def test_429_raises_rate_limited_with_x_retry_after(adapter, router) -> None:
    route = router.get(f"{V}/order").respond(429, headers={"x-retry-after": "25", "x-remaining-calls": "0"},
                                             json={"statusCode": 429, "message": "Rate limit is exceeded. Try again in 25 seconds."})
    with pytest.raises(RateLimitedError) as caught:
        await adapter.find_order("acme-1")
    assert caught.value.retry_after == 25
    assert "Try again in 25 seconds" in caught.value.message
    assert route.call_count == 1  # never slept on inside the call
    # The credential's limiter now refuses calls until ShipBob's window reopens.
    assert adapter.http.limiter.blocked_until > time.monotonic() + 20
    with pytest.raises(RateLimitedError):
        await adapter.find_order("acme-1")
    assert route.call_count == 1


async def test_remaining_calls_feed_the_limiter(adapter, router) -> None:
    router.get(f"{V}/order", params={"ReferenceIds": "a"}).respond(200, json=[], headers={"x-remaining-calls": "12"})
    router.get(f"{V}/order", params={"ReferenceIds": "b"}).respond(200, json=[], headers={"x-remaining-calls": "0", "x-retry-after": "30"})
    await adapter.find_order("a")
    assert adapter.http.limiter.blocked_until < time.monotonic()
    await adapter.find_order("b")
    assert adapter.http.limiter.blocked_until > time.monotonic() + 25


async def test_no_remaining_calls_without_a_reset_still_slows_down(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=[], headers={"x-remaining-calls": "0"})
    await adapter.find_order("a")
    assert adapter.http.limiter.blocked_until > time.monotonic()


async def test_5xx_on_a_read_is_retried(adapter, router) -> None:
    route = router.get(f"{V}/order")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json=[{"id": 1, "reference_id": "r"}])]
    assert (await adapter.find_order("r")).warehouse_order_id == "1"
    assert route.call_count == 2


# -- setup ----------------------------------------------------------------------------------


async def test_check_finds_the_channel(adapter, router) -> None:
    router.get(f"{V}/channel").respond(200, json={"items": [{"id": 42, "name": "UltraCart", "scopes": []}], "next": None})
    assert "channel 42 (UltraCart)" in await adapter.check()


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(401), "shipbob"),
        (httpx.Response(403), "shipbob"),
        (httpx.Response(200, json={"items": [{"id": 1, "name": "Shopify"}], "next": None}), "channel 42 is not one of"),
        (httpx.Response(404), "api_version"),
    ],
)
async def test_check_configuration_errors(adapter, router, response, match) -> None:
    router.get(f"{V}/channel").mock(return_value=response)
    with pytest.raises(ConfigurationError, match=match):
        await adapter.check()


# -- catalogues -----------------------------------------------------------------------------


async def test_known_skus_follow_the_cursor(adapter, router) -> None:
    page1 = {"items": [{"id": 1, "variants": [{"sku": "A"}, {"sku": " B "}]}], "next": f"https://elsewhere.example{V}/product?PageSize=250&Cursor=c2"}
    page2 = {"items": [{"id": 2, "variants": [{"sku": "C"}, {"sku": None}]}], "next": None}
    route = router.get(f"{V}/product")
    route.side_effect = [httpx.Response(200, json=page1), httpx.Response(200, json=page2)]
    assert await adapter.known_skus() == {"A", "B", "C"}
    first, second = (c.request for c in route.calls)
    assert first.url.params["PageSize"] == "250" and "Cursor" not in first.url.params
    assert second.url.host == "api.shipbob.com" and second.url.params["Cursor"] == "c2"


async def test_known_ship_methods_are_the_active_ones(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "PAGE_LIMIT", 2)
    route = router.get(f"{V}/shipping-method")
    route.side_effect = [
        httpx.Response(200, json=[{"id": 1, "name": "Ground", "active": True}, {"id": 2, "name": "Old", "active": False}]),
        httpx.Response(200, json=[{"id": 3, "name": "2-Day", "active": True}]),
    ]
    assert await adapter.known_ship_methods() == {"Ground", "2-Day"}
    assert [c.request.url.params["Page"] for c in route.calls] == ["1", "2"]


# -- shipments ------------------------------------------------------------------------------


def sb_shipment(sid: int, status: str, tracking: str | None, products, uploaded: bool = False) -> dict:
    shipment = {
        "id": sid, "order_id": 900, "status": status, "is_tracking_uploaded": uploaded, "invoice_amount": 6.25,
        "products": [
            {"id": 1, "reference_id": sku, "sku": sku, "inventory_items": [{"id": 11, "quantity": q}]} for sku, q in products
        ],
    }
    if tracking is not None:
        shipment["tracking"] = {"carrier": "USPS", "carrier_service": "Priority", "tracking_number": tracking,
                                "shipping_date": "2026-03-05T10:00:00Z"}
    return shipment


async def test_shipments_since_maps_and_filters(adapter, router) -> None:
    order = {
        "id": 900, "reference_id": "acme-1", "channel": {"id": 42},
        "products": [{"reference_id": "A", "quantity": 2}, {"reference_id": "B", "quantity": 1}],
        "shipments": [
            sb_shipment(1, "Completed", " 9400111 ", [("A", 2)]),
            sb_shipment(2, "Completed", "   ", [("B", 1)]),
            sb_shipment(3, "Cancelled", "VOID1", [("A", 2)]),
            sb_shipment(4, "Cancelled", None, [("A", 2)]),  # cancelled before a label: nothing to say
            sb_shipment(5, "Processing", None, [("B", 1)]),
            sb_shipment(6, "Completed", "OLD", [("A", 1)], uploaded=True),
        ],
    }
    foreign = {"id": 901, "reference_id": "shopify-1", "channel": {"id": 3}, "shipments": [sb_shipment(7, "Completed", "X", [("A", 1)])]}
    route = router.get(f"{V}/order").respond(200, json=[order, foreign])
    shipments = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    params = route.calls.last.request.url.params
    assert params["IsTrackingUploaded"] == "false"
    assert params["LastTrackingUpdateStartDate"] == "2026-03-01T00:00:00Z"
    assert (params["Page"], params["Limit"]) == ("1", "250")
    by_id = {s.shipment_id: s for s in shipments}
    assert sorted(by_id) == ["1", "2", "3"]
    one = by_id["1"]
    assert (one.reference, one.warehouse_order_id, one.carrier, one.service) == ("acme-1", "900", "USPS", "Priority")
    assert one.tracking_numbers == ["9400111"]
    assert [(line.sku, line.quantity) for line in one.lines] == [("A", 2)]
    assert one.shipped_at == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert one.shipping_cost == Decimal("6.25") and not one.voided
    assert by_id["2"].tracking_numbers == []
    assert by_id["3"].voided and by_id["3"].tracking_numbers == ["VOID1"]


async def test_shipments_page_until_a_short_page(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "PAGE_LIMIT", 2)

    def order(i: int) -> dict:
        return {"id": i, "reference_id": f"acme-r{i}", "shipments": [sb_shipment(100 + i, "Completed", f"T{i}", [("A", 1)])]}

    route = router.get(f"{V}/order")
    route.side_effect = [httpx.Response(200, json=[order(1), order(2)]), httpx.Response(200, json=[order(3)])]
    shipments = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    assert [s.reference for s in shipments] == ["acme-r1", "acme-r2", "acme-r3"]
    assert route.call_count == 2


async def test_shipments_of_other_merchants_on_the_account_are_not_ours(adapter, router) -> None:
    router.get(f"{V}/order").respond(200, json=[
        {"id": 1, "reference_id": "acme-1", "shipments": [sb_shipment(101, "Completed", "T1", [("A", 1)])]},
        {"id": 2, "reference_id": "globex-1", "shipments": [sb_shipment(102, "Completed", "T2", [("A", 1)])]},
        {"id": 3, "reference_id": "#1001", "shipments": [sb_shipment(103, "Completed", "T3", [("A", 1)])]},
    ])
    shipments = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    assert [s.reference for s in shipments] == ["acme-1"]


async def test_acknowledge_marks_tracking_uploaded(adapter, router) -> None:
    route = router.post(f"{V}/shipment:batchUpdateTrackingUpload").respond(
        200, json={"results": [{"isSuccess": True, "shipmentId": 1}, {"isSuccess": True, "shipmentId": 2}], "summary": {"failed": 0, "successful": 2, "total": 2}}
    )
    shipments = [Shipment(shipment_id=sid, reference="r") for sid in ("2", "1", "2")]
    await adapter.acknowledge_shipments(shipments)
    assert json.loads(route.calls.last.request.content) == {"shipment_ids": [1, 2], "is_tracking_uploaded": True}


async def test_acknowledge_reports_refusals(adapter, router) -> None:
    router.post(f"{V}/shipment:batchUpdateTrackingUpload").respond(
        200, json={"results": [{"isSuccess": False, "shipmentId": 3, "error": {"code": "NotFound", "message": "Shipment 3 not found"}}]}
    )
    with pytest.raises(PermanentError, match="Shipment 3 not found"):
        await adapter.acknowledge_shipments([Shipment(shipment_id="3", reference="r")])


async def test_acknowledge_nothing_sends_nothing(adapter, router) -> None:
    route = router.post(f"{V}/shipment:batchUpdateTrackingUpload").respond(200, json={})
    await adapter.acknowledge_shipments([])
    assert route.call_count == 0


# -- stock ----------------------------------------------------------------------------------


async def test_stock_levels_per_fulfillment_center(adapter, router) -> None:
    page1 = {
        "items": [
            {"inventory_id": 1, "sku": "A", "locations": [
                {"location_id": 10, "fulfillable_quantity": 5, "on_hand_quantity": 8, "committed_quantity": 3},
                {"location_id": 11, "fulfillable_quantity": -2, "on_hand_quantity": 0},
            ]},
            {"inventory_id": 2, "sku": "", "locations": [{"location_id": 10, "fulfillable_quantity": 1}]},
        ],
        "next": f"{BASE}{V}/inventory-level/locations?PageSize=250&Cursor=n2",
    }
    page2 = {"items": [{"inventory_id": 3, "sku": "B", "locations": [{"location_id": 11, "fulfillable_quantity": 4, "on_hand_quantity": 4}]}]}
    route = router.get(f"{V}/inventory-level/locations")
    route.side_effect = [httpx.Response(200, json=page1), httpx.Response(200, json=page2)]
    levels = [(lv.sku, lv.warehouse_id, lv.available, lv.on_hand) for lv in await adapter.stock_levels()]
    assert levels == [("A", "10", 5, 8), ("A", "11", 0, 0), ("B", "11", 4, 4)]
    assert route.calls.last.request.url.params["Cursor"] == "n2"


def test_config_rejects_a_channel_name() -> None:
    from pydantic import ValidationError

    from adapters.shipbob import ShipBobConfig

    with pytest.raises(ValidationError, match="channel"):
        ShipBobConfig(adapter="shipbob", token="t", channel_id="My Store")
    config = ShipBobConfig(adapter="shipbob", token="secret-token", channel_id=5)
    assert config.secrets() == ["secret-token"]
    assert (config.base_url, config.api_version, config.rate_per_minute) == ("https://api.shipbob.com", "2026-01", 150)


# -- webhooks -------------------------------------------------------------------------------

HOOK_URL = "https://connector.example/webhooks/warehouse/acme/tok-123"
SECRET = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 32 base64 characters, as the connector makes them


def subscription(sub_id: str, topics: list[str], url: str = HOOK_URL, enabled: bool = True) -> dict:
    return {"id": sub_id, "url": url, "topics": topics, "enabled": enabled, "created_at": "2026-01-02T03:04:05Z"}


async def test_register_webhooks_creates_one_signed_subscription_for_every_topic(adapter, router) -> None:
    router.get(f"{V}/webhook").respond(200, json={"items": [subscription("1", ["order.shipped"], url="https://other.example/x")], "next": None})
    create = router.post(f"{V}/webhook").respond(200, json={"id": "77", "url": HOOK_URL, "topics": [], "created_at": "2026-01-02T03:04:05Z"})
    lines = await adapter.register_webhooks(HOOK_URL, SECRET)
    body = json.loads(create.calls.last.request.content)
    assert body["url"] == HOOK_URL and body["secret"] == "whsec_" + SECRET
    assert body["topics"] == ["order.shipped", "order.shipment.cancelled", "order.shipment.on_hold"]
    assert lines == ["subscribed (id 77): order.shipped, order.shipment.cancelled, order.shipment.on_hold, signed"]


async def test_register_webhooks_is_idempotent_and_fills_only_missing_topics(adapter, router) -> None:
    listing = router.get(f"{V}/webhook").respond(200, json={"items": [
        subscription("1", ["order.shipped", "order.shipment.cancelled"]), subscription("2", ["order.shipment.on_hold"], enabled=False)]})
    create = router.post(f"{V}/webhook").respond(200, json={"id": "78"})
    lines = await adapter.register_webhooks(HOOK_URL, SECRET)
    assert json.loads(create.calls.last.request.content)["topics"] == ["order.shipment.on_hold"]  # the disabled one does not count
    assert any("subscription 2 is disabled" in line for line in lines)
    assert any(line.startswith("already subscribed: order.shipped, order.shipment.cancelled") for line in lines)
    listing.respond(200, json={"items": [subscription("1", ["order.shipped", "order.shipment.cancelled"]), subscription("78", ["order.shipment.on_hold"])]})
    assert await adapter.register_webhooks(HOOK_URL, SECRET) == ["already subscribed: order.shipped, order.shipment.cancelled, order.shipment.on_hold"]
    assert create.call_count == 1
    assert await adapter.webhook_urls() == {HOOK_URL}


async def test_webhook_urls_lists_only_urls_with_every_topic(adapter, router) -> None:
    router.get(f"{V}/webhook", params={"Cursor": "p2"}).respond(200, json={"items": [subscription("3", ["order.shipment.on_hold"])], "next": None})
    router.get(f"{V}/webhook").respond(200, json={"items": [
        subscription("1", ["order.shipped", "order.shipment.cancelled"]),
        subscription("2", ["order.shipped"], url="https://other.example/x")], "next": f"{BASE}{V}/webhook?Cursor=p2"})
    assert await adapter.webhook_urls() == {HOOK_URL}  # its third topic came on the second page


def signed(body: bytes, *, secret: str = SECRET, msg_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": stamp,
            "Webhook-Signature": "v0,x " + adapter_module.mapping.webhook_signature(base64.b64decode(secret), msg_id, stamp, body)}


async def test_verify_webhook_checks_shipbobs_signature(adapter) -> None:
    body = b'{"id": 1, "reference_id": "acme-1"}'
    assert adapter.verify_webhook(signed(body), body, SECRET)
    assert adapter.verify_webhook(signed(body), body, "whsec_" + SECRET)
    assert not adapter.verify_webhook(signed(body), body + b" ", SECRET)  # the body changed
    assert not adapter.verify_webhook(signed(body, secret="A" * 32), body, SECRET)  # someone else's secret
    assert not adapter.verify_webhook(signed(body, at=time.time() - 600), body, SECRET)  # a replay, 10 minutes late
    assert not adapter.verify_webhook(signed(body), body, "")  # no secret here: nothing can be trusted
    assert not adapter.verify_webhook({}, body, SECRET)
    headers = signed(body)
    headers["Webhook-Id"] = "msg_2"  # the signature covers the id
    assert not adapter.verify_webhook(headers, body, SECRET)


async def test_webhook_hints_name_the_order_or_shipment(adapter) -> None:
    order = {"id": 1005, "reference_id": "acme-DEMO-1", "shipments": [{"id": 9}], "recipient": {"name": "x"}}
    assert adapter.webhook_hints(order) == [{"topic": "order.shipped", "id": "1005", "reference": "acme-DEMO-1"}]
    shipment = {"id": 500001, "order_id": 1005, "reference_id": "acme-DEMO-1", "status": "OnHold"}
    assert adapter.webhook_hints(shipment) == [{"topic": "", "id": "500001", "order_id": "1005", "reference": "acme-DEMO-1"}]
    assert adapter.webhook_hints({"topic": "order.shipment.on_hold", "data": shipment})[0]["topic"] == "order.shipment.on_hold"
    assert adapter.webhook_hints({"id": True, "reference_id": {"x": 1}}) == []
    assert adapter.webhook_hints({"id": "9" * 500})[0]["id"] == "9" * 100
