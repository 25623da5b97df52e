"""The canonical records every part of the connector speaks: orders, shipments, stock.

Adapters translate vendor JSON into these models and back; mappings transform them; the store
keeps them as JSON. They carry no behaviour beyond small derived properties, so that a change in
one vendor's API never ripples past its adapter.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class OrderState(StrEnum):
    """Where an order is in its life (DESIGN section 3). A comment per state says who moves it on."""

    received = "received"  # stored (and acknowledged or about to be); rules not yet applied
    held = "held"  # a rule stopped it (reason kept); released automatically when fixed, or by operator
    skipped = "skipped"  # terminal: never sent (date filter, test order); still acknowledged
    ready = "ready"  # mapped and allowed; waiting for delivery (maybe after next_attempt_at)
    submitting = "submitting"  # claimed by a worker; the warehouse call is (or was) under way
    in_doubt = "in_doubt"  # the create may or may not have happened: look the reference up first
    at_warehouse = "at_warehouse"  # created at the warehouse exactly once
    partially_shipped = "partially_shipped"  # some lines have shipments
    shipped = "shipped"  # every line shipped; tracking not yet confirmed by UltraCart
    confirmed = "confirmed"  # terminal: UltraCart accepted the tracking
    failed = "failed"  # attempts exhausted or permanent error; listed for the operator
    cancelling = "cancelling"  # the cart cancelled it; cancel requested at the warehouse
    cancelled = "cancelled"  # terminal
    cancel_failed = "cancel_failed"  # the warehouse refused the cancel; an operator must act


TERMINAL_STATES = frozenset({OrderState.skipped, OrderState.confirmed, OrderState.cancelled})


class Address(_Model):
    """A postal address with the contact details a warehouse prints on the label."""

    first_name: str = ""
    last_name: str = ""
    company: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country_code: str = ""
    phone: str = ""
    email: str = ""
    residential: bool | None = None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p).strip()

    def is_complete(self) -> bool:
        """True when a carrier could deliver to it: a street, a city, a country and a name."""
        return bool(
            self.address1.strip()
            and self.city.strip()
            and self.country_code.strip()
            and (self.name or self.company.strip())
        )


class Weight(_Model):
    """A weight as the cart sent it; `ounces` normalises the mixed units real orders carry."""

    value: Decimal = Decimal(0)
    uom: str = "LB"

    @property
    def ounces(self) -> Decimal:
        factor = {"OZ": Decimal(1), "LB": Decimal(16), "KG": Decimal("35.27396195"), "G": Decimal("0.03527396195")}
        return self.value * factor.get(self.uom.upper(), Decimal(16))


class ItemOption(_Model):
    label: str = ""
    value: str = ""
    hidden: bool = False


class OrderLine(_Model):
    """One line of an order as the cart sold it (before SKU mapping)."""

    line_no: int = 0  # the cart's item_index (may be 0)
    sku: str
    quantity: Decimal | None = Decimal(1)  # None: the cart sent null or nothing (the order is held, never guessed)
    quantity_refunded: Decimal = Decimal(0)  # units refunded in the cart after the order was placed
    description: str = ""
    unit_price: Decimal | None = None
    weight: Weight | None = None
    options: list[ItemOption] = Field(default_factory=list)
    barcode: str = ""
    kit: bool = False  # a kit parent: its components follow as their own lines
    kit_component: bool = False
    parent_line_no: int | None = None
    parent_sku: str = ""
    distribution_center: str = ""


class Coupon(_Model):
    code: str
    base_code: str = ""


class Order(_Model):
    """An order as received from the cart, normalised and tolerant of missing blocks.

    Keeps what a warehouse or shipping tool needs to fulfil it and what ShipStation's UltraCart
    import keeps (contact, method, payment method, coupons, gift, notes, weights, dates).
    """

    order_id: str
    merchant_id: str = ""
    stage: str = ""
    created_at: datetime | None = None
    currency: str = "USD"
    ship_to: Address = Field(default_factory=Address)
    bill_to: Address = Field(default_factory=Address)
    email: str = ""
    phone: str = ""
    ship_method: str = ""
    payment_method: str = ""
    payment_status: str = ""
    test_order: bool = False
    coupons: list[Coupon] = Field(default_factory=list)
    discount: Decimal = Decimal(0)
    subtotal: Decimal | None = None
    shipping_total: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    gift: bool = False
    gift_message: str = ""
    internal_notes: str = ""
    customer_notes: str = ""
    special_instructions: str = ""
    requested_ship_date: date | None = None
    weight: Weight | None = None
    lines: list[OrderLine] = Field(default_factory=list)
    # What the cart says changed after the order was placed (read from webhooks and re-reads).
    rejected_at: datetime | None = None
    reject_reason: str = ""
    refunded_at: datetime | None = None
    refund_reason: str = ""
    on_hold: bool = False  # the cart holds it for review (UltraCart fulfillment_hold / stage "Hold")
    tracking_numbers: list[str] = Field(default_factory=list)  # tracking the cart already has for it


class WarehouseLine(_Model):
    """A line as the warehouse should pick it: a warehouse SKU and a whole quantity."""

    sku: str
    quantity: int
    description: str = ""
    unit_price: Decimal | None = None
    cart_sku: str = ""  # the SKU the customer bought (a kit parent, or an alias)


class WarehouseOrder(_Model):
    """What a warehouse adapter is asked to create: the mapped order plus its reference."""

    reference: str  # deterministic, <= 50 characters: `{merchant}-{order_id}`
    order: Order
    ship_method: str  # the warehouse's method name after mapping
    lines: list[WarehouseLine]


class CreateResult(_Model):
    """The warehouse's answer to a create (or to a lookup by reference)."""

    warehouse_order_id: str
    reference: str
    already_existed: bool = False  # the warehouse had it: a repeat absorbed, not a new order
    status: str = ""  # on a lookup, the warehouse's own status word when it gives one ("cancelled", ...)
    cancelled: bool = False  # on a lookup: the warehouse says the order is cancelled


class CancelOutcome(StrEnum):
    """What a warehouse said to a cancel request."""

    cancelled = "cancelled"  # it will not ship (or was already cancelled: cancels are idempotent)
    too_late = "too_late"  # picked, packed or shipped: `reason` holds the warehouse's words
    unknown = "unknown"  # no answer we can trust: look the order up before anything else
    by_hand = "by_hand"  # the warehouse has no cancel API: a person must cancel it there


class CancelResult(_Model):
    """The warehouse's answer to `cancel_order(reference)`."""

    outcome: CancelOutcome
    reference: str
    warehouse_order_id: str = ""
    reason: str = ""  # the warehouse's own words (why too late, what to do by hand)


class ShipmentLine(_Model):
    sku: str
    quantity: int


class Shipment(_Model):
    """A shipment read from the warehouse, keyed by its warehouse shipment id."""

    shipment_id: str
    reference: str  # our order reference, `{merchant}-{order_id}`
    warehouse_order_id: str = ""
    carrier: str = ""
    service: str = ""
    tracking_numbers: list[str] = Field(default_factory=list)
    shipped_at: datetime | None = None
    lines: list[ShipmentLine] = Field(default_factory=list)
    shipping_cost: Decimal = Decimal(0)
    fulfillment_fee: Decimal = Decimal(0)
    package_cost: Decimal = Decimal(0)
    voided: bool = False


class StockLevel(_Model):
    """Stock of one warehouse SKU in one warehouse (fulfillment center)."""

    sku: str
    warehouse_id: str
    on_hand: int = 0
    available: int = 0  # what can be promised: fulfillable, never on-hand


class DistributionCenter(_Model):
    code: str
    name: str = ""
