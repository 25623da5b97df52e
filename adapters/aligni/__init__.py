"""The Aligni inventory ledger (entry point `aligni` in the `connector.ledgers` group)."""

from adapters.aligni.adapter import AligniLedger
from adapters.aligni.config import AligniConfig

__all__ = ["AligniLedger", "AligniConfig"]
