"""UltraCartClient's Order and Item API reads against respx.

Every request is checked against UltraCart's documented facts (`DocumentedFacts`): these APIs are
not in ../shared/specs/ultracart-fulfillment.yaml.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
import respx

from adapters.ultracart import ITEM_EXPAND, ORDER_EXPAND, CatalogItem, KitComponent, UltraCartClient
from connector.errors import ConfigurationError, PermanentError, RateLimitedError, TransientError
from tests.adapters.test_ultracart_documented import DocumentedFacts, FactsTransport

BASE = "https://secure.ultracart.com/rest/v2"
EST = timezone(timedelta(hours=-5))


@pytest.fixture
def router():
    return respx.MockRouter(base_url=BASE, assert_all_called=False, using="httpx")


@pytest.fixture
def facts():
    facts = DocumentedFacts()
    yield facts
    assert not facts.errors, "\n".join(facts.errors)


@pytest.fixture
def api_key() -> str:
    return f"uc-key-{uuid.uuid4().hex}"  # the rate limiter is per credential and process-wide


@pytest.fixture
async def client(router, facts, api_key):
    calls = []
    transport = FactsTransport(facts, httpx.MockTransport(router.async_handler))
    client = UltraCartClient(BASE, api_key, "DFLT", transport=transport, on_call=calls.append)
    client.calls = calls
    yield client
    await client.aclose()


def _error(status: int, message: str, request_id: str = "RID-1", **headers: str) -> httpx.Response:
    body = {"error": {"developer_message": message, "user_message": message}, "metadata": {}}
    return httpx.Response(status, json=body, headers={"UC-REST-ERROR": message, "X-UltraCart-Request-Id": request_id, **headers})


def _ok(**body) -> httpx.Response:
    return httpx.Response(200, json={**body, "success": True}, headers={"X-UltraCart-Request-Id": "R"})


# -- get_order ----------------------------------------------------------------------------------------


async def test_get_order_asks_for_everything_the_parser_reads(router, client):
    order = {"order_id": "DEMO-0009104390", "current_stage": "Shipping Department", "items": []}
    route = router.get("/order/orders/DEMO-0009104390").mock(return_value=_ok(order=order, metadata={"payload_name": "order"}))
    assert await client.get_order("DEMO-0009104390") == order
    request = route.calls.last.request
    assert request.url.params["_expand"] == ORDER_EXPAND
    assert set(ORDER_EXPAND.split(",")) == {"billing", "checkout", "coupon", "customer_profile", "gift", "internal",
                                            "item", "payment", "shipping", "summary"}
    assert request.headers["X-UltraCart-Api-Version"] == "2017-03-01" and request.content == b""


async def test_get_order_escapes_the_id(router, client):
    route = router.get(url__regex=r".*/order/orders/DEMO%2F1%201\?").mock(return_value=_ok(order={"order_id": "DEMO/1 1"}, metadata={}))
    assert (await client.get_order("DEMO/1 1"))["order_id"] == "DEMO/1 1"
    assert route.called


@pytest.mark.parametrize(("status", "message"), [
    (400, "Server side object 'order' could not be retrieved. It does not exist."),
    (400, "Order DEMO-404 not found"),
    (404, "Not Found"),
])
async def test_a_missing_order_is_none(router, client, status, message):
    route = router.get("/order/orders/DEMO-404").mock(return_value=_error(status, message))
    assert await client.get_order("DEMO-404") is None
    assert route.call_count == 1


async def test_other_400s_on_get_order_are_raised(router, client):
    router.get("/order/orders/DEMO-1").mock(return_value=_error(400, "Invalid expansion value 'itemz'", "R-EXP"))
    with pytest.raises(PermanentError) as info:
        await client.get_order("DEMO-1")
    assert info.value.message == "order DEMO-1: Invalid expansion value 'itemz'" and info.value.request_id == "R-EXP"
    assert info.value.status == 400 and "R-EXP" in str(info.value)


async def test_get_order_refuses_blank_ids_before_sending(router, client):
    route = router.get(url__regex=r".*").mock(return_value=_ok(order={}))
    for bad in ("", "  ", None, 7):
        with pytest.raises(ValueError, match="non-blank strings"):
            await client.get_order(bad)
    assert not route.called


@pytest.mark.parametrize(("status", "permission"), [(401, "order_read"), (403, "order_read")])
async def test_a_key_without_order_permission_is_a_configuration_error(router, client, status, permission):
    router.get("/order/orders/DEMO-1").mock(return_value=_error(status, "Permission denied"))
    with pytest.raises(ConfigurationError) as info:
        await client.get_order("DEMO-1")
    assert permission in str(info.value) and "order DEMO-1" in str(info.value) and info.value.status == status


async def test_429_on_order_reads_is_rate_limited(router, client):
    route = router.get("/order/orders/DEMO-1").mock(return_value=_error(429, "rate limit exceeded", "R429", **{"Retry-After": "9"}))
    with pytest.raises(RateLimitedError) as info:
        await client.get_order("DEMO-1")
    assert info.value.retry_after == 9 and route.call_count == 1 and "order DEMO-1: rate limit exceeded" in str(info.value)
    batch = router.post("/order/orders/batch").mock(return_value=_ok(orders=[], metadata={}))
    with pytest.raises(RateLimitedError):  # one credential, one limiter: the fulfillment calls wait too
        await client.get_orders(["DEMO-1"])
    with pytest.raises(RateLimitedError):
        await client.fetch_orders()
    assert not batch.called


async def test_success_false_names_the_operation(router, client):
    router.get("/order/orders/DEMO-1").respond(200, json={"success": False, "error": {"user_message": "Order locked"}},
                                               headers={"UC-REST-ERROR": "Order locked"})
    with pytest.raises(PermanentError, match="order DEMO-1: Order locked"):
        await client.get_order("DEMO-1")


async def test_unreadable_order_reply_is_transient(router, client):
    router.get("/order/orders/DEMO-1").respond(200, text="<html>maintenance</html>")
    with pytest.raises(TransientError, match="order DEMO-1: unreadable"):
        await client.get_order("DEMO-1")


# -- get_orders ---------------------------------------------------------------------------------------


async def test_get_orders_splits_into_batches_of_500(router, client):
    def answer(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["order_ids"]
        # UltraCart leaves out ids it does not know: here every tenth.
        return _ok(orders=[{"order_id": i} for i in ids if not i.endswith("0")], metadata={"payload_name": "orders"})

    route = router.post("/order/orders/batch").mock(side_effect=answer)
    ids = [f"DEMO-{i:04d}" for i in range(1, 1202)]
    orders = await client.get_orders(ids + ids[:3])  # repeats are asked once
    bodies = [json.loads(c.request.content) for c in route.calls]
    assert [len(b["order_ids"]) for b in bodies] == [500, 500, 201]
    assert [i for b in bodies for i in b["order_ids"]] == ids
    assert all(b["query_target"] == "origin" for b in bodies)
    assert all(c.request.url.params["_expand"] == ORDER_EXPAND for c in route.calls)
    assert [o["order_id"] for o in orders] == [i for i in ids if not i.endswith("0")]


async def test_get_orders_of_nothing_sends_nothing(router, client):
    route = router.post("/order/orders/batch").mock(return_value=_ok(orders=[]))
    assert await client.get_orders([]) == []
    with pytest.raises(ValueError, match="not one string"):
        await client.get_orders("DEMO-1")
    with pytest.raises(ValueError, match="non-blank"):
        await client.get_orders(["DEMO-1", ""])
    assert not route.called


async def test_get_orders_retries_a_500_because_it_only_reads(router, client):
    route = router.post("/order/orders/batch").mock(side_effect=[_error(503, "busy"), _ok(orders=[{"order_id": "A"}], metadata={})])
    assert await client.get_orders(["A"]) == [{"order_id": "A"}]
    assert route.call_count == 2
    router.post("/order/orders/batch").mock(return_value=_error(500, "down"))
    with pytest.raises(TransientError, match="orders batch of 1: down"):
        await client.get_orders(["A"])


async def test_get_orders_drops_non_objects_and_refuses_a_non_list(router, client):
    router.post("/order/orders/batch").mock(return_value=_ok(orders=[{"order_id": "A"}, "junk", None], metadata={}))
    assert await client.get_orders(["A"]) == [{"order_id": "A"}]
    router.post("/order/orders/batch").mock(return_value=_ok(orders={"order_id": "A"}, metadata={}))
    with pytest.raises(TransientError, match="'orders' is not an array"):
        await client.get_orders(["A"])


# -- query_orders -------------------------------------------------------------------------------------


def _paged(total: int, *, more_on_last: bool = False, stuck_next_offset: bool = False):
    """A query endpoint over `total` orders that pages as UltraCart does."""
    def answer(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["_limit"]), int(request.url.params["_offset"])
        page = [{"order_id": f"H-{i:05d}"} for i in range(offset, min(total, offset + limit))]
        more = offset + len(page) < total
        result_set = {"count": len(page), "offset": offset, "limit": limit,
                      "next_offset": 0 if stuck_next_offset or not more else offset + len(page), "total_records": total}
        if more or more_on_last:
            result_set["more"] = True  # the real replies leave `more` out on the last page
        return _ok(orders=page, metadata={"result_set": result_set, "payload_name": "orders"})
    return answer


async def test_query_orders_pages_by_200_while_more(router, client):
    route = router.post("/order/orders/query").mock(side_effect=_paged(450))
    start, end = datetime(2026, 2, 1, tzinfo=EST), datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=EST)
    orders = await client.query_orders(start, end)
    assert [o["order_id"] for o in orders] == [f"H-{i:05d}" for i in range(450)]
    assert [(c.request.url.params["_limit"], c.request.url.params["_offset"]) for c in route.calls] == [
        ("200", "0"), ("200", "200"), ("200", "400")]
    body = json.loads(route.calls[0].request.content)
    assert body == {"creation_date_begin": "2026-02-01T00:00:00.000-05:00",
                    "creation_date_end": "2026-03-01T23:59:59.999-05:00", "query_target": "origin"}
    assert route.calls[0].request.url.params["_expand"] == ORDER_EXPAND


async def test_query_orders_survives_a_next_offset_that_does_not_move(router, client):
    route = router.post("/order/orders/query").mock(side_effect=_paged(250, stuck_next_offset=True))
    orders = await client.query_orders(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert len(orders) == 250 and len({o["order_id"] for o in orders}) == 250 and route.call_count == 2


async def test_query_orders_more_with_an_empty_page_is_transient(router, client):
    router.post("/order/orders/query").mock(side_effect=_paged(0, more_on_last=True))
    with pytest.raises(TransientError, match="more orders follow but sent none"):
        await client.query_orders(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


async def test_query_order_pages_yield_as_they_come(router, client):
    router.post("/order/orders/query").mock(side_effect=_paged(401))
    sizes = [len(p) async for p in client.query_order_pages(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))]
    assert sizes == [200, 200, 1]


async def test_query_orders_refuses_bad_windows_before_sending(router, client):
    route = router.post("/order/orders/query").mock(side_effect=_paged(1))
    with pytest.raises(ValueError, match="time zone"):
        await client.query_orders(datetime(2026, 1, 1), datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="after created_to"):
        await client.query_orders(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="must be a datetime"):
        await client.query_orders("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="page_size"):
        await client.query_order_pages(
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), page_size=500).__anext__()
    assert not route.called


async def test_query_error_names_the_page(router, client):
    router.post("/order/orders/query").mock(side_effect=[_paged(300)(httpx.Request("POST", BASE + "/order/orders/query?_limit=200&_offset=0")),
                                                         _error(400, "Invalid date range")])
    with pytest.raises(PermanentError, match="orders query at offset 200: Invalid date range"):
        await client.query_orders(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


# -- items --------------------------------------------------------------------------------------------


def _catalog(total: int):
    def answer(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["_limit"]), int(request.url.params["_offset"])
        page = []
        for i in range(offset, min(total, offset + limit)):
            item = {"merchant_item_oid": 900000 + i, "merchant_item_id": f"SKU-{i:05d}", "description": f"Item {i}", "kit": False}
            if i == 7:
                item.update(kit=True, kit_definition={"components": [
                    {"component_merchant_item_id": "SKU-00001", "component_merchant_item_oid": 900001, "quantity": 2,
                     "component_description": "Item 1", "component_cost": 3.5},
                    {"component_merchant_item_id": "SKU-00002", "quantity": None}]})
            page.append(item)
        return _ok(items=page, metadata={"result_set": {"count": len(page), "offset": offset, "limit": limit,
                                                          "next_offset": offset + len(page), "total_records": total},
                                         "payload_name": "items"})
    return answer


async def test_items_page_by_2000_while_pages_are_full(router, client):
    route = router.get("/item/items").mock(side_effect=_catalog(4100))
    items = await client.items()
    assert len(items) == 4100 and items[0] == CatalogItem(sku="SKU-00000", description="Item 0", item_oid=900000)
    assert [(c.request.url.params["_limit"], c.request.url.params["_offset"]) for c in route.calls] == [
        ("2000", "0"), ("2000", "2000"), ("2000", "4000")]
    assert all(c.request.url.params["_expand"] == ITEM_EXPAND == "kit_definition" for c in route.calls)
    kit = items[7]
    assert kit.kit and kit.components == (KitComponent("SKU-00001", Decimal(2), "Item 1"), KitComponent("SKU-00002", None))


async def test_items_exactly_full_pages_end_on_an_empty_one(router, client):
    route = router.get("/item/items").mock(side_effect=_catalog(4000))
    assert len(await client.items()) == 4000 and route.call_count == 3


async def test_items_skip_entries_without_a_sku(router, client):
    body = json.dumps({"items": [
        {"merchant_item_id": " bone-5lb "}, {"merchant_item_id": ""}, {"description": "no id"}, "junk",
        {"merchant_item_id": 12345, "kit_component_only": True, "inactive": "true"},
        {"merchant_item_id": "KIT-NOFLAG", "kit_definition": {"components": [{"component_merchant_item_id": "A", "quantity": "OVERFLOW"}]}},
    ], "success": True, "metadata": {"result_set": {"count": 6, "offset": 0, "limit": 2000, "next_offset": 6}}})
    # JSON's 1e400 reads as infinity: no quantity at all is more honest than an infinite one.
    router.get("/item/items").respond(200, content=body.replace('"OVERFLOW"', "1e400").encode(),
                                      headers={"Content-Type": "application/json", "X-UltraCart-Request-Id": "R"})
    items = await client.items()
    assert [i.sku for i in items] == [" bone-5lb ", "12345", "KIT-NOFLAG"]  # SKUs as spelt: mismatches are the point
    assert items[1].kit_component_only and items[1].inactive and not items[1].kit
    assert items[2].kit and items[2].components == (KitComponent("A", None),)


async def test_items_errors_name_the_page_and_permission(router, client):
    router.get("/item/items").mock(side_effect=[_catalog(2500)(httpx.Request("GET", BASE + "/item/items?_limit=2000&_offset=0")),
                                                _error(403, "Permission denied")])
    with pytest.raises(ConfigurationError, match=r"items at offset 2000: Permission denied \(the API key needs the item_read permission\)"):
        await client.items()
    router.get("/item/items").mock(return_value=_error(429, "slow down", **{"Retry-After": "30"}))
    with pytest.raises(RateLimitedError):
        await client.items()


async def test_order_reads_never_leak_the_key(router, client, api_key):
    router.get("/order/orders/DEMO-1").mock(return_value=_ok(order={"order_id": "DEMO-1", "note": f"echo {api_key}"}, metadata={}))
    await client.get_order("DEMO-1")
    (record,) = client.calls
    assert api_key not in json.dumps(record.response_body) and api_key not in record.url
