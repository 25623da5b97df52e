"""Warehouse sandboxes behind one small interface, so the demo, the pipeline tests, the bench and
the shared contract suite can run the same flow against any warehouse adapter
(`connector demo --warehouse NAME`).

A kit owns one warehouse sandbox: its ASGI app (served on loopback by the caller; None for a
file-based warehouse), the `[merchants.warehouse]` block that points the adapter at it, and the
levers a scenario or a contract test needs (catalog, stock, "ship this order now", "fail the
next create") plus what tests count.

Kits are found by entry point, so a third-party adapter brings its own sandbox: its package
declares, under the adapter's own entry-point name, a factory taking `products`, `ship_methods`,
`credential` (and any keywords of its own) and returning a `WarehouseKit`:

    [project.entry-points."connector.sandboxes"]
    mywms = "mywms_connector.sandbox:kit"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

ENTRY_POINT_GROUP = "connector.sandboxes"


class WarehouseKit(Protocol):
    """A warehouse sandbox as the demo, the tests and the contract suite drive it."""

    name: str  # the adapter's entry-point name
    app: Any  # ASGI app to serve on loopback, or None
    faults: Any  # connector.sandbox.faults.Faults (or None when the warehouse has no replies to fault)
    ship_methods: tuple[str, ...]  # method names as the [merchants.ship_methods] values spell them
    skus: tuple[str, ...]  # SKUs the warehouse knows (the `products` it was made with)

    def warehouse_config(self, base_url: str, workdir: Path) -> dict[str, Any]:
        """The [merchants.warehouse] block for an adapter talking to this sandbox."""

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        """Put stock on a warehouse's shelf (on hand defaults to available)."""

    def ship_all(self) -> None:
        """Ship every open order now (some split, a voided label, as the sandbox plans)."""

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> list[Any]:
        """Ship one created order now, as told; returns what was shipped (empty: nothing to ship)."""

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        """Fail the next call of an adapter operation ("create", "find", "shipments", "ack",
        "stock", "skus", "ship_methods") as `kind` (an HTTP status, "timeout" or "reset");
        `after` lets the warehouse do the work first. NotImplementedError when it cannot."""

    def orders_created(self, reference: str) -> int:
        """How many warehouse orders really exist for `reference` (the at-most-once check)."""

    def created(self) -> int:
        """Orders created (successful creates)."""

    def create_attempts(self) -> dict[str, int]:
        """Create calls that reached the warehouse, by our reference."""

    def warehouse_ids(self) -> list[str]: ...

    # Optional: `close()` stops anything the kit runs itself (e.g. an SFTP server).


KitFactory = Callable[..., WarehouseKit]


class _Kits(Mapping[str, str]):
    """The registered kits: entry-point name -> `module:factory`, read from the installed
    packages on first use (an import of this module costs nothing)."""

    def __init__(self, group: str = ENTRY_POINT_GROUP):
        self.group = group
        self._eps: dict[str, EntryPoint] | None = None

    def entry_points(self) -> dict[str, EntryPoint]:
        if self._eps is None:
            self._eps = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._eps

    def __getitem__(self, name: str) -> str:
        return self.entry_points()[name].value

    def __iter__(self) -> Iterator[str]:
        return iter(self.entry_points())

    def __len__(self) -> int:
        return len(self.entry_points())

    def factory(self, name: str) -> KitFactory:
        if name not in self:
            raise KeyError(f"no sandbox for warehouse {name!r}; available: {', '.join(sorted(self)) or 'none'}")
        return self.entry_points()[name].load()


KITS = _Kits()


def make_kit(name: str, *, products: tuple[str, ...], ship_methods: tuple[str, ...], credential: str = "sandbox-secret", **kw: Any) -> WarehouseKit:
    """Build the sandbox kit of a warehouse adapter by its entry-point name."""
    return KITS.factory(name)(products=products, ship_methods=ship_methods, credential=credential, **kw)
