"""RetryPolicy -> RetryDecision: what to do with a record after a failed vendor call.

The policy only decides; the Store persists (`attempts`, `next_attempt_at`, `last_error`), so
retry state survives restarts and never lives in memory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.errors import ErrorClass, VendorError


@dataclass(frozen=True)
class RetryDecision:
    """`action`: "retry" (at `next_attempt_at`), "fail" (dead letter), "in_doubt" (look up first)
    or "pause" (configuration problem: the attempt is not counted and the service pauses)."""

    action: str
    next_attempt_at: datetime | None
    reason: str
    count_attempt: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total retry time."""

    max_attempts: int = 10
    max_retry_hours: float = 24.0
    base_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_backoff_seconds, self.base_seconds * (2 ** max(0, attempts - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)  # "equal" jitter: never retry at once

    def decide(self, error: VendorError, *, attempts: int, first_attempt_at: datetime | None, now: datetime) -> RetryDecision:
        cls = error.error_class
        if cls is ErrorClass.configuration:
            return RetryDecision("pause", now + timedelta(minutes=5), f"configuration error: {error}", count_attempt=False)
        if cls is ErrorClass.in_doubt:
            return RetryDecision("in_doubt", now, f"outcome unknown: {error}")
        if cls is ErrorClass.permanent:
            return RetryDecision("fail", None, str(error))
        if cls is ErrorClass.rate_limited:
            wait = error.retry_after if error.retry_after is not None else 60.0
            # Being throttled is not the record's fault: the attempt is not counted.
            return RetryDecision("retry", now + timedelta(seconds=min(wait, 3600)), f"rate limited: {error}", count_attempt=False)
        too_long = first_attempt_at is not None and now - first_attempt_at > timedelta(hours=self.max_retry_hours)
        if attempts >= self.max_attempts or too_long:
            why = f"gave up after {attempts} attempts" if attempts >= self.max_attempts else f"gave up after {self.max_retry_hours:g} h"
            return RetryDecision("fail", None, f"{why}: {error}")
        return RetryDecision("retry", now + timedelta(seconds=self.backoff(attempts)), str(error))
