"""The adapter's keys of a `[merchants.ledger]` block whose ledger is Aligni.

The engine's own keys of that block (location, sublocation, unit_selection, consume_on) are not
here: see adapters.ledger.ENGINE_KEYS.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from adapters.base import AdapterConfig

_SITE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class AligniConfig(AdapterConfig):
    """An Aligni site and an API token of one of its accounts (API v2, XML).

    The token is created by the site administrator (Account Settings -> API Token) and travels in
    the URL path (`https://{site}.aligni.com/api/v2/{api_token}/...`), so it is registered as a
    secret: the redactor masks it in the event log, logs and error messages. Sites may expire
    tokens after N days; a 401 then pauses the ledger service with a configuration alert.
    """

    adapter: Literal["aligni"] = "aligni"
    site: str  # the subdomain: "acme" for https://acme.aligni.com
    api_token: str = Field(min_length=8)
    base_url: str = ""  # default https://{site}.aligni.com; overridable (sandbox, tests)
    rate_per_minute: float = Field(default=30, gt=0)  # Aligni allows about 30 calls a minute per token
    # Which part field holds the cart SKU: the part number (the item master's own number, the
    # usual choice for finished goods) or the manufacturer part number.
    sku_field: Literal["partnumber", "manufacturer_pn"] = "partnumber"
    # The part list is read whole at most this often (seconds); in between, a SKU not yet known
    # triggers at most one read a minute of the parts updated since the last read.
    parts_refresh_s: float = Field(default=3600, ge=60)
    per_page: int = Field(default=100, ge=1, le=500)  # page size asked of list and search calls

    @field_validator("site")
    @classmethod
    def _subdomain(cls, value: str) -> str:
        value = value.strip().lower()
        if not _SITE.match(value):
            raise ValueError(
                "must be the Aligni subdomain only, e.g. site = \"acme\" for https://acme.aligni.com"
            )
        return value

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be the API token exactly as Aligni shows it (no spaces)")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local sandbox)")
        return value

    @property
    def root(self) -> str:
        """Where the API lives, without the token: `https://{site}.aligni.com`."""
        return self.base_url or f"https://{self.site}.aligni.com"

    @property
    def token_segment(self) -> str:
        """The token as it appears in the URL path."""
        return quote(self.api_token, safe="")

    def secrets(self) -> list[str]:
        return list(dict.fromkeys([self.api_token, self.token_segment]))
