"""The `[merchants.warehouse]` block of a merchant whose warehouse is Extensiv 3PL Warehouse Manager."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, field_validator

from adapters.kit import VendorConfig


class ExtensivConfig(VendorConfig):
    """Extensiv (3PL Central) REST credentials and the customer / facility the merchant lives in.

    The warehouse issues the client id and secret (Support > Manage Credentials, or through
    api@extensiv.com) together with its 3PL key (`tpl`, a GUID) and the numeric id of the user
    the integration acts as (`user_login_id`). `customer_id` is the merchant as the 3PL's
    customer; `facility_id` the warehouse orders are created in.
    """

    adapter: Literal["extensiv"] = "extensiv"
    base_url: str = "https://secure-wms.com"
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    tpl: str  # the 3PL key, a GUID, with or without braces
    user_login_id: int | str
    customer_id: int | str
    facility_id: int | str
    rate_per_minute: float = Field(default=400, gt=0)  # none published; the Singer tap's pace

    @field_validator("tpl")
    @classmethod
    def _tpl_is_a_guid(cls, value: str) -> str:
        try:
            uuid.UUID(value.strip().strip("{}"))
        except ValueError:
            raise ValueError("must be the warehouse's 3PL key, a GUID such as {12345678-90ab-cdef-1234-567890abcdef}") from None
        return value.strip()

    @field_validator("user_login_id", "customer_id", "facility_id")
    @classmethod
    def _numeric_id(cls, value: int | str) -> int | str:
        # Extensiv ids are integers; a customer or facility *name* here is the usual mistake.
        if not str(value).strip().isdigit():
            raise ValueError("must be Extensiv's numeric id (not a name)")
        return value

    @property
    def tpl_key(self) -> str:
        """The 3PL key as the token request sends it: in braces."""
        return "{" + self.tpl.strip("{}") + "}"

    def secrets(self) -> list[str]:
        return [self.client_secret, self.tpl.strip("{}")]
