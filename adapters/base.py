"""What the engine expects of a cart and of a warehouse system, and how adapters are found.

A warehouse adapter is a small class with declared attributes (`name`, `Config`, `capabilities`)
and a few async methods. It is registered under the entry-point group `connector.warehouses`, so a
third party can ship one as its own package:

    [project.entry-points."connector.warehouses"]
    mywms = "mywms_connector:MyWmsAdapter"

`WarehouseAdapterBase` gives the defaults of every optional part and `adapters.kit.VendorAdapter`
the HTTP plumbing; a sandbox kit declared under the same name in `connector.sandboxes` (see
`connector.sandbox.kits`) gives the adapter `connector demo`, the bench and the contract suite.

Adapters know `connector.domain`, `connector.errors` and `adapters.http`; never the store or the
pipeline. Every method raises `connector.errors.VendorError` subclasses on failure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from adapters.http import DEFAULT_LIMITERS, Limiters, OnCall
from connector.domain import (
    CancelOutcome,
    CancelResult,
    CreateResult,
    DistributionCenter,
    Shipment,
    StockLevel,
    WarehouseOrder,
)
from connector.errors import PermanentError
from connector.redact import Redactor

ENTRY_POINT_GROUP = "connector.warehouses"
REFERENCE_LIMIT = 50  # every warehouse we know takes references of 50 characters
_HASHED_TAIL = re.compile(r"~[0-9a-f]{10}$")


def config_path(value: str, info: ValidationInfo) -> str:
    """A local path in an adapter config, resolved against the config file's folder.

    The engine validates a warehouse block with `Config.model_validate(block, context={"base_dir":
    folder})`, so `known_hosts = "keys/known_hosts"` means the same file whichever folder the
    daemon was started from. Absolute paths, `~` paths and "" stay as they are; without a
    `base_dir` (a test, a block built in code) nothing changes.
    """
    base = (info.context or {}).get("base_dir")
    if not value or base is None or value.startswith("~") or Path(value).is_absolute():
        return value
    return str(Path(base) / value)


# A `str` field holding a local path (a key file, a folder): see `config_path`.
LocalPath = Annotated[str, AfterValidator(config_path)]


class AdapterConfig(BaseModel):
    """Base of every adapter's config block: unknown keys are errors, so typos are caught.

    Declare local paths as `LocalPath` so relative ones are read from the config file's folder.
    """

    model_config = ConfigDict(extra="forbid")

    adapter: str

    def secrets(self) -> list[str]:
        """Values that must never be logged (tokens, passwords); redaction masks them everywhere."""
        return []


@dataclass(frozen=True)
class Capabilities:
    """What a warehouse system can do; the engine switches services on and off by these.

    Claim only what the adapter really implements: the contract suite checks that a claimed
    `cancel` comes with a `cancel_order` of the adapter's own, `bulk_create` with a
    `create_orders` (which no adapter has yet: the protocol does not declare one), `webhooks`
    with its own `register_webhooks`, `webhook_urls` and `webhook_hints`, and `update_address` or
    `update_lines` with an `update_order` of its own.
    """

    inventory: bool = False  # stock_levels() works: the inventory upload service runs
    shipment_ack: bool = False  # acknowledge_shipments() tells the warehouse tracking reached the cart
    cancel: bool = False  # cancel_order() cancels at the warehouse (else it answers `by_hand`)
    bulk_create: bool = False  # create_orders() sends many in one call (not part of the protocol yet)
    sku_catalog: bool = False  # known_skus() returns the warehouse's SKUs (unknown SKUs are held)
    ship_method_catalog: bool = False  # known_ship_methods() returns the valid methods
    # register_webhooks() subscribes the warehouse's shipment webhooks to this connector and
    # webhook_urls() lists them; each delivery (webhook_hints(), verify_webhook()) starts a
    # shipment read at once. Off: shipments are only polled.
    webhooks: bool = False
    # update_order() changes the ship-to address / the lines of an order already at the warehouse.
    # Off: an edit in the cart after hand-off raises an alert naming what to change by hand.
    update_address: bool = False
    update_lines: bool = False


def order_reference(merchant: str, order_id: str, limit: int = REFERENCE_LIMIT) -> str:
    """The deterministic reference every create carries: `{merchant}-{order_id}`, <= 50 characters.

    When the plain form is too long the tail is replaced by a short hash, so the reference stays
    deterministic and unique.
    """
    ref = f"{merchant}-{order_id}"
    if len(ref) <= limit:
        return ref
    digest = hashlib.sha256(ref.encode()).hexdigest()[:10]
    return ref[: limit - 11] + "~" + digest


def reference_order_id(merchant: str, reference: str, limit: int = REFERENCE_LIMIT) -> str | None:
    """The inverse of `order_reference`: the part of the cart order id a reference keeps (all of
    it, or the head a hashed reference kept; "" when the merchant id took every character), or
    None when the reference is not this merchant's.

    References are `{merchant}-{order id}`, so a merchant id that is another's plus a dash
    (`acme` and `acme-east`) cannot be told apart by the reference alone.
    """
    if not reference:
        return None
    if not merchant:
        return reference
    prefix = f"{merchant}-"
    head = reference[: -len("~0123456789")] if len(reference) == limit and _HASHED_TAIL.search(reference) else reference
    if head.startswith(prefix):
        return head[len(prefix) :]
    if head != reference and prefix.startswith(head):
        return ""  # hashed within the merchant id itself
    return None


@dataclass
class AdapterContext:
    """What the engine hands an adapter: who it works for and the shared HTTP plumbing."""

    merchant: str
    on_call: OnCall | None = None
    redactor: Redactor | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests inject respx / failure transports
    extra: dict[str, Any] = field(default_factory=dict)
    # The runtime's rate limiters (one per vendor credential, shared by its merchants); the
    # module default until the runtime hands its own.
    limiters: Limiters = field(default_factory=lambda: DEFAULT_LIMITERS)

    def owns(self, reference: str) -> bool:
        """Whether a warehouse order or shipment reference is one of this merchant's.

        Several merchants (and other order sources) often share one warehouse account; only the
        merchant's own orders are read, reported or acknowledged.
        """
        return reference_order_id(self.merchant, reference) is not None

    def order_id_of(self, reference: str) -> str | None:
        """The cart order id (or the head of it a hashed reference kept) inside one of this
        merchant's references; None for anybody else's."""
        return reference_order_id(self.merchant, reference)


class DataProblem(Protocol):
    """Something wrong in data a warehouse handed over (a bad row in a partner's file): the
    engine raises an alert with `str(problem)`; the pass itself goes on."""

    message: str
    fatal: bool  # the whole source (file) could not be used


@runtime_checkable
class WarehouseAdapter(Protocol):
    """A warehouse system (WMS or shipping tool). Creates must be idempotent by `reference`.

    `WarehouseAdapterBase` (here) and `adapters.kit.VendorAdapter` (for HTTP APIs) give the
    defaults, so an adapter writes only what its warehouse really does.
    """

    name: ClassVar[str]
    Config: ClassVar[type[AdapterConfig]]
    capabilities: ClassVar[Capabilities]
    # Data problems found by the latest reads (bad rows in a partner's file); empty when none.
    problems: Sequence[DataProblem]
    # When the stock last returned by stock_levels() was counted, if the warehouse says (a file
    # snapshot may be hours old); None: as of the call.
    snapshot_at: datetime | None

    def __init__(self, config: Any, context: AdapterContext) -> None: ...

    async def check(self) -> str:
        """Verify credentials and settings with one cheap call; return a one-line description."""

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Create the order. A duplicate reference is looked up and returned with `already_existed`.

        Raises InDoubtError when the outcome is unknown (timeout, reset, 5xx after sending).
        """

    async def find_order(self, reference: str) -> CreateResult | None:
        """Look an order up by our reference (resolves `in_doubt`); None when it does not exist."""

    async def create_request(self, order: WarehouseOrder) -> Any:
        """The request `create_order` would send for this order (its body, or a file's rows),
        written nowhere: what a dry run shows. May read (a carrier list), never writes."""

    async def cancel_order(self, reference: str) -> CancelResult:
        """Cancel an order at the warehouse (capability `cancel`); `by_hand` when it cannot."""

    async def update_order(self, order: WarehouseOrder, warehouse_order_id: str, *, address: bool, lines: bool) -> str:
        """Make the order already at the warehouse (`warehouse_order_id`, created for
        `order.reference`) match `order`: its ship-to address when `address` (capability
        `update_address`), its lines when `lines` (capability `update_lines`); nothing else the
        warehouse holds is changed. Returns a short description of what was done, for a person.

        Idempotent: the same update twice is harmless (the second finds it done, or sets the
        same values again). An order the warehouse no longer lets change (shipped, picked, a
        label bought, cancelled) raises PermanentError with the warehouse's words, so the engine
        alerts with what to change by hand; a timeout or 5xx raises Transient/InDoubtError.
        """

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

    async def register_webhooks(self, url: str, secret: str = "") -> list[str]:
        """Subscribe the warehouse's shipment webhooks to `url` (capability `webhooks`).

        Idempotent: missing subscriptions are created, existing ones left as they are. `secret`
        (32 base64 characters the connector generated with the URL's token and keeps beside
        it) is handed to a warehouse that signs its deliveries (or sends it back in a header).
        Returns one line per thing done or found, for a person to read."""

    async def webhook_urls(self) -> set[str]:
        """The URLs the warehouse's shipment webhooks are subscribed to (capability `webhooks`)."""

    def webhook_hints(self, body: Any) -> list[dict[str, Any]]:
        """What a delivery (its parsed JSON) says to look at: dicts with `topic`, and `id`
        (the warehouse's order or shipment id) and `reference` when it names them.

        Pure and tolerant: a body of any shape gives a (possibly empty) list, never an error.
        Never a source of data: the connector reads the shipment through the API."""

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str = "") -> bool:
        """Whether a delivery carries the warehouse's proof made with `secret` (a signature of
        the raw body, before any parsing, or the secret in a header). True for a warehouse that
        can carry neither: the secret path token alone authenticates it."""

    async def aclose(self) -> None: ...


class WarehouseAdapterBase:
    """The defaults of a warehouse adapter: the config validated, the context kept, and every
    optional part answered the way a warehouse without it must answer.

    Subclasses declare `name`, `Config` and `capabilities` and write `check`, `create_order`,
    `find_order` and `shipments_since`, plus what their capabilities claim.
    """

    name: ClassVar[str]
    Config: ClassVar[type[AdapterConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    problems: Sequence[DataProblem] = ()
    snapshot_at: datetime | None = None

    def __init__(self, config: AdapterConfig | dict[str, Any], context: AdapterContext):
        self.config: Any = config if isinstance(config, self.Config) else self.Config.model_validate(config)
        self.context = context

    async def already_there(self, reference: str) -> CreateResult | None:
        """The order the warehouse already has for `reference`, flagged `already_existed`; None
        when it has none. What a create asks first, or after a refusal that may mean "a repeat"."""
        found = await self.find_order(reference)  # type: ignore[attr-defined]
        return None if found is None else found.model_copy(update={"already_existed": True})

    async def accepted(self, reference: str) -> CreateResult:
        """The order a create was accepted for when the answer did not name it: looked up."""
        found = await self.find_order(reference)  # type: ignore[attr-defined]
        if found is None:
            raise PermanentError(f"{self.name} accepted {reference} but does not list it", vendor=self.name)
        return found

    async def create_request(self, order: WarehouseOrder) -> Any:
        """The connector's own form of the order, for adapters that do not show their vendor's."""
        return order.model_dump(mode="json")

    async def cancel_order(self, reference: str) -> CancelResult:
        """No cancel API here (yet): a person cancels the order in the warehouse's own screens."""
        return CancelResult(outcome=CancelOutcome.by_hand, reference=reference,
                            reason=f"the {self.name} adapter cannot cancel orders: cancel {reference} in {self.name} by hand")

    async def update_order(self, order: WarehouseOrder, warehouse_order_id: str, *, address: bool, lines: bool) -> str:
        """No update API here (capabilities `update_address` and `update_lines` off): the engine
        never calls this and alerts instead, naming what to change at the warehouse by hand."""
        raise NotImplementedError(f"{self.name} cannot update an order at the warehouse (capabilities `update_address` / `update_lines` are off)")

    async def known_skus(self) -> set[str] | None:
        return None  # no catalogue: unknown SKUs surface at the warehouse

    async def known_ship_methods(self) -> set[str] | None:
        return None

    async def acknowledge_shipments(self, shipments: list[Shipment]) -> None:
        """Nothing to tell the warehouse (capability `shipment_ack` off)."""
        return None

    async def stock_levels(self) -> list[StockLevel]:
        raise NotImplementedError(f"{self.name} reports no stock (capability `inventory` is off)")

    async def register_webhooks(self, url: str, secret: str = "") -> list[str]:
        raise NotImplementedError(f"{self.name} has no webhooks (capability `webhooks` is off): shipments are polled")

    async def webhook_urls(self) -> set[str]:
        return set()  # no webhooks: nothing is subscribed

    def webhook_hints(self, body: Any) -> list[dict[str, Any]]:
        return []  # nothing to look at but what the next poll finds

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str = "") -> bool:
        return True  # unsigned: the secret path token authenticates the delivery

    async def aclose(self) -> None:
        return None


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


class CartAdapter(Protocol):
    """The cart side (UltraCart's Fulfillment API for one merchant and distribution center)."""

    async def distribution_centers(self) -> list[DistributionCenter]: ...

    async def fetch_orders(self) -> list[dict[str, Any]]:
        """Up to 100 queued orders as raw JSON (the same ones until acknowledged)."""

    async def acknowledge(self, order_ids: list[str]) -> None: ...

    async def post_shipments(self, shipments: list[dict[str, Any]]) -> None: ...

    async def post_inventory(self, items: list[dict[str, Any]]) -> None: ...

    async def aclose(self) -> None: ...
