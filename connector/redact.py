"""Redaction: secrets and card data never reach a log line, the event log or a stored payload.

Two nets: keys whose names say "secret" (card numbers, CVV, tokens, passwords, API keys) have
their values replaced, and any configured secret value found inside any string is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

_SECRET_KEY = re.compile(
    r"(card_number|card_verification|cvv|cvv2|cvc|credit_card_number|card_token|"
    r"password|passwd|secret|api[_-]?key|simple[_-]?key|authorization|access[_-]?token|"
    r"refresh[_-]?token|bearer|token|account_number|routing_number|iban|ssn)",
    re.IGNORECASE,
)
# A run of 13-19 digits (with optional spaces or dashes) looks like a card number (PAN).
_PAN = re.compile(r"\b(?:\d[ -]?){13,19}\b")


class Redactor:
    """Masks secret-named keys and the configured secret values wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        self._secrets = sorted(set(self._secrets) | {s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self._secrets:
            if s in value:
                value = value.replace(s, MASK)
        if len(value) < 13:  # a card number has at least 13 digits: most strings (SKUs, names) stop here
            return value
        return _PAN.sub(lambda m: MASK if sum(c.isdigit() for c in m.group()) >= 13 else m.group(), value)

    def data(self, value: Any) -> Any:
        """A redacted deep copy of JSON-like data."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if isinstance(k, str) and _secret_key(k) and v not in (None, "", [], {}):
                    if isinstance(v, bool | int | float) and not _looks_secret_number(k):
                        out[k] = v
                    else:
                        out[k] = MASK
                else:
                    out[k] = self.data(v)
            return out
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: (MASK if _SECRET_KEY.search(k) else self.text(v)) for k, v in headers.items()}


_key_verdicts: dict[str, bool] = {}


def _secret_key(key: str) -> bool:
    """`_SECRET_KEY.search(key)`, remembered: payloads repeat a few hundred key names."""
    verdict = _key_verdicts.get(key)
    if verdict is None:
        verdict = bool(_SECRET_KEY.search(key))
        if len(_key_verdicts) < 10_000:  # bounded: keys of a hostile body must not grow it for ever
            _key_verdicts[key] = verdict
    return verdict


def _looks_secret_number(key: str) -> bool:
    return bool(re.search(r"(number|cvv|cvc|verification)", key, re.IGNORECASE))


DEFAULT = Redactor()
