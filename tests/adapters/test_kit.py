"""The adapter kit's own parts: paginators and their loop guards, the runtime's rate limiters,
whose reference is whose, config paths read from the config file's folder, the shared JSON
helpers, and the sandbox kits found by entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters import kit
from adapters.base import AdapterContext, order_reference, reference_order_id
from adapters.files import FilesConfig
from adapters.http import DEFAULT_LIMITERS, CursorPages, Limiters, NextLinkPages, PageNumbers, limiter_for
from adapters.shipbob import ShipBobAdapter
from connector.errors import PermanentError
from connector.sandbox import kits

# -- paginators -------------------------------------------------------------------------------


class Server:
    """A fake list endpoint: answers from `replies` in turn and keeps the parameters asked."""

    def __init__(self, *replies: Any):
        self.replies, self.asked = list(replies), []

    async def __call__(self, params: dict[str, Any]) -> Any:
        self.asked.append(dict(params))
        return self.replies.pop(0)


async def read(paginator, server: Server, params: dict[str, Any] | None = None) -> list[Any]:
    return [item async for page in paginator.pages(server, params or {"q": "x"}, what="GET /things") for item in page]


async def test_page_numbers_stop_at_the_page_count_the_total_or_a_short_page() -> None:
    counted = Server({"items": [1, 2], "pages": 2}, {"items": [3, 4], "pages": 2})
    assert await read(PageNumbers("v", items="items", page_param="page", size=2, size_param="size", pages=lambda b: b["pages"]), counted) == [1, 2, 3, 4]
    assert counted.asked == [{"q": "x", "page": 1, "size": 2}, {"q": "x", "page": 2, "size": 2}]
    totalled = Server({"r": [1, 2], "n": 3}, {"r": [3], "n": 3})
    assert await read(PageNumbers("v", items="r", page_param="p", size=2, total=lambda b: b["n"]), totalled) == [1, 2, 3]
    short = Server([1, 2], [3])  # bare arrays, no count: a short page is the last
    assert await read(PageNumbers("v", page_param="Page", size=2, size_param="Limit"), short) == [1, 2, 3]
    empty = Server({"items": [], "pages": 5})
    assert await read(PageNumbers("v", items="items", page_param="page", size=2, pages=lambda b: b["pages"]), empty) == []


async def test_a_server_that_ignores_the_page_number_is_an_error_not_a_loop() -> None:
    same = Server(*([[1, 2]] * 5))
    with pytest.raises(PermanentError, match="GET /things: page 2 is page 1 again"):
        await read(PageNumbers("v", page_param="Page", size=2), same)
    assert len(same.asked) == 2


async def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    server = Server({"items": [1], "next": "c2"}, {"items": [2], "next": "c3"}, {"items": [3], "next": "c2"})
    paginator = CursorPages("v", items="items", param="Cursor", cursor=lambda b: b["next"])
    with pytest.raises(PermanentError, match="cursor 'c2' handed out twice") as caught:
        await read(paginator, server)
    assert caught.value.vendor == "v" and [a.get("Cursor") for a in server.asked] == [None, "c2", "c3"]
    done = Server({"items": [1], "next": "c2"}, {"items": [2], "next": None})
    assert await read(paginator, done) == [1, 2]


async def test_next_links_replay_their_query_over_ours_and_a_link_back_is_an_error() -> None:
    def link(body: dict) -> str | None:
        return body.get("next")

    server = Server({"items": [1], "next": "https://elsewhere/v2/x?page=2"}, {"items": [2], "next": None})
    assert await read(NextLinkPages("v", items="items", link=link), server, {"filter": "a"}) == [1, 2]
    assert server.asked == [{"filter": "a"}, {"filter": "a", "page": "2"}]
    back = Server({"items": [1], "next": "/x?page=2"}, {"items": [2], "next": "/x?page=1"}, {"items": [3], "next": "/x?page=1&filter=a"})
    with pytest.raises(PermanentError, match="next link back to a page already read"):
        await read(NextLinkPages("v", items="items", link=link), back, {"filter": "a", "page": "1"})
    assert len(back.asked) == 2


async def test_every_paginator_stops_at_its_page_cap() -> None:
    endless = Server(*({"items": [n], "next": f"c{n}"} for n in range(10)))
    with pytest.raises(PermanentError, match="more than 3 pages"):
        await read(CursorPages("v", items="items", param="c", cursor=lambda b: b["next"], max_pages=3), endless)
    assert len(endless.asked) == 3


# -- rate limiters ------------------------------------------------------------------------------


def test_limiters_are_one_per_vendor_credential_and_never_keep_the_secret() -> None:
    limiters = Limiters()
    first = limiters.get("shipbob", "secret-token-1", 150)
    assert limiters.get("shipbob", "secret-token-1", 10) is first and first.per_minute == 150  # made once
    assert limiters.get("shipbob", "secret-token-2", 150) is not first
    assert limiters.get("extensiv", "secret-token-1", 150) is not first
    assert len(limiters) == 3 and "secret-token" not in repr(limiters._by_key)
    assert Limiters().get("shipbob", "secret-token-1", 150) is not first  # another runtime: another budget


def test_limiter_for_is_the_default_registry_and_adapters_take_the_contexts() -> None:
    assert limiter_for("ultracart", "k-1", 60) is DEFAULT_LIMITERS.get("ultracart", "k-1", 60)
    assert AdapterContext("acme").limiters is DEFAULT_LIMITERS
    config = {"adapter": "shipbob", "token": "same-token", "channel_id": 1}
    ours, theirs = Limiters(), Limiters()
    a = ShipBobAdapter(config, AdapterContext("acme", limiters=ours))
    b = ShipBobAdapter(config, AdapterContext("globex", limiters=ours))
    c = ShipBobAdapter(config, AdapterContext("acme", limiters=theirs))
    assert a.http.limiter is b.http.limiter  # one budget per token, across merchants
    assert c.http.limiter is not a.http.limiter and len(ours) == 1 and len(theirs) == 1


# -- references ---------------------------------------------------------------------------------


def test_owns_reads_plain_and_hashed_references() -> None:
    acme = AdapterContext("acme")
    assert acme.owns("acme-1001") and acme.order_id_of("acme-1001") == "1001"
    assert not acme.owns("globex-1001") and acme.order_id_of("globex-1001") is None
    assert not acme.owns("acmex-1") and not acme.owns("") and not acme.owns("acme")
    long_id = "A" * 60
    hashed = order_reference("acme", long_id)
    assert len(hashed) == 50 and acme.owns(hashed) and acme.order_id_of(hashed) == long_id[:34]
    assert not AdapterContext("globex").owns(hashed)
    # A merchant id that fills the kept head: still recognised.
    long_merchant = "m" * 45
    assert AdapterContext(long_merchant).owns(order_reference(long_merchant, "7"))
    assert not AdapterContext("m" * 44 + "x").owns(order_reference(long_merchant, "7"))
    assert reference_order_id("", "anything") == "anything"  # no merchant named: every reference


# -- config paths -------------------------------------------------------------------------------


def test_relative_paths_are_read_from_the_config_files_folder(tmp_path) -> None:
    folder = tmp_path / "etc" / "connector"
    sftp = {"adapter": "files", "transport": "sftp", "host": "h", "username": "u", "private_key": "keys/id_ed25519",
            "known_hosts": "keys/known_hosts", "root": "drop"}
    config = FilesConfig.model_validate(sftp, context={"base_dir": folder})
    assert config.private_key == str(folder / "keys/id_ed25519") and config.known_hosts == str(folder / "keys/known_hosts")
    assert config.root == "drop"  # a path on the SFTP server, not here
    local = FilesConfig.model_validate({"adapter": "files", "root": "exchange"}, context={"base_dir": folder})
    assert local.root == str(folder / "exchange") and local.outbound_dir == "in"  # folders stay under root
    absolute = FilesConfig.model_validate({**sftp, "known_hosts": "/etc/ssh/known", "private_key": "~/.ssh/id"}, context={"base_dir": folder})
    assert (absolute.known_hosts, absolute.private_key) == ("/etc/ssh/known", "~/.ssh/id")
    assert FilesConfig.model_validate({"adapter": "files", "root": "exchange"}).root == "exchange"  # no context: as written
    with pytest.raises(ValidationError, match="root"):
        FilesConfig.model_validate({"adapter": "files", "root": " "}, context={"base_dir": folder})


# -- the shared JSON helpers --------------------------------------------------------------------


def test_error_text_reads_any_shape() -> None:
    assert kit.error_text("  plain ") == "plain"
    assert kit.error_text([{"message": "a"}, "b", {"message": "a"}]) == "a; b; a"
    assert kit.error_text({"message": "m", "title": "m", "detail": "d"}) == "m; d"
    assert kit.error_text({"Message": "x", "ModelState": {"f": ["y"], "": ["z"]}}, fields=("ModelState",)) == "x; f: y; z"
    assert kit.error_text({"code": 7, "other": ["q"]}, messages=("code",), rest=True) == "7; other: q"
    assert kit.error_text({"a": "b", "c": "d"}, messages=("a", "c"), separator=": ") == "b: d"
    assert kit.error_text({"nothing": {"readable": 1}}) == '{"nothing": {"readable": 1}}'


def test_parse_time_iso_and_tracking_numbers() -> None:
    assert kit.parse_time("2026-03-05T10:00:00Z") == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert kit.parse_time("2026-03-05T10:00:00.1234567") == datetime(2026, 3, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert kit.parse_time("2026-03-05T02:00:00", naive=timezone(timedelta(hours=-8))) == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert kit.parse_time("2026-03-05T12:00:00+02:00").tzinfo is UTC
    assert kit.parse_time("soon") is None and kit.parse_time(None) is None and kit.parse_time("") is None
    assert kit.iso(datetime(2026, 3, 4, 21, 6, 7, tzinfo=timezone(timedelta(hours=-8)))) == "2026-03-05T05:06:07Z"
    assert kit.tracking_numbers(" 1Z1 ; 1Z2,1Z1 ", None, "", "1Z3") == ["1Z1", "1Z2", "1Z3"]
    assert kit.tracking_numbers("A|B", separators="|") == ["A", "B"] and kit.tracking_numbers("A,B", separators="") == ["A,B"]


# -- sandbox kits by entry point ----------------------------------------------------------------


def test_kits_are_the_installed_entry_points_and_a_third_partys_counts(monkeypatch) -> None:
    assert {"shipbob", "shipstation", "shipstation-v2", "files", "extensiv"} <= set(kits.KITS)
    assert kits.KITS["shipbob"] == "connector.sandbox.shipbob:kit"
    theirs = EntryPoint(name="mywms", value="connector.sandbox.extensiv:kit", group=kits.ENTRY_POINT_GROUP)
    monkeypatch.setattr(kits, "entry_points", lambda group: [theirs] if group == kits.ENTRY_POINT_GROUP else [])
    registry = kits._Kits()
    assert list(registry) == ["mywms"] and "shipbob" not in registry
    assert registry.factory("mywms")(products=("A",), ship_methods=("Standard",)).name == "extensiv"
    with pytest.raises(KeyError, match="no sandbox for warehouse 'nope'; available: mywms"):
        registry.factory("nope")


def test_a_registered_kit_is_served_in_its_own_process_with_a_ready_config(tmp_path) -> None:
    ready, config_file = tmp_path / "url", tmp_path / "warehouse.json"
    cmd = [sys.executable, "-m", "connector.sandbox.serve", "shipstation-v2", "--port", "0", "--ready-file", str(ready),
           "--config-file", str(config_file), "--token", "serve-key"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": "."})
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        url = ready.read_text()
        block = json.loads(config_file.read_text())
        assert block["adapter"] == "shipstation-v2" and block["base_url"] == url and block["api_key"] == "serve-key"
        import httpx

        with httpx.Client(base_url=url, headers={"api-key": "serve-key"}) as client:
            assert client.get("/v2/carriers").status_code == 200
            assert client.get("/_sandbox/counters").json()["requests"] == {"GET /v2/carriers": 1}
    finally:
        proc.terminate()
        proc.wait(10)
