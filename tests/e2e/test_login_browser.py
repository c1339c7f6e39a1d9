"""Staff log in from a real browser that has already opened a public event page (its viewer cookie set)."""

from __future__ import annotations

from typing import Any

from lmserver.appkeys import DB
from tests.browser import login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import make_event


async def test_host_logs_in_after_checking_their_event_page(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, title="Spring sale")
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    name = await make_user(server, "owner")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})

    # the login page is open in one tab; the host checks the event page in another, then logs in
    login_tab = await context.new_page()
    await login_tab.goto(base + "/login?next=/catalog")
    event_tab = await context.new_page()
    await event_tab.goto(f"{base}/e/{slug}")
    assert "Spring sale" in await event_tab.inner_text("body")
    assert "lms_viewer" in {c["name"] for c in await context.cookies()}
    await login_tab.fill("input[name=name]", name)
    await login_tab.fill("input[name=password]", PASSWORD)
    await login_tab.click("button[type=submit]")
    await login_tab.wait_for_url(base + "/catalog")
    assert "lms_session" in {c["name"] for c in await context.cookies()}

    # log out, open the event page first, then log in through the form: the home page
    await login_tab.click("button:has-text('Log out')")
    await login_tab.wait_for_url(base + "/login")
    await event_tab.goto(f"{base}/e/{slug}")
    page = await login_page(context, base, name, PASSWORD)
    assert "Welcome back" in await page.inner_text("h1")
    await page.goto(base + "/console")
    assert page.url.endswith("/console") and "/login" not in page.url  # the console of the current event
    await context.close()
