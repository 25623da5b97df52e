"""A third party's warehouse, installed by its two entry points only, keeps the shared contract.

`example_wms` is an adapter and a sandbox kit written as a third party would write them; here
they are "installed" the way a package's metadata would install them, and everything else (the
adapter found by name, its config from the kit, the driver) comes from the kit machinery.
"""

from __future__ import annotations

import importlib.metadata
from importlib.metadata import EntryPoint

import pytest

import adapters.base
from adapters.base import load_adapter
from connector.sandbox import kits
from tests.adapters import example_wms
from tests.adapters.contract import WarehouseContract
from tests.support.warehouse import FAULT_HANG_S, kit_adapter, kit_base_url, kit_warehouse  # noqa: F401 (fixtures)

INSTALLED = {  # what `[project.entry-points]` in the third party's pyproject.toml would declare
    adapters.base.ENTRY_POINT_GROUP: EntryPoint("example-wms", "tests.adapters.example_wms:ExampleAdapter", adapters.base.ENTRY_POINT_GROUP),
    kits.ENTRY_POINT_GROUP: EntryPoint("example-wms", "tests.adapters.example_wms:kit", kits.ENTRY_POINT_GROUP),
}


@pytest.fixture
def installed(monkeypatch):
    real = importlib.metadata.entry_points

    def entry_points(group: str):
        return [*real(group=group), *([INSTALLED[group]] if group in INSTALLED else [])]

    monkeypatch.setattr(adapters.base, "entry_points", entry_points)
    monkeypatch.setattr(kits, "entry_points", entry_points)
    monkeypatch.setattr(kits, "KITS", kits._Kits())


@pytest.fixture
def kit(installed):
    made = kits.make_kit("example-wms", products=("SKU-1", "SKU-2", "SKU-3"), ship_methods=("Ground",), credential="ex-token")
    made.faults.retry_after_s, made.faults.timeout_s = 1, FAULT_HANG_S
    return made


class TestExampleWmsKeepsTheContract(WarehouseContract):
    """The third party's adapter, found and configured through its entry points, keeps the contract."""

    def test_it_is_found_by_name_like_the_built_in_ones(self, kit) -> None:
        assert "example-wms" in kits.KITS and load_adapter("example-wms") is example_wms.ExampleAdapter
        assert {"shipbob", "files"} <= set(kits.KITS)  # installed beside them, not instead
