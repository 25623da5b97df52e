"""The process's own settings, from `CONNECTOR_*` environment variables (pydantic-settings).

These override the config file for one process, which is what a container or a systemd unit
wants: the same file everywhere, the database or log format chosen by the environment.

    CONNECTOR_CONFIG        the config file (after -c/--config, before ./connector.toml)
    CONNECTOR_DATABASE_URL  overrides [daemon] database_url
    CONNECTOR_LOG_FORMAT    overrides [daemon] log_format ("console" or "json")
    CONNECTOR_LOG_LEVEL     overrides [daemon] log_level

Other CONNECTOR_* variables (the tests' CONNECTOR_TEST_POSTGRES_URL, CONNECTOR_FAILPOINT, and
CONNECTOR_EVENT_LOOP=asyncio, which keeps uvloop out: `connector.cli.common.run_async`) are not
settings and are ignored here.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

from connector.errors import ConfigError

ENV_PREFIX = "CONNECTOR_"
NAMES = ("CONFIG", "DATABASE_URL", "LOG_FORMAT", "LOG_LEVEL")  # each read as CONNECTOR_<NAME>


class Unset:
    """The settings of a process whose environment sets none of them (the common case, answered
    without importing pydantic-settings: a tenth of the CPU of `connector check`)."""

    CONFIG = DATABASE_URL = LOG_FORMAT = LOG_LEVEL = None

    def daemon_overrides(self) -> dict[str, str]:
        return {}


@functools.cache
def _settings_class() -> Any:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class ProcessSettings(BaseSettings):
        """What the environment sets for this process; None: not set (the config file decides)."""

        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=True)

        CONFIG: str | None = None
        DATABASE_URL: str | None = None
        LOG_FORMAT: Literal["console", "json"] | None = None
        LOG_LEVEL: Literal["debug", "info", "warning", "error"] | None = None

        def daemon_overrides(self) -> dict[str, str]:
            """[daemon] keys the environment overrides, with their values."""
            pairs = (("database_url", self.DATABASE_URL), ("log_format", self.LOG_FORMAT), ("log_level", self.LOG_LEVEL))
            return {key: value for key, value in pairs if value}

    return ProcessSettings


def process_settings(env: dict[str, str] | None = None) -> Any:
    """Read the settings (from `env` when given, else the process environment); a bad value is a
    ConfigError naming the variable."""
    from pydantic import ValidationError

    source = os.environ if env is None else env
    if not any(ENV_PREFIX + name in source for name in NAMES):
        return Unset()
    cls = _settings_class()
    try:
        if env is None:
            return cls()
        return cls(**{k.removeprefix(ENV_PREFIX): v for k, v in env.items() if k.startswith(ENV_PREFIX) and k.removeprefix(ENV_PREFIX) in NAMES})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + str(first["loc"][0]) if first.get("loc") else "CONNECTOR_*"
        raise ConfigError(f"${name}", "", first.get("msg", "invalid value")) from None


def variable_for(key: str) -> str:
    """The environment variable that overrides a [daemon] key."""
    return f"{ENV_PREFIX}{key.upper()}"
