"""The command line as an operator (or a script) uses it: true exit codes, `--json`, confirmations,
clear one-line errors, reload, the sandbox and the demo's leftovers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connector.sandbox.samples import make_order
from tests.support.flow import Flow

CMD = [sys.executable, "-m", "connector"]


def connector(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def ran(flow: Flow):
    """A config whose merchant has run once: 3 orders at the warehouse, 1 held, 1 failed-to-map."""
    flow.uc.queue("DFLT", [make_order(f"DEMO-{i:04d}") for i in range(1, 4)] + [make_order("DEMO-0014", ship_method="Pigeon: Carrier Express")])
    cfg = flow.write_toml()
    assert connector("run", "--once", "-c", str(cfg), "--service", "order_download").returncode == 0
    assert connector("run", "--once", "-c", str(cfg), "--service", "order_delivery").returncode == 0
    return cfg


def test_version_and_help_need_no_config():
    from connector import __version__

    assert connector("--version").stdout.strip() == f"connector {__version__}"
    help_text = connector("--help").stdout
    for command in ("run", "reload", "status", "orders", "order", "refresh", "skip", "unskip", "sandbox", "demo"):
        assert f"  {command} " in help_text


def test_status_json_and_exit_codes(ran, flow):
    r = connector("status", "-c", str(ran), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["database"].startswith("sqlite:///") and doc["config"]["file"] == str(ran)
    [m] = doc["merchants"]
    assert m["orders"] == {"at_warehouse": 3, "held": 1}
    assert {s["service"]: s["outcome"] for s in m["services"]} == {"order_download": "done", "order_delivery": "done"}
    assert m["held"] == [{"reason": "unmapped ship method: Pigeon: Carrier Express", "count": 1}]
    # A paused service makes status exit 3.
    flow.overrides["acme"] = {"warehouse": {"token": "wrong"}}
    bad = flow.write_toml()
    flow.uc.queue("DFLT", [make_order("DEMO-0009")])
    assert connector("run", "--once", "-c", str(bad), "--service", "order_download").returncode == 0
    assert connector("run", "--once", "-c", str(bad), "--service", "order_delivery").returncode == 1
    r = connector("status", "-c", str(bad))
    assert r.returncode == 3 and "paused until" in r.stdout and "401" in r.stdout


def test_orders_says_what_it_left_out_and_refuses_unknown_filters(ran):
    r = connector("orders", "-c", str(ran), "--limit", "2")
    assert r.returncode == 0 and "2 of 4 orders shown (--limit N for more, --all for every one)" in r.stdout
    rows = [line for line in r.stdout.splitlines() if "DEMO-" in line]
    assert len(rows) == 2 and all("\t" in line for line in rows), "piped: plain tab-separated rows"
    assert len([x for x in connector("orders", "-c", str(ran), "--all").stdout.splitlines() if "DEMO-" in x]) == 4
    doc = json.loads(connector("orders", "-c", str(ran), "--json", "--state", "held").stdout)
    assert doc["total"] == 1 and doc["orders"][0]["hold"] == {"kind": "unmapped_ship_method", "details": {"method": "Pigeon: Carrier Express"}}
    bad = connector("orders", "-c", str(ran), "--state", "sent")
    assert bad.returncode == 2 and "unknown state 'sent'" in bad.stderr and "at_warehouse" in bad.stderr
    bad = connector("orders", "-c", str(ran), "--merchant", "acne")
    assert bad.returncode == 2 and "unknown merchant 'acne'" in bad.stderr and "acme" in bad.stderr


def test_order_events_and_alerts_speak_json(ran):
    [doc] = json.loads(connector("order", "DEMO-0001", "-c", str(ran), "--json").stdout)
    assert doc["state"] == "at_warehouse" and doc["warehouse_order"]["reference"] == "acme-DEMO-0001"
    assert [e["to_state"] for e in doc["timeline"]] == ["received", "ready", "submitting", "at_warehouse"]
    calls = json.loads(connector("events", "-c", str(ran), "--json", "--full").stdout)
    assert calls and {"at", "vendor", "method", "url", "status", "request_body", "response_body"} <= set(calls[0])
    alerts = json.loads(connector("alerts", "-c", str(ran), "--json").stdout)
    assert [(a["category"], a["key"], a["delivered_at"]) for a in alerts] == [("unmapped_ship_method", "Pigeon: Carrier Express", None)]
    assert connector("order", "NOPE", "-c", str(ran)).returncode == 1


def test_skip_needs_a_reason_and_a_confirmation_and_unskip_undoes_it(ran):
    r = connector("skip", "DEMO-0014", "-c", str(ran))
    assert r.returncode == 2 and "--reason" in r.stderr
    r = connector("skip", "DEMO-0014", "-c", str(ran), "--reason", "customer cancelled by phone", stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "add --yes" in r.stderr
    r = connector("skip", "DEMO-0014", "-c", str(ran), "--reason", "customer cancelled by phone", "--yes")
    assert r.returncode == 0 and "skipped" in r.stdout
    [doc] = json.loads(connector("order", "DEMO-0014", "-c", str(ran), "--json").stdout)
    assert doc["state"] == "skipped" and doc["reason"].startswith("skipped by operator: customer cancelled by phone (by ")
    assert doc["timeline"][-1]["by"] == "operator"
    r = connector("unskip", "DEMO-0014", "-c", str(ran))
    assert r.returncode == 0 and "back to evaluation" in r.stdout
    [doc] = json.loads(connector("order", "DEMO-0014", "-c", str(ran), "--json").stdout)
    assert doc["state"] == "received"


def test_retry_all_failed_with_nothing_failed_says_so(ran):
    r = connector("retry", "--all-failed", "-c", str(ran))
    assert r.returncode == 0 and "no failed orders" in r.stdout


def test_run_refuses_a_taken_port_in_one_line_before_starting(flow):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        data = flow.config_dict()
        data["daemon"]["listen"] = f"127.0.0.1:{port}"
        cfg = flow.write_toml()
        cfg.write_text(cfg.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'))
        r = connector("run", "-c", str(cfg), timeout=60)
        assert r.returncode == 2, r.stderr
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert lines == [f"cannot start: cannot listen on 127.0.0.1:{port}: the port is already in use (another connector, or another program)"]
        assert "daemon started" not in r.stdout + r.stderr
    finally:
        busy.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_reload_applies_a_fixed_mapping_without_a_restart_and_keeps_the_old_config_on_error(flow):
    port = free_port()
    flow.uc.queue("DFLT", [make_order("DEMO-0014", ship_method="Pigeon: Carrier Express"), make_order("DEMO-0001")])
    flow.overrides["acme"] = {"schedule": {"order_download": "1s", "order_delivery": "1s"}}
    cfg = flow.write_toml()
    text = cfg.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    cfg.write_text(text)
    daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait(lambda: "acme-DEMO-0001" in flow.sb.orders, what="the first order to reach the warehouse")
        assert "acme-DEMO-0014" not in flow.sb.orders  # held: the method is not mapped
        cfg.write_text(text.replace("[merchants.ship_methods]", "[merchants.ship_methods]\n\"Pigeon: Carrier Express\" = \"Standard\""))
        r = connector("reload", "-c", str(cfg))
        assert r.returncode == 0 and "reloaded" in r.stdout and "changed acme" in r.stdout, r.stdout + r.stderr
        wait(lambda: "acme-DEMO-0014" in flow.sb.orders, what="the released order")
        doc = json.loads(connector("status", "-c", str(cfg), "--json").stdout)
        [d] = [d for d in doc["daemons"] if d["running"]]
        assert d["config_loaded_at"] and d["config_file"] == str(cfg.resolve())
        cfg.write_text(text.replace("[merchants.ship_methods]", "[merchants.ship_methods]\nbogus_key_here"))
        r = connector("reload", "-c", str(cfg))  # the file cannot even be read now: checked before asking the daemon
        assert r.returncode == 2 and "config error" in r.stderr
        cfg.write_text(text.replace('"channel_id" = ', 'chanel_id = 1\n"channel_id" = '))
        url = f"http://127.0.0.1:{port}/control/reload"
        assert httpx.post(url, timeout=30).status_code == 403, "no control token: refused"
        token = sqlite3.connect(flow.database_url.removeprefix("sqlite:///")).execute("SELECT value FROM cursors WHERE name = 'control_token'").fetchone()[0]
        proxied = httpx.post(url, headers={"X-Connector-Control": token, "X-Forwarded-For": "203.0.113.9"}, timeout=30)
        assert proxied.status_code == 403, "through a proxy every caller looks local: refused"
        r = httpx.post(url, headers={"X-Connector-Control": token}, timeout=30)
        assert r.status_code == 422 and "chanel_id" in r.json()["message"], r.text
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200, "the old config keeps running"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, out


def test_run_once_interrupted_says_what_it_did_and_exits_130(flow):
    flow.uc.queue("DFLT", [make_order(f"DEMO-{i:04d}") for i in range(1, 21)])
    cfg = flow.write_toml()
    assert connector("run", "--once", "-c", str(cfg), "--service", "order_download").returncode == 0
    flow.sb.faults.update({"latency_ms": 400})
    proc = subprocess.Popen(CMD + ["run", "--once", "-c", str(cfg), "--service", "order_delivery"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait(lambda: flow.sb.requests.get("POST /order", 0) >= 1, what="the first create")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted" in out and "created" in out
    created = flow.kit.created()
    assert 1 <= created < 20
    doc = json.loads(connector("status", "-c", str(cfg), "--json").stdout)
    [run] = [s for s in doc["merchants"][0]["services"] if s["service"] == "order_delivery"]
    assert run["outcome"] == "interrupted" and run["did"]["created"] == created and run["last_success"] is None
    states = json.loads(connector("orders", "-c", str(cfg), "--json", "--all").stdout)
    assert {o["state"] for o in states["orders"]} <= {"at_warehouse", "ready"}, "nothing left submitting or in doubt"


def test_demo_keep_leaves_a_database_to_explore(tmp_path):
    keep = tmp_path / "demo"
    r = connector("demo", "--keep", str(keep), "--orders", "10", timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Kept in {keep}" in r.stdout
    cfg = keep / "connector.toml"
    status = connector("status", "-c", str(cfg))
    assert "demo" in status.stdout and "confirmed" in status.stdout
    assert connector("order", "DEMO-0001", "-c", str(cfg)).returncode == 0


def test_sandbox_serves_a_ready_config_until_ctrl_c(tmp_path):
    folder = tmp_path / "sbx"
    proc = subprocess.Popen(CMD + ["sandbox", "--orders", "5", "--dir", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        while not any("Ctrl-C" in x for x in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        control = next(x.split("'")[1].rsplit("/", 1)[0] for x in lines if "/queue?count=" in x)
        cfg = folder / "connector.toml"
        r = connector("run", "--once", "-c", str(cfg))
        assert r.returncode == 0, r.stdout + r.stderr
        assert httpx.post(f"{control}/queue?count=3").json() == {"queued": 3}
        connector("run", "--once", "-c", str(cfg), "--service", "order_download")
        doc = json.loads(connector("orders", "-c", str(cfg), "--json", "--all").stdout)
        assert doc["total"] == 8
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "sandboxes stopped" in out
