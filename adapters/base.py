"""What the engine expects of a cart and of a warehouse system, and how adapters are found.

A warehouse adapter is a small class with declared attributes (`name`, `Config`, `capabilities`)
and a few async methods. It is registered under the entry-point group `connector.warehouses`, so a
third party can ship one as its own package:

    [project.entry-points."connector.warehouses"]
    mywms = "mywms_connector:MyWmsAdapter"

Adapters know `connector.domain`, `connector.errors` and `adapters.http`; never the store or the
pipeline. Every method raises `connector.errors.VendorError` subclasses on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict

from adapters.http import OnCall
from connector.domain import CreateResult, DistributionCenter, Shipment, StockLevel, WarehouseOrder
from connector.redact import Redactor

ENTRY_POINT_GROUP = "connector.warehouses"


class AdapterConfig(BaseModel):
    """Base of every adapter's config block: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid")

    adapter: str

    def secrets(self) -> list[str]:
        """Values that must never be logged (tokens, passwords); redaction masks them everywhere."""
        return []


@dataclass(frozen=True)
class Capabilities:
    """What a warehouse system can do; the engine switches services on and off by these."""

    inventory: bool = False  # stock_levels() works: the inventory upload service runs
    shipment_ack: bool = False  # acknowledge_shipments() tells the warehouse tracking reached the cart
    cancel: bool = False  # cancel_order() works
    bulk_create: bool = False  # create_orders() sends many in one call
    sku_catalog: bool = False  # known_skus() returns the warehouse's SKUs (unknown SKUs are held)
    ship_method_catalog: bool = False  # known_ship_methods() returns the valid methods


@dataclass
class AdapterContext:
    """What the engine hands an adapter: who it works for and the shared HTTP plumbing."""

    merchant: str
    on_call: OnCall | None = None
    redactor: Redactor | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests inject respx / failure transports
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class WarehouseAdapter(Protocol):
    """A warehouse system (WMS or shipping tool). Creates must be idempotent by `reference`."""

    name: ClassVar[str]
    Config: ClassVar[type[AdapterConfig]]
    capabilities: ClassVar[Capabilities]

    def __init__(self, config: Any, context: AdapterContext) -> None: ...

    async def check(self) -> str:
        """Verify credentials and settings with one cheap call; return a one-line description."""

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Create the order. A duplicate reference is looked up and returned with `already_existed`.

        Raises InDoubtError when the outcome is unknown (timeout, reset, 5xx after sending).
        """

    async def find_order(self, reference: str) -> CreateResult | None:
        """Look an order up by our reference (resolves `in_doubt`); None when it does not exist."""

    async def known_skus(self) -> set[str] | None:
        """The SKUs the warehouse knows, or None when it cannot tell (capability `sku_catalog`)."""

    async def known_ship_methods(self) -> set[str] | None:
        """The ship methods the warehouse accepts, or None when it cannot tell."""

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """Shipments created or updated since `since` (the caller overlaps windows)."""

    async def acknowledge_shipments(self, shipments: list[Shipment]) -> None:
        """Tell the warehouse these shipments' tracking reached the cart (capability `shipment_ack`)."""

    async def stock_levels(self) -> list[StockLevel]:
        """Stock per SKU and warehouse (capability `inventory`)."""

    async def aclose(self) -> None: ...


class UnknownAdapter(LookupError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(f"unknown warehouse adapter {name!r}; installed: {', '.join(available) or 'none'}")


def available_adapters() -> dict[str, Any]:
    """Entry points of the `connector.warehouses` group, by name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_adapter(name: str) -> type[WarehouseAdapter]:
    eps = available_adapters()
    if name not in eps:
        raise UnknownAdapter(name, sorted(eps))
    return eps[name].load()


def order_reference(merchant: str, order_id: str, limit: int = 50) -> str:
    """The deterministic reference every create carries: `{merchant}-{order_id}`, <= 50 characters.

    When the plain form is too long the tail is replaced by a short hash, so the reference stays
    deterministic and unique.
    """
    ref = f"{merchant}-{order_id}"
    if len(ref) <= limit:
        return ref
    import hashlib

    digest = hashlib.sha256(ref.encode()).hexdigest()[:10]
    return ref[: limit - 11] + "~" + digest


class CartAdapter(Protocol):
    """The cart side (UltraCart's Fulfillment API for one merchant and distribution center)."""

    async def distribution_centers(self) -> list[DistributionCenter]: ...

    async def fetch_orders(self) -> list[dict[str, Any]]:
        """Up to 100 queued orders as raw JSON (the same ones until acknowledged)."""

    async def acknowledge(self, order_ids: list[str]) -> None: ...

    async def post_shipments(self, shipments: list[dict[str, Any]]) -> None: ...

    async def post_inventory(self, items: list[dict[str, Any]]) -> None: ...

    async def aclose(self) -> None: ...
