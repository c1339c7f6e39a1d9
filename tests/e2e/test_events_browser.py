"""LIVE events in Chromium: schedule through the pages, fill and reorder the bag by drag and drop, promote
(QR download decoded back to the URL), a viewer registers; screenshots of every page of the area."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lmserver.appkeys import DB, HUB, LIVE
from lmserver.demo import seed_demo
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.qrread import encodes

DESKTOP = {"width": 1440, "height": 900}
TABLET = {"width": 1024, "height": 768}
PARIS = ZoneInfo("Europe/Paris")


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


def watch_errors(page: Any, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the refused overlap answers 409 on purpose; the page shows it (checked), the console logs it
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "status of 409" not in msg.text else None)


async def bag_titles(page: Any) -> list[str]:
    return await page.eval_on_selector_all("[data-bag-list] .bag-item .title", "els => els.map(e => e.textContent.replace('Pinned', '').trim())")


async def test_schedule_fill_bag_promote_register(aiohttp_server: Any, app_factory: Any, browser: Any, tmp_path: Path) -> None:
    app = app_factory(server={"timezone": "Europe/Paris"})  # the studio's time zone: the dialog's times are on its clock
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await seed_demo(app)
    owner = await make_user(AppHolder(app), "owner")
    ctx = await browser.new_context(viewport=DESKTOP, timezone_id="Europe/Paris", accept_downloads=True)
    page = await login_page(ctx, base, owner, PASSWORD)
    errors: list[str] = []
    watch_errors(page, errors)

    # --- schedule through the pages, in the studio's time zone (Paris), two days ahead at 19:30
    day = dt.datetime.now(PARIS).date() + dt.timedelta(days=2)
    local = dt.datetime(day.year, day.month, day.day, 19, 30, tzinfo=PARIS)
    await page.click("nav >> text=Events")
    await page.wait_for_url(base + "/events")
    await page.click("#new-event")
    await page.fill("#event-form input[name=title]", "Spring skincare drop")
    await page.fill("#event-form textarea[name=description]", "Serums, masks and a live-only bundle.")
    await page.fill("#event-form input[name=starts_at]", local.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#event-form [data-minutes='90']")
    check_screenshot(await page.screenshot(), "events-schedule-dialog")
    await page.click("#event-save")
    await page.wait_for_url(f"{base}/events/*")
    eid = int(page.url.rsplit("/", 1)[1])
    row = await app[DB].fetchone("SELECT * FROM events WHERE id = ?", (eid,))
    assert row["title"] == "Spring skincare drop" and row["duration_minutes"] == 90
    assert row["starts_at"] == local.timestamp()  # the studio's wall clock was converted to UTC by the page
    assert "Spring skincare drop" in await page.inner_text("h1")
    # edit it from its page: the dialog opens with its local start time
    await page.click("#edit-event")
    assert await page.input_value("#event-form input[name=starts_at]") == local.strftime("%Y-%m-%dT%H:%M")
    await page.click("#event-form [data-minutes='120']")
    await page.click("#event-save")
    await page.wait_for_function("() => document.querySelector('#details').textContent.includes('2 h')")
    assert await app[DB].fetchval("SELECT duration_minutes FROM events WHERE id = ?", (eid,)) == 120
    await page.click("#edit-event")
    await page.click("#event-form [data-minutes='90']")
    await page.click("#event-save")
    await page.wait_for_function("() => document.querySelector('#details').textContent.includes('1 h 30 min')")

    # an overlapping event is refused in the dialog, naming the other event
    await page.goto(base + "/events")
    await page.click("#new-event")
    await page.fill("#event-form input[name=title]", "Clashing show")
    await page.fill("#event-form input[name=starts_at]", (local + dt.timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M"))
    await page.click("#event-form [data-minutes='60']")
    await page.click("#event-save")
    await page.wait_for_selector("#event-error:not([hidden])")
    message = await page.inner_text("#event-error")
    assert "Spring skincare drop" in message and "delete that event or pick another time" in message
    check_screenshot(await page.screenshot(), "events-overlap-error")
    await page.click("#event-form [data-close]")
    check_screenshot(await page.screenshot(full_page=True), "events-list")

    # --- fill the bag by searching the catalog
    await page.goto(f"{base}/events/{eid}")
    for query in ("serum", "scarf", "EAR-PRO", "candle"):
        await page.fill("[data-bag-search]", query)
        await page.click("[data-bag-results] [data-add]")
        await page.wait_for_function("n => document.querySelectorAll('[data-bag-list] .bag-item').length === n",
                                     arg=["serum", "scarf", "EAR-PRO", "candle"].index(query) + 1)
    await page.keyboard.press("Escape")
    await page.wait_for_selector("[data-bag-results]", state="hidden")
    assert await bag_titles(page) == ["Vitamin C serum 30 ml", "Silk scarf, sunset print", "Wireless earbuds Pro", "Scented candle, fig"]

    # --- drag and drop: the candle onto the top half of the first row → first
    await page.drag_and_drop("[data-bag-list] .bag-item:nth-child(4) .handle", "[data-bag-list] .bag-item:nth-child(1)",
                             target_position={"x": 60, "y": 4})
    await page.wait_for_function("() => document.querySelector('[data-bag-list] .bag-item .title').textContent.includes('candle')")
    assert await bag_titles(page) == ["Scented candle, fig", "Vitamin C serum 30 ml", "Silk scarf, sunset print", "Wireless earbuds Pro"]
    # ... and the serum onto the bottom half of the last row → last
    await page.drag_and_drop("[data-bag-list] .bag-item:nth-child(2) .handle", "[data-bag-list] .bag-item:nth-child(4)",
                             target_position={"x": 60, "y": 50})
    await page.wait_for_function("() => document.querySelector('[data-bag-list] .bag-item:nth-child(4) .title').textContent.includes('serum')")
    order = [r["title"] for r in await app[DB].fetchall(
        "SELECT p.title FROM event_products b JOIN products p ON p.id = b.product_id WHERE b.event_id = ? ORDER BY b.position", (eid,))]
    assert order == ["Scented candle, fig", "Silk scarf, sunset print", "Wireless earbuds Pro", "Vitamin C serum 30 ml"]

    # typed position and move to top
    await page.fill("[data-bag-list] .bag-item:nth-child(1) [data-pos]", "3")
    await page.press("[data-bag-list] .bag-item:nth-child(1) [data-pos]", "Enter")
    await page.wait_for_function("() => document.querySelector('[data-bag-list] .bag-item:nth-child(3) .title').textContent.includes('candle')")
    await page.click("[data-bag-list] .bag-item:nth-child(4) [data-top]")
    await page.wait_for_function("() => document.querySelector('[data-bag-list] .bag-item .title').textContent.includes('serum')")
    assert await bag_titles(page) == ["Vitamin C serum 30 ml", "Silk scarf, sunset print", "Wireless earbuds Pro", "Scented candle, fig"]
    # search in the bag
    await page.fill("[data-bag-filter]", "earbuds")
    assert await bag_titles(page) == ["Wireless earbuds Pro"]
    await page.fill("[data-bag-filter]", "")
    # a second console sees changes made elsewhere at once (bag.changed over the WebSocket)
    other = await ctx.new_page()
    await other.goto(f"{base}/events/{eid}")
    await other.wait_for_function("() => document.querySelectorAll('[data-bag-list] .bag-item').length === 4")
    await page.click("[data-bag-list] .bag-item:nth-child(4) [data-remove]")
    await other.wait_for_function("() => document.querySelectorAll('[data-bag-list] .bag-item').length === 3")
    await other.close()

    # --- promote: recommend, QR code download decoded back to the event's URL
    await page.check("#recommend")
    await page.wait_for_function("() => document.querySelector('#toast').textContent.includes('Recommended')")
    assert await app[DB].fetchval("SELECT recommended FROM events WHERE id = ?", (eid,)) == 1
    url = await page.input_value("#event-url")
    assert url == f"{base}/e/{row['slug']}"
    async with page.expect_download() as info:
        await page.click("#qr-png")
    download = await info.value
    assert download.suggested_filename == f"{row['slug']}-qr.png"
    target = tmp_path / download.suggested_filename
    await download.save_as(target)
    assert encodes(target.read_bytes(), url)
    async with page.expect_download() as info:
        await page.click("#qr-svg")
    svg = tmp_path / "qr.svg"
    await (await info.value).save_as(svg)
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    async with page.expect_download() as info:
        await page.click("#ics")
    ics = tmp_path / "e.ics"
    await (await info.value).save_as(ics)
    assert "BEGIN:VEVENT" in ics.read_text()
    await page.evaluate("window.scrollTo(0, 0)")
    check_screenshot(await page.screenshot(full_page=True), "event-detail-1440")
    await page.click("#theme-toggle")
    await page.reload()  # the theme persists; a fresh page has no colour transition in flight
    await page.wait_for_selector("[data-bag-list] .bag-item")
    check_screenshot(await page.screenshot(), "event-detail-dark")
    await page.click("#theme-toggle")

    # --- a viewer opens the registration page (link or QR) and registers
    vctx = await browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/Paris", locale="en-GB", is_mobile=True)
    viewer = await vctx.new_page()
    watch_errors(viewer, errors)
    await viewer.goto(url)
    assert "Spring skincare drop" in await viewer.inner_text("h1")
    assert "19:30" in await viewer.inner_text(".when")  # shown on the studio's clock (Paris)
    countdown = await viewer.inner_text("#countdown")
    assert countdown.startswith("in ") and "d" in countdown
    assert not await viewer.is_visible("#ready-banner")  # two days ahead: not in the ready window yet
    assert await viewer.inner_text("#reg-count") == "0"
    await viewer.fill("#reg-form input[name=nickname]", "Mia <3")
    await viewer.fill("#reg-form input[name=email]", "mia@example.com")
    await viewer.click("#reg-submit")
    await viewer.wait_for_selector("#reg-done:not([hidden])")
    assert await viewer.inner_text("#reg-done h2") == "You're registered as Mia <3"
    assert await viewer.inner_text("#reg-count") == "1"
    check_screenshot(await viewer.screenshot(full_page=True), "event-register-mobile")
    await viewer.reload()
    assert "You're registered as Mia <3" in await viewer.inner_text("#reg-done")
    reg = await app[DB].fetchone("SELECT nickname, email FROM registrations WHERE event_id = ?", (eid,))
    assert (reg["nickname"], reg["email"]) == ("Mia <3", "mia@example.com")
    # the studio's public home links to the recommended event
    await viewer.goto(base + "/studio")
    check_screenshot(await viewer.screenshot(full_page=True), "studio-public-mobile")
    await viewer.click(f"#recommended a[href='/e/{row['slug']}']")
    await viewer.wait_for_url(url)
    await vctx.close()

    # the home page's checklist reflects all of it
    await page.goto(base + "/")
    for key in ("catalog", "event", "bag", "promote"):
        assert await page.get_attribute(f"[data-check={key}]", "data-done") == "1", key
    assert await page.get_attribute("[data-check=practice]", "data-done") == "0"
    check_screenshot(await page.screenshot(full_page=True), "home-events-1440")
    assert errors == []
    await ctx.close()


async def test_registration_page_in_the_ready_window(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    """An event 5 minutes ahead (inside events.ready_minutes): the page says the LIVE opens here, and does so when it starts."""
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, description, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES ('soon', 'Sunday sneaker drop', 'Limited pairs, live only.', ?, 60, ?, ?)", (now + 5 * 60 + 20, now, now))
        eid = cur.lastrowid
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/Paris", locale="en-GB", is_mobile=True)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # This LIVE has no media ingest (LiveState only), so the page's WHEP offer is refused with 403 "not
    # live" whenever it gets there; the browser logs that refusal, which is not what this test is about.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and not (msg.location or {}).get("url", "").endswith("/whep") else None)
    await page.goto(base + "/e/soon")
    banner = page.locator("#ready-banner")
    await banner.wait_for(state="visible")
    text = await banner.inner_text()
    assert "Starting in 5 minutes" in text, text  # the countdown shows 5:1x
    assert "stay on this page, the LIVE opens here automatically" in text
    # the form is honest about the email: nothing is mailed; the calendar file is the reminder
    assert "lets the host contact you about this event" in await page.inner_text("#email-hint")
    assert "reminder" not in (await page.inner_text("#email-hint")).replace("no reminder email is sent", "")
    assert await page.get_attribute("#reg-intro a", "href") == "/e/soon/event.ics"
    check_screenshot(await page.screenshot(full_page=True), "event-register-ready-mobile")
    await page.fill("#reg-form input[name=nickname]", "Kai")
    await page.click("#reg-submit")
    await page.wait_for_selector("#reg-done:not([hidden])")
    assert "add it to your calendar" in await page.inner_text("#reg-reminder")
    assert await page.get_attribute("#reg-reminder a", "href") == "/e/soon/event.ics"
    check_screenshot(await page.screenshot(), "event-registered-ready-mobile")
    # the start comes (moved to now, without telling the page), the host goes LIVE: stream.started turns the page into the viewer page
    for _ in range(100):
        if app[HUB].count("public") >= 1:
            break
        await asyncio.sleep(0.05)
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE events SET starts_at = ? WHERE id = ?", (time.time() - 1, eid))
    await app[LIVE].begin("test", False, None, event_id=eid)
    await page.wait_for_selector("#program", timeout=10000)
    assert await page.locator("#reg-form").count() == 0
    await app[LIVE].end("host ended")
    assert errors == []
    await ctx.close()


async def test_pages_on_a_tablet_with_history(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    """Past events with sessions, a session's analytics chart, the suggestion, help: looked at on a tablet."""
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await seed_demo(app)
    owner = await make_user(AppHolder(app), "owner")
    now = time.time()
    pid = await app[DB].fetchval("SELECT id FROM products ORDER BY id LIMIT 1")
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO viewers (id, created_at) VALUES ('buyer', ?)", (now,))
        for week in range(1, 4):
            start = now - week * 7 * 86400
            cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES (?, ?, ?, 90, ?, ?)",
                                   (f"week-{week}", f"Weekly drop #{4 - week}", start, start, start))
            eid = cur.lastrowid
            for part, (offset, minutes) in enumerate(((0, 40), (45 * 60, 30))):
                cur = await tx.execute("INSERT INTO sessions (event_id, source, started_at, ended_at, peak_viewers) VALUES (?, 'whip', ?, ?, 0)",
                                       (eid, start + offset, start + offset + minutes * 60))
                sid = cur.lastrowid
                for i in range(minutes * 12):  # every 5 s
                    x = i / (minutes * 12)  # audience builds up, peaks around the middle, then thins out
                    v = int(12 + 48 * math.sin(math.pi * x) ** 1.5 + 4 * math.sin(i / 9) + week * 3)
                    await tx.execute("INSERT INTO viewer_samples (session_id, at, viewers) VALUES (?, ?, ?)", (sid, start + offset + 5 * i, v))
                for k in range(3 + week):
                    await tx.execute(
                        "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency, created_at)"
                        " VALUES ('buyer', ?, ?, ?, 1, 3900, 3900, 'USD', ?)", (pid, eid, sid, start + offset + 300 * (k + 1)))
                await tx.execute("INSERT INTO activity (name, event_id, session_id, data, created_at) VALUES ('product.pinned', ?, ?, ?, ?)",
                                 (eid, sid, f'{{"product": {{"id": {pid}, "title": "Silk scarf"}}}}', start + offset + 60))
    ctx = await browser.new_context(viewport=TABLET)
    page = await login_page(ctx, base, owner, PASSWORD)
    errors: list[str] = []
    watch_errors(page, errors)
    await page.goto(base + "/events/past")
    assert await page.locator("tr[data-session-id]").count() == 6
    check_screenshot(await page.screenshot(full_page=True), "events-past-tablet")
    await page.click("tr[data-session-id] >> text=Analytics")
    await page.wait_for_selector("#viewers-chart")
    assert await page.locator("#viewers-chart polyline").count() == 1
    check_screenshot(await page.screenshot(full_page=True), "session-analytics-tablet")
    await page.goto(base + "/events")
    assert "averaged" in await page.inner_text("#suggestion")
    check_screenshot(await page.screenshot(), "events-list-suggestion-tablet")
    await page.click("#use-suggestion")
    assert await page.input_value("#event-form input[name=duration_minutes]") != ""
    check_screenshot(await page.screenshot(), "events-suggestion-tablet")
    await page.goto(base + "/e/week-1")
    assert "This LIVE has ended" in await page.inner_text("#ended-note")
    check_screenshot(await page.screenshot(full_page=True), "event-ended-tablet")
    await page.goto(base + "/help/structuring-a-show")
    check_screenshot(await page.screenshot(), "help-tablet")
    await page.goto(base + "/")
    check_screenshot(await page.screenshot(full_page=True), "home-tablet")
    assert errors == []
    await ctx.close()
