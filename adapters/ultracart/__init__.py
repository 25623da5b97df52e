"""UltraCart: the Fulfillment, Order and Item API client, Order JSON -> domain parsing, webhook
bodies, and the item catalog records onboarding uses."""

from adapters.ultracart.catalog import CatalogItem, KitComponent, parse_item
from adapters.ultracart.client import API_VERSION, DEFAULT_BASE_URL, ITEM_EXPAND, ORDER_EXPAND, UltraCartClient
from adapters.ultracart.parse import OrderParseError, WebhookParseError, parse_order, parse_webhook

__all__ = [
    "API_VERSION",
    "CatalogItem",
    "DEFAULT_BASE_URL",
    "ITEM_EXPAND",
    "KitComponent",
    "ORDER_EXPAND",
    "OrderParseError",
    "UltraCartClient",
    "WebhookParseError",
    "parse_item",
    "parse_order",
    "parse_webhook",
]
