"""A flash sale in headless Chromium: set up in the console, launched live, a viewer sees the countdown and buys
at the deal price, the bar moves on a second viewer's page, "Sold out" shows on every page."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from lmserver.appkeys import DB
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh
from tests.plugins.flashsalehelpers import make_app, start_now

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 420, "height": 860}


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def test_flash_sale_from_console_to_sold_out(aiohttp_server: Any, make_config: Any, browser: Any) -> None:
    app = make_app(make_config)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Friday flash")
    pid = await make_product(app, "Ceramic mug, ocean blue", stock=10, price_cents=2000, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    owner = await make_user(AppHolder(app), "owner")
    await go_live(app, eid)
    errors: list[str] = []

    staff_ctx = await browser.new_context(viewport=DESKTOP)
    console = await login_page(staff_ctx, base, owner, PASSWORD)
    console.on("pageerror", lambda exc: errors.append(str(exc)))
    await console.goto(f"{base}/events/{eid}/console")
    await console.wait_for_function("document.body.dataset.ws === 'open'")

    # set up: 3 units at 12.00 instead of 20.00, 2 per buyer, a 10 s countdown, 1 minute
    panel = console.locator("[data-flashsale-panel]")
    await panel.locator("select[name=product_id]").select_option(str(pid))
    await panel.locator("input[name=allocated]").fill("3")
    await panel.locator("input[name=deal_price_cents]").fill("2500")
    await panel.locator("input[name=per_buyer_limit]").fill("2")
    await panel.locator("input[name=countdown_seconds]").fill("10")
    await panel.locator("input[name=duration_minutes]").fill("1")
    await panel.locator("[data-fs-add]").click()
    await panel.locator("[data-fs-error]", has_text="below the regular price").wait_for()  # refused with the numbers
    await panel.locator("input[name=deal_price_cents]").fill("1200")
    await panel.locator("[data-fs-add]").click()
    await panel.locator("li[data-status=draft]").wait_for()
    sale_id = int(await panel.locator("li[data-status=draft]").get_attribute("data-sale-id"))
    await panel.locator("[data-fs-error]").wait_for(state="hidden")
    await panel.locator("li[data-status=draft] [data-fs-action=launch]").click()
    await panel.locator("li[data-status=countdown]").wait_for()
    await panel.scroll_into_view_if_needed()
    check_screenshot(await console.screenshot(), "flashsale-console-countdown")

    # two viewers see the countdown
    viewers = []
    for _ in range(2):
        ctx = await browser.new_context(viewport=PHONE)
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/e/{slug}")
        await page.wait_for_function("document.body.dataset.ws === 'open'")
        await page.locator("[data-flash-card][data-state=countdown]", has_text="Flash sale in 0:").wait_for()
        viewers.append(page)
    first, second = viewers
    await first.locator("[data-flash-card]").scroll_into_view_if_needed()
    check_screenshot(await first.screenshot(), "flashsale-viewer-countdown")

    # the countdown ends (skipped: the start timer fires now); the first viewer buys at the deal price
    await start_now(app, sale_id)
    for page in viewers:
        await page.locator("[data-flash-card][data-state=live]").wait_for()
    await first.locator("[data-fs-buy]").click()
    await first.locator("[data-fs-result]", has_text="Order placed at").wait_for()
    assert "12.00" in await first.locator("[data-fs-result]").inner_text()
    await second.locator("[data-fs-sold]", has_text="1 of 3 sold").wait_for()  # the bar moved on the other page
    assert await second.locator(".fs-bar span").get_attribute("style") == "width:33%"
    check_screenshot(await second.screenshot(), "flashsale-viewer-live")

    # two more buyers take the rest: sold out everywhere
    async with ClientSession() as http:
        for _ in range(2):
            v = await new_viewer(app)
            r = await http.post(f"{base}/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1, "offer": f"flashsale:{sale_id}"},
                                headers=vh(v))
            assert r.status == 201, await r.text()
    for page in viewers:
        await page.locator("[data-flash-card][data-state=sold-out] [data-fs-soldout]", has_text="Sold out").wait_for()
    await panel.locator(f"li[data-sale-id='{sale_id}'] [data-fs-sold]", has_text="3 of 3 sold").wait_for()
    await panel.locator(f"li[data-sale-id='{sale_id}'] [data-fs-figures]", has_text="sold out in").wait_for()
    await console.select_option("#feed-filter", "all")  # the feed's "All activities": launched, sold out
    await console.locator("#feed-comments .feed-item", has_text="Flash sale sold out").wait_for()
    await console.locator("#feed-comments .feed-item", has_text="Flash sale launched").wait_for()
    check_screenshot(await first.screenshot(), "flashsale-viewer-sold-out")
    check_screenshot(await console.screenshot(), "flashsale-console-sold-out")
    amounts = await app[DB].fetchall("SELECT unit_price_cents FROM orders WHERE product_id = ?", (pid,))
    assert [r["unit_price_cents"] for r in amounts] == [1200, 1200, 1200]
    assert errors == []
