"""AligniSandbox on its own, over real loopback HTTP: the rules the adapter tests rely on.

These keep the simulator honest where Aligni's documentation is explicit (token in the path,
the search's indexed OR terms, X-Pagination, quantity available never negative) and pin down the
readings it offers where the documentation is silent (`adjust_mode`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import Decimal

import httpx
import pytest

from connector.sandbox.aligni import AligniSandbox
from tests.support.warehouse import served

TOKEN = "sandboxTokenForTests"


@pytest.fixture
def sb():
    with served(AligniSandbox(TOKEN, rate_limit_per_minute=0)) as s:
        yield s


@pytest.fixture
def http(sb):
    with httpx.Client(base_url=f"{sb.url}/api/v2/{TOKEN}", headers={"Accept": "application/xml"}) as c:
        yield c


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [el.findtext("id") for el in ET.fromstring(response.content)]


def errors(response: httpx.Response) -> list[str]:
    return [e.text for e in ET.fromstring(response.content).iter("error")]


def test_the_token_is_the_path(sb, http) -> None:
    assert http.get("/part").status_code == 200
    wrong = httpx.get(f"{sb.url}/api/v2/someoneElse/part")
    assert wrong.status_code == 401 and errors(wrong) == ["Invalid API token"] and "someoneElse" not in wrong.text
    assert httpx.get(f"{sb.url}/api/v1/{TOKEN}/part").status_code == 404
    assert sb.requests == {"GET /api/v2/{token}/part": 2, "GET /api/v1/{token}/part": 1}


def test_search_terms_are_ored_case_insensitive_and_read_in_order(sb, http) -> None:
    a = sb.add_unit("A", 1, sublocation="Top Shelf", lot_code="LOT-x1")
    b = sb.add_unit("B", 1, sublocation="Box 3", datecode="2601")
    sb.add_unit("C", 1, sublocation="Floor")
    q = {"field0": "inventory_location", "comparison0": "contains", "term0": "SHELF"}
    assert ids(http.get("/inventory_units/search", params=q)) == [a]
    both = {**q, "field1": "datecode", "comparison1": "contains", "term1": "2601"}
    assert ids(http.get("/inventory_units/search", params=both)) == [a, b]
    skipped = {**q, "field2": "datecode", "term2": "2601"}  # index 1 missing: index 2 ignored
    assert ids(http.get("/inventory_units/search", params=skipped)) == [a]
    assert ids(http.get("/inventory_units/search", params={"term0": "lot-X", "term1": "box"})) == [a, b], "defaults"
    bad = http.get("/inventory_units/search", params={"field0": "colour", "term0": "x"})
    assert bad.status_code == 422 and errors(bad) == ["Unknown search field: colour"]
    assert http.get("/inventory_units/search", params={"comparison0": "equals", "term0": "x"}).status_code == 422


def test_lists_are_paged_with_x_pagination(sb, http) -> None:
    for i in range(5):
        sb.add_part(f"P{i}")
    first = http.get("/part", params={"per_page": 2})
    assert ids(first) == ["701", "702"]
    assert json.loads(first.headers["X-Pagination"]) == {
        "total_entries": 5, "total_pages": 3, "per_page": 2, "current_page": 1, "first_page": True,
        "last_page": False, "previous_page": None, "next_page": 2, "out_of_range": False,
    }
    last = http.get("/part", params={"per_page": 2, "page": 3})
    assert ids(last) == ["705"] and json.loads(last.headers["X-Pagination"])["next_page"] is None
    beyond = http.get("/part", params={"per_page": 2, "page": 9})
    assert ids(beyond) == [] and json.loads(beyond.headers["X-Pagination"])["out_of_range"] is True
    assert json.loads(http.get("/part").headers["X-Pagination"])["per_page"] == 25


def test_parts_changed_since(sb, http) -> None:
    from datetime import UTC, datetime

    sb.add_part("OLD", updated_at=datetime(2025, 1, 1, tzinfo=UTC))
    new = sb.add_part("NEW", updated_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert ids(http.get("/part", params={"filter[updated_on][gte]": "2026-02-01T00:00:00-08:00"})) == [new]
    assert http.get("/part", params={"filter[updated_on][gte]": "last week"}).status_code == 422


def test_one_unit_has_the_documented_single_shape(sb, http) -> None:
    uid = sb.add_unit("A", 3, lot_code="L1")
    pid = sb.part_id("A")
    el = ET.fromstring(http.get(f"/parts/{pid}/inventory_units/{uid}").content)
    assert el.tag == "inventory_unit" and el.find("part_id") is None and el.findtext("lot_code") == "L1"
    assert el.findtext("inventory_location") == "Main Warehouse - Finished Goods"
    assert http.get(f"/parts/{int(pid) + 1}/inventory_units/{uid}").status_code == 404, "another part's path"


@pytest.mark.parametrize(("mode", "sent", "after"), [
    ("signed", "-3", 7), ("signed", "+2", 12), ("signed", "4", 4),
    ("relative", "-3", 7), ("relative", "4", 14),
    ("absolute", "4", 4), ("absolute", "-3", None),
])
def test_adjust_quantity_readings(mode, sent, after) -> None:
    with served(AligniSandbox(TOKEN, adjust_mode=mode)) as sb:
        uid = sb.add_unit("A", 10)
        r = httpx.put(f"{sb.url}/api/v2/{TOKEN}/parts/{sb.part_id('A')}/inventory_units/{uid}/adjust_quantity",
                      params={"inventory_unit[quantity]": sent, "inventory_unit[inventory_record][comment]": "why"})
        if after is None:
            assert r.status_code == 422 and errors(r) == ["Quantity must be greater than or equal to 0"]
            assert sb.quantity(uid) == 10 and sb.history(uid) == []
        else:
            assert r.status_code == 200 and ET.fromstring(r.content).findtext("quantity") == str(after)
            assert sb.quantity(uid) == after and sb.history(uid)[0]["comment"] == "why"


def test_quantity_available_never_goes_negative(sb, http) -> None:
    uid = sb.add_unit("A", 10, reserved=4)
    path = f"/parts/{sb.part_id('A')}/inventory_units/{uid}/adjust_quantity"
    r = http.put(path, params={"inventory_unit[quantity]": "-7"})
    assert r.status_code == 422 and errors(r) == ["Quantity available may not be negative"] and sb.quantity(uid) == 10
    assert http.put(path, params={"inventory_unit[quantity]": "-6"}).status_code == 200
    assert (sb.quantity(uid), sb.available(uid)) == (4, 0)
    assert http.put(path, params={"inventory_unit[quantity]": "ten"}).status_code == 422


def test_adjust_quantity_also_reads_an_xml_body(sb, http) -> None:
    uid = sb.add_unit("A", 10)
    r = http.put(f"/parts/{sb.part_id('A')}/inventory_units/{uid}/adjust_quantity",
                 content=b"<inventory_unit><quantity>-1.5</quantity></inventory_unit>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 200 and sb.quantity(uid) == Decimal("8.5")


def test_thirty_calls_a_minute() -> None:
    with served(AligniSandbox(TOKEN)) as sb:
        with httpx.Client(base_url=f"{sb.url}/api/v2/{TOKEN}") as c:
            codes = [c.get("/part").status_code for _ in range(31)]
            assert codes == [200] * 30 + [429]
            assert int(c.get("/part").headers["Retry-After"]) >= 1
            assert httpx.get(f"{sb.url}/_sandbox/state").status_code == 200, "the control API is never limited"


def test_control_api_seeds_and_reports(sb) -> None:
    assert httpx.post(f"{sb.url}/_sandbox/parts", json=[{"partnumber": "A", "description": "Thing"}]).json() == {"ids": ["701"]}
    created = httpx.post(f"{sb.url}/_sandbox/units", json={"partnumber": "A", "quantity": 5, "lot_code": "L",
                                                             "created_at": "2026-01-01T00:00:00Z"}).json()
    state = httpx.get(f"{sb.url}/_sandbox/state").json()
    assert state["units"][created["ids"][0]] == {"part": "A", "place": "Main Warehouse - Finished Goods", "quantity": "5",
                                                 "available": "5", "lot_code": "L", "datecode": "", "history": 0}
    assert httpx.post(f"{sb.url}/_sandbox/units", json={"quantity": 1}).status_code == 400
    assert httpx.post(f"{sb.url}/_sandbox/faults", json={"latency_ms": 5}).json()["latency_ms"] == 5
