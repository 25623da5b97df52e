"""Secrets the connector makes itself and keeps in its database (the cursors table), not in the
config: a merchant's warehouse-webhook path token and signing secret, and the daemon's control
token. Each is made once, then kept; each is masked like the config's secrets from the moment it
is read or made (and, after a restart, by `Runtime.learn_stored_secrets`)."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from connector.redact import DEFAULT as PROCESS_REDACTOR

WAREHOUSE_TOKEN = "warehouse_webhook_token"  # per merchant: the secret path segment of its warehouse webhooks
WAREHOUSE_SECRET = "warehouse_webhook_secret"  # per merchant: what a signing warehouse signs deliveries with
CONTROL_TOKEN = "control_token"  # no merchant: what the command line shows the daemon's /control/*
CONTROL_HEADER = "X-Connector-Control"  # the header that carries it
MERCHANT_SECRETS = (WAREHOUSE_TOKEN, WAREHOUSE_SECRET)
PROCESS_SECRETS = (CONTROL_TOKEN,)


async def _kept(store: Any, merchant: str, name: str, make: Any | None) -> str:
    value = await store.cursors.get(merchant, name) or ""
    if not value and make is not None:
        value = make()
        await store.cursors.set(merchant, name, value)
    if value:
        PROCESS_REDACTOR.add(value)
    return value


async def warehouse_url(store: Any, public_url: str, merchant: str, *, create: bool) -> str:
    """The secret URL a merchant's warehouse posts to ("" when none was made and `create` is off)."""
    token = await _kept(store, merchant, WAREHOUSE_TOKEN, (lambda: secrets.token_urlsafe(24)) if create else None)
    return f"{public_url}/webhooks/warehouse/{merchant}/{token}" if token else ""


async def warehouse_secret(store: Any, merchant: str, *, create: bool) -> str:
    """The secret a signing warehouse signs this merchant's deliveries with (made beside the path
    token): 24 random bytes as 32 base64 characters ("" when none was made)."""
    make = (lambda: base64.b64encode(secrets.token_bytes(24)).decode("ascii")) if create else None
    return await _kept(store, merchant, WAREHOUSE_SECRET, make)


async def control_token(store: Any, *, create: bool = False) -> str:
    """The daemon's control token: whoever can read the database may tell the daemon to reload or
    start a pass (they could do far more with the database itself)."""
    return await _kept(store, "", CONTROL_TOKEN, (lambda: secrets.token_urlsafe(32)) if create else None)


async def stored_secrets(store: Any, merchants: list[str]) -> list[str]:
    """Every secret made so far for these merchants and the process."""
    found = [await store.cursors.get("", name) for name in PROCESS_SECRETS]
    for merchant in merchants:
        found += [await store.cursors.get(merchant, name) for name in MERCHANT_SECRETS]
    return [s for s in found if s]
