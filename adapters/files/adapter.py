"""A warehouse that exchanges CSV files (DropStream's DSFX layout) over a local folder or SFTP.

The fallback every 3PL can use: orders are written as `ord_<reference>_<YYMMDDHHMMSS>.csv`
into the outbound folder (see `outbox`), shipments and stock are read from `shp_*.csv` and
`inv_*.csv` in the inbound folder (see `inbox`), with the column names configurable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import structlog

from adapters.base import AdapterContext, Capabilities, WarehouseAdapterBase
from adapters.files.calls import Calls
from adapters.files.config import FilesConfig
from adapters.files.inbox import Inbox
from adapters.files.layout import FileProblem
from adapters.files.outbox import Outbox
from adapters.files.transport import make_transport
from connector.domain import CancelOutcome, CancelResult, CreateResult, Shipment, StockLevel, WarehouseOrder
from connector.errors import ConfigurationError


class FilesAdapter(WarehouseAdapterBase):
    """Orders out as files exactly once, shipments and stock in from files, each processed once.

    Idempotency: each reference has a marker in the ledger folder written before the order file
    is renamed into the warehouse's sight, so a repeat is found (`already_existed`) and a lost
    rename reply (InDoubtError) is resolved by `find_order`. Shipments are at-least-once: their
    file is archived only after `acknowledge_shipments` (tracking reached the cart).

    Malformed rows never fail a pass: they are skipped, logged with file and line, recorded in
    the event log (method `PARSE`) and kept in `problems` (those of the latest reads) so the
    engine or an operator can act on them.
    """

    name: ClassVar[str] = "files"
    Config: ClassVar[type[FilesConfig]] = FilesConfig
    capabilities: ClassVar[Capabilities] = Capabilities(inventory=True, shipment_ack=True)
    config: FilesConfig

    def __init__(self, config: FilesConfig | dict[str, Any], context: AdapterContext):
        super().__init__(config, context)
        self.log = structlog.get_logger("adapters.files").bind(merchant=context.merchant)
        self.calls = Calls(make_transport(self.config), context)
        self.outbox = Outbox(self.config, self.calls)
        self.inbox = Inbox(self.config, self.calls, self._report)
        self._problems: dict[str, list[FileProblem]] = {}

    @property
    def problems(self) -> list[FileProblem]:
        """What was wrong in the files of the latest shipment and stock reads."""
        return [p for kind in sorted(self._problems) for p in self._problems[kind]]

    @property
    def snapshot_at(self) -> datetime | None:
        """When the stock snapshot last returned by `stock_levels` was written."""
        return self.inbox.snapshot_at

    async def _report(self, kind: str, problems: list[FileProblem]) -> None:
        self._problems[kind] = problems
        for p in problems:
            self.log.warning("warehouse file problem", file=p.file, line=p.line, problem=p.message)
            await self.calls.record("PARSE", f"{self.config.inbound_dir}/{p.file}", status=None, error=str(p))

    # -- setup --------------------------------------------------------------------------------

    async def check(self) -> str:
        """Both folders reachable (and the ledger folder writable); says what is waiting."""
        c = self.config
        counts = {}
        for label, folder in (("outbound", c.outbound_dir), ("inbound", c.inbound_dir)):
            try:
                counts[label] = len(await self.calls("LIST", folder, lambda f=folder: self.calls.io.listdir(f)))
            except FileNotFoundError:
                raise ConfigurationError(f"{label}_dir {folder!r} does not exist at {self.calls.io.url}", vendor="files") from None
        await self.outbox.prepare()
        return (f"files at {self.calls.io.url}: orders to {c.outbound_dir}/ ({counts['outbound']} entries), "
                f"shipments and stock from {c.inbound_dir}/ ({counts['inbound']} entries), archive {c.archive_dir}/")

    # -- orders -------------------------------------------------------------------------------

    async def create_request(self, order: WarehouseOrder) -> dict[str, Any]:
        """The order file create_order writes: its rows, as text."""
        return self.outbox.preview(order)

    async def create_order(self, order: WarehouseOrder) -> CreateResult:
        """Write the order file (temporary name, then rename); the file name is the warehouse id."""
        return await self.outbox.create(order)

    async def cancel_order(self, reference: str) -> CancelResult:
        """A folder cannot say whether the warehouse stopped an order: a cancel request file is
        written beside the orders (`cnl_<reference>_<time>.csv`: reference, order_id, reason,
        requested_at) and the answer is `by_hand`, naming it: a person confirms with the
        warehouse, then `connector cancel ID --done`."""
        found = await self.find_order(reference)
        if found is None:  # no request to write for a file we cannot find; a person looks
            return CancelResult(outcome=CancelOutcome.by_hand, reference=reference,
                                reason=f"no order file for {reference} was found in {self.config.outbound_dir}/ or its markers: "
                                       "check with the warehouse whether it has the order")
        name = await self.outbox.request_cancel(reference, self.context.order_id_of(reference) or "", "cancelled in UltraCart")
        return CancelResult(outcome=CancelOutcome.by_hand, reference=reference, warehouse_order_id=found.warehouse_order_id,
                            reason=f"cancel request {name} written to {self.config.outbound_dir}/ for order file {found.warehouse_order_id}; "
                                   "ask the warehouse to confirm it stopped the order")

    async def find_order(self, reference: str) -> CreateResult | None:
        """The order file sent for `reference` (ledger marker, else the outbound folder), or None."""
        return await self.outbox.find(reference)

    # -- shipments and stock ------------------------------------------------------------------

    async def shipments_since(self, since: datetime) -> list[Shipment]:
        """Every shipment in unprocessed `shp_*` files (`since` is not needed: a file is read
        until its shipments are acknowledged, whatever its age)."""
        return await self.inbox.shipments()

    async def acknowledge_shipments(self, shipments: list[Shipment]) -> None:
        """Mark the shipments done; a file whose live shipments are all done moves to the archive."""
        await self.inbox.acknowledge(shipments)

    async def stock_levels(self) -> list[StockLevel]:
        """The newest `inv_*` snapshot, per SKU and warehouse id."""
        return await self.inbox.stock()

    async def aclose(self) -> None:
        await self.calls.io.aclose()
