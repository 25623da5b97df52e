"""Warehouse sandboxes behind one small interface, so the demo, the pipeline tests and the bench
can run the same flow against any warehouse adapter (`connector demo --warehouse NAME`).

A kit owns one warehouse sandbox: its ASGI app (served on loopback by the caller; None for a
file-based warehouse), the `[merchants.warehouse]` block that points the adapter at it, and the
few levers a scenario needs (catalog, stock, "ship everything now") plus what tests count.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol


class WarehouseKit(Protocol):
    """A warehouse sandbox as the demo and the tests drive it."""

    name: str  # the adapter's entry-point name
    app: Any  # ASGI app to serve on loopback, or None
    faults: Any  # connector.sandbox.faults.Faults (or None when the warehouse has no HTTP)
    ship_methods: tuple[str, ...]  # method names as the [merchants.ship_methods] values spell them

    def warehouse_config(self, base_url: str, workdir: Path) -> dict[str, Any]:
        """The [merchants.warehouse] block for an adapter talking to this sandbox."""

    def set_stock(self, sku: str, warehouse_id: str, available: int) -> None: ...

    def ship_all(self) -> None:
        """Ship every open order now (some split, a voided label, as the sandbox plans)."""

    def created(self) -> int:
        """Orders created (successful creates)."""

    def create_attempts(self) -> dict[str, int]:
        """Create calls that reached the warehouse, by our reference."""

    def warehouse_ids(self) -> list[str]: ...

    # Optional: `close()` stops anything the kit runs itself (e.g. an SFTP server).


KITS = {
    "shipbob": "connector.sandbox.shipbob:kit",
    "shipstation": "connector.sandbox.shipstation:kit",
    "shipstation-v2": "connector.sandbox.shipstation_v2:kit",
    "files": "connector.sandbox.files:kit",
    "extensiv": "connector.sandbox.extensiv:kit",
}


def make_kit(name: str, *, products: tuple[str, ...], ship_methods: tuple[str, ...], credential: str = "sandbox-secret", **kw: Any) -> WarehouseKit:
    """Build the sandbox kit of a warehouse adapter by its entry-point name."""
    if name not in KITS:
        raise KeyError(f"no sandbox for warehouse {name!r}; available: {', '.join(sorted(KITS))}")
    module, _, func = KITS[name].partition(":")
    return getattr(importlib.import_module(module), func)(products=products, ship_methods=ship_methods, credential=credential, **kw)
