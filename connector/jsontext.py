"""JSON text for what the connector stores and logs: orjson where it can (several times faster
than the standard library on order-sized documents, which the connector writes for every order
and every vendor call), the standard library where orjson refuses (integers beyond 64 bits).

Same text as `json.dumps(value, default=str)` would give but without spaces: datetimes, Decimals
and anything else JSON has no type for are written as `str(value)`."""

from __future__ import annotations

import json
import re
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


# -------------------------------------------------------- plain documents: checked as one text
_LEAVES = re.compile(rb"\{\}|\[\]")  # containers with nothing left inside
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def plain(value: Any) -> bytes | None:
    """`value`'s JSON text when every string of it (keys too) is written there as it is: no escape
    of any kind, so no control character, quote or backslash in any string, and no lone surrogate
    (orjson refuses those). None for anything else: other types than JSON's own, non-string keys,
    or a text with a backslash.

    What holds for the text then holds for each string in it, so a whole document can be checked
    (its lengths, control characters, depth) with a few passes of C code instead of a walk in Python."""
    try:
        text = orjson.dumps(value)
    except TypeError:
        return None
    return None if b"\\" in text else text


def depth_within(text: bytes, limit: int) -> bool:
    """Whether the containers of a `plain` text nest at most `limit` deep (the top level is 1)."""
    # Without a backslash every quote opens or closes a string: the text between strings is
    # every other piece of a split at quotes.
    brackets = b"".join(text.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    for _ in range(limit):  # each pass empties the innermost level
        if not brackets:
            return True
        brackets = _LEAVES.sub(b"", brackets)
    return not brackets
