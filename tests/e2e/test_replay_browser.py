"""Replays in Chromium: the past-session console plays the session's MP4 (served with ranges by the recordings
route) and shows its timeline in sync (a comment posted 5 s into the LIVE is visible at replay t=6 s, one posted at
12 s is not yet); clicking a comment seeks to it; the public replay shows the comments in time and the product pinned
at that moment, and a viewer buys from it. Screenshots (desktop, 375×812, dark) of both pages.

The LIVE's moments are made through the real APIs while live; their timestamps are then set to fixed offsets of
the session (5 s, 12 s, ...) so the test does not wait 20 s of wall time. The video is a real H.264 MP4 (PyAV).
"""

from __future__ import annotations

from typing import Any

from lmserver.appkeys import CONFIG, DB, LIVE
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.replayhelpers import add_part, make_mp4

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def _session(app: Any, client: Any) -> dict[str, Any]:
    eid = await make_event(app, "Autumn knitwear drop")
    pids = [await make_product(app, title, stock=stock, price_cents=price, event_id=eid) for title, stock, price in (
        ("Merino scarf, forest green", 40, 3900), ("Chunky cardigan", 12, 8900), ("Wool socks (3 pairs)", 3, 1800))]
    owner = await staff_cookie(client, "owner")
    session = await go_live(app, eid)
    t0 = session.started_at
    moments: list[tuple[str, int, float]] = []  # (table, id, seconds into the LIVE)
    for i, (nick, body, at) in enumerate((("Mia", "Hi from Lisbon!", 2.0), ("Leo", "Is the scarf itchy?", 5.0),
                                          ("Ada", "Love the green one", 12.0), ("Sam", "Do you ship to Canada?", 16.0))):
        viewer = await new_viewer(app, nick)
        resp = await client.post(f"/api/e/{eid}/comments", json={"body": body}, headers=vh(viewer))
        assert resp.status == 201, await resp.text()
        moments.append(("comments", (await resp.json())["comment"]["id"], at))
        if i == 1:
            resp = await client.post(f"/api/comments/{moments[-1][1]}/reply", json={"body": "Not at all: pure merino!"}, headers=owner)
            moments.append(("comments", (await resp.json())["comment"]["id"], 7.5))
    assert (await client.post(f"/api/events/{eid}/pin", json={"product_id": pids[0]}, headers=owner)).status == 200
    pin = await app[DB].fetchval("SELECT MAX(id) FROM activity WHERE name = 'product.pinned'")
    moments.append(("activity", pin, 3.0))
    buyer = await new_viewer(app, "Mia")
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pids[0], "quantity": 1}, headers=vh(buyer))
    order = (await resp.json())["order"]["id"]
    moments.append(("orders", order, 8.0))
    assert (await client.post(f"/api/events/{eid}/pin", json={"product_id": pids[1]}, headers=owner)).status == 200
    moments.append(("activity", await app[DB].fetchval("SELECT MAX(id) FROM activity WHERE name = 'product.pinned'"), 10.0))
    await app[LIVE].end("host ended")
    for table, row_id, at in moments:
        await app[DB].execute(f"UPDATE {table} SET created_at = ? WHERE id = ?", (t0 + at, row_id))
    await app[DB].execute("UPDATE activity SET created_at = ? WHERE name = 'order.created'", (t0 + 8.0,))
    await app[DB].execute("UPDATE sessions SET ended_at = ? WHERE id = ?", (t0 + 20.5, session.id))
    video = app[CONFIG].data_dir / "recordings" / f"session-{session.id}-part1.mp4"
    duration = make_mp4(video, 20)
    await add_part(app, session.id, t0 + 0.5, duration, file=video)  # the first packet half a second after going live
    assert (await client.post(f"/api/sessions/{session.id}/publish", headers=owner)).status == 200
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    return {"eid": eid, "sid": session.id, "slug": slug, "pids": pids}


async def _at(page: Any, t: float) -> None:
    """Set the video's currentTime and wait until the page has drawn that moment."""
    await page.wait_for_function("document.querySelector('#replay-video').readyState >= 1")
    await page.evaluate(f"document.querySelector('#replay-video').currentTime = {t}")
    await page.wait_for_function(f"Math.abs(window.LMSReplay.time() - {t}) < 0.3")
    await page.wait_for_function("(v => !v.seeking && v.readyState >= 2)(document.querySelector('#replay-video'))")


async def test_synced_replay_console_and_public(aiohttp_client: Any, app_factory: Any, browser: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_rate_seconds": 0}))
    app = client.app
    base = str(client.make_url("")).rstrip("/")
    show = await _session(app, client)
    owner = await make_user(AppHolder(app), "owner")
    errors: list[str] = []

    # ---- the past-session console
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await login_page(ctx, base, owner, PASSWORD)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/events/{show['eid']}/console?session={show['sid']}")
    await page.wait_for_function("window.LMSReplay && window.LMSReplay.items().length > 0")
    await _at(page, 6)
    feed = page.locator("#replay-feed")
    await feed.locator("text=Is the scarf itchy?").wait_for()
    assert await feed.locator("text=Love the green one").count() == 0  # posted at 12 s: not yet
    assert await feed.locator("text=Not at all: pure merino!").count() == 0  # the reply came at 7.5 s
    await _at(page, 13)
    await feed.locator("text=Love the green one").wait_for()
    assert await feed.locator("[data-order]").count() == 1
    assert await page.locator("#replay-bar .rp-marker.rp-pin").count() == 2
    assert await page.locator("#replay-bar .rp-marker.rp-order").count() == 1
    # clicking a comment seeks to it (Hi from Lisbon! at 2 s into the LIVE = 1.5 s into the video)
    await feed.locator("text=Hi from Lisbon!").click()
    await page.wait_for_function("Math.abs(document.querySelector('#replay-video').currentTime - 1.5) < 0.3")
    assert await feed.locator("text=Is the scarf itchy?").count() == 0
    # downloads and the publish switch
    assert await page.locator("[data-download=comments-csv]").get_attribute("href") == f"/api/sessions/{show['sid']}/comments.csv"
    assert await page.locator("#replay-video-links a").count() == 1
    assert await page.locator("#replay-publish").is_checked()
    await _at(page, 14)
    check_screenshot(await page.screenshot(full_page=True), "replay-console-desktop")
    await ctx.close()
    ctx = await browser.new_context(viewport=PHONE, color_scheme="dark", is_mobile=True, has_touch=True)
    page = await login_page(ctx, base, owner, PASSWORD)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/events/{show['eid']}/console?session={show['sid']}")
    await page.wait_for_function("window.LMSReplay && window.LMSReplay.items().length > 0")
    await _at(page, 14)
    await page.locator("#replay").scroll_into_view_if_needed()
    check_screenshot(await page.screenshot(), "replay-console-phone-dark")
    assert await page.evaluate("document.querySelector('#replay').scrollWidth <= document.querySelector('#replay').clientWidth")
    await ctx.close()

    # ---- the public replay: comments in time, the product pinned at that moment, Buy
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/e/{show['slug']}/replay/{show['sid']}")
    await page.wait_for_function("window.LMSReplay && window.LMSReplay.items().length > 0")
    await _at(page, 6)
    chat = page.locator("#comments")
    await chat.locator("text=Is the scarf itchy?").wait_for()
    assert await chat.locator("text=Love the green one").count() == 0
    pinned = page.locator("#pinned-product")
    assert "Merino scarf" in await pinned.inner_text()
    await _at(page, 12)
    await chat.locator("text=Love the green one").wait_for()
    assert "Chunky cardigan" in await pinned.inner_text()  # pinned at 10 s
    await pinned.locator("[data-buy]").click()
    await page.fill("#buy-qty", "2")
    await page.click("#buy-confirm")
    # a first purchase asks for the buyer's details, as on the live viewer page (issue 18), checked at the edge
    await page.locator("#buyer-dialog[open]").wait_for()
    orders_before = await app[DB].fetchval("SELECT COUNT(*) FROM orders")
    await page.fill("#buyer-form input[name=name]", "Noor Haddad")
    await page.fill("#buyer-form input[name=email]", "noor@example")
    await page.fill("#buyer-form textarea[name=address]", "8 Rue des Lilas\n75011 Paris, France")
    await page.click("#buyer-save")
    await page.locator("#buyer-error", has_text="e-mail address").wait_for()
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders") == orders_before  # held until the details are saved
    await page.fill("#buyer-form input[name=email]", "noor@example.com")
    check_screenshot(await page.screenshot(), "replay-public-details-form-desktop")
    await page.click("#buyer-save")
    await page.locator("#buy-result.alert-ok").wait_for()
    await page.locator("#buy-shipto", has_text="Ship to Noor Haddad, 8 Rue des Lilas").wait_for()
    row = await app[DB].fetchone("SELECT quantity, label, session_id, buyer_name, buyer_email, ship_address FROM orders"
                                 " WHERE product_id = ? ORDER BY id DESC", (show["pids"][1],))
    assert (row["quantity"], row["label"], row["session_id"]) == (2, "replay", show["sid"])
    assert (row["buyer_name"], row["buyer_email"], row["ship_address"]) == ("Noor Haddad", "noor@example.com",
                                                                             "8 Rue des Lilas\n75011 Paris, France")
    await page.click("#buy-cancel")
    await page.locator("#bag [data-product='%d'] >> text=10 in stock" % show["pids"][1]).wait_for()  # the stock follows the bus
    check_screenshot(await page.screenshot(full_page=True), "replay-public-desktop")
    await ctx.close()
    ctx = await browser.new_context(viewport=PHONE, color_scheme="dark", is_mobile=True, has_touch=True)
    page = await ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/e/{show['slug']}/replay/{show['sid']}")
    await page.wait_for_function("window.LMSReplay && window.LMSReplay.items().length > 0")
    await _at(page, 13)
    check_screenshot(await page.screenshot(full_page=True), "replay-public-phone-dark")
    await page.locator("#pinned-product [data-buy]").click()
    await page.click("#buy-confirm")
    await page.locator("#buyer-dialog[open]").wait_for()  # a new viewer: asked again
    check_screenshot(await page.screenshot(), "replay-public-details-form-phone-dark")
    await page.click("#buyer-cancel")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing wider than the phone
    await ctx.close()
    assert errors == []
