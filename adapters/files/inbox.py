"""Shipment and stock files in: `shp_*.csv` and `inv_*.csv` in the inbound folder.

A ledger in the inbound folder itself (`.connector-ledger.json`) remembers, per file still
there, when it was first seen and which of its shipments were acknowledged, plus the stock
snapshot last applied. Shipments are at-least-once: a file stays (and is read again) until every
live shipment in it has been acknowledged, i.e. its tracking reached the cart; then it moves to
the archive folder. A crash in between only means a re-read, which the engine de-duplicates by
shipment id. Stock files are full snapshots: the newest is applied, every older one archived.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.files.calls import Calls, join
from adapters.files.config import FilesConfig
from adapters.files.layout import FileProblem, parse_shipments, parse_stock
from adapters.files.transport import Entry
from connector.domain import Shipment, StockLevel
from connector.errors import ConfigurationError, PermanentError, TransientError

LEDGER = ".connector-ledger.json"
STALE_AFTER = timedelta(hours=24)  # a file still waiting after this is reported


class Inbox:
    """Reads, acknowledges and archives the warehouse's files; `problems` holds what was wrong."""

    def __init__(self, config: FilesConfig, calls: Calls, report: Callable[[str, list[FileProblem]], Any]):
        self.config = config
        self.calls = calls
        self.io = calls.io
        self.dir = config.inbound_dir
        self.report = report  # (kind, problems) -> awaitable: log + event log + adapter.problems
        self.files: dict[str, dict[str, bool]] = {}  # last read: file -> {shipment id: voided}
        self.snapshot_at: datetime | None = None
        self._archive_ready = False

    # -- shipments ----------------------------------------------------------------------------

    async def shipments(self) -> list[Shipment]:
        """Unacknowledged shipments of every `shp_*` file, oldest file first (a shipment id in two
        files is reported once, as the later file has it)."""
        problems: list[FileProblem] = []
        ledger = await self._ledger()
        before = json.dumps(ledger, sort_keys=True)
        seen = ledger.setdefault("files", {})
        now = datetime.now(UTC)
        found: dict[str, Shipment] = {}
        self.files = {}
        entries = await self._entries(self.config.shipment_prefix)
        for entry in entries:
            info = seen.setdefault(entry.name, {"seen": now.isoformat(), "acked": []})
            text = await self._text(entry.name, problems)
            if text is None:
                continue
            shipments, file_problems = parse_shipments(entry.name, text, self.config.headers("shipments"), self.config.delimiter)
            problems += file_problems
            if any(p.fatal for p in file_problems):
                continue  # left in place for someone to fix; reported on every pass
            acked = set(info["acked"])
            self.files[entry.name] = {s.shipment_id: s.voided for s in shipments}
            waiting = [s for s in shipments if s.shipment_id not in acked]
            if not any(not s.voided for s in waiting):
                # Nothing to post or acknowledge (all done, only voided labels, or empty): done.
                await self._archive(entry.name)
                seen.pop(entry.name, None)
                self.files.pop(entry.name)
            elif now - datetime.fromisoformat(info["seen"]) > STALE_AFTER:
                ids = ", ".join(s.shipment_id for s in waiting if not s.voided)
                problems.append(FileProblem(entry.name, 0, f"waiting since {info['seen'][:16]}Z for shipment(s) {ids} to reach the cart "
                                            "(unknown order or no tracking number?); archive the file by hand once handled"))
            for s in waiting:
                found[s.shipment_id] = s
        listed = {e.name for e in entries}
        ledger["files"] = {name: info for name, info in seen.items() if name in listed}
        if json.dumps(ledger, sort_keys=True) != before:
            await self._save(ledger)
        await self.report("shipments", problems)
        return list(found.values())

    async def acknowledge(self, shipments: list[Shipment]) -> None:
        """Record the shipments as done in their files' ledger entries; archive files with nothing left."""
        ids = {s.shipment_id for s in shipments}
        if not ids:
            return
        if not ids <= {sid for sids in self.files.values() for sid in sids}:
            await self.shipments()  # a fresh process (or an archived file): find where they are
        ledger = await self._ledger()
        seen = ledger.setdefault("files", {})
        touched = []
        for name, sids in self.files.items():
            hit = ids & sids.keys()
            if hit:
                info = seen.setdefault(name, {"seen": datetime.now(UTC).isoformat(), "acked": []})
                info["acked"] = sorted(set(info["acked"]) | hit)
                touched.append(name)
        if not touched:
            return  # already archived: acknowledging twice is harmless
        await self._save(ledger)  # first the ledger: a crash now only delays the move
        for name in touched:
            acked = set(seen[name]["acked"])
            if all(sid in acked or voided for sid, voided in self.files[name].items()):
                await self._archive(name)
                seen.pop(name)
                self.files.pop(name)
        await self._save(ledger)

    # -- stock --------------------------------------------------------------------------------

    async def stock(self) -> list[StockLevel]:
        """The newest snapshot: a new `inv_*` file if one arrived (older ones are archived unread),
        else the one applied last (from the archive). Refused when older than `stock_max_age_hours`."""
        problems: list[FileProblem] = []
        ledger = await self._ledger()
        entries = await self._entries(self.config.stock_prefix)
        if entries:
            newest = max(entries, key=lambda e: (e.mtime, e.name))
            folder, name, mtime = self.dir, newest.name, newest.mtime
        elif ledger.get("stock"):
            folder, name, mtime = self.config.archive_dir, ledger["stock"]["file"], ledger["stock"]["mtime"]
        else:
            raise TransientError(f"no stock snapshot ({self.config.stock_prefix}*.csv) has arrived in {self.dir}/ yet", vendor="files")
        text = await self._text(name, problems, folder=folder)
        levels, file_problems = parse_stock(name, text or "", self.config.headers("stock"), self.config.delimiter)
        problems += file_problems
        await self.report("stock", problems)
        if text is None or any(p.fatal for p in problems):
            raise PermanentError(f"stock snapshot {name} cannot be used: " + "; ".join(map(str, problems)), vendor="files")
        if entries:
            older = sorted((e for e in entries if e is not newest), key=lambda e: (e.mtime, e.name))
            for entry in older:
                await self._archive(entry.name)
            ledger["stock"] = {"file": await self._archive(name), "mtime": mtime}
            await self._save(ledger)
        self.snapshot_at = datetime.fromtimestamp(mtime, UTC)
        age = datetime.now(UTC) - self.snapshot_at
        limit = self.config.stock_max_age_hours
        if limit and age > timedelta(hours=limit):
            raise TransientError(f"the newest stock snapshot ({name}, {self.snapshot_at:%Y-%m-%d %H:%M}Z) is older than "
                                 f"{limit:g} hours: not pushed (is the warehouse still sending {self.config.stock_prefix}*.csv?)",
                                 vendor="files")
        return levels

    # -- files --------------------------------------------------------------------------------

    async def _entries(self, prefix: str) -> list[Entry]:
        try:
            entries = await self.calls("LIST", self.dir, lambda: self.io.listdir(self.dir))
        except FileNotFoundError:
            raise ConfigurationError(f"inbound folder {self.dir!r} does not exist at {self.io.url}", vendor="files") from None
        return sorted((e for e in entries if e.is_file and e.name.startswith(prefix) and e.name.lower().endswith(".csv")),
                      key=lambda e: (e.mtime, e.name))

    async def _text(self, name: str, problems: list[FileProblem], folder: str | None = None) -> str | None:
        path = join(folder or self.dir, name)
        raw = await self.calls("GET", path, lambda: self.io.read(path), record=True, summary=lambda b: {"bytes": len(b)})
        encoding = "utf-8-sig" if self.config.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else self.config.encoding
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            problems.append(FileProblem(name, 0, f"not {self.config.encoding} text ({exc.reason} at byte {exc.start}); file not read", fatal=True))
            return None

    async def _archive(self, name: str) -> str:
        """Move an inbound file to the archive folder; returns its name there (a name already
        taken gets a time suffix rather than overwriting an older file)."""
        archive = self.config.archive_dir
        if not self._archive_ready:
            await self.calls("MKDIR", archive, lambda: self.io.makedirs(archive))
            self._archive_ready = True
        target = name
        if await self.calls("STAT", join(archive, target), lambda: self.io.exists(join(archive, target))):
            stem, ext = posixpath.splitext(name)
            target = f"{stem}~{datetime.now(UTC):%Y%m%d%H%M%S%f}{ext}"
        try:
            await self.calls("MOVE", join(archive, target), lambda: self.io.rename(join(self.dir, name), join(archive, target)), record=True)
        except FileNotFoundError:
            pass  # a retried move whose first try went through
        return target

    async def _ledger(self) -> dict[str, Any]:
        path = join(self.dir, LEDGER)
        try:
            raw = await self.calls("GET", path, lambda: self.io.read(path))
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise PermanentError(f"ledger {path} is unreadable ({exc}); move it aside to start afresh "
                                 "(files still in the folder are then read again)", vendor="files") from exc
        return data if isinstance(data, dict) else {}

    async def _save(self, ledger: dict[str, Any]) -> None:
        path = join(self.dir, LEDGER)
        data = json.dumps(ledger, indent=1, sort_keys=True).encode()
        await self.calls.replace(path, data)
