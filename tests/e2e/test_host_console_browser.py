"""Issue 16, items 5–11, in Chromium: the host's console and the viewer page during and after a LIVE.

- stock: every order, release and restock updates the console's bag and every viewer page, without a reload;
- comments: the console's feed shows all, product questions or unanswered comments;
- scripts: the pinned product's talking points and the event's run of show in the console's prompter view;
- the bag search: Enter adds the top result and clears the box;
- the phone console (375×812): pin, show a billboard, moderate, with no horizontal scrolling;
- the viewer page after the end (every open page at once, replay link) and earlier sessions' comments.

Screenshots: desktop (1440×900), phone (375×812) and dark, in test-results/screenshots/hostconsole-*.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from lmserver import orders
from lmserver.appkeys import DB, LIVE
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
NO_HSCROLL = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def _page(browser: Any, base: str, url: str, viewport: dict[str, int] = DESKTOP, scheme: str = "light",
                staff: str | None = None, errors: list[str] | None = None) -> tuple[Any, Any]:
    ctx = await browser.new_context(viewport=viewport, color_scheme=scheme)
    page = await login_page(ctx, base, staff, PASSWORD) if staff else await ctx.new_page()
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    if scheme == "dark":
        await page.add_init_script("localStorage.setItem('lms-theme', 'dark')")
    await page.goto(base + url)
    await page.wait_for_function("document.body.dataset.ws === 'open'")
    return ctx, page


async def _stock_shown(page: Any, selector: str) -> str:
    return str(await page.locator(selector).inner_text())


async def test_stock_stays_current_on_every_console_and_viewer_page(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn knitwear")
    scarf = await make_product(app, "Merino scarf", stock=60, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    owner = await make_user(AppHolder(app), "owner")
    await go_live(app, eid)
    errors: list[str] = []
    cctx, console = await _page(browser, base, f"/events/{eid}/console", staff=owner, errors=errors)
    vctx, viewer_page = await _page(browser, base, f"/e/{slug}", errors=errors)
    console_stock = f'.bag-item[data-id="{scarf}"] .sub'
    viewer_stock = f'#bag [data-product="{scarf}"] .stock'
    await console.locator(console_stock, has_text="60 in stock").wait_for()
    assert await _stock_shown(viewer_page, viewer_stock) == "60 in stock"
    await console.evaluate("window.reloads = 0; const f = window.fetch; window.fetch = (u, o) => { if (String(u).includes('/bag')) reloads++; return f(u, o); }")

    viewer = await new_viewer(app, "Ann")
    async with ClientSession() as http:
        resp = await http.post(f"{base}/api/e/{eid}/orders", json={"product_id": scarf, "quantity": 4}, headers=vh(viewer))
        assert resp.status == 201, await resp.text()
        order_id = (await resp.json())["order"]["id"]
    await console.locator(console_stock, has_text="56 in stock").wait_for()
    await viewer_page.locator(viewer_stock, has_text="56 in stock").wait_for()
    assert await console.evaluate("reloads") == 0  # applied from the record, not by reloading the bag

    # an unpaid reservation released: the units come back everywhere
    await app[DB].execute("UPDATE orders SET status = 'reserved' WHERE id = ?", (order_id,))
    assert await orders.reconcile(app, older_than=0) == [order_id]
    await console.locator(console_stock, has_text="60 in stock").wait_for()
    await viewer_page.locator(viewer_stock, has_text="60 in stock").wait_for()

    # a restock in the catalog (product.updated)
    await console.evaluate(f"LMS.api('PATCH', '/api/products/{scarf}', {{stock: 75}})")
    await console.locator(console_stock, has_text="75 in stock").wait_for()
    await viewer_page.locator(viewer_stock, has_text="75 in stock").wait_for()

    # the pinned card's "Ask about it": the viewer's question is a product question on the console
    await console.click(f'.bag-item[data-id="{scarf}"] [data-pin]')
    await viewer_page.click("#pinned-product [data-ask]")
    await viewer_page.fill("#nickname-form input", "Mia")
    await viewer_page.click("#nickname-form button")
    assert await viewer_page.locator("#asking-title").inner_text() == "Merino scarf"
    await viewer_page.fill("#comment-form input", "how long is it?")
    check_screenshot(await viewer_page.screenshot(), "hostconsole-viewer-live-desktop")
    await viewer_page.click("#comment-form button")
    await console.click("[data-comments=product]")
    await console.locator("#feed-comments .feed-item", has_text="how long is it?").wait_for()
    assert await app[DB].fetchval("SELECT product_id FROM comments WHERE body = 'how long is it?'") == scarf
    assert await viewer_page.locator("#asking").is_hidden()
    for viewport, scheme, name in ((PHONE, "light", "phone"), (DESKTOP, "dark", "dark")):
        ctx, page = await _page(browser, base, f"/e/{slug}", viewport=viewport, scheme=scheme, errors=errors)
        await page.locator("#pinned-product [data-ask]").wait_for()
        widths = await page.evaluate(NO_HSCROLL)
        assert widths[0] <= widths[1], widths
        check_screenshot(await page.screenshot(full_page=True), f"hostconsole-viewer-live-{name}")
        await ctx.close()
    assert errors == []
    await cctx.close()
    await vctx.close()


async def _comment(base: str, eid: int, viewer: dict[str, str], body: str, product_id: int | None = None) -> int:
    async with ClientSession() as http:
        payload: dict[str, Any] = {"body": body} if product_id is None else {"body": body, "product_id": product_id}
        resp = await http.post(f"{base}/api/e/{eid}/comments", json=payload, headers=vh(viewer))
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["comment"]["id"])


async def test_comment_filter_scripts_and_bag_search_enter(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(live={"comment_rate_seconds": 0})
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn knitwear")
    cardigan = await make_product(app, "Chunky cardigan", stock=12, event_id=eid)
    scarf = await make_product(app, "Merino scarf, forest green", stock=40, event_id=eid)
    await make_product(app, "Wool socks (3 pairs)", stock=30)          # in the catalog, not yet in the bag
    await make_product(app, "Wool blanket", stock=5)
    talking = "Hand-knitted in Porto.\n• 100% merino\n• 180 × 30 cm\n" + "\n".join(f"Point {i}: keep it short." for i in range(1, 31))
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE products SET script = ? WHERE id = ?", (talking, scarf))
        await tx.execute("UPDATE events SET script = ? WHERE id = ?", ("19:00 open with the cardigan\n19:10 the scarf, then Q&A", eid))
    owner = await make_user(AppHolder(app), "owner")
    await go_live(app, eid)
    viewers = [await new_viewer(app, name) for name in ("Ann", "Bo", "Cy", "Di")]
    question = await _comment(base, eid, viewers[0], "Does the cardigan come in red?")
    await _comment(base, eid, viewers[1], "Hello from Lisbon!")
    asked = await _comment(base, eid, viewers[2], "how long is it?", scarf)      # asked from the pinned card
    await _comment(base, eid, viewers[3], "Is the chunky cardigan itchy?")

    errors: list[str] = []
    ctx, page = await _page(browser, base, f"/events/{eid}/console", staff=owner, errors=errors)
    await page.locator("#feed-comments .feed-item", has_text="itchy").wait_for()
    await page.evaluate(f"LMS.api('POST', '/api/comments/{question}/reply', {{body: 'Yes, red and navy'}})")
    await page.locator("#feed-comments .feed-item.reply", has_text="red and navy").wait_for()

    async def shown() -> list[str]:
        return [str(t) for t in await page.eval_on_selector_all("#feed-comments .feed-item .body", "els => els.map(e => e.textContent)")]

    assert len(await shown()) == 5
    await page.click("[data-comments=product]")
    assert await shown() == ["Does the cardigan come in red?", "Yes, red and navy", "how long is it?", "Is the chunky cardigan itchy?"]
    await page.click("[data-comments=unanswered]")
    assert await shown() == ["Hello from Lisbon!", "how long is it?", "Is the chunky cardigan itchy?"]
    # a new comment lands in the filter it belongs to
    await _comment(base, eid, viewers[1], "any scarf left in green?")
    await page.locator("#feed-comments .feed-item", has_text="any scarf left").wait_for()
    await page.click(f'#feed-comments [data-act=reply][data-id="{asked}"]')
    await page.fill("#feed-comments .reply-form input", "180 cm")
    await page.press("#feed-comments .reply-form input", "Enter")
    await page.wait_for_function("!Array.from(document.querySelectorAll('#feed-comments .body')).some(e => e.textContent === 'how long is it?')")
    await page.click("[data-comments=all]")

    # scripts: pin the scarf, its talking points show in the prompter view; larger text; the run of show
    view = page.locator("#script-view")
    assert "Pin a product" in await view.inner_text()
    await page.click(f'.bag-item[data-id="{scarf}"] [data-pin]')
    await view.locator(".script-text", has_text="Hand-knitted in Porto.").wait_for()
    sizes = await page.evaluate("() => { const v = document.querySelector('#script-view'); return [parseFloat(getComputedStyle(v).fontSize), v.scrollHeight > v.clientHeight, getComputedStyle(v).overflowY]; }")
    assert sizes[1:] == [True, "auto"]  # long talking points scroll inside the view
    await page.click("#script-large")
    larger = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('#script-view')).fontSize)")
    assert larger >= sizes[0] * 1.4
    check_screenshot(await page.screenshot(), "hostconsole-console-script-desktop")
    # edited in the bag (✎): the pinned product's view follows
    await page.click(f'.bag-item[data-id="{scarf}"] [data-script]')
    await page.fill("dialog[data-script-dialog] textarea", "New points: mention the matching beanie")
    await page.click("dialog[data-script-dialog] [data-script-save]")
    await view.locator(".script-text", has_text="mention the matching beanie").wait_for()
    assert await app[DB].fetchval("SELECT script FROM products WHERE id = ?", (scarf,)) == "New points: mention the matching beanie"
    await page.click("[data-script-tab=show]")
    await view.locator(".script-text", has_text="19:10 the scarf, then Q&A").wait_for()
    await page.click("#script-large")

    # the bag search: Enter adds the top result and clears the box, ready for the next one
    search = page.locator("[data-bag-search]")
    await search.fill("wool")
    await page.locator("[data-bag-results] li").first.wait_for()
    await search.press("Enter")
    await page.locator(".bag-item .title", has_text="Wool blanket").wait_for()
    assert await search.input_value() == ""
    await search.fill("wool")
    await search.press("Enter")  # the blanket is in the bag now: the socks are the top result left
    await page.locator(".bag-item .title", has_text="Wool socks").wait_for()
    assert await search.input_value() == ""
    titles = await page.eval_on_selector_all(".bag-item .title", "els => els.map(e => e.textContent)")
    assert titles == ["Chunky cardigan", "Merino scarf, forest green", "Wool blanket", "Wool socks (3 pairs)"]
    assert cardigan
    check_screenshot(await page.screenshot(full_page=True), "hostconsole-console-desktop")
    assert errors == []
    await ctx.close()

    # dark and phone screenshots of the same console
    for viewport, scheme, name in ((DESKTOP, "dark", "dark"), (PHONE, "light", "phone")):
        ctx, page = await _page(browser, base, f"/events/{eid}/console", viewport=viewport, scheme=scheme, staff=owner, errors=errors)
        await page.locator("#script-view .script-text").wait_for()
        check_screenshot(await page.screenshot(full_page=True), f"hostconsole-console-{name}")
        await ctx.close()
    assert errors == []


OVERFLOWING = """() => { const w = document.documentElement.clientWidth;
  return Array.from(document.querySelectorAll('body *')).filter((el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > w + 0.5 && getComputedStyle(el).position !== 'fixed' && !el.closest('dialog:not([open])'); })
    .slice(0, 8).map((el) => el.tagName + '.' + el.className + '#' + el.id + ' ' + Math.round(el.getBoundingClientRect().right)); }"""


async def test_phone_console_pins_shows_billboards_and_moderates(tmp_path: Path, aiohttp_server: Any, browser: Any) -> None:
    """A moderator on a phone (375×812): pin a product, display a billboard, hide a comment and reply, with no
    horizontal scrolling anywhere on the page."""
    from tests.plugins.test_billboard_media import make_app

    app = make_app(tmp_path)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn knitwear drop with a long title")
    scarf = await make_product(app, "Merino scarf, forest green, extra long", stock=40, event_id=eid)
    await make_product(app, "Chunky cardigan", stock=12, event_id=eid)
    moderator = await make_user(AppHolder(app), "moderator")
    await go_live(app, eid)
    viewer = await new_viewer(app, "Ann with a rather long nickname")
    spam = await _comment(base, eid, viewer, "Buy followers at https://example.invalid/a-very-long-link-that-should-wrap-nicely")
    errors: list[str] = []
    for scheme in ("light", "dark"):
        ctx, page = await _page(browser, base, f"/events/{eid}/console", viewport=PHONE, scheme=scheme, staff=moderator, errors=errors)
        widths = await page.evaluate(NO_HSCROLL)
        assert widths[0] <= widths[1], f"horizontal scrolling on the phone console: {widths}, {await page.evaluate(OVERFLOWING)}"
        if scheme == "dark":
            check_screenshot(await page.screenshot(full_page=True), "hostconsole-phone-console-dark")
            await ctx.close()
            break
        # pin a product (its button is reachable and inside the screen)
        pin = page.locator(f'.bag-item[data-id="{scarf}"] [data-pin]')
        await pin.scroll_into_view_if_needed()
        box = await pin.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        await pin.click()
        await page.locator(f'.bag-item[data-id="{scarf}"].pinned').wait_for()
        assert await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (app[LIVE].current.id,)) == scarf
        # display a billboard from its panel
        await page.click("[data-bb-new]")
        await page.select_option("[data-bb-form] select[name=template]", "free_shipping")
        widths = await page.evaluate(NO_HSCROLL)
        assert widths[0] <= widths[1], f"the billboard editor scrolls sideways: {await page.evaluate(OVERFLOWING)}"
        await page.click("[data-bb-save]")
        await page.wait_for_function("!document.querySelector('[data-bb-dialog]').open")
        await page.click(".bb-item [data-act=show]")
        await page.locator(".bb-item.is-shown").wait_for()
        assert await app[DB].fetchval("SELECT COUNT(*) FROM billboards WHERE shown_session_id IS NOT NULL") == 1
        # moderate: reply to a comment, hide the spam
        await page.click("[data-tab=comments]")
        await page.click(f'#feed-comments [data-act=reply][data-id="{spam}"]')
        await page.fill("#feed-comments .reply-form input", "Please no links here")
        await page.press("#feed-comments .reply-form input", "Enter")
        await page.locator("#feed-comments .feed-item.reply", has_text="Please no links").wait_for()
        await page.click(f'#feed-comments [data-act=hide][data-id="{spam}"]')
        await page.locator(f'#feed-comments .feed-item.is-hidden[data-comment="{spam}"]').wait_for()
        widths = await page.evaluate(NO_HSCROLL)
        assert widths[0] <= widths[1], f"horizontal scrolling after moderating: {await page.evaluate(OVERFLOWING)}"
        await page.evaluate("window.scrollTo(0, 0)")
        check_screenshot(await page.screenshot(), "hostconsole-phone-console-top")
        check_screenshot(await page.screenshot(full_page=True), "hostconsole-phone-console")
        await ctx.close()
    assert errors == []


VIEWER_STATE = """() => ({
  live: !document.querySelector('#live-pill').hidden, studioPill: !!(document.querySelector('#topbar-live') || {}).offsetParent, ended: !document.querySelector('#ended-pill').hidden,
  unmute: !document.querySelector('#unmute').hidden, overlay: document.querySelector('#player-overlay').hidden ? '' : document.querySelector('#player-overlay').innerText,
  commentForm: !document.querySelector('#comment-form').hidden, nicknameForm: !document.querySelector('#nickname-form').hidden,
  closed: document.querySelector('#chat-closed').hidden ? '' : document.querySelector('#chat-closed').textContent,
  replay: (document.querySelector('#player-overlay a.replay-link') || {}).href || null})"""


async def test_viewer_pages_after_the_end_and_earlier_sessions(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(live={"comment_rate_seconds": 0})
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn knitwear")
    await make_product(app, "Merino scarf", stock=40, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    viewers = [await new_viewer(app, name) for name in ("Ann", "Bo")]
    first = await go_live(app, eid)
    for text in ("first show: hello", "first show: is it wool?"):
        await _comment(base, eid, viewers[0], text)
    await app[LIVE].end("host ended")
    await go_live(app, eid)
    await _comment(base, eid, viewers[1], "second show: hi again")
    errors: list[str] = []
    pages = []
    for viewport, scheme in ((DESKTOP, "light"), (PHONE, "light"), (DESKTOP, "dark")):
        ctx, page = await _page(browser, base, f"/e/{slug}", viewport=viewport, scheme=scheme, errors=errors)
        pages.append((ctx, page))
    desk = pages[0][1]

    # the chat: this session's comments; the first session's behind a collapsed "Previous sessions" divider
    async def chat(page: Any) -> list[str]:
        return [str(t) for t in await page.eval_on_selector_all("#comments > li", "els => els.map(e => e.classList.contains('comment') ? "
                                                  "e.querySelector('.who').textContent + ' ' + e.querySelector('.body').textContent : e.innerText.trim())")]

    assert await chat(desk) == ["▸ Previous sessions · 2 comments", "Bo second show: hi again"]
    await _comment(base, eid, viewers[0], "second show: love it")
    await desk.locator("#comments li", has_text="love it").wait_for()
    await desk.click("#previous-toggle")
    assert await chat(desk) == ["▾ Previous sessions · 2 comments", "Ann first show: hello", "Ann first show: is it wool?", "This session",
                                "Bo second show: hi again", "Ann second show: love it"]
    check_screenshot(await desk.screenshot(), "hostconsole-viewer-sessions-desktop")
    await desk.click("#previous-toggle")
    assert len(await chat(desk)) == 3
    live = await desk.evaluate(VIEWER_STATE)
    assert live["live"] and live["studioPill"] and not live["ended"] and live["closed"] == ""

    # the first session's replay is published (engineer replay's sessions.replay_published) before this one ends
    columns = {r["name"] for r in await app[DB].fetchall("PRAGMA table_info(sessions)")}
    if "replay_published" not in columns:
        await app[DB].execute("ALTER TABLE sessions ADD COLUMN replay_published INTEGER NOT NULL DEFAULT 0")
    await app[DB].execute("UPDATE sessions SET replay_published = 1 WHERE id = ?", (first.id,))
    # the end: every open viewer page shows it at once (LIVE pill gone, no unmute over a black player, chat closed)
    await desk.evaluate("document.querySelector('#unmute').hidden = false")  # as after a muted autoplay
    await app[LIVE].end("host ended")
    for _, page in pages:
        await page.wait_for_function("document.body.dataset.live === 'ended' && !!document.querySelector('a.replay-link')")
        shown = await page.evaluate(VIEWER_STATE)
        assert shown == {"live": False, "studioPill": False, "ended": True, "unmute": False, "overlay": shown["overlay"], "commentForm": False,
                         "nicknameForm": False, "closed": "The LIVE has ended: comments are closed.", "replay": shown["replay"]}
        assert "LIVE ended" in shown["overlay"]
    check_screenshot(await pages[1][1].screenshot(full_page=True), "hostconsole-viewer-ended-phone")
    check_screenshot(await pages[2][1].screenshot(), "hostconsole-viewer-ended-dark")
    # the second session is still the chat's current one after the end
    assert (await chat(desk))[0] == "▸ Previous sessions · 2 comments"

    # a published replay (engineer replay's sessions.replay_published): the ended page links it
    assert (await desk.evaluate(VIEWER_STATE))["replay"] == f"{base}/e/{slug}/replay/{first.id}"
    check_screenshot(await desk.screenshot(), "hostconsole-viewer-ended-replay-desktop")
    assert errors == []
    for ctx, _ in pages:
        await ctx.close()


async def test_scripts_are_edited_in_the_catalog_and_the_event_form(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn knitwear", starts_in=3600)
    scarf = await make_product(app, "Merino scarf", stock=40, event_id=eid)
    owner = await make_user(AppHolder(app), "owner")
    errors: list[str] = []
    for viewport, scheme, name in ((DESKTOP, "light", "desktop"), (PHONE, "light", "phone"), (DESKTOP, "dark", "dark")):
        ctx = await browser.new_context(viewport=viewport, color_scheme=scheme)
        page = await login_page(ctx, base, owner, PASSWORD)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/catalog")
        await page.click(".edit-product")
        points = f"Talking points ({name}):\n• 100% merino\n• 180 × 30 cm"
        await page.fill("#product-form textarea[name=script]", points)
        check_screenshot(await page.screenshot(), f"hostconsole-catalog-script-{name}")
        async with page.expect_navigation():  # the catalog reloads after a save
            await page.click("#product-save")
        assert await app[DB].fetchval("SELECT script FROM products WHERE id = ?", (scarf,)) == points
        # the event's run of show, in the edit dialog of the event's page
        await page.goto(f"{base}/events/{eid}")
        await page.click("#edit-event")
        show = f"Run of show ({name}): open with the scarf"
        await page.fill("#event-form textarea[name=script]", show)
        check_screenshot(await page.screenshot(), f"hostconsole-event-script-{name}")
        async with page.expect_navigation():
            await page.click("#event-save")
        assert await app[DB].fetchval("SELECT script FROM events WHERE id = ?", (eid,)) == show
        await page.click("#edit-event")
        assert await page.input_value("#event-form textarea[name=script]") == show  # the form shows it back
        await ctx.close()
    assert errors == []
