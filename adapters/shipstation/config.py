"""The `[merchants.warehouse]` block of a merchant whose warehouse is ShipStation (API v1)."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field, field_validator

from adapters.kit import VendorConfig


class ShipStationConfig(VendorConfig):
    """ShipStation v1 credentials and settings: an API key and secret (HTTP Basic), an optional store.

    `store_id` puts the orders the connector creates in that ShipStation store
    (`advancedOptions.storeId`) and limits the shipments read to it; without it orders land in
    ShipStation's default manual store and shipments are told apart by their `orderKey` alone.
    `rate_per_minute` is ShipStation's budget per key and secret (40); every merchant or process
    sharing a key shares it, so lower it when another tool uses the same key.
    """

    adapter: Literal["shipstation"] = "shipstation"
    base_url: str = "https://ssapi.shipstation.com"
    api_key: str = Field(min_length=1)
    api_secret: str = Field(min_length=1)
    store_id: int | None = None
    rate_per_minute: float = Field(default=40, gt=0)

    @field_validator("store_id", mode="before")
    @classmethod
    def _store_is_numeric(cls, value: object) -> object:
        # ShipStation store ids are integers; a store *name* here is a common mistake.
        if value is None or value == "":
            return None
        if not str(value).strip().isdigit():
            raise ValueError("must be ShipStation's numeric store id (Settings > Selling Channels > Store Setup, or GET /stores)")
        return int(str(value).strip())

    def basic_token(self) -> str:
        return base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()

    def secrets(self) -> list[str]:
        # The Basic token is as good as the pair: mask it too, wherever it might be echoed.
        return [self.api_key, self.api_secret, self.basic_token()]
