"""The real `connector` process: demo, run --once, kill -9 at named points, SIGTERM.

Sandboxes run in this test process on loopback; the connector runs as its own process, exactly
as an operator runs it, and is killed for real.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from connector.sandbox.samples import make_order
from tests.acceptance.test_cli import wait

pytestmark = pytest.mark.xdist_group("processes")  # with the soak and the replicas, on one worker: stop timings hold under load

CMD = [sys.executable, "-m", "connector"]


def connector(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def queue(flow, n: int) -> list[str]:
    ids = [f"DEMO-{i:04d}" for i in range(1, n + 1)]
    flow.uc.queue("DFLT", [make_order(i, items=[("BONE-5LB", 1), ("TREAT", 2)]) for i in ids])
    return ids


def assert_exactly_once(flow, ids: list[str]) -> None:
    assert flow.uc.queued("DFLT") == [], "everything stored is acknowledged"
    assert set(flow.uc.acknowledged) == set(ids)
    assert flow.sb.create_count == len(ids), "each order created once"
    assert all(flow.sb.create_attempts[f"acme-{i}"] == 1 for i in ids), "no create was even attempted twice"


def test_demo_runs_with_no_config_and_no_network(tmp_path):
    proc = subprocess.run(CMD + ["demo"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "CONNECTOR_CONFIG": str(tmp_path / "absent.toml")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "demo finished: nothing lost, nothing sent twice" in out
    assert "unmapped ship method: Pigeon: Carrier Express" in out and "unknown SKU: MYSTERY-SKU" in out
    assert "test order" in out and "before earliest order date" in out
    assert "clamped: LEASH-BLUE" in out
    assert "DEMO-0028  rejected in UltraCart while held: held -> cancelled" in out  # never sent
    assert "rejected in UltraCart at the warehouse: at_warehouse -> cancelled (" in out  # cancelled at ShipBob
    assert "rejected in UltraCart after the warehouse picked it: at_warehouse -> cancel_failed (too late" in out
    assert list(tmp_path.iterdir()) == []  # leaves nothing behind


def test_run_once_twice_creates_nothing_twice(flow):
    ids = queue(flow, 40)
    cfg = flow.write_toml()
    first = connector("run", "--once", "-c", str(cfg))
    assert first.returncode == 0, first.stdout + first.stderr
    queue(flow, 10)  # UltraCart re-sends some (as it does until it has our acknowledgement)
    second = connector("run", "--once", "-c", str(cfg))
    assert second.returncode == 0, second.stdout + second.stderr
    assert_exactly_once(flow, ids)
    status = connector("status", "-c", str(cfg))
    assert status.returncode == 0 and "acme" in status.stdout and "confirmed 40" in status.stdout


@pytest.mark.parametrize("point", [
    "after_commit_before_ack",
    "after_ack_before_record",
    "after_claim_before_send",
    "after_send_before_record",
    "after_shipments_commit",
    "after_tracking_post_before_record",
    "after_inventory_post_before_record",
])
def test_kill_9_at_each_step_loses_nothing_and_duplicates_nothing(flow, point):
    ids = queue(flow, 30)
    flow.sb.set_stock("BONE-5LB", 1, 500)
    flow.sb.set_stock("TREAT", 2, 500)
    cfg = flow.write_toml()
    killed = connector("run", "--once", "-c", str(cfg), env={"CONNECTOR_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL, f"the failpoint {point} was not reached: {killed.stdout}{killed.stderr}"
    again = connector("run", "--once", "-c", str(cfg))
    assert again.returncode == 0, again.stdout + again.stderr
    if point in ("after_claim_before_send", "after_send_before_record"):
        # the claims of the killed process were in doubt: looked up by reference, not resent blindly
        counts = dict((k, int(n)) for k, n in re.findall(r"\b(doubt_found|doubt_absent) (\d+)", again.stdout))
        if point == "after_send_before_record":
            assert counts.get("doubt_found", 0) >= 1, again.stdout  # created before the kill: found, not sent again
        else:
            assert counts.get("doubt_absent", 0) >= 1 and "doubt_found" not in counts, again.stdout  # claimed, never sent
    assert_exactly_once(flow, ids)
    assert {p["order_id"] for post in flow.uc.shipment_posts for p in post} >= set(ids), "tracking reached UltraCart for every order"
    assert all(flow.uc.tracking(i) for i in ids)
    orders = connector("orders", "-c", str(cfg), "--state", "confirmed", "--limit", "1000")
    assert sum(1 for line in orders.stdout.splitlines() if "DEMO-" in line) == len(ids), orders.stdout
    levels = flow.uc.inventory_levels()
    assert levels and all(q >= 0 for q in levels.values())


def test_second_daemon_on_the_same_sqlite_file_is_refused(flow):
    cfg = flow.write_toml()
    daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lock = flow.tmp / "connector.db.lock"
        wait(lambda: lock.exists() and lock.read_text().startswith(f"pid {daemon.pid}"), what="the daemon to hold the lock")
        second = connector("run", "--once", "-c", str(cfg))
        assert second.returncode == 2 and "in use by pid" in second.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)


def test_daemon_moves_orders_and_stops_cleanly_on_sigterm(flow):
    ids = queue(flow, 20)
    flow.overrides["acme"] = {"schedule": {"order_download": "1s", "order_delivery": "1s", "shipment_upload": "1s", "inventory_upload": "5s"}}
    cfg = flow.write_toml()
    daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not all(flow.uc.tracking(i) for i in ids):
            time.sleep(0.2)
        assert all(flow.uc.tracking(i) for i in ids), "the daemon delivered and confirmed every order"
        flow.uc.queue("DFLT", [make_order("DEMO-0100")])  # more work arriving while it stops
        started = time.time()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=15)
        assert code == 0 and time.time() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
    if "DEMO-0100" in flow.uc.acknowledged:
        assert_exactly_once(flow, ids + ["DEMO-0100"])
    else:  # stopped before taking it: UltraCart still holds it, so nothing is lost
        assert flow.uc.queued("DFLT") == ["DEMO-0100"]
        assert flow.sb.create_count == len(ids)


def test_kill_9_between_a_warehouse_cancel_and_its_record_cancels_once(flow):
    """The merchant rejects an order at the warehouse; the process dies after ShipBob cancelled it
    and before that was recorded. The restart looks the order up first and never asks twice."""
    queue(flow, 3)
    cfg = flow.write_toml()
    for service in ("order_download", "order_delivery"):  # at the warehouse; no shipment read yet
        assert connector("run", "--once", "-s", service, "-c", str(cfg)).returncode == 0
    flow.uc.reject("DEMO-0002", reason="customer cancelled")
    killed = connector("run", "--once", "-s", "order_changes", "-c", str(cfg), env={"CONNECTOR_FAILPOINT": "after_cancel_before_record"})
    assert killed.returncode == -signal.SIGKILL, f"the failpoint was not reached: {killed.stdout}{killed.stderr}"
    assert flow.sb.orders["acme-DEMO-0002"]["status"] == "Cancelled"
    again = connector("run", "--once", "-s", "order_changes", "-c", str(cfg))
    assert again.returncode == 0, again.stdout + again.stderr
    assert dict(flow.sb.cancel_attempts) == {"acme-DEMO-0002": 1}, "the restart looked it up instead of cancelling again"
    shown = connector("order", "DEMO-0002", "-c", str(cfg))
    assert "state cancelled" in shown.stdout and "already shows it cancelled" in shown.stdout, shown.stdout


def test_demo_with_the_aligni_ledger_consumes_the_confirmed_orders_units(tmp_path):
    proc = subprocess.run(CMD + ["demo", "--ledger", "aligni"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("Ledger (aligni):")]
    assert "done " in line and "units consumed at the demo's location: BONE-5LB" in line
    assert "LEASH-BLUE: short (" in proc.stdout  # the demo's low item: alerted with exact figures
    bad = subprocess.run(CMD + ["demo", "--ledger", "nope"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "no sandbox for ledger 'nope'; available: aligni" in bad.stderr + bad.stdout
