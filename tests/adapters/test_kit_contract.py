"""The shared warehouse contract, run for every registered sandbox kit through the kit alone.

Nothing here knows a vendor: the adapter class is the `connector.warehouses` entry point of the
kit's name, its config is `kit.warehouse_config()`, the sandbox is served on loopback when the
kit has an HTTP app, and the driver is `KitDriver(kit)`. So a third-party adapter that declares a
kit (entry-point group `connector.sandboxes`) is held to the same contract as the built-in ones:

    pip install -e '.[test]'  your-package          # in the connector's checkout
    CONNECTOR_CONTRACT_KITS=mywms pytest tests/adapters/test_kit_contract.py

`CONNECTOR_CONTRACT_KITS` (comma separated) picks kits; without it every registered kit runs.
The vendor modules (test_*_contract.py) run the same suite again with spec validation and
vendor-specific checks on top.
"""

from __future__ import annotations

import os

import pytest

from adapters.base import load_adapter
from connector.sandbox.kits import KITS, make_kit
from tests.adapters.contract import WarehouseContract
from tests.support.warehouse import FAULT_HANG_S, kit_adapter, kit_base_url, kit_warehouse  # noqa: F401 (fixtures)

PRODUCTS = ("SKU-1", "SKU-2", "SKU-3")
SHIP_METHODS = ("Standard", "Expedited", "2-Day")  # generic names: each kit turns them into its own


def _selected() -> list[str]:
    wanted = [k.strip() for k in os.environ.get("CONNECTOR_CONTRACT_KITS", "").split(",") if k.strip()]
    unknown = sorted(set(wanted) - set(KITS))
    if unknown:
        raise pytest.UsageError(f"CONNECTOR_CONTRACT_KITS names no registered kit: {', '.join(unknown)}; registered: {', '.join(sorted(KITS))}")
    return wanted or sorted(KITS)


@pytest.fixture(params=_selected())
def kit(request):
    # Only what every kit factory takes: the contract plans each order's shipping itself.
    made = make_kit(request.param, products=PRODUCTS, ship_methods=SHIP_METHODS, credential="ct-secret")
    if made.faults is not None:
        made.faults.retry_after_s = 1
        made.faults.timeout_s = FAULT_HANG_S
    yield made
    if hasattr(made, "close"):
        made.close()


class TestEveryKitKeepsTheContract(WarehouseContract):
    """Each registered warehouse, driven only through its kit, keeps the shared contract."""

    def test_the_kit_is_its_adapters(self, kit) -> None:
        assert load_adapter(kit.name).name == kit.name
        assert kit.skus and kit.ship_methods and kit.warehouse_ids()
