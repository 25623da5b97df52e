"""Alert queries (placeholder until the alerts module lands): mixed into Store."""


class AlertQueries:
    """Named queries for the alerts table; mixed into `Store` (uses `self.engine`)."""
