"""The console as a person uses it, in headless Chromium: log in, find an order by e-mail, read
its timeline, fix the config and release the held group, and see the orders reach the warehouse
(the ShipBob simulator); a merchant login that cannot see another merchant's order, even by
guessing its URL; an action without its CSRF token refused; keyboard use, labels, contrast and a
phone-sized screen."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

import pytest

from tests.browser.conftest import DOCS, PASSWORDS, PIGEON, console_config, shot

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

UNLABELLED = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML)"""

# WCAG contrast of each element's text against the first opaque background behind it.
LOW_CONTRAST = """(selectors) => {
  const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); })
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = el => { for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor);
    if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
  const out = [];
  for (const el of document.querySelectorAll(selectors)) {
    if (!el.textContent.trim() || !el.getClientRects().length) continue;
    const a = lum(rgba(getComputedStyle(el).color)), b = lum(behind(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return out;
}"""
TEXT = "body, a, p, .muted, .state, .svc, th, td, button, label, .flash, .banner, summary, h1, h2, h3"


class Watched:
    """A page with what the browser complained about (CSP violations, script errors) and every URL it asked for."""

    def __init__(self, page: Any):
        self.page = page
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))

    async def check(self) -> None:
        """The page in hand: every input labelled, text readable, nothing refused by the browser."""
        assert await self.page.evaluate(UNLABELLED) == [], self.page.url
        assert await self.page.evaluate(LOW_CONTRAST, TEXT) == [], self.page.url
        assert self.errors == [], self.errors


async def open_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Watched:
    ctx = await browser.new_context(viewport=viewport)
    return Watched(await ctx.new_page())


async def log_in(w: Watched, url: str, name: str) -> None:
    await w.page.goto(url + "/")
    assert "/ui/login" in w.page.url
    await w.page.get_by_label("User name").fill(name)
    await w.page.get_by_label("Password").fill(PASSWORDS[name])
    await w.page.get_by_role("button", name="Log in").click()
    await w.page.wait_for_url(url + "/")


async def nav(w: Watched, name: str) -> None:
    await w.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    await w.page.wait_for_load_state()


async def until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_an_operator_finds_an_order_and_releases_a_held_group_after_fixing_the_config(served, browser):
    rt, url, flow = served["rt"], served["url"], served["flow"]
    [wanted] = await rt.store.orders.find("DEMO-0002", "acme")
    w = await open_page(browser)
    page = w.page

    await page.goto(url + "/")
    await shot(page, "login")
    await w.check()
    await log_in(w, url, "alice")
    await w.check()
    overview = await shot(page, "overview")
    if os.environ.get("CONNECTOR_DOCS_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(overview, DOCS / "console.png")
    assert await page.get_by_role("heading", name="acme").is_visible()
    assert "2 orders need a person" in await page.inner_text("#live")

    # Find an order by the customer's e-mail, then read its timeline.
    await nav(w, "Orders")
    await page.get_by_label("Order id, customer name or e-mail").fill(wanted.email)
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_load_state()
    await w.check()
    await page.get_by_role("link", name="DEMO-0002", exact=True).click()
    await page.wait_for_url(url + "/orders/acme/DEMO-0002")
    timeline = await page.inner_text("table.timeline")
    assert "received by" in timeline and "at warehouse" in timeline and "order_delivery" in timeline
    call = page.locator("details.event", has=page.locator("h4", has_text="Response body")).first
    assert not await call.get_by_text("Response body").is_visible(), "vendor calls start collapsed"
    await call.locator("summary").click()
    assert await call.get_by_text("Response body").is_visible()
    await shot(page, "order")
    await w.check()
    assert not [u for u in w.urls if wanted.email.lower() in u.lower() or wanted.customer.lower() in u.lower()], "personal data in a URL"

    # The fix: the ship method gets a mapping and the running connector takes the new config.
    await rt.apply_config(console_config(flow, acme={"ship_methods": {PIGEON: "Standard"}}))
    await nav(w, "Error queue")
    await page.get_by_role("link", name=f"unmapped ship method: {PIGEON}").click()
    await page.wait_for_load_state()
    await shot(page, "queue-group")
    await w.check()
    await page.get_by_role("button", name="Release all 2").click()
    await page.wait_for_url(url + "/queue")
    assert "Nothing needs a person right now" in await page.inner_text("main")
    await until(lambda: {"acme-DEMO-0014", "acme-DEMO-0015"} <= set(flow.sb.orders), "the released orders at the warehouse")
    assert served["kick"].kicked == [("acme", "order_delivery")]
    await served["kick"].drain()

    await page.goto(url + "/orders/acme/DEMO-0014")
    timeline = await page.inner_text("table.timeline")
    assert "released by operator" in timeline and "(by alice)" in timeline
    assert "at warehouse" in await page.inner_text("main h2")
    await shot(page, "order-released")


async def test_keyboard_and_phone(served, browser):
    url = served["url"]
    w = await open_page(browser)
    await log_in(w, url, "alice")
    page = w.page
    await page.goto(url + "/queue")
    await page.keyboard.press("Tab")
    skip = await page.evaluate("""() => { const e = document.activeElement, r = e.getBoundingClientRect();
        return [e.textContent.trim(), r.top >= 0 && r.left >= 0 && r.width > 0, getComputedStyle(e).outlineStyle]; }""")
    assert skip == ["Skip to content", True, "solid"], "the first Tab shows the skip link, with a visible focus"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.keyboard.press("Tab")
    inside = await page.evaluate("[document.getElementById('main').contains(document.activeElement), getComputedStyle(document.activeElement).outlineStyle]")
    assert inside == [True, "solid"], "the next Tab lands in the content, visibly"

    phone = await open_page(browser, PHONE)
    await log_in(phone, url, "alice")
    for path, name in (("/", "phone-overview"), ("/orders", "phone-orders"), ("/orders/acme/DEMO-0014", "phone-order"), ("/queue", "phone-queue")):
        await phone.page.goto(url + path)
        assert await phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{path} scrolls sideways"
        await phone.check()
        await shot(phone.page, name)
    assert await phone.page.get_by_role("link", name="Event log").is_visible(), "the navigation wraps, it is not cut off"


async def test_a_merchant_login_cannot_see_another_merchants_order(served, browser):
    url = served["url"]
    w = await open_page(browser)
    await log_in(w, url, "globex-viewer")
    page = w.page
    assert "acme" not in await page.inner_text("body")
    await shot(page, "merchant-overview")
    guessed = await page.goto(url + "/orders/acme/DEMO-0001")
    assert guessed.status == 404 and "DEMO-0001" not in await page.inner_text("main")
    nothing = await page.goto(url + "/orders/globex/NO-SUCH-ORDER")
    assert nothing.status == 404
    assert len(w.errors) == 2 and all("404" in e for e in w.errors)  # the browser's own note of each 404
    w.errors.clear()
    await page.goto(url + "/orders")
    assert "DEMO-" not in await page.inner_text("main") and "GLOBEX-0001" in await page.inner_text("main")
    await page.goto(url + "/orders/globex/GLOBEX-0001")
    assert "Timeline" in await page.inner_text("main")
    assert await page.locator("main form.action").count() == 0, "a merchant login has no action to take"
    await w.check()


async def test_an_action_without_its_csrf_token_is_refused(served, browser):
    rt, url = served["rt"], served["url"]
    w = await open_page(browser)
    await log_in(w, url, "alice")
    page = w.page
    await page.goto(url + "/orders/acme/DEMO-0014")
    await page.evaluate("document.querySelectorAll('form.action input[name=csrf]').forEach(e => e.remove())")
    await page.get_by_role("button", name="Release", exact=True).click()
    await page.wait_for_load_state()
    assert "Refused" in await page.inner_text("h1")
    [row] = await rt.store.orders.find("DEMO-0014", "acme")
    assert row.state == "held" and served["kick"].kicked == []

    # The same button with its token works, and a skip asks first (the dialog is accepted).
    await page.goto(url + "/orders/acme/DEMO-0015")
    skip = page.locator("form.action", has=page.get_by_role("button", name="Skip"))
    await skip.get_by_label("Reason").fill("duplicate of DEMO-0014")
    await page.get_by_role("button", name="Skip").click()
    await page.wait_for_load_state()
    assert "skipped: it will never be sent" in await page.inner_text("main")
    [row] = await rt.store.orders.find("DEMO-0015", "acme")
    assert row.state == "skipped"
