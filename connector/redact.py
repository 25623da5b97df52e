"""Redaction: secrets and card data never reach a log line, the event log or a stored payload.

Three nets:

- Keys whose names say "secret" (card numbers, CVV, tokens, passwords, API keys) have their
  values replaced by `MASK`.
- Any configured secret value (`Redactor.add`) found inside any string is masked.
- Card data typed anywhere is masked, in every string under every key (keys too), at any depth:
  - a card number (PAN): a Luhn-valid run of 13 to 19 digits, written together or in groups
    joined by single spaces or dashes, bounded by non-digits. Letters do not protect it
    (`card4111111111111111x` is masked), but a longer run of digits does: 20 digits in a row
    are not a card number, and neither is a run that fails the Luhn check (most order ids,
    phone numbers, tracking numbers). In a grouped run (`4111 1111 1111 1111 12/25`) every
    stretch of whole groups with 13-19 digits is checked, so digits typed next to a card
    number do not hide it;
  - a security code after its label: `CVV 123`, `cvc: 1234`, `CVV2 123`, `security code 123`,
    `CSC 123`, `CID 1234`, `card verification value 123` keep the label and lose the digits.

Exempt from the card scan (the other two nets still apply): strings under keys that hold
product, parcel or record identifiers, where 13-digit barcodes (an EAN-13 carries its own check
digit, but one in ten also passes Luhn), long tracking numbers and numeric ids live, and which
no customer types into. The key is read as snake_case words (`trackingNumbers` ->
tracking, numbers; digits at the ends of a word dropped: `gtin14` -> gtin); it is exempt when

- one word is in `EXEMPT_WORDS`: tracking, barcode(s), upc, ean, gtin, isbn, sku(s), fnsku,
  mpn, asin, serial, lot, waybill (`tracking_number`, `tracking_numbers`, `barcode_gtin14`,
  `upc12`, `SellerSKU`, `lot_number`, `serial_numbers`);
- its last word is id, ids, oid or oids (`merchant_item_id`, UltraCart's SKU;
  `order_id`, `channel_partner_order_id`, `item_reference_oid`, `TrackingIds`);
- its words joined are in `EXEMPT_KEYS`: `order_number` / `orderNumber`, `reference` (the
  warehouse order's reference, `{merchant}-{order_id}`).

`purchase_order_number`, notes, options, properties, addresses: not exempt (customers type
there). The exemption covers strings directly under the key and in lists under it; an object
under it has keys of its own, which decide for themselves. A key that names a secret is never
exempt, and camelCase secret keys count (`cardNumber` is `card_number`).

Untrusted data can be nested to any depth: `Redactor.data` walks it without recursion and
replaces anything nested deeper than `MAX_DEPTH` levels by `DEEP_MARKER`, so it never raises
and everything downstream (json.dumps, repr) gets a bounded document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
MAX_DEPTH = 64  # containers inside containers, the top level being 1
DEEP_MARKER = f"[nested deeper than {MAX_DEPTH} levels: not kept]"

_SECRET_KEY = re.compile(
    r"(card_number|card_verification|cvv|cvv2|cvc|credit_card_number|card_token|"
    r"password|passwd|secret|api[_-]?key|simple[_-]?key|authorization|access[_-]?token|"
    r"refresh[_-]?token|bearer|token|account_number|routing_number|iban|ssn)",
    re.IGNORECASE,
)
_SECRET_NUMBER_KEY = re.compile(r"(number|cvv|cvc|verification)", re.IGNORECASE)

EXEMPT_WORDS = frozenset({"tracking", "barcode", "barcodes", "upc", "ean", "gtin", "isbn", "sku", "skus", "fnsku",
                          "mpn", "asin", "serial", "lot", "waybill"})
EXEMPT_KEYS = frozenset({"ordernumber", "reference"})
_ID_WORDS = frozenset({"id", "ids", "oid", "oids"})
_CAMEL_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # SellerSKU -> Seller_SKU
_WORD_BREAK = re.compile(r"[^a-z0-9]+")

# A maximal run of digits joined by single spaces or dashes, holding at least 13 digits. The
# lookbehinds let it start only where a run starts (a failed start inside a run costs time).
_RUN = re.compile(r"(?<!\d)(?<!\d[ -])\d(?:[ -]?\d){12,}")
_THREE_DIGITS = re.compile(r"\d{3}")
_GROUP = re.compile(r"\d+")
_CVV = re.compile(
    r"((?:cvv2?|cvc2?|cvn|csc|(?<![A-Za-z])cid|security[\s_-]*code|card[\s_-]*verification(?:[\s_-]*(?:value|code|number))?)"
    r"(?:[\s:=#.(/-]|\b(?:code|number|num|no|is|was)\b){0,12})"
    r"(\d{3,4})(?!\d)",
    re.IGNORECASE,
)
_DOUBLED = tuple((2 * d) - 9 if d > 4 else 2 * d for d in range(10))
_KEY_CACHE_MAX = 10_000  # keys of a hostile body must not grow the cache for ever
_CLEAN_MAX, _CLEAN_MAX_CHARS = 20_000, 200  # the clean-strings memo: entries, and the longest string kept
_PLAIN, _SECRET, _EXEMPT = 0, 1, 2


class Redactor:
    """Masks secret-named keys, the configured secret values and card data wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: list[str] = []
        self._keys: dict[str, tuple[str | None, int]] = {}
        self._clean: set[str] = set()  # strings text() left as they were
        self._margin = 64
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new = {s for s in secrets if s and len(s) >= 4} - set(self._secrets)
        if not new:
            return  # nothing new: keep the key cache (a known secret is added again on every read)
        self._secrets = sorted(set(self._secrets) | new, key=len, reverse=True)
        self._keys = {}  # a cached key may hold a secret that was not known yet
        self._clean = set()  # and so may a string that was clean
        # clipped() drops this many characters at a cut: more than the longest thing it masks.
        self._margin = max([64, *(len(s) + 8 for s in self._secrets[:1])])

    def text(self, value: str) -> str:
        if value in self._clean:
            return value
        original = value
        for s in self._secrets:
            if s in value:
                value = value.replace(s, MASK)
        value = _card_data(value)
        if value == original and len(value) <= _CLEAN_MAX_CHARS:
            # Orders repeat most of their strings (SKUs, countries, methods, statuses): remember
            # the ones that needed nothing. Only those: what held a card number or a secret is
            # never kept here.
            if len(self._clean) >= _CLEAN_MAX:
                self._clean.clear()
            self._clean.add(value)
        return value

    def clipped(self, value: str, limit: int) -> str:
        """`text(value)` in at most `limit` characters plus a note of the cut. Only the first
        `limit` + a margin characters are scanned, so a 90 MB string costs what a small one does.
        No secret is cut in two: what the cut may have split is dropped with the margin."""
        if len(value) <= limit:
            return self.text(value)  # masking never lengthens a string
        head = self.text(value[: limit + self._margin])
        kept = head[: max(0, min(limit, len(head) - self._margin))]
        return f"{kept}... [cut: {len(value):,} characters in all]"

    def data(self, value: Any) -> Any:
        """A redacted deep copy of JSON-like data: dicts and lists are copied, strings redacted,
        other values kept. Containers nested deeper than `MAX_DEPTH` become `DEEP_MARKER`.
        Iterative, so no depth or size makes it raise; a container that appears twice is copied
        once (a cycle stays a cycle, as with copy.deepcopy)."""
        if isinstance(value, str):
            return self.text(value)
        if not isinstance(value, dict | list):
            return value
        root: Any = {} if isinstance(value, dict) else []
        stack: list[tuple[Any, Any, int, bool]] = [(value, root, 1, False)]
        # A container met twice (shared, or a cycle in data built by code) is copied once, as
        # copy.deepcopy does: no exponential blow-up, no endless loop.
        copies: dict[int, Any] = {id(value): root}
        # The hot loop of every payload: locals and tuple isinstance checks are measurably faster.
        text, exempt_text, keys, key_of = self.text, self._exempt_text, self._keys, self._key
        containers = (dict, list)
        while stack:
            src, dst, depth, exempt = stack.pop()
            deep = depth >= MAX_DEPTH
            if isinstance(src, dict):
                renamed = False  # once a key was masked, a later key may meet the masked one
                for key, v in src.items():
                    if type(key) is str:
                        shown, verdict = keys.get(key) or key_of(key)
                        if shown is None:
                            k = free_key(dst, key) if renamed and key in dst else key
                        else:  # the key itself held card data or a secret
                            k = free_key(dst, shown) if shown in dst else shown
                            renamed = True
                    else:
                        k, verdict = key, _PLAIN
                    if verdict == _SECRET and v not in (None, "", [], {}):
                        dst[k] = v if isinstance(v, bool | int | float) and not _SECRET_NUMBER_KEY.search(key) else MASK
                    elif isinstance(v, str):
                        dst[k] = v if len(v) < 4 else (exempt_text(v) if verdict == _EXEMPT else text(v))
                    elif isinstance(v, containers):
                        if deep:
                            dst[k] = DEEP_MARKER
                        elif (copy := copies.get(id(v))) is not None:
                            dst[k] = copy
                        else:
                            dst[k] = copies[id(v)] = copy = {} if isinstance(v, dict) else []
                            stack.append((v, copy, depth + 1, verdict == _EXEMPT))
                    else:
                        dst[k] = v
            else:
                append = dst.append
                for v in src:
                    if isinstance(v, str):
                        append(v if len(v) < 4 else (exempt_text(v) if exempt else text(v)))
                    elif isinstance(v, containers):
                        if deep:
                            append(DEEP_MARKER)
                        elif (copy := copies.get(id(v))) is not None:
                            append(copy)
                        else:
                            copies[id(v)] = copy = {} if isinstance(v, dict) else []
                            append(copy)
                            stack.append((v, copy, depth + 1, exempt))  # a list under an exempt key stays exempt
                    else:
                        append(v)
        return root

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {k: (MASK if _SECRET_KEY.search(k) else self.text(v)) for k, v in headers.items()}

    def _exempt_text(self, value: str) -> str:
        """A string under a product or parcel identifier key: configured secrets only."""
        for s in self._secrets:
            if s in value:
                value = value.replace(s, MASK)
        return value

    def _key(self, key: str) -> tuple[str | None, int]:
        """(the key redacted, or None when it needs no change; its verdict), remembered: payloads
        repeat a few hundred key names, and a key is text like any other (a card number can be a
        key)."""
        known = self._keys.get(key)
        if known is None:
            shown = self.text(key) if len(key) >= 4 else key
            known = (None if shown == key else shown, _key_verdict(key))
            if len(self._keys) < _KEY_CACHE_MAX:
                self._keys[key] = known
        return known


def _key_verdict(key: str) -> int:
    # camelCase and PascalCase keys (vendors') are read as snake_case: cardNumber is card_number,
    # and businessName is not a Social Security number.
    snake = _CAMEL_BREAK.sub("_", key).lower()
    if _SECRET_KEY.search(snake):
        return _SECRET
    words = [w for w in (w.strip("0123456789") for w in _WORD_BREAK.split(snake)) if w]
    if not words:
        return _PLAIN
    if not EXEMPT_WORDS.isdisjoint(words) or words[-1] in _ID_WORDS or "".join(words) in EXEMPT_KEYS:
        return _EXEMPT
    return _PLAIN


def free_key(dst: dict, key: str) -> str:
    """`key~2`, `key~3`, ...: the first of these not yet in `dst` (two keys that became one stay two)."""
    n = 2
    while f"{key}~{n}" in dst:
        n += 1
    return f"{key}~{n}"


def _card_data(value: str) -> str:
    """value with card numbers and labelled security codes masked. Most strings (names, SKUs,
    dates, amounts) leave after a length check, a substring test or one regex search."""
    n = len(value)
    if n < 6:  # "CVV123" is the shortest thing masked here
        return value
    if n >= 13 and (first := _RUN.search(value)) is not None:  # a card number has 13 digits
        spans: list[tuple[int, int]] = []
        for m in _RUN.finditer(value, first.start()):
            _card_spans(m.group(), m.start(), spans)
        if spans:
            value = _mask_spans(value, spans)
    # Every label holds a "c"; a code has three digits in a row.
    if ("c" in value or "C" in value) and _THREE_DIGITS.search(value) is not None:
        value = _CVV.sub(_keep_label, value)
    return value


def _keep_label(m: re.Match) -> str:
    return m.group(1) + MASK


def _card_spans(run: str, offset: int, spans: list[tuple[int, int]]) -> None:
    """Append to spans the (start, end) of every card number in run, a maximal run of digits
    joined by single spaces or dashes that starts at offset in its string."""
    if run.isdigit():  # no separators: the whole run is the only candidate
        if len(run) <= 19 and _luhn(run):
            spans.append((offset, offset + len(run)))
        return
    # Each group's Luhn contribution when its last digit sits at an even or odd place from the
    # right of a candidate; a candidate is a stretch of whole groups with 13-19 digits.
    groups = [(g.start(), g.end(), g.group()) for g in _GROUP.finditer(run)]
    weights = [(_luhn_sum(text, 0), _luhn_sum(text, 1)) for _, _, text in groups]
    found: list[tuple[int, int]] = []
    for last in range(len(groups)):
        digits = total = 0
        first = last
        while first >= 0:
            size = groups[first][1] - groups[first][0]
            if digits + size > 19:
                break
            total += weights[first][digits & 1]
            digits += size
            if digits >= 13 and total % 10 == 0:
                found.append((groups[first][0], groups[last][1]))
            first -= 1
    for start, end in found:
        spans.append((offset + start, offset + end))


def _luhn_sum(digits: str, place: int) -> int:
    """Luhn sum of digits when the last one sits at `place` (0: not doubled) from the right."""
    total = 0
    for i, c in enumerate(reversed(digits), place):
        d = ord(c) - 48
        total += _DOUBLED[d] if i & 1 else d
    return total


def _luhn(digits: str) -> bool:
    return _luhn_sum(digits, 0) % 10 == 0


def _mask_spans(value: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    out: list[str] = []
    pos = 0
    cur_start, cur_end = spans[0]
    for start, end in spans[1:]:
        if start <= cur_end:  # overlapping candidates of one run: one mask
            cur_end = max(cur_end, end)
            continue
        out += (value[pos:cur_start], MASK)
        pos = cur_end
        cur_start, cur_end = start, end
    out += (value[pos:cur_start], MASK, value[cur_end:])
    return "".join(out)


DEFAULT = Redactor()
