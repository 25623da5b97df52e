"""The ShipStation v1 adapter against respx: request shapes, error handling, paging, rate headers,
Pacific time.

ShipStation publishes no machine-readable v1 document (research A.2: the only copy found is a
hand reconstruction with errors), so there is no spec file to validate against. Instead every
request goes through `ShipStationV1Facts`, which checks it against the documented v1 facts:
known paths and methods, documented query names, Basic auth, `pageSize` <= 500, Pacific dates
without an offset, and the createorder body's required fields and field names.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.base import AdapterContext, order_reference
from adapters.http import Limiters
from adapters.shipstation import ShipStationAdapter, ShipStationConfig, mapping
from adapters.shipstation import adapter as adapter_module
from connector.domain import Address, CancelOutcome, Order, Weight, WarehouseLine, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError, RateLimitedError, TransientError
from tests.support.openapi import validated_router

BASE = "https://ssapi.shipstation.com"

# -- the documented v1 facts, as a request validator -----------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$")  # a Pacific date or datetime, no offset
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?$")
_ORDER_QUERY = {
    "customerName", "itemKeyword", "createDateStart", "createDateEnd", "customsCountryCode", "modifyDateStart",
    "modifyDateEnd", "orderDateStart", "orderDateEnd", "orderNumber", "orderStatus", "paymentDateStart",
    "paymentDateEnd", "storeId", "sortBy", "sortDir", "page", "pageSize",
}
_SHIPMENT_QUERY = {
    "recipientName", "recipientCountryCode", "orderNumber", "orderId", "carrierCode", "serviceCode", "trackingNumber",
    "createDateStart", "createDateEnd", "shipDateStart", "shipDateEnd", "voidDateStart", "voidDateEnd", "storeId",
    "includeShipmentItems", "sortBy", "sortDir", "page", "pageSize",
}
_ENDPOINTS: list[tuple[str, re.Pattern[str], set[str], set[str]]] = [  # method, path, allowed query, required query
    ("POST", re.compile(r"^/orders/createorder$"), set(), set()),
    ("GET", re.compile(r"^/orders$"), _ORDER_QUERY, set()),
    ("GET", re.compile(r"^/shipments$"), _SHIPMENT_QUERY, set()),
    ("GET", re.compile(r"^/carriers$"), set(), set()),
    ("GET", re.compile(r"^/carriers/listservices$"), {"carrierCode"}, {"carrierCode"}),
    ("GET", re.compile(r"^/stores/\d+$"), set(), set()),
    ("GET", re.compile(r"^/webhooks$"), set(), set()),
    ("POST", re.compile(r"^/webhooks/subscribe$"), set(), set()),
]
_WEBHOOK_EVENTS = {"ORDER_NOTIFY", "ITEM_ORDER_NOTIFY", "SHIP_NOTIFY", "ITEM_SHIP_NOTIFY", "FULFILLMENT_SHIPPED", "FULFILLMENT_REJECTED"}
_ORDER_FIELDS = {
    "orderNumber", "orderKey", "orderDate", "paymentDate", "shipByDate", "orderStatus", "customerId", "customerUsername",
    "customerEmail", "billTo", "shipTo", "items", "amountPaid", "taxAmount", "shippingAmount", "customerNotes",
    "internalNotes", "gift", "giftMessage", "paymentMethod", "requestedShippingService", "carrierCode", "serviceCode",
    "packageCode", "confirmation", "shipDate", "holdUntilDate", "weight", "dimensions", "insuranceOptions",
    "internationalOptions", "advancedOptions", "tagIds",
}
_ADDRESS_FIELDS = {"name", "company", "street1", "street2", "street3", "city", "state", "postalCode", "country", "phone", "residential"}
_ITEM_FIELDS = {
    "lineItemKey", "sku", "name", "imageUrl", "weight", "quantity", "unitPrice", "taxAmount", "shippingAmount",
    "warehouseLocation", "options", "productId", "fulfillmentSku", "adjustment", "upc",
}
_ADVANCED_FIELDS = {
    "warehouseId", "nonMachinable", "saturdayDelivery", "containsAlcohol", "storeId", "customField1", "customField2",
    "customField3", "source", "billToParty", "billToAccount", "billToPostalCode", "billToCountryCode", "billToMyOtherAccount",
}
_STATUSES = {"awaiting_payment", "awaiting_shipment", "shipped", "on_hold", "cancelled"}


class ShipStationV1Facts:
    """Checks requests against ShipStation's documented v1 API (duck-types SpecValidator, so it
    plugs into `validated_router` and `ValidatingTransport`)."""

    name = "shipstation-v1 (documented facts; no official spec file)"

    def validate_request(self, request: httpx.Request, base_url: str | None = None) -> None:
        what = f"{self.name}: {request.method} {request.url}"
        auth = request.headers.get("authorization", "")
        assert auth.startswith("Basic "), f"{what}: no HTTP Basic credentials"
        key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        assert key and secret, f"{what}: Basic credentials must be key:secret"
        path = request.url.path
        for method, rx, allowed, required in _ENDPOINTS:
            if rx.match(path):
                assert request.method == method, f"{what}: {path} takes {method}"
                break
        else:
            raise AssertionError(f"{what}: not a v1 endpoint the adapter may use")
        sent = dict(request.url.params.multi_items())
        unknown = set(sent) - allowed
        assert not unknown, f"{what}: undocumented query parameter(s) {sorted(unknown)}"
        assert required <= set(sent), f"{what}: missing {sorted(required - set(sent))}"
        if "pageSize" in sent:
            assert 1 <= int(sent["pageSize"]) <= 500, f"{what}: pageSize over 500"
        if "page" in sent:
            assert int(sent["page"]) >= 1
        for name, value in sent.items():
            if name.endswith(("DateStart", "DateEnd")):
                assert _DATE.match(value), f"{what}: {name}={value!r} is not a Pacific date without an offset"
        if "includeShipmentItems" in sent:
            assert sent["includeShipmentItems"] in ("true", "false")
        if "storeId" in sent:
            assert sent["storeId"].isdigit()
        if request.method == "POST":
            assert request.headers.get("content-type", "").startswith("application/json"), f"{what}: not JSON"
            if path == "/webhooks/subscribe":
                self._subscription(what, json.loads(request.content))
            else:
                self._order(what, json.loads(request.content))

    def _subscription(self, what: str, body: object) -> None:
        """`POST /webhooks/subscribe`: target_url and event required; store_id and friendly_name optional."""
        assert isinstance(body, dict), f"{what}: the body must be an object"
        assert not set(body) - {"target_url", "event", "store_id", "friendly_name"}, f"{what}: unknown fields {sorted(body)}"
        assert isinstance(body.get("target_url"), str) and body["target_url"].startswith(("https://", "http://")), f"{what}: target_url"
        assert body.get("event") in _WEBHOOK_EVENTS, f"{what}: event {body.get('event')!r}"
        assert body.get("store_id") is None or isinstance(body["store_id"], int), f"{what}: store_id must be a number"

    def _order(self, what: str, body: object) -> None:
        assert isinstance(body, dict), f"{what}: the body must be an order object"
        unknown = set(body) - _ORDER_FIELDS
        assert not unknown, f"{what}: fields not in the v1 Order model: {sorted(unknown)}"
        for field in ("orderNumber", "orderDate", "orderStatus", "billTo", "shipTo"):
            assert body.get(field), f"{what}: {field} is required"
        assert body["orderStatus"] in _STATUSES
        assert 0 < len(body.get("orderKey") or "") <= 50, f"{what}: orderKey (our reference) must be sent"
        for field in ("orderDate", "paymentDate", "shipByDate", "shipDate", "holdUntilDate"):
            if body.get(field) is not None:
                assert _STAMP.match(body[field]), f"{what}: {field}={body[field]!r} is not a Pacific time without an offset"
        for field in ("billTo", "shipTo"):
            assert not set(body[field]) - _ADDRESS_FIELDS, f"{what}: {field} has fields not in the Address model"
            assert body[field].get("name"), f"{what}: {field}.name is required"
        country = body["shipTo"].get("country")
        assert country and len(country) == 2 and country.isupper(), f"{what}: shipTo.country must be ISO alpha-2"
        for item in body.get("items") or []:
            assert not set(item) - _ITEM_FIELDS, f"{what}: item fields not in the OrderItem model: {sorted(set(item) - _ITEM_FIELDS)}"
            assert isinstance(item.get("quantity"), int) and item["quantity"] > 0
        if body.get("weight") is not None:
            assert body["weight"].get("units") in ("pounds", "ounces", "grams")
        assert not set(body.get("advancedOptions") or {}) - _ADVANCED_FIELDS
        if body.get("serviceCode"):
            assert body.get("carrierCode"), f"{what}: a serviceCode needs its carrierCode"

    def validate_response(self, request: httpx.Request, response: httpx.Response, base_url: str | None = None) -> None:
        """List answers carry the documented paging fields."""
        if request.method == "GET" and request.url.path in ("/orders", "/shipments") and response.status_code == 200:
            body = response.json()
            for field in ("total", "page", "pages", request.url.path.strip("/")):
                assert field in body, f"{self.name}: {request.url.path} answer lacks {field!r}"


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def router():
    r = validated_router(ShipStationV1Facts(), base_url=BASE)
    yield r
    r.assert_valid()


@pytest.fixture
def secret() -> str:
    return "secret-test"


@pytest.fixture
def limiters() -> Limiters:
    return Limiters()  # the runtime's are shared: a 429 here must never slow another test


@pytest.fixture
async def adapter(router, secret, limiters):
    config = {"adapter": "shipstation", "api_key": "key-1", "api_secret": secret, "store_id": 777}
    a = ShipStationAdapter(config, AdapterContext(merchant="acme", transport=router.transport(), limiters=limiters))
    yield a
    await a.aclose()


def an_order(reference: str = "acme-DEMO-1001", created: datetime = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) -> WarehouseOrder:
    cart = Order(
        order_id=reference.removeprefix("acme-"),
        created_at=created,
        ship_to=Address(
            first_name="Ada", last_name="Lovelace", company="Engines Ltd", address1="12 Way", address2="Unit 3",
            city="Springfield", state="IL", postal_code="62701", country_code="us", phone="555-0100",
        ),
        email="ada@example.com",
        ship_method="UPS: Ground",
        payment_method="Credit Card",
        total=Decimal("31.50"), tax=Decimal("1.50"), shipping_total=Decimal("5.00"),
        gift=True, gift_message="Happy birthday",
        customer_notes="Leave at the back door", internal_notes="VIP",
        weight=Weight(value=Decimal("2"), uom="LB"),
    )
    lines = [
        WarehouseLine(sku="BONE-5LB", quantity=2, description="Bone, 5 lb", unit_price=Decimal("9.75")),
        WarehouseLine(sku="TREAT", quantity=1),
        WarehouseLine(sku="TREAT", quantity=2, cart_sku="GIFT-SET"),
    ]
    return WarehouseOrder(reference=reference, order=cart, ship_method="ups:ups_ground", lines=lines)


def ss_order(order_id: int, key: str, number: str = "DEMO-1001", created: str = "2026-03-03T21:06:09.1230000", modified: str | None = None) -> dict:
    return {"orderId": order_id, "orderKey": key, "orderNumber": number, "orderStatus": "awaiting_shipment",
            "createDate": created, "modifyDate": modified or created}


def page(key: str, records: list, number: int = 1, pages: int = 1) -> dict:
    return {key: records, "total": len(records), "page": number, "pages": pages}


# -- the official spec --------------------------------------------------------------------------------


def test_official_spec() -> None:
    pytest.skip("no official ShipStation v1 spec is published (research A.2); requests are checked against "
                "the documented facts instead (ShipStationV1Facts)")


def test_the_facts_checker_catches_what_shipstation_would_reject() -> None:
    facts = ShipStationV1Facts()
    auth = {"Authorization": "Basic " + base64.b64encode(b"k:s").decode()}
    facts.validate_request(httpx.Request("GET", f"{BASE}/orders", headers=auth, params={"orderNumber": "1", "pageSize": 500}))
    bad = [
        httpx.Request("GET", f"{BASE}/orders", params={"orderNumber": "1"}),  # no credentials
        httpx.Request("GET", f"{BASE}/orders", headers=auth, params={"orderKey": "acme-1"}),  # v1 has no such filter
        httpx.Request("GET", f"{BASE}/shipments", headers=auth, params={"pageSize": 1000}),
        httpx.Request("GET", f"{BASE}/shipments", headers=auth, params={"shipDateStart": "2026-03-05T03:00:00Z"}),  # UTC
        httpx.Request("POST", f"{BASE}/orders", headers=auth, json={}),  # the reconstruction's mistake
        httpx.Request("POST", f"{BASE}/orders/createorder", headers=auth, json={"orderNumber": "1"}),
        httpx.Request("GET", f"{BASE}/carriers/listservices", headers=auth),
    ]
    for request in bad:
        with pytest.raises(AssertionError):
            facts.validate_request(request)


# -- config -----------------------------------------------------------------------------------------


def test_config_keys_and_secrets() -> None:
    c = ShipStationConfig.model_validate({"adapter": "shipstation", "api_key": "k", "api_secret": "s", "store_id": "42"})
    assert (c.base_url, c.store_id, c.rate_per_minute) == (BASE, 42, 40)
    assert set(c.secrets()) == {"k", "s", base64.b64encode(b"k:s").decode()}
    for bad in ({"store_id": "Main store"}, {"rate_per_minute": 0}, {"api_secret": ""}, {"token": "x"}):
        with pytest.raises(ValueError):
            ShipStationConfig.model_validate({"adapter": "shipstation", "api_key": "k", "api_secret": "s", **bad})


def test_capabilities() -> None:
    caps = ShipStationAdapter.capabilities
    assert (caps.inventory, caps.shipment_ack, caps.sku_catalog, caps.ship_method_catalog) == (False, False, False, True)


# -- Pacific time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("instant", "wall"), [
    (datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), "2026-03-03T21:06:07.0000000"),  # PST, the day before
    (datetime(2026, 7, 4, 5, 6, 7, tzinfo=UTC), "2026-07-03T22:06:07.0000000"),  # PDT
    (datetime(2026, 3, 8, 10, 0, 0, tzinfo=UTC), "2026-03-08T03:00:00.0000000"),  # the spring-forward instant
    (datetime(2026, 11, 1, 9, 30, 0, tzinfo=UTC), "2026-11-01T01:30:00.0000000"),  # the repeated hour, second pass
])
def test_times_are_sent_as_pacific_wall_time(instant, wall) -> None:
    assert mapping.stamp(instant) == wall
    assert mapping.parse_time(wall) == instant or instant.month == 11  # 01:30 is ambiguous: read as PDT
    assert mapping.parse_time("2026-11-01T01:30:00.0000000") == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def test_pacific_dates_follow_the_tz_database_across_every_change_of_clocks() -> None:
    # The adapter's Pacific time is zoneinfo's: each date filter is the Los Angeles calendar day,
    # every 7 hours for three years and every 10 minutes around each change of clocks.
    la = ZoneInfo("America/Los_Angeles")
    moments = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(3 * 1252)]
    for change in (datetime(y, m, d, 10, tzinfo=UTC) for y, m, d in ((2025, 3, 9), (2025, 11, 2), (2026, 3, 8), (2026, 11, 1), (2027, 3, 14), (2027, 11, 7))):
        moments += [change + timedelta(minutes=10 * i) for i in range(-30, 30)]
    for moment in moments:
        assert mapping.pacific_date(moment) == moment.astimezone(la).date().isoformat(), moment
        assert mapping.parse_time(mapping.stamp(moment)) in (moment, moment - timedelta(hours=1)), moment  # 1 h off only in the repeated hour


def test_parse_reads_shipstation_forms() -> None:
    assert mapping.parse_time("2015-06-29T08:46:27.0000000") == datetime(2015, 6, 29, 15, 46, 27, tzinfo=UTC)
    assert mapping.parse_time("2015-06-29") == datetime(2015, 6, 29, 7, 0, tzinfo=UTC)
    assert mapping.parse_time("2015-06-29T08:46:27Z") == datetime(2015, 6, 29, 8, 46, 27, tzinfo=UTC)
    assert mapping.parse_time("not a date") is None and mapping.parse_time(None) is None


# -- create -----------------------------------------------------------------------------------------


async def test_create_looks_up_then_sends_the_whole_order(adapter, router, secret) -> None:
    lookup = router.get("/orders").respond(200, json=page("orders", []))
    create = router.post("/orders/createorder").respond(200, json=ss_order(555, "acme-DEMO-1001"))
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.reference, result.already_existed) == ("555", "acme-DEMO-1001", False)
    assert lookup.calls.last.request.url.params["orderNumber"] == "DEMO-1001"
    request = create.calls.last.request
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"key-1:{secret}".encode()).decode()
    body = json.loads(request.content)
    assert (body["orderKey"], body["orderNumber"], body["orderStatus"]) == ("acme-DEMO-1001", "DEMO-1001", "awaiting_shipment")
    assert body["orderDate"] == "2026-03-03T21:06:07.0000000"  # 05:06 UTC is the evening before in Pacific time
    assert (body["carrierCode"], body["serviceCode"], body["requestedShippingService"]) == ("ups", "ups_ground", "UPS: Ground")
    assert body["shipTo"] == {
        "name": "Ada Lovelace", "company": "Engines Ltd", "street1": "12 Way", "street2": "Unit 3", "city": "Springfield",
        "state": "IL", "postalCode": "62701", "country": "US", "phone": "555-0100",
    }
    assert body["billTo"] == {"name": "Ada Lovelace"}  # no billing address: ShipStation still wants a name
    assert body["items"] == [  # lines sharing a SKU are merged; the name falls back to the SKU
        {"lineItemKey": "BONE-5LB", "sku": "BONE-5LB", "name": "Bone, 5 lb", "quantity": 2, "unitPrice": 9.75},
        {"lineItemKey": "TREAT", "sku": "TREAT", "name": "TREAT", "quantity": 3},
    ]
    assert (body["amountPaid"], body["taxAmount"], body["shippingAmount"]) == (31.5, 1.5, 5.0)
    assert (body["gift"], body["giftMessage"], body["customerNotes"], body["internalNotes"]) == (True, "Happy birthday", "Leave at the back door", "VIP")
    assert (body["customerEmail"], body["customerUsername"], body["paymentMethod"]) == ("ada@example.com", "ada@example.com", "Credit Card")
    assert body["weight"] == {"value": 32.0, "units": "ounces"}
    assert body["advancedOptions"] == {"storeId": 777}


async def test_summer_orders_are_stamped_in_daylight_time(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", []))
    create = router.post("/orders/createorder").respond(200, json=ss_order(1, "acme-DEMO-1001"))
    await adapter.create_order(an_order(created=datetime(2026, 7, 1, 18, 0, tzinfo=UTC)))
    assert json.loads(create.calls.last.request.content)["orderDate"] == "2026-07-01T11:00:00.0000000"


@pytest.mark.parametrize(("method", "expected"), [
    ("ups", {"carrierCode": "ups"}),  # ShipStation (a rule, the packer) picks the service
    ("", {}),
    (" stamps_com : usps_priority_mail ", {"carrierCode": "stamps_com", "serviceCode": "usps_priority_mail"}),
])
async def test_ship_method_forms(adapter, router, method, expected) -> None:
    router.get("/orders").respond(200, json=page("orders", []))
    create = router.post("/orders/createorder").respond(200, json=ss_order(1, "acme-DEMO-1001"))
    await adapter.create_order(an_order().model_copy(update={"ship_method": method}))
    body = json.loads(create.calls.last.request.content)
    assert {k: body[k] for k in ("carrierCode", "serviceCode") if k in body} == expected


async def test_an_existing_order_is_returned_not_overwritten(adapter, router) -> None:
    # "starts with" brings DEMO-10010 too; only the exact orderKey counts. A shipped order
    # cannot be updated in ShipStation, and an open one would lose the warehouse's edits.
    router.get("/orders").respond(200, json=page("orders", [
        ss_order(9, "acme-DEMO-10010", "DEMO-10010"), dict(ss_order(777, "acme-DEMO-1001"), orderStatus="shipped"),
    ]))
    create = router.post("/orders/createorder").respond(200, json=ss_order(1, "x"))
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("777", True)
    assert create.call_count == 0


async def test_an_order_that_appeared_meanwhile_is_reported_as_existing(adapter, router) -> None:
    # Another process created it between our lookup and our send: the upsert updated it, which
    # ShipStation shows by a modifyDate later than its createDate.
    router.get("/orders").respond(200, json=page("orders", []))
    router.post("/orders/createorder").respond(
        200, json=ss_order(321, "acme-DEMO-1001", modified="2026-03-03T21:09:00.5000000"))
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("321", True)


async def test_an_answer_for_another_key_is_refused(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", []))
    router.post("/orders/createorder").respond(200, json=ss_order(1, "0f6bec18-generated"))
    with pytest.raises(PermanentError, match="another order's key"):
        await adapter.create_order(an_order())


@pytest.mark.parametrize(("body", "expected"), [
    ({"Message": "The request is invalid.", "ModelState": {"apiOrder.shipTo": ["The shipTo field is required."]}},
     "The request is invalid.; apiOrder.shipTo: The shipTo field is required."),
    ({"Message": "An error has occurred.", "ExceptionMessage": "Invalid carrierCode"}, "Invalid carrierCode; An error has occurred."),
    ("Bad Request", "Bad Request"),
])
async def test_rejections_are_permanent_with_shipstations_message(adapter, router, body, expected) -> None:
    router.get("/orders").respond(200, json=page("orders", []))
    route = router.post("/orders/createorder")
    route.return_value = httpx.Response(400, json=body) if isinstance(body, dict) else httpx.Response(400, text=body)
    with pytest.raises(PermanentError) as caught:
        await adapter.create_order(an_order())
    assert caught.value.message == expected and caught.value.status == 400


async def test_a_failed_lookup_sends_nothing(adapter, router) -> None:
    router.get("/orders").respond(503)
    create = router.post("/orders/createorder").respond(200, json=ss_order(1, "acme-DEMO-1001"))
    with pytest.raises(TransientError):
        await adapter.create_order(an_order())
    assert create.call_count == 0


# -- lookup -------------------------------------------------------------------------------------------


async def test_find_order_pages_through_the_starts_with_matches(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "PAGE_SIZE", 2)
    route = router.get("/orders")
    route.side_effect = [
        httpx.Response(200, json=page("orders", [ss_order(1, "acme-DEMO-10"), ss_order(2, "acme-DEMO-100")], 1, 2)),
        httpx.Response(200, json=page("orders", [ss_order(3, "acme-DEMO-1")], 2, 2)),
    ]
    found = await adapter.find_order("acme-DEMO-1")
    assert found is not None and (found.warehouse_order_id, found.already_existed) == ("3", False)
    assert [(c.request.url.params["page"], c.request.url.params["pageSize"]) for c in route.calls] == [("1", "2"), ("2", "2")]
    assert all(c.request.url.params["orderNumber"] == "DEMO-1" for c in route.calls)


async def test_find_order_absent(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [ss_order(1, "globex-DEMO-1", "DEMO-1")]))
    assert await adapter.find_order("acme-DEMO-1") is None  # same number, another merchant's key


def test_lookup_numbers() -> None:
    assert mapping.lookup_number("acme-DEMO-1001", "acme") == "DEMO-1001"
    assert mapping.lookup_number("acme-east-7", "acme-east") == "7"
    assert mapping.lookup_number("other-7", "acme") == "other-7"
    long_id = "A" * 60
    ref = order_reference("acme", long_id)
    assert len(ref) == 50 and mapping.lookup_number(ref, "acme") == long_id[:34]  # the kept head of the id


async def test_find_order_says_when_the_order_is_cancelled(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [dict(ss_order(9, "acme-DEMO-1001"), orderStatus="cancelled")]))
    found = await adapter.find_order("acme-DEMO-1001")
    assert (found.status, found.cancelled) == ("cancelled", True)


# -- cancel -------------------------------------------------------------------------------------------


def held_order(status: str = "on_hold") -> dict:
    """An order as `GET /orders` lists it: read-only fields included, and what the warehouse
    changed in ShipStation (a hold date, a service, notes) that a re-post must keep."""
    address = {"name": "Ada Lovelace", "company": "Engines Ltd", "street1": "12 Way", "street2": "Unit 3", "street3": None,
               "city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US", "phone": "555-0100",
               "residential": False, "addressVerified": "Address validated successfully"}
    return dict(
        ss_order(9, "acme-DEMO-1001"), orderStatus=status, orderDate="2026-03-03T21:06:07.0000000", paymentDate=None,
        shipByDate=None, customerId=40009, customerUsername="ada@example.com", customerEmail="ada@example.com",
        billTo=dict(address), shipTo=dict(address), orderTotal=31.5, amountPaid=31.5, taxAmount=1.5, shippingAmount=5.0,
        customerNotes="Leave at the back door", internalNotes="VIP; packer: gift wrap", gift=True, giftMessage="Happy birthday",
        paymentMethod="Credit Card", requestedShippingService="UPS: Ground", carrierCode="ups", serviceCode="ups_2nd_day_air",
        packageCode="package", confirmation="none", shipDate=None, holdUntilDate="2026-03-10T00:00:00.0000000",
        weight={"value": 32, "units": "ounces", "WeightUnits": 1}, dimensions=None,
        insuranceOptions={"provider": None, "insureShipment": False, "insuredValue": 0},
        internationalOptions={"contents": None, "customsItems": None},
        advancedOptions={"warehouseId": 90001, "storeId": 777, "mergedOrSplit": False, "mergedIds": [], "parentId": None,
                         "customField1": "wrap"},
        tagIds=[12], userId="8f2b6a1e", externallyFulfilled=False, externallyFulfilledBy=None, labelMessages=None,
        items=[{"orderItemId": 555, "lineItemKey": None, "sku": "BONE-5LB", "name": "Bone, 5 lb", "imageUrl": None, "weight": None,
                "quantity": 2, "unitPrice": 9.75, "taxAmount": None, "shippingAmount": None, "warehouseLocation": "A-1",
                "options": [], "productId": 77, "fulfillmentSku": None, "adjustment": False, "upc": None,
                "createDate": "2026-03-03T21:06:09.1230000", "modifyDate": "2026-03-03T21:06:09.1230000"}],
    )


async def test_cancel_re_posts_the_order_as_shipstation_holds_it(adapter, router) -> None:
    held = held_order()
    router.get("/orders").respond(200, json=page("orders", [held]))
    post = router.post("/orders/createorder").respond(200, json=dict(held, orderStatus="cancelled"))
    result = await adapter.cancel_order("acme-DEMO-1001")
    assert (result.outcome, result.reference, result.warehouse_order_id) == (CancelOutcome.cancelled, "acme-DEMO-1001", "9")
    sent = json.loads(post.calls.last.request.content)
    assert sent["orderStatus"] == "cancelled" and sent["orderKey"] == "acme-DEMO-1001"
    # What the warehouse changed is sent back as it is; read-only fields are not sent at all.
    for key in ("holdUntilDate", "serviceCode", "internalNotes", "tagIds", "orderDate"):
        assert sent[key] == held[key]
    assert sent["advancedOptions"] == {"warehouseId": 90001, "storeId": 777, "customField1": "wrap"}
    assert "addressVerified" not in sent["shipTo"] and sent["shipTo"]["street1"] == "12 Way"
    assert sent["items"] == [{k: v for k, v in held["items"][0].items() if k not in ("orderItemId", "createDate", "modifyDate")}]
    assert not {"orderId", "createDate", "modifyDate", "orderTotal", "customerId", "userId", "externallyFulfilled"} & set(sent)


@pytest.mark.parametrize(("status", "outcome", "words"), [
    ("cancelled", CancelOutcome.cancelled, "already cancelled"),
    ("shipped", CancelOutcome.too_late, "is shipped: only orders awaiting payment or shipment, or on hold, can be updated"),
    ("pending_fulfillment", CancelOutcome.too_late, "is pending_fulfillment"),
])
async def test_cancel_answers_from_the_status_without_a_post(adapter, router, status, outcome, words) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order(status)]))
    post = router.post("/orders/createorder").respond(200, json=held_order("cancelled"))
    result = await adapter.cancel_order("acme-DEMO-1001")
    assert result.outcome is outcome and words in result.reason
    assert post.call_count == 0


@pytest.mark.parametrize(("now", "outcome"), [("shipped", CancelOutcome.too_late), ("cancelled", CancelOutcome.cancelled)])
async def test_a_refused_re_post_is_read_again(adapter, router, now, outcome) -> None:
    lookup = router.get("/orders")
    lookup.side_effect = [httpx.Response(200, json=page("orders", [held_order("awaiting_shipment")])),
                          httpx.Response(200, json=page("orders", [held_order(now)]))]
    router.post("/orders/createorder").respond(400, json={"Message": "An error has occurred.",
                                                          "ExceptionMessage": "Order DEMO-1001 is shipped and can no longer be updated."})
    result = await adapter.cancel_order("acme-DEMO-1001")
    assert result.outcome is outcome
    if outcome is CancelOutcome.too_late:
        assert "is shipped: Order DEMO-1001 is shipped and can no longer be updated." in result.reason


async def test_a_refused_re_post_of_an_open_order_is_raised(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order()]))
    router.post("/orders/createorder").respond(400, json={"Message": "The request is invalid.", "ModelState": {"apiOrder.shipTo": ["bad"]}})
    with pytest.raises(PermanentError, match="bad"):
        await adapter.cancel_order("acme-DEMO-1001")


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(502), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")])
async def test_a_lost_re_post_answer_is_unknown_and_not_resent(adapter, router, failure) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order()]))
    post = router.post("/orders/createorder")
    post.side_effect = [failure, httpx.Response(200, json=held_order("cancelled"))]
    result = await adapter.cancel_order("acme-DEMO-1001")
    assert (result.outcome, result.warehouse_order_id) == (CancelOutcome.unknown, "9") and result.reason
    assert post.call_count == 1


async def test_an_answer_that_is_not_cancelled_is_refused(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order()]))
    router.post("/orders/createorder").respond(200, json=held_order("on_hold"))
    with pytest.raises(PermanentError, match="'on_hold', not cancelled"):
        await adapter.cancel_order("acme-DEMO-1001")


async def test_an_answer_without_the_order_is_looked_up(adapter, router) -> None:
    lookup = router.get("/orders")
    lookup.side_effect = [httpx.Response(200, json=page("orders", [held_order()])),
                          httpx.Response(200, json=page("orders", [held_order("cancelled")]))]
    router.post("/orders/createorder").respond(200)
    assert (await adapter.cancel_order("acme-DEMO-1001")).outcome is CancelOutcome.cancelled
    assert lookup.call_count == 2


async def test_cancel_of_an_order_shipstation_lacks_is_permanent_and_creates_nothing(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [ss_order(8, "acme-DEMO-10010", number="DEMO-10010")]))
    post = router.post("/orders/createorder").respond(200, json=held_order("cancelled"))
    with pytest.raises(PermanentError, match="no order with orderKey acme-DEMO-1001"):
        await adapter.cancel_order("acme-DEMO-1001")
    assert post.call_count == 0


def test_cancel_is_claimed() -> None:
    assert ShipStationAdapter.capabilities.cancel is True


# -- update after hand-off ------------------------------------------------------------------------


def edited_order() -> WarehouseOrder:
    """The order after the customer moved and changed the items in UltraCart."""
    order = an_order()
    ship_to = order.order.ship_to.model_copy(update={"address1": "9 New Street", "address2": "", "city": "Shelbyville", "postal_code": "62565"})
    lines = [WarehouseLine(sku="BONE-5LB", quantity=3, description="Bone, 5 lb", unit_price=Decimal("9.75")),
             WarehouseLine(sku="CHEW", quantity=1, description="Chew toy")]
    return order.model_copy(update={"order": order.order.model_copy(update={"ship_to": ship_to}), "lines": lines})


def answered(post_request: httpx.Request, held: dict) -> httpx.Response:
    """ShipStation's answer to a re-post: its copy of the order with what was sent."""
    sent = json.loads(post_request.content)
    return httpx.Response(200, json=dict(held, shipTo=dict(sent["shipTo"], addressVerified="Not yet validated"),
                                         items=[dict(i, orderItemId=600 + n) for n, i in enumerate(sent["items"])]))


async def test_update_re_posts_the_order_as_held_with_the_new_address_and_items(adapter, router) -> None:
    held = held_order("awaiting_shipment")
    router.get("/orders").respond(200, json=page("orders", [held]))
    post = router.post("/orders/createorder")
    post.side_effect = lambda request: answered(request, held)
    said = await adapter.update_order(edited_order(), "9", address=True, lines=True)
    assert said == "ShipStation order 9: ship-to address and items re-posted"
    sent = json.loads(post.calls.last.request.content)
    assert (sent["orderKey"], sent["orderStatus"]) == ("acme-DEMO-1001", "awaiting_shipment")
    assert (sent["shipTo"]["street1"], sent["shipTo"]["street2"], sent["shipTo"]["city"], sent["shipTo"]["postalCode"]) == (
        "9 New Street", None, "Shelbyville", "62565")
    # What the warehouse changed stays; the billing address is not the edit.
    for key in ("holdUntilDate", "serviceCode", "internalNotes", "tagIds", "orderDate", "billTo"):
        assert sent[key] == {k: v for k, v in held[key].items() if k != "addressVerified"} if isinstance(held[key], dict) else held[key], key
    [bone, chew] = sent["items"]
    assert (bone["sku"], bone["quantity"], bone["warehouseLocation"], bone["productId"]) == ("BONE-5LB", 3, "A-1", 77)
    assert (chew["sku"], chew["quantity"], chew["name"]) == ("CHEW", 1, "Chew toy")
    assert "orderItemId" not in bone and "createDate" not in bone


async def test_an_address_update_leaves_the_items_as_shipstation_holds_them(adapter, router) -> None:
    held = held_order("on_hold")
    router.get("/orders").respond(200, json=page("orders", [held]))
    post = router.post("/orders/createorder")
    post.side_effect = lambda request: answered(request, held)
    assert "ship-to address re-posted" in await adapter.update_order(edited_order(), "9", address=True, lines=False)
    sent = json.loads(post.calls.last.request.content)
    assert sent["orderStatus"] == "on_hold" and sent["shipTo"]["street1"] == "9 New Street"
    assert sent["items"] == [{k: v for k, v in held["items"][0].items() if k not in ("orderItemId", "createDate", "modifyDate")}]


async def test_an_items_update_leaves_the_address_as_shipstation_holds_it(adapter, router) -> None:
    held = held_order("awaiting_payment")
    router.get("/orders").respond(200, json=page("orders", [held]))
    post = router.post("/orders/createorder")
    post.side_effect = lambda request: answered(request, held)
    assert "items re-posted" in await adapter.update_order(edited_order(), "9", address=False, lines=True)
    sent = json.loads(post.calls.last.request.content)
    assert sent["shipTo"]["street1"] == "12 Way" and [i["sku"] for i in sent["items"]] == ["BONE-5LB", "CHEW"]


@pytest.mark.parametrize("status", ["shipped", "cancelled", "pending_fulfillment"])
async def test_an_order_shipstation_no_longer_lets_change_is_refused_naming_its_status(adapter, router, status) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order(status)]))
    post = router.post("/orders/createorder").respond(200, json=held_order())
    with pytest.raises(PermanentError, match=f"order 9 is {status}: only orders awaiting payment or shipment, or on hold"):
        await adapter.update_order(edited_order(), "9", address=True, lines=True)
    assert post.call_count == 0


async def test_a_refused_update_is_permanent_in_shipstations_words(adapter, router) -> None:
    lookup = router.get("/orders")
    lookup.side_effect = [httpx.Response(200, json=page("orders", [held_order("awaiting_shipment")])),
                          httpx.Response(200, json=page("orders", [held_order("shipped")]))]
    router.post("/orders/createorder").respond(400, json={"Message": "An error has occurred.",
                                                          "ExceptionMessage": "Order DEMO-1001 is shipped and can no longer be updated."})
    with pytest.raises(PermanentError, match=r"\(now shipped\): Order DEMO-1001 is shipped and can no longer be updated"):
        await adapter.update_order(edited_order(), "9", address=True, lines=False)


async def test_an_answer_without_the_new_address_is_not_taken_for_done(adapter, router) -> None:
    held = held_order("awaiting_shipment")
    router.get("/orders").respond(200, json=page("orders", [held]))
    router.post("/orders/createorder").respond(200, json=held)
    with pytest.raises(PermanentError, match="without the new ship-to address"):
        await adapter.update_order(edited_order(), "9", address=True, lines=False)


async def test_a_lost_update_answer_is_in_doubt_and_not_resent(adapter, router) -> None:
    router.get("/orders").respond(200, json=page("orders", [held_order("awaiting_shipment")]))
    post = router.post("/orders/createorder")
    post.side_effect = [httpx.Response(502), httpx.Response(200, json=held_order())]
    with pytest.raises(InDoubtError):  # the engine tries again later: a repeat re-posts the same values
        await adapter.update_order(edited_order(), "9", address=True, lines=True)
    assert post.call_count == 1


async def test_update_of_an_order_shipstation_lacks_or_of_another_id_creates_nothing(adapter, router) -> None:
    lookup = router.get("/orders")
    lookup.side_effect = [httpx.Response(200, json=page("orders", [])), httpx.Response(200, json=page("orders", [held_order()]))]
    post = router.post("/orders/createorder").respond(200, json=held_order())
    with pytest.raises(PermanentError, match="no order with orderKey acme-DEMO-1001"):
        await adapter.update_order(edited_order(), "9", address=True, lines=True)
    with pytest.raises(PermanentError, match="is 9, not 10"):
        await adapter.update_order(edited_order(), "10", address=True, lines=True)
    assert post.call_count == 0


def test_updates_are_claimed() -> None:
    caps = ShipStationAdapter.capabilities
    assert (caps.update_address, caps.update_lines) == (True, True)


# -- rate limiting ------------------------------------------------------------------------------------


async def test_429_raises_rate_limited_with_the_reset(adapter, router) -> None:
    route = router.get("/orders").respond(
        429, headers={"X-Rate-Limit-Limit": "40", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "25"},
        json={"message": "Too Many Requests"})
    with pytest.raises(RateLimitedError) as caught:
        await adapter.find_order("acme-1")
    assert caught.value.retry_after == 25 and route.call_count == 1  # never slept on inside the call
    assert adapter.http.limiter.blocked_until > time.monotonic() + 20
    with pytest.raises(RateLimitedError):  # the key's limiter now holds every call until the reset
        await adapter.find_order("acme-1")
    assert route.call_count == 1


async def test_remaining_and_reset_headers_pace_the_key(adapter, router) -> None:
    router.get("/orders", params={"orderNumber": "a"}).respond(
        200, json=page("orders", []), headers={"X-Rate-Limit-Remaining": "12", "X-Rate-Limit-Reset": "40"})
    router.get("/orders", params={"orderNumber": "b"}).respond(
        200, json=page("orders", []), headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "30"})
    await adapter.find_order("acme-a")
    assert adapter.http.limiter.blocked_until < time.monotonic()
    await adapter.find_order("acme-b")  # another tool spent the key's budget
    assert adapter.http.limiter.blocked_until > time.monotonic() + 25


async def test_the_key_budget_is_shared_and_paced_locally(router, secret, limiters) -> None:
    router.get("/carriers").respond(200, json=[])
    config = {"adapter": "shipstation", "api_key": "key-1", "api_secret": secret, "rate_per_minute": 3}
    first = ShipStationAdapter(config, AdapterContext(merchant="acme", transport=router.transport(), limiters=limiters))
    second = ShipStationAdapter(config, AdapterContext(merchant="globex", transport=router.transport(), limiters=limiters))
    try:
        assert first.http.limiter is second.http.limiter  # one budget per key+secret, across merchants
        for a in (first, second, first):
            await a._carriers()
        with pytest.raises(RateLimitedError):  # the fourth call in a minute would wait ~60 s: not slept
            await second._carriers()
    finally:
        await first.aclose()
        await second.aclose()


async def test_5xx_on_a_read_is_retried(adapter, router) -> None:
    route = router.get("/orders")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json=page("orders", [ss_order(1, "acme-r", "r")]))]
    assert (await adapter.find_order("acme-r")).warehouse_order_id == "1"
    assert route.call_count == 2


# -- setup ----------------------------------------------------------------------------------------------


async def test_check_names_carriers_and_store(adapter, router) -> None:
    router.get("/carriers").respond(200, json=[{"name": "UPS", "code": "ups"}, {"name": "Stamps.com", "code": "stamps_com"}])
    router.get("/stores/777").respond(200, json={"storeId": 777, "storeName": "UltraCart"})
    assert await adapter.check() == f"ShipStation v1 at {BASE}, carriers: ups, stamps_com; store 777 (UltraCart)"


@pytest.mark.parametrize(("carriers", "store", "match"), [
    (httpx.Response(401, text="401 Unauthorized"), None, "401"),
    (httpx.Response(403), None, "shipstation"),
    (httpx.Response(200, json=[]), httpx.Response(404, json={"Message": "No store found"}), "store_id 777 is not a store"),
])
async def test_check_configuration_errors(adapter, router, carriers, store, match) -> None:
    router.get("/carriers").mock(return_value=carriers)
    if store is not None:
        router.get("/stores/777").mock(return_value=store)
    with pytest.raises(ConfigurationError, match=match):
        await adapter.check()


# -- catalogues -----------------------------------------------------------------------------------------


async def test_ship_methods_are_carrier_and_service_codes_and_cached(adapter, router) -> None:
    carriers = router.get("/carriers").respond(200, json=[{"name": "UPS", "code": "ups"}, {"name": "FedEx", "code": "fedex"}])
    services = router.get("/carriers/listservices")
    services.side_effect = lambda request: httpx.Response(200, json={
        "ups": [{"carrierCode": "ups", "code": "ups_ground", "name": "UPS Ground"}, {"carrierCode": "ups", "code": " "}],
        "fedex": [{"carrierCode": "fedex", "code": "fedex_2day", "name": "FedEx 2Day"}],
    }[request.url.params["carrierCode"]])
    expected = {"ups", "ups:ups_ground", "fedex", "fedex:fedex_2day"}
    assert await adapter.known_ship_methods() == expected
    assert await adapter.known_ship_methods() == expected
    assert (carriers.call_count, services.call_count) == (1, 2)  # the second answer came from the cache
    assert await adapter.known_skus() is None


# -- shipments ------------------------------------------------------------------------------------------


def label(sid: int, key: str, tracking: str | None, items, **extra) -> dict:
    record = {
        "shipmentId": sid, "orderId": 900, "orderKey": key, "orderNumber": key.split("-", 1)[-1],
        "createDate": "2026-03-04T19:15:00.0000000", "shipDate": "2026-03-04", "shipmentCost": 6.25, "insuranceCost": 1.0,
        "trackingNumber": tracking, "isReturnLabel": False, "carrierCode": "ups", "serviceCode": "ups_ground", "voided": False,
        "shipmentItems": [{"orderItemId": 1, "sku": sku, "quantity": q} for sku, q in items] if items is not None else None,
    }
    return record | extra


async def test_shipments_since_maps_filters_and_pages(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "PAGE_SIZE", 4)
    first = [
        label(1, "acme-A", " 1Z001 ", [("BONE", 1), ("BONE", 1), ("TREAT", 2)]),
        label(2, "acme-A", "1Z002", [("TREAT", 1)], voided=True, voidDate="2026-03-04T19:20:00.0000000"),
        label(3, "acme-B", "   ", [("BONE", 1)]),
        label(4, "acme-B", "RET1", [("BONE", 1)], isReturnLabel=True),
    ]
    second = [
        label(5, "globex-C", "1Z005", [("BONE", 1)]),  # another merchant on the same account
        label(6, "0f6bec18-a-shopify-order", "1Z006", [("BONE", 1)]),  # another order source
        label(7, "acme-D", "1Z007", None),
    ]
    route = router.get("/shipments")
    route.side_effect = [httpx.Response(200, json=page("shipments", first, 1, 2)), httpx.Response(200, json=page("shipments", second, 2, 2))]
    since = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)  # 19:00 on the 4th in Pacific time
    shipments = {s.shipment_id: s for s in await adapter.shipments_since(since)}
    params = route.calls[0].request.url.params
    assert (params["shipDateStart"], params["includeShipmentItems"], params["storeId"], params["pageSize"]) == ("2026-03-04", "true", "777", "4")
    assert [c.request.url.params["page"] for c in route.calls] == ["1", "2"]
    assert sorted(shipments) == ["1", "2", "3", "7"]
    one = shipments["1"]
    assert (one.reference, one.warehouse_order_id, one.carrier, one.service) == ("acme-A", "900", "ups", "ups_ground")
    assert one.tracking_numbers == ["1Z001"] and not one.voided
    assert [(ln.sku, ln.quantity) for ln in one.lines] == [("BONE", 2), ("TREAT", 2)]
    assert one.shipping_cost == Decimal("7.25")
    assert one.shipped_at == datetime(2026, 3, 5, 3, 15, tzinfo=UTC)  # 19:15 PST
    assert shipments["2"].voided
    assert shipments["3"].tracking_numbers == []
    assert shipments["7"].lines == []


async def test_shipments_without_a_store_are_not_filtered_by_store(router, secret, limiters) -> None:
    route = router.get("/shipments").respond(200, json=page("shipments", []))
    context = AdapterContext(merchant="acme", transport=router.transport(), limiters=limiters)
    a = ShipStationAdapter({"adapter": "shipstation", "api_key": "k", "api_secret": secret}, context)
    try:
        assert await a.shipments_since(datetime(2026, 7, 1, 6, 59, tzinfo=UTC)) == []
    finally:
        await a.aclose()
    params = route.calls.last.request.url.params
    assert "storeId" not in params and params["shipDateStart"] == "2026-06-30"  # 23:59 PDT


async def test_no_inventory_and_nothing_to_acknowledge(adapter) -> None:
    with pytest.raises(NotImplementedError):
        await adapter.stock_levels()
    assert await adapter.acknowledge_shipments([]) is None


def test_error_text_shapes() -> None:
    assert mapping.error_text({"message": "Too Many Requests"}) == "Too Many Requests"
    assert mapping.error_text({"Message": "x", "ModelState": {"": ["y"]}}) == "x; y"
    assert mapping.error_text({"Other": 1}) == '{"Other": 1}'


# -- webhooks -------------------------------------------------------------------------------

HOOK_URL = "https://connector.example/webhooks/warehouse/acme/tok-123"


def a_hook(hook_id: int, url: str = HOOK_URL, hook_type: str = "SHIP_NOTIFY", active: bool = True) -> dict:
    return {"IsLabelAPIHook": False, "WebHookID": hook_id, "SellerID": 1, "StoreID": 777, "HookType": hook_type,
            "MessageFormat": "Json", "Url": url, "Name": "x", "Active": active}


async def test_register_webhooks_subscribes_ship_notify_for_the_store_once(adapter, router) -> None:
    listing = router.get("/webhooks").respond(200, json={"webhooks": [a_hook(1, hook_type="ORDER_NOTIFY"), a_hook(2, active=False)]})
    subscribe = router.post("/webhooks/subscribe").respond(201, json={"id": 3})
    lines = await adapter.register_webhooks(HOOK_URL, "unused-secret")
    assert json.loads(subscribe.calls.last.request.content) == {
        "target_url": HOOK_URL, "event": "SHIP_NOTIFY", "store_id": 777, "friendly_name": "UltraCart connector acme"}
    assert lines[0].startswith("subscribed SHIP_NOTIFY (webhook 3)") and "does not sign" in lines[0]
    assert await adapter.webhook_urls() == set()  # an inactive one does not count
    listing.respond(200, json={"webhooks": [a_hook(3)]})
    assert await adapter.register_webhooks(HOOK_URL) == ["already subscribed: SHIP_NOTIFY (webhook 3)"]
    assert subscribe.call_count == 1
    assert await adapter.webhook_urls() == {HOOK_URL}


async def test_webhook_hints_read_the_resource_url_without_fetching_it(adapter, router) -> None:
    body = {"resource_url": "https://ssapi.shipstation.com/shipments?storeID=777&batchId=12345&includeShipmentItems=False",
            "resource_type": "SHIP_NOTIFY"}
    assert adapter.webhook_hints(body) == [{"topic": "ship_notify", "batch_id": "12345", "store_id": "777", "id": "12345"}]
    assert adapter.webhook_hints({"resource_url": "http://169.254.169.254/?batchId=x"}) == []
    assert adapter.verify_webhook({}, b"{}", "anything")  # v1 does not sign: the path token alone
    assert not router.calls  # nothing was fetched
