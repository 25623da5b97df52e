"""The web console over HTTP, without a browser: logins and roles, CSRF, the login rate limit,
security headers, no personal data in URLs, and actions that land on the order's timeline with
the console user's name. The app is the daemon's own (`build_app`), on a Runtime wired to the
loopback sandboxes, with orders that went through the real pipeline."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from connector.config import from_dict
from connector.console.auth import hash_password
from connector.sandbox.samples import make_order
from connector.store import Search
from connector.web import Daemon, build_app
from tests.support.flow import Flow

PASSWORDS = {"alice": "alice-secret-pw", "globex-viewer": "globex-view-pw"}
HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
USERS = [{"name": "alice", "role": "operator", "password_hash": HASHES["alice"]},
         {"name": "globex-viewer", "role": "merchant:globex", "password_hash": HASHES["globex-viewer"]}]
PIGEON = "Pigeon: Carrier Express"


@pytest.fixture
def flow(tmp_path):
    f = Flow(tmp_path, merchants=("acme", "globex"))
    yield f
    f.close()


def config(flow: Flow, users: list[dict[str, Any]] | None = None, listen: str = "127.0.0.1:0", **console: Any):
    data = flow.config_dict()
    data["daemon"]["listen"] = listen
    data["console"] = {"users": USERS if users is None else users, **console}
    return from_dict(data, file="<test>")


@pytest.fixture
async def rt(flow):
    """acme: DEMO-0001..3 at the warehouse, DEMO-0014 and DEMO-0015 held (unmapped ship method);
    globex: GLOBEX-0001 at the warehouse."""
    flow.uc.queue("DFLT", [make_order(f"DEMO-{i:04d}") for i in range(1, 4)]
                  + [make_order(f"DEMO-{i:04d}", ship_method=PIGEON) for i in (14, 15)])
    flow.uc.queue("GLOBEX", [make_order("GLOBEX-0001", distribution_center="GLOBEX")])
    runtime = await flow.runtime()
    await runtime.apply_config(config(flow))
    for service in ("order_download", "order_delivery"):
        for m in ("acme", "globex"):
            assert (await runtime.run_service(m, service, honour_pause=False)).ok
    yield runtime
    await runtime.aclose()


class Kicks(list):
    def __call__(self, merchant: str, service: str) -> None:
        self.append((merchant, service))


@pytest.fixture
def kicks() -> Kicks:
    return Kicks()


def client(rt, kicks=None, *, host: str = "127.0.0.1", scheme: str = "http", app=None) -> httpx.AsyncClient:
    """A browser-like client of the daemon's app (a new app unless one is shared: sessions and
    the login limiter live in the app)."""
    app = app or build_app(rt, Daemon(kick=kicks))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 40000)), base_url=f"{scheme}://testserver")


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def login(c: httpx.AsyncClient, name: str, password: str | None = None) -> httpx.Response:
    page = await c.get("/ui/login")
    return await c.post("/ui/login", data={"csrf": csrf(page.text), "name": name, "password": password or PASSWORDS[name], "next": "/ui/"})


async def token(c: httpx.AsyncClient, path: str = "/ui/") -> str:
    return csrf((await c.get(path)).text)


async def order(rt, order_id: str, merchant: str = "acme"):
    [row] = await rt.store.orders.find(order_id, merchant)
    return row


# ----------------------------------------------------------------------------- logins and sessions
async def test_every_page_needs_a_login_and_the_session_cookie_is_locked_down(rt):
    async with client(rt) as c:
        page = await c.get("/ui/login")
        anonymous = page.cookies["connector_console"]  # the login form's own session, for its CSRF token
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie and "secure" not in cookie
        for path in ("/ui/", "/ui/orders", "/ui/orders/acme/DEMO-0001", "/ui/queue", "/ui/alerts", "/ui/events"):
            r = await c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
            assert "DEMO-" not in r.text

        bad = await login(c, "alice", "wrong password!")
        assert bad.status_code == 401 and "Wrong user name or password" in bad.text
        ok = await login(c, "alice")
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
        assert c.cookies["connector_console"] != anonymous, "a new session id at login"
        home = await c.get("/ui/")
        assert home.status_code == 200 and "alice" in home.text and "acme" in home.text and "globex" in home.text

        await c.post("/ui/logout", data={"csrf": csrf(home.text)})
        assert (await c.get("/ui/")).status_code == 303


async def test_a_flood_of_visitors_without_a_login_does_not_log_anyone_out(rt, monkeypatch):
    from connector.console import auth

    monkeypatch.setattr(auth, "MAX_SESSIONS", 5)
    app = build_app(rt)
    async with client(rt, app=app) as c:
        await login(c, "alice")
        for _ in range(20):  # each without a cookie: a new anonymous session each time
            async with client(rt, host="10.9.9.9", app=app) as stranger:
                assert (await stranger.get("/ui/")).status_code == 303
        assert (await c.get("/ui/")).status_code == 200


@pytest.mark.parametrize("setting, scheme, secure", [("auto", "https", True), ("always", "http", True), ("never", "https", False)])
async def test_secure_cookies_follow_the_setting(rt, flow, setting, scheme, secure):
    await rt.apply_config(config(flow, secure_cookies=setting))
    async with client(rt, scheme=scheme) as c:
        r = await c.get("/ui/login")
        assert ("secure" in r.headers["set-cookie"].lower()) is secure


async def test_a_session_ends_with_its_hours_or_when_the_user_leaves_the_config(rt, flow):
    async with client(rt) as c:
        await login(c, "alice")
        assert (await c.get("/ui/")).status_code == 200
        rt.clock.advance(12 * 3600 + 1)  # session_hours defaults to 12
        assert (await c.get("/ui/")).status_code == 303
        await login(c, "alice")
        assert (await c.get("/ui/")).status_code == 200
        await rt.apply_config(config(flow, users=[u for u in USERS if u["name"] != "alice"]))  # a reload removes her
        assert (await c.get("/ui/")).status_code == 303


async def test_login_attempts_are_limited_per_user_name_and_per_client(rt, flow):
    await rt.apply_config(config(flow, login_attempts_per_minute=3))
    app = build_app(rt)
    async with client(rt, host="10.0.0.1", app=app) as c:
        for _ in range(3):
            assert (await login(c, "alice", "guess-guess-guess")).status_code == 401
        limited = await login(c, "alice")  # the right password, too late
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0 and "Too many failed attempts" in limited.text
        assert (await c.get("/ui/")).status_code == 303, "not logged in"
    async with client(rt, host="10.0.0.2", app=app) as other:  # the same name from elsewhere: still limited
        assert (await login(other, "alice")).status_code == 429
        assert (await login(other, "globex-viewer")).status_code == 303, "another name from a fresh client is not"
    async with client(rt, host="10.0.0.3", app=app) as spray:  # one client trying many names
        for name in ("bob", "carol", "dave"):
            assert (await login(spray, name, "guess-guess-guess")).status_code == 401
        assert (await login(spray, "globex-viewer")).status_code == 429
    rt.clock.advance(61)
    async with client(rt, host="10.0.0.1", app=app) as c:
        assert (await login(c, "alice")).status_code == 303


# ----------------------------------------------------------------------------- headers
async def test_security_headers_on_every_answer(rt):
    async with client(rt) as c:
        answers = [await c.get("/ui/"), await c.get("/ui/login"), await c.get("/ui/static/console.css"), await c.get("/ui/no-such-page")]
        await login(c, "alice")
        answers += [await c.get("/ui/orders/acme/DEMO-0014"), await c.post("/ui/act", data={"action": "release"})]
    for r in answers:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
    page = answers[4]
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " on" + "click=" not in page.text, "no inline script"
    assert re.findall(r'<script src="([^"]+)"', page.text) == ["/ui/static/console.js"]
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "nothing loaded from elsewhere"


# ----------------------------------------------------------------------------- CSRF
async def test_an_action_without_the_csrf_token_is_refused(rt):
    held = await order(rt, "DEMO-0014")
    before = await rt.store.orders.timeline(held.id)
    form = {"action": "release", "order": "acme/DEMO-0014", "back": "/ui/orders/acme/DEMO-0014"}
    async with client(rt) as c:
        await login(c, "alice")
        good = await token(c)
        missing = await c.post("/ui/act", data=form)
        wrong = await c.post("/ui/act", data={**form, "csrf": "x" * 43})
        foreign = await c.post("/ui/act", data={**form, "csrf": good}, headers={"Origin": "https://evil.example"})
        for r in (missing, wrong, foreign):
            assert r.status_code == 403 and "security token" in r.text
        assert (await order(rt, "DEMO-0014")).state == "held" and await rt.store.orders.timeline(held.id) == before
        same_site = await c.post("/ui/act", data={**form, "csrf": good}, headers={"Origin": "http://testserver"})
        assert same_site.status_code == 303 and same_site.headers["location"] == "/ui/orders/acme/DEMO-0014"
    assert (await order(rt, "DEMO-0014")).state == "received"


async def test_the_login_form_needs_its_token_too(rt):
    async with client(rt) as c:
        await c.get("/ui/login")
        r = await c.post("/ui/login", data={"name": "alice", "password": PASSWORDS["alice"]})
        assert r.status_code == 403
        assert (await c.get("/ui/")).status_code == 303


# ----------------------------------------------------------------------------- actions
async def test_actions_land_on_the_timeline_with_the_console_users_name(rt, kicks):
    async with client(rt, kicks) as c:
        await login(c, "alice")
        t = await token(c)
        r = await c.post("/ui/act", data={"csrf": t, "action": "release", "order": "acme/DEMO-0014", "back": "/ui/orders/acme/DEMO-0014"})
        assert r.status_code == 303
        page = await c.get(r.headers["location"])
        assert "released: re-checked and sent on the next delivery pass" in page.text, "what happened is shown once"
        assert kicks == [("acme", "order_delivery")], "the delivery pass starts now, not at its schedule"

        refused = await c.post("/ui/act", data={"csrf": t, "action": "skip", "order": "acme/DEMO-0015", "reason": "  "})
        assert refused.status_code == 303 and (await order(rt, "DEMO-0015")).state == "held"
        assert "a reason is required" in (await c.get("/ui/")).text
        await c.post("/ui/act", data={"csrf": t, "action": "skip", "order": "acme/DEMO-0015", "reason": "customer called: duplicate"})

    released, skipped = await order(rt, "DEMO-0014"), await order(rt, "DEMO-0015")
    assert released.state == "received" and skipped.state == "skipped"
    last = (await rt.store.orders.timeline(released.id))[-1]
    assert last.actor == "operator" and last.to_state == "received" and last.reason.endswith("(by alice)")
    last = (await rt.store.orders.timeline(skipped.id))[-1]
    assert last.actor == "operator" and "customer called: duplicate" in last.reason and "alice" in last.reason

    assert (await rt.run_service("acme", "order_delivery", honour_pause=False)).ok
    # The unmapped method still has no mapping: the rules hold it again, and say so.
    assert (await order(rt, "DEMO-0014")).state == "held"


async def test_a_whole_group_is_released_in_one_action(rt, flow, kicks):
    async with client(rt, kicks) as c:
        await login(c, "alice")
        queue = await c.get("/ui/queue")
        assert f"unmapped ship method: {PIGEON}" in queue.text
        [key] = re.findall(r'href="/ui/queue/([0-9a-f]{16})"', queue.text)
        group = await c.get(f"/ui/queue/{key}")
        assert group.status_code == 200 and "DEMO-0014" in group.text and "DEMO-0015" in group.text
        r = await c.post(f"/ui/queue/{key}/act", data={"csrf": csrf(group.text), "action": "release", "scope": "all"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/queue"
        page = await c.get("/ui/queue")
        assert "Nothing needs a person right now" in page.text and "DEMO-0014" in page.text  # the flash names them
    assert [(await order(rt, i)).state for i in ("DEMO-0014", "DEMO-0015")] == ["received", "received"]
    assert kicks == [("acme", "order_delivery")]


async def test_selected_orders_of_a_group_and_only_of_that_group(rt):
    async with client(rt) as c:
        await login(c, "alice")
        [key] = re.findall(r'href="/ui/queue/([0-9a-f]{16})"', (await c.get("/ui/queue")).text)
        t = await token(c)
        form = {"csrf": t, "scope": "selected", "action": "skip", "reason": "test orders from the shop owner"}
        none = await c.post(f"/ui/queue/{key}/act", data=form)
        assert none.status_code == 303 and "No orders selected" in (await c.get("/ui/queue")).text
        r = await c.post(f"/ui/queue/{key}/act", data={**form, "order": ["acme/DEMO-0015", "acme/DEMO-0001", "globex/GLOBEX-0001"]})
        assert r.status_code == 303 and r.headers["location"] == f"/ui/queue/{key}"
        page = await c.get(r.headers["location"])
        assert page.status_code == 200 and "DEMO-0014" in page.text
        # DEMO-0001 (at the warehouse) is refused by the operator code, GLOBEX-0001 is not in the group.
        assert "cannot skip an order in state confirmed" in page.text or "cannot skip an order in state at_warehouse" in page.text
    assert [(await order(rt, i)).state for i in ("DEMO-0014", "DEMO-0015")] == ["held", "skipped"]
    assert (await order(rt, "GLOBEX-0001", "globex")).state != "skipped"


async def test_the_event_log_filters_by_merchant_order_and_status(rt, flow):
    now = rt.clock.now()
    await rt.store.events.log([dict(at=now, merchant="acme", kind="vendor_call", vendor="shipbob", order_id="DEMO-0014", method="POST",
                                    url="http://wh/order", status=422, response_body='{"error": "bad ship method"}'),
                               dict(at=now, merchant="acme", kind="vendor_call", vendor="shipbob", order_id="DEMO-0014", method="GET",
                                    url="http://wh/order?ref=1", status=None, error="ReadTimeout")])
    async with client(rt) as c:
        await login(c, "alice")
        errors = (await c.get("/ui/events", params={"merchant": "acme", "order": "DEMO-0014", "status": "error"})).text
        assert "bad ship method" in errors and "ReadTimeout" in errors and "acknowledgements" not in errors
        four = (await c.get("/ui/events", params={"status": "4xx"})).text
        assert "bad ship method" in four and "ReadTimeout" not in four
        ok = (await c.get("/ui/events", params={"merchant": "globex", "status": "ok"})).text
        assert "GLOBEX" in ok and "bad ship method" not in ok and "DEMO-0014" not in ok
        assert "unknown status filter" in (await c.get("/ui/events", params={"status": "teapot"})).text


async def test_resolve_an_alert_by_hand(rt):
    await rt.store.alerts.raise_many([("acme", "configuration", "order_delivery", "paused: 401 from the warehouse")], now=rt.clock.now())
    async with client(rt) as c:
        await login(c, "alice")
        page = await c.get("/ui/alerts")
        assert "paused: 401 from the warehouse" in page.text
        r = await c.post("/ui/alerts/resolve", data={"csrf": csrf(page.text), "merchant": "acme", "category": "configuration",
                                                     "key": "order_delivery", "back": "/ui/alerts"})
        assert r.status_code == 303 and "resolved 1 alert(s)" in (await c.get("/ui/alerts?state=resolved")).text
    assert [a.category for a in await rt.store.alerts.open("acme")] == ["unmapped_ship_method"], "only that one resolved"


# ----------------------------------------------------------------------------- merchant logins
async def test_a_merchant_login_sees_only_its_merchant_and_can_do_nothing(rt, flow):
    await rt.store.alerts.raise_many([("acme", "stuck", "acme-secret-alert", "acme only"), ("globex", "stuck", "g", "globex alert"),
                                      ("", "alert_delivery", "smtp", "the 3PL's own")], now=rt.clock.now())
    async with client(rt) as op:
        await login(op, "alice")
        [acme_group] = re.findall(r'href="/ui/queue/([0-9a-f]{16})"', (await op.get("/ui/queue")).text)
    async with client(rt) as c:
        await login(c, "globex-viewer")
        home = await c.get("/ui/")
        assert "globex" in home.text and "acme" not in home.text and "database" not in home.text
        assert "GLOBEX-0001" in (await c.get("/ui/orders/globex/GLOBEX-0001")).text

        # Another merchant's things, by URL guessing: not found, exactly like what does not exist.
        guessed, missing = await c.get("/ui/orders/acme/DEMO-0001"), await c.get("/ui/orders/globex/NO-SUCH-ORDER")
        assert guessed.status_code == missing.status_code == 404 and "DEMO-0001" not in guessed.text
        assert (await c.get(f"/ui/queue/{acme_group}")).status_code == 404
        listing = await c.get("/ui/orders?merchant=acme")
        assert "DEMO-0" not in listing.text and "unknown merchant" in listing.text
        t = csrf(home.text)
        await c.post("/ui/orders", data={"csrf": t, "text": "DEMO"})
        assert "DEMO-0" not in (await c.get("/ui/orders")).text
        events = await c.get("/ui/events?merchant=acme&order=DEMO-0001")
        assert "DEMO-0001" not in events.text.replace('value="DEMO-0001"', "")
        assert "acme" not in (await c.get("/ui/events")).text
        alerts = (await c.get("/ui/alerts?state=all")).text
        assert "globex alert" in alerts and "acme only" not in alerts and "the 3PL's own" not in alerts

        # No action, whatever is posted.
        for path, form in (("/ui/act", {"action": "release", "order": "acme/DEMO-0014"}),
                           ("/ui/act", {"action": "cancel", "order": "globex/GLOBEX-0001", "reason": "x"}),
                           (f"/ui/queue/{acme_group}/act", {"action": "release", "scope": "all"}),
                           ("/ui/alerts/resolve", {"merchant": "globex", "category": "stuck", "key": "g"})):
            r = await c.post(path, data={"csrf": t, **form})
            assert r.status_code == 403 and "read-only" in r.text.lower(), path
        assert "Release" not in (await c.get("/ui/queue")).text
    assert (await order(rt, "DEMO-0014")).state == "held" and (await order(rt, "GLOBEX-0001", "globex")).state == "at_warehouse"
    assert len(await rt.store.alerts.open("globex")) == 1


# ----------------------------------------------------------------------------- personal data
async def test_a_search_by_e_mail_or_name_never_puts_them_in_a_url(rt):
    row = await order(rt, "DEMO-0002")
    assert row.email and row.customer
    async with client(rt) as c:
        await login(c, "alice")
        urls: list[str] = []
        r = await c.post("/ui/orders", data={"csrf": await token(c), "text": row.email.upper()})
        assert r.status_code == 303
        urls.append(r.headers["location"])
        found = await c.get(r.headers["location"])
        same_email = {o.order_id for o in (await rt.store.orders.search(Search(text=row.email)))[0]}
        assert "DEMO-0002" in same_email and set(re.findall(r'href="/ui/orders/acme/([^"]+)"', found.text)) == same_email
        urls += re.findall(r'(?:href|action|src)="([^"]+)"', found.text)
        await c.post("/ui/orders", data={"csrf": await token(c), "text": row.customer.split()[0]})
        page = await c.get("/ui/orders?page=1")
        assert "DEMO-0002" in page.text
        urls += re.findall(r'(?:href|action|src)="([^"]+)"', page.text)
        # A text in the query string is not a search (it would end up in logs and histories).
        leaked = await c.get("/ui/orders", params={"text": "GLOBEX", "state": "at_warehouse"})
        assert "DEMO-0001" in leaked.text
    for url in urls:
        assert row.email.lower() not in url.lower() and row.customer.split()[0].lower() not in url.lower(), url


async def test_everything_shown_is_escaped_and_secrets_are_masked(rt, flow):
    flow.uc.queue("DFLT", [make_order("DEMO-0030", ship_method=PIGEON, address={"first_name": "<script>alert(1)</script>"})])
    assert (await rt.run_service("acme", "order_download", honour_pause=False)).ok
    await rt.store.events.log([dict(at=rt.clock.now(), merchant="acme", kind="vendor_call", vendor="ultracart", order_id="DEMO-0030",
                                    method="GET", url=f"{flow.uc_server.url}/order?token={flow.uc_key}", status=200,
                                    request_body="", response_body=f'{{"card_number": "4111 1111 1111 1111", "key": "{flow.uc_key}"}}')])
    async with client(rt) as c:
        await login(c, "alice")
        page = (await c.get("/ui/orders/acme/DEMO-0030")).text
        events = (await c.get("/ui/events?order=DEMO-0030")).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for text in (page, events):
        assert flow.uc_key not in text and "4111 1111 1111 1111" not in text


# ----------------------------------------------------------------------------- without logins
async def test_without_users_it_runs_open_on_loopback_only(rt, flow, kicks):
    await rt.apply_config(config(flow, users=[]))
    async with client(rt, kicks) as c:
        home = await c.get("/ui/")
        assert home.status_code == 200 and "No login" in home.text
        r = await c.post("/ui/act", data={"csrf": await token(c, "/ui/orders"), "action": "release", "order": "acme/DEMO-0014"})
        assert r.status_code == 303
        assert "(by console (no login))" in (await rt.store.orders.timeline((await order(rt, "DEMO-0014")).id))[-1].reason
        assert (await c.post("/ui/act", data={"action": "release", "order": "acme/DEMO-0015"})).status_code == 403

    await rt.apply_config(config(flow, users=[], listen="0.0.0.0:8080"))
    async with client(rt) as c:
        for path in ("/ui/", "/ui/orders/acme/DEMO-0001", "/ui/login", "/ui/events"):
            r = await c.get(path)
            assert r.status_code == 503 and "refuses to serve" in r.text and "DEMO-" not in r.text, path
        assert (await c.post("/ui/act", data={"action": "release", "order": "acme/DEMO-0015"})).status_code == 503
    assert (await order(rt, "DEMO-0015")).state == "held"


async def test_the_daemon_does_not_refuse_to_start_over_the_console(rt, flow):
    """A public listener needs its webhooks even when nobody has made a console login yet: only
    the console answers 503, and it starts working once a user is added and the config reloaded."""
    await rt.apply_config(config(flow, users=[], listen="0.0.0.0:8080"))
    async with client(rt) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/ui/")).status_code == 503
        await rt.apply_config(config(flow, listen="0.0.0.0:8080"))
        assert (await c.get("/ui/")).status_code == 303
        assert (await login(c, "alice")).status_code == 303
        assert urlparse(str((await c.get("/ui/")).url)).path == "/ui/"
