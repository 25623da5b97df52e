"""JSON text for what the connector stores and logs: orjson where it can (several times faster
than the standard library on order-sized documents, which the connector writes for every order
and every vendor call), the standard library where orjson refuses (integers beyond 64 bits).

Same text as `json.dumps(value, default=str)` would give but without spaces: datetimes, Decimals
and anything else JSON has no type for are written as `str(value)`."""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer of more than 64 bits
        return json.dumps(value, default=str, separators=(",", ":"))


def loads(text: bytes | str) -> Any:
    """Parse JSON (raises ValueError when it is not); NaN and Infinity are refused, as JSON says."""
    return orjson.loads(text)


def request_body(value: Any) -> bytes | None:
    """A JSON request body as httpx would write it (compact, UTF-8), or None for no body or for
    what orjson cannot write (httpx then writes it, or raises, as it always did). Unlike httpx,
    orjson writes a NaN float as null and dates as ISO text instead of refusing them; no body
    the adapters build holds either (intake refuses NaN)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return None
