"""Secrets and card data never reach a log line, the event log or a stored payload, wherever
they sit in a payload, and no payload shape makes redaction fail."""

import json

import pytest

from connector.redact import DEEP_MARKER, MASK, MAX_DEPTH, Redactor

# Published test card numbers, one or more per brand and length.
CARDS = {
    "visa-16": "4111111111111111",
    "visa-16b": "4012888888881881",
    "visa-13": "4222222222222",
    "mastercard": "5555555555554444",
    "mastercard-2-series": "2223003122003222",
    "amex-15": "378282246310005",
    "amex-15b": "371449635398431",
    "discover": "6011111111111117",
    "discover-65": "6500000000000002",
    "jcb": "3530111333300000",
    "jcb-b": "3566002020360505",
    "diners-14": "30569309025904",
    "diners-14b": "38520000023237",
}


def luhn_complete(prefix: str) -> str:
    """prefix + the check digit that makes it pass Luhn."""
    for check in "0123456789":
        digits = prefix + check
        total = sum(int(d) if i % 2 == 0 else (2 * int(d) - 9 if int(d) > 4 else 2 * int(d))
                    for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


VISA_19 = luhn_complete("455673758950087" + "123")  # 19 digits, Visa prefix
CARDS["visa-19"] = VISA_19
NOT_LUHN = "4111111111111112"  # a card number with one digit wrong: an order id, say


def grouped(card: str, sep: str) -> str:
    """The way cards are printed: 4-6-5 for Amex, 4-6-4 for Diners, else groups of 4."""
    if len(card) == 15:
        parts = [card[:4], card[4:10], card[10:]]
    elif len(card) == 14:
        parts = [card[:4], card[4:10], card[10:]]
    else:
        parts = [card[i:i + 4] for i in range(0, len(card), 4)]
    return sep.join(parts)


def test_the_test_cards_are_luhn_valid_and_the_controls_are_what_they_say():
    from connector.redact import _luhn

    assert all(_luhn(c) for c in CARDS.values()) and len(VISA_19) == 19
    assert not _luhn(NOT_LUHN)
    ean = "4006381333924"
    assert _luhn(ean) and (sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(ean)) % 10 == 0)  # EAN-13 check


def test_secret_keys_and_values_are_masked_everywhere():
    r = Redactor(["sk-live-abcdef", "hunter22"])
    data = {
        "payment": {"credit_card": {"card_number": "4111111111111111", "card_verification_number": "123", "card_expiration_month": 12}},
        "headers": {"Authorization": "Bearer sk-live-abcdef"},
        "note": "token is sk-live-abcdef and password hunter22",
        "order_id": "DEMO-0001",
        "quantity": 3,
    }
    out = r.data(data)
    text = repr(out)
    assert "4111111111111111" not in text and "sk-live-abcdef" not in text and "hunter22" not in text
    assert out["payment"]["credit_card"]["card_number"] == MASK
    assert out["order_id"] == "DEMO-0001" and out["quantity"] == 3
    assert out["payment"]["credit_card"]["card_expiration_month"] == 12


def test_camel_case_secret_keys_are_secret_keys():
    out = Redactor().data({"cardNumber": "4111 1111", "CardVerificationValue": "12", "apiKey": "k", "accessToken": "t",
                           "businessName": "Acme", "className": "x"})
    assert out == {"cardNumber": MASK, "CardVerificationValue": MASK, "apiKey": MASK, "accessToken": MASK,
                   "businessName": "Acme", "className": "x"}


def test_card_numbers_inside_free_text_are_masked():
    assert "4111 1111 1111 1111" not in Redactor().text("customer wrote 4111 1111 1111 1111 in the notes")
    assert Redactor().text("order DEMO-0001 qty 12") == "order DEMO-0001 qty 12"


@pytest.mark.parametrize("brand", sorted(CARDS))
@pytest.mark.parametrize("form", ["plain", "spaces", "dashes"])
@pytest.mark.parametrize("placement", [
    "{}",  # the whole string
    "{} is my card",  # at the start
    "my card is {}",  # at the end
    "card{}x",  # inside a word: letters do not make a boundary
    "cc#{}exp12/27",
    "no.{}.",
    "(({}))",
    "line one\n{}\nline three",
    "ref 12 {} thanks",  # a short number before it, joined by a space
    "{} 12/27 cvv",  # the expiry after it, joined by a space
    "x" * 5000 + " {} " + "y" * 5000,  # in a long string
])
def test_every_card_brand_is_masked_in_every_placement(brand, form, placement):
    card = CARDS[brand]
    shown = {"plain": card, "spaces": grouped(card, " "), "dashes": grouped(card, "-")}[form]
    out = Redactor().text(placement.format(shown))
    assert card not in out.replace(" ", "").replace("-", "")
    assert MASK in out
    # Only the card went, with at most the digits joined to it by a single space or dash (when
    # they and the card pass Luhn together, both are masked: the safe side).
    before, _, after = placement.partition("{}")
    assert out.startswith(before.rstrip("0123456789 -")) and out.endswith(after.lstrip("0123456789 -"))
    if not (before.rstrip(" -")[-1:].isdigit() or after.lstrip(" -")[:1].isdigit()):
        assert out == before + MASK + after


@pytest.mark.parametrize("text", [
    NOT_LUHN,
    f"order {NOT_LUHN} shipped",
    "4111 1111 1111 1112",
    "12345678901234567890",  # 20 digits in a row: not a card number
    "41111111111111111111",  # a Luhn-valid card followed by one more digit: a 20-digit run
    "12" + "4111111111111111" + "34",  # a card inside a 20-digit run
    "9" * 40,
    "call (617) 555-0199 or 617-555-0100",
    "2026-02-02T09:57:00-05:00",
    "DEMO-0001 DEMO-0002",
    "1Z999AA10123456784",  # a UPS tracking number (letters break it up)
    "order 123, qty 4, suite 567",
    "4111-1111 1111--1111",  # a double separator splits the run into pieces too short to be cards
])
def test_numbers_that_are_not_card_numbers_are_kept(text):
    assert Redactor().text(text) == text


def test_a_card_number_is_masked_even_when_other_digits_are_grouped_around_it():
    r = Redactor()
    # "34 4111 1111 1111 1111" passes Luhn too: masked with the card (the safe side).
    assert r.text(f"12 34 {grouped(CARDS['visa-16'], ' ')} 56 78") == "12 *** 56 78"
    assert r.text(f"ref 5 {grouped(CARDS['visa-16'], ' ')} 7 end") == "ref 5 *** 7 end"
    assert r.text(f"{CARDS['amex-15']}-{NOT_LUHN}") == f"***-{NOT_LUHN}"
    assert r.text(f"{'9' * 20} {CARDS['visa-16']}") == f"{'9' * 20} ***"


@pytest.mark.parametrize("phrase, masked", [
    ("CVV 123", "CVV ***"),
    ("cvv: 123", "cvv: ***"),
    ("CVV2 123", "CVV2 ***"),
    ("cvc: 1234", "cvc: ***"),
    ("CVC#1234", "CVC#***"),
    ("my cvv is 987 thanks", "my cvv is *** thanks"),
    ("security code 123", "security code ***"),
    ("Security Code: 4567", "Security Code: ***"),
    ("CSC 123", "CSC ***"),
    ("card verification value 123", "card verification value ***"),
    ("Card Verification Code - 321", "Card Verification Code - ***"),
    ("CID 1234", "CID ***"),
    ("exp 12/27 cvv 123.", "exp 12/27 cvv ***."),
    (f"card {CARDS['visa-16']} cvv 123", "card *** cvv ***"),
])
def test_security_codes_after_their_label_lose_their_digits_and_keep_the_label(phrase, masked):
    assert Redactor().text(phrase) == masked


@pytest.mark.parametrize("text", ["CVV 12345", "acid 123", "suite 123", "CVV", "code 1234", "lucid 4321", "discount code 123"])
def test_numbers_near_other_words_are_kept(text):
    assert Redactor().text(text) == text


def test_card_data_is_masked_under_any_key_at_any_depth_and_in_keys():
    card = CARDS["visa-16"]
    payload = {
        "order_id": "DEMO-1",
        "anything_at_all": card,
        "items": [{"options": [{"label": "Engraving", "value": f"print {card}"}], "properties": [[["deep", card]]]}],
        "checkout": {"custom_field7": f"CVV 123 {grouped(card, '-')}"},
        card: "a key that is a card number",
        "notes": [card, [card, {"x": card}]],
    }
    out = Redactor().data(payload)
    assert card not in json.dumps(out) and grouped(card, "-") not in json.dumps(out)
    assert out["items"][0]["options"][0] == {"label": "Engraving", "value": "print ***"}
    assert out["checkout"]["custom_field7"] == "CVV *** ***"
    assert out[MASK] == "a key that is a card number"
    assert out["order_id"] == "DEMO-1"


def test_masked_keys_that_collide_keep_both_values():
    out = Redactor().data({CARDS["visa-16"]: 1, CARDS["amex-15"]: 2, MASK: 3})
    assert sorted(out.values()) == [1, 2, 3] and CARDS["visa-16"] not in json.dumps(out)


@pytest.mark.parametrize("key", [
    "tracking_number", "tracking_numbers", "trackingNumber", "TrackingNumbers", "carrier_tracking_number",
    "barcode", "barcode_gtin14", "barcode_upc12", "upc", "ean", "ean13", "gtin", "isbn", "isbn13",
    "sku", "SellerSKU", "fnsku", "manufacturer_sku", "merchant_item_id", "parent_merchant_item_id",
    "order_id", "channel_partner_order_id", "orderNumber", "reference", "item_reference_oid", "serial_numbers", "lot_number",
])
def test_product_parcel_and_record_identifiers_are_not_mistaken_for_cards(key):
    # A 13-digit barcode or a tracking number can pass Luhn by chance; under these keys it is kept.
    ean = "4006381333924"  # a valid EAN-13 that happens to pass Luhn too
    r = Redactor(["sk-live-abcdef"])
    out = r.data({key: ean, "list": {key: [ean, [CARDS["visa-16"]]]}})
    assert out == {key: ean, "list": {key: [ean, [CARDS["visa-16"]]]}}
    # Configured secrets are still masked there, and an object under the key decides for itself.
    out = r.data({key: ["sk-live-abcdef", {"note": CARDS["visa-16"]}]})
    assert out == {key: [MASK, {"note": MASK}]}


@pytest.mark.parametrize("key", ["customer_notes", "special_instructions", "value", "purchase_order_number", "address1",
                                 "merchant_notes", "gift_message", "comments", "description", "properties", "ID_card"])
def test_keys_customers_type_into_are_scanned(key):
    assert Redactor().data({key: f"x {CARDS['discover']} y"}) == {key: "x *** y"}


def test_short_strings_and_plain_values_are_returned_unchanged():
    r = Redactor(["hunter22"])
    payload = {"a": "abc", "b": 12, "c": 1.5, "d": None, "e": True, "f": "", "g": ["x", 4111111111111111]}
    assert r.data(payload) == payload
    assert r.data("CVV 123") == "CVV ***" and r.data(7) == 7


def test_headers_mask_secret_names_and_values():
    r = Redactor(["tok-123456"])
    assert r.headers({"Authorization": "Bearer x", "X-Api-Key": "k", "X-Trace": "tok-123456", "Accept": "json"}) == {
        "Authorization": MASK, "X-Api-Key": MASK, "X-Trace": MASK, "Accept": "json"}


def test_a_secret_added_later_is_masked_in_keys_seen_before():
    r = Redactor()
    assert r.data({"tok-abcdef": 1}) == {"tok-abcdef": 1}
    r.add("tok-abcdef")
    assert r.data({"tok-abcdef": 1}) == {MASK: 1}


def nested_lists(depth: int, leaf) -> list:
    root: list = []
    node = root
    for _ in range(depth - 1):
        child: list = []
        node.append(child)
        node = child
    node.append(leaf)
    return root


@pytest.mark.parametrize("depth", [600, 100_000])
def test_deep_payloads_are_redacted_without_raising_and_cut_at_the_max_depth(depth):
    card = CARDS["visa-16"]
    order = {"order_id": "DEMO-1", "items": [{"options": nested_lists(depth, card)}], "notes": card}
    out = Redactor().data(order)
    assert out["order_id"] == "DEMO-1" and out["notes"] == MASK
    text = json.dumps(out)  # bounded: json.dumps (which recurses) copes
    assert card not in text and DEEP_MARKER in text
    assert DEEP_MARKER == "[nested deeper than 64 levels: not kept]"
    # The options list sits at level 4 (order, items, item, options): 60 more lists are kept.
    node, levels = out["items"][0]["options"], 4
    while isinstance(node, list) and node and isinstance(node[0], list):
        node, levels = node[0], levels + 1
    assert levels == MAX_DEPTH and node == [DEEP_MARKER]


def test_card_numbers_just_above_the_max_depth_are_masked():
    out = Redactor().data(nested_lists(MAX_DEPTH, f"pay with {CARDS['jcb']}"))
    assert CARDS["jcb"] not in json.dumps(out) and "pay with ***" in json.dumps(out)


def test_wide_and_shared_and_cyclic_data_are_redacted():
    card = CARDS["mastercard"]
    wide = {"orders": [{"note": card, "i": i} for i in range(100_000)]}
    out = Redactor().data(wide)
    assert len(out["orders"]) == 100_000 and out["orders"][-1] == {"note": MASK, "i": 99_999}
    # Shared: 2**200 paths through 200 lists; a walk that copies per path would never end.
    shared: list = [card]
    for _ in range(200):
        shared = [shared, shared]
    out = Redactor().data(shared)
    assert out[0] is out[1]
    # A cycle (data built by code, handed to a log line) stays a cycle, redacted.
    loop: dict = {"note": card}
    loop["self"] = loop
    out = Redactor().data(loop)
    assert out["note"] == MASK and out["self"] is out


@pytest.mark.parametrize("secret", ["sk-live-0123456789abcdef", "pw-xyzw"])
def test_clipped_never_leaves_a_piece_of_a_secret_or_card_at_the_cut(secret):
    r = Redactor([secret])
    limit = 100
    for item in (secret, CARDS["visa-19"], grouped(CARDS["visa-16"], " ")):
        for offset in range(limit - 40, limit + 80):
            value = "a" * offset + item + "b" * 300
            out = r.clipped(value, limit)
            body = out.split("... [cut:")[0]
            assert len(body) <= limit and out.endswith("[cut: {:,} characters in all]".format(len(value)))
            for size in range(4, len(item) + 1):
                assert item[:size] not in body, (offset, size)
    assert r.clipped(f"short {secret}", limit) == "short ***"


def test_clipped_costs_no_more_for_a_huge_string():
    r = Redactor(["hunter22"])
    huge = "hunter22 " + "z" * 20_000_000
    out = r.clipped(huge, 8000)
    assert out.startswith("*** zzz") and len(out) < 8100


from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=40,
)
_not_digit = st.text(st.characters(blacklist_categories=("Nd",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_is_redacted_into_json(value):
    out = Redactor(["hunter22"]).data(value)
    json.dumps(out)
    if not isinstance(value, dict | list):
        return
    assert type(out) is type(value) and len(out) == len(value)


@settings(max_examples=300, deadline=None)
@given(_not_digit, st.sampled_from(sorted(CARDS)), st.sampled_from(["", " ", "-"]), _not_digit, st.text(max_size=8))
def test_a_card_between_any_non_digits_is_masked_under_any_plain_key(before, brand, sep, after, key):
    from connector.redact import _EXEMPT, _key_verdict

    assume(_key_verdict(f"note{key}") != _EXEMPT)
    card = CARDS[brand]
    shown = grouped(card, sep) if sep else card
    text = f"{before}{shown}{after}"
    out = Redactor().data({f"note{key}": text})
    assert card not in json.dumps(out).replace(" ", "").replace("-", "")


def test_a_string_seen_clean_is_masked_once_it_holds_a_secret_added_later():
    r = Redactor()
    text = "ship with token abcd-1234-efgh"
    assert r.text(text) == text  # clean, and remembered as clean
    r.add("abcd-1234-efgh")
    assert r.text(text) == f"ship with token {MASK}"
    assert r.data({"note": text}) == {"note": f"ship with token {MASK}"}


def test_remembering_clean_strings_never_keeps_card_data():
    r = Redactor()
    card = "pay with 4111 1111 1111 1111 please"
    for _ in range(3):
        assert "4111" not in r.text(card)
    assert all("4111" not in s for s in r._clean)  # noqa: SLF001 - what the memo holds
