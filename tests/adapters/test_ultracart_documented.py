"""What UltraCart documents about its Order and Item APIs, as a checker for the requests we send.

The Fulfillment API has an OpenAPI file in ../shared/specs; the Order and Item APIs do not (the
merged spec is 7.8 MB, research section 6). `DocumentedFacts` stands in for it with the facts
in ../shared/research/ultracart-api.md sections 2, 4 and 8: the paths, the query parameters each
operation takes, the expansion names, the page-size maxima, the batch limit and body, the
OrderQuery field names and date format, the headers. `FactsTransport` applies it to every Order
or Item request an httpx client sends (and, with `responses=True`, to the answers: that keeps
the sandbox honest). The tests below prove the checker refuses what UltraCart would.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

API_VERSION = "2017-03-01"
# research section 4, "Expansion values" (SS general/order/introduction_4.md), plus `properties`,
# which UltraCart's own query sample passes.
ORDER_EXPANSIONS = frozenset({
    "affiliate", "affiliate.ledger", "auto_order", "billing", "buysafe", "channel_partner", "checkout", "coupon",
    "customer_profile", "digital_order", "edi", "fraud_score", "gift", "gift_certificate", "internal", "item",
    "linked_shipment", "marketing", "payment", "payment.transaction", "point_of_sale", "properties", "quote",
    "salesforce", "shipping", "shipping.tracking_number_details", "summary", "taxes", "utms",
})
# research section 8.
ITEM_EXPANSIONS = frozenset({
    "kit_definition", "options", "variations", "shipping", "shipping.distribution_centers", "identifiers",
    "physical", "internal", "pricing",
})
# research section 4, "OrderQuery fields".
ORDER_QUERY_FIELDS = frozenset({
    "order_id", "current_stage", "payment_method", "email", "cc_email", "phone", "first_name", "last_name",
    "company", "city", "state_region", "postal_code", "country_code", "item_id", "rma", "purchase_order_number",
    "channel_partner_code", "channel_partner_order_id", "customer_profile_oid", "total", "storefront_host_name",
    "screen_branding_theme_code", *(f"custom_field_{i}" for i in range(1, 11)),
    "creation_date_begin", "creation_date_end", "payment_date_begin", "payment_date_end",
    "shipment_date_begin", "shipment_date_end", "refund_date_begin", "refund_date_end",
    "shipped_on_date_begin", "shipped_on_date_end", "query_target",
})
QUERY_STAGES = ("Accounts Receivable", "Pending Clearance", "Fraud Review", "Rejected", "Shipping Department",
                "Completed Order", "Quote Request", "Quote Sent", "Least Cost Routing", "Unknown")
QUERY_TARGETS = ("origin", "cache")
MAX_BATCH = 500
# `2018-12-03T14:27:10.312-05:00`: a full date-time with an offset.
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)$")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: re.Pattern[str]
    query: frozenset[str]
    expansions: frozenset[str]
    max_limit: int | None = None
    body: str | None = None  # which body check applies


OPERATIONS = (
    Operation("getOrdersBatch", "POST", re.compile(r"^/order/orders/batch$"), frozenset({"_expand"}), ORDER_EXPANSIONS,
              body="batch"),
    Operation("getOrdersByQuery", "POST", re.compile(r"^/order/orders/query$"),
              frozenset({"_limit", "_offset", "_sort", "_expand"}), ORDER_EXPANSIONS, max_limit=200, body="query"),
    Operation("getOrder", "GET", re.compile(r"^/order/orders/[^/]+$"), frozenset({"_expand"}), ORDER_EXPANSIONS),
    Operation("getItems", "GET", re.compile(r"^/item/items$"),
              frozenset({"parent_category_id", "parent_category_path", "_limit", "_offset", "_since", "_sort",
                         "_expand", "_placeholders"}), ITEM_EXPANSIONS, max_limit=2000),
)


def _is_date_time(value: Any) -> bool:
    if not isinstance(value, str) or not DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False  # e.g. month 13
    return True


def _api_path(request: httpx.Request) -> str:
    # The raw (still escaped) path: an order id holding "/" must stay one segment.
    path = request.url.raw_path.decode("ascii").split("?", 1)[0]
    return path[len("/rest/v2"):] if path.startswith("/rest/v2/") else path


def in_scope(request: httpx.Request) -> bool:
    """Order and Item API requests; everything else (Fulfillment, control API) is not ours to judge."""
    return _api_path(request).startswith(("/order/", "/item/"))


class DocumentedFacts:
    """Checks Order/Item API requests (and optionally responses) against the documented facts."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.checked: list[str] = []  # operation names, in order (a test can see what was exercised)

    def _fail(self, request: httpx.Request, problem: str) -> None:
        message = f"UltraCart Order/Item API: {request.method} {request.url}: {problem}"
        self.errors.append(message)
        raise AssertionError(message)

    def operation(self, request: httpx.Request) -> Operation:
        path = _api_path(request)
        for op in OPERATIONS:
            if op.path.match(path):
                if op.method == request.method:
                    return op
        self._fail(request, f"no documented Order/Item operation is {request.method} {path}")
        raise AssertionError  # unreachable

    def check_request(self, request: httpx.Request) -> None:
        op = self.operation(request)
        headers = request.headers
        if not headers.get("x-ultracart-simple-key", "").strip() and not headers.get("authorization", "").startswith("Bearer "):
            self._fail(request, "no x-ultracart-simple-key (or OAuth bearer) header")
        if headers.get("x-ultracart-api-version") != API_VERSION:
            self._fail(request, f"X-UltraCart-Api-Version must be {API_VERSION}, got {headers.get('x-ultracart-api-version')!r}")
        if "application/json" not in headers.get("accept", ""):
            self._fail(request, "Accept must be application/json")
        params = request.url.params
        unknown = sorted(set(params.keys()) - op.query)
        if unknown:
            self._fail(request, f"{op.name} takes no query parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(op.query))})")
        for name in params.keys():
            if len(params.get_list(name)) > 1:
                self._fail(request, f"query parameter {name} sent more than once")
        if "_expand" in params:
            names = [n.strip() for n in params["_expand"].split(",")]
            bad = sorted(n for n in names if n not in op.expansions)
            if bad:
                self._fail(request, f"{op.name}: undocumented expansion(s) {', '.join(bad)}")
        for name in ("_limit", "_offset"):
            if name in params:
                value = params[name]
                if not value.isdigit():
                    self._fail(request, f"{name} must be a non-negative integer, got {value!r}")
        if "_limit" in params and op.max_limit is not None and not 1 <= int(params["_limit"]) <= op.max_limit:
            self._fail(request, f"{op.name}: _limit must be 1..{op.max_limit}, got {params['_limit']}")
        if op.body is None:
            if request.content:
                self._fail(request, f"{op.name} takes no body")
        else:
            if "application/json" not in headers.get("content-type", ""):
                self._fail(request, "a JSON body needs Content-Type application/json")
            try:
                body = json.loads(request.content)
            except ValueError:
                self._fail(request, "the body is not JSON")
            getattr(self, f"_body_{op.body}")(request, body)
        self.checked.append(op.name)

    def _body_batch(self, request: httpx.Request, body: Any) -> None:
        if not isinstance(body, dict):
            self._fail(request, "the batch body must be an object {order_ids, query_target}")
        unknown = sorted(set(body) - {"order_ids", "query_target", "limit"})
        if unknown:
            self._fail(request, f"batch body has unknown field(s) {', '.join(unknown)}")
        ids = body.get("order_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
            self._fail(request, "order_ids must be a non-empty array of order id strings")
        if len(ids) > MAX_BATCH:
            self._fail(request, f"order_ids holds {len(ids)}; the batch takes at most {MAX_BATCH}")
        if "query_target" in body and body["query_target"] not in QUERY_TARGETS:
            self._fail(request, f"query_target must be one of {QUERY_TARGETS}, got {body['query_target']!r}")

    def _body_query(self, request: httpx.Request, body: Any) -> None:
        if not isinstance(body, dict):
            self._fail(request, "the OrderQuery body must be an object")
        unknown = sorted(set(body) - ORDER_QUERY_FIELDS)
        if unknown:
            self._fail(request, f"OrderQuery has no field(s) {', '.join(unknown)}")
        if not set(body) - {"query_target"}:
            self._fail(request, "an OrderQuery without criteria is refused with 400")
        for key, value in body.items():
            if key.endswith(("_begin", "_end")) and not _is_date_time(value):
                self._fail(request, f"{key} must be a date-time with an offset like 2018-12-03T14:27:10.312-05:00, got {value!r}")
        if "current_stage" in body and body["current_stage"] not in QUERY_STAGES:
            self._fail(request, f"current_stage {body['current_stage']!r} cannot be queried (Hold is not a query stage)")
        if "query_target" in body and body["query_target"] not in QUERY_TARGETS:
            self._fail(request, f"query_target must be one of {QUERY_TARGETS}, got {body['query_target']!r}")

    def check_response(self, request: httpx.Request, response: httpx.Response) -> None:
        """The documented reply shapes: OrderResponse, OrdersResponse (+ result_set), ItemsResponse, errors."""
        op = self.operation(request)
        if not response.headers.get("X-UltraCart-Request-Id"):
            self._fail(request, "the reply has no X-UltraCart-Request-Id")
        body = response.json() if response.content else None
        if response.status_code >= 400:
            if not response.headers.get("UC-REST-ERROR"):
                self._fail(request, f"a {response.status_code} reply without UC-REST-ERROR")
            if not (isinstance(body, dict) and isinstance(body.get("error"), dict)
                    and {"developer_message", "user_message"} <= set(body["error"]) and "success" not in body):
                self._fail(request, f"error body is not UltraCart's {{error: {{developer_message, user_message}}, metadata}}: {body!r}")
            return
        if response.status_code != 200 or not isinstance(body, dict) or body.get("success") is not True:
            self._fail(request, f"a success reply is 200 with success: true, got {response.status_code} {str(body)[:200]}")
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            self._fail(request, "a reply without metadata")
        key = {"getOrder": "order", "getItems": "items"}.get(op.name, "orders")
        if not isinstance(body.get(key), dict if key == "order" else list):
            self._fail(request, f"{op.name} reply has no {key}")
        if metadata.get("payload_name") != key:
            self._fail(request, f"metadata.payload_name should be {key!r}, got {metadata.get('payload_name')!r}")
        if op.name in ("getOrdersByQuery", "getItems"):
            rs = metadata.get("result_set")
            if not isinstance(rs, dict):
                self._fail(request, "a paged reply without metadata.result_set")
            for name in ("count", "offset", "limit", "next_offset"):
                if not isinstance(rs.get(name), int):
                    self._fail(request, f"result_set.{name} must be an integer, got {rs.get(name)!r}")
            if rs["count"] != len(body[key]):
                self._fail(request, f"result_set.count {rs['count']} but {len(body[key])} records")
            if "more" in rs and not isinstance(rs["more"], bool):
                self._fail(request, f"result_set.more must be a boolean, got {rs['more']!r}")
            if rs.get("total_records") is not None and not isinstance(rs["total_records"], int):
                self._fail(request, "result_set.total_records must be an integer or null")


class FactsTransport(httpx.AsyncBaseTransport):
    """Checks each Order/Item API request (and reply, with `responses=True`), then sends it on.

    Other requests pass unchecked: the Fulfillment API has its own spec validator.
    """

    def __init__(self, facts: DocumentedFacts, inner: httpx.AsyncBaseTransport | None = None, *, responses: bool = False):
        self.facts = facts
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.responses = responses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scoped = in_scope(request)
        if scoped:
            self.facts.check_request(request)
        response = await self.inner.handle_async_request(request)
        if scoped and self.responses:
            await response.aread()
            try:
                self.facts.check_response(request, response)
            except AssertionError:
                pass  # kept in facts.errors; the test's assert_valid reports it
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def assert_valid(self) -> None:
        assert not self.facts.errors, "Order/Item API traffic not matching the documented facts:\n" + "\n".join(self.facts.errors)


# -- the checker refuses what UltraCart documents as wrong ---------------------------------------------

BASE = "https://secure.ultracart.com/rest/v2"
HEADERS = {"x-ultracart-simple-key": "k", "X-UltraCart-Api-Version": API_VERSION, "Accept": "application/json",
           "Content-Type": "application/json"}
QUERY = {"creation_date_begin": "2026-03-01T00:00:00.000-05:00", "creation_date_end": "2026-03-02T00:00:00.000-05:00"}


def _request(method: str, path: str, *, params=None, body=None, headers=HEADERS) -> httpx.Request:
    return httpx.Request(method, BASE + path, params=params, headers=headers,
                         content=json.dumps(body).encode() if body is not None else None)


@pytest.mark.parametrize(("method", "path", "params", "body"), [
    ("GET", "/order/orders/DEMO-1", {"_expand": "item,billing,shipping.tracking_number_details"}, None),
    ("POST", "/order/orders/batch", {"_expand": "item"}, {"order_ids": ["A", "B"], "query_target": "origin"}),
    ("POST", "/order/orders/query", {"_limit": "200", "_offset": "400", "_expand": "item"}, QUERY),
    ("POST", "/order/orders/query", None, {"current_stage": "Rejected", "query_target": "cache"}),
    ("GET", "/item/items", {"_limit": "2000", "_offset": "0", "_expand": "kit_definition"}, None),
])
def test_documented_requests_pass(method, path, params, body):
    facts = DocumentedFacts()
    facts.check_request(_request(method, path, params=params, body=body))
    assert facts.errors == [] and len(facts.checked) == 1


@pytest.mark.parametrize(("method", "path", "params", "body", "words"), [
    ("GET", "/order/orders/DEMO-1", {"expand": "item"}, None, "takes no query parameter(s) expand"),
    ("GET", "/order/orders/DEMO-1", {"_expand": "items"}, None, "undocumented expansion(s) items"),
    ("GET", "/order/orders/DEMO-1/refund", None, None, "no documented Order/Item operation"),
    ("DELETE", "/order/orders/DEMO-1", None, None, "no documented Order/Item operation"),
    ("POST", "/order/orders/batch", None, ["A"], "must be an object"),
    ("POST", "/order/orders/batch", None, {"order_ids": [f"D-{i}" for i in range(501)]}, "at most 500"),
    ("POST", "/order/orders/batch", None, {"order_ids": ["A"], "query_target": "live"}, "query_target"),
    ("POST", "/order/orders/batch", None, {"orderIds": ["A"]}, "unknown field(s) orderIds"),
    ("POST", "/order/orders/query", {"_limit": "201"}, QUERY, "_limit must be 1..200"),
    ("POST", "/order/orders/query", {"_offset": "-1"}, QUERY, "_offset must be a non-negative integer"),
    ("POST", "/order/orders/query", None, {"query_target": "origin"}, "without criteria"),
    ("POST", "/order/orders/query", None, {"created_after": "2026-01-01"}, "no field(s) created_after"),
    ("POST", "/order/orders/query", None, {"creation_date_begin": "2026-03-01T00:00:00"}, "with an offset"),
    ("POST", "/order/orders/query", None, {"creation_date_end": "2026-13-01T00:00:00-05:00"}, "with an offset"),
    ("POST", "/order/orders/query", None, {"current_stage": "Hold"}, "cannot be queried"),
    ("GET", "/item/items", {"_limit": "5000"}, None, "_limit must be 1..2000"),
    ("GET", "/item/items", {"_expand": "kit"}, None, "undocumented expansion(s) kit"),
    ("GET", "/item/items", None, None, None),  # headers checked below
])
def test_undocumented_requests_are_refused(method, path, params, body, words):
    facts = DocumentedFacts()
    if words is None:
        with pytest.raises(AssertionError, match="X-UltraCart-Api-Version"):
            facts.check_request(_request(method, path, headers={"x-ultracart-simple-key": "k", "Accept": "application/json"}))
        return
    with pytest.raises(AssertionError) as info:
        facts.check_request(_request(method, path, params=params, body=body))
    assert words in str(info.value) and facts.errors == [str(info.value)]


def test_response_shapes_are_checked():
    facts = DocumentedFacts()
    request = _request("POST", "/order/orders/query", params={"_limit": "2"}, body=QUERY)
    good = httpx.Response(200, headers={"X-UltraCart-Request-Id": "R"}, json={
        "orders": [{"order_id": "A"}], "success": True,
        "metadata": {"result_set": {"count": 1, "offset": 0, "limit": 2, "next_offset": 0, "total_records": 1},
                     "payload_name": "orders"}})
    facts.check_response(request, good)
    miscounted = httpx.Response(200, headers={"X-UltraCart-Request-Id": "R"}, json={
        "orders": [], "success": True,
        "metadata": {"result_set": {"count": 1, "offset": 0, "limit": 2, "next_offset": 0}, "payload_name": "orders"}})
    with pytest.raises(AssertionError, match="count 1 but 0 records"):
        facts.check_response(request, miscounted)
    with_success = httpx.Response(400, headers={"X-UltraCart-Request-Id": "R", "UC-REST-ERROR": "x"},
                                  json={"error": {"developer_message": "x", "user_message": "x"}, "success": False})
    with pytest.raises(AssertionError, match="error body"):
        facts.check_response(request, with_success)
    no_header = httpx.Response(400, headers={"X-UltraCart-Request-Id": "R"}, json={"error": {}})
    with pytest.raises(AssertionError, match="without UC-REST-ERROR"):
        facts.check_response(request, no_header)


def test_only_order_and_item_paths_are_in_scope():
    assert in_scope(_request("GET", "/order/orders/A")) and in_scope(_request("GET", "/item/items"))
    assert not in_scope(_request("GET", "/fulfillment/distribution_centers"))
    assert in_scope(httpx.Request("GET", "http://127.0.0.1:1/order/orders/A"))  # a sandbox has no /rest/v2
