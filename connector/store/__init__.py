"""Persistence: the tables (`models`), engines and migrations (`engine`), and the Store (`store`)."""

from connector.store.store import NewOrder, Store, Transition, utcnow

__all__ = ["NewOrder", "Store", "Transition", "utcnow"]
