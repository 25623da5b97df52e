"""A merchant wired to the loopback sandboxes, for pipeline and acceptance tests.

`Flow` starts an UltraCart and a ShipBob sandbox on real sockets, writes the matching config
(as a dict, and as a TOML file for tests that run the real `connector` process), and opens a
Runtime on a SQLite file (or the PostgreSQL URL given).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from connector.config import Config, from_dict
from connector.clock import OffsetClock
from connector.runtime import Runtime, build_runtime
from connector.sandbox.kits import make_kit
from connector.sandbox.server import SandboxServer
from connector.sandbox.ultracart import UltraCartSandbox
from connector.store import Store

PRODUCTS = ("BONE-5LB", "TREAT", "LEASH-RED", "LEASH-BLUE", "BOWL-L", "COLLAR-M")
# cart method -> index into the kit's ship methods (for ShipBob: Standard, Expedited, 2-Day)
METHODS = {"USPS: Priority Mail": 0, "UPS: Ground": 0, "FedEx: 2Day": -1}
_keys = itertools.count(1)


class Flow:
    """Sandboxes + config for one or more merchants; `runtime()` opens the connector on them."""

    def __init__(self, tmp_path: Path, *, merchants: tuple[str, ...] = ("acme",), database_url: str | None = None,
                 warehouse: str = "shipbob", own_warehouses: bool = False, **sandbox_kw: Any):
        n = next(_keys)
        self.tmp = tmp_path
        # Fresh credentials per Flow: rate-limiter state is per credential and process-wide.
        self.uc_key, self.sb_token = f"uc-key-{n}-secret", f"sb-token-{n}-secret"
        # One distribution center per merchant: the first is DFLT, the others are named after them.
        self.dcs = {m: ("DFLT" if i == 0 else m.upper()) for i, m in enumerate(merchants)}
        self.uc = UltraCartSandbox(api_key=self.uc_key, merchant_id="DEMO", distribution_centers=tuple(self.dcs.values()))
        if warehouse != "files":  # files plans its shipments itself
            sandbox_kw.setdefault("split_every", 0)
            sandbox_kw.setdefault("void_every", 0)
        products = sandbox_kw.pop("products", PRODUCTS)
        methods = sandbox_kw.pop("ship_methods", ("Standard", "Expedited", "2-Day"))

        def new_kit() -> Any:
            return make_kit(warehouse, products=products, ship_methods=methods, credential=self.sb_token, **sandbox_kw)

        self.kit = new_kit()
        self.sb = getattr(self.kit, "sandbox", None)  # the vendor sandbox itself (ShipBobSandbox, ...)
        self.uc_server = SandboxServer(self.uc.app).start()
        self.sb_server = SandboxServer(self.kit.app).start() if self.kit.app is not None else None
        # own_warehouses: every merchant after the first gets its own warehouse account (as in life)
        self.kits = {m: self.kit for m in merchants}
        self.servers = {m: self.sb_server for m in merchants}
        if own_warehouses:
            for m in merchants[1:]:
                self.kits[m] = new_kit()
                self.servers[m] = SandboxServer(self.kits[m].app).start() if self.kits[m].app is not None else None
        self.wh_dir = tmp_path / "warehouse"
        self.wh_dir.mkdir(exist_ok=True)
        self.database_url = database_url or f"sqlite:///{tmp_path / 'connector.db'}"
        self.merchants = merchants
        self.overrides: dict[str, dict[str, Any]] = {m: {} for m in merchants}

    def close(self) -> None:
        self.uc_server.stop()
        self.uc.close()
        for server in {id(s): s for s in self.servers.values() if s is not None}.values():
            server.stop()
        for kit in {id(k): k for k in self.kits.values()}.values():
            if hasattr(kit, "close"):
                kit.close()

    def merchant_dict(self, merchant: str) -> dict[str, Any]:
        m = {
            "id": merchant,
            "ultracart": {"merchant_id": "DEMO", "api_key": self.uc_key, "distribution_center": self.dcs[merchant], "base_url": self.uc_server.url},
            "warehouse": self.kits[merchant].warehouse_config(self.servers[merchant].url if self.servers[merchant] else "", self.wh_dir),
            "ship_methods": {cart: self.kits[merchant].ship_methods[i] for cart, i in METHODS.items()},
            "skus": {"aliases": {"Bone": "BONE-5LB"}, "kits": {"GIFT-SET": {"BONE-5LB": 1, "TREAT": 2}}},
            "retry": {"base_seconds": 1, "max_backoff_minutes": 1},
        }
        return _merge(m, self.overrides.get(merchant, {}))

    def config_dict(self) -> dict[str, Any]:
        return {"daemon": {"database_url": self.database_url, "log_level": "error", "listen": "127.0.0.1:0"},
                "merchants": [self.merchant_dict(m) for m in self.merchants]}

    def config(self) -> Config:
        return from_dict(self.config_dict(), file="<test>")

    def write_toml(self, path: Path | None = None) -> Path:
        path = path or self.tmp / "connector.toml"
        path.write_text(to_toml(self.config_dict()))
        return path

    async def runtime(self, worker_id: str = "test-worker") -> Runtime:
        """A Runtime on this flow's config, with a clock tests can move (`rt.clock.advance(s)`)."""
        cfg = self.config()
        clock = OffsetClock()
        return await build_runtime(cfg, store=await Store.open(cfg.daemon.database_url, clock=clock), clock=clock, worker_id=worker_id)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(data: dict[str, Any]) -> str:
    lines = []
    for section in ("daemon", "alerts"):
        if section in data:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in data[section].items()]
    for m in data.get("merchants", []):
        lines.append("[[merchants]]")
        tables = {k: v for k, v in m.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in m.items() if k not in tables]
        for name, table in tables.items():
            lines.append(f"[merchants.{name}]")
            lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
