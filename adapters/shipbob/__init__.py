"""The ShipBob warehouse adapter (entry point `shipbob` in the `connector.warehouses` group)."""

from adapters.shipbob.adapter import ShipBobAdapter
from adapters.shipbob.config import ShipBobConfig

__all__ = ["ShipBobAdapter", "ShipBobConfig"]
