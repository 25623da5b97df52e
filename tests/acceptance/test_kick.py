"""An operator command given to a running daemon takes effect in seconds, not at the next
schedule: `connector release` asks the daemon (on its loopback control endpoint) to start the
merchant's delivery at once."""

from __future__ import annotations

import signal
import subprocess

from connector.sandbox.samples import make_order
from tests.acceptance.test_cli import CMD, connector, free_port, wait
from tests.support.flow import Flow, to_toml


def test_a_release_is_sent_at_once_by_the_running_daemon(tmp_path):
    f = Flow(tmp_path)
    daemon = None
    try:
        raw = f.config_dict()
        raw["daemon"]["listen"] = f"127.0.0.1:{free_port()}"
        m = raw["merchants"][0]
        # Delivery runs once at start, then only every hour: only a kick can send the order today.
        m["schedule"] = {"order_download": "1s", "order_delivery": "1h"}
        m.setdefault("orders", {})["hold_minutes"] = 600
        cfg = tmp_path / "connector.toml"
        cfg.write_text(to_toml(raw))
        f.uc.queue("DFLT", [make_order("KICK-1")])
        daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait(lambda: "KICK-1" in f.uc.acknowledged, what="the order downloaded")
        wait(lambda: "timed hold" in connector("order", "KICK-1", "-c", str(cfg)).stdout, what="the order held for hold_minutes")
        assert not f.sb.orders

        r = connector("release", "KICK-1", "-c", str(cfg))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "the running daemon started order_delivery now for acme" in r.stdout, r.stdout
        wait(lambda: "acme-KICK-1" in f.sb.orders, what="the released order at the warehouse", timeout=20)
        assert f.kit.created() == 1
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
        f.close()


def test_a_release_without_a_daemon_says_nothing_about_one(tmp_path):
    f = Flow(tmp_path)
    try:
        raw = f.config_dict()
        raw["daemon"]["listen"] = f"127.0.0.1:{free_port()}"  # nobody listens there
        raw["merchants"][0].setdefault("orders", {})["hold_minutes"] = 600
        cfg = tmp_path / "connector.toml"
        cfg.write_text(to_toml(raw))
        f.uc.queue("DFLT", [make_order("KICK-2")])
        assert connector("run", "--once", "-c", str(cfg)).returncode == 0
        r = connector("release", "KICK-2", "-c", str(cfg))
        assert r.returncode == 0 and "released" in r.stdout.lower(), r.stdout + r.stderr
        assert "daemon" not in r.stdout
    finally:
        f.close()


def test_a_sigkill_right_after_a_webhooks_200_loses_nothing_and_sends_once(tmp_path):
    """UltraCart pushes orders; the daemon answers 200 and is killed at once (before or while the
    delivery it kicked runs). The restarted daemon sends each order exactly once and acknowledges it."""
    import httpx

    f = Flow(tmp_path)
    daemon = None
    try:
        raw = f.config_dict()
        port = free_port()
        raw["daemon"]["listen"] = f"127.0.0.1:{port}"
        m = raw["merchants"][0]
        m["ultracart"].update(webhook_username="acme", webhook_password="hook-secret-1")
        m["schedule"] = {"order_download": "1h", "order_delivery": "1h"}
        cfg = tmp_path / "connector.toml"
        cfg.write_text(to_toml(raw))
        daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait(lambda: connector("status", "-c", str(cfg), "--json").returncode in (0, 3), what="the daemon to start")
        ids = [f"DEMO-{i}" for i in range(9001, 9006)]
        orders = [make_order(i) for i in ids]
        body = {"events": [{"fulfillment_transmit": o} for o in orders]}
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/ultracart/acme", json=body, auth=("acme", "hook-secret-1"), timeout=30)
        assert r.status_code == 200 and r.json()["stored"] == 5, r.text
        f.uc.queue("DFLT", orders)  # UltraCart's DC queue holds pushed orders too, until acknowledged
        daemon.kill()  # SIGKILL the moment the 200 is in hand
        daemon.communicate(timeout=30)
        daemon = subprocess.Popen(CMD + ["run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait(lambda: all(f"acme-{i}" in f.sb.orders for i in ids), what="every pushed order at the warehouse", timeout=60)
        wait(lambda: set(ids) <= set(f.uc.acknowledged), what="every pushed order acknowledged", timeout=60)
        assert f.kit.created() == 5 and all(n == 1 for n in f.kit.create_attempts().values())
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
        f.close()
