"""The `[merchants.warehouse]` block of a merchant whose warehouse is ShipBob."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from adapters.kit import VendorConfig


class ShipBobConfig(VendorConfig):
    """ShipBob credentials and settings: a personal access token and the channel orders belong to.

    `channel_id` is sent as the `shipbob_channel_id` header: ShipBob requires it on creates and
    uses it to scope order reads to the orders this channel created.
    """

    adapter: Literal["shipbob"] = "shipbob"
    base_url: str = "https://api.shipbob.com"  # or https://sandbox-api.shipbob.com
    token: str = Field(min_length=1)  # personal access token, sent as `Authorization: Bearer`
    channel_id: int | str
    api_version: str = "2026-01"  # the first path segment of every call
    rate_per_minute: float = Field(default=150, gt=0)  # ShipBob: 150/min sliding window per user+app

    @field_validator("channel_id")
    @classmethod
    def _channel_is_numeric(cls, value: int | str) -> int | str:
        # ShipBob channel ids are int32; a name here is a common copy-paste mistake.
        if not str(value).strip().isdigit():
            raise ValueError("must be ShipBob's numeric channel id (GET /{version}/channel lists them)")
        return value

    def secrets(self) -> list[str]:
        return [self.token]
