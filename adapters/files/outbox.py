"""Order files out, exactly once: `ord_<reference>_<YYMMDDHHMMSS>.csv` in the outbound folder.

A file appears under its final name only by a rename, so the warehouse never reads half a file.
Each reference has a marker in the ledger folder (`<outbound>/.connector/orders/<key>.json`):

1. write the order to `.ord_<key>.csv.part` (invisible to the warehouse; a retry overwrites it);
2. write the marker `{"state": "pending", "file": F, "tmp": T}`;
3. rename T -> F (never retried: a lost reply here is the one unknown outcome -> InDoubtError);
4. rewrite the marker as `{"state": "sent", "file": F}`.

A lookup reads the marker. A pending one is resolved from what is on the server: F there -> sent;
T still there -> the rename never happened (not created; the marker is dropped); neither -> the
rename happened and the warehouse has already taken F (sent). Only the connector writes T and
only a rename removes it, which is what makes that last deduction sound.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from adapters.files.calls import Calls, join
from adapters.files.config import FilesConfig
from adapters.files.layout import cancel_csv, order_csv, order_rows
from connector.domain import CreateResult, WarehouseOrder
from connector.errors import ConfigurationError, InDoubtError, PermanentError, TransientError

SENT, PENDING = "sent", "pending"


def file_key(reference: str) -> str:
    """The reference as a file-name part: letters, digits, `.`, `-`, `~` kept, the rest %XX-escaped
    (so `_`, the separator of the DSFX name, never appears in it)."""
    return re.sub(r"[^A-Za-z0-9.~-]", lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), reference)


class Outbox:
    """Publishes order files and answers "was this reference sent?" (see the module docstring)."""

    def __init__(self, config: FilesConfig, calls: Calls):
        self.config = config
        self.calls = calls
        self.io = calls.io
        self.markers = join(config.markers_dir, "orders")
        self._ready = False

    def names(self, reference: str, at: datetime) -> tuple[str, str]:
        """(final, temporary) file names of an order sent at `at`."""
        key = file_key(reference)
        return f"{self.config.order_prefix}{key}_{at:%y%m%d%H%M%S}.csv", f".{self.config.order_prefix}{key}.csv.part"

    async def request_cancel(self, reference: str, order_id: str, reason: str) -> str:
        """Write a cancel request for `reference` to the outbound folder (temporary name, then
        renamed, like orders): `<cancel_prefix><reference>_<time>.csv` with the columns
        reference, order_id, reason, requested_at. Writing it again only writes another request
        the warehouse treats the same way. Returns the file's name."""
        now = datetime.now(UTC)
        key = file_key(reference)
        final, tmp = f"{self.config.cancel_prefix}{key}_{now:%y%m%d%H%M%S}.csv", f".{self.config.cancel_prefix}{key}.csv.part"
        data = cancel_csv(reference, order_id, reason, now, self.config.delimiter, escape_formulas=self.config.escape_formulas).encode(
            self.config.encoding, "replace")
        folder = self.config.outbound_dir
        await self.prepare()
        await self.calls("PUT", join(folder, tmp), lambda: self.io.write(join(folder, tmp), data))
        await self.calls("MOVE", join(folder, final), lambda: self.io.rename(join(folder, tmp), join(folder, final)), retry=False, record=True,
                         body=[{"reference": reference, "order_id": order_id, "reason": reason[:500]}], order_id=order_id)
        return final

    def preview(self, order: WarehouseOrder) -> dict[str, Any]:
        """The file `create` would write for `order`: its folder, name and text."""
        final, _ = self.names(order.reference, datetime.now(UTC))
        text = order_csv(order, self.config.headers("orders"), self.config.delimiter, escape_formulas=self.config.escape_formulas)
        return {"folder": self.config.outbound_dir, "file": final, "text": text}

    async def create(self, order: WarehouseOrder) -> CreateResult:
        ref = order.reference
        found = await self.find(ref, scan=False)
        if found is not None:
            return found.model_copy(update={"already_existed": True})
        await self.prepare()
        final, tmp = self.names(ref, datetime.now(UTC))
        try:
            text = order_csv(order, self.config.headers("orders"), self.config.delimiter, escape_formulas=self.config.escape_formulas)
            data = text.encode(self.config.encoding)
        except UnicodeEncodeError as exc:
            raise PermanentError(f"{ref} cannot be written in {self.config.encoding}: {exc.reason} "
                                 f"({exc.object[exc.start:exc.end]!r})", vendor="files") from exc
        out = self.config.outbound_dir
        await self.calls("PUT", join(out, tmp), lambda: self.io.write(join(out, tmp), data))
        await self._mark(ref, {"state": PENDING, "file": final, "tmp": tmp})
        rows = order_rows(order)
        try:
            await self.calls("MOVE", join(out, final), lambda: self.io.rename(join(out, tmp), join(out, final)),
                             retry=False, record=True, body=rows, order_id=order.order.order_id)
        except TransientError as exc:
            if exc.not_sent:
                raise  # no connection: the rename was never asked for (T stays, lookup says not created)
            raise InDoubtError(f"{ref}: the rename to {final} may or may not have happened: {exc.message}",
                               vendor="files", status=exc.status) from exc
        except (FileExistsError, FileNotFoundError) as exc:
            raise InDoubtError(f"{ref}: unexpected state publishing {final}: {exc!r}", vendor="files") from exc
        try:
            await self._mark(ref, {"state": SENT, "file": final})
        except (TransientError, OSError):
            pass  # the file is out; the pending marker resolves to "sent" on the next lookup
        return CreateResult(warehouse_order_id=final, reference=ref)

    async def find(self, reference: str, *, scan: bool = True) -> CreateResult | None:
        """The order file sent for `reference`: by its marker, else (with `scan`) by name in the
        outbound folder (a file written before the ledger existed, or by hand)."""
        marker = await self._marker(reference)
        out = self.config.outbound_dir
        if marker is None:
            if not scan:
                return None
            prefix = f"{self.config.order_prefix}{file_key(reference)}_"
            try:
                entries = await self.calls("LIST", out, lambda: self.io.listdir(out))
            except FileNotFoundError:
                raise ConfigurationError(f"outbound_dir {out!r} does not exist at {self.io.url}", vendor="files") from None
            for name in sorted(e.name for e in entries if e.is_file):
                if name.startswith(prefix) and name.endswith(".csv") and re.fullmatch(r"\d{12}", name[len(prefix) : -4]):
                    return CreateResult(warehouse_order_id=name, reference=reference)
            return None
        final = marker["file"]
        if marker.get("state") == PENDING and not await self._exists(join(out, final)):
            if await self._exists(join(out, marker["tmp"])):
                # Never renamed: not created. Drop the marker first; the temp file is overwritten next time.
                path = self._marker_path(reference)
                await self.calls("DELETE", path, lambda: self.io.remove(path))
                return None
            # Neither name is there: the rename happened and the warehouse has taken the file.
        if marker.get("state") == PENDING:
            await self._mark(reference, {"state": SENT, "file": final})
        return CreateResult(warehouse_order_id=final, reference=reference)

    async def _exists(self, path: str) -> bool:
        return await self.calls("STAT", path, lambda: self.io.exists(path))

    # -- markers ------------------------------------------------------------------------------

    def _marker_path(self, reference: str) -> str:
        return join(self.markers, f"{file_key(reference)}.json")

    async def prepare(self) -> None:
        """The outbound folder must exist (a typo must not create a folder nobody reads); the
        ledger folder is ours and is created."""
        if self._ready:
            return
        out = self.config.outbound_dir
        if not await self._exists(out):
            raise ConfigurationError(f"outbound_dir {out!r} does not exist at {self.io.url}", vendor="files")
        await self.calls("MKDIR", self.markers, lambda: self.io.makedirs(self.markers))
        self._ready = True

    async def _marker(self, reference: str) -> dict | None:
        path = self._marker_path(reference)
        try:
            raw = await self.calls("GET", path, lambda: self.io.read(path))
        except FileNotFoundError:
            return None
        try:
            marker = json.loads(raw)
        except ValueError:
            marker = None
        if not isinstance(marker, dict) or not marker.get("file") or (marker.get("state") == PENDING and not marker.get("tmp")):
            raise PermanentError(f"order ledger {path} is unreadable; check the folder by hand: {raw[:200]!r}", vendor="files")
        return marker

    async def _mark(self, reference: str, marker: dict) -> None:
        """Replace a marker atomically (written aside, then renamed over the old one)."""
        await self.prepare()
        path = self._marker_path(reference)
        data = json.dumps({**marker, "reference": reference, "at": datetime.now(UTC).isoformat()}).encode()
        await self.calls.replace(path, data)
