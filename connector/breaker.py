"""A per-merchant, per-service circuit breaker for a vendor that keeps failing.

After `threshold` consecutive failed passes (transient vendor trouble: the warehouse is down,
not the orders) the breaker opens: passes are skipped for a cooldown that doubles each time,
with jitter, instead of every queued order burning its attempts. The next pass after the
cooldown is the probe (half-open): success closes the breaker, failure re-opens it for longer.
In-process state on purpose: a restart simply probes again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Breaker:
    """Counts consecutive failures; `open_until` is set while the vendor is given a rest."""

    threshold: int = 3
    base_seconds: float = 30.0
    max_seconds: float = 900.0
    failures: int = 0
    open_until: datetime | None = None

    def allows(self, now: datetime) -> bool:
        return self.open_until is None or now >= self.open_until

    def success(self) -> None:
        self.failures, self.open_until = 0, None

    def failure(self, now: datetime) -> datetime | None:
        """Record a failed pass; returns the time the breaker stays open until, if it opened."""
        self.failures += 1
        if self.failures < self.threshold:
            return None
        cooldown = min(self.max_seconds, self.base_seconds * 2 ** (self.failures - self.threshold))
        self.open_until = now + timedelta(seconds=random.uniform(cooldown / 2, cooldown))
        return self.open_until
