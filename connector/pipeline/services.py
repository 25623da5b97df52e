"""The services a merchant runs, declared: what each runs, when it is switched off, and which
alert a failing pass raises (resolved by the next successful one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from connector.pipeline.changes import follow_changes
from connector.pipeline.context import IdleWhen, ServiceContext
from connector.pipeline.inventory import inventory_disabled, upload_inventory
from connector.pipeline.ledger import consume_ledger, ledger_disabled
from connector.pipeline.orders import deliver_orders, delivery_idle, download_orders
from connector.pipeline.shipments import upload_shipments


def _always(_: ServiceContext) -> str:
    return ""


def _needs_warehouse(ctx: ServiceContext) -> str:
    return "" if ctx.warehouse is not None else "no [merchants.warehouse] configured (a ledger-only merchant)"


def _writes(why: Callable[[ServiceContext], str]) -> Callable[[ServiceContext], str]:
    """A service that writes to a vendor: off in a dry run, whatever else it needs."""
    def disabled(ctx: ServiceContext) -> str:
        return "dry run: it would write to UltraCart or a vendor" if ctx.merchant.dry_run else why(ctx)
    return disabled


@dataclass(frozen=True)
class Service:
    """One of a merchant's scheduled services."""

    name: str
    run: Callable[[ServiceContext], Awaitable[None]]
    failure_alert: str = ""  # alert category raised when a pass fails ("" = none of its own)
    disabled: Callable[[ServiceContext], str] = _always  # why it does not run for this merchant ("" = it runs)
    # When a pass has nothing to do (None: it cannot tell, or not for this merchant): the runner
    # then records the pass as done in one statement, without running it.
    idle: Callable[[ServiceContext], IdleWhen | None] | None = None

    @property
    def closes(self) -> tuple[str, ...]:
        """The alert categories a pass that works closes (for this service's key)."""
        return ("configuration", self.failure_alert) if self.failure_alert else ("configuration",)


SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("order_download", download_orders, disabled=_needs_warehouse),
    Service("order_delivery", deliver_orders, disabled=_needs_warehouse, idle=delivery_idle),
    Service("order_changes", follow_changes, disabled=_needs_warehouse),
    Service("shipment_upload", upload_shipments, disabled=_writes(_needs_warehouse)),
    Service("ledger_consume", consume_ledger, disabled=_writes(ledger_disabled)),
    Service("inventory_upload", upload_inventory, failure_alert="inventory_failing", disabled=_writes(inventory_disabled)),
)}
