"""Named failpoints: `CONNECTOR_FAILPOINT=after_commit_before_ack` kills the process right there.

Used by the crash tests to prove that kill -9 at each step boundary loses and duplicates nothing.
`name:N` fires on the N-th time the point is reached (default the first). Several points may be
given, comma-separated. The kill is a real SIGKILL of our own process: no cleanup, no flush.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "after_commit_before_ack",  # orders stored, UltraCart not yet acknowledged
    "after_ack_before_record",  # UltraCart acknowledged, acked_at not yet stored
    "after_claim_before_send",  # order claimed (submitting), warehouse not yet called
    "after_send_before_record",  # warehouse created the order, result not yet stored
    "after_shipments_commit",  # shipments stored, tracking not yet posted
    "after_tracking_post_before_record",  # UltraCart accepted tracking, not yet recorded
    "after_inventory_post_before_record",  # UltraCart accepted inventory, not yet recorded
    "after_cancel_before_record",  # the warehouse answered a cancel, not yet recorded
    "after_consume_before_record",  # the inventory ledger consumed stock, not yet recorded
)

_hits: dict[str, int] = {}


def _armed() -> dict[str, int]:
    spec = os.environ.get("CONNECTOR_FAILPOINT", "")
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, n = part.partition(":")
        out[name] = int(n or 1)
    return out


def failpoint(name: str) -> None:
    armed = _armed()
    if name not in armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)
