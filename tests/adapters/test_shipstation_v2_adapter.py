"""The ShipStation v2 adapter against respx: request shapes, error handling, paging, rate headers.

Every request the adapter sends goes through a `ValidatingRouter` built on ShipStation's official v2
document, so it is checked (path, method, query names, `api-key`, body) as it is sent.

The document is loaded the way `tests/support/openapi.py` loads ShipBob's, plus what it needs of
its own (`shipstation_validator()`, also used by the contract and flow tests):
- `allOf` compositions merged and `additionalProperties: false` kept only where properties are
  listed (as for ShipBob): taken literally, every `ship_to` is rejected;
- a one-`$ref` `allOf` around a scalar is inlined, so enums and patterns (`validate_address`,
  `se_id`, `sort_dir`) are still checked; `x-nullable: true` admits null (responses);
- `NoContent` (204, e.g. a shipment cancel) documents an empty string body, which a validator
  reads as "a body is required"; a 204 has no body at all (RFC 9110), so its content is dropped;
- two documented facts the document lacks: `service_code` on a create (the v2 "Create Shipments"
  guide lists it, the spec's own `shipment` schema has it), and `pickup_id` is an optional filter of
  `GET /v2/shipments` (the document marks it required); and `/v2/inventory`'s own next links carry
  `page`, which its parameter list omits;
- Update Shipment (`PUT /v2/shipments/{shipment_id}`): the document names the path "Get and
  Update Shipment" but lists only its GET. ShipStation's reference (docs.shipstation.com, "Update
  a shipment") documents the PUT, a shipment's writable fields as its body, answering the
  shipment. It is added here with the document's own schemas: the body is
  `address_validating_shipment` (the document's shipment-with-an-id: `shipment_id`, `carrier_id`,
  `service_code`, `ship_to`, `ship_from` required, every other field of `partial_shipment`
  allowed and checked), the answer `get_shipment_by_id_response_body`.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
import pytest
import yaml

from adapters.base import AdapterContext
from adapters.http import Limiters
from adapters.shipstation_v2 import ShipStationV2Adapter, ShipStationV2Config
from connector.domain import Address, CancelOutcome, Order, Shipment, WarehouseLine, WarehouseOrder, Weight
from connector.errors import ConfigurationError, InDoubtError, PermanentError, RateLimitedError, TransientError
from tests.support.openapi import SPECS_DIR, SpecValidator, normalise_shipbob, spec_validator, validated_router

SPEC = "shipstation-v2-openapi.yaml"
BASE = "https://api.shipstation.com"


# -- the validator --------------------------------------------------------------------------


def _inline_scalars_and_nulls(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc["components"]["schemas"]

    def scalar(target: Any) -> bool:
        return isinstance(target, dict) and not {"properties", "allOf", "anyOf", "oneOf"} & set(target) and target.get("type") != "object"

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        node = {k: walk(v) for k, v in node.items()}
        parts = node.get("allOf")
        if isinstance(parts, list) and len(parts) == 1 and "$ref" in parts[0] and "properties" not in node:
            target = schemas.get(parts[0]["$ref"].rsplit("/", 1)[-1])
            if scalar(target):  # keep the target's enum / pattern, which merging would drop
                node = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k not in ("allOf", "title")}}
        if node.get("x-nullable") is True:  # the Swagger 2 flag, meaningless in OpenAPI 3.1
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
                if "enum" in node:
                    node["enum"] = [*node["enum"], None]
            elif "$ref" in node or "allOf" in node:
                node = {"anyOf": [{k: v for k, v in node.items() if k != "x-nullable"}, {"type": "null"}]}
        return node

    doc["components"] = walk(doc["components"])
    doc["paths"] = walk(doc["paths"])
    return doc


def _amend(doc: dict[str, Any]) -> dict[str, Any]:
    schemas, params = doc["components"]["schemas"], doc["components"]["parameters"]
    service_code = copy.deepcopy(schemas["partial_shipment"]["properties"]["service_code"])
    schemas["create_shipment_request"]["properties"]["service_code"] = service_code
    params["pickup_id_query_param"]["required"] = False
    doc["components"]["responses"]["NoContent"].pop("content", None)
    shipment_path = doc["paths"]["/v2/shipments/{shipment_id}"]
    assert "put" not in shipment_path, "the document now lists Update Shipment: drop this amendment"
    shipment_path["put"] = {
        "summary": "Update a shipment (documented by ShipStation, missing from this document)",
        "operationId": "update_shipment",
        "tags": ["shipments"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/address_validating_shipment"}}}},
        "responses": {
            "200": {"description": "The shipment as updated.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/get_shipment_by_id_response_body"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "500": {"$ref": "#/components/responses/ServerError"},
        },
    }
    return doc


@cache
def _validator() -> SpecValidator:
    doc = yaml.safe_load((SPECS_DIR / SPEC).read_text(encoding="utf-8"))
    validator = SpecValidator(SPEC, normalise_shipbob(_inline_scalars_and_nulls(_amend(doc))))
    validator.undocumented_query = frozenset({"page"})
    return validator


def shipstation_validator() -> SpecValidator:
    """The ShipStation v2 document as above; skips the test when ../shared/specs is absent."""
    spec_validator(SPEC)
    return _validator()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def router():
    r = validated_router(shipstation_validator(), base_url=BASE)
    yield r
    r.assert_valid()


@pytest.fixture
def api_key() -> str:
    return "key-test"


def make_adapter(router, api_key: str, **config: Any) -> ShipStationV2Adapter:
    settings = {"adapter": "shipstation-v2", "api_key": api_key, **config}
    # Rate limiters of its own (the runtime's are shared): a 429 here never slows another test.
    return ShipStationV2Adapter(settings, AdapterContext(merchant="acme", transport=router.transport(), limiters=Limiters()))


@pytest.fixture
async def adapter(router, api_key):
    a = make_adapter(router, api_key)
    yield a
    await a.aclose()


CARRIERS = {
    "carriers": [
        {"carrier_id": "se-1", "carrier_code": "stamps_com", "friendly_name": "USPS", "primary": False,
         "services": [{"carrier_id": "se-1", "service_code": "usps_priority_mail"}, {"carrier_id": "se-1", "service_code": "ups_ground"}]},
        {"carrier_id": "se-2", "carrier_code": "ups", "friendly_name": "UPS", "primary": True,
         "services": [{"carrier_id": "se-2", "service_code": "ups_ground"}, {"carrier_id": "se-2", "service_code": "ups_2nd_day_air"}]},
        {"carrier_id": "se-3", "carrier_code": "fedex", "friendly_name": "FedEx", "disabled_by_billing_plan": True,
         "services": [{"carrier_id": "se-3", "service_code": "fedex_ground"}]},
    ],
    "request_id": "aa3d8e8e-462b-4476-9618-72db7f7b7009",
    "errors": [],
}
ORIGIN = {"name": "Dock", "phone": "775-555-0100", "address_line1": "1 Dock Rd", "city_locality": "Reno", "state_province": "NV",
          "postal_code": "89502", "country_code": "US", "address_residential_indicator": "no"}


def ss_error(code: str, message: str) -> dict[str, Any]:
    return {"request_id": "aa3d8e8e-462b-4476-9618-72db7f7b7009",
            "errors": [{"error_source": "ShipStation", "error_type": "validation", "error_code": code, "message": message}]}


def an_order(reference: str = "acme-1001", ship_method: str = "ups_ground", phone: str = "555-0100") -> WarehouseOrder:
    cart = Order(
        order_id="DEMO-1001",
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        ship_to=Address(
            first_name="Ada", last_name="Lovelace", company="Engines Ltd", address1="12 Way", address2="Unit 3",
            city="Springfield", state="IL", postal_code="62701", country_code="us", phone=phone, residential=False,
        ),
        email="ada@example.com",
        total=Decimal("31.50"), shipping_total=Decimal("7.95"), tax=Decimal("0"),
        gift=True, gift_message="Happy birthday", customer_notes="Leave at the back door",
        weight=Weight(value=Decimal("2.5"), uom="LB"),
    )
    lines = [
        WarehouseLine(sku="BONE-5LB", quantity=2, description="Bone, 5 lb", unit_price=Decimal("9.75")),
        WarehouseLine(sku="TREAT", quantity=1),
        WarehouseLine(sku="TREAT", quantity=2, cart_sku="GIFT-SET"),
    ]
    return WarehouseOrder(reference=reference, order=cart, ship_method=ship_method, lines=lines)


def created(shipment_id: str = "se-555", reference: str = "acme-1001", errors: list[str] | None = None) -> dict[str, Any]:
    return {"has_errors": bool(errors), "shipments": [{"shipment_id": shipment_id, "external_shipment_id": reference, "errors": errors or []}]}


def carriers_route(router):
    return router.get("/v2/carriers").respond(200, json=CARRIERS)


# -- the validator itself -------------------------------------------------------------------


class TestSpecValidator:
    """What the loaded document accepts and refuses, and why it is not the raw one."""

    HEADERS = {"api-key": "k"}
    SHIP_TO = {"name": "A", "phone": "1", "address_line1": "1 St", "city_locality": "X", "state_province": "IL",
               "postal_code": "62701", "country_code": "US", "address_residential_indicator": "unknown"}

    def create(self, **fields: Any) -> httpx.Request:
        shipment = {"external_shipment_id": "acme-1", "ship_to": dict(self.SHIP_TO), "items": [{"sku": "A", "quantity": 1}], **fields}
        return httpx.Request("POST", f"{BASE}/v2/shipments", headers=self.HEADERS, json={"shipments": [shipment]})

    def test_good_requests(self) -> None:
        v = shipstation_validator()
        v.validate_request(self.create(carrier_id="se-2", service_code="ups_ground", validate_address="no_validation"))
        v.validate_request(httpx.Request("GET", "http://127.0.0.1:9/v2/labels", headers=self.HEADERS,
                                         params={"created_at_start": "2026-03-01T00:00:00Z", "sort_dir": "asc", "page": 2}))
        v.validate_request(httpx.Request("GET", f"{BASE}/v2/shipments", headers=self.HEADERS, params={"shipment_number": "n"}))
        v.validate_request(httpx.Request("GET", f"{BASE}/v2/inventory", headers=self.HEADERS, params={"group_by": "warehouse", "page": 2}))

    @pytest.mark.parametrize(
        ("request_", "match"),
        [
            (httpx.Request("GET", f"{BASE}/v2/carriers"), "Security"),
            (httpx.Request("GET", f"{BASE}/v2/labels", headers=HEADERS, params={"created_at_from": "x"}), "created_at_from"),
            (httpx.Request("GET", f"{BASE}/v2/labels", headers=HEADERS, params={"sort_dir": "up"}), "sort_dir"),
            (httpx.Request("GET", f"{BASE}/v2/orders", headers=HEADERS), "no path"),
        ],
    )
    def test_bad_requests(self, request_: httpx.Request, match: str) -> None:
        with pytest.raises(AssertionError, match=match):
            shipstation_validator().validate_request(request_)

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"external_shipment_id": "x" * 51}, "too long"),
            ({"validate_address": "always"}, "validate_address"),
            ({"warehouse_id": "se-1"}, "warehouse_id"),  # not a create field: ship_from is
            ({"service_code": "UPS Ground"}, "service_code"),
            ({"ship_to": {"name": "A", "zip": "1"}}, "zip"),
        ],
    )
    def test_bad_creates(self, fields: dict[str, Any], match: str) -> None:
        with pytest.raises(AssertionError, match=match):
            shipstation_validator().validate_request(self.create(**fields))

    def test_the_raw_document_rejects_any_ship_to(self) -> None:
        # Why the document is normalised: its allOf + additionalProperties: false refuse every field.
        with pytest.raises(AssertionError, match="address_line1"):
            spec_validator(SPEC).validate_request(self.create())


# -- create ---------------------------------------------------------------------------------


async def test_create_sends_a_complete_pending_shipment(router, api_key) -> None:
    carriers = carriers_route(router)
    reno = {"warehouse_id": "se-77", "name": "Reno", "origin_address": {**ORIGIN, "extra": 1}}
    warehouse = router.get("/v2/warehouses/se-77").respond(200, json=reno)
    route = router.post("/v2/shipments").respond(200, json=created())
    a = make_adapter(router, api_key, warehouse_id="se-77", store_id="1582173")
    try:
        result = await a.create_order(an_order())
        await a.create_order(an_order("acme-1002"))
    finally:
        await a.aclose()
    assert (result.warehouse_order_id, result.reference, result.already_existed) == ("se-555", "acme-1001", False)
    assert carriers.call_count == 1 and warehouse.call_count == 1  # cached between creates
    request = route.calls[0].request
    assert request.headers["api-key"] == api_key
    [body] = json.loads(request.content)["shipments"]
    assert body["external_shipment_id"] == "acme-1001"
    assert (body["carrier_id"], body["service_code"]) == ("se-2", "ups_ground")  # the primary carrier offering it
    assert (body["shipment_status"], body["validate_address"], body["store_id"]) == ("pending", "no_validation", "1582173")
    assert body["ship_to"] == {
        "name": "Ada Lovelace", "company_name": "Engines Ltd", "phone": "555-0100", "email": "ada@example.com",
        "address_line1": "12 Way", "address_line2": "Unit 3", "city_locality": "Springfield", "state_province": "IL",
        "postal_code": "62701", "country_code": "US", "address_residential_indicator": "no",
    }
    assert body["ship_from"] == ORIGIN  # the warehouse's origin address, response-only fields dropped
    # Lines with the same warehouse SKU are merged; the name falls back to the SKU.
    assert body["items"] == [
        {"sku": "BONE-5LB", "name": "Bone, 5 lb", "quantity": 2, "unit_price": 9.75},
        {"sku": "TREAT", "name": "TREAT", "quantity": 3},
    ]
    assert (body["is_gift"], body["notes_for_gift"], body["notes_from_buyer"]) == (True, "Happy birthday", "Leave at the back door")
    assert body["amount_paid"] == {"currency": "usd", "amount": 31.5}
    assert body["shipping_paid"] == {"currency": "usd", "amount": 7.95}
    assert body["packages"] == [{"weight": {"value": 40.0, "unit": "ounce"}}]


@pytest.mark.parametrize(
    ("method", "expected"),
    [("se-1:ups_ground", ("se-1", "ups_ground")), ("usps_priority_mail", ("se-1", "usps_priority_mail")), ("", (None, None))],
)
async def test_ship_method_resolution(adapter, router, method, expected) -> None:
    carriers_route(router)
    route = router.post("/v2/shipments").respond(200, json=created())
    await adapter.create_order(an_order(ship_method=method))
    [body] = json.loads(route.calls.last.request.content)["shipments"]
    assert (body.get("carrier_id"), body.get("service_code")) == expected


@pytest.mark.parametrize("method", ["fedex_ground", "se-1:ups_2nd_day_air", "UPS Ground"])
async def test_a_method_no_connected_carrier_offers_is_refused_before_sending(adapter, router, method) -> None:
    carriers = carriers_route(router)  # fedex is disabled by the billing plan
    route = router.post("/v2/shipments").respond(200, json=created())
    with pytest.raises(PermanentError, match="not a service of a connected ShipStation carrier"):
        await adapter.create_order(an_order(ship_method=method))
    assert route.call_count == 0 and carriers.call_count == 2  # read again once, in case it was just connected


async def test_missing_phone_is_refused_or_filled_from_default_phone(router, api_key) -> None:
    carriers_route(router)
    route = router.post("/v2/shipments").respond(200, json=created())
    a = make_adapter(router, api_key)
    with pytest.raises(PermanentError, match="requires ship_to phone.*default_phone"):
        await a.create_order(an_order(phone=""))
    assert route.call_count == 0
    await a.aclose()
    b = make_adapter(router, api_key, default_phone="800-555-0199")
    await b.create_order(an_order(phone=""))
    await b.aclose()
    assert json.loads(route.calls.last.request.content)["shipments"][0]["ship_to"]["phone"] == "800-555-0199"


async def test_a_reference_over_50_characters_is_never_sent(adapter, router) -> None:
    carriers_route(router)
    route = router.post("/v2/shipments").respond(200, json=created())
    with pytest.raises(PermanentError, match="1-50 characters"):
        await adapter.create_order(an_order("acme-" + "9" * 46))
    assert route.call_count == 0


async def test_duplicate_external_id_is_looked_up(adapter, router) -> None:
    carriers_route(router)
    create = router.post("/v2/shipments").respond(400, json=ss_error("identifier_conflict", "external_shipment_id acme-1001 already exists"))
    lookup = router.get("/v2/shipments/external_shipment_id/acme-1001").respond(
        200, json={"shipment_id": "se-777", "external_shipment_id": "acme-1001"})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("se-777", True)
    assert create.call_count == 1 and lookup.call_count == 1


async def test_batch_errors_are_looked_up_too(adapter, router) -> None:
    carriers_route(router)
    router.post("/v2/shipments").respond(200, json=created("se-9", errors=["A shipment with this external_shipment_id already exists."]))
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(200, json={"shipment_id": "se-777", "external_shipment_id": "acme-1001"})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("se-777", True)


async def test_batch_errors_for_an_order_that_does_not_exist_are_permanent(adapter, router) -> None:
    carriers_route(router)
    router.post("/v2/shipments").respond(200, json=created("", errors=["ship_to.postal_code is invalid"]))
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(404, json=ss_error("invalid_identifier", "not found"))
    with pytest.raises(PermanentError, match="ShipStation refused acme-1001: ship_to.postal_code is invalid"):
        await adapter.create_order(an_order())


async def test_other_rejections_are_permanent_with_shipstations_message(adapter, router) -> None:
    carriers_route(router)
    router.post("/v2/shipments").respond(400, json=ss_error("invalid_address", "Invalid ship_to address"))
    lookup = router.get("/v2/shipments/external_shipment_id/acme-1001").respond(404, json=ss_error("invalid_identifier", "not found"))
    with pytest.raises(PermanentError) as caught:
        await adapter.create_order(an_order())
    assert caught.value.status == 400 and lookup.call_count == 1
    assert "Invalid ship_to address [invalid_address] (request id aa3d8e8e-462b-4476-9618-72db7f7b7009)" in caught.value.message


async def test_find_order(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json={"shipment_id": "se-5", "external_shipment_id": "acme-1"})
    router.get("/v2/shipments/external_shipment_id/acme-2").respond(404, json=ss_error("invalid_identifier", "not found"))
    hashed = router.get("/v2/shipments/external_shipment_id/acme-x~0123456789").respond(
        200, json={"shipment_id": "se-6", "external_shipment_id": "acme-x~0123456789"})
    found = await adapter.find_order("acme-1")
    assert found is not None and found.warehouse_order_id == "se-5" and not found.already_existed
    assert await adapter.find_order("acme-2") is None
    assert (await adapter.find_order("acme-x~0123456789")).warehouse_order_id == "se-6"
    assert hashed.call_count == 1
    assert await adapter.find_order("x" * 51) is None  # could never have been created


async def test_find_order_says_when_the_shipment_is_cancelled(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(
        200, json={"shipment_id": "se-5", "external_shipment_id": "acme-1", "shipment_status": "cancelled"})
    found = await adapter.find_order("acme-1")
    assert (found.status, found.cancelled) == ("cancelled", True)


# -- cancel ---------------------------------------------------------------------------------


def ours(status: str = "pending", number: str | None = None) -> dict[str, Any]:
    out = {"shipment_id": "se-5", "external_shipment_id": "acme-1", "shipment_status": status}
    if number is not None:
        out["shipment_number"] = number
    return out


async def test_cancel_puts_cancel_for_the_shipment_found_by_reference(adapter, router, api_key) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours())
    cancel = router.put("/v2/shipments/se-5/cancel").respond(204)
    result = await adapter.cancel_order("acme-1")
    assert (result.outcome, result.reference, result.warehouse_order_id) == (CancelOutcome.cancelled, "acme-1", "se-5")
    assert cancel.call_count == 1
    assert cancel.calls.last.request.headers["api-key"] == api_key and cancel.calls.last.request.content == b""


async def test_cancel_also_cancels_the_parts_split_off_it(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours(number="acme-1"))
    router.get("/v2/shipments", params={"shipment_number": "acme-1"}).respond(200, json=page("shipments", [
        shipment("se-5", "acme-1", "acme-1", [("A", 1)]),
        dict(shipment("se-6", "se-6", "acme-1", [("B", 1)]), shipment_status="pending"),  # Split Ship's part
        dict(shipment("se-7", "acme-7", "acme-1", [("C", 1)]), shipment_status="pending"),  # another order of ours
        dict(shipment("se-8", "se-8", "acme-10", [("D", 1)]), shipment_status="pending"),  # not the number asked for
    ]))
    mine, part = router.put("/v2/shipments/se-5/cancel").respond(204), router.put("/v2/shipments/se-6/cancel").respond(204)
    others = router.put(url__regex=r".*/se-[78]/cancel$").respond(204)
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.cancelled and "se-6, se-5" in result.reason  # ours last
    assert (mine.call_count, part.call_count, others.call_count) == (1, 1, 0)
    assert part.calls.last.request is router.calls[-2].request


async def test_a_cancelled_shipment_with_a_live_part_is_not_a_cancelled_order(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours("cancelled", number="acme-1"))
    listing = router.get("/v2/shipments", params={"shipment_number": "acme-1"})
    listing.side_effect = [
        httpx.Response(200, json=page("shipments", [dict(shipment("se-6", "se-6", "acme-1", [("B", 1)]), shipment_status="label_purchased")])),
        httpx.Response(200, json=page("shipments", [dict(shipment("se-6", "se-6", "acme-1", [("B", 1)]), shipment_status="cancelled")])),
    ]
    found = await adapter.find_order("acme-1")
    assert (found.status, found.cancelled) == ("cancelled", False)
    assert (await adapter.find_order("acme-1")).cancelled is True


async def test_no_answer_after_a_part_was_too_late_is_too_late(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours(number="acme-1"))
    router.get("/v2/shipments", params={"shipment_number": "acme-1"}).respond(200, json=page("shipments", [
        dict(shipment("se-6", "se-6", "acme-1", [("B", 1)]), shipment_status="label_purchased")]))
    router.put("/v2/shipments/se-5/cancel").respond(503)
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.too_late
    assert "shipment se-6 is label_purchased" in result.reason and "shipment se-5: no answer to the cancel" in result.reason


async def test_an_already_cancelled_shipment_is_cancelled_without_a_call(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours("cancelled"))
    cancel = router.put("/v2/shipments/se-5/cancel").respond(204)
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.cancelled and "already cancelled" in result.reason
    assert cancel.call_count == 0


async def test_a_bought_label_is_too_late_without_a_call(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours("label_purchased"))
    cancel = router.put("/v2/shipments/se-5/cancel").respond(204)
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is CancelOutcome.too_late
    assert "any label associated with the shipment needs to be voided first" in result.reason
    assert cancel.call_count == 0


@pytest.mark.parametrize(("now", "outcome"), [("label_purchased", CancelOutcome.too_late), ("cancelled", CancelOutcome.cancelled)])
async def test_a_refused_cancel_is_read_again(adapter, router, now, outcome) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours())
    router.put("/v2/shipments/se-5/cancel").respond(400, json=ss_error("invalid_status", "Any label associated with the shipment needs to be voided first"))
    router.get("/v2/shipments/se-5").respond(200, json=ours(now))
    result = await adapter.cancel_order("acme-1")
    assert result.outcome is outcome
    if outcome is CancelOutcome.too_late:
        assert "shipment se-5: Any label associated with the shipment needs to be voided first [invalid_status]" in result.reason


async def test_a_refused_cancel_of_a_pending_shipment_is_raised(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours())
    router.put("/v2/shipments/se-5/cancel").respond(400, json=ss_error("invalid_field_value", "nope"))
    router.get("/v2/shipments/se-5").respond(200, json=ours())
    with pytest.raises(PermanentError, match="nope"):
        await adapter.cancel_order("acme-1")


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")])
async def test_a_lost_cancel_answer_is_unknown_and_not_resent(adapter, router, failure) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(200, json=ours())
    cancel = router.put("/v2/shipments/se-5/cancel")
    cancel.side_effect = [failure, httpx.Response(204)]
    result = await adapter.cancel_order("acme-1")
    assert (result.outcome, result.warehouse_order_id) == (CancelOutcome.unknown, "se-5") and result.reason
    assert cancel.call_count == 1


async def test_cancel_of_a_reference_shipstation_lacks_is_permanent(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(404, json=ss_error("invalid_identifier", "not found"))
    with pytest.raises(PermanentError, match="no shipment with external_shipment_id acme-1"):
        await adapter.cancel_order("acme-1")
    with pytest.raises(PermanentError):
        await adapter.cancel_order("x" * 51)  # could never have been created


async def test_a_failed_lookup_before_a_cancel_is_raised(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1").respond(503)
    cancel = router.put(url__regex=r".*/cancel$").respond(204)
    with pytest.raises(TransientError):
        await adapter.cancel_order("acme-1")
    assert cancel.call_count == 0


# -- update after hand-off ------------------------------------------------------------------


def held(status: str = "pending") -> dict[str, Any]:
    """Our shipment as ShipStation answers it, with what the warehouse set on it (a service, a
    package, a hold date, an item's order line id) that an update must keep."""
    address = {"name": "Ada Lovelace", "phone": "555-0100", "company_name": "Engines Ltd", "address_line1": "12 Way",
               "address_line2": "Unit 3", "city_locality": "Springfield", "state_province": "IL", "postal_code": "62701",
               "country_code": "US", "address_residential_indicator": "no"}
    return {
        "shipment_id": "se-5", "external_shipment_id": "acme-1001", "shipment_number": "acme-1001", "shipment_status": status,
        "carrier_id": "se-2", "service_code": "ups_2nd_day_air", "created_at": "2026-03-04T05:06:07Z", "modified_at": "2026-03-04T06:00:00Z",
        "hold_until_date": "2026-03-10T00:00:00Z", "ship_to": dict(address), "ship_from": dict(address, name="Warehouse"),
        "warehouse_id": "se-900", "return_to": dict(address, name="Warehouse"), "confirmation": "none", "insurance_provider": "none",
        "advanced_options": {}, "tags": [{"name": "VIP"}], "is_gift": True, "notes_for_gift": "Happy birthday",
        "packages": [{"package_code": "package", "weight": {"value": 40.0, "unit": "ounce"}}],
        "total_weight": {"value": 40.0, "unit": "ounce"},
        "items": [{"name": "Bone, 5 lb", "sku": "BONE-5LB", "quantity": 2, "external_order_item_id": "L1"},
                  {"name": "TREAT", "sku": "TREAT", "quantity": 3}],
    }


def edited(reference: str = "acme-1001") -> WarehouseOrder:
    order = an_order(reference)
    ship_to = order.order.ship_to.model_copy(update={"address1": "9 New Street", "address2": "", "city": "Shelbyville", "postal_code": "62565"})
    lines = [WarehouseLine(sku="BONE-5LB", quantity=3, description="Bone, 5 lb", unit_price=Decimal("9.75")),
             WarehouseLine(sku="CHEW", quantity=1, description="Chew toy")]
    return order.model_copy(update={"order": order.order.model_copy(update={"ship_to": ship_to}), "lines": lines})


def found(router, shipment: dict[str, Any] | None = None) -> None:
    """Our shipment found by reference, and no part split off it."""
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(200, json=shipment or held())
    router.get("/v2/shipments", params={"shipment_number": "acme-1001"}).respond(200, json=page("shipments", [shipment or held()]))


def put_answer(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    return httpx.Response(200, json=dict(held(), ship_to=sent["ship_to"], items=sent["items"], modified_at="2026-03-05T00:00:00Z"))


async def test_update_puts_the_shipment_as_held_with_the_new_ship_to_and_items(adapter, router) -> None:
    found(router)
    put = router.put("/v2/shipments/se-5")
    put.side_effect = put_answer
    said = await adapter.update_order(edited(), "se-5", address=True, lines=True)
    assert said == "ShipStation shipment se-5: ship_to and items updated"
    sent = json.loads(put.calls.last.request.content)
    assert (sent["ship_to"]["address_line1"], sent["ship_to"]["city_locality"], sent["ship_to"]["postal_code"]) == (
        "9 New Street", "Shelbyville", "62565")
    assert "address_line2" not in sent["ship_to"]
    # What the warehouse set stays as it is; read-only fields and tags are not sent.
    for key in ("carrier_id", "service_code", "hold_until_date", "packages", "ship_from", "warehouse_id", "external_shipment_id"):
        assert sent[key] == held()[key], key
    assert not {"created_at", "modified_at", "shipment_status", "total_weight", "tags", "shipment_number"} & set(sent)
    assert sent["items"] == [{"name": "Bone, 5 lb", "sku": "BONE-5LB", "quantity": 3, "external_order_item_id": "L1", "unit_price": 9.75},
                             {"name": "Chew toy", "sku": "CHEW", "quantity": 1}]


async def test_an_address_update_leaves_the_items_as_held(adapter, router) -> None:
    found(router)
    put = router.put("/v2/shipments/se-5")
    put.side_effect = put_answer
    assert "ship_to updated" in await adapter.update_order(edited(), "se-5", address=True, lines=False)
    sent = json.loads(put.calls.last.request.content)
    assert sent["items"] == held()["items"] and sent["ship_to"]["address_line1"] == "9 New Street"


async def test_a_shipment_without_a_service_is_updated_without_one(adapter, router) -> None:
    found(router, {k: v for k, v in held().items() if k not in ("carrier_id", "service_code")})
    put = router.put("/v2/shipments/se-5")
    put.side_effect = put_answer
    await adapter.update_order(edited(), "se-5", address=False, lines=True)
    sent = json.loads(put.calls.last.request.content)
    assert (sent["carrier_id"], sent["service_code"]) == (None, None)


async def test_a_bought_label_is_refused_saying_void_it_first_without_a_call(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(200, json=held("label_purchased"))
    put = router.put("/v2/shipments/se-5").respond(200, json=held())
    with pytest.raises(PermanentError, match="shipment se-5 is label_purchased: a label was bought; void the label first"):
        await adapter.update_order(edited(), "se-5", address=True, lines=True)
    assert put.call_count == 0


@pytest.mark.parametrize("status", ["cancelled", "processing"])
async def test_a_shipment_no_longer_pending_is_refused_naming_its_status(adapter, router, status) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(200, json=held(status))
    put = router.put("/v2/shipments/se-5").respond(200, json=held())
    with pytest.raises(PermanentError, match=f"shipment se-5 is {status}: only a pending shipment"):
        await adapter.update_order(edited(), "se-5", address=True, lines=False)
    assert put.call_count == 0


async def test_a_split_shipment_is_refused_for_a_person(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/acme-1001").respond(200, json=held())
    router.get("/v2/shipments", params={"shipment_number": "acme-1001"}).respond(200, json=page("shipments", [
        dict(shipment("se-6", "se-6", "acme-1001", [("TREAT", 1)]), shipment_status="pending")]))
    put = router.put("/v2/shipments/se-5").respond(200, json=held())
    with pytest.raises(PermanentError, match="split .* into se-6"):
        await adapter.update_order(edited(), "se-5", address=True, lines=True)
    assert put.call_count == 0


async def test_a_refused_update_is_read_again_and_raised_in_shipstations_words(adapter, router) -> None:
    found(router)
    router.put("/v2/shipments/se-5").respond(400, json=ss_error("invalid_status", "label exists"))
    router.get("/v2/shipments/se-5").respond(200, json=held("label_purchased"))
    with pytest.raises(PermanentError, match=r"\(now label_purchased\): label exists \[invalid_status\].*; void the label first"):
        await adapter.update_order(edited(), "se-5", address=True, lines=True)


async def test_an_answer_without_the_new_items_is_not_taken_for_done(adapter, router) -> None:
    found(router)
    router.put("/v2/shipments/se-5").respond(200, json=held())
    with pytest.raises(PermanentError, match="without the new items"):
        await adapter.update_order(edited(), "se-5", address=False, lines=True)


async def test_a_lost_update_answer_is_in_doubt_and_not_resent(adapter, router) -> None:
    found(router)
    put = router.put("/v2/shipments/se-5")
    put.side_effect = [httpx.Response(503), httpx.Response(200, json=held())]
    with pytest.raises(InDoubtError):  # the engine asks again later, and the same update twice is harmless
        await adapter.update_order(edited(), "se-5", address=True, lines=True)
    assert put.call_count == 1


async def test_update_of_a_shipment_shipstation_lacks_or_of_another_id_sends_nothing(adapter, router) -> None:
    lookup = router.get("/v2/shipments/external_shipment_id/acme-1001")
    lookup.side_effect = [httpx.Response(404, json=ss_error("invalid_identifier", "not found")), httpx.Response(200, json=held())]
    put = router.put("/v2/shipments/se-5").respond(200, json=held())
    with pytest.raises(PermanentError, match="no shipment with external_shipment_id acme-1001"):
        await adapter.update_order(edited(), "se-5", address=True, lines=True)
    with pytest.raises(PermanentError, match="is se-5, not se-9"):
        await adapter.update_order(edited(), "se-9", address=True, lines=True)
    assert put.call_count == 0


def test_the_update_body_is_checked_against_the_documents_shipment_schema() -> None:
    # The amended validator is no rubber stamp: a body the document's schema refuses is refused.
    validator = shipstation_validator()
    headers = {"api-key": "k"}
    for bad in ({"ship_to": held()["ship_to"]},  # no shipment_id, carrier, service, ship_from
                {**{k: held()[k] for k in ("shipment_id", "carrier_id", "service_code", "ship_to", "ship_from")}, "colour": "red"}):
        with pytest.raises(AssertionError):
            validator.validate_request(httpx.Request("PUT", f"{BASE}/v2/shipments/se-5", headers=headers, json=bad))
    good = {k: held()[k] for k in ("shipment_id", "carrier_id", "service_code", "ship_to", "ship_from", "items")}
    validator.validate_request(httpx.Request("PUT", f"{BASE}/v2/shipments/se-5", headers=headers, json=good))


def test_updates_are_claimed() -> None:
    caps = ShipStationV2Adapter.capabilities
    assert (caps.update_address, caps.update_lines) == (True, True)


# -- rate limiting and errors ---------------------------------------------------------------


async def test_429_raises_rate_limited_with_retry_after(adapter, router) -> None:
    route = router.get("/v2/shipments/external_shipment_id/acme-1").respond(
        429, headers={"Retry-After": "25"}, json=ss_error("rate_limit_exceeded", "You have exceeded the rate limit."))
    with pytest.raises(RateLimitedError) as caught:
        await adapter.find_order("acme-1")
    assert caught.value.retry_after == 25 and "exceeded the rate limit" in caught.value.message
    assert route.call_count == 1  # never slept on inside the call
    assert adapter.http.limiter.blocked_until > time.monotonic() + 20
    with pytest.raises(RateLimitedError):  # the key's limiter refuses until ShipStation's window reopens
        await adapter.find_order("acme-1")
    assert route.call_count == 1


async def test_rate_limit_headers_feed_the_limiter(adapter, router) -> None:
    router.get("/v2/shipments/external_shipment_id/a").respond(404, json=ss_error("invalid_identifier", "no"),
                                                               headers={"X-Rate-Limit-Remaining": "12", "X-Rate-Limit-Reset": "40"})
    router.get("/v2/shipments/external_shipment_id/b").respond(404, json=ss_error("invalid_identifier", "no"),
                                                               headers={"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "30"})
    await adapter.find_order("a")
    assert adapter.http.limiter.blocked_until < time.monotonic()
    await adapter.find_order("b")
    assert adapter.http.limiter.blocked_until > time.monotonic() + 25


async def test_the_default_budget_is_200_per_minute(adapter) -> None:
    assert adapter.http.limiter.per_minute == 200


async def test_5xx_on_a_read_is_retried(adapter, router) -> None:
    route = router.get("/v2/shipments/external_shipment_id/r")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json={"shipment_id": "se-1", "external_shipment_id": "r"})]
    assert (await adapter.find_order("r")).warehouse_order_id == "se-1"
    assert route.call_count == 2


# -- setup and catalogues -------------------------------------------------------------------


async def test_check_describes_carriers_and_warehouse(router, api_key) -> None:
    carriers_route(router)
    router.get("/v2/warehouses/se-77").respond(200, json={"warehouse_id": "se-77", "name": "Reno DC", "origin_address": ORIGIN})
    a = make_adapter(router, api_key, warehouse_id="se-77")
    try:
        text = await a.check()
    finally:
        await a.aclose()
    assert "2 carrier account(s) (UPS, USPS)" in text and "ships from se-77 (Reno DC)" in text


@pytest.mark.parametrize(
    ("carriers", "warehouse", "match"),
    [
        (httpx.Response(401, json=ss_error("unauthorized", "The API key is invalid")), None, "API key is invalid"),
        (httpx.Response(200, json=CARRIERS), httpx.Response(404, json=ss_error("invalid_identifier", "not found")), "warehouse_id se-77"),
    ],
)
async def test_check_configuration_errors(router, api_key, carriers, warehouse, match) -> None:
    router.get("/v2/carriers").mock(return_value=carriers)
    if warehouse is not None:
        router.get("/v2/warehouses/se-77").mock(return_value=warehouse)
    a = make_adapter(router, api_key, warehouse_id="se-77")
    try:
        with pytest.raises(ConfigurationError, match=match):
            await a.check()
    finally:
        await a.aclose()


async def test_known_ship_methods_bare_and_qualified(adapter, router) -> None:
    router.get("/v2/carriers").respond(207, json=CARRIERS)  # partial success still lists carriers
    assert await adapter.known_ship_methods() == {
        "usps_priority_mail", "ups_ground", "ups_2nd_day_air",
        "se-1:usps_priority_mail", "se-1:ups_ground", "se-2:ups_ground", "se-2:ups_2nd_day_air",
    }


async def test_known_skus_are_products_and_their_aliases(adapter, router) -> None:
    route = router.get("/v2/products")
    route.side_effect = [
        httpx.Response(200, json=page("products", [{"product_id": 1, "sku": " A ", "aliases": [{"store_id": 5, "sku_alias": "a-old"}]},
                                                   {"product_id": 2, "sku": ""}], next_href=f"{BASE}/v2/products?page=2&page_size=100")),
        httpx.Response(200, json=page("products", [{"product_id": 3, "sku": "B", "active": False}])),
    ]
    assert await adapter.known_skus() == {"A", "a-old", "B"}  # an inactive product can still be shipped
    assert [dict(c.request.url.params) for c in route.calls] == [{"page_size": "100"}, {"page_size": "100", "page": "2"}]


async def test_check_skus_off_means_the_warehouse_cannot_tell(router, api_key) -> None:
    a = make_adapter(router, api_key, check_skus=False)
    try:
        assert await a.known_skus() is None
    finally:
        await a.aclose()
    assert not router.calls


# -- shipments ------------------------------------------------------------------------------


def label(lid: str, sid: str, external: str | None, status: str = "completed", tracking: str = "9400100", **extra: Any) -> dict[str, Any]:
    out = {"label_id": lid, "shipment_id": sid, "status": status, "tracking_number": tracking, "carrier_code": "stamps_com",
           "service_code": "usps_priority_mail", "ship_date": "2026-03-05T00:00:00Z", "created_at": "2026-03-05T10:00:00Z",
           "shipment_cost": {"currency": "usd", "amount": 7.5}, "insurance_cost": {"currency": "usd", "amount": 1.25},
           "is_return_label": False, "voided": status == "voided", **extra}
    if external is not None:
        out["external_shipment_id"] = external
    return out


def page(key: str, items: list[dict], next_href: str | None = None) -> dict[str, Any]:
    links = {"first": {"href": f"{BASE}/x"}, "last": {"href": f"{BASE}/x"}, "prev": {}, "next": {"href": next_href} if next_href else {}}
    return {key: items, "total": len(items), "page": 1, "pages": 2 if next_href else 1, "links": links}


def shipment(sid: str, external: str, number: str, items: list[tuple[str, int]]) -> dict[str, Any]:
    return {"shipment_id": sid, "external_shipment_id": external, "shipment_number": number,
            "items": [{"sku": sku, "quantity": q, "name": sku} for sku, q in items]}


async def test_shipments_since_maps_filters_and_attributes(adapter, router) -> None:
    labels = [
        label("se-11", "se-1", "acme-1", tracking=" 9400111 ", packages=[{"tracking_number": "9400111"}, {"tracking_number": "9400112"}]),
        label("se-12", "se-1", "acme-1", status="voided", tracking="VOID1"),
        label("se-13", "se-2", "acme-2", status="processing"),
        label("se-14", "se-2", "acme-2", is_return_label=True),
        label("se-15", "se-3", "se-3", tracking="SPLIT1"),  # split off acme-1
        label("se-16", "se-4", "shopify-777", tracking="FOREIGN"),  # another store's shipment
        label("se-17", "se-5", "acme-5", tracking="   "),
        label("se-18", "se-5", "acme-5", tracking="SECOND-PARCEL"),
    ]
    listing = router.get("/v2/labels").respond(200, json=page("labels", labels))
    router.get("/v2/shipments/se-1").respond(200, json=shipment("se-1", "acme-1", "acme-1", [("A", 2)]))
    router.get("/v2/shipments/se-3").respond(200, json=shipment("se-3", "se-3", "acme-1", [("B", 1)]))
    router.get("/v2/shipments/se-4").respond(200, json=shipment("se-4", "shopify-777", "777", [("A", 1)]))
    router.get("/v2/shipments/se-5").respond(200, json=shipment("se-5", "acme-5", "acme-5", [("C", 3)]))
    by_number = router.get("/v2/shipments", params={"shipment_number": "acme-1"}).respond(
        200, json=page("shipments", [shipment("se-3", "se-3", "acme-1", []), shipment("se-1", "acme-1", "acme-1", [])]))
    router.get("/v2/shipments", params={"shipment_number": "777"}).respond(200, json=page("shipments", [shipment("se-4", "shopify-777", "777", [])]))

    found = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))

    params = listing.calls.last.request.url.params
    assert dict(params) == {"created_at_start": "2026-03-01T00:00:00Z", "sort_by": "created_at", "sort_dir": "asc", "page_size": "100"}
    by_id = {s.shipment_id: s for s in found}
    assert sorted(by_id) == ["se-11", "se-12", "se-15", "se-17", "se-18"]
    one = by_id["se-11"]
    assert (one.reference, one.warehouse_order_id, one.carrier, one.service) == ("acme-1", "se-1", "stamps_com", "usps_priority_mail")
    assert one.tracking_numbers == ["9400111", "9400112"]
    assert [(x.sku, x.quantity) for x in one.lines] == [("A", 2)]
    assert one.shipped_at == datetime(2026, 3, 5, tzinfo=UTC)
    assert one.shipping_cost == Decimal("8.75") and not one.voided
    assert by_id["se-12"].voided and by_id["se-12"].lines == [] and by_id["se-12"].tracking_numbers == ["VOID1"]
    split = by_id["se-15"]
    assert (split.reference, split.warehouse_order_id, [(x.sku, x.quantity) for x in split.lines]) == ("acme-1", "se-1", [("B", 1)])
    assert by_id["se-17"].tracking_numbers == [] and [(x.sku, x.quantity) for x in by_id["se-17"].lines] == [("C", 3)]
    assert by_id["se-18"].lines == []  # the shipment's items ship once
    assert by_number.call_count == 1

    # Read again (the window overlaps): every label was attributed already, nothing is fetched.
    calls = len(router.calls)
    again = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    assert [s.shipment_id for s in again] == [s.shipment_id for s in found]
    assert len(router.calls) == calls + 1  # just the labels listing


async def test_labels_page_through_next_links(adapter, router) -> None:
    route = router.get("/v2/labels")
    route.side_effect = [
        httpx.Response(200, json=page("labels", [label("se-11", "se-1", "acme-1")],
                                      next_href=f"https://elsewhere.example/v2/labels?page=2&page_size=100&sort_dir=asc")),
        httpx.Response(200, json=page("labels", [label("se-12", "se-2", "acme-2")])),
    ]
    router.get("/v2/shipments/se-1").respond(200, json=shipment("se-1", "acme-1", "acme-1", [("A", 1)]))
    router.get("/v2/shipments/se-2").respond(200, json=shipment("se-2", "acme-2", "acme-2", [("A", 1)]))
    found = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    assert [s.reference for s in found] == ["acme-1", "acme-2"]
    second = route.calls[1].request
    assert second.url.host == "api.shipstation.com"
    assert (second.url.params["page"], second.url.params["created_at_start"]) == ("2", "2026-03-01T00:00:00Z")


async def test_acknowledge_is_a_no_op(adapter, router) -> None:
    await adapter.acknowledge_shipments([Shipment(shipment_id="se-1", reference="acme-1")])
    assert not router.calls


# -- stock ----------------------------------------------------------------------------------


async def test_stock_levels_per_inventory_warehouse(adapter, router) -> None:
    page1 = page("inventory", [
        {"sku": "A", "on_hand": 8, "allocated": 3, "available": 5, "inventory_warehouse_id": "se-10"},
        {"sku": "A", "on_hand": 2, "allocated": 0, "available": 2, "inventory_warehouse_id": "se-10"},  # a second location
        {"sku": "A", "on_hand": 0, "allocated": 2, "available": -2, "inventory_warehouse_id": "se-11"},
        {"sku": "", "on_hand": 1, "available": 1, "inventory_warehouse_id": "se-10"},
        {"sku": "C", "on_hand": 1, "available": 1},
    ], next_href=f"{BASE}/v2/inventory?page=2")
    page2 = page("inventory", [{"sku": "B", "on_hand": 4, "allocated": 0, "available": 4, "inventory_warehouse_id": "se-11"}])
    route = router.get("/v2/inventory")
    route.side_effect = [httpx.Response(200, json=page1), httpx.Response(200, json=page2)]
    levels = [(lv.sku, lv.warehouse_id, lv.available, lv.on_hand) for lv in await adapter.stock_levels()]
    assert levels == [("A", "se-10", 7, 10), ("A", "se-11", 0, 0), ("B", "se-11", 4, 4)]
    assert [dict(c.request.url.params) for c in route.calls] == [{"group_by": "warehouse"}, {"group_by": "warehouse", "page": "2"}]


# -- config ---------------------------------------------------------------------------------


def test_config() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="se-123456"):
        ShipStationV2Config(api_key="k", warehouse_id="Reno DC")
    with pytest.raises(ValidationError, match="validate_address"):
        ShipStationV2Config(api_key="k", validate_address="sometimes")
    config = ShipStationV2Config(api_key="secret-key", warehouse_id=" se-77 ")
    assert config.secrets() == ["secret-key"]
    assert (config.adapter, config.base_url, config.rate_per_minute, config.warehouse_id) == (
        "shipstation-v2", "https://api.shipstation.com", 200, "se-77")


# -- webhooks -------------------------------------------------------------------------------

HOOK_URL = "https://connector.example/webhooks/warehouse/acme/tok-123"
HOOK_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


def a_webhook(webhook_id: str, event: str, url: str = HOOK_URL, headers: list | None = None) -> dict:
    return {"webhook_id": webhook_id, "url": url, "event": event, "headers": headers if headers is not None else []}


async def test_register_webhooks_creates_track_and_batch_with_the_secret_header(adapter, router) -> None:
    router.get("/v2/environment/webhooks").respond(200, json=[a_webhook("se-1", "track", url="https://other.example/x")])
    create = router.post("/v2/environment/webhooks").mock(side_effect=lambda request: httpx.Response(
        200, json={"webhook_id": f"se-{json.loads(request.content)['event']}", **json.loads(request.content)}))
    lines = await adapter.register_webhooks(HOOK_URL, HOOK_SECRET)
    sent = [json.loads(c.request.content) for c in create.calls]
    assert [(b["event"], b["url"]) for b in sent] == [("track", HOOK_URL), ("batch", HOOK_URL)]
    assert all(b["headers"] == [{"key": "X-Connector-Webhook-Secret", "value": HOOK_SECRET}] for b in sent)
    assert lines == ["subscribed track (webhook se-track)", "subscribed batch (webhook se-batch)"]


async def test_register_webhooks_leaves_good_ones_and_adds_the_header_to_others(adapter, router) -> None:
    ours = {"key": "x-connector-webhook-secret", "value": HOOK_SECRET}
    router.get("/v2/environment/webhooks").respond(200, json=[
        a_webhook("se-1", "track", headers=[ours]), a_webhook("se-2", "batch", headers=[{"key": "keep", "value": "me"}])])
    create = router.post("/v2/environment/webhooks").respond(200, json={})
    update = router.put("/v2/environment/webhooks/se-2").respond(204)
    lines = await adapter.register_webhooks(HOOK_URL, HOOK_SECRET)
    assert create.call_count == 0
    assert json.loads(update.calls.last.request.content) == {
        "url": HOOK_URL, "headers": [{"key": "keep", "value": "me"}, {"key": "X-Connector-Webhook-Secret", "value": HOOK_SECRET}]}
    assert lines == ["already subscribed: track (webhook se-1)", "batch: webhook se-2 now sends the connector's secret header"]
    assert await adapter.webhook_urls() == {HOOK_URL}


async def test_a_refused_webhook_says_what_may_be_in_the_way(adapter, router) -> None:
    router.get("/v2/environment/webhooks").respond(200, json=[])
    router.post("/v2/environment/webhooks").respond(409, json={"request_id": "r", "errors": [
        {"error_source": "shipstation", "error_type": "business_rules", "error_code": "unspecified", "message": "conflict"}]})
    with pytest.raises(PermanentError, match="refused a track webhook"):
        await adapter.register_webhooks(HOOK_URL, HOOK_SECRET)


async def test_webhook_urls_need_every_event(adapter, router) -> None:
    router.get("/v2/environment/webhooks").respond(200, json=[a_webhook("se-1", "track"), a_webhook("se-2", "batch", url="https://x.example/")])
    assert await adapter.webhook_urls() == set()


async def test_verify_webhook_wants_the_secret_header_when_there_is_a_secret(adapter) -> None:
    assert adapter.verify_webhook({"X-Connector-Webhook-Secret": HOOK_SECRET}, b"{}", HOOK_SECRET)
    assert adapter.verify_webhook({"x-connector-webhook-secret": HOOK_SECRET}, b"{}", HOOK_SECRET)
    assert not adapter.verify_webhook({"X-Connector-Webhook-Secret": HOOK_SECRET + "x"}, b"{}", HOOK_SECRET)
    assert not adapter.verify_webhook({}, b"{}", HOOK_SECRET)
    assert not adapter.verify_webhook({"X-Connector-Webhook-Secret": ""}, b"{}", "")  # no secret stored: refused, as for ShipBob


async def test_webhook_hints_read_the_resource_url_and_never_more(adapter) -> None:
    body = {"resource_url": "https://api.shipstation.com/v2/labels/se-901/track", "resource_type": "TRACK_EVENT_V2",
            "data": {"tracking_number": "9400111", "status_code": "AC"}}
    assert adapter.webhook_hints(body) == [{"topic": "track_event_v2", "label_id": "se-901", "id": "se-901", "tracking_number": "9400111"}]
    batch = {"resource_url": "https://api.shipstation.com/v2/batches/se-77", "resource_type": "BATCH_PROCESSED_V2"}
    assert adapter.webhook_hints(batch) == [{"topic": "batch_processed_v2", "batch_id": "se-77", "id": "se-77"}]
    assert adapter.webhook_hints({"resource_url": "http://169.254.169.254/latest", "resource_type": 5}) == []
