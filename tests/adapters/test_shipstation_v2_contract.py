"""The shared warehouse contract, run for ShipStation v2 against ShipStationV2Sandbox on loopback.

Every request the adapter sends is validated against ShipStation's v2 document (as loaded by
`shipstation_validator()`, see test_shipstation_v2_adapter.py), and every documented answer the
sandbox gives is validated too, which keeps the sandbox honest.
"""

from __future__ import annotations

import httpx
import pytest

from adapters.shipstation_v2 import ShipStationV2Adapter
from connector.errors import ConfigurationError, PermanentError, RateLimitedError
from connector.sandbox.shipstation_v2 import SHIP_FROM_ID, ShipStationV2Kit, ShipStationV2Sandbox
from tests.adapters.contract import WarehouseContract, make_order
from tests.adapters.test_shipstation_v2_adapter import shipstation_validator
from tests.support.openapi import ValidatingTransport
from tests.support.warehouse import KitDriver, fresh_context, opened, served

MERCHANT = "ct"  # the contract's references are `ct-...`: the adapter reads only its merchant's

class _SandboxTransport(ValidatingTransport):
    """Checks requests and the sandbox's answers, except injected 5xx faults (whose bodies are
    the shared FaultMiddleware's, not ShipStation's documented empty ones)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.responses:
            return await super().handle_async_request(request)
        self.responses = False
        try:
            response = await super().handle_async_request(request)
        finally:
            self.responses = True
        await response.aread()
        if response.status_code < 500 and not request.url.path.startswith(self.skip_paths):
            try:
                self.validator.validate_response(request, response, self.base_url)
            except AssertionError as exc:
                self.errors.append(str(exc))
        return response


@pytest.fixture
def sandbox():
    with served(ShipStationV2Sandbox(api_key="ct-key", products=["SKU-1", "SKU-2", "SKU-3"], page_size=3)) as sb:
        yield sb


def settings(sandbox, **extra) -> dict:
    return {"adapter": "shipstation-v2", "base_url": sandbox.url, "api_key": sandbox.api_key, "warehouse_id": SHIP_FROM_ID, **extra}



@pytest.fixture
async def adapter(sandbox):
    transport = _SandboxTransport(shipstation_validator(), responses=True)
    async with opened(ShipStationV2Adapter(settings(sandbox), fresh_context(MERCHANT, transport=transport)), transport) as adapter:
        yield adapter


@pytest.fixture
def warehouse(sandbox) -> KitDriver:
    return KitDriver(ShipStationV2Kit(sandbox, ("usps_priority_mail",), ("SKU-1", "SKU-2")))


class TestShipStationV2Contract(WarehouseContract):
    """ShipStation v2 keeps the shared warehouse contract (no shipment_ack: the suite checks that
    acknowledging is harmless)."""

    async def test_sandbox_counts_one_create_per_reference(self, adapter, sandbox, warehouse) -> None:
        order, _ = await self.created(adapter, warehouse)
        await adapter.create_order(order)
        assert sandbox.create_attempts[order.reference] == 2
        assert sandbox.create_count == 1

    async def test_unknown_api_key_is_a_configuration_error(self, sandbox) -> None:
        adapter = ShipStationV2Adapter(settings(sandbox, api_key="wrong"), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError, match="API key is invalid"):
                await adapter.check()
        finally:
            await adapter.aclose()

    async def test_unknown_ship_from_warehouse_is_a_configuration_error(self, sandbox) -> None:
        adapter = ShipStationV2Adapter(settings(sandbox, warehouse_id="se-999"), fresh_context(MERCHANT))
        try:
            with pytest.raises(ConfigurationError, match="warehouse_id se-999"):
                await adapter.check()
        finally:
            await adapter.aclose()

    async def test_the_mapped_service_reaches_the_shipment(self, adapter, sandbox, warehouse) -> None:
        order = make_order(warehouse).model_copy(update={"ship_method": "se-102:ups_ground"})
        result = await adapter.create_order(order)
        created = sandbox.shipments[result.warehouse_order_id]
        assert (created["carrier_id"], created["service_code"]) == ("se-102", "ups_ground")
        assert created["ship_from"]["city_locality"] == "Reno"  # the configured warehouse's origin


class TestShipStationV2Sandbox:
    """What the demo, integration tests and bench rely on beyond the contract."""

    async def test_split_ship_makes_a_second_shipment_attributed_to_the_order(self, adapter, sandbox, warehouse) -> None:
        order, result = await WarehouseContract().created(adapter, warehouse)
        warehouse.ship(order.reference, split=True)
        child = [s for s in sandbox.shipments.values() if s.get("_child_of") == result.warehouse_order_id]
        assert len(child) == 1 and child[0]["external_shipment_id"] == child[0]["shipment_id"]
        assert child[0]["shipment_number"] == order.reference
        shipments = await adapter.shipments_since(WarehouseContract.since())
        assert {s.warehouse_order_id for s in shipments} == {result.warehouse_order_id}

    async def test_other_stores_labels_are_not_reported(self, adapter, sandbox, warehouse) -> None:
        order, _ = await WarehouseContract().created(adapter, warehouse)
        other = ShipStationV2Adapter(settings(sandbox), fresh_context("globex"))
        try:
            foreign = make_order(warehouse, reference="globex-1")
            await other.create_order(foreign)
        finally:
            await other.aclose()
        sandbox.ship_all()
        assert {s.reference for s in await adapter.shipments_since(WarehouseContract.since())} == {order.reference}

    async def test_orders_ship_on_a_labels_read_after_ship_after_s(self, adapter, sandbox, warehouse) -> None:
        await WarehouseContract().created(adapter, warehouse)
        assert await adapter.shipments_since(WarehouseContract.since()) == []  # ship_after_s None: only when told
        sandbox.ship_after_s = 0
        assert len(await adapter.shipments_since(WarehouseContract.since())) == 1

    async def test_external_id_is_truncated_silently_at_50(self, sandbox) -> None:
        body = {"shipments": [{"external_shipment_id": "x" * 60, "items": [{"sku": "SKU-1", "quantity": 1}],
                               "ship_to": {"name": "A", "phone": "1", "address_line1": "1 St", "city_locality": "X", "state_province": "IL",
                                           "postal_code": "1", "country_code": "US", "address_residential_indicator": "unknown"}}]}
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as client:
            answer = (await client.post("/v2/shipments", json=body)).json()
        assert answer["shipments"][0]["external_shipment_id"] == "x" * 50  # why the adapter never sends more

    async def test_stock_pages_and_allocation(self, adapter, sandbox, warehouse) -> None:
        for i in range(4):  # 8 rows over pages of 3
            sandbox.set_stock(f"SKU-{i}", "se-301", 10)
            sandbox.set_stock(f"SKU-{i}", "se-302", 1)
        await WarehouseContract().created(adapter, warehouse)  # SKU-1 x2, SKU-2 x1
        levels = {(lv.sku, lv.warehouse_id): (lv.available, lv.on_hand) for lv in await adapter.stock_levels()}
        assert len(levels) == 8 and levels[("SKU-1", "se-301")] == (8, 10) and levels[("SKU-2", "se-301")] == (9, 10)
        assert sandbox.requests["GET /v2/inventory"] == 3
        sandbox.ship_all()
        levels = {(lv.sku, lv.warehouse_id): (lv.available, lv.on_hand) for lv in await adapter.stock_levels()}
        assert levels[("SKU-1", "se-301")] == (8, 8)

    async def test_rate_limit_window_and_headers(self, adapter, sandbox) -> None:
        sandbox.faults.rate_limit_per_minute = 3
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as client:
            remaining = [(await client.get("/v2/carriers")).headers["x-rate-limit-remaining"] for _ in range(3)]
            limited = await client.get("/v2/carriers")
        assert remaining == ["2", "1", "0"]
        assert limited.status_code == 429
        assert (limited.headers["retry-after"], limited.headers["x-rate-limit-remaining"]) == ("1", "0")
        with pytest.raises(RateLimitedError):
            await adapter.find_order("ct-anything")

    async def test_a_split_order_is_cancelled_whole(self, adapter, sandbox, warehouse) -> None:
        order = make_order(warehouse, quantities=(2, 1))
        created = await adapter.create_order(order)
        part = sandbox.split(order.reference)
        assert part is not None and part["shipment_number"] == order.reference
        result = await adapter.cancel_order(order.reference)
        assert result.outcome.value == "cancelled" and part["shipment_id"] in result.reason
        statuses = {sid: s["shipment_status"] for sid, s in sandbox.state()["shipments"].items()}
        assert statuses == {created.warehouse_order_id: "cancelled", part["shipment_id"]: "cancelled"}
        assert sandbox.ship_all() == []

    async def test_a_labelled_part_is_too_late_and_the_rest_is_cancelled(self, adapter, sandbox, warehouse) -> None:
        order = make_order(warehouse, quantities=(2, 1))
        created = await adapter.create_order(order)
        part = sandbox.split(order.reference)
        with sandbox._lock:  # a label bought for the split-off part alone
            sandbox._label(sandbox.shipments[part["shipment_id"]], None)
            sandbox.shipments[part["shipment_id"]]["shipment_status"] = "label_purchased"
        result = await adapter.cancel_order(order.reference)
        assert result.outcome.value == "too_late"
        assert f"shipment {part['shipment_id']} is label_purchased: any label associated with the shipment needs to be voided first" in result.reason
        assert f"cancelled shipment {created.warehouse_order_id}" in result.reason
        assert sandbox.cancel_attempts == {created.warehouse_order_id: 1}  # the labelled part was not asked

    async def test_a_label_bought_between_the_read_and_the_cancel_is_too_late(self, adapter, sandbox, warehouse, monkeypatch) -> None:
        order, created = await WarehouseContract().created(adapter, warehouse)
        read = adapter._by_reference

        async def read_then_ship(reference):
            found = await read(reference)
            sandbox.ship(reference)
            return found

        monkeypatch.setattr(adapter, "_by_reference", read_then_ship)
        result = await adapter.cancel_order(order.reference)
        assert result.outcome.value == "too_late"
        assert "Any label associated with the shipment needs to be voided first [invalid_status]" in result.reason
        assert sandbox.cancel_attempts == {created.warehouse_order_id: 1}

    async def test_a_cancelled_shipment_frees_its_allocation(self, adapter, sandbox, warehouse) -> None:
        sandbox.set_stock("SKU-1", "se-301", 10)
        order = make_order(warehouse, quantities=(4,))
        await adapter.create_order(order)
        assert sandbox.stock["SKU-1"]["se-301"] == {"on_hand": 10, "allocated": 4}
        assert (await adapter.cancel_order(order.reference)).outcome.value == "cancelled"
        assert sandbox.stock["SKU-1"]["se-301"] == {"on_hand": 10, "allocated": 0}

    async def test_an_update_changes_the_pending_shipment_and_moves_its_allocation(self, adapter, sandbox, warehouse) -> None:
        sandbox.set_stock("SKU-1", "se-301", 10)
        sandbox.set_stock("SKU-2", "se-301", 10)
        order = make_order(warehouse, quantities=(4,))
        created = await adapter.create_order(order)
        changed = order.model_copy(update={
            "order": order.order.model_copy(update={"ship_to": order.order.ship_to.model_copy(update={"address1": "99 Edited Avenue"})}),
            "lines": [order.lines[0].model_copy(update={"quantity": 1}), order.lines[0].model_copy(update={"sku": "SKU-2", "quantity": 2})]})
        said = await adapter.update_order(changed, created.warehouse_order_id, address=True, lines=True)
        assert said == f"ShipStation shipment {created.warehouse_order_id}: ship_to and items updated"
        held = sandbox.shipments[created.warehouse_order_id]
        assert held["ship_to"]["address_line1"] == "99 Edited Avenue" and held["external_shipment_id"] == order.reference
        assert [(i["sku"], i["quantity"]) for i in held["items"]] == [("SKU-1", 1), ("SKU-2", 2)]
        assert (sandbox.stock["SKU-1"]["se-301"]["allocated"], sandbox.stock["SKU-2"]["se-301"]["allocated"]) == (1, 2)
        assert sandbox.update_attempts == {created.warehouse_order_id: 1}

    async def test_a_shipment_with_a_label_is_not_updated_void_the_label_first(self, adapter, sandbox, warehouse) -> None:
        order = make_order(warehouse)
        created = await adapter.create_order(order)
        warehouse.ship(order.reference)
        with pytest.raises(PermanentError, match="label_purchased: a label was bought; void the label first"):
            await adapter.update_order(order, created.warehouse_order_id, address=True, lines=False)
        assert sandbox.update_attempts == {}  # refused from the status read, nothing sent

    async def test_update_over_http(self, sandbox, warehouse) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as api:
            assert (await api.put("/v2/shipments/se-1", json={})).status_code == 404
            assert (await api.put("/v2/shipments/se-1", json={}, headers={"api-key": "nope"})).status_code == 401
            made = await api.post("/v2/shipments", json={"shipments": [{
                "external_shipment_id": "ct-http-1", "ship_to": {"name": "A", "phone": "1", "address_line1": "1 Way", "city_locality": "X",
                                                                   "state_province": "IL", "postal_code": "62701", "country_code": "US",
                                                                   "address_residential_indicator": "no"},
                "items": [{"sku": "SKU-1", "quantity": 1}]}]})
            sid = made.json()["shipments"][0]["shipment_id"]
            assert (await api.put(f"/v2/shipments/{sid}", json={"external_shipment_id": "ct-other"})).status_code == 400
            assert (await api.put(f"/v2/shipments/{sid}", json={"items": [{"sku": "SKU-1", "quantity": 0}]})).status_code == 400
            answer = await api.put(f"/v2/shipments/{sid}", json={"items": [{"sku": "SKU-2", "quantity": 3}]})
            assert answer.status_code == 200 and answer.json()["items"] == [{"name": "SKU-2", "sku": "SKU-2", "quantity": 3}]
            warehouse.ship("ct-http-1")
            refused = await api.put(f"/v2/shipments/{sid}", json={"items": [{"sku": "SKU-1", "quantity": 1}]})
            assert refused.status_code == 400 and "void the label first" in refused.text

    async def test_cancel_over_http(self, sandbox) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as api:
            assert (await api.put("/v2/shipments/se-1/cancel")).status_code == 404
            assert (await api.put("/v2/shipments/se-1/cancel", headers={"api-key": "nope"})).status_code == 401
        assert sandbox.cancel_attempts == {}

    async def test_control_api(self, sandbox) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            stock = {"sku": "SKU-3", "inventory_warehouse_id": "se-302", "available": 4, "on_hand": 6}
            assert (await control.post("/_sandbox/stock", json=stock)).status_code == 200
            faults = await control.post("/_sandbox/faults", json={"script": [{"method": "GET", "path": "/v2/carriers", "status": 503}]})
            assert faults.json()["script"][0]["status"] == 503
            assert (await control.post("/_sandbox/faults", json={"nonsense": 1})).status_code == 400
            async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as api:
                assert (await api.get("/v2/carriers")).status_code == 503
                body = {"shipments": [{"external_shipment_id": "ctl-1", "service_code": "ups_ground",
                                       "items": [{"sku": "SKU-3", "quantity": 1}, {"sku": "SKU-1", "quantity": 1}],
                                       "ship_to": {"name": "A", "phone": "1", "address_line1": "1 St", "city_locality": "X",
                                                   "state_province": "IL", "postal_code": "1", "country_code": "US",
                                                   "address_residential_indicator": "unknown"}}]}
                first = await api.post("/v2/shipments", json=body)
                assert first.status_code == 200 and first.json()["shipments"][0]["carrier_id"] == "se-102"
                again = await api.post("/v2/shipments", json=body)
                assert again.status_code == 400 and again.json()["errors"][0]["error_code"] == "identifier_conflict"
                assert (await api.get("/v2/shipments/external_shipment_id/ctl-2")).status_code == 404
            shipped = (await control.post("/_sandbox/ship", json={"reference": "ctl-1", "split": True})).json()["labels"]
            assert len(shipped) == 2
            state = (await control.get("/_sandbox/state")).json()
        assert state["create_attempts"]["ctl-1"] == 2 and state["create_count"] == 1
        assert state["faults"] == {"503": 1}
        assert state["requests"]["POST /v2/shipments"] == 2
        assert state["stock"]["SKU-3"]["se-302"] == {"on_hand": 5, "allocated": 2}
        assert len(state["labels"]) == 2 and {s["shipment_status"] for s in state["shipments"].values()} == {"label_purchased"}


class TestShipStationV2Webhooks:
    """Webhooks over real HTTP (requests and answers checked against the document) and the
    sandbox's deliveries, which carry the secret header the adapter checks."""

    async def test_register_is_idempotent_and_a_label_posts_a_track_event(self, adapter, sandbox) -> None:
        import asyncio
        import json

        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        from connector.sandbox.server import SandboxServer

        got: list[tuple[dict, bytes]] = []

        async def receive(request):
            got.append((dict(request.headers), await request.body()))
            return Response(status_code=200)

        with SandboxServer(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as receiver:
            url = f"{receiver.url}/hook"
            assert [line.split(" (")[0] for line in await adapter.register_webhooks(url, "s3cret")] == ["subscribed track", "subscribed batch"]
            assert [line.split(" (")[0] for line in await adapter.register_webhooks(url, "s3cret")] == [
                "already subscribed: track", "already subscribed: batch"]
            assert await adapter.webhook_urls() == {url} and len(sandbox.webhooks) == 2
            # A secret made anew (the old one lost): the header is updated in place, nothing added.
            lines = await adapter.register_webhooks(url, "n3w")
            assert all("now sends the connector's secret header" in line for line in lines) and len(sandbox.webhooks) == 2

            warehouse = KitDriver(ShipStationV2Kit(sandbox, ("usps_priority_mail",), ("SKU-1", "SKU-2")))
            order, _ = await WarehouseContract().created(adapter, warehouse)
            [label] = sandbox.ship(order.reference)
            [delivery] = await asyncio.to_thread(sandbox.hooks.wait)
            assert (delivery.topic, delivery.status) == ("track", "delivered")
            headers, body = got[0]
            assert adapter.verify_webhook(headers, body, "n3w") and not adapter.verify_webhook(headers, body, "s3cret")
            [hint] = adapter.webhook_hints(json.loads(body))
            assert hint["label_id"] == label["label_id"] and hint["tracking_number"] == label["tracking_number"]

    async def test_the_sandbox_checks_webhook_requests(self, sandbox) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"api-key": sandbox.api_key}) as api:
            assert (await api.post("/v2/environment/webhooks", json={"event": "shipped", "url": "https://x.example"})).status_code == 400
            made = (await api.post("/v2/environment/webhooks", json={"event": "track", "url": "https://x.example"})).json()
            assert (await api.post("/v2/environment/webhooks", json={"event": "track", "url": "https://x.example"})).status_code == 409
            assert (await api.get(f"/v2/environment/webhooks/{made['webhook_id']}")).json()["event"] == "track"
            assert (await api.delete(f"/v2/environment/webhooks/{made['webhook_id']}")).status_code == 204
            assert (await api.get(f"/v2/environment/webhooks/{made['webhook_id']}")).status_code == 404
            assert (await api.get("/v2/environment/webhooks", headers={"api-key": "nope"})).status_code == 401
