"""The shared warehouse contract, run for ShipBob against ShipBobSandbox on loopback (real HTTP).

Every request the adapter sends is validated against ShipBob's 2026-01 document, and every
documented answer the sandbox gives is validated too, which keeps the sandbox honest.
"""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.shipbob import ShipBobAdapter
from connector.sandbox.shipbob import ShipBobKit, ShipBobSandbox
from tests.adapters.contract import WarehouseContract
from tests.support.openapi import ValidatingTransport, spec_validator
from tests.support.warehouse import KitDriver, fresh_context, opened, served

SPEC = "shipbob-2026-01-openapi.json"


@pytest.fixture
def sandbox():
    with served(ShipBobSandbox(token="ct-token", channel_id=7, products=["SKU-1", "SKU-2", "SKU-3"])) as sb:
        yield sb


@pytest.fixture
async def adapter(sandbox):
    validator = spec_validator(SPEC)
    transport = ValidatingTransport(validator, responses=True)
    config = {
        "adapter": "shipbob",
        "base_url": sandbox.url,
        "token": sandbox.token,
        "channel_id": sandbox.channel_id,
    }
    async with opened(ShipBobAdapter(config, fresh_context("ct", transport=transport)), transport) as adapter:
        yield adapter


@pytest.fixture
def warehouse(sandbox) -> KitDriver:
    return KitDriver(ShipBobKit(sandbox, ("SKU-1", "SKU-2")))


class TestShipBobContract(WarehouseContract):
    """ShipBob keeps the shared warehouse contract."""

    async def test_sandbox_counts_one_create_per_reference(self, adapter, sandbox, warehouse) -> None:
        order, _ = await self.created(adapter, warehouse)
        await adapter.create_order(order)
        assert sandbox.create_attempts[order.reference] == 2
        assert sandbox.create_count == 1

    async def test_unknown_token_is_a_configuration_error(self, sandbox) -> None:
        from connector.errors import ConfigurationError

        config = {"adapter": "shipbob", "base_url": sandbox.url, "token": "wrong", "channel_id": sandbox.channel_id}
        adapter = ShipBobAdapter(config, fresh_context("ct"))
        try:
            with pytest.raises(ConfigurationError):
                await adapter.check()
        finally:
            await adapter.aclose()


class TestShipBobSandbox:
    """What the demo, integration tests and bench rely on beyond the contract."""

    async def test_orders_ship_on_the_next_shipments_read(self, adapter, sandbox, warehouse) -> None:
        order, _ = await WarehouseContract().created(adapter, warehouse)
        assert sandbox.orders[order.reference]["status"] == "Processing"
        shipments = await adapter.shipments_since(WarehouseContract.since())
        assert [s.reference for s in shipments] == [order.reference]
        assert sandbox.orders[order.reference]["status"] == "Fulfilled"

    async def test_ship_after_delays_shipping(self, adapter, sandbox, warehouse) -> None:
        sandbox.ship_after_s = 60
        await WarehouseContract().created(adapter, warehouse)
        assert await adapter.shipments_since(WarehouseContract.since()) == []
        assert len(sandbox.ship_all()) == 1
        assert len(await adapter.shipments_since(WarehouseContract.since())) == 1

    async def test_unknown_method_silently_becomes_a_ship_option(self, adapter, sandbox, warehouse) -> None:
        from tests.adapters.contract import make_order

        order = make_order(warehouse).model_copy(update={"ship_method": "Overnight Typo"})
        await adapter.create_order(order)
        assert "Overnight Typo" in await adapter.known_ship_methods()

    async def test_window_rate_limit_and_remaining_calls(self, adapter, sandbox) -> None:
        from connector.errors import RateLimitedError

        sandbox.faults.rate_limit_per_minute = 3
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.token}"}) as client:
            remaining = [(await client.get("/2026-01/channel")).headers["x-remaining-calls"] for _ in range(3)]
            limited = await client.get("/2026-01/channel")
        assert remaining == ["2", "1", "0"]
        assert limited.status_code == 429
        assert (limited.headers["x-retry-after"], limited.headers["x-remaining-calls"]) == ("1", "0")
        with pytest.raises(RateLimitedError):
            await adapter.find_order("anything")

    async def test_a_page_builds_only_its_own_records(self, sandbox, monkeypatch) -> None:
        # The bench reads 100,000 SKUs of stock: building all of them for every page made it
        # measure the sandbox instead of the connector. The pages still add up to the whole list.
        for n in range(600):
            sandbox.set_stock(f"GEN-{n:04d}", 10 + n % 2, n)
        built: list[str] = []
        item = sandbox._inventory_item
        monkeypatch.setattr(sandbox, "_inventory_item", lambda sku: built.append(sku) or item(sku))
        seen: list[str] = []
        params: dict = {"PageSize": 250}
        async with httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.token}"}) as client:
            while True:
                page = (await client.get("/2026-01/inventory-level/locations", params=params)).json()
                assert len(built) == len(seen) + len(page["items"])  # this page's records, no more
                seen += [i["sku"] for i in page["items"]]
                if not page["next"]:
                    break
                params = dict(httpx.URL(page["next"]).params)
        assert seen == [f"GEN-{n:04d}" for n in range(600)] and len(built) == 600

    @pytest.mark.parametrize("packed", [False, True])
    async def test_a_picked_or_packed_order_cannot_be_cancelled(self, adapter, sandbox, warehouse, packed) -> None:
        order, _ = await WarehouseContract().created(adapter, warehouse)
        [sid] = sandbox.pick(order.reference, packed=packed)
        result = await adapter.cancel_order(order.reference)
        stage = "packed" if packed else "picked"
        assert result.outcome.value == "too_late"
        assert f"shipment {sid}: Shipment is already {stage} and can no longer be canceled." in result.reason
        assert sandbox.orders[order.reference]["status"] == "Processing"
        assert len(sandbox.ship(order.reference)) == 1  # it still ships

    async def test_a_cancelled_order_never_ships_and_frees_its_stock(self, adapter, sandbox, warehouse) -> None:
        from tests.adapters.contract import make_order

        sandbox.set_stock("SKU-1", 10, 10)
        order = make_order(warehouse, quantities=(3,))
        await adapter.create_order(order)
        assert sandbox.stock["SKU-1"][10] == {"fulfillable": 7, "on_hand": 10, "committed": 3}
        assert (await adapter.cancel_order(order.reference)).outcome.value == "cancelled"
        assert sandbox.stock["SKU-1"][10] == {"fulfillable": 10, "on_hand": 10, "committed": 0}
        assert sandbox.ship_all() == [] and await adapter.shipments_since(WarehouseContract.since()) == []
        assert [s["status"] for s in sandbox.orders[order.reference]["shipments"]] == ["Cancelled"]
        # The second cancel is answered from the lookup: ShipBob is asked once.
        assert (await adapter.cancel_order(order.reference)).outcome.value == "cancelled"
        assert sandbox.cancel_attempts[order.reference] == 1

    async def test_cancel_rules_over_http(self, sandbox) -> None:
        headers = {"Authorization": f"Bearer {sandbox.token}", "shipbob_channel_id": "7"}
        body = {
            "reference_id": "ctl-c", "type": "DTC", "shipping_method": "Standard",
            "recipient": {"name": "A", "address": {"address1": "1 St", "city": "X", "country": "US"}},
            "products": [{"reference_id": "SKU-1", "name": "One", "quantity": 1}],
        }
        async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as api, httpx.AsyncClient(base_url=sandbox.url) as control:
            order_id = (await api.post("/2026-01/order", json=body)).json()["id"]
            assert (await api.post("/2026-01/order/99999:cancel")).status_code == 404
            assert (await api.post(f"/2026-01/order/{order_id}:cancel", headers={"shipbob_channel_id": "99"})).status_code == 403
            assert (await api.post(f"/2026-01/order/{order_id}:cancel", headers={"Authorization": "Bearer nope"})).status_code == 401
            assert (await control.post("/_sandbox/pick", json={})).status_code == 400
            assert (await control.post("/_sandbox/pick", json={"reference": "ctl-c"})).json()["picked"]
            refused = (await api.post(f"/2026-01/order/{order_id}:cancel")).json()
            assert refused["status"] == "Failure" and refused["canceled_shipment_results"][0]["is_success"] is False
            await control.post("/_sandbox/ship", json={"reference": "ctl-c"})
            late = await api.post(f"/2026-01/order/{order_id}:cancel")
            assert late.status_code == 422 and late.json() == {"": [f"Order {order_id} is Fulfilled and cannot be canceled."]}
            state = (await control.get("/_sandbox/state")).json()
        assert state["cancel_attempts"] == {"ctl-c": 2}

    async def test_control_api(self, sandbox) -> None:
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            assert (await control.post("/_sandbox/stock", json={"sku": "SKU-3", "fc_id": 11, "fulfillable": 4, "on_hand": 6})).status_code == 200
            faults = await control.post("/_sandbox/faults", json={"script": [{"method": "GET", "path": "/2026-01/product", "status": 503}]})
            assert faults.json()["script"][0]["status"] == 503
            assert (await control.post("/_sandbox/faults", json={"nonsense": 1})).status_code == 400
            api = httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.token}", "shipbob_channel_id": "7"})
            async with api:
                assert (await api.get("/2026-01/product")).status_code == 503
                body = {
                    "reference_id": "ctl-1", "type": "DTC", "shipping_method": "Standard",
                    "recipient": {"name": "A", "address": {"address1": "1 St", "city": "X", "country": "US"}},
                    "products": [{"reference_id": "SKU-3", "name": "Three", "quantity": 2}],
                }
                assert (await api.post("/2026-01/order", json=body)).status_code == 201
                assert (await api.post("/2026-01/order", json=body)).json() == {"": ["Cannot insert order with existing ReferenceId"]}
                no_channel = await api.post("/2026-01/order", json=body, headers={"shipbob_channel_id": "99"})
                assert no_channel.status_code == 403
            shipped = (await control.post("/_sandbox/ship", json={"reference": "ctl-1", "split": True})).json()["shipped"]
            assert len(shipped) == 2
            state = (await control.get("/_sandbox/state")).json()
        assert state["orders"]["ctl-1"]["status"] == "Fulfilled"
        assert state["create_attempts"]["ctl-1"] == 2 and state["create_count"] == 1
        assert state["faults"] == {"503": 1}
        assert state["requests"]["POST /order"] == 3
        assert state["stock"]["SKU-3"]["11"] == {"fulfillable": 2, "on_hand": 4, "committed": 2}
        assert len(state["shipments"]) == 2 and state["tracking_uploaded"] == []


class TestShipBobWebhooks:
    """Subscriptions over real HTTP (requests and answers checked against the spec) and the
    sandbox's signed deliveries, which the adapter must accept and a forger cannot fake."""

    async def test_register_list_and_a_signed_delivery_when_an_order_ships(self, adapter, sandbox, warehouse) -> None:
        import asyncio
        import base64
        import secrets

        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        from connector.sandbox.server import SandboxServer

        got: list[tuple[dict, bytes]] = []

        async def receive(request):
            got.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        secret = base64.b64encode(secrets.token_bytes(24)).decode()
        with SandboxServer(Starlette(routes=[Route("/hook/{token}", receive, methods=["POST"])])) as receiver:
            url = f"{receiver.url}/hook/tok"
            first = await adapter.register_webhooks(url, secret)
            assert first[-1].startswith("subscribed") and first[-1].endswith("signed")
            assert await adapter.register_webhooks(url, secret) == [
                "already subscribed: order.shipped, order.shipment.cancelled, order.shipment.on_hold"]
            assert await adapter.webhook_urls() == {url} and len(sandbox.webhooks) == 1
            assert all("secret" not in s for s in (await adapter._subscriptions()))  # never listed back

            order, _ = await WarehouseContract().created(adapter, warehouse)
            sandbox.ship(order.reference)
            [delivery] = await asyncio.to_thread(sandbox.hooks.wait)
            assert delivery.status == "delivered" and delivery.topic == "order.shipped"
            headers, body = got[0]
            assert headers["x-webhook-topic"] == "order.shipped"
            assert adapter.verify_webhook(headers, body, secret)
            assert not adapter.verify_webhook(headers, body, base64.b64encode(secrets.token_bytes(24)).decode())
            [hint] = adapter.webhook_hints(json.loads(body))
            assert hint["reference"] == order.reference and hint["topic"] == "order.shipped"

            sandbox.hooks.redeliver(delivery.id)  # ShipBob retrying: the same webhook-id, signed again
            await asyncio.to_thread(sandbox.hooks.wait)
            assert got[1][0]["webhook-id"] == headers["webhook-id"] and adapter.verify_webhook(got[1][0], got[1][1], secret)

    async def test_on_hold_and_cancelled_shipments_are_told(self, adapter, sandbox, warehouse) -> None:
        import asyncio

        sandbox.webhooks["1"] = {"id": "1", "url": "http://127.0.0.1:9/never", "topics": ["order.shipment.on_hold", "order.shipment.cancelled"],
                                 "enabled": True, "created_at": "2026-01-01T00:00:00Z", "_secret": ""}
        order, _ = await WarehouseContract().created(adapter, warehouse)
        assert sandbox.hold(order.reference)
        other, _ = await WarehouseContract().created(adapter, warehouse)
        await adapter.cancel_order(other.reference)
        sent = await asyncio.to_thread(sandbox.hooks.wait)
        assert [(d.topic, d.status) for d in sent] == [("order.shipment.on_hold", "failed"), ("order.shipment.cancelled", "failed")]

    async def test_the_sandbox_posts_to_loopback_only_and_checks_what_it_is_given(self, sandbox) -> None:
        import asyncio

        headers = {"Authorization": f"Bearer {sandbox.token}"}
        async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as api:
            bad = await api.post("/2026-01/webhook", json={"url": "https://example.com/x", "topics": ["order.nope"], "secret": "short"})
            assert bad.status_code == 422 and set(bad.json()) == {"topics", "secret"}
            ok = await api.post("/2026-01/webhook", json={"url": "https://example.com/x", "topics": ["order.shipped"]})
            assert ok.status_code == 200
            assert (await api.get("/2026-01/webhook", headers={"Authorization": "Bearer nope"})).status_code == 401
        sandbox.hooks.post("https://example.com/x", "order.shipped", {"id": 1})
        [d] = await asyncio.to_thread(sandbox.hooks.wait)
        assert d.status == "refused"
        async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as api:
            assert (await api.delete(f"/2026-01/webhook/{ok.json()['id']}")).status_code == 204
            assert (await api.get("/2026-01/webhook")).json()["items"] == []
