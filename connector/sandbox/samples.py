"""Realistic UltraCart order JSON for the sandbox, the demo and tests.

The shape follows what the Fulfillment API returns (fully expanded: billing, shipping, items with
Currency and Weight objects, summary, payment, coupons, gift, checkout, internal, customer
profile, taxes) and the quirks real payloads carry: `tracking_numbers: [""]`, mixed weight units,
kit parents followed by their components, date-times with an offset, masked card numbers.
Everything is deterministic: the same arguments (and seed) give the same JSON.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

EST = timezone(timedelta(hours=-5))  # UltraCart reports merchant times in US Eastern
DEFAULT_CREATED = datetime(2026, 3, 2, 10, 15, tzinfo=EST)
CENT = Decimal("0.01")


class Product(NamedTuple):
    """A catalog entry: what the store sells under a SKU."""

    description: str
    price: Decimal
    weight: tuple[float, str]  # (value, uom) in the unit the merchant entered
    barcode: str = ""


# Weights deliberately mix units, as real catalogs do. "Bone" is a legacy SKU the demo config
# aliases to BONE-5LB; its weight was entered in KG. Barcodes are 12-digit UPCs.
PRODUCTS: dict[str, Product] = {
    "BONE-5LB": Product("TJ's Doggie Bones (5 lbs.)", Decimal("20.00"), (5, "LB"), "078742226583"),
    "Bone": Product("TJ's DOGGIE BONES (5 lbs.)", Decimal("20.00"), (2.26796, "KG"), "078742226583"),
    "TREAT": Product("Peanut Butter Dog Treats (12 oz)", Decimal("6.50"), (12, "OZ"), "078742226590"),
    "LEASH-RED": Product("Nylon Leash 6 ft, Red", Decimal("14.95"), (0.3, "LB"), "078742226606"),
    "LEASH-BLUE": Product("Nylon Leash 6 ft, Blue", Decimal("14.95"), (0.3, "LB"), "078742226613"),
    "BOWL-L": Product("Stainless Steel Bowl, Large", Decimal("18.00"), (680, "G"), "078742226620"),
    "COLLAR-M": Product("Adjustable Collar, Medium", Decimal("12.00"), (4, "OZ"), "078742226637"),
    "GIFT-SET": Product("Doggie Gift Set (bones + treats)", Decimal("29.00"), (6.5, "LB"), "078742226644"),
}
GIFT_SET_COMPONENTS = {"BONE-5LB": 1, "TREAT": 2}
SHIP_METHODS = ("USPS: Priority Mail", "UPS: Ground", "FedEx: 2Day")
SHIPPING_RATES = {"USPS: Priority Mail": Decimal("7.95"), "UPS: Ground": Decimal("9.50"), "FedEx: 2Day": Decimal("18.00")}
REGULAR_SKUS = ("BONE-5LB", "TREAT", "LEASH-RED", "LEASH-BLUE", "BOWL-L", "COLLAR-M", "Bone")

# first, last, company, address1, address2, city, state, postal code, country, phone
CUSTOMERS = (
    ("Maria", "Alvarez", "", "4410 Laguna Park Dr", "", "Elk Grove", "CA", "95758", "US", "(916) 555-0142"),
    ("James", "O'Connor", "", "218 Beacon St", "Apt 3", "Boston", "MA", "02116", "US", "(617) 555-0199"),
    ("Priya", "Raman", "Raman Veterinary", "77 Commerce Way", "Suite 200", "Austin", "TX", "78701", "US", "(512) 555-0113"),
    ("Tom", "Becker", "", "1502 N Halsted St", "", "Chicago", "IL", "60642", "US", "(312) 555-0176"),
    ("Aiko", "Tanaka", "", "3921 SE Division St", "", "Portland", "OR", "97202", "US", "(503) 555-0120"),
    ("Dwayne", "Robinson", "", "88 Peachtree Cir NE", "", "Atlanta", "GA", "30309", "US", "(404) 555-0188"),
    ("Sofia", "Lindqvist", "Happy Paws Grooming", "12 Main St", "", "Burlington", "VT", "05401", "US", "(802) 555-0164"),
    ("Chloe", "Tremblay", "", "350 Spadina Ave", "Unit 12", "Toronto", "ON", "M5T 2G3", "CA", "+1 416 555 0137"),
)
CARDS = (("VISA", "1111"), ("MasterCard", "4444"), ("AMEX", "0005"), ("Discover", "1117"))


def _money(value: Decimal) -> dict[str, Any]:
    """UltraCart's Currency object."""
    value = value.quantize(CENT, ROUND_HALF_UP)
    return {"value": float(value), "localized": float(value), "localized_formatted": f"${value:,.2f}", "currency_code": "USD"}


def _dts(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=EST)).isoformat(timespec="seconds")


def _ounces(weight: tuple[float, str]) -> Decimal:
    factor = {"OZ": Decimal(1), "LB": Decimal(16), "KG": Decimal("35.27396"), "G": Decimal("0.03527396")}
    return Decimal(str(weight[0])) * factor[weight[1]]


def _product(sku: str) -> Product:
    return PRODUCTS.get(sku) or Product(f"{sku.title()} (uncatalogued)", Decimal("9.99"), (1, "LB"))


def _item(sku: str, quantity: float, index: int, dc: str, **extra: Any) -> dict[str, Any]:
    p = _product(sku)
    component = extra.get("kit_component", False)
    # Components are priced in their kit parent, so they carry a zero cost.
    price = Decimal(0) if component else p.price
    item = {
        "merchant_item_id": sku,
        "item_index": index,
        "item_reference_oid": 50786300 + zlib.crc32(sku.encode()) % 100000,
        "quantity": quantity,
        "description": p.description,
        "cost": _money(price),
        "discount": _money(Decimal(0)),
        "unit_cost_with_discount": _money(price),
        "total_cost_with_discount": _money(price * Decimal(str(quantity))),
        "weight": {"value": p.weight[0], "uom": p.weight[1]},
        "length": {"value": 10.0, "uom": "IN"},
        "width": {"value": 6.0, "uom": "IN"},
        "height": {"value": 2.0, "uom": "IN"},
        "barcode": p.barcode,
        "accounting_code": sku,
        "distribution_center_code": dc,
        "country_code_of_origin": "US",
        "options": [],
        "kit": False,
        "kit_component": False,
        "hazmat": False,
        "ship_separately": False,
        "free_shipping": False,
        "tax_free": False,
        "upsell": False,
    }
    item.update(extra)
    return item


def order_item(sku: str, quantity: float | None, index: int, dc: str = "DFLT", **extra: Any) -> dict[str, Any]:
    """One order line (OrderItem) as UltraCart sends it; `extra` fields override (e.g. kit flags)."""
    return _item(sku, quantity if quantity is not None else 0, index, dc, **extra) | (
        {"quantity": None} if quantity is None else {})


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge overrides into base; an override of None removes the key (e.g. `billing=None`)."""
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def make_order(
    order_id: str,
    *,
    items: Iterable[tuple] = (("BONE-5LB", 1),),
    ship_method: str = "USPS: Priority Mail",
    created: datetime | None = None,
    address: bool | Mapping[str, Any] = True,
    test_order: bool = False,
    kit: Mapping[str, Mapping[str, float]] | None = None,
    distribution_center: str = "DFLT",
    **overrides: Any,
) -> dict[str, Any]:
    """One UltraCart order as the Fulfillment API returns it.

    `items` are `(sku, qty)` or `(sku, qty, {extra item fields})`. `kit` maps a kit parent SKU to
    its components (`{"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}}`): one parent line with `kit: true`
    followed by component lines with `kit_component: true` and `parent_item_index`. `address=False`
    leaves the shipping block without a street, city, state or postal code; a mapping is merged
    into it. `overrides` are deep-merged into the order (None removes a key).
    """
    seed = zlib.crc32(order_id.encode())
    first, last, company, addr1, addr2, city, state, postal, country, phone = CUSTOMERS[seed % len(CUSTOMERS)]
    created = created or DEFAULT_CREATED
    email = f"{first}.{last}".lower().replace("'", "") + "@example.com"

    lines, index = [], 1
    for entry in items:
        sku, quantity, *extra = entry
        lines.append(_item(sku, quantity, index, distribution_center, **(extra[0] if extra else {})))
        index += 1
    for parent, components in (kit or {}).items():
        parent_index = index
        lines.append(_item(parent, 1, index, distribution_center, kit=True))
        index += 1
        for sku, quantity in components.items():
            lines.append(_item(sku, quantity, index, distribution_center, kit_component=True,
                               parent_item_index=parent_index, parent_merchant_item_id=parent))
            index += 1

    sold = [line for line in lines if not line["kit_component"]]
    subtotal = sum((_product(x["merchant_item_id"]).price * Decimal(str(x["quantity"])) for x in sold), Decimal(0))
    ounces = sum((_ounces(_product(x["merchant_item_id"]).weight) * Decimal(str(x["quantity"])) for x in sold), Decimal(0))
    shipping_cost = SHIPPING_RATES.get(ship_method, Decimal("12.00"))
    tax = (subtotal * Decimal("0.08")).quantize(CENT, ROUND_HALF_UP) if state == "CA" else Decimal(0)

    shipping: dict[str, Any] = {
        "first_name": first, "last_name": last, "company": company,
        "address1": addr1, "address2": addr2, "city": city, "state_region": state,
        "postal_code": postal, "country_code": country,
        "day_phone": phone, "ship_to_residential": not company, "lift_gate": False,
        "shipping_method": ship_method, "tracking_numbers": [""],
        "weight": {"value": float((ounces / 16).quantize(CENT, ROUND_HALF_UP)), "uom": "LB"},
    }
    if address is False:
        for key in ("address1", "address2", "city", "state_region", "postal_code"):
            shipping.pop(key)
    elif isinstance(address, Mapping):
        shipping.update(address)

    card_type, last4 = CARDS[seed % len(CARDS)]
    order: dict[str, Any] = {
        "merchant_id": order_id.split("-", 1)[0] if "-" in order_id else "DEMO",
        "order_id": order_id,
        "current_stage": "Shipping Department",
        "current_stage_histories": [
            {"before_stage": "Accounts Receivable", "after_stage": "Shipping Department",
             "transition_dts": _dts(created + timedelta(minutes=2))},
        ],
        "creation_dts": _dts(created),
        "language_iso_code": "ENG",
        "billing": {
            "first_name": first, "last_name": last, "company": company,
            "address1": addr1, "address2": addr2, "city": city, "state_region": state,
            "postal_code": postal, "country_code": country, "email": email, "day_phone": phone,
        },
        "shipping": shipping,
        "items": lines,
        "summary": {
            "subtotal": _money(subtotal),
            "subtotal_discount": _money(Decimal(0)),
            "taxable_subtotal": _money(subtotal if tax else Decimal(0)),
            "taxable_subtotal_discount": _money(Decimal(0)),
            "tax": _money(tax),
            "shipping_handling_total": _money(shipping_cost),
            "shipping_handling_total_discount": _money(Decimal(0)),
            "total": _money(subtotal + shipping_cost + tax),
        },
        "payment": {
            "payment_method": "Credit Card",
            "payment_status": "Processed",
            "payment_dts": _dts(created),
            "test_order": test_order,
            "hold_for_fraud_review": False,
            "credit_card": {
                "card_type": card_type,
                "card_number": "*" * (11 if card_type == "AMEX" else 12) + last4,
                "card_number_truncated": True,
                "card_expiration_month": 1 + seed % 12,
                "card_expiration_year": 2027 + seed % 4,
                "card_auth_ticket": f"{seed % 1000000:06d}",
            },
            "transactions": [
                {"transaction_gateway": "Authorize.Net", "transaction_timestamp": _dts(created), "successful": True,
                 "details": [{"name": "Authorization Code", "value": f"{seed % 1000000:06d}", "type": "AuthTicket"}]},
            ],
        },
        "coupons": [],
        "gift": {"gift": False},
        "checkout": {
            "customer_ip_address": f"203.0.113.{seed % 250 + 1}",
            "screen_branding_theme_code": "DFLT",
            "storefront_host_name": "demo.ultracartstore.com",
            "upsell_path_code": "DFLT",
        },
        "internal": {"exported_to_accounting": False},
        "taxes": {"tax_rate": 0.08 if tax else 0.0},
        "customer_profile": {"customer_profile_oid": 1900000 + seed % 100000, "email": email},
        "marketing": {"mailing_list": bool(seed % 2)},
    }
    return _merge(order, overrides)


def _coupon_extras(order: dict[str, Any], code: str) -> None:
    """Apply a 10% coupon: the code, and the discount in the summary."""
    summary = order["summary"]
    subtotal = Decimal(str(summary["subtotal"]["value"]))
    discount = (subtotal * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP)
    total = Decimal(str(summary["total"]["value"])) - discount
    order["coupons"] = [{"coupon_code": code, "base_coupon_code": "SAVE10", "automatically_applied": False}]
    summary["subtotal_discount"] = _money(discount)
    summary["total"] = _money(total)


SPECIALS = ("kit", "unmapped_method", "unknown_sku", "no_address", "test_order", "before_earliest")


def demo_orders(merchant_id: str = "DEMO", count: int = 50, seed: int = 7, *, distribution_center: str = "DFLT") -> list[dict[str, Any]]:
    """The demo merchant's queue: `count` orders, ids `{merchant_id}-0001`...

    Besides happy-path orders over three ship methods and the catalog SKUs (including the alias
    "Bone"), it holds exactly one each of: a GIFT-SET kit, an unmapped ship method
    ("Pigeon: Carrier Express"), an unknown SKU ("MYSTERY-SKU"), a ship-to without street and city,
    a test order, and an order created before 2026-01-01. Below 12 orders only happy-path orders
    are made, so small queues stay simple. Extras (gift messages, coupons, notes, item options,
    requested ship dates, PayPal payments) sit on fixed positions, so every seed has them.
    """
    rng = random.Random(seed)
    special_at = {}
    if count >= 2 * len(SPECIALS):
        special_at = {(k + 1) * count // (len(SPECIALS) + 1): kind for k, kind in enumerate(SPECIALS)}
    start = datetime(2026, 2, 2, 9, 0, tzinfo=EST)
    orders = []
    for i in range(1, count + 1):
        order_id = f"{merchant_id}-{i:04d}"
        created = start + timedelta(minutes=47 * i + rng.randint(0, 30))
        skus = rng.sample(REGULAR_SKUS, rng.choice((1, 1, 1, 2, 2, 3)))
        if "Bone" in skus and "BONE-5LB" in skus:
            skus.remove("Bone")  # one product under two names in one order would only confuse the demo
        items: list[tuple] = []
        for sku in skus:
            quantity = rng.choice((1, 1, 1, 2, 3))
            if sku == "COLLAR-M":
                items.append((sku, quantity, {"options": [{"label": "Engraving", "value": "REX", "hidden": False}]}))
            elif sku.startswith("LEASH"):
                items.append((sku, quantity, {"options": [{"label": "Length", "value": "6 ft", "hidden": False},
                                                          {"label": "Warehouse Note", "value": "bag separately", "hidden": True}]}))
            else:
                items.append((sku, quantity))
        kw: dict[str, Any] = {"items": items, "ship_method": rng.choice(SHIP_METHODS), "created": created}

        kind = special_at.get(i)
        if kind == "kit":
            kw["items"], kw["kit"] = [], {"GIFT-SET": GIFT_SET_COMPONENTS}
        elif kind == "unmapped_method":
            kw["ship_method"] = "Pigeon: Carrier Express"
        elif kind == "unknown_sku":
            kw["items"] = [("TREAT", 1), ("MYSTERY-SKU", 1)]
        elif kind == "no_address":
            kw["address"] = False
        elif kind == "test_order":
            kw["test_order"] = True
        elif kind == "before_earliest":
            kw["created"] = datetime(2025, 12, 18, 16, 40, tzinfo=EST)

        if i % 9 == 2 or kind == "kit":
            kw["gift"] = {"gift": True, "gift_message": "Happy birthday, Rex! Love, Grandma", "gift_email": ""}
        if i % 8 == 4:
            kw["shipping"] = {"special_instructions": "Leave at side door, dog in yard"}
        if i % 10 == 6:
            kw["checkout"] = {"comments": "Please no plastic packaging if possible."}
        if i % 12 == 5:
            kw["internal"] = {"merchant_notes": "Repeat customer - include a sample treat."}
        if i % 11 == 7:
            ship_on = (kw["created"] + timedelta(days=3)).replace(hour=0, minute=0, second=0)
            kw.setdefault("shipping", {})["ship_on_date"] = _dts(ship_on)
        if i % 5 == 0:
            kw["payment"] = {"payment_method": "PayPal", "credit_card": None, "transactions": []}
        order = make_order(order_id, distribution_center=distribution_center, **kw)
        if i % 7 == 3:
            _coupon_extras(order, f"SAVE10-{rng.randrange(16**4):04X}")
        orders.append(order)
    return orders


# ---------------------------------------------------------------------------------------------
# Item catalog and order history, for onboarding tests


def make_item(sku: str, *, description: str | None = None, kit: Mapping[str, float] | None = None,
              price: Decimal | None = None, inactive: bool = False, kit_component_only: bool = False,
              oid: int | None = None, merchant_id: str = "DEMO") -> dict[str, Any]:
    """One UltraCart Item as the Item API returns it with every expansion this sandbox knows.

    `kit` maps component SKUs to quantities: the item becomes a kit with a `kit_definition`.
    Catalog SKUs get their product's description, price, weight and barcode; others a made-up one.
    """
    p = _product(sku)
    oid = oid if oid is not None else 700000 + zlib.crc32(sku.encode()) % 200000
    components = [
        {"component_merchant_item_id": component, "component_merchant_item_oid": 700000 + zlib.crc32(component.encode()) % 200000,
         "component_description": _product(component).description, "component_cost": float(_product(component).price),
         "quantity": quantity}
        for component, quantity in (kit or {}).items()
    ]
    return {
        "merchant_id": merchant_id,
        "merchant_item_id": sku,
        "merchant_item_oid": oid,
        "description": description if description is not None else p.description,
        "kit": bool(kit),
        "kit_component_only": kit_component_only,
        "inactive": inactive,
        "parent_category_id": 0,
        "parent_category_path": "/",
        "creation_dts": _dts(datetime(2024, 5, 1, 9, 0) + timedelta(minutes=oid % 5000)),
        "last_modified_dts": _dts(datetime(2025, 11, 3, 14, 0)),
        # Expandable blocks: the sandbox strips the ones a request does not ask for.
        "kit_definition": {"components": components} if kit else {"components": []},
        "pricing": {"cost": float(price if price is not None else p.price)},
        "physical": {"weight": {"value": p.weight[0], "uom": p.weight[1]}},
        "identifiers": {"barcode": p.barcode},
    }


def make_catalog(skus: Iterable[str] | None = None, *, kits: Mapping[str, Mapping[str, float]] | None = None,
                 merchant_id: str = "DEMO") -> list[dict[str, Any]]:
    """A merchant's catalog: an item per SKU (default: the demo products) plus a kit item per `kits`
    entry (default: GIFT-SET). Spell SKUs as the test needs them: "bone-5lb", " TREAT", "00123"."""
    kits = {"GIFT-SET": GIFT_SET_COMPONENTS} if kits is None else kits
    names = [sku for sku in (PRODUCTS if skus is None else skus) if sku not in kits]
    return [make_item(sku, merchant_id=merchant_id) for sku in names] + [
        make_item(parent, kit=components, merchant_id=merchant_id) for parent, components in kits.items()]


def order_history(days: int = 30, per_day: int = 4, *, skus: Iterable[str] = REGULAR_SKUS,
                  ship_methods: Iterable[str] = SHIP_METHODS, kits: Mapping[str, Mapping[str, float]] | None = None,
                  lines: int = 1, quantity: float = 1, end: datetime | None = None, prefix: str = "HIST",
                  stage: str = "Completed Order", distribution_center: str = "DFLT") -> list[dict[str, Any]]:
    """`days` x `per_day` past orders, ids `{prefix}-00001`..., created in [end - days, end).

    Deterministic round robin, so a test knows the counts it plants: order k ships by
    `ship_methods[k % len]` and has `lines` lines with SKUs `skus[(k * lines + j) % len]`. A SKU
    that is a key of `kits` becomes a kit parent with its components. Completed orders carry a
    tracking number and a shipping date, as history does.
    """
    skus, methods = list(skus), list(ship_methods)
    if not skus or not methods:
        raise ValueError("order_history needs at least one SKU and one ship method")
    end = end or DEFAULT_CREATED
    kits = kits or {}
    orders = []
    for k in range(days * per_day):
        day, slot = divmod(k, per_day)
        created = end - timedelta(days=days - day) + timedelta(seconds=slot * 86400 // per_day)
        chosen = [skus[(k * lines + j) % len(skus)] for j in range(lines)]
        order_id = f"{prefix}-{k + 1:05d}"
        order = make_order(order_id, items=[(s, quantity) for s in chosen if s not in kits], ship_method=methods[k % len(methods)],
                           created=created, kit={s: kits[s] for s in chosen if s in kits} or None,
                           distribution_center=distribution_center)
        if stage != "Shipping Department":
            order["current_stage"] = stage
            order["current_stage_histories"].append({"before_stage": "Shipping Department", "after_stage": stage,
                                                     "transition_dts": _dts(created + timedelta(days=1))})
        if stage == "Completed Order":
            order["shipping"]["shipping_date"] = _dts(created + timedelta(days=1))
            order["shipping"]["tracking_numbers"] = [f"1Z{zlib.crc32(order_id.encode()):010d}"]
        orders.append(order)
    return orders


# Onboarding: a catalog and an order history with the mismatches that break go-lives, planted on
# purpose (the sandbox serves them; `connector onboard` must find each one). Against the demo
# warehouse (PRODUCTS above, methods Standard / Expedited / 2-Day) and the demo config:
#   - "treat " and "Leash Red": near matches of TREAT and LEASH-RED (proposed as aliases);
#   - "HARNESS-S": no warehouse SKU at all (orders for it hold);
#   - "PUPPY-KIT": a kit whose component TOY-ROPE the warehouse lacks;
#   - "OLD-COLLAR": retired (inactive), so not a mismatch;
#   - "USPS: Ground Advantage": a ship method the config does not map (proposed: Standard).
ONBOARDING_CATALOG_SKUS = ("BONE-5LB", "treat ", "Leash Red", "LEASH-BLUE", "BOWL-L", "COLLAR-M", "Bone", "HARNESS-S")
ONBOARDING_KITS = {"GIFT-SET": GIFT_SET_COMPONENTS, "PUPPY-KIT": {"BOWL-L": 1, "TOY-ROPE": 1}}
ONBOARDING_HISTORY_SKUS = ("BONE-5LB", "TREAT", "HARNESS-S", "Bone")
ONBOARDING_METHODS = ("UPS: Ground", "USPS: Ground Advantage", "FedEx: 2Day")


def onboarding_catalog(merchant_id: str = "DEMO") -> list[dict[str, Any]]:
    return make_catalog(ONBOARDING_CATALOG_SKUS, kits=ONBOARDING_KITS, merchant_id=merchant_id) + [
        make_item("OLD-COLLAR", inactive=True, merchant_id=merchant_id)]


def onboarding_history(end: datetime, days: int = 10, per_day: int = 3) -> list[dict[str, Any]]:
    """Order k (0-based) ships by ONBOARDING_METHODS[k % 3] and holds ONBOARDING_HISTORY_SKUS[k % 4]."""
    return order_history(days, per_day, skus=ONBOARDING_HISTORY_SKUS, ship_methods=ONBOARDING_METHODS, end=end)
