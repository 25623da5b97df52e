"""The ShipStation API v2 warehouse adapter (entry point `shipstation-v2` in `connector.warehouses`)."""

from adapters.shipstation_v2.adapter import ShipStationV2Adapter
from adapters.shipstation_v2.config import ShipStationV2Config

__all__ = ["ShipStationV2Adapter", "ShipStationV2Config"]
