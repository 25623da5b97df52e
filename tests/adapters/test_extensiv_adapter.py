"""The Extensiv adapter against respx: request shapes, tokens, error handling, paging, mapping.

Extensiv publishes no machine-readable spec (../shared/specs has none), so instead of an OpenAPI
validator every request goes through `FactsRouter`, which checks it against what the research
notes (A.6) establish: the endpoints and their query parameters, HAL+JSON media types, Basic
credentials on the token call and a Bearer token everywhere else, and the order body's fields.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
import respx

from adapters.base import AdapterContext
from adapters.http import Limiters
from adapters.extensiv import ExtensivAdapter, ExtensivConfig, mapping
from adapters.extensiv import adapter as adapter_module
from connector.domain import Address, Order, WarehouseLine, WarehouseOrder
from connector.errors import ConfigurationError, PermanentError, RateLimitedError, TransientError

BASE = "https://secure-wms.com"
TPL = "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40"
TOKEN_PATH = "/AuthServer/api/Token"

# What research A.6 establishes, per endpoint: the query parameters each one takes.
ENDPOINTS: list[tuple[str, re.Pattern[str], frozenset[str]]] = [
    ("POST", re.compile(r"/AuthServer/api/Token"), frozenset()),
    ("GET", re.compile(r"/customers/\d+"), frozenset()),
    ("GET", re.compile(r"/customers/\d+/items"), frozenset({"pgsiz", "pgnum", "rql", "sort"})),
    ("POST", re.compile(r"/orders"), frozenset()),
    ("GET", re.compile(r"/orders"), frozenset({"pgsiz", "pgnum", "rql", "sort", "detail", "itemdetail"})),
    ("GET", re.compile(r"/inventory/stocksummaries"), frozenset({"pgsiz", "pgnum", "customerid", "facilityid", "rql"})),
]
ORDER_FIELDS = {"customerIdentifier", "facilityIdentifier", "referenceNum", "poNum", "notes", "earliestShipDate",
                "routingInfo", "shipTo", "orderItems", "fulfillInvInfo"}


def check_request(request: httpx.Request) -> None:
    """Raise AssertionError when a request departs from the research facts."""
    what = f"{request.method} {request.url}"
    path = request.url.path
    known = [e for e in ENDPOINTS if e[0] == request.method and e[1].fullmatch(path)]
    assert known, f"{what}: not an endpoint the research documents"
    unknown = {k for k, _ in request.url.params.multi_items()} - known[0][2]
    assert not unknown, f"{what}: unknown query parameter(s) {sorted(unknown)}"
    auth = request.headers.get("authorization", "")
    if path == TOKEN_PATH:
        assert auth.startswith("Basic "), f"{what}: the token call authenticates with Basic client id:secret"
        body = json.loads(request.content)
        assert set(body) == {"grant_type", "tpl", "user_login_id"}, f"{what}: token body {body}"
        assert body["grant_type"] == "client_credentials" and re.fullmatch(r"\{[0-9a-f-]{36}\}", body["tpl"]), body
        return
    assert auth.startswith("Bearer ") and len(auth) > 7, f"{what}: API calls carry the Bearer token"
    assert request.headers.get("accept", "").startswith("application/hal+json"), f"{what}: Accept must be HAL+JSON"
    if request.method == "POST":
        assert request.headers.get("content-type", "").startswith("application/hal+json"), f"{what}: body must be HAL+JSON"
        body = json.loads(request.content)
        assert set(body) <= ORDER_FIELDS, f"{what}: unknown order fields {set(body) - ORDER_FIELDS}"
        for key in ("customerIdentifier", "facilityIdentifier", "referenceNum", "shipTo", "routingInfo", "orderItems"):
            assert body.get(key), f"{what}: {key} is required"
        assert isinstance(body["customerIdentifier"]["id"], int) and isinstance(body["facilityIdentifier"]["id"], int)
        assert len(body["referenceNum"]) <= 50
        for item in body["orderItems"]:
            assert set(item) == {"itemIdentifier", "qty"} and item["itemIdentifier"]["sku"], item
            assert isinstance(item["qty"], int) and item["qty"] > 0, item


class FactsRouter(respx.MockRouter):
    """A respx router that checks every request with `check_request` before answering it."""

    def __init__(self, **kwargs):
        super().__init__(base_url=BASE, assert_all_called=False, using="httpx", **kwargs)
        self.errors: list[str] = []

    async def aresolve(self, request: httpx.Request):  # type: ignore[override]
        try:
            check_request(request)
        except AssertionError as exc:
            self.errors.append(str(exc))
            raise
        return await super().aresolve(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.async_handler)


@pytest.fixture
def router():
    r = FactsRouter()
    yield r
    assert not r.errors, "requests departing from the research facts:\n" + "\n".join(r.errors)


@pytest.fixture
def client_id() -> str:
    return "cid-test"


@pytest.fixture
def limiters() -> Limiters:
    return Limiters()  # the runtime's are shared: a 429 here must never slow another test


@pytest.fixture
def token_route(router):
    return router.post(TOKEN_PATH).respond(200, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 1799})


@pytest.fixture
async def adapter(router, client_id, token_route, limiters):
    config = {"adapter": "extensiv", "client_id": client_id, "client_secret": "s3cret", "tpl": TPL,
              "user_login_id": "42", "customer_id": 17, "facility_id": "3"}
    a = ExtensivAdapter(config, AdapterContext(merchant="acme", transport=router.transport(), limiters=limiters))
    yield a
    await a.aclose()


def an_order(reference: str = "acme-1001", ship_method: str = "UPS|Ground|UPSN") -> WarehouseOrder:
    cart = Order(
        order_id="DEMO-1001",
        created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        ship_to=Address(first_name="Ada", last_name="Lovelace", address1="12 Way", address2="Unit 3", city="Springfield",
                        state="IL", postal_code="62701", country_code="us", phone="555-0100"),
        email="ada@example.com",
        gift_message="Happy birthday",
        special_instructions="Leave at side door",
        requested_ship_date=date(2026, 3, 6),
    )
    lines = [
        WarehouseLine(sku="BONE-5LB", quantity=2, description="Bone, 5 lb", unit_price=Decimal("9.75")),
        WarehouseLine(sku="TREAT", quantity=1),
        WarehouseLine(sku="TREAT", quantity=2, cart_sku="GIFT-SET"),
    ]
    return WarehouseOrder(reference=reference, order=cart, ship_method=ship_method, lines=lines)


def test_the_facts_checker_catches_departures() -> None:
    hal = {"Accept": "application/hal+json", "Authorization": "Bearer t"}
    check_request(httpx.Request("GET", f"{BASE}/orders", headers=hal, params={"rql": "x==1", "pgsiz": 1}))
    bad = [
        httpx.Request("GET", f"{BASE}/orders", headers=hal, params={"pagesize": 1}),  # misspelt parameter
        httpx.Request("GET", f"{BASE}/orders", headers={"Authorization": "Bearer t"}),  # plain JSON accept
        httpx.Request("GET", f"{BASE}/orders", headers={"Accept": "application/hal+json"}),  # no token
        httpx.Request("GET", f"{BASE}/order", headers=hal),  # no such endpoint
        httpx.Request("POST", f"{BASE}{TOKEN_PATH}", headers={"Authorization": "Basic x"}, json={"grant_type": "client_credentials", "tpl": "abc"}),
        httpx.Request("POST", f"{BASE}/orders", headers={**hal, "Content-Type": "application/hal+json"},
                      json={"referenceNum": "r", "orderItems": [{"itemIdentifier": {"sku": "A"}, "qty": 1}]}),
    ]
    for request in bad:
        with pytest.raises(AssertionError):
            check_request(request)


def listing(*orders: dict, total: int | None = None) -> dict:
    return {"TotalResults": len(orders) if total is None else total, "ResourceList": list(orders)}


def ext_order(oid: int, reference: str, *, status: int = 1, closed: bool = True, packages=None, items=None, **extra) -> dict:
    items = items if items is not None else [(11, "A", 2), (12, "B", 1)]
    return {
        "ReadOnly": {"OrderId": oid, "Status": status, "IsClosed": closed, "ProcessDate": "2026-03-05T10:00:00",
                     "LastModifiedDate": "2026-03-05T10:00:01", "Packages": packages or []},
        "ReferenceNum": reference,
        "RoutingInfo": {"Carrier": "UPS", "Mode": "Ground", "TrackingNumber": extra.pop("order_tracking", "")},
        "OrderItems": [{"ReadOnly": {"OrderItemId": i}, "ItemIdentifier": {"Sku": s, "Id": 1}, "Qty": q} for i, s, q in items],
        **extra,
    }


def package(pid: int, tracking: str, *contents: tuple[int, float]) -> dict:
    return {"PackageId": pid, "TrackingNumber": tracking, "PackageContents": [{"OrderItemId": i, "Qty": q} for i, q in contents]}


# -- tokens ---------------------------------------------------------------------------------


async def test_token_request_and_bearer_use(adapter, router, token_route, client_id) -> None:
    lookup = router.get("/orders").respond(200, json=listing())
    assert await adapter.find_order("acme-1") is None
    request = token_route.calls.last.request
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{client_id}:s3cret".encode()).decode()
    assert json.loads(request.content) == {"grant_type": "client_credentials", "tpl": "{" + TPL + "}", "user_login_id": "42"}
    assert lookup.calls.last.request.headers["authorization"] == "Bearer tok-1"


async def test_token_is_cached_and_renewed_before_it_expires(adapter, router, token_route) -> None:
    now = [1000.0]
    adapter.tokens.clock = lambda: now[0]
    router.get("/orders").respond(200, json=listing())
    await adapter.find_order("a")
    await adapter.find_order("b")
    assert token_route.call_count == 1
    now[0] += 1799 - 110  # 110 s before Extensiv's expiry: inside the refresh margin
    await adapter.find_order("c")
    assert token_route.call_count == 2


async def test_token_never_outlives_30_minutes(adapter, router) -> None:
    route = router.post(TOKEN_PATH).respond(200, json={"access_token": "t", "expires_in": 3600})
    now = [0.0]
    adapter.tokens.clock = lambda: now[0]
    router.get("/orders").respond(200, json=listing())
    await adapter.find_order("a")
    now[0] += 30 * 60 - 60
    await adapter.find_order("b")
    assert route.call_count == 2


async def test_a_401_renews_the_token_once_and_resends(adapter, router, token_route) -> None:
    token_route.side_effect = [
        httpx.Response(200, json={"access_token": "old", "expires_in": 1800}),
        httpx.Response(200, json={"access_token": "new", "expires_in": 1800}),
    ]
    create = router.post("/orders")
    create.side_effect = [httpx.Response(401), httpx.Response(201, json={"ReadOnly": {"OrderId": 7}})]
    router.get("/orders").respond(200, json=listing())
    result = await adapter.create_order(an_order())
    assert result.warehouse_order_id == "7"
    assert [c.request.headers["authorization"] for c in create.calls] == ["Bearer old", "Bearer new"]


async def test_a_second_401_is_a_configuration_error(adapter, router) -> None:
    router.get("/orders").respond(401)
    with pytest.raises(ConfigurationError):
        await adapter.find_order("acme-1")


@pytest.mark.parametrize("response", [
    httpx.Response(400, json={"error": "invalid_grant", "error_description": "unknown tpl"}),
    httpx.Response(401, json={"error": "invalid_client"}),
])
async def test_refused_credentials_are_a_configuration_error(adapter, router, token_route, response) -> None:
    token_route.return_value = response
    with pytest.raises(ConfigurationError, match="invalid_"):
        await adapter.check()


async def test_a_token_answer_without_a_token_is_transient(adapter, token_route) -> None:
    token_route.return_value = httpx.Response(200, json={"token_type": "Bearer"})
    with pytest.raises(TransientError):
        await adapter.find_order("a")


async def test_the_token_is_masked_in_the_call_records(router, client_id, token_route) -> None:
    from connector.redact import Redactor

    records = []
    config = ExtensivConfig(adapter="extensiv", client_id=client_id, client_secret="s3cret", tpl=TPL,
                            user_login_id=42, customer_id=17, facility_id=3)
    redactor = Redactor(config.secrets())  # what the runtime does with every configured secret
    a = ExtensivAdapter(config, AdapterContext(merchant="acme", transport=router.transport(), on_call=records.append, redactor=redactor,
                                               limiters=Limiters()))
    router.get("/orders").respond(200, json=listing())
    try:
        await a.find_order("acme-1")
    finally:
        await a.aclose()
    token_call = records[0]
    assert token_call.url.endswith(TOKEN_PATH) and token_call.response_body["access_token"] == "***"
    assert TPL not in json.dumps(token_call.request_body)
    assert redactor.text("Bearer tok-1") == "Bearer ***"


# -- create ---------------------------------------------------------------------------------


async def test_create_looks_up_then_sends_a_complete_order(adapter, router) -> None:
    lookup = router.get("/orders").respond(200, json=listing())
    create = router.post("/orders").respond(201, json={"ReadOnly": {"OrderId": 555}, "ReferenceNum": "acme-1001"})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.reference, result.already_existed) == ("555", "acme-1001", False)
    assert lookup.calls.last.request.url.params["rql"] == 'ReadOnly.CustomerIdentifier.Id==17;ReferenceNum=="acme-1001"'
    assert lookup.calls.last.request.url.params["pgnum"] == "1"
    body = json.loads(create.calls.last.request.content)
    assert body == {
        "customerIdentifier": {"id": 17},
        "facilityIdentifier": {"id": 3},
        "referenceNum": "acme-1001",
        "poNum": "DEMO-1001",
        "routingInfo": {"carrier": "UPS", "mode": "Ground", "scacCode": "UPSN"},
        "shipTo": {
            "companyName": "Ada Lovelace", "name": "Ada Lovelace", "address1": "12 Way", "address2": "Unit 3",
            "city": "Springfield", "state": "IL", "zip": "62701", "country": "US", "phoneNumber": "555-0100",
            "emailAddress": "ada@example.com",
        },
        # Lines sharing a warehouse SKU (a kit component also sold alone) are merged.
        "orderItems": [{"itemIdentifier": {"sku": "BONE-5LB"}, "qty": 2}, {"itemIdentifier": {"sku": "TREAT"}, "qty": 3}],
        "notes": "Leave at side door",
        "earliestShipDate": "2026-03-06T00:00:00",
        "fulfillInvInfo": {"fulfillInvGiftMessage": "Happy birthday"},
    }


async def test_an_existing_reference_is_returned_without_sending(adapter, router) -> None:
    router.get("/orders").respond(200, json=listing(
        {"ReadOnly": {"OrderId": 9, "Status": 0}, "ReferenceNum": "acme-1001-2"},  # a split suffix, not ours
        {"ReadOnly": {"OrderId": 4, "Status": 2}, "ReferenceNum": "acme-1001"},  # cancelled
        {"ReadOnly": {"OrderId": 8, "Status": 0}, "ReferenceNum": "acme-1001"},
    ))
    create = router.post("/orders").respond(201, json={})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("8", True)
    assert create.call_count == 0


async def test_a_refused_duplicate_reference_is_looked_up(adapter, router) -> None:
    lookup = router.get("/orders")
    lookup.side_effect = [httpx.Response(200, json=listing()),
                          httpx.Response(200, json=listing({"ReadOnly": {"OrderId": 31}, "ReferenceNum": "acme-1001"}))]
    router.post("/orders").respond(400, json={"ErrorCode": "DuplicateReferenceNum", "Hint": "reference number acme-1001 is already in use"})
    result = await adapter.create_order(an_order())
    assert (result.warehouse_order_id, result.already_existed) == ("31", True)


async def test_other_refusals_are_permanent_with_extensivs_words(adapter, router) -> None:
    router.get("/orders").respond(200, json=listing())
    router.post("/orders").respond(400, json={"ErrorCode": "ItemNotFound", "Hint": "no active item with SKU 'TREAT'", "Properties": {"sku": "TREAT"}})
    with pytest.raises(PermanentError) as caught:
        await adapter.create_order(an_order())
    assert caught.value.message == "ItemNotFound: no active item with SKU 'TREAT': sku=TREAT"
    assert caught.value.status == 400


@pytest.mark.parametrize("method", ["UPS Ground", "|Ground", "a|b|c|d", ""])
async def test_a_ship_method_not_in_carrier_mode_form_fails_before_any_call(adapter, router, token_route, method) -> None:
    with pytest.raises(PermanentError, match="Carrier\\|Mode"):
        await adapter.create_order(an_order(ship_method=method))
    assert token_route.call_count == 0 and not router.calls


def test_routing_values() -> None:
    assert mapping.routing("UPS|Ground") == {"carrier": "UPS", "mode": "Ground"}
    assert mapping.routing(" FedEx | FedEx 2Day | FDEG ") == {"carrier": "FedEx", "mode": "FedEx 2Day", "scacCode": "FDEG"}
    assert mapping.routing("Will Call|") == {"carrier": "Will Call", "mode": ""}


async def test_a_created_answer_with_only_a_location(adapter, router) -> None:
    router.get("/orders").respond(200, json=listing())
    router.post("/orders").respond(201, headers={"Location": f"{BASE}/orders/987"})
    assert (await adapter.create_order(an_order())).warehouse_order_id == "987"


async def test_find_order_quotes_the_reference_and_pages(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "ORDERS_PAGE", 1)
    route = router.get("/orders")
    route.side_effect = [
        httpx.Response(200, json=listing({"ReadOnly": {"OrderId": 1}, "ReferenceNum": 'x"y-other'}, total=2)),
        httpx.Response(200, json=listing({"ReadOnly": {"OrderId": 2}, "ReferenceNum": 'x"y'}, total=2)),
    ]
    found = await adapter.find_order('x"y')
    assert found is not None and found.warehouse_order_id == "2"
    assert route.calls[0].request.url.params["rql"].endswith('ReferenceNum=="x\\"y"')
    assert [c.request.url.params["pgnum"] for c in route.calls] == ["1", "2"]


# -- errors and pacing ----------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(adapter, router) -> None:
    route = router.get("/orders").respond(429, headers={"Retry-After": "20"}, json={"Message": "Too many requests"})
    with pytest.raises(RateLimitedError) as caught:
        await adapter.find_order("acme-1")
    assert caught.value.retry_after == 20 and route.call_count == 1
    assert adapter.http.limiter.blocked_until > time.monotonic() + 15
    with pytest.raises(RateLimitedError):  # the login's limiter now holds every call
        await adapter.find_order("acme-1")
    assert route.call_count == 1


async def test_a_429_without_retry_after_waits_a_minute(adapter, router) -> None:
    router.get("/orders").respond(429)
    with pytest.raises(RateLimitedError) as caught:
        await adapter.find_order("acme-1")
    assert caught.value.retry_after == 60


async def test_5xx_on_a_read_is_retried(adapter, router) -> None:
    route = router.get("/orders")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json=listing({"ReadOnly": {"OrderId": 1}, "ReferenceNum": "r"}))]
    assert (await adapter.find_order("r")).warehouse_order_id == "1"
    assert route.call_count == 2


def test_the_login_is_paced_at_the_configured_rate(client_id, limiters) -> None:
    config = {"adapter": "extensiv", "client_id": client_id, "client_secret": "s", "tpl": TPL, "user_login_id": 1,
              "customer_id": 1, "facility_id": 1, "rate_per_minute": 120}
    a = ExtensivAdapter(config, AdapterContext(merchant="m", limiters=limiters))
    assert a.http.limiter.per_minute == 120 and a.tokens.http.limiter is a.http.limiter
    b = ExtensivAdapter({**config, "customer_id": 2}, AdapterContext(merchant="n", limiters=limiters))
    assert b.http.limiter is a.http.limiter  # one budget per login, whatever the customer
    assert ExtensivConfig.model_validate({k: v for k, v in config.items() if k != "rate_per_minute"}).rate_per_minute == 400


# -- setup ----------------------------------------------------------------------------------


async def test_check_names_customer_and_facility(adapter, router) -> None:
    router.get("/customers/17").respond(200, json={"CompanyInfo": {"CompanyName": "Acme Pets"}, "Facilities": [{"Id": 3, "Name": "Ontario"}]})
    assert "customer 17 (Acme Pets), facility 3 (Ontario)" in await adapter.check()


@pytest.mark.parametrize(("response", "match"), [
    (httpx.Response(404, json={"ErrorCode": "NotFound"}), "customer 17"),
    (httpx.Response(403), "extensiv"),
    (httpx.Response(200, json={"Facilities": [{"Id": 1, "Name": "East"}]}), "facility 3 is not one of customer 17's facilities: 1 \\(East\\)"),
])
async def test_check_configuration_errors(adapter, router, response, match) -> None:
    router.get("/customers/17").mock(return_value=response)
    with pytest.raises(ConfigurationError, match=match):
        await adapter.check()


def test_config_validation() -> None:
    from pydantic import ValidationError

    base = {"adapter": "extensiv", "client_id": "c", "client_secret": "secret-x", "user_login_id": 1, "customer_id": 1, "facility_id": 1}
    with pytest.raises(ValidationError, match="GUID"):
        ExtensivConfig(**base, tpl="my-warehouse")
    with pytest.raises(ValidationError, match="numeric"):
        ExtensivConfig(**{**base, "customer_id": "Acme Pets"}, tpl=TPL)
    with pytest.raises(ValidationError, match="[Ee]xtra"):
        ExtensivConfig(**base, tpl=TPL, facility="Main")
    config = ExtensivConfig(**base, tpl="{" + TPL.upper() + "}")
    assert config.tpl_key == "{" + TPL.upper() + "}" and ExtensivConfig(**base, tpl=TPL).tpl_key == "{" + TPL + "}"
    assert config.secrets() == ["secret-x", TPL.upper()]
    assert config.base_url == "https://secure-wms.com"


# -- catalogue ------------------------------------------------------------------------------


async def test_known_skus_are_the_active_items(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "ITEMS_PAGE", 2)
    route = router.get("/customers/17/items")
    route.side_effect = [
        httpx.Response(200, json={"TotalResults": 3, "ResourceList": [{"Sku": "A"}, {"Sku": " B ", "ReadOnly": {"Deactivated": True}}]}),
        httpx.Response(200, json={"TotalResults": 3, "ResourceList": [{"sku": "C", "readOnly": {"deactivated": False}}]}),
    ]
    assert await adapter.known_skus() == {"A", "C"}
    assert await adapter.known_ship_methods() is None
    assert [c.request.url.params["pgnum"] for c in route.calls] == ["1", "2"]


# -- shipments ------------------------------------------------------------------------------


async def test_shipments_query_and_mapping(adapter, router) -> None:
    split = ext_order(900, "acme-1", packages=[package(1, " 1Z001 ", (11, 2)), package(2, "1Z002", (12, 1))])
    voided = ext_order(901, "acme-2", packages=[package(3, "", ), package(4, "1Z004", (11, 2), (12, 1))])
    blank = ext_order(902, "acme-3", packages=[package(5, "  ", (11, 2), (12, 1))])
    no_contents = ext_order(903, "acme-4", packages=[package(6, "1Z006"), package(7, "1Z007")])
    freight = ext_order(904, "acme-5", order_tracking="PRO-778")
    cancelled = ext_order(905, "acme-6", status=2, packages=[package(8, "1Z008", (11, 2))])
    still_open = ext_order(906, "acme-7", status=0, closed=False)
    foreign = ext_order(907, "AMZ-114-1", packages=[package(9, "1Z009", (11, 2))])
    route = router.get("/orders").respond(200, json=listing(split, voided, blank, no_contents, freight, cancelled, still_open, foreign))
    shipments = await adapter.shipments_since(datetime(2026, 3, 1, 12, tzinfo=UTC))
    params = route.calls.last.request.url.params
    assert params["rql"] == ("ReadOnly.CustomerIdentifier.Id==17;ReadOnly.FacilityIdentifier.Id==3;ReadOnly.IsClosed==true;"
                             "ReadOnly.LastModifiedDate=ge=2026-03-01T00:00:00")  # 12 h of clock slack
    assert (params["sort"], params["detail"], params["pgsiz"], params["pgnum"]) == ("ReadOnly.LastModifiedDate", "All", "100", "1")
    got = {s.shipment_id: (s.reference, s.tracking_numbers, sorted((ln.sku, ln.quantity) for ln in s.lines)) for s in shipments}
    assert got == {
        "900-1": ("acme-1", ["1Z001"], [("A", 2)]),
        "900-2": ("acme-1", ["1Z002"], [("B", 1)]),
        "901-4": ("acme-2", ["1Z004"], [("A", 2), ("B", 1)]),  # the emptied, voided package is skipped
        "902-5": ("acme-3", [], [("A", 2), ("B", 1)]),
        "903-6": ("acme-4", ["1Z006"], [("A", 2), ("B", 1)]),  # no contents listed: the first carries all
        "903-7": ("acme-4", ["1Z007"], []),
        "904-order": ("acme-5", ["PRO-778"], [("A", 2), ("B", 1)]),
    }
    first = next(s for s in shipments if s.shipment_id == "900-1")
    assert (first.warehouse_order_id, first.carrier, first.service) == ("900", "UPS", "Ground")
    assert first.shipped_at == datetime(2026, 3, 5, 10, tzinfo=UTC) and not first.voided


async def test_a_window_whose_pages_shift_is_read_again(adapter, router, monkeypatch) -> None:
    monkeypatch.setattr(adapter_module, "ORDERS_PAGE", 2)
    a, b, c = (ext_order(i, f"acme-{i}", packages=[package(i, f"T{i}", (11, 2))]) for i in (1, 2, 3))
    route = router.get("/orders")
    # Order 1 was modified while we paged: it moved to the end and order 2 slid onto page 1.
    route.side_effect = [
        httpx.Response(200, json=listing(a, b, total=3)), httpx.Response(200, json=listing(a, total=3)),
        httpx.Response(200, json=listing(b, c, total=3)), httpx.Response(200, json=listing(a, total=3)),
    ]
    shipments = await adapter.shipments_since(datetime(2026, 3, 1, tzinfo=UTC))
    assert sorted(s.reference for s in shipments) == ["acme-1", "acme-2", "acme-3"]
    assert route.call_count == 4


async def test_acknowledging_is_a_no_op(adapter, router) -> None:
    await adapter.acknowledge_shipments([])
    assert not router.calls and adapter.capabilities.shipment_ack is False


# -- stock ----------------------------------------------------------------------------------


async def test_stock_levels_per_facility(adapter, router) -> None:
    route = router.get("/inventory/stocksummaries").respond(200, json={"TotalResults": 5, "Summaries": [
        {"FacilityId": 3, "ItemIdentifier": {"Sku": "A", "Id": 1}, "Qualifier": "", "Available": 5, "OnHand": 8, "Allocated": 3},
        {"FacilityId": 3, "ItemIdentifier": {"Sku": "A", "Id": 1}, "Qualifier": "RED", "Available": 2, "OnHand": 2},
        {"FacilityId": 4, "ItemIdentifier": {"Sku": "A", "Id": 1}, "Available": -2, "OnHand": 0},
        {"FacilityId": 4, "ItemIdentifier": {"Sku": "", "Id": 2}, "Available": 9, "OnHand": 9},
        {"facilityId": 4, "itemIdentifier": {"sku": "B"}, "available": 4.0, "onHand": 6.0},
    ]})
    levels = sorted((lv.sku, lv.warehouse_id, lv.available, lv.on_hand) for lv in await adapter.stock_levels())
    assert levels == [("A", "3", 7, 10), ("A", "4", 0, 0), ("B", "4", 4, 6)]
    params = route.calls.last.request.url.params
    assert (params["customerid"], params["pgsiz"], params["pgnum"]) == ("17", "500", "1")


def test_error_text_shapes() -> None:
    assert mapping.error_text({"error": "invalid_grant", "error_description": "unknown tpl"}) == "invalid_grant: unknown tpl"
    assert mapping.error_text({"Message": "An error has occurred."}) == "An error has occurred."
    assert mapping.error_text("plain") == "plain"
    assert mapping.is_duplicate_reference("DuplicateReferenceNum: reference number acme-1 is already in use")
    assert not mapping.is_duplicate_reference("ItemNotFound: no active item with SKU 'X'")
