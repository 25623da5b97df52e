"""`connector console` as an operator runs it: `add-user` prints a block to paste (never the
password), and the console served alone against a database, refusing a public address without
a login."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import tomllib

import httpx
import pytest
from argon2 import PasswordHasher

from connector.config import from_dict
from connector.sandbox.samples import make_order
from tests.support.flow import Flow

CMD = [sys.executable, "-m", "connector"]


def connector(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(CMD + list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


@pytest.fixture
def flow(tmp_path):
    f = Flow(tmp_path)
    yield f
    f.close()


def test_add_user_prints_a_block_to_paste_and_never_the_password(flow):
    password = "a long enough passphrase"
    r = connector("console", "add-user", "alice", "--role", "merchant:acme", "--password-stdin", stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    assert password not in r.stdout + r.stderr
    block = tomllib.loads(r.stdout)
    [user] = block["console"]["users"]
    assert user["name"] == "alice" and user["role"] == "merchant:acme" and user["password_hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(user["password_hash"], password)
    cfg = from_dict({**flow.config_dict(), **block}, file="<pasted>")  # pasted into a config, it is valid as it is
    assert cfg.console.users[0].name == "alice"


@pytest.mark.parametrize("args, stdin, says", [
    (["bob", "--role", "admin", "--password-stdin"], "long enough password\n", "--role: must be operator or merchant:<id>"),
    (["bob smith", "--role", "operator", "--password-stdin"], "long enough password\n", "NAME: 1-64 letters"),
    (["bob", "--role", "operator", "--password-stdin"], "short\n", "too short"),
    (["bob", "--role", "operator"], None, "use --password-stdin"),  # no terminal to ask on
])
def test_add_user_refuses_what_would_not_work(args, stdin, says):
    r = connector("console", "add-user", *args, stdin=stdin)
    assert r.returncode == 2 and says in r.stderr and "password_hash" not in r.stdout


def test_the_console_alone_refuses_a_public_address_without_a_login(flow):
    cfg = flow.write_toml()
    r = connector("console", "-c", str(cfg), "--listen", "0.0.0.0:0")
    assert r.returncode == 2 and "refusing to serve the console on 0.0.0.0:0 without a login" in r.stderr
    r = connector("console", "-c", str(cfg), "--listen", "nonsense")
    assert r.returncode == 2 and "--listen" in r.stderr
    r = connector("console", "-c", str(cfg))  # nothing has run: no database to look at
    assert r.returncode == 2 and "no database at" in r.stderr


async def test_the_console_alone_serves_a_database_and_stops_on_sigterm(flow):
    flow.uc.queue("DFLT", [make_order("DEMO-0001"), make_order("DEMO-0014", ship_method="Pigeon: Carrier Express")])
    rt = await flow.runtime()
    for service in ("order_download", "order_delivery"):
        assert (await rt.run_service("acme", service, honour_pause=False)).ok
    await rt.aclose()
    cfg = flow.write_toml()
    proc = subprocess.Popen(CMD + ["console", "-c", str(cfg), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            first.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert first.wait(60), proc.stderr.read() if proc.poll() is not None else "no address printed"
        url = re.search(r"console on (http://\S+/ui/)", lines[0]).group(1)
        assert "no login: this machine only" in lines[0]
        async with httpx.AsyncClient(timeout=30) as c:
            home = await c.get(url.removesuffix("/ui/") + "/", follow_redirects=True)
            assert home.status_code == 200 and str(home.url) == url and "No login" in home.text and "acme" in home.text
            queue = await c.get(url + "queue")
            assert "unmapped ship method: Pigeon: Carrier Express" in queue.text
            order = await c.get(url + "orders/acme/DEMO-0014")
            assert order.status_code == 200 and "Timeline" in order.text
            assert order.headers["x-frame-options"] == "DENY"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
