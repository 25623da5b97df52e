"""The `[merchants.warehouse]` block of a merchant whose warehouse system is ShipStation (API v2)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from adapters.kit import VendorConfig

SE_ID = re.compile(r"^se(-[a-z0-9]+)+$")  # ShipStation's resource ids (`se_id` in the spec)


class ShipStationV2Config(VendorConfig):
    """ShipStation API v2 credentials and settings.

    `warehouse_id` names the ShipStation ship-from location (`GET /v2/warehouses`); its origin
    address is sent as each shipment's `ship_from`. Left empty, ShipStation's default ship-from
    location applies. `[merchants.ship_methods]` values are carrier service codes, optionally
    qualified by a carrier account: `"usps_priority_mail"` or `"se-123456:usps_priority_mail"`.
    """

    adapter: Literal["shipstation-v2"] = "shipstation-v2"
    base_url: str = "https://api.shipstation.com"
    api_key: str = Field(min_length=1)  # sent as the `api-key` header
    warehouse_id: str = ""  # ship-from warehouse (se-...); empty = the account's default
    store_id: str = ""  # the ShipStation store the shipments belong to; empty = ShipStation's default
    rate_per_minute: float = Field(default=200, gt=0)  # ShipStation's default budget per API key
    validate_address: Literal["no_validation", "validate_only", "validate_and_clean"] = "no_validation"
    # ShipStation requires a ship-to phone; used when neither the order nor its addresses have one.
    default_phone: str = ""
    # Hold orders whose SKUs are not ShipStation products (or SKU aliases). Turn off for an
    # account that keeps no product catalog: ShipStation itself takes any SKU on a shipment.
    check_skus: bool = True

    @field_validator("warehouse_id")
    @classmethod
    def _warehouse_is_an_se_id(cls, value: str) -> str:
        value = value.strip()
        # A warehouse *name* here is the usual mistake; ShipStation would answer 400 on every create.
        if value and not SE_ID.match(value):
            raise ValueError("must be a ShipStation warehouse id like se-123456 (GET /v2/warehouses lists them)")
        return value

    def secrets(self) -> list[str]:
        return [self.api_key]
