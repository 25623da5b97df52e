"""The README tells the truth: its lifecycle table is the code's, every command and option it names
exists, and the commands in its shell blocks run as shown (the simulators stand in for the real
accounts; a daemon or a sandbox is started, checked and stopped with SIGTERM/SIGINT)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connector.lifecycle import moves_table
from tests.acceptance.test_cli import free_port, wait

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONNECTOR = [sys.executable, "-m", "connector"]


def blocks(lang: str = "bash") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    """Every shell command in the README's bash blocks, continuation lines joined, comments cut."""
    out = []
    for block in blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def mentioned() -> tuple[set[tuple[str, str]], list[str]]:
    """Every `connector SUB [SUB2] --option` the README shows inline, in its tables or its shell
    blocks, as (subcommand path, option) pairs ("" for the bare subcommand), and the snippets
    whose subcommand does not exist."""
    pairs: set[tuple[str, str]] = set()
    unknown: list[str] = []
    for snippet in re.findall(r"`(connector [^`]+)`", README) + commands():
        for part in snippet.split(" / "):
            words = part.replace("\\|", "|").split()
            if "connector" not in words:
                continue
            words = words[words.index("connector") + 1:]
            if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
                continue
            path = [words[0]]
            if not _is_command(tuple(path)):
                unknown.append(part)
                continue
            if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]) and "Commands:" in (_help(tuple(path)) or ""):
                path.append(words[1])  # a group: its next word must be one of its commands
                if not _is_command(tuple(path)):
                    unknown.append(part)
                    continue
            opts = [o for w in words for o in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", w)]
            pairs.add((" ".join(path), ""))
            pairs.update((" ".join(path), o) for o in opts)
    return pairs, unknown


def _has_option(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


_HELP: dict[tuple[str, ...], str | None] = {}


def _help(path: tuple[str, ...]) -> str | None:
    if path not in _HELP:
        r = subprocess.run(CONNECTOR + [*path, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        _HELP[path] = r.stdout if r.returncode == 0 else None
    return _HELP[path]


def _is_command(path: tuple[str, ...]) -> bool:
    return _help(path) is not None


def test_the_lifecycle_table_is_the_codes():
    lines = README[README.index("<!-- lifecycle table"):].splitlines()[1:]
    table = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    assert "\n".join(table) == moves_table()


def test_every_command_and_option_the_readme_names_exists():
    pairs, unknown = mentioned()
    assert not unknown, f"the README names commands that do not exist: {unknown}"
    subcommands = {p for p, o in pairs}
    assert {"run", "status", "onboard", "merchant add", "webhooks register", "console add-user", "cancel", "sandbox", "demo", "bench"} <= subcommands
    missing = [f"connector {p} {o}".strip() for p, o in sorted(pairs) if o and not _has_option(_help(tuple(p.split())) or "", o)]
    assert not missing, missing


def test_the_first_command_installs_and_runs_the_demo():
    first = commands()[0]
    assert first == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/connector demo"
    # .ci/run types this very line on a fresh machine; here the demo it ends with must succeed.
    r = subprocess.run(CONNECTOR + ["demo"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing lost, nothing sent twice" in r.stdout


def test_the_test_command_is_what_ci_runs():
    assert commands()[1] == ".venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest" in ci


def _argv(line: str, tmp: Path) -> list[str]:
    argv = shlex.split(line)
    assert argv[0] == ".venv/bin/connector" or argv[0] == "connector", line
    return CONNECTOR + argv[1:]


def test_the_sandbox_and_a_daemon_against_it_run_as_shown(tmp_path):
    shown = [c for c in commands() if "connector sandbox" in c or c.startswith(".venv/bin/connector run -c connector-sandbox")]
    assert len(shown) == 2, shown
    sandbox = subprocess.Popen(_argv(shown[0], tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    daemon = None
    try:
        cfg = tmp_path / "connector-sandbox" / "connector.toml"
        wait(lambda: cfg.exists() and "[[merchants]]" in cfg.read_text(), what="the sandbox's config", timeout=60)
        # The sandbox's config listens on 8080; give the daemon a free port so tests can run side by side.
        cfg.write_text(re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{free_port()}"', cfg.read_text()))
        daemon = subprocess.Popen(_argv(shown[1], tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def delivered() -> bool:
            r = subprocess.run(CONNECTOR + ["orders", "-c", str(cfg), "--state", "confirmed", "--json"], capture_output=True,
                               text=True, cwd=tmp_path, timeout=60)
            return r.returncode == 0 and r.stdout.count('"order_id"') >= 1

        wait(delivered, what="orders sent, shipped and confirmed by the daemon", timeout=90)
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, out
        daemon = None
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.communicate()
        sandbox.send_signal(signal.SIGINT)
        out, _ = sandbox.communicate(timeout=30)
    assert "sandboxes stopped" in out


def test_merchant_add_runs_as_shown(tmp_path):
    line = next(c for c in commands() if c.startswith("connector merchant add"))
    cfg = tmp_path / "connector.toml"
    cfg.write_text((ROOT / "config.example.toml").read_text().replace('id = "acme"', 'id = "first"', 1))
    r = subprocess.run(_argv(line, tmp_path) + ["-c", str(cfg)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "ACME_SHIPBOB_TOKEN": "x", "ACME_ULTRACART_KEY": "y"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "added merchant 'acme'" in r.stdout and "ACME_TOKEN" in r.stdout, r.stdout
    assert '[[merchants]]\nid = "acme"' in cfg.read_text()


@pytest.mark.parametrize("path", ["config.example.toml"])
def test_the_example_config_is_valid(path, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ACME_ULTRACART_KEY": "k", "ACME_SHIPBOB_TOKEN": "t", "SMTP_PASSWORD": ""}
    r = subprocess.run(CONNECTOR + ["check", "-c", str(ROOT / path)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
