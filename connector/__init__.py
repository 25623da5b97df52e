"""The UltraCart order-flow connector."""

from __future__ import annotations


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ultracart-connector")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    """`connector.__version__`, read on first use: importlib.metadata alone is a tenth of a
    `connector check`."""
    if name == "__version__":
        globals()["__version__"] = v = _version()
        return v
    raise AttributeError(f"module 'connector' has no attribute {name!r}")
