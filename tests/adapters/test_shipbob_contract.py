"""The shared warehouse contract, run for ShipBob against ShipBobSandbox on loopback (real HTTP).

Every request the adapter sends is validated against ShipBob's 2026-01 document, and every
documented answer the sandbox gives is validated too, which keeps the sandbox honest.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from adapters.base import AdapterContext
from adapters.shipbob import ShipBobAdapter
from connector.sandbox.server import SandboxServer
from connector.sandbox.shipbob import ShipBobSandbox
from tests.adapters.contract import WarehouseContract
from tests.support.openapi import ValidatingTransport, spec_validator

SPEC = "shipbob-2026-01-openapi.json"
CLIENT_READ_TIMEOUT_S = 0.75  # the sandbox's "timeout" fault hangs longer than this
FAULT_HANG_S = 1.5

_ROUTES = {  # the driver's operation names -> ShipBob method and path
    "create": ("POST", "/order"),
    "find": ("GET", "/order"),
    "shipments": ("GET", "/order"),
    "ack": ("POST", "/shipment:batchUpdateTrackingUpload"),
    "stock": ("GET", "/inventory-level/locations"),
    "skus": ("GET", "/product"),
    "ship_methods": ("GET", "/shipping-method"),
}


class ShipBobDriver:
    """`WarehouseDriver` over a ShipBobSandbox running in this process."""

    skus = ["SKU-1", "SKU-2"]
    ship_method = "Standard"
    warehouse_ids = ["10", "11"]

    def __init__(self, sandbox: ShipBobSandbox):
        self.sandbox = sandbox

    def orders_created(self, reference: str) -> int:
        # Like ShipBob, the sandbox refuses a second order with the same reference (422), so this
        # is 0 or 1; `create_count` also shows no second create succeeded under another key.
        return sum(1 for o in self.sandbox.orders.values() if o["reference_id"] == reference)

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        method, path = _ROUTES[operation]
        self.sandbox.faults.script.append(
            {"method": method, "path": f"/{self.sandbox.api_version}{path}", "status": kind, "after": after}
        )

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> None:
        self.sandbox.plan(reference, split=split, void_first=void_first, tracking=tracking)
        assert self.sandbox.ship(reference), f"{reference} was not waiting to ship"

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.sandbox.set_stock(sku, int(warehouse_id), available, on_hand)


@pytest.fixture
def sandbox():
    # A sandbox per test, with its own token: the rate limiter is per credential and process-wide,
    # so a 429 in one test must not slow the next.
    sb = ShipBobSandbox(token=f"tok-{uuid.uuid4().hex}", channel_id=7, products=["SKU-1", "SKU-2", "SKU-3"])
    sb.faults.retry_after_s = 1
    sb.faults.timeout_s = FAULT_HANG_S
    with SandboxServer(sb.app) as server:
        sb.url = server.url
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
        "rate_per_minute": 60_000,  # ShipBob's 150/min pacing would make this suite take minutes
    }
    adapter = ShipBobAdapter(config, AdapterContext(merchant="acme", transport=transport))
    # Short read timeout so the "timeout" faults cost under a second each.
    adapter.http.client.timeout = httpx.Timeout(5.0, read=CLIENT_READ_TIMEOUT_S)
    yield adapter
    await adapter.aclose()
    transport.assert_valid()


@pytest.fixture
def warehouse(sandbox) -> ShipBobDriver:
    return ShipBobDriver(sandbox)


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
        adapter = ShipBobAdapter(config, AdapterContext(merchant="acme"))
        try:
            with pytest.raises(ConfigurationError):
                await adapter.check()
        finally:
            await adapter.aclose()
