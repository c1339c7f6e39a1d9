"""The front end's shared pieces in Chromium: one WebSocket per page (LMS.bus), plugin activities drawn from their
declared text (EventSpec.activity), and one comment-thread renderer (LMS.comments) on the console and the viewer page.

A plugin registered in the test declares ``shoutout.sent`` (an activity with its own text and label), a viewer
widget whose script follows the bus through ``LMS.bus.on``, and nothing else: the core's JavaScript never names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from lmserver.appkeys import BUS, DB
from lmserver.busevents import EventSpec
from lmserver.plugins import hookimpl
from lmserver.plugins.types import Panel
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

WIDGET_JS = """
(function () {
  const box = document.querySelector("[data-shout-widget]");
  LMS.bus.on("shoutout.", (rec) => { box.textContent = "last shout: " + rec.data.text; });
})();
"""


class ShoutPlugin:
    """A third-party plugin as a test declares it: a bus event with its activity text, and a viewer widget."""

    PLUGIN_NAME = "shoutout"

    def __init__(self, root: Path) -> None:
        (root / "templates").mkdir(parents=True)
        (root / "static").mkdir()
        (root / "templates" / "widget.html").write_text(
            '<p data-shout-widget>no shout yet</p><script src="/-/static/plugins/shoutout/widget.js" defer></script>')
        (root / "static" / "widget.js").write_text(WIDGET_JS)
        self.root = root

    @hookimpl
    def register_asset_dirs(self) -> dict[str, str]:
        return {"templates": str(self.root / "templates"), "static": str(self.root / "static")}

    @hookimpl
    def register_bus_events(self) -> list[EventSpec]:
        return [EventSpec("shoutout.sent", "A viewer shouted.", {"nickname": "who", "text": "what"}, "public",
                          public={"nickname": None, "text": None}, activity="{nickname} shouted “{text}”", label="Shout-outs", icon="📣")]

    @hookimpl
    def viewer_widgets(self, request: Any, event: Any) -> list[Panel]:
        return [Panel("shoutout", "Shout-outs", "shoutout/widget.html", {})]


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


THREAD_JS = """(sel) => Array.from(document.querySelectorAll(sel + " li.comment")).map((li) => [
  li.dataset.comment, li.dataset.parent || null, li.classList.contains("reply"), li.classList.contains("staff"),
  li.querySelector(".who").textContent, li.querySelector(".body").textContent])"""


async def test_one_socket_plugin_activity_and_shared_threads(tmp_path: Path, aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(plugins=(ShoutPlugin(tmp_path / "shout"),), live={"comment_rate_seconds": 0})
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Spring knitwear")
    pid = await make_product(app, "Beanie <3", stock=9, price_cents=2200, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    owner = await make_user(AppHolder(app), "owner")
    session = await go_live(app, eid)

    # comments before the pages open, replies after: both renderers build the same threads
    async with ClientSession() as http:
        viewers = [await new_viewer(app, n) for n in ("Mia <b>", "Noah", "Lena")]
        ids = []
        for v, text in zip(viewers, ("Is it <i>washable</i>?", "Size guide please", "Love it")):
            r = await http.post(f"{base}/api/e/{eid}/comments", json={"body": text}, headers=vh(v))
            assert r.status == 201, await r.text()
            ids.append((await r.json())["comment"]["id"])

    errors: list[str] = []
    ctx = await browser.new_context(viewport={"width": 1440, "height": 900})
    desk = await login_page(ctx, base, owner, PASSWORD)
    desk_sockets: list[str] = []
    desk.on("websocket", lambda ws: desk_sockets.append(ws.url))
    desk.on("pageerror", lambda exc: errors.append(str(exc)))
    await desk.goto(f"{base}/events/{eid}/console")
    await desk.wait_for_function("document.body.dataset.ws === 'open'")

    vctx = await browser.new_context(viewport={"width": 1440, "height": 900})
    vpage = await vctx.new_page()
    viewer_sockets: list[str] = []
    vpage.on("websocket", lambda ws: viewer_sockets.append(ws.url))
    vpage.on("pageerror", lambda exc: errors.append(str(exc)))
    await vpage.goto(f"{base}/e/{slug}")
    await vpage.wait_for_function("document.body.dataset.ws === 'open'")

    # (b) the plugin's activity kind is in the feed's filter, by its declared label
    options = await desk.eval_on_selector_all("#feed-filter option", "os => os.map(o => [o.value, o.textContent.trim()])")
    assert ["shoutout.sent", "📣 Shout-outs"] in options
    assert ["gift.sent", "🎁 Gifts"] in options and ["all", "All activities"] in options

    # staff reply (threaded under the first comment) and a live comment, both arriving over the bus
    await desk.evaluate("(id) => LMS.api('POST', `/api/comments/${id}/reply`, {body: 'Yes, <30 °C> wool cycle'})", ids[0])
    async with ClientSession() as http:
        r = await http.post(f"{base}/api/e/{eid}/comments", json={"body": "And in blue?"}, headers=vh(viewers[1]))
        assert r.status == 201
    async with ClientSession() as http:
        r = await http.post(f"{base}/api/e/{eid}/orders", json={"product_id": pid, "quantity": 2}, headers=vh(viewers[2]))
        assert r.status == 201, await r.text()
        r = await http.post(f"{base}/api/e/{eid}/gifts", json={"gift": "rose"}, headers=vh(viewers[0]))
        assert r.status == 201, await r.text()
    await app[BUS].publish("shoutout.sent", {"nickname": "Zoé <b>", "text": "<i>hello</i> all"}, event_id=eid, session_id=session.id)

    # the viewer widget follows the page's bus
    await vpage.locator("[data-shout-widget]", has_text="last shout: <i>hello</i> all").wait_for()

    # the console draws the plugin's record from its declared text, escaped
    await desk.select_option("#feed-filter", "all")
    item = desk.locator('#feed-comments .feed-item.activity[data-activity="shoutout.sent"]')
    await item.wait_for()
    assert await item.locator(".who").inner_text() == "Zoé <b>"
    assert "Zoé <b> shouted “<i>hello</i> all”" in await item.inner_text()
    # the core's own kinds read from their declarations too (money and gift filters, escaped values)
    order = desk.locator('#feed-comments .feed-item.activity[data-activity="order.created"]')
    assert "Lena bought 2 × Beanie <3 · $44.00 · first order" in await order.inner_text()
    gift = desk.locator('#feed-comments .feed-item.activity[data-activity="gift.sent"]')
    assert "Mia <b> sent 🌹 Rose" in await gift.inner_text()
    await desk.select_option("#feed-filter", "shoutout.sent")
    assert await desk.locator("#feed-comments .feed-item").count() == 1
    await desk.select_option("#feed-filter", "comments")

    # (c) the same threads on the console and on the viewer page
    await desk.locator("#feed-comments .feed-item.reply", has_text="wool cycle").wait_for()
    await vpage.locator("#comments .feed-item.reply", has_text="wool cycle").wait_for()
    await desk.locator("#feed-comments .feed-item", has_text="And in blue?").wait_for()
    await vpage.locator("#comments .feed-item", has_text="And in blue?").wait_for()
    console_threads = await desk.evaluate(THREAD_JS, "#feed-comments")
    viewer_threads = await vpage.evaluate(THREAD_JS, "#comments")
    assert console_threads == viewer_threads
    assert [(t[1], t[4], t[5]) for t in console_threads] == [
        (None, "Mia <b>", "Is it <i>washable</i>?"), (str(ids[0]), console_threads[1][4], "Yes, <30 °C> wool cycle"),
        (None, "Noah", "Size guide please"), (None, "Lena", "Love it"), (None, "Noah", "And in blue?")]
    assert console_threads[1][2:4] == [True, True]  # a staff reply

    # (a) one WebSocket per page: the console (its bag widget and panels share it), the viewer page (its widget too)
    assert [u.split("/", 3)[3] for u in desk_sockets] == ["ws/console"]
    assert [u.split("/", 3)[3] for u in viewer_sockets] == [f"ws/viewer?event={eid}"]

    await desk.select_option("#feed-filter", "all")
    check_screenshot(await desk.screenshot(), "frontend-console-activities")
    check_screenshot(await vpage.screenshot(), "frontend-viewer-threads")
    assert errors == []
    await ctx.close()
    await vctx.close()


async def test_bus_reconnects_and_tells_subscribers(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    """A dropped socket comes back by itself, and subscribers get ``bus.reconnected`` to refetch their state."""
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    owner = await make_user(AppHolder(app), "owner")
    ctx = await browser.new_context()
    page = await login_page(ctx, base, owner, PASSWORD)
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    await page.evaluate("""() => { window.seen = []; window.off = LMS.bus.on("bus.", (r) => seen.push(r.name));
                                   LMS.bus.on("hello", (r) => seen.push(r.name)); }""")
    await page.wait_for_function("document.body.dataset.ws === 'open' && seen.includes('hello')")
    from lmserver.appkeys import HUB

    await app[HUB].close_all()  # the server drops every client
    await page.wait_for_function("seen.includes('bus.reconnected')")
    assert await page.evaluate("seen") == ["hello", "bus.closed", "bus.reconnected", "hello"]
    assert len(sockets) == 2
    await page.evaluate("off()")
    await app[HUB].close_all()
    await page.wait_for_function("seen.filter((n) => n === 'hello').length === 3")
    assert await page.evaluate("seen.filter((n) => n.startsWith('bus.')).length") == 2  # unsubscribed: nothing more
    await ctx.close()
