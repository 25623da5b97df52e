"""Hostile JSON (too deep, too wide, too long, NUL and lone surrogates) gets a clear error that
names where, never a RecursionError, and never stops the flow."""

import json

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.untrusted import MAX_DEPTH, UntrustedInput, check_shape, loads_bounded, plainly_safe, strip_controls


def nested_lists(depth: int) -> list:
    """[[[...]]] with `depth` lists in all, built without recursion."""
    root: list = []
    node = root
    for _ in range(depth - 1):
        child: list = []
        node.append(child)
        node = child
    return root


def order_with_deep_options(depth: int) -> dict:
    return {"order_id": "DEMO-0001", "items": [{"merchant_item_id": "SKU-1", "options": nested_lists(depth)}]}


@pytest.mark.parametrize("depth", [600, 100_000])
def test_check_shape_names_the_field_that_is_nested_too_deep(depth):
    with pytest.raises(UntrustedInput) as caught:
        check_shape(order_with_deep_options(depth))
    assert str(caught.value) == f"items[0].options nested deeper than {MAX_DEPTH} levels"
    assert caught.value.path == "items[0].options"
    assert isinstance(caught.value, ValueError)  # callers that hold bad input on ValueError keep working


def test_check_shape_accepts_exactly_max_depth_and_refuses_one_more():
    check_shape(nested_lists(MAX_DEPTH))
    check_shape(nested_lists(5), max_depth=5)
    with pytest.raises(UntrustedInput, match="nested deeper than 5 levels"):
        check_shape(nested_lists(6), max_depth=5)


def test_check_shape_reports_the_first_offence_in_document_order():
    body = {"a": {"b": [{"c": "ok"}, {"deep": nested_lists(10)}]}, "later": "x" * 50}
    with pytest.raises(UntrustedInput) as caught:
        check_shape(body, max_depth=5, max_string=10)
    assert caught.value.path == "a.b[1].deep"


def test_a_deep_chain_of_objects_gets_a_readable_path():
    root: dict = {}
    node = root
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(UntrustedInput) as caught:
        check_shape(root)
    message = str(caught.value)
    assert message.startswith("a.a.a.") and "more levels) nested deeper than 64 levels" in message
    assert len(message) < 200


def test_check_shape_bounds_values_strings_and_keys():
    wide = {"orders": [{"i": i} for i in range(100_000)]}
    check_shape(wide)  # 200,001 values: under the default
    with pytest.raises(UntrustedInput, match=r"over the limit of 1,000 values") as caught:
        check_shape(wide, max_nodes=1_000)
    assert caught.value.path.startswith("orders[")
    with pytest.raises(UntrustedInput, match=r"notes is a string of 2,000 characters") as caught:
        check_shape({"items": [], "notes": "n" * 2000}, max_string=1000)
    assert caught.value.path == "notes"
    with pytest.raises(UntrustedInput, match="has a key of 2,000 characters"):
        check_shape({"items": [{"k" * 2000: 1}]}, max_string=1000)


def test_paths_mask_card_numbers_and_escape_odd_keys():
    with pytest.raises(UntrustedInput) as caught:
        check_shape({"4111111111111111": {"x\x00y": nested_lists(3)}}, max_depth=2)
    message = str(caught.value)
    assert "4111111111111111" not in message and "\x00" not in message
    assert message.startswith('["***"]["x\\u0000y"]')


@pytest.mark.parametrize("depth", [600, 100_000])
def test_loads_bounded_turns_deep_json_into_a_clear_error(depth):
    text = '{"order_id": "DEMO-1", "items": [{"options": ' + "[" * depth + "]" * depth + "}]}"
    with pytest.raises(UntrustedInput) as caught:
        loads_bounded(text)
    message = str(caught.value)
    assert "nested deeper than 64 levels" in message
    if depth == 600:  # the parser coped: the shape check names the field
        assert caught.value.path == "items[0].options"
    else:  # the parser gave up (RecursionError inside json): the byte where the limit was crossed
        assert "at byte" in message
    with pytest.raises(UntrustedInput):
        loads_bounded(text.encode())  # bytes too


def test_loads_bounded_parses_ordinary_bodies():
    body = {"events": [{"order_create": {"order_id": "DEMO-1", "items": [{"quantity": 2}]}}]}
    assert loads_bounded(json.dumps(body).encode()) == body
    assert loads_bounded(json.dumps(body)) == body


@pytest.mark.parametrize("raw, limits, reason", [
    (b"", {}, "not JSON"),
    (b'{"a": ', {}, "not JSON"),
    (b'{"a": "\xff"}', {}, "not UTF-8"),
    (b'{"a": NaN}', {}, "NaN is not a JSON number"),
    (b'{"a": -Infinity}', {}, "-Infinity is not a JSON number"),
    (b'{"a": ' + b"9" * 5000 + b"}", {}, "not JSON"),  # past Python's 4,300-digit int limit
    (b'{"a": "' + b"x" * 2000 + b'"}', {"max_string": 1000}, "a is a string of 2,000 characters"),
    (b" " * 2001, {"max_bytes": 2000}, "body of 2,001 bytes is over the limit of 2,000"),
])
def test_loads_bounded_refuses_with_a_reason(raw, limits, reason):
    with pytest.raises(UntrustedInput, match=reason):
        loads_bounded(raw, **limits)


def test_loads_bounded_checks_depth_and_width():
    with pytest.raises(UntrustedInput, match="nested deeper than 3 levels") as caught:
        loads_bounded('{"a": {"b": {"c": {"d": 1}}}}', max_depth=3)
    assert caught.value.path == "a.b.c"
    with pytest.raises(UntrustedInput, match="over the limit of 10 values"):
        loads_bounded(json.dumps(list(range(100))), max_nodes=10)


def test_strip_controls_removes_nul_and_controls_in_keys_and_values_and_says_where():
    body = {
        "order_id": "DEMO-1",
        "customer_notes": "leave at\x00 door\x07",
        "keep": "tab\there\nnew line\r\n",
        "items": [{"merchant_item_id": "SKU\x00-1", "options": [{"label": "x", "value": "\x1f"}]}],
        "bad\x00key": {"inner": "ok"},
    }
    clean, changed = strip_controls(body)
    assert clean == {
        "order_id": "DEMO-1",
        "customer_notes": "leave at door",
        "keep": "tab\there\nnew line\r\n",
        "items": [{"merchant_item_id": "SKU-1", "options": [{"label": "x", "value": ""}]}],
        "badkey": {"inner": "ok"},
    }
    assert changed == ["customer_notes", "items[0].merchant_item_id", "items[0].options[0].value", "badkey"]
    assert body["customer_notes"] == "leave at\x00 door\x07"  # the input is not modified
    json.dumps(clean).encode("utf-8")  # storable


def test_strip_controls_removes_lone_surrogates_and_keeps_real_astral_characters():
    body = json.loads('{"note": "a\\ud800b", "emoji": "\\ud83d\\ude00", "\\udfff": ["\\udc00"]}')
    clean, changed = strip_controls(body)
    assert clean == {"note": "ab", "emoji": "\U0001F600", "": [""]}
    assert changed == ["note", '[""]', '[""][0]']
    json.dumps(clean, ensure_ascii=False).encode("utf-8")  # would raise UnicodeEncodeError on a surrogate


def test_strip_controls_keeps_both_values_when_cleaned_keys_collide():
    clean, changed = strip_controls({"a\x00": 1, "a": 2, "a\x01": 3})
    assert sorted(clean.values()) == [1, 2, 3] and set(clean) == {"a", "a~2", "a~3"}
    assert len(changed) == 3


def test_strip_controls_returns_clean_input_as_is_and_handles_any_depth():
    body = {"a": [1, "two", {"b": None}]}
    same, changed = strip_controls(body)
    assert same is body and changed == []
    deep = nested_lists(100_000)
    deep_leaf = deep
    for _ in range(99_999):
        deep_leaf = deep_leaf[0]
    deep_leaf.append("x\x00")
    clean, changed = strip_controls(deep)
    assert len(changed) == 1 and changed[0].endswith("more levels)")
    assert strip_controls("a\x00b") == ("ab", ["(top level)"])


def test_strip_controls_reports_a_nul_at_every_level_of_a_deep_body_in_linear_time():
    root: dict = {}
    node = root
    for _ in range(20_000):
        node["k\x00"] = {}
        node = node["k\x00"]
    clean, changed = strip_controls(root)
    assert len(changed) == 20_000
    assert changed[0] == "k" and changed[-1] == "k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k... (19984 more levels)"


_text = st.text(max_size=12) | st.sampled_from(["a\x00b", "tab\there", "\ud800", "x" * 40])
_doc = st.recursive(st.none() | st.integers() | st.floats(allow_nan=False) | _text,
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(_doc, st.integers(1, 6), st.integers(1, 200))
def test_what_plainly_safe_passes_the_walks_would_pass_unchanged(doc, depth, longest):
    if not plainly_safe(doc, max_depth=depth, max_string=longest):
        return
    check_shape(doc, max_depth=depth, max_string=longest)  # raises if the text lied
    assert strip_controls(doc) == (doc, [])


def test_plainly_safe_says_walk_it_for_controls_depth_and_length():
    order = {"order_id": "A-1", "items": [{"sku": "TEE", "qty": 1}]}
    assert plainly_safe(order, max_depth=3, max_string=1000)
    assert not plainly_safe(order, max_depth=2, max_string=1000)  # items[0] is level 3
    assert not plainly_safe(order, max_depth=3, max_string=20)
    assert not plainly_safe({**order, "note": "a\x00b"}, max_depth=3, max_string=1000)
    assert not plainly_safe({**order, "note": "\ud800"}, max_depth=3, max_string=1000)
