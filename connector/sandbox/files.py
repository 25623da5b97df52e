"""A loopback file-exchange warehouse: reads our order files, writes shipment and stock files.

Faithful where it matters to the connector (DropStream's DSFX layout, research A.8):
- it picks up `ord_*.csv` from its inbox (our outbound folder), ignoring dot files and partial
  uploads, and moves each to its own `received/` folder. Like a real file drop it has no
  duplicate check: every file is an order, so a second file for a reference is a second order
  (`orders_created` counts them: the at-most-once check);
- it writes `shp_*.csv` (one row per shipped line; a split order in two shipment ids, a voided
  first label as `voided` rows with their own tracking number) and `inv_*.csv` full snapshots
  into its outbox (our inbound folder), each under a temporary name first, then renamed;
- headers can be renamed (`headers`), like a partner with its own spelling.

There is no HTTP: `kit().app` is None. `SftpServer` serves the same folder over a real SFTP
server (asyncssh) on loopback, in its own thread, with `Faults` injected per SFTP operation
(`{"method": "RENAME", "path": "/in/.ord_", "status": 500, "after": True}`): a status is an SFTP
failure reply, "timeout" a reply held back `timeout_s`, "reset" a dropped connection.
`state()` is the control view (there is no `/_sandbox/state` without HTTP).
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
import posixpath
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh

from connector.sandbox.common import DEMO_PLAN, Planned, ShipPlan, halves
from connector.sandbox.faults import Faults

ORDER_COLUMNS = ("reference", "order_id", "ship_method", "sku", "quantity")  # what the warehouse needs of an order
SHIPMENT_COLUMNS = ("reference", "shipment_id", "carrier", "service", "tracking_number", "ship_date", "sku", "quantity", "cost", "voided")
STOCK_COLUMNS = ("sku", "warehouse_id", "available", "on_hand")
WAREHOUSES = ("east", "west")


class FilesWarehouse(Planned):
    """The warehouse's side of the folder. Thread-safe: tests, the demo and an SFTP server
    thread may touch it at once, so state changes hold `self._lock`."""

    def __init__(self, root: Path | str | None = None, *, products=("SKU-1", "SKU-2", "SKU-3"),
                 ship_methods=("Standard", "Expedited", "2-Day"), inbox: str = "in", outbox: str = "out",
                 headers: dict[str, str] | None = None, delimiter: str = ",", encoding: str = "utf-8",
                 split_every: int = 0, void_every: int = 0, shipping_cost: str = "7.50"):
        self.products, self.ship_methods = tuple(products), tuple(ship_methods)
        self.inbox_dir, self.outbox_dir = inbox, outbox
        self.headers = dict(headers or {})  # our column name -> this warehouse's header
        self.delimiter, self.encoding = delimiter, encoding
        self.split_every, self.void_every, self.shipping_cost = split_every, void_every, shipping_cost
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.root: Path | None = None
        self.orders: dict[str, list[dict[str, Any]]] = defaultdict(list)  # reference -> one entry per order file
        self.create_attempts: dict[str, int] = defaultdict(int)
        self.stock: dict[tuple[str, str], tuple[int, int]] = {}
        self.plans: dict[str, ShipPlan] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.written: list[str] = []  # files written to the outbox, in order
        self._stock_dirty = False
        if root is not None:
            self.bind(root)

    # -- Python-side API (tests, demo) --------------------------------------------------------

    def bind(self, root: Path | str) -> None:
        """Serve this folder (created if needed); a stock change made before is written now."""
        with self._lock:
            self.root = Path(root)
            for d in (self.inbox_dir, self.outbox_dir, "received"):
                (self.root / d).mkdir(parents=True, exist_ok=True)
            if self._stock_dirty:
                self._write_stock()

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        """Change the shelf and drop a new full snapshot (`inv_*.csv`)."""
        with self._lock:
            self.stock[(sku, str(warehouse_id))] = (available, available if on_hand is None else on_hand)
            self._stock_dirty = True
            if self.root is not None:
                self._write_stock()

    def pick_up(self) -> list[str]:
        """Take every complete order file from the inbox; returns the references read."""
        with self._lock:
            assert self.root is not None, "bind() the warehouse to a folder first"
            inbox = self.root / self.inbox_dir
            got = []
            for path in sorted(inbox.glob("ord_*.csv")):
                for ref, lines in self._read_order(path).items():
                    self.create_attempts[ref] += 1
                    self.orders[ref].append({"file": path.name, "lines": lines, "seq": next(self._seq), "shipped": False})
                    got.append(ref)
                path.rename(self.root / "received" / path.name)
                self.requests["order files read"] += 1
            return got

    def ship(self, reference: str, **plan: Any) -> list[dict[str, Any]]:
        """Ship one order now (in its own `shp_` file); returns the shipment rows written."""
        with self._lock:
            if plan:
                self.plan(reference, **plan)
            self.pick_up()
            return self._ship_file([reference])

    def ship_all(self) -> list[dict[str, Any]]:
        """Ship every open order, in one `shp_` file (as a warehouse's daily drop)."""
        with self._lock:
            self.pick_up()
            return self._ship_file(list(self.orders))

    def drop(self, name: str, text: str) -> Path:
        """Put a hand-made file in the outbox (tests: malformed rows, other layouts)."""
        with self._lock:
            return self._publish(name, text)

    def orders_created(self, reference: str) -> int:
        with self._lock:
            self.pick_up()
            return len(self.orders.get(reference, []))

    def created(self) -> int:
        with self._lock:
            self.pick_up()
            return sum(len(v) for v in self.orders.values())

    def state(self) -> dict[str, Any]:
        with self._lock:
            self.pick_up()
            return {
                "orders": {ref: [o["file"] for o in files] for ref, files in self.orders.items()},
                "create_attempts": dict(self.create_attempts),
                "written": list(self.written),
                "stock": {f"{sku}@{wh}": q for (sku, wh), q in self.stock.items()},
                "requests": dict(self.requests),
            }

    # -- internals (callers hold the lock) ----------------------------------------------------

    def _h(self, name: str) -> str:
        return self.headers.get(name, name)

    def _read_order(self, path: Path) -> dict[str, list[tuple[str, int]]]:
        text = path.read_bytes().decode("utf-8-sig" if self.encoding == "utf-8" else self.encoding)
        out: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=self.delimiter):
            out[row[self._h("reference")]].append((row[self._h("sku")], int(row[self._h("quantity")])))
        return dict(out)

    def _publish(self, name: str, text: str) -> Path:
        assert self.root is not None, "bind() the warehouse to a folder first"
        folder = self.root / self.outbox_dir
        tmp = folder / f".{name}.part"
        tmp.write_bytes(text.encode(self.encoding))
        os.replace(tmp, folder / name)
        self.written.append(name)
        return folder / name

    def _csv(self, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        w = csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n")
        w.writerow([self._h(c) for c in columns])
        w.writerows([[row.get(c, "") for c in columns] for row in rows])
        return out.getvalue()

    def _stamp(self) -> str:
        return f"{datetime.now(UTC):%y%m%d%H%M%S}_{next(self._seq):06d}"

    def _write_stock(self) -> None:
        rows = [{"sku": sku, "warehouse_id": wh, "available": a, "on_hand": h} for (sku, wh), (a, h) in sorted(self.stock.items())]
        self._publish(f"inv_{self._stamp()}.csv", self._csv(STOCK_COLUMNS, rows))
        self.requests["stock files written"] += 1
        self._stock_dirty = False

    def _ship_file(self, references: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for ref in references:
            for order in self.orders.get(ref, []):
                if not order["shipped"]:
                    rows += self._shipment_rows(ref, order)
                    order["shipped"] = True
        if rows:
            self._publish(f"shp_{self._stamp()}.csv", self._csv(SHIPMENT_COLUMNS, rows))
            self.requests["shipment files written"] += 1
        return rows

    def _shipment_rows(self, ref: str, order: dict[str, Any]) -> list[dict[str, Any]]:
        seq, lines = order["seq"], order["lines"]
        plan = ShipPlan.pick(self.plans, ref, seq, self.split_every, self.void_every)
        groups = halves(lines, lambda line: line[1], lambda line, q: (line[0], q)) if plan.split else [lines]
        labels = itertools.count(1)
        rows: list[dict[str, Any]] = []

        def rows_for(group, voided: bool) -> list[dict[str, Any]]:
            label = next(labels)
            tracking = plan.tracking if plan.tracking is not None else f"1ZFX{seq:08d}{label:02d}"
            common = {"reference": ref, "shipment_id": f"FX{seq:06d}-{label}", "carrier": "UPS", "service": "Ground",
                      "tracking_number": tracking, "ship_date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "cost": self.shipping_cost, "voided": "true" if voided else ""}
            return [{**common, "sku": sku, "quantity": qty} for sku, qty in group]

        if plan.void_first:
            rows += rows_for(lines, voided=True)
        for group in groups:
            rows += rows_for(group, voided=False)
        return rows


# -- SFTP ---------------------------------------------------------------------------------------


class _Login(asyncssh.SSHServer):
    """One account: a password and/or authorized public keys."""

    def __init__(self, username: str, password: str | None, keys: list[asyncssh.SSHKey]):
        self.username, self.password, self.keys = username, password, {k.public_data for k in keys}

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return self.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        return username == self.username and password == self.password

    def public_key_auth_supported(self) -> bool:
        return bool(self.keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.username and key.public_data in self.keys


class _FaultySftp(asyncssh.SFTPServer):
    """asyncssh's file server chrooted to the folder, with scripted faults per operation."""

    def __init__(self, chan, server: SftpServer):
        super().__init__(chan, chroot=str(server.root).encode())
        self.server = server

    async def _around(self, op: str, path: bytes, call):
        vpath = posixpath.normpath(posixpath.join("/", path.decode(errors="replace")))
        self.server.requests[op] += 1
        picked = self.server.faults.pick(op, vpath)
        kind, after = picked if picked else (None, False)
        if kind is not None and not after:
            await self._fail(kind)
        result = call()
        if asyncio.iscoroutine(result):
            result = await result
        if kind is not None and after:
            await self._fail(kind)
        return result

    async def _fail(self, kind: Any) -> None:
        self.server.faults._count(str(kind))
        if kind == "timeout":
            # The client gives up first; like the HTTP sandboxes' timeouts, the held operation
            # then fails (after=True: it was done before the reply was held).
            await asyncio.sleep(self.server.faults.timeout_s)
            raise asyncssh.SFTPFailure("injected timeout")
        if kind == "reset":
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("connection dropped (injected)")
        raise asyncssh.SFTPFailure(f"injected failure {kind}")

    async def open(self, path, pflags, attrs):
        return await self._around("OPEN", path, lambda: super(_FaultySftp, self).open(path, pflags, attrs))

    async def stat(self, path):
        return await self._around("STAT", path, lambda: super(_FaultySftp, self).stat(path))

    async def lstat(self, path):
        return await self._around("STAT", path, lambda: super(_FaultySftp, self).lstat(path))

    async def rename(self, oldpath, newpath):
        return await self._around("RENAME", oldpath, lambda: super(_FaultySftp, self).rename(oldpath, newpath))

    async def posix_rename(self, oldpath, newpath):
        return await self._around("RENAME", oldpath, lambda: super(_FaultySftp, self).posix_rename(oldpath, newpath))

    async def remove(self, path):
        return await self._around("REMOVE", path, lambda: super(_FaultySftp, self).remove(path))

    async def mkdir(self, path, attrs):
        return await self._around("MKDIR", path, lambda: super(_FaultySftp, self).mkdir(path, attrs))

    async def scandir(self, path):
        names = await self._around("LIST", path, lambda: _collect(super(_FaultySftp, self).scandir(path)))
        for name in names:
            yield name


async def _collect(aiter) -> list:
    return [x async for x in aiter]


class SftpServer:
    """A real SFTP server on loopback for one folder, in its own thread and event loop."""

    def __init__(self, root: Path | str, *, username: str = "warehouse", password: str | None = None,
                 client_keys: list[asyncssh.SSHKey] | None = None, host_key: asyncssh.SSHKey | None = None,
                 faults: Faults | None = None, host: str = "127.0.0.1"):
        self.root, self.host, self.username, self.password = Path(root), host, username, password
        self.client_keys = list(client_keys or [])
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.faults = faults or Faults()
        self.requests: dict[str, int] = defaultdict(int)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox:sftp", daemon=True)
        self._acceptor: Any = None

    @property
    def fingerprint(self) -> str:
        return self.host_key.get_fingerprint("sha256")

    @property
    def public_key_line(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    def start(self) -> SftpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._acceptor = await asyncssh.listen(
            self.host, 0, server_host_keys=[self.host_key],
            server_factory=lambda: _Login(self.username, self.password, self.client_keys),
            sftp_factory=lambda chan: _FaultySftp(chan, self), allow_scp=False, line_editor=False,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._acceptor is None:
            return

        async def close() -> None:
            self._acceptor.close()
            await self._acceptor.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._acceptor = None

    def __enter__(self) -> SftpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- the kit ------------------------------------------------------------------------------------


# The contract's operations -> the first SFTP operation each adapter call makes (for faults).
SFTP_OPERATIONS = {
    "create": ("RENAME", "/in/.ord_"),  # the rename that publishes an order file
    "find": ("OPEN", "/in/.connector/orders/"),  # reading the reference's marker
    "shipments": ("LIST", "/out"),
    "ack": ("RENAME", "/out/shp_"),
    "stock": ("LIST", "/out"),
}


class FilesKit:
    """The file warehouse as a `connector.sandbox.kits.WarehouseKit` (local folder or SFTP).

    Faults need replies to lose: over SFTP they are aimed at the operation each adapter call
    starts with (`SFTP_OPERATIONS`); a local folder cannot fail that way. `faults` is shared with
    the kit's own SFTP server, or with one a test starts itself (`SftpServer(..., faults=kit.faults)`).
    """

    name = "files"
    app = None  # no HTTP

    def __init__(self, warehouse: FilesWarehouse, *, transport: str = "local", credential: str = "sandbox-secret"):
        self.sandbox = warehouse
        self.transport = transport
        self.credential = credential
        self.faults = Faults()  # effective over SFTP only: a local folder has no replies to lose
        self.ship_methods = warehouse.ship_methods
        self.skus = warehouse.products
        self.sftp: SftpServer | None = None

    def warehouse_config(self, base_url: str, workdir) -> dict[str, Any]:
        root = Path(workdir) / "exchange"
        if self.sandbox.root != root:
            self.sandbox.bind(root)
        if self.transport != "sftp":
            return {"adapter": "files", "transport": "local", "root": str(root)}
        if self.sftp is not None and self.sftp.root != root:
            self.close()
        if self.sftp is None:
            self.sftp = SftpServer(root, password=self.credential, faults=self.faults).start()
        return {"adapter": "files", "transport": "sftp", "host": self.sftp.host, "port": self.sftp.port,
                "username": self.sftp.username, "password": self.credential, "host_key": self.sftp.fingerprint, "timeout_s": 5.0}

    def set_stock(self, sku: str, warehouse_id: str, available: int, on_hand: int | None = None) -> None:
        self.sandbox.set_stock(sku, warehouse_id, available, on_hand)

    def ship_all(self) -> None:
        self.sandbox.ship_all()

    def ship(self, reference: str, *, split: bool = False, void_first: bool = False, tracking: str | None = None) -> list[Any]:
        return self.sandbox.ship(reference, split=split, void_first=void_first, tracking=tracking)

    def fail_next(self, operation: str, kind: int | str, *, after: bool = False) -> None:
        if self.transport != "sftp":
            raise NotImplementedError("a local folder has no replies to lose or delay")
        if kind == 429:
            raise NotImplementedError("SFTP has no rate-limit replies")
        if operation not in SFTP_OPERATIONS:
            raise NotImplementedError(f"the files adapter makes no {operation!r} call")
        method, path = SFTP_OPERATIONS[operation]
        self.faults.script.append({"method": method, "path": path, "status": kind, "after": after})

    def orders_created(self, reference: str) -> int:
        # A file drop has no duplicate check: every order file the warehouse receives is an order.
        return self.sandbox.orders_created(reference)

    def created(self) -> int:
        return self.sandbox.created() if self.sandbox.root is not None else 0

    def create_attempts(self) -> dict[str, int]:
        if self.sandbox.root is not None:
            self.sandbox.pick_up()
        return dict(self.sandbox.create_attempts)

    def warehouse_ids(self) -> list[str]:
        return list(WAREHOUSES)

    def close(self) -> None:
        if self.sftp is not None:
            self.sftp.stop()
            self.sftp = None


def kit(*, products, ship_methods, credential: str = "sandbox-secret", transport: str = "local", **kw: Any) -> FilesKit:
    """A file-exchange warehouse kit (demo, bench, pipeline tests); `transport="sftp"` serves the
    folder over a loopback SFTP server started with the first `warehouse_config` call."""
    kw = {**DEMO_PLAN, **kw}
    return FilesKit(FilesWarehouse(products=products, ship_methods=ship_methods, **kw), transport=transport, credential=credential)
