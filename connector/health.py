"""What the process knows about its own health, beyond any one pass: a database that stopped
taking writes (or whose file was deleted or replaced), a scheduler that stopped running jobs.
`/readyz`, `connector status` and the metrics read it; the pass runner and the watchdog set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError

from connector.store import DatabaseReplaced


@dataclass
class Fault:
    what: str
    since: datetime


@dataclass
class Health:
    database: Fault | None = None
    scheduler: Fault | None = None
    notes: dict[str, str] = field(default_factory=dict)  # other conditions worth showing, not failing on

    def database_failed(self, what: str, now: datetime) -> bool:
        """Record a database fault; True when it is new (worth one log line)."""
        new = self.database is None or self.database.what != what
        if self.database is None:
            self.database = Fault(what, now)
        else:
            self.database.what = what
        return new

    def database_ok(self) -> Fault | None:
        """The database works again; returns the fault that ended (None if there was none)."""
        ended, self.database = self.database, None
        return ended

    def problems(self) -> list[str]:
        out = []
        if self.database is not None:
            out.append(f"database: {self.database.what} (since {self.database.since:%Y-%m-%d %H:%M:%S}Z)")
        if self.scheduler is not None:
            out.append(f"scheduler: {self.scheduler.what} (since {self.scheduler.since:%Y-%m-%d %H:%M:%S}Z)")
        return out


def database_fault(exc: BaseException) -> str:
    """One line about a database failure, or "" when `exc` is not one. Database errors carry the
    SQL and its parameters (order payloads) after their first line: never shown."""
    if isinstance(exc, DatabaseReplaced):
        return str(exc)
    if isinstance(exc, OperationalError | DBAPIError):
        orig = getattr(exc, "orig", None) or exc
        return f"{type(orig).__name__}: {(str(orig).splitlines() or [''])[0][:200]}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return ""
