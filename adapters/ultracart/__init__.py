"""UltraCart: the Fulfillment API client, Order JSON -> domain parsing, and webhook bodies."""

from adapters.ultracart.client import API_VERSION, DEFAULT_BASE_URL, UltraCartClient
from adapters.ultracart.parse import OrderParseError, WebhookParseError, parse_order, parse_webhook

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "OrderParseError",
    "UltraCartClient",
    "WebhookParseError",
    "parse_order",
    "parse_webhook",
]
