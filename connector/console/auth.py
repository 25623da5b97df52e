"""Who is asking, and may they: console logins, sessions, CSRF tokens and the login rate limit.

Sessions are random ids kept in this process's memory (never signed cookies): the cookie holds
only 32 random bytes, the server holds who it belongs to, its CSRF token and the current search.
Logging out, removing a user or changing their role or password in the config (and reloading)
ends their sessions at once; a daemon restart logs everyone out, which is the safe side.

Passwords are argon2 hashes in `[[console.users]]` (`connector console add-user` makes one).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

OPEN_USER = "console (no login)"  # who= when the console runs without logins (loopback only)
MAX_SESSIONS = 10_000  # per pool (anonymous visitors, logged-in people)
HASHER = PasswordHasher()
# Verified when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a name for the timeline, and the merchants they may see."""

    name: str
    role: str  # "operator" or "merchant:<id>"
    password_hash: str = ""  # the hash the session was opened with: a changed password ends it

    @property
    def merchant(self) -> str | None:
        """The one merchant a merchant login sees (None: an operator sees them all)."""
        kind, _, scope = self.role.partition(":")
        return scope if kind == "merchant" else None

    @property
    def can_act(self) -> bool:
        return self.role == "operator"

    def sees(self, merchant: str) -> bool:
        return self.merchant is None or self.merchant == merchant

    @property
    def scope(self) -> tuple[str, ...] | None:
        """`Search.merchants` for this login."""
        return None if self.merchant is None else (self.merchant,)


@dataclass
class Session:
    """One browser's session: who (None until logged in), its CSRF token, and its search."""

    id: str
    expires: float
    principal: Principal | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    search: dict[str, str] = field(default_factory=dict)  # the orders search (its text is personal: never in a URL)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown once

    def check_csrf(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), token.encode())

    def say(self, kind: str, message: str) -> None:
        self.flash.append((kind, message))
        del self.flash[:-20]

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


class Sessions:
    """The sessions of this process, by random id. Visitors who have not logged in (each gets a
    session for the login form's CSRF token) are kept apart from logged-in people, each pool
    bounded: a flood of anonymous requests drops the oldest anonymous sessions, never a login."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._people: OrderedDict[str, Session] = OrderedDict()

    def new(self, seconds: float, principal: Principal | None = None) -> Session:
        pool = self._people if principal is not None else self._anonymous
        _trim(pool, self.clock())
        while len(pool) >= MAX_SESSIONS:
            pool.popitem(last=False)
        s = Session(id=secrets.token_urlsafe(32), expires=self.clock() + seconds, principal=principal)
        pool[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        for pool in (self._people, self._anonymous):
            s = pool.get(sid)
            if s is not None:
                if s.expires > self.clock():
                    return s
                del pool[sid]
        return None

    def drop(self, sid: str) -> None:
        self._people.pop(sid, None)
        self._anonymous.pop(sid, None)

    def __len__(self) -> int:
        return len(self._people) + len(self._anonymous)


def _trim(pool: OrderedDict[str, Session], now: float) -> None:
    """Drop expired sessions from the oldest end (a pool's sessions mostly share one lifetime)."""
    while pool:
        sid, s = next(iter(pool.items()))
        if s.expires > now:
            return
        del pool[sid]


class LoginLimiter:
    """At most `per_minute` failed logins per user name and per client address in any minute;
    past that every attempt (the right password too) is refused until the minute has passed."""

    MAX_KEYS = 50_000

    def __init__(self, per_minute: Callable[[], int], clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        cutoff = self.clock() - 60.0
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def wait_seconds(self, *keys: str) -> float:
        """0 when an attempt may go on, else how long until it may."""
        limit = self.per_minute()
        waits = [q[0] + 60.0 - self.clock() for q in (self._recent(k) for k in keys) if len(q) >= limit]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for k in keys:
            q = self._failures.pop(k, None) or deque()
            q.append(now)
            while len(q) > self.per_minute():  # the oldest beyond the limit no longer matter
                q.popleft()
            self._failures[k] = q  # most recently failed last: the oldest keys go first
        while len(self._failures) > self.MAX_KEYS:
            self._failures.popitem(last=False)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(users: list[Any], name: str, password: str) -> Principal | None:
    """The user with this name and password (None otherwise). CPU-heavy: run it in a thread."""
    user = next((u for u in users if u.name == name), None)
    try:
        HASHER.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    return Principal(user.name, user.role, user.password_hash)


def still_valid(p: Principal, users: list[Any]) -> bool:
    """The login still exists in the (possibly reloaded) config with the same role and password."""
    if p.name == OPEN_USER:
        return not users
    return any(u.name == p.name and u.role == p.role and u.password_hash == p.password_hash for u in users)


def loopback_only(host: str) -> bool:
    """Whether a listen host accepts connections from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
