"""The LIVE console and the viewer page in Chromium.

- ``test_console_and_viewer_pages``: real pages with comments and orders flowing through the bus (no
  camera): two consoles stay in sync, viewer actions reach the console, staff actions reach the viewer;
  screenshots at 1440×900 and 1024×768.
- ``test_go_live_story``: the issue's story with the fake camera over WHIP/WHEP (needs the media layer).
"""

from __future__ import annotations

from typing import Any

import pytest

from lmserver.appkeys import DB, LIVE
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

DESKTOP = {"width": 1440, "height": 900}
TABLET = {"width": 1024, "height": 768}


class AppHolder:
    """What ``make_user`` needs of a test client: the app."""

    def __init__(self, app: Any) -> None:
        self.app = app


async def _seed(app: Any) -> tuple[int, list[int]]:
    eid = await make_event(app, "Autumn knitwear drop")
    pids = [await make_product(app, title, stock=stock, price_cents=price, event_id=eid) for title, stock, price in (
        ("Merino scarf, forest green", 40, 3900), ("Chunky cardigan", 12, 8900), ("Wool socks (3 pairs)", 3, 1800),
        ("Beanie", 60, 2200))]
    return eid, pids


async def _staff_context(browser: Any, base: str, name: str, viewport: dict[str, int], scheme: str = "light") -> tuple[Any, Any]:
    ctx = await browser.new_context(viewport=viewport, color_scheme=scheme)
    page = await login_page(ctx, base, name, PASSWORD)
    return ctx, page


async def test_console_and_viewer_pages(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(live={"comment_rate_seconds": 0, "ask_buyer_details": False})
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    from aiohttp import ClientSession

    eid, pids = await _seed(app)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    owner = await make_user(AppHolder(app), "owner")
    moderator = await make_user(AppHolder(app), "moderator")
    await go_live(app, eid)

    desk_ctx, desk = await _staff_context(browser, base, owner, DESKTOP)
    tab_ctx, tab = await _staff_context(browser, base, moderator, TABLET, "dark")  # the tablet in dark mode
    errors: list[str] = []
    sockets: list[str] = []
    desk.on("websocket", lambda ws: sockets.append(ws.url))
    for p in (desk, tab):
        p.on("pageerror", lambda exc: errors.append(str(exc)))
        await p.goto(f"{base}/events/{eid}/console")
        await p.wait_for_function("document.body.dataset.ws === 'open'")
    # one socket for the whole console: the bag widget listens to the page's records
    assert [u.split("/", 3)[3] for u in sockets] == ["ws/console"]

    viewer_ctx = await browser.new_context(viewport=DESKTOP)
    vpage = await viewer_ctx.new_page()
    vpage.on("pageerror", lambda exc: errors.append(str(exc)))
    await vpage.goto(f"{base}/e/{slug}")
    await vpage.wait_for_function("document.body.dataset.ws === 'open'")

    # the viewer picks a nickname and comments: both consoles show it (escaped)
    await vpage.fill("#nickname-form input", "Mia <b>")
    await vpage.click("#nickname-form button")
    await vpage.fill("#comment-form input", "Is the cardigan <i>machine</i> washable?")
    await vpage.click("#comment-form button")
    for p in (desk, tab):
        item = p.locator("#feed-comments .feed-item", has_text="machine")
        await item.wait_for()
        assert "<i>machine</i>" in await item.inner_text()

    # a few more viewers, comments and orders through the API
    async with ClientSession() as http:
        shoppers = [await new_viewer(app, n) for n in ("Noah", "Lena", "Sam", "Ava")]
        for v, text in zip(shoppers, ("Love the green!", "Size guide please", "Just ordered 🎉", "Hello from Lyon")):
            r = await http.post(f"{base}/api/e/{eid}/comments", json={"body": text}, headers=vh(v))
            assert r.status == 201
        for v, (pid, qty) in zip(shoppers, ((pids[0], 1), (pids[1], 2), (pids[0], 3), (pids[3], 1))):
            r = await http.post(f"{base}/api/e/{eid}/orders", json={"product_id": pid, "quantity": qty}, headers=vh(v))
            assert r.status == 201, await r.text()
        r = await http.post(f"{base}/api/e/{eid}/gifts", json={"gift": "rose"}, headers=vh(shoppers[1]))
        assert r.status == 201

    # the tablet's moderator replies and pins; the desktop console and the viewer page follow
    await tab.locator("#feed-comments .feed-item", has_text="machine").get_by_role("button", name="Reply").click()
    await tab.fill(".reply-form input", "Yes, 30 °C wool cycle!")
    await tab.click(".reply-form button")
    await tab.locator("#feed-comments .feed-item", has_text="machine").get_by_role("button", name="Pin").click()
    await desk.locator("#pinned-comment", has_text="machine").wait_for()
    await desk.locator("#feed-comments .feed-item.reply", has_text="30 °C").wait_for()
    await vpage.locator("#pinned-comment", has_text="machine").wait_for()
    await vpage.locator("#comments .feed-item.reply", has_text="30 °C").wait_for()

    # orders and GMV on both consoles: 1×39 + 2×89 + 3×39 + 1×22 = 356.00
    for p in (desk, tab):
        await p.wait_for_function("document.querySelector('#m-orders').textContent.trim() === '4'")
        assert "356.00" in await p.inner_text("#m-gmv")
        assert await p.inner_text("#m-items") == "7"
    await desk.click(".tab[data-tab=orders]")
    await desk.locator("#feed-orders .feed-item", has_text="Chunky cardigan").wait_for()

    # hide and block from the desktop: the viewer page drops the comment
    await desk.click(".tab[data-tab=comments]")
    await desk.locator("#feed-comments .feed-item", has_text="Hello from Lyon").get_by_role("button", name="Hide").click()
    await vpage.wait_for_function("!document.querySelector('#comments').textContent.includes('Hello from Lyon')")
    desk.once("dialog", lambda d: d.accept())
    await desk.locator("#feed-comments .feed-item", has_text="Size guide").get_by_role("button", name="Block").click()
    await vpage.wait_for_function("!document.querySelector('#comments').textContent.includes('Size guide')")

    # the viewer buys through the dialog: the consoles count it
    await vpage.locator("#bag [data-product] button", has_text="Buy").first.click()
    await vpage.fill("#buy-qty", "2")
    await vpage.click("#buy-confirm")
    await vpage.locator("#buy-result", has_text="Order placed").wait_for()
    await vpage.click("#buy-cancel")
    await desk.wait_for_function("document.querySelector('#m-orders').textContent.trim() === '5'")

    # the host pins a product (events' bag API): the viewer's card shows it
    await desk.evaluate("([e, p]) => LMS.api('POST', `/api/events/${e}/pin`, {product_id: p})", [eid, pids[1]])
    await vpage.locator("#pinned-product", has_text="Chunky cardigan").wait_for()

    await desk.select_option("#feed-filter", "all")
    await desk.locator("#feed-comments .feed-item.activity", has_text="Rose").wait_for()
    await desk.select_option("#feed-filter", "comments")
    check_screenshot(await desk.screenshot(), "console-1440x900")
    check_screenshot(await tab.screenshot(), "console-1024x768-dark")
    check_screenshot(await vpage.screenshot(), "viewer-1440x900")
    await vpage.set_viewport_size(TABLET)
    check_screenshot(await vpage.screenshot(), "viewer-1024x768")

    # read-only past session: no edit controls
    session_id = app[LIVE].current.id
    await app[LIVE].end("test over")
    await vpage.locator("#overlay-title", has_text="LIVE ended").wait_for()
    await desk.goto(f"{base}/events/{eid}/console?session={session_id}")
    assert await desk.locator("#golive-btn").count() == 0
    assert await desk.locator("[data-act=pin]").count() == 0
    assert await desk.locator("#feed-orders .feed-item").count() == 5
    assert errors == []
    for c in (desk_ctx, tab_ctx, viewer_ctx):
        await c.close()


FRAMES_JS = """(want) => new Promise((resolve) => {
  const v = document.querySelector(want.selector);
  let n = 0;
  const timer = setTimeout(() => resolve(n), want.ms);
  const cb = () => { n++; if (n >= want.frames) { clearTimeout(timer); resolve(n); } else v.requestVideoFrameCallback(cb); };
  v.requestVideoFrameCallback(cb);
})"""


async def _frames(page: Any, selector: str, frames: int = 15, ms: int = 60000) -> int:
    """Count decoded frames presented by a <video> (requestVideoFrameCallback), up to ``frames`` or ``ms``."""
    return await page.evaluate(FRAMES_JS, {"selector": selector, "frames": frames, "ms": ms})


async def test_go_live_story(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    """Host goes live with the fake camera; a viewer watches, comments, buys; the host replies, pins, ends."""
    media_app = pytest.importorskip("lmserver.media.app")
    from lmserver.media import MEDIA

    app = app_factory(live={"comment_rate_seconds": 0, "ask_buyer_details": False})
    if MEDIA not in app:  # until the core calls setup_media itself
        media_app.setup_media(app)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid, pids = await _seed(app)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    host = await make_user(AppHolder(app), "owner")

    host_ctx = await browser.new_context(viewport=DESKTOP)
    desk = await login_page(host_ctx, base, host, PASSWORD)
    errors: list[str] = []
    desk.on("pageerror", lambda exc: errors.append(str(exc)))
    await desk.goto(f"{base}/events/{eid}/console")
    await desk.wait_for_function("document.body.dataset.ws === 'open'")

    # pick the fake camera, preview it locally, go LIVE
    await desk.click("#preview-btn")
    await desk.wait_for_function("document.querySelector('#camera-select').options.length > 0 && document.querySelector('#camera-select').value !== ''")
    await desk.select_option("#camera-select", index=0)
    assert await _frames(desk, "#local-preview", 5) >= 5
    await desk.click("#golive-btn")
    await desk.locator("#status-pill", has_text="LIVE").wait_for(timeout=30000)
    assert app[LIVE].current is not None and app[LIVE].current.event_id == eid
    # the program preview plays what viewers see
    assert await _frames(desk, "#program-preview", 10) >= 10

    # a moderator's tablet console: starting a second stream there shows the studio's message
    moderator = await make_user(AppHolder(app), "moderator")
    tab_ctx = await browser.new_context(viewport=TABLET)
    tab = await login_page(tab_ctx, base, moderator, PASSWORD)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    await tab.goto(f"{base}/events/{eid}/console")
    await tab.locator("#status-pill", has_text="LIVE").wait_for()
    await tab.click("#golive-btn")
    await tab.locator("#golive-error", has_text="already live from another device").wait_for(timeout=30000)
    assert "stream key is shown to the studio owner only" in (await tab.text_content(".obs") or "")

    # a second browser context watches the viewer page and receives frames
    viewer_ctx = await browser.new_context(viewport=DESKTOP)
    vpage = await viewer_ctx.new_page()
    vpage.on("pageerror", lambda exc: errors.append(str(exc)))
    await vpage.goto(f"{base}/e/{slug}")
    await vpage.wait_for_function("document.body.dataset.ws === 'open'")
    frames = await _frames(vpage, "#program", 15)
    assert frames >= 15, f"the viewer received {frames} frames"
    await desk.wait_for_function("parseInt(document.querySelector('#m-viewers').textContent, 10) >= 1")

    # the viewer comments -> the console shows it
    await vpage.fill("#nickname-form input", "Jo")
    await vpage.click("#nickname-form button")
    await vpage.fill("#comment-form input", "Which colours does the scarf come in?")
    await vpage.click("#comment-form button")
    item = desk.locator("#feed-comments .feed-item", has_text="Which colours")
    await item.wait_for()

    # the host replies and pins -> the viewer page shows both
    await item.get_by_role("button", name="Reply").click()
    await desk.fill(".reply-form input", "Forest green and charcoal!")
    await desk.click(".reply-form button")
    await item.get_by_role("button", name="Pin").click()
    await vpage.locator("#comments .feed-item.reply", has_text="Forest green").wait_for()
    await vpage.locator("#pinned-comment", has_text="Which colours").wait_for()

    # the host pins a product from the bag -> the viewer's card changes
    await desk.locator("[data-bag-list] > li", has_text="Merino scarf").locator("[data-pin]").click()
    await vpage.locator("#pinned-product", has_text="Merino scarf").wait_for()
    await desk.locator("[data-bag-list] > li", has_text="Chunky cardigan").locator("[data-pin]").click()
    await vpage.locator("#pinned-product", has_text="Chunky cardigan").wait_for()

    # the viewer buys from the card -> the console's Orders and GMV change
    await vpage.click("#pinned-product [data-buy]")
    await vpage.fill("#buy-qty", "2")
    await vpage.click("#buy-confirm")
    await vpage.locator("#buy-result", has_text="Order placed").wait_for()
    await vpage.click("#buy-cancel")
    await desk.wait_for_function("document.querySelector('#m-orders').textContent.trim() === '1'")
    assert "178.00" in await desk.inner_text("#m-gmv")
    await desk.click(".tab[data-tab=orders]")
    await desk.locator("#feed-orders .feed-item", has_text="Chunky cardigan").wait_for()

    # more of the audience: comments, orders, a follow and a gift flow into both consoles
    from aiohttp import ClientSession

    async with ClientSession() as http:
        crowd = [await new_viewer(app, n) for n in ("Noah", "Lena", "Sam")]
        for v, text, (pid, qty) in zip(crowd, ("Love that green!", "Do you ship to Canada?", "Ordered two, can't wait"),
                                       ((pids[0], 1), (pids[3], 1), (pids[1], 2))):
            assert (await http.post(f"{base}/api/e/{eid}/comments", json={"body": text}, headers=vh(v))).status == 201
            assert (await http.post(f"{base}/api/e/{eid}/orders", json={"product_id": pid, "quantity": qty}, headers=vh(v))).status == 201
        assert (await http.post(f"{base}/api/e/{eid}/follow", headers=vh(crowd[1]))).status == 200
        assert (await http.post(f"{base}/api/e/{eid}/gifts", json={"gift": "heart"}, headers=vh(crowd[2]))).status == 201
    for p in (desk, tab):
        await p.wait_for_function("document.querySelector('#m-orders').textContent.trim() === '4'")
    await desk.click(".tab[data-tab=comments]")
    await desk.locator("#feed-comments .feed-item", has_text="Canada").wait_for()
    check_screenshot(await desk.screenshot(), "console-live-1440x900")
    check_screenshot(await vpage.screenshot(), "viewer-live-1440x900")
    await tab.select_option("#feed-filter", "all")
    await tab.locator("#feed-comments .feed-item.activity", has_text="Heart").wait_for()
    check_screenshot(await tab.screenshot(), "console-live-1024x768")

    # End LIVE (with confirmation) -> the viewer page says ended
    await desk.click("#endlive-btn")
    await desk.click("#end-confirm")
    await vpage.locator("#overlay-title", has_text="LIVE ended").wait_for(timeout=30000)
    await desk.locator("#status-pill", has_text="Offline").wait_for()
    assert app[LIVE].current is None
    assert errors == []
    await tab.locator("#status-pill", has_text="Offline").wait_for()

    # practice: the pipeline runs with a visible "Practice" label; viewers still see the ended LIVE
    await desk.check("#practice-toggle")
    await desk.click("#golive-btn")
    await desk.locator("#status-pill", has_text="Practice").wait_for(timeout=30000)
    assert await desk.is_visible("#practice-badge")
    assert app[LIVE].current is not None and app[LIVE].current.practice
    assert await _frames(desk, "#program-preview", 5) >= 5
    assert await vpage.inner_text("#overlay-title") == "LIVE ended"
    await desk.click("#endlive-btn")
    await desk.click("#end-confirm")
    await desk.locator("#status-pill", has_text="Offline").wait_for()
    for c in (host_ctx, tab_ctx, viewer_ctx):
        await c.close()
