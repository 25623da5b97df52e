"""Test plumbing shared by the warehouse sandboxes' contract and flow tests.

Contract tests (tests/adapters/test_*_contract.py): `served()` runs a sandbox on loopback with
fault timings the short client timeouts can afford, `opened()` gives an adapter those timeouts,
and `KitDriver` is the `WarehouseDriver` of any sandbox kit (connector.sandbox.kits), which is
how the contract suite runs for every registered warehouse, a third party's included: given a
`kit` fixture, `kit_base_url`, `kit_adapter` and `kit_warehouse` provide the rest.

Flow tests (tests/integration/test_*_flow.py): `flow_fixture()` builds the `flow` fixture for a
warehouse (the `runtime` fixture of tests/conftest.py then runs on it), and `orders`, `states`
and `deliver` are the steps every flow repeats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from adapters.base import AdapterContext, load_adapter
from adapters.http import Limiters

from connector.sandbox.samples import make_order
from connector.sandbox.server import SandboxServer
from tests.support.flow import Flow
from tests.support.pg import fresh_schema

CLIENT_READ_TIMEOUT_S = 0.75  # the sandbox's "timeout" fault hangs longer than this
FAULT_HANG_S = 1.5


# -- contract tests ---------------------------------------------------------------------------


@contextmanager
def served(sandbox: Any) -> Iterator[Any]:
    """Serve `sandbox.app` on loopback (its URL as `sandbox.url`) with short fault timings:
    a 429 asks for a one-second wait and a "timeout" fault outlasts the client's read timeout."""
    sandbox.faults.retry_after_s = 1
    sandbox.faults.timeout_s = FAULT_HANG_S
    with SandboxServer(sandbox.app) as server:
        sandbox.url = server.url
        yield sandbox


def fresh_context(merchant: str, **kw: Any) -> AdapterContext:
    """An AdapterContext with rate limiters of its own, so a 429 in one test never slows the next."""
    return AdapterContext(merchant=merchant, limiters=Limiters(), **kw)


@asynccontextmanager
async def opened(adapter: Any, transport: Any = None) -> AsyncIterator[Any]:
    """The adapter with a short read timeout (so "timeout" faults cost under a second each),
    closed afterwards; a validating `transport` must have seen only valid traffic."""
    if hasattr(adapter, "http"):  # an adapter on adapters.kit.VendorAdapter
        adapter.http.client.timeout = httpx.Timeout(5.0, read=CLIENT_READ_TIMEOUT_S)
    yield adapter
    await adapter.aclose()
    if transport is not None:
        transport.assert_valid()


@pytest.fixture(name="base_url")
def kit_base_url(kit: Any) -> Iterator[str]:
    """The kit's sandbox served on loopback ("" for a kit without HTTP)."""
    if kit.app is None:
        yield ""
        return
    with SandboxServer(kit.app) as server:
        yield server.url


@pytest.fixture(name="adapter")
async def kit_adapter(kit: Any, base_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    """The adapter registered under the kit's name, configured by the kit as the engine would."""
    cls = load_adapter(kit.name)
    config = cls.Config.model_validate(kit.warehouse_config(base_url, tmp_path), context={"base_dir": tmp_path})
    async with opened(cls(config, fresh_context("ct"))) as adapter:  # the contract's references are `ct-...`
        yield adapter


@pytest.fixture(name="warehouse")
def kit_warehouse(kit: Any) -> KitDriver:
    return KitDriver(kit)


class KitDriver:
    """`WarehouseDriver` over a sandbox kit: everything the contract suite arranges or observes
    goes through the kit's own levers, so any registered warehouse can be driven."""

    def __init__(self, kit: Any, *, ship_method: str | None = None):
        self.kit = kit
        self.skus = list(kit.skus)
        self.ship_method = ship_method or kit.ship_methods[0]
        self.warehouse_ids = list(kit.warehouse_ids())

    def orders_created(self, reference: str) -> int:
        return self.kit.orders_created(reference)

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        self.kit.fail_next(operation, kind, after=after)

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> None:
        assert self.kit.ship(reference, split=split, void_first=void_first, tracking=tracking), f"{reference} was not waiting to ship"

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.kit.set_stock(sku, warehouse_id, available, on_hand)


# -- flow tests -------------------------------------------------------------------------------


def flow_fixture(*, databases: tuple[str, ...] = ("sqlite",), **flow_kw: Any) -> Callable[..., Any]:
    """A `flow` fixture: a `Flow` for `flow_kw` (e.g. `warehouse="extensiv"`) per test, on each
    of `databases` ("postgres" needs CONNECTOR_TEST_POSTGRES_URL, else it is skipped)."""

    @pytest.fixture(name="flow", params=databases if len(databases) > 1 else None)
    def flow(request, tmp_path) -> Iterator[Flow]:
        if getattr(request, "param", "sqlite") == "sqlite":
            f = Flow(tmp_path, **flow_kw)
            yield f
            f.close()
            return
        with fresh_schema() as url:
            f = Flow(tmp_path, database_url=url, **flow_kw)
            yield f
            f.close()

    return flow


def orders(n: int, start: int = 1, **kw: Any) -> list[dict[str, Any]]:
    """Sample UltraCart orders DEMO-{start:04d} onwards."""
    return [make_order(f"DEMO-{i:04d}", **kw) for i in range(start, start + n)]


async def states(rt: Any, merchant: str = "acme") -> dict[str, int]:
    """The merchant's orders counted by state."""
    return {s: n for (_, s), n in (await rt.store.orders.counts_by_state(merchant)).items()}


async def deliver(rt: Any) -> None:
    """Download the queue and deliver to the warehouse; both runs must succeed."""
    for service in ("order_download", "order_delivery"):
        [r] = await rt.run_once(service=service)
        assert r.ok and not r.error, r


async def lose_a_create_reply(flow: Flow, rt: Any, path: str, fault: dict[str, Any]) -> Any:
    """Deliver three orders while the warehouse creates one but its reply to POST `path` is lost
    (`fault`); the next delivery must find that order by reference, not create it again.
    Returns the store's row of that order, for the vendor's own checks."""
    flow.uc.queue("DFLT", orders(3))
    await rt.run_once(service="order_download")
    flow.sb.faults.script = [{"method": "POST", "path": path, **fault}]
    await rt.run_once(service="order_delivery")
    assert await states(rt) == {"at_warehouse": 2, "in_doubt": 1}
    [doubt] = [r for r in await rt.store.orders.listing() if r.state == "in_doubt"]
    await rt.run_once(service="order_delivery")
    assert await states(rt) == {"at_warehouse": 3}
    assert flow.sb.create_count == 3 and flow.sb.create_attempts[f"acme-{doubt.order_id}"] == 1
    [row] = await rt.store.orders.find(doubt.order_id)
    assert any("found at the warehouse by reference" in e.reason for e in await rt.store.orders.timeline(row.id))
    return row
