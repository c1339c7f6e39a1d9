"""Going live from the console in Chromium (issue 16, items 1–4, 12, 14), with the fake camera over WHIP.

- before the ready window the console shows the countdown and Go LIVE is disabled (practice is allowed);
- in the ready window: "Ready · Starting in m:ss · N products loaded", Go LIVE enabled, the event.ready
  reminder on the console;
- practice → LIVE in one step: "End practice" with Go LIVE beside it; the WHIP ingest goes on (same ingest,
  the camera is not stopped) in a new, real session;
- the studio's capture source (a test pattern here) starts from the console's go-live panel;
- "OBS Virtual Camera" is the default camera when the browser lists one;
- times are written in the studio's time zone (Europe/Paris here) in one format; the date tile is not cut;
- screenshots: desktop, 375×812 and dark.
"""

from __future__ import annotations

import time
from typing import Any

from lmserver.appkeys import DB, LIVE
from lmserver.events import publish_due_reminders
from lmserver.media import MEDIA
from lmserver.timefmt import fmt
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import make_event, make_product

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
PARIS = {"timezone": "Europe/Paris"}
MEDIA_CFG = {"capture_lavfi": True, "width": 320, "height": 240, "video_bitrate": 400_000, "keyframe_min_interval": 0.2}

OBS_INIT = """
(() => {
  const md = navigator.mediaDevices;
  const original = md.enumerateDevices.bind(md);
  md.enumerateDevices = async () => {
    const list = await original();
    const i = list.findIndex((d) => d.kind === "videoinput");
    const obs = { kind: "videoinput", label: "OBS Virtual Camera", deviceId: "obs-virtual", groupId: "obs",
                  toJSON() { return this; } };
    list.splice(i + 1, 0, obs);  // after the machine's own camera: still the default choice
    return list;
  };
})();
"""


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def _phase(page: Any, phase: str) -> None:
    await page.wait_for_function(f"document.querySelector('#event-countdown').dataset.phase === '{phase}'")


async def test_countdown_ready_practice_to_live_and_capture(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    # the reminder loop waits long here: the test publishes the ready reminder itself, once the console listens
    app = app_factory(server=PARIS, media=MEDIA_CFG, events={"reminder_check_seconds": 3600.0})
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Evening knitwear drop", starts_in=40 * 60)
    for title in ("Merino scarf", "Chunky cardigan"):
        await make_product(app, title, event_id=eid)
    owner = await make_user(AppHolder(app), "owner")
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await login_page(ctx, base, owner, PASSWORD)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1. before the ready window: the countdown, Go LIVE disabled until practice is ticked
    await page.goto(f"{base}/events/{eid}/console")
    await _phase(page, "upcoming")
    assert await page.inner_text("#status-pill") == "Offline"
    text = await page.inner_text("#event-countdown")
    starts = await app[DB].fetchval("SELECT starts_at FROM events WHERE id = ?", (eid,))
    assert f"Starts {fmt(starts, 'short', _paris())}" in text and "Go LIVE opens 10 minutes before the start" in text, text
    assert await page.is_disabled("#golive-btn")
    await page.check("#practice-toggle")
    assert not await page.is_disabled("#golive-btn")
    await page.uncheck("#practice-toggle")
    # the date tile: the studio's clock, in one piece
    assert await page.inner_text("#m-date") == fmt(starts, "date", _paris())
    assert await page.evaluate("(() => { const el = document.querySelector('#m-date'); return el.scrollWidth <= el.clientWidth + 1; })()")
    check_screenshot(await page.screenshot(), "golive-countdown-1440x900")

    # 2. the ready window: products loaded, "Starting in", the reminder on the console
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE events SET starts_at = ? WHERE id = ?", (time.time() + 5 * 60, eid))
    await page.reload()
    await _phase(page, "ready")
    await page.wait_for_function("document.querySelector('#event-countdown').textContent.includes('2 products loaded')")
    assert (await page.inner_text("#event-countdown")).startswith("Ready · Starting in 4:") or "Starting in 5:00" in await page.inner_text("#event-countdown")
    assert not await page.is_disabled("#golive-btn")
    await page.wait_for_function("document.body.dataset.ws === 'open'")
    assert await publish_due_reminders(app) == [eid]
    await page.locator("#ready-reminder", has_text="“Evening knitwear drop” starts in 5 minutes").wait_for()
    # the status pill says Ready (with the countdown), not Offline, and counts down
    pill = page.locator("#status-pill.pill-ready", has_text="Ready · starts in 4:")
    await pill.wait_for()
    first = await pill.inner_text()
    await page.wait_for_function(f"document.querySelector('#status-pill').textContent !== {first!r}")
    check_screenshot(await page.screenshot(), "golive-ready-1440x900")
    pill_ctx = await browser.new_context(viewport=PHONE)
    pill_page = await login_page(pill_ctx, base, owner, PASSWORD)
    await pill_page.goto(f"{base}/events/{eid}/console")
    await pill_page.locator("#status-pill.pill-ready", has_text="Ready · starts in").wait_for()
    check_screenshot(await pill_page.screenshot(), "golive-ready-pill-375x812")
    await pill_ctx.close()

    # 3. practice, then Go LIVE beside "End practice": same ingest, new real session
    await page.check("#practice-toggle")
    await page.click("#golive-btn")
    await page.locator("#status-pill", has_text="Practice").wait_for(timeout=30000)
    assert await page.inner_text("#endlive-btn") == "End practice"
    assert await page.is_visible("#practice-golive-btn")
    ingest = app[MEDIA].ingest
    practice_session = app[LIVE].current
    assert ingest is not None and ingest.kind == "whip" and practice_session.practice
    check_screenshot(await page.screenshot(), "golive-practice-1440x900")
    await page.click("#practice-golive-btn")
    await page.locator("#status-pill", has_text="LIVE").wait_for(timeout=30000)
    assert app[MEDIA].ingest is ingest and ingest.pc.connectionState == "connected"  # the camera was not stopped
    assert app[LIVE].current.id != practice_session.id and not app[LIVE].current.practice
    assert app[LIVE].current.event_id == eid
    assert await page.inner_text("#endlive-btn") == "End LIVE" and not await page.is_visible("#practice-golive-btn")
    await page.wait_for_function("(() => { const v = document.querySelector('#program-preview');"
                                 " return v.videoWidth > 0 && !v.paused && v.readyState >= 2; })()", timeout=30000)
    await page.click("#endlive-btn")
    await page.click("#end-confirm")
    await page.locator("#status-pill", has_text="Offline").wait_for(timeout=30000)

    # 4. the capture source from the console (the owner may pick any allowed source)
    await page.wait_for_selector("#ingest-source option[value='lavfi:testsrc2']", state="attached")
    await page.select_option("#ingest-source", "lavfi:testsrc2")
    await page.locator("#capture-golive-btn").wait_for(state="visible")
    assert await page.is_hidden("#camera-select") and await page.is_hidden("#golive-btn")
    await page.uncheck("#practice-toggle")
    await page.click("#capture-golive-btn")
    await page.locator("#status-pill", has_text="LIVE").wait_for(timeout=30000)
    assert app[MEDIA].ingest.kind == "capture" and app[LIVE].current.event_id == eid
    await page.click("#endlive-btn")
    await page.click("#end-confirm")
    await page.locator("#status-pill", has_text="Offline").wait_for(timeout=30000)
    assert app[LIVE].current is None
    assert errors == []

    # 5. the phone (375×812) in dark mode: the go-live panel fits
    phone_ctx = await browser.new_context(viewport=PHONE, color_scheme="dark")
    phone = await login_page(phone_ctx, base, owner, PASSWORD)
    await phone.goto(f"{base}/events/{eid}/console")
    await _phase(phone, "ready")
    assert await phone.evaluate("document.querySelector('#golive').scrollWidth <= document.querySelector('#golive').clientWidth + 1")
    await phone.locator("#golive").scroll_into_view_if_needed()
    check_screenshot(await phone.screenshot(), "golive-ready-375x812-dark")
    check_screenshot(await phone.screenshot(full_page=True), "golive-ready-375x812-dark-full")
    await phone_ctx.close()
    await ctx.close()


async def test_obs_virtual_camera_is_the_default_choice(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(media=MEDIA_CFG)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Any show", starts_in=-60)
    owner = await make_user(AppHolder(app), "owner")
    ctx = await browser.new_context(viewport=DESKTOP)
    await ctx.add_init_script(OBS_INIT)
    page = await login_page(ctx, base, owner, PASSWORD)
    await page.goto(f"{base}/events/{eid}/console")
    await page.wait_for_selector("#camera-select option[value='obs-virtual']", state="attached")
    assert await page.input_value("#camera-select") == "obs-virtual"
    options = await page.eval_on_selector_all("#camera-select option", "(os) => os.map((o) => o.textContent)")
    assert options.index("OBS Virtual Camera") > 0  # not simply the first one
    await ctx.close()


def _paris() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


async def test_go_live_now_offers_the_days_next_event(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    """Go LIVE now offers to start the day's next scheduled event now (its start moves) instead of an empty new one."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: pick a zone where "later today" is certain for the test's event
    app = app_factory(server={"timezone": zone.key}, media=MEDIA_CFG)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    now = time.time()
    midnight = dt.datetime.combine(dt.datetime.fromtimestamp(now, zone).date() + dt.timedelta(days=1), dt.time(), zone).timestamp()
    if midnight - now < 2 * 3600:  # too close to the studio's midnight for "later today": use a zone where it is earlier
        zone = ZoneInfo("Etc/GMT+12")
        async with app[DB].transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('timezone', ?)", (zone.key,))
        from lmserver.timefmt import load_zone

        await load_zone(app)
        midnight = dt.datetime.combine(dt.datetime.fromtimestamp(now, zone).date() + dt.timedelta(days=1), dt.time(), zone).timestamp()
    starts = now + min(90 * 60, (midnight - now) / 2)
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES ('prepared-1', 'Prepared drop', ?, 60, ?, ?)", (starts, now, now))
        eid = cur.lastrowid
    await make_product(app, "Merino scarf", event_id=eid)
    owner = await make_user(AppHolder(app), "owner")
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await login_page(ctx, base, owner, PASSWORD)
    await page.goto(f"{base}/events")
    await page.click("#go-live-now")
    await page.locator("#now-dialog[open]").wait_for()
    offer = await page.inner_text("#now-offer")
    assert "“Prepared drop” is scheduled today at " + fmt(starts, "time", zone) in offer and "1 product in its bag" in offer
    assert "LIVE " + fmt(time.time(), "date", zone) in offer  # the new event's name on the studio's clock
    check_screenshot(await page.screenshot(), "golive-now-offer-1440x900")
    await page.click("#now-start")
    await page.wait_for_url(f"{base}/events/{eid}/console")
    row = await app[DB].fetchone("SELECT starts_at, duration_minutes FROM events WHERE id = ?", (eid,))
    assert row["starts_at"] <= time.time() and row["duration_minutes"] == 60
    assert await app[DB].fetchval("SELECT COUNT(*) FROM events") == 1  # no empty event was made
    await page.locator("#golive-btn:not([disabled])").wait_for()  # its window is open: Go LIVE is allowed
    await ctx.close()
