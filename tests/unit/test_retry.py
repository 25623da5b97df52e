"""The retry policy: what happens to a record after each kind of vendor failure."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from connector.errors import ErrorClass, classify_status, error_for
from connector.retry import RetryPolicy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def err(cls: ErrorClass, **kw):
    return error_for(cls, "boom", vendor="shipbob", **kw)


def test_status_table():
    assert classify_status(429, idempotent=True) is ErrorClass.rate_limited
    assert classify_status(401, idempotent=True) is ErrorClass.configuration
    assert classify_status(410, idempotent=False) is ErrorClass.configuration
    assert classify_status(503, idempotent=True) is ErrorClass.transient
    assert classify_status(503, idempotent=False) is ErrorClass.in_doubt  # a create may have happened
    assert classify_status(422, idempotent=False) is ErrorClass.permanent


def test_transient_backs_off_exponentially_with_jitter_then_fails():
    p = RetryPolicy(max_attempts=4, base_seconds=10, max_backoff_seconds=1000)
    rng = random.Random(1)
    waits = [p.backoff(n, rng) for n in (1, 2, 3)]
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20 and 20 <= waits[2] <= 40
    d = p.decide(err(ErrorClass.transient), attempts=2, first_attempt_at=NOW, now=NOW)
    assert d.action == "retry" and d.next_attempt_at > NOW
    d = p.decide(err(ErrorClass.transient), attempts=4, first_attempt_at=NOW, now=NOW)
    assert d.action == "fail" and "gave up after 4 attempts" in d.reason and "boom" in d.reason


def test_gives_up_after_max_retry_hours():
    p = RetryPolicy(max_attempts=100, max_retry_hours=2)
    d = p.decide(err(ErrorClass.transient), attempts=3, first_attempt_at=NOW - timedelta(hours=3), now=NOW)
    assert d.action == "fail" and "2 h" in d.reason


def test_rate_limited_waits_for_the_vendor_and_does_not_count():
    d = RetryPolicy().decide(err(ErrorClass.rate_limited, retry_after=42), attempts=9, first_attempt_at=NOW, now=NOW)
    assert d.action == "retry" and d.next_attempt_at == NOW + timedelta(seconds=42) and not d.count_attempt


def test_permanent_fails_now_and_configuration_pauses():
    assert RetryPolicy().decide(err(ErrorClass.permanent), attempts=1, first_attempt_at=NOW, now=NOW).action == "fail"
    d = RetryPolicy().decide(err(ErrorClass.configuration), attempts=1, first_attempt_at=NOW, now=NOW)
    assert d.action == "pause" and not d.count_attempt


def test_in_doubt_is_looked_up_not_resent():
    assert RetryPolicy().decide(err(ErrorClass.in_doubt), attempts=1, first_attempt_at=NOW, now=NOW).action == "in_doubt"
