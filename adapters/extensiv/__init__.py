"""The Extensiv 3PL Warehouse Manager adapter (entry point `extensiv` in `connector.warehouses`)."""

from adapters.extensiv.adapter import ExtensivAdapter
from adapters.extensiv.config import ExtensivConfig

__all__ = ["ExtensivAdapter", "ExtensivConfig"]
