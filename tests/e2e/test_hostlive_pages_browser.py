"""Pages changed for issue 16 (items 12, 13, 15) in Chromium, with screenshots (desktop, 375×812, dark):
the best-time suggestion inside the schedule dialog, the time zone in Settings, the e-mail settings card,
and the registration page promising reminder e-mails."""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from lmserver.appkeys import DB
from lmserver.timefmt import fmt
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import make_event

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
EMAIL = {"host": "127.0.0.1", "port": 2525, "tls": "none", "user": "mailer", "password": "never-shown-2x9", "from_address": "live@studio.test"}


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def _history(app: Any, n: int = 3) -> None:
    now = time.time()
    async with app[DB].transaction() as tx:
        for week in range(1, n + 1):
            start = now - week * 7 * 86400
            await tx.execute("INSERT INTO sessions (event_id, practice, source, started_at, ended_at, end_reason)"
                             " VALUES (NULL, 0, 'test', ?, ?, 'host ended')", (start, start + 3600))


async def test_suggestion_in_the_dialog_settings_and_registration(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(server={"timezone": "Europe/Paris"}, email=EMAIL)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await _history(app)
    owner = await make_user(AppHolder(app), "owner")
    errors: list[str] = []
    for viewport, scheme, tag in ((DESKTOP, "light", "1440x900"), (PHONE, "dark", "375x812-dark")):
        ctx = await browser.new_context(viewport=viewport, color_scheme=scheme)
        page = await login_page(ctx, base, owner, PASSWORD)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # the schedule dialog carries the best-time suggestion, with how many sessions it is based on
        await page.goto(f"{base}/events")
        assert "Based on 3 past LIVE sessions" in await page.inner_text("#suggestion-text")
        await page.click("#new-event")
        box = page.locator("#dialog-suggestion")
        await box.wait_for()
        assert "Based on 3 past LIVE sessions (practice excluded)" in await box.inner_text()
        assert "first 0 minutes" not in await page.content()
        await page.click("#dialog-use-suggestion")
        start_iso = await page.get_attribute("#dialog-use-suggestion", "data-start")
        import datetime as dt

        ts = dt.datetime.fromisoformat(start_iso).timestamp()
        paris = dt.datetime.fromtimestamp(ts, ZoneInfo("Europe/Paris"))
        assert await page.input_value("#event-form [name=starts_at]") == paris.strftime("%Y-%m-%dT%H:%M")  # the studio's clock
        assert fmt(ts, "datetime", ZoneInfo("Europe/Paris")) in await box.inner_text()
        check_screenshot(await page.screenshot(), f"schedule-dialog-suggestion-{tag}")
        # the dialog's time is read back on the studio's clock: the event starts at the suggested instant
        await page.fill("#event-form [name=title]", f"Suggested {tag}")
        await page.click("#event-save")
        await page.wait_for_url(f"{base}/events/*")
        assert abs(await app[DB].fetchval("SELECT starts_at FROM events WHERE title = ?", (f"Suggested {tag}",)) - ts) < 1

        # Settings: the time zone and the e-mail card (never the password)
        await page.goto(f"{base}/settings")
        card = await page.inner_text("#email-card")
        assert "127.0.0.1:2525" in card and "password set" in card and "never-shown-2x9" not in await page.content()
        assert await page.input_value("#tz-select") == "Europe/Paris"
        await page.locator("#timezone-card").scroll_into_view_if_needed()
        check_screenshot(await page.screenshot(), f"settings-timezone-email-{tag}")
        await ctx.close()

    # the owner changes the zone: the settings page shows the clock in it
    ctx = await browser.new_context(viewport=DESKTOP)
    page = await login_page(ctx, base, owner, PASSWORD)
    await page.goto(f"{base}/settings")
    await page.select_option("#tz-select", "Asia/Tokyo")
    await page.click("#tz-save")
    await page.wait_for_function("document.querySelector('#tz-select').value === 'Asia/Tokyo'")
    assert (await page.inner_text("#tz-now")).endswith(" JST")
    await ctx.close()

    # the registration page with e-mail reminders on (and the calendar file still offered)
    eid = await make_event(app, "Winter knits", starts_in=3 * 3600)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    for viewport, scheme, tag in ((DESKTOP, "light", "1440x900"), (PHONE, "dark", "375x812-dark")):
        ctx = await browser.new_context(viewport=viewport, color_scheme=scheme)
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/e/{slug}")
        assert "we e-mail you a reminder 10 minutes before the start" in await page.inner_text("#email-hint")
        assert await page.is_visible("#ics-link")
        check_screenshot(await page.screenshot(), f"register-email-{tag}")
        await ctx.close()
    assert errors == []
