"""The ShipStation (API v1) warehouse adapter (entry point `shipstation` in `connector.warehouses`)."""

from adapters.shipstation.adapter import ShipStationAdapter
from adapters.shipstation.config import ShipStationConfig

__all__ = ["ShipStationAdapter", "ShipStationConfig"]
