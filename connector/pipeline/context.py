"""What a service function is given: one merchant's config, the store, its adapters and the clock.

Services are plain async functions `fn(ctx) -> None`. They count what they do in `ctx.stats`
(so a pass that stops early still reports what it did) and raise the error taxonomy's errors
(`connector.errors`); the pass runner (`connector.runner`) decides what a failure means.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from adapters.base import CartAdapter, WarehouseAdapter
from connector.clock import SYSTEM, Clock
from connector.config import MerchantConfig
from connector.domain import Order
from connector.redact import DEFAULT as DEFAULT_REDACTOR
from connector.redact import Redactor
from connector.retry import RetryPolicy
from connector.store import Store

Alert = tuple[str, str, str, str]  # merchant, category, key, detail


@dataclass(frozen=True)
class IdleWhen:
    """A service's idle probe, as data the store answers inside the pass's opening write: the
    pass has nothing to do when the merchant has no order in these states and no open alert in
    these categories."""

    no_orders_in: tuple[str, ...] = ()
    no_alerts_in: tuple[str, ...] = ()


@dataclass
class ServiceContext:
    """Everything one pass of one service for one merchant needs."""

    merchant: MerchantConfig
    store: Store
    cart: CartAdapter
    warehouse: WarehouseAdapter | None  # None: a ledger-only merchant
    parse_order: Callable[[dict[str, Any]], Order]
    ledger: Any = None  # an inventory ledger adapter (adapters.ledger.LedgerAdapter), if the merchant has one
    worker_id: str = "worker"
    concurrency: int = 8
    lease_seconds: float = 300.0
    clock: Clock = SYSTEM
    redactor: Redactor = DEFAULT_REDACTOR
    stopping: asyncio.Event | None = None  # set when the daemon is asked to stop: claim no new work
    stats: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # why this pass stopped early (besides an error)

    def for_pass(self) -> ServiceContext:
        """A copy for one pass: fresh counters and notes, the same merchant, store and adapters."""
        return dataclasses.replace(self, stats=Counter(), notes=[])

    def now(self) -> datetime:
        return self.clock.now()

    def stop_requested(self) -> bool:
        return self.stopping is not None and self.stopping.is_set()

    @property
    def id(self) -> str:
        return self.merchant.id

    @property
    def dc(self) -> str:
        return self.merchant.ultracart.distribution_center

    @property
    def retry(self) -> RetryPolicy:
        r = self.merchant.retry
        return RetryPolicy(r.max_attempts, r.max_retry_hours, r.base_seconds, r.max_backoff_minutes * 60)

    @property
    def log(self) -> structlog.stdlib.BoundLogger:
        return structlog.get_logger("connector").bind(merchant=self.merchant.id)

    async def alert(self, items: list[Alert]) -> int:
        """Raise alerts (deduplicated by the store); details are redacted first."""
        if not items:
            return 0
        return await self.store.alerts.raise_many([(m, c, k, self.redactor.text(d)[:2000]) for m, c, k, d in items], now=self.now())
