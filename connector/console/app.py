"""The console's routes (served under `/ui`): pages are GET, every change is a POST carrying the
session's CSRF token, and each answer goes back to a page (post/redirect/get) with what happened.

    GET  /                      overview: every merchant's services, orders by state, alerts
    GET  /orders                the orders search (filters in the session; the text never in a URL)
    POST /orders                set the search
    GET  /orders/{m}/{id}       one order: timeline, warehouse order, shipments, vendor calls
    POST /act                   an operator action on orders (from an order page or a selection)
    GET  /queue                 the error queue, grouped by reason
    GET  /queue/{key}           one group; POST /queue/{key}/act: an action on the group
    GET  /alerts                POST /alerts/resolve
    GET  /events                the event log (by merchant, order, status)
    GET  /login POST /login     POST /logout
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlparse

import anyio.to_thread
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from connector.config import parse_listen
from connector.console import actions as act
from connector.console import views
from connector.console.auth import OPEN_USER, LoginLimiter, Principal, Session, Sessions, loopback_only, still_valid, verify
from connector.console.headers import SecurityHeaders
from connector.console.render import HERE, Renderer

COOKIE = "connector_console"
MAX_FORM = 256 * 1024
ANONYMOUS_SECONDS = 3600.0

log = structlog.get_logger("connector.console")


@dataclass
class Visit:
    """One request's session (new ones get a cookie), and its form when it is a POST."""

    session: Session
    fresh: bool = False
    form: dict[str, list[str]] = field(default_factory=dict)

    @property
    def who(self) -> Principal:
        assert self.session.principal is not None
        return self.session.principal

    def one(self, name: str) -> str:
        return (self.form.get(name) or [""])[0]


class Stop(Exception):
    """Answer this request with `response` now (a redirect to the login, a refusal)."""

    def __init__(self, response: Response):
        self.response = response


class Console:
    """The console of one Runtime: its sessions, login limiter and templates."""

    def __init__(self, runtime: Any, kick: Any = None, listen: str | None = None):
        self.rt = runtime
        self.kick = kick
        self.listen = listen or runtime.config.daemon.listen
        self.loopback = loopback_only(parse_listen(self.listen)[0])
        # The runtime's clock: tests move it past a session's end or the rate limit's minute.
        self.sessions = Sessions(runtime.clock.monotonic)
        self.limiter = LoginLimiter(lambda: self.rt.config.console.login_attempts_per_minute, runtime.clock.monotonic)
        self.r = Renderer()

    # ------------------------------------------------------------------ who may enter
    @property
    def users(self) -> list[Any]:
        return self.rt.config.console.users  # read per request: a reload adds or removes logins

    def mode(self) -> str:
        """"login" (users configured), "open" (no users, loopback only) or "refused"."""
        if self.users:
            return "login"
        return "open" if self.loopback else "refused"

    def refused_page(self, request: Request) -> Response:
        return self.r.page("refused.html", 503, base=_base(request), listen=self.listen, who=None, csrf="", flash=[], mode="refused",
                           nav="", title="Console not available")

    async def enter(self, request: Request, *, post: bool = False, login: bool = True) -> Visit:
        mode = self.mode()
        if mode == "refused":
            raise Stop(self.refused_page(request))
        session = self.sessions.get(request.cookies.get(COOKIE))
        fresh = False
        if session is not None and session.principal is not None and not still_valid(session.principal, self.users):
            session.principal = None  # removed from the config, or a new role or password: log in again
        if mode == "open":
            if session is None:
                session, fresh = self.sessions.new(self.session_seconds(), Principal(OPEN_USER, "operator")), True
            if session.principal is None:
                session.principal = Principal(OPEN_USER, "operator")
        elif session is None:
            session, fresh = self.sessions.new(ANONYMOUS_SECONDS), True
        visit = Visit(session, fresh)
        if post:
            visit.form = await _read_form(request)
            if fresh or not session.check_csrf(visit.one("csrf")) or not _same_origin(request):
                raise Stop(self.page(request, visit, "error.html", 403, title="Refused: the form's security token is missing or wrong",
                                     message="This form did not come from this console session (it may have expired). "
                                             "Reload the page and try again."))
        if login and session.principal is None:
            target = request.url.path if request.method == "GET" else _base(request) + "/"
            raise Stop(self.with_cookie(request, RedirectResponse(f"{_base(request)}/login?next={quote(target)}", 303), visit))
        return visit

    def session_seconds(self) -> float:
        return self.rt.config.console.session_hours * 3600

    def with_cookie(self, request: Request, response: Response, visit: Visit) -> Response:
        if visit.fresh:
            setting = self.rt.config.console.secure_cookies
            secure = setting == "always" or (setting == "auto" and request.url.scheme == "https")
            seconds = int(self.session_seconds() if visit.session.principal else ANONYMOUS_SECONDS)
            response.set_cookie(COOKIE, visit.session.id, max_age=seconds, path=_base(request) or "/", secure=secure, httponly=True,
                                samesite="strict")
        return response

    def page(self, request: Request, visit: Visit, name: str, code: int = 200, **values: Any) -> Response:
        s = visit.session
        response = self.r.page(name, code, base=_base(request), who=s.principal, csrf=s.csrf, flash=s.take_flash(), mode=self.mode(),
                               listen=self.listen, **{"nav": "", "title": "", **values})
        return self.with_cookie(request, response, visit)

    def back(self, request: Request, visit: Visit, fallback: str = "/") -> Response:
        base = _base(request)
        target = visit.one("back")
        if not target.startswith(base + "/") or "//" in target or "\\" in target:
            target = base + fallback
        return self.with_cookie(request, RedirectResponse(target, 303), visit)

    # ------------------------------------------------------------------ login
    async def login_form(self, request: Request) -> Response:
        visit = await self.enter(request, login=False)
        if self.mode() == "open" or visit.session.principal is not None:
            return self.with_cookie(request, RedirectResponse(_base(request) + "/", 303), visit)
        return self.page(request, visit, "login.html", title="Log in", next=_next(request, request.query_params.get("next", "")), error="")

    async def login(self, request: Request) -> Response:
        visit = await self.enter(request, post=True, login=False)
        name, password = visit.one("name").strip()[:64], visit.one("password")[:1024]
        target = _next(request, visit.one("next"))
        client = request.client.host if request.client else "unknown"
        keys = (f"user:{name.lower()}", f"client:{client}")
        wait = self.limiter.wait_seconds(*keys)
        if wait > 0:
            log.warning("console login refused: too many attempts", user=name, client=client)
            response = self.page(request, visit, "login.html", 429, title="Log in", next=target, user_name=name,
                                 error=f"Too many failed attempts: wait {int(wait) + 1} seconds, then try again.")
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        who = await anyio.to_thread.run_sync(verify, self.users, name, password)  # argon2 takes a CPU for ~50 ms
        if who is None:
            self.limiter.failed(*keys)
            log.warning("console login failed", user=name, client=client)
            return self.page(request, visit, "login.html", 401, title="Log in", next=target, user_name=name, error="Wrong user name or password.")
        self.sessions.drop(visit.session.id)  # a new id once logged in: a planted cookie gains nothing
        fresh = Visit(self.sessions.new(self.session_seconds(), who), fresh=True)
        log.info("console login", user=who.name, role=who.role, client=client)
        return self.with_cookie(request, RedirectResponse(target, 303), fresh)

    async def logout(self, request: Request) -> Response:
        visit = await self.enter(request, post=True, login=False)
        self.sessions.drop(visit.session.id)
        response = RedirectResponse(_base(request) + ("/login" if self.mode() == "login" else "/"), 303)
        response.delete_cookie(COOKIE, path=_base(request) or "/")
        return response

    # ------------------------------------------------------------------ pages
    async def overview(self, request: Request) -> Response:
        visit = await self.enter(request)
        doc = await views.overview(self.rt, visit.who)
        return self.page(request, visit, "overview.html", title="Overview", nav="overview", doc=doc, refresh=30)

    async def orders(self, request: Request) -> Response:
        visit = await self.enter(request)
        q = request.query_params
        if any(k in q for k in views.OrderFilter.PUBLIC):  # a link with filters: a new search, no text
            visit.session.search = views.OrderFilter.from_mapping({k: q[k] for k in views.OrderFilter.PUBLIC if k in q}).as_dict()
        f = views.OrderFilter.from_mapping(visit.session.search)
        data = await views.orders(self.rt, visit.who, f, _page(q.get("page")))
        return self.page(request, visit, "orders.html", title="Orders", nav="orders", **data)

    async def search(self, request: Request) -> Response:
        visit = await self.enter(request, post=True)
        visit.session.search = {} if visit.one("clear") else views.OrderFilter.from_mapping({k: visit.one(k) for k in views.OrderFilter.FIELDS}).as_dict()
        return self.with_cookie(request, RedirectResponse(_base(request) + "/orders", 303), visit)

    async def order(self, request: Request) -> Response:
        visit = await self.enter(request)
        merchant, order_id = request.path_params["merchant"], request.path_params["order_id"]
        try:
            data = await views.order(self.rt, visit.who, merchant, order_id)
        except views.NotFound:
            return self.not_found(request, visit)
        return self.page(request, visit, "order.html", title=f"Order {order_id}", nav="orders", ACTIONS=act.ACTIONS, **data)

    async def queue(self, request: Request) -> Response:
        visit = await self.enter(request)
        data = await views.queue(self.rt, visit.who)
        return self.page(request, visit, "queue.html", title="Error queue", nav="queue", ACTIONS=act.ACTIONS, **data)

    async def group(self, request: Request) -> Response:
        visit = await self.enter(request)
        try:
            data = await views.group(self.rt, visit.who, request.path_params["key"], _page(request.query_params.get("page")))
        except views.NotFound:
            if visit.session.flash:  # just emptied by an action: back to the queue with the news
                return self.with_cookie(request, RedirectResponse(_base(request) + "/queue", 303), visit)
            return self.not_found(request, visit)
        return self.page(request, visit, "group.html", title="Error queue group", nav="queue", ACTIONS=act.ACTIONS, **data)

    async def alerts(self, request: Request) -> Response:
        visit = await self.enter(request)
        data = await views.alerts(self.rt, visit.who, request.query_params.get("state", "open"))
        return self.page(request, visit, "alerts.html", title="Alerts", nav="alerts", **data)

    async def events(self, request: Request) -> Response:
        visit = await self.enter(request)
        q = request.query_params
        limit = _page(q.get("limit"))
        data = await views.events(self.rt, visit.who, q.get("merchant", "")[:64], q.get("order", "")[:200], q.get("status", "")[:10],
                                  limit if limit in views.EVENT_LIMITS else views.EVENT_LIMITS[0])
        return self.page(request, visit, "events.html", title="Event log", nav="events", **data)

    def not_found(self, request: Request, visit: Visit) -> Response:
        return self.page(request, visit, "error.html", 404, title="Not found", message="There is nothing here (or nothing this login may see).")

    # ------------------------------------------------------------------ actions
    def read_only(self, request: Request, visit: Visit) -> Response | None:
        if visit.who.can_act:
            return None
        return self.page(request, visit, "error.html", 403, title="Read-only login", message="This login can look, not act.")

    async def act(self, request: Request) -> Response:
        visit = await self.enter(request, post=True)
        refused = self.read_only(request, visit)
        if refused:
            return refused
        targets = [_target(v) for v in visit.form.get("order", [])]
        await self._perform(visit, visit.one("action"), [t for t in targets if t], len(targets))
        return self.back(request, visit)

    async def group_act(self, request: Request) -> Response:
        visit = await self.enter(request, post=True)
        refused = self.read_only(request, visit)
        if refused:
            return refused
        key = request.path_params["key"]
        try:
            g = await views.find_group(self.rt, visit.who, key)
        except views.NotFound:
            visit.session.say("error", "That group is empty now: nothing done.")
            return self.with_cookie(request, RedirectResponse(_base(request) + "/queue", 303), visit)
        if visit.one("scope") == "all":
            ids = await views.group_order_ids(self.rt, g, act.BULK_MAX)
            await self._perform(visit, visit.one("action"), [(g.merchant, i) for i in ids], g.count)
            return self.with_cookie(request, RedirectResponse(_base(request) + "/queue", 303), visit)
        targets = [t for t in (_target(v) for v in visit.form.get("order", [])) if t and t[0] == g.merchant]
        if not targets:
            visit.session.say("error", "No orders selected: tick the orders to act on, or use the whole-group buttons.")
        else:
            await self._perform(visit, visit.one("action"), targets, len(targets))
        return self.with_cookie(request, RedirectResponse(f"{_base(request)}/queue/{key}", 303), visit)

    async def _perform(self, visit: Visit, name: str, targets: list[tuple[str, str]], asked: int) -> None:
        try:
            results = await act.perform(self.rt, visit.who, name, targets, visit.one("reason"), kick=self.kick)
        except act.Refused as exc:
            visit.session.say("error", str(exc))
            return
        for kind, message in act.summary(name, results, asked):
            visit.session.say(kind, message)
        log.info("console action", user=visit.who.name, action=name, orders=len(results), ok=sum(r.ok for r in results))

    async def resolve_alert(self, request: Request) -> Response:
        visit = await self.enter(request, post=True)
        refused = self.read_only(request, visit)
        if refused:
            return refused
        merchant, category, key = visit.one("merchant"), visit.one("category"), visit.one("key")
        n = await self.rt.store.alerts.resolve(merchant, category, key) if category else 0
        visit.session.say("ok" if n else "error", f"resolved {n} alert(s)" if n else "no open alert matched (resolved meanwhile?)")
        log.info("console alert resolved", user=visit.who.name, merchant=merchant, category=category, key=key, resolved=n)
        return self.back(request, visit, "/alerts")

    # ------------------------------------------------------------------ the app
    def app(self) -> Any:
        routes = [
            Route("/", self.overview),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/orders", self.orders, methods=["GET"]),
            Route("/orders", self.search, methods=["POST"]),
            Route("/orders/{merchant}/{order_id:path}", self.order, methods=["GET"]),
            Route("/act", self.act, methods=["POST"]),
            Route("/queue", self.queue, methods=["GET"]),
            Route("/queue/{key}", self.group, methods=["GET"]),
            Route("/queue/{key}/act", self.group_act, methods=["POST"]),
            Route("/alerts", self.alerts, methods=["GET"]),
            Route("/alerts/resolve", self.resolve_alert, methods=["POST"]),
            Route("/events", self.events, methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

        async def stop(request: Request, exc: Stop) -> Response:
            return exc.response

        async def missing(request: Request, exc: Exception) -> Response:
            return self.r.page("error.html", 404, base=_base(request), who=None, csrf="", flash=[], mode=self.mode(), listen=self.listen,
                               nav="", title="Not found", message="There is nothing here.")

        app = Starlette(routes=routes, exception_handlers={Stop: stop, 404: missing, FormError: _form_error})
        return SecurityHeaders(app)


class FormError(Exception):
    """A POST body that is not a form the console sent (wrong type, too large)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _form_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FormError)
    return Response(str(exc), status_code=exc.status, media_type="text/plain")


async def _read_form(request: Request) -> dict[str, list[str]]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise FormError(415, "expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise FormError(413, "form too large")
    out: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10_000)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "unreadable form") from None
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def _same_origin(request: Request) -> bool:
    """A browser says where a POST came from; another site's page is refused even if it somehow
    had a token. Under `Referrer-Policy: no-referrer` browsers send `Origin: null` for our own
    forms, so `Sec-Fetch-Site` speaks first; a client that sends neither (a script) is judged by
    the CSRF token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlparse(origin).netloc == request.headers.get("host", "")


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _next(request: Request, value: str) -> str:
    base = _base(request)
    if value.startswith(base + "/") and "//" not in value and "\\" not in value and not value.startswith(base + "/login"):
        return value
    return base + "/"


def _page(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 100_000))
    except ValueError:
        return 1


def _target(value: str) -> tuple[str, str] | None:
    merchant, sep, order_id = value.partition("/")
    return (merchant, order_id) if sep and merchant and order_id else None
