"""UltraCart Order JSON -> `connector.domain.Order`, and webhook bodies -> (event, order) pairs.

The parser is tolerant on purpose: UltraCart adds stages and payment methods over time, real
payloads mix weight units, carry `tracking_numbers: [""]`, zero-based `item_index` and fractional
quantities, and any expansion block may be missing. Unknown values are kept as strings and
missing blocks become empty defaults. A line's missing or null quantity stays None (never a
guessed 1): the rules hold such an order. Only what makes an order unusable raises
`OrderParseError`: no order id, or a field whose type cannot mean anything (items as a string,
quantity "abc", a number JSON overflowed to infinity).

What the merchant changed after hand-off is read too: `reject_dts`/`reject_reason`,
`refund_dts`/`refund_reason`, each item's `quantity_refunded`, and the stage "Hold".
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.domain import Address, Coupon, ItemOption, Order, OrderLine, Weight


HOLD_STAGE = "Hold"  # UltraCart's current_stage while an order is held (matched case-insensitively)


class OrderParseError(ValueError):
    """An UltraCart order that cannot be turned into a domain Order; the message names the field."""


class WebhookParseError(ValueError):
    """A webhook body that is not a list of `{"<event_name>": {...}}` events."""


# ---------------------------------------------------------------------------------------------
# Field readers. Each takes the JSON path for its error message.


def _fail(order_id: str, path: str, problem: str) -> OrderParseError:
    where = f"order {order_id}: " if order_id else "order: "
    return OrderParseError(f"{where}{path} {problem}")


class _Reader:
    """Reads typed fields out of one raw order, naming the offending path on failure."""

    def __init__(self, order_id: str):
        self.order_id = order_id

    def block(self, parent: dict, key: str, path: str) -> dict:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _fail(self.order_id, path, f"must be an object, got {type(value).__name__}")
        return value

    def text(self, parent: dict, key: str, path: str) -> str:
        value = parent.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value.strip()
        # Numbers turn up where strings are documented (postal codes, phone numbers): keep them.
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return str(value)
        raise _fail(self.order_id, path, f"must be a string, got {type(value).__name__}")

    def decimal(self, value: Any, path: str) -> Decimal | None:
        if isinstance(value, dict):  # a Currency object: {value, localized, ...}
            value, path = value.get("value"), path + ".value"
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise _fail(self.order_id, path, f"must be a number, got {value!r}")
        try:
            # Integers exactly, whatever their size; floats through str() so 2.96 stays 2.96
            # instead of the float's binary expansion.
            result = Decimal(value) if isinstance(value, int) else Decimal(str(value).strip())
        except (InvalidOperation, ValueError, TypeError):
            raise _fail(self.order_id, path, f"must be a number, got {value!r}") from None
        if not result.is_finite():
            raise _fail(self.order_id, path, f"must be a finite number, got {value!r}")
        return result

    def integer(self, value: Any, path: str) -> int | None:
        number = self.decimal(value, path)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise _fail(self.order_id, path, f"must be a whole number, got {value!r}")
        return int(number)

    def flag(self, value: Any, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0", ""):
            return value.strip().lower() in ("true", "yes", "1")
        raise _fail(self.order_id, path, f"must be true or false, got {value!r}")

    def datetime_(self, value: Any, path: str) -> datetime | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _fail(self.order_id, path, f"must be a date-time string, got {type(value).__name__}")
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            # An unreadable date must not stop the order; the rules treat "unknown" explicitly.
            return None

    def date_(self, value: Any, path: str) -> date | None:
        moment = self.datetime_(value, path)
        # UltraCart sends ship_on_date as midnight in the merchant's zone ("2023-05-17T00:00:00-04:00"):
        # the local calendar date is the one the customer picked; converting to UTC would shift it.
        return moment.date() if moment else None

    def weight(self, value: Any, path: str) -> Weight | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _fail(self.order_id, path, f"must be a Weight object, got {type(value).__name__}")
        amount = self.decimal(value.get("value"), path + ".value")
        if amount is None:
            return None
        uom = self.text(value, "uom", path + ".uom").upper() or "LB"
        return Weight(value=amount, uom=uom)

    def items(self, parent: dict, key: str, path: str) -> list:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _fail(self.order_id, path, f"must be an array, got {type(value).__name__}")
        return value


# ---------------------------------------------------------------------------------------------


def _address(r: _Reader, block: dict, path: str) -> Address:
    def t(key: str) -> str:
        return r.text(block, key, f"{path}.{key}")

    return Address(
        first_name=t("first_name"),
        last_name=t("last_name"),
        company=t("company"),
        address1=t("address1"),
        address2=t("address2"),
        city=t("city"),
        state=t("state_region"),
        postal_code=t("postal_code"),
        country_code=t("country_code").upper(),
        phone=t("day_phone") or t("evening_phone"),
        email=t("email"),
        residential=r.flag(block.get("ship_to_residential"), f"{path}.ship_to_residential"),
    )


def _line(r: _Reader, raw: Any, path: str) -> OrderLine:
    if not isinstance(raw, dict):
        raise _fail(r.order_id, path, f"must be an object, got {type(raw).__name__}")
    options = []
    for i, opt in enumerate(r.items(raw, "options", f"{path}.options")):
        opath = f"{path}.options[{i}]"
        if not isinstance(opt, dict):
            raise _fail(r.order_id, opath, f"must be an object, got {type(opt).__name__}")
        options.append(
            ItemOption(
                label=r.text(opt, "label", opath + ".label"),
                value=r.text(opt, "value", opath + ".value"),
                hidden=bool(r.flag(opt.get("hidden"), opath + ".hidden")),
            )
        )
    return OrderLine(
        line_no=r.integer(raw.get("item_index"), f"{path}.item_index") or 0,
        sku=r.text(raw, "merchant_item_id", f"{path}.merchant_item_id"),
        quantity=r.decimal(raw.get("quantity"), f"{path}.quantity"),
        quantity_refunded=r.decimal(raw.get("quantity_refunded"), f"{path}.quantity_refunded") or Decimal(0),
        description=r.text(raw, "description", f"{path}.description"),
        unit_price=r.decimal(raw.get("cost"), f"{path}.cost"),
        weight=r.weight(raw.get("weight"), f"{path}.weight"),
        options=options,
        barcode=r.text(raw, "barcode", f"{path}.barcode"),
        kit=bool(r.flag(raw.get("kit"), f"{path}.kit")),
        kit_component=bool(r.flag(raw.get("kit_component"), f"{path}.kit_component")),
        parent_line_no=r.integer(raw.get("parent_item_index"), f"{path}.parent_item_index"),
        parent_sku=r.text(raw, "parent_merchant_item_id", f"{path}.parent_merchant_item_id"),
        distribution_center=r.text(raw, "distribution_center_code", f"{path}.distribution_center_code"),
    )


def _order_id(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise OrderParseError(f"order must be a JSON object, got {type(raw).__name__}")
    value = raw.get("order_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise OrderParseError(f"order_id is missing or blank (got {value!r})")
    return value.strip()


def parse_order(raw: dict) -> Order:
    """Turn one UltraCart Order JSON object into a domain Order (see the module docstring)."""
    order_id = _order_id(raw)
    r = _Reader(order_id)
    billing = r.block(raw, "billing", "billing")
    shipping = r.block(raw, "shipping", "shipping")
    summary = r.block(raw, "summary", "summary")
    payment = r.block(raw, "payment", "payment")
    gift = r.block(raw, "gift", "gift")
    checkout = r.block(raw, "checkout", "checkout")
    internal = r.block(raw, "internal", "internal")
    profile = r.block(raw, "customer_profile", "customer_profile")

    def money(key: str) -> Decimal | None:
        return r.decimal(summary.get(key), f"summary.{key}")

    email = r.text(billing, "email", "billing.email") or r.text(profile, "email", "customer_profile.email")
    ship_to = _address(r, shipping, "shipping")
    # UltraCart's shipping block has no e-mail; warehouses want one for carrier notifications.
    ship_to.email = email
    bill_to = _address(r, billing, "billing")
    bill_to.email = bill_to.email or email

    coupons = []
    for i, c in enumerate(r.items(raw, "coupons", "coupons")):
        if not isinstance(c, dict):
            raise _fail(order_id, f"coupons[{i}]", f"must be an object, got {type(c).__name__}")
        code = r.text(c, "coupon_code", f"coupons[{i}].coupon_code")
        base = r.text(c, "base_coupon_code", f"coupons[{i}].base_coupon_code")
        if code or base:
            coupons.append(Coupon(code=code or base, base_code=base))

    stage = r.text(raw, "current_stage", "current_stage")
    discount = (money("subtotal_discount") or Decimal(0)) + (money("shipping_handling_total_discount") or Decimal(0))
    gift_message = r.text(gift, "gift_message", "gift.gift_message")
    currency = r.text(raw, "currency_code", "currency_code")
    if not currency and isinstance(summary.get("total"), dict):
        currency = r.text(summary["total"], "currency_code", "summary.total.currency_code")

    return Order(
        order_id=order_id,
        merchant_id=r.text(raw, "merchant_id", "merchant_id"),
        stage=stage,
        created_at=r.datetime_(raw.get("creation_dts"), "creation_dts"),
        currency=currency.upper() or "USD",
        ship_to=ship_to,
        bill_to=bill_to,
        email=email,
        phone=ship_to.phone or bill_to.phone,
        ship_method=r.text(shipping, "shipping_method", "shipping.shipping_method"),
        payment_method=r.text(payment, "payment_method", "payment.payment_method"),
        payment_status=r.text(payment, "payment_status", "payment.payment_status"),
        test_order=bool(r.flag(payment.get("test_order"), "payment.test_order")),
        coupons=coupons,
        discount=discount,
        subtotal=money("subtotal"),
        shipping_total=money("shipping_handling_total"),
        tax=money("tax"),
        total=money("total"),
        # A message without the flag still is a gift for the packer.
        gift=bool(r.flag(gift.get("gift"), "gift.gift")) or bool(gift_message),
        gift_message=gift_message,
        internal_notes=r.text(internal, "merchant_notes", "internal.merchant_notes"),
        customer_notes=r.text(checkout, "comments", "checkout.comments"),
        special_instructions=r.text(shipping, "special_instructions", "shipping.special_instructions"),
        requested_ship_date=r.date_(shipping.get("ship_on_date"), "shipping.ship_on_date"),
        weight=r.weight(shipping.get("weight"), "shipping.weight"),
        lines=[_line(r, item, f"items[{i}]") for i, item in enumerate(r.items(raw, "items", "items"))],
        rejected_at=r.datetime_(raw.get("reject_dts"), "reject_dts"),
        reject_reason=r.text(raw, "reject_reason", "reject_reason"),
        refunded_at=r.datetime_(raw.get("refund_dts"), "refund_dts"),
        refund_reason=r.text(raw, "refund_reason", "refund_reason"),
        on_hold=stage.casefold() == HOLD_STAGE.casefold(),
    )


# ---------------------------------------------------------------------------------------------
# Webhooks

MAX_INFLATED_BYTES = 64 * 1024 * 1024  # UltraCart caps a delivery at 900K; refuse zip bombs


def _inflate(text: str) -> Any:
    """The `compress_events` form: base64 of gzip (or zlib) compressed JSON."""
    try:
        packed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookParseError("events is a string but not base64") from None
    try:
        # wbits=47 accepts both gzip and zlib headers; the format is not documented precisely.
        inflater = zlib.decompressobj(wbits=47)
        data = inflater.decompress(packed, MAX_INFLATED_BYTES)
        if inflater.unconsumed_tail:
            raise WebhookParseError(f"compressed events inflate beyond {MAX_INFLATED_BYTES} bytes")
    except zlib.error:
        data = packed  # base64 of plain JSON: accept it too
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookParseError(f"compressed events are not JSON: {exc}") from None


def parse_webhook(body: bytes | str | dict | list) -> list[tuple[str, dict]]:
    """Split a webhook delivery into (event_name, object) pairs, in delivery order.

    Accepts `{"events": [...]}`, a bare array of the same events (older documentation), and
    `events` as a base64 string of compressed JSON. The objects are returned raw: each is parsed
    on its own with `parse_order`, so one bad order does not reject the whole delivery.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookParseError("body is not UTF-8") from None
    if isinstance(body, str):
        if not body.strip():
            raise WebhookParseError("body is empty")
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise WebhookParseError(f"body is not JSON: {exc}") from None
    events: Any = body
    if isinstance(body, dict):
        if "events" not in body:
            raise WebhookParseError(f"body has no 'events' key (keys: {', '.join(map(str, body)) or 'none'})")
        events = body["events"]
        if isinstance(events, str):
            events = _inflate(events)
            if isinstance(events, dict) and "events" in events:  # the whole envelope compressed
                events = events["events"]
    if not isinstance(events, list):
        raise WebhookParseError(f"events must be an array, got {type(events).__name__}")
    pairs: list[tuple[str, dict]] = []
    for i, event in enumerate(events):
        if not isinstance(event, dict) or len(event) != 1:
            raise WebhookParseError(f"events[{i}] must be an object with exactly one key (the event name)")
        (name, obj), = event.items()
        if not isinstance(obj, dict):
            raise WebhookParseError(f"events[{i}].{name} must be an object, got {type(obj).__name__}")
        pairs.append((str(name), obj))
    return pairs
