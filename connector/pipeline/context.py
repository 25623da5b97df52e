"""What a service function is given: one merchant's config, the store and its two adapters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from adapters.base import CartAdapter, WarehouseAdapter
from connector.config import MerchantConfig
from connector.domain import Order
from connector.retry import RetryPolicy
from connector.store import Store, utcnow


class ServicePaused(Exception):
    """A configuration problem (bad credentials, unknown DC): stop this merchant's service, alert once."""

    def __init__(self, reason: str, until: datetime | None = None):
        super().__init__(reason)
        self.reason, self.until = reason, until


class ServiceThrottled(Exception):
    """The vendor said slow down: end the pass now, the next one resumes (never sleep in a job)."""

    def __init__(self, reason: str, retry_after: float | None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass
class ServiceContext:
    """Everything one pass of one service for one merchant needs."""

    merchant: MerchantConfig
    store: Store
    cart: CartAdapter
    warehouse: WarehouseAdapter
    parse_order: Callable[[dict[str, Any]], Order]
    worker_id: str = "worker"
    concurrency: int = 8
    lease_seconds: float = 300.0
    now: Callable[[], datetime] = utcnow
    stats: Counter = field(default_factory=Counter)

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
