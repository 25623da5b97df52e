"""ShipStation API v2 JSON <-> domain records, as pure functions (the adapter does the I/O).

Shapes follow the official v2 document (`../shared/specs/shipstation-v2-openapi.yaml`):
`create_shipment_request` out; `shipment`, `label`, `carrier` and the `/v2/inventory` rows in.
v2 vocabulary: v1's *order* is a v2 **shipment** (our reference is its `external_shipment_id`),
v1's *shipment* is a v2 **label** (it carries the tracking number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters import kit
from adapters.kit import parse_time
from connector.domain import Order, Shipment, ShipmentLine, StockLevel, WarehouseOrder

MAX_EXTERNAL_ID = 50  # ShipStation silently truncates longer `external_shipment_id`s
SERVICE_CODE = re.compile(r"^[a-z0-9]+(_[a-z0-9-]+)*$")  # the spec's `service_code` pattern
LIVE_LABEL = "completed"
CANCELLED_SHIPMENT = "cancelled"  # shipment_status: will not ship
LABELLED_SHIPMENT = "label_purchased"  # shipment_status: too late to cancel until the label is voided
VOID_FIRST = "any label associated with the shipment needs to be voided first"  # the v2 document's words
VOIDED_LABEL = "voided"
# The spec gives package weights `exclusiveMinimum: 1`; lighter orders are left for the packer to
# weigh (ShipStation weighs at label time anyway) rather than sent as an invalid package.
MIN_PACKAGE_OUNCES = Decimal(1)


class MissingShipTo(ValueError):
    """The order lacks an address field ShipStation v2 requires (`address` schema)."""


# -- ship methods -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One service of one connected carrier account: what a ship-method mapping resolves to."""

    carrier_id: str
    service_code: str
    carrier_name: str = ""
    primary: bool = False


class ServiceCatalog:
    """The account's carrier services (`GET /v2/carriers`), by the names a mapping may use.

    A `[merchants.ship_methods]` value is a `service_code` (`usps_priority_mail`) or a carrier
    account and a service (`se-123456:usps_priority_mail`). A bare code offered by several
    carrier accounts resolves to the account ShipStation marks `primary`, else the first listed;
    qualify it to choose another.
    """

    def __init__(self, carriers: Iterable[dict[str, Any]]):
        self.carriers: list[dict[str, Any]] = []
        self.services: list[Service] = []
        for carrier in carriers:
            cid = str(carrier.get("carrier_id") or "").strip()
            if not cid or carrier.get("disabled_by_billing_plan"):
                continue  # ShipStation refuses labels on a carrier the plan disables
            self.carriers.append(carrier)
            name = (carrier.get("friendly_name") or carrier.get("nickname") or carrier.get("carrier_code") or cid).strip()
            for service in carrier.get("services") or []:
                code = str(service.get("service_code") or "").strip()
                if code:
                    self.services.append(Service(cid, code, name, bool(carrier.get("primary"))))

    def names(self) -> set[str]:
        return {s.service_code for s in self.services} | {f"{s.carrier_id}:{s.service_code}" for s in self.services}

    def resolve(self, method: str) -> Service | None:
        carrier, _, code = method.strip().rpartition(":")
        matches = [s for s in self.services if s.service_code == code.strip() and (not carrier or s.carrier_id == carrier.strip())]
        # sorted() is stable: among equals the listing order wins.
        return sorted(matches, key=lambda s: not s.primary)[0] if matches else None

    def describe(self) -> str:
        names = sorted({(c.get("friendly_name") or c.get("carrier_code") or c["carrier_id"]).strip() for c in self.carriers})
        return f"{len(self.carriers)} carrier account(s)" + (f" ({', '.join(names)})" if names else "")


# -- create -----------------------------------------------------------------------------------


def _money(amount: Decimal | None, currency: str) -> dict[str, Any] | None:
    if amount is None or amount < 0:
        return None
    return {"currency": (currency or "USD").strip().lower(), "amount": float(amount)}


def ship_to(cart: Order, default_phone: str = "") -> dict[str, Any]:
    """The `shipping_address_to`. The spec's `address` requires name, phone, street, city,
    state, postal code, country and the residential indicator, so every one is filled or the
    order is refused here with the missing field named (rather than by a 400 later)."""
    to = cart.ship_to
    address: dict[str, Any] = {
        "name": (to.name or to.company).strip(),
        "phone": (to.phone or cart.phone or cart.bill_to.phone or default_phone).strip(),
        "address_line1": to.address1.strip(),
        "city_locality": to.city.strip(),
        "state_province": to.state.strip(),
        "postal_code": to.postal_code.strip(),
        "country_code": to.country_code.strip().upper(),
        "address_residential_indicator": {True: "yes", False: "no"}.get(to.residential, "unknown"),  # type: ignore[arg-type]
    }
    missing = [k for k, v in address.items() if not v]
    if len(address["country_code"]) != 2:
        missing.append("country_code (two letters)")
    if missing:
        hint = " (set default_phone in [merchants.warehouse] to use a fallback)" if "phone" in missing else ""
        raise MissingShipTo(f"ShipStation v2 requires ship_to {', '.join(dict.fromkeys(missing))}; the order has none{hint}")
    for key, value in (("company_name", to.company), ("address_line2", to.address2), ("email", to.email or cart.email),
                       ("instructions", cart.special_instructions)):
        if value.strip():
            address[key] = value.strip()
    return address


def items(order: WarehouseOrder) -> list[dict[str, Any]]:
    """`shipment_item`s, one per warehouse SKU (`kit.merged_lines`), as the packer sees them."""
    out = []
    for line, quantity in kit.merged_lines(order):
        item: dict[str, Any] = {"sku": line.sku, "name": line.description.strip() or line.sku, "quantity": quantity}
        if line.unit_price is not None and line.unit_price >= 0:
            item["unit_price"] = float(line.unit_price)
        out.append(item)
    return out


def shipment_body(
    order: WarehouseOrder,
    *,
    service: Service | None,
    ship_from: dict[str, Any] | None,
    store_id: str = "",
    validate_address: str = "no_validation",
    default_phone: str = "",
) -> dict[str, Any]:
    """One `create_shipment_request`: a pending shipment (ShipStation's "order awaiting
    shipment") keyed by our reference. Raises MissingShipTo for an address ShipStation refuses."""
    if not order.reference or len(order.reference) > MAX_EXTERNAL_ID:
        # Never let ShipStation truncate it: two orders would share one key.
        raise ValueError(f"reference {order.reference!r} is not 1-{MAX_EXTERNAL_ID} characters")
    cart = order.order
    body: dict[str, Any] = {
        "external_shipment_id": order.reference,
        "validate_address": validate_address,
        "shipment_status": "pending",
        "ship_to": ship_to(cart, default_phone),
        "items": items(order),
    }
    if service is not None:
        body["carrier_id"] = service.carrier_id
        body["service_code"] = service.service_code
    if ship_from:
        body["ship_from"] = ship_from
    if store_id:
        body["store_id"] = store_id
    if cart.gift:
        body["is_gift"] = True
    if cart.gift_message.strip():
        body["notes_for_gift"] = cart.gift_message.strip()
    if cart.customer_notes.strip():
        body["notes_from_buyer"] = cart.customer_notes.strip()
    for key, amount in (("amount_paid", cart.total), ("shipping_paid", cart.shipping_total), ("tax_paid", cart.tax)):
        money = _money(amount, cart.currency)
        if money is not None:
            body[key] = money
    if cart.weight is not None and cart.weight.ounces > MIN_PACKAGE_OUNCES:
        body["packages"] = [{"weight": {"value": float(round(cart.weight.ounces, 2)), "unit": "ounce"}}]
    return body


# What an update sends back of the shipment ShipStation holds (`PUT /v2/shipments/{id}` takes the
# shipment's writable fields): the fields a packer or a rule may have changed, so an update wipes
# none of them. Read-only ones (ids, dates, status, total weight) and tags (their own endpoints)
# are left out.
UPDATE_FIELDS = (
    "carrier_id", "service_code", "requested_shipment_service", "external_shipment_id", "external_order_id",
    "hold_until_date", "ship_by_date", "store_id", "ship_to", "ship_from", "warehouse_id", "return_to", "confirmation",
    "customs", "advanced_options", "insurance_provider", "packages", "items", "notes_from_buyer", "notes_for_gift", "is_gift",
    "amount_paid", "shipping_paid", "tax_paid", "ship_date", "is_return", "order_source_code",
)
PENDING_SHIPMENT = "pending"  # no label yet: the only status an update may touch


def update_body(shipment: dict[str, Any], order: WarehouseOrder, *, address: bool, lines: bool, validate_address: str = "no_validation",
                default_phone: str = "") -> dict[str, Any]:
    """The `PUT /v2/shipments/{id}` body: the shipment as ShipStation holds it (its writable
    fields, unset ones omitted), with `order`'s ship-to address when `address` and its items when
    `lines`. An item already there under the same SKU keeps what ShipStation added to it; name,
    quantity and price are the order's. Raises MissingShipTo for an address ShipStation refuses."""
    body: dict[str, Any] = {k: shipment[k] for k in UPDATE_FIELDS if shipment.get(k) is not None}
    body["shipment_id"] = shipment["shipment_id"]  # the document's update shape names the shipment in the body too
    for key in ("carrier_id", "service_code"):  # required there: null when the packer chooses
        body.setdefault(key, None)
    body["validate_address"] = validate_address
    if address:
        body["ship_to"] = ship_to(order.order, default_phone)
    if lines:
        before = {str(i.get("sku") or ""): i for i in shipment.get("items") or [] if isinstance(i, dict)}
        body["items"] = [{**before.get(item["sku"], {}), **item} for item in items(order)]
    return body


def address_matches(sent: dict[str, Any], held: Any) -> bool:
    """Whether ShipStation's copy of an address has what was sent (validation may add to it)."""
    if not isinstance(held, dict):
        return False
    fields = ("name", "address_line1", "address_line2", "city_locality", "state_province", "postal_code", "country_code")
    return all(str(sent.get(f) or "").casefold() == str(held.get(f) or "").casefold() for f in fields)


def item_quantities(listed: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in listed or []:
        if isinstance(item, dict):
            sku = str(item.get("sku") or "")
            out[sku] = out.get(sku, 0) + int(item.get("quantity") or 0)
    return out


# The address fields a `shipping_address` may carry (the spec's `address` plus `instructions`);
# a warehouse's `origin_address` is copied through this list so response-only fields stay out.
ADDRESS_FIELDS = (
    "name", "phone", "email", "company_name", "address_line1", "address_line2", "address_line3", "city_locality",
    "state_province", "postal_code", "country_code", "address_residential_indicator", "instructions",
)


def ship_from_of(warehouse: dict[str, Any]) -> dict[str, Any]:
    """A `GET /v2/warehouses/{id}` answer -> the `ship_from` of our creates."""
    origin = warehouse.get("origin_address") or {}
    return {k: origin[k] for k in ADDRESS_FIELDS if origin.get(k) not in (None, "")}


def created_result(body: Any) -> tuple[str, list[str]]:
    """The `create_shipments_response_body` of a one-shipment batch -> (shipment_id, errors)."""
    shipments = body.get("shipments") if isinstance(body, dict) else None
    if not shipments:
        return "", ["ShipStation answered without a shipment"]
    first = shipments[0] or {}
    errors = [str(e).strip() for e in first.get("errors") or [] if str(e).strip()]
    if body.get("has_errors") and not errors:
        errors = ["ShipStation reported errors for the shipment"]
    return str(first.get("shipment_id") or ""), errors


# -- labels -> shipments ----------------------------------------------------------------------


def tracking_numbers(label: dict[str, Any]) -> list[str]:
    """The label's tracking number and its packages' (multi-package labels)."""
    return kit.tracking_numbers(label.get("tracking_number"), *(p.get("tracking_number") for p in label.get("packages") or []), separators="")


def lines_of(shipment: dict[str, Any]) -> list[ShipmentLine]:
    return kit.shipment_lines((item.get("sku"), item.get("quantity")) for item in shipment.get("items") or [])


def _amount(value: Any) -> Decimal:
    if isinstance(value, dict) and value.get("amount") is not None:
        return Decimal(str(value["amount"]))
    return Decimal(0)


def shipment_of(label: dict[str, Any], *, reference: str, order_id: str, lines: list[ShipmentLine]) -> Shipment:
    """One label -> one domain Shipment (keyed by `label_id`, so a voided label and the label
    that replaced it are two records). A voided label ships nothing: it has no lines."""
    voided = label.get("status") == VOIDED_LABEL or bool(label.get("voided"))
    return Shipment(
        shipment_id=str(label["label_id"]),
        reference=reference,
        warehouse_order_id=order_id,
        carrier=(label.get("carrier_code") or "").strip(),
        service=(label.get("service_code") or "").strip(),
        tracking_numbers=tracking_numbers(label),
        shipped_at=parse_time(label.get("ship_date")) or parse_time(label.get("created_at")),
        lines=[] if voided else lines,
        # What the label cost the account: postage plus any insurance bought with it.
        shipping_cost=_amount(label.get("shipment_cost")) + _amount(label.get("insurance_cost")),
        voided=voided,
    )


def wanted_label(label: dict[str, Any]) -> bool:
    """Outbound labels that were bought (live) or bought and voided; `processing` and `error`
    labels have no parcel yet, return labels come back to the warehouse."""
    return bool(label.get("label_id")) and not label.get("is_return_label") and label.get("status") in (LIVE_LABEL, VOIDED_LABEL)


def product_skus(product: dict[str, Any]) -> set[str]:
    """A `/v2/products` entry's SKU and its SKU aliases (ShipStation maps an alias to the product)."""
    skus = {product.get("sku")} | {a.get("sku_alias") for a in product.get("aliases") or [] if isinstance(a, dict)}
    return {s.strip() for s in skus if isinstance(s, str) and s.strip()}


# -- stock ------------------------------------------------------------------------------------


def stock_levels_of(rows: Iterable[dict[str, Any]]) -> list[StockLevel]:
    """`/v2/inventory` rows (grouped by warehouse) -> a StockLevel per SKU and inventory
    warehouse. `available` is ShipStation's on hand minus allocated, never on hand; rows of the
    same SKU and warehouse (several locations) are summed."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        sku = (row.get("sku") or "").strip()
        warehouse = str(row.get("inventory_warehouse_id") or "").strip()
        if not sku or not warehouse:
            continue
        on_hand, available = totals.setdefault((sku, warehouse), [0, 0])
        totals[(sku, warehouse)] = [on_hand + int(row.get("on_hand") or 0), available + int(row.get("available") or 0)]
    return [StockLevel(sku=s, warehouse_id=w, on_hand=max(0, q[0]), available=max(0, q[1])) for (s, w), q in totals.items()]


# -- errors -----------------------------------------------------------------------------------


def error_text(body: Any) -> str:
    """ShipStation's readable message from an `error_response_body` (`errors[].message` with the
    `error_code`, and the `request_id` support asks for), a `{"message"}` or a bare string."""
    if not isinstance(body, dict):
        return kit.error_text(body)
    errors = [(str(e.get("message") or "").strip() or "error") + (f" [{e['error_code']}]" if e.get("error_code") else "")
              if isinstance(e, dict) else e for e in body.get("errors") or []]
    text = kit.error_text({"errors": errors} if errors else body, messages=("errors",) if errors else ("message",))
    return text + (f" (request id {body['request_id']})" if body.get("request_id") else "")


# -- webhooks ---------------------------------------------------------------------------------

# `webhook_event`s that mean labels were bought: `track` (a label's tracking events, the first
# when it is created) and `batch` (a batch of labels processed). Each starts a labels read.
WEBHOOK_EVENTS = ("track", "batch")
# A custom header (`webhook_header`) ShipStation sends with every delivery of our subscriptions,
# carrying the secret the connector made beside the URL's token: a leaked URL alone is not enough.
SECRET_HEADER = "X-Connector-Webhook-Secret"
_RESOURCE_ID = re.compile(r"/v2/(labels|batches)/([A-Za-z0-9_-]{1,64})(?:/|$)")


def webhook_hints(body: Any) -> list[dict[str, Any]]:
    """What a delivery (`{resource_url, resource_type, data}`) is about: the label (or batch) id
    read from `resource_url` and, for a track event, the tracking number. The URL is never
    fetched: it came from an unauthenticated body; the labels read uses our own base URL."""
    if not isinstance(body, dict):
        return []
    rtype = body.get("resource_type")
    hint: dict[str, Any] = {"topic": rtype.strip().lower()[:64] if isinstance(rtype, str) else ""}
    url = body.get("resource_url")
    found = _RESOURCE_ID.search(url) if isinstance(url, str) else None
    if found:
        hint["label_id" if found.group(1) == "labels" else "batch_id"] = found.group(2)
        hint["id"] = found.group(2)
    data = body.get("data")
    number = data.get("tracking_number") if isinstance(data, dict) else None
    if isinstance(number, str) and number.strip():
        hint["tracking_number"] = number.strip()[:64]
    return [hint] if len(hint) > 1 else []
