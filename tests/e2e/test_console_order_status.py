"""The console's Orders tab shows each order's status with the Orders page's label and colour, and follows
``order.status_changed`` live (a payment marked paid, an order cancelled on the Orders page). Screenshots desktop
and 375×812."""

from __future__ import annotations

from typing import Any

from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def test_console_orders_show_their_status_and_follow_changes(aiohttp_client: Any, app_factory: Any, browser: Any) -> None:
    client = await aiohttp_client(app_factory(live={"ask_buyer_details": False}))
    app = client.app
    base = str(client.make_url("")).rstrip("/")
    eid = await make_event(app, "Autumn knitwear drop")
    scarf = await make_product(app, "Merino scarf", stock=10, price_cents=3900, event_id=eid)
    socks = await make_product(app, "Wool socks", stock=10, price_cents=1800, event_id=eid)
    await go_live(app, eid)
    staff = await staff_cookie(client, "owner")
    owner = await make_user(AppHolder(app), "owner")
    errors: list[str] = []
    pages = []
    for viewport in ({"width": 1440, "height": 900}, {"width": 375, "height": 812}):
        ctx = await browser.new_context(viewport=viewport)
        page = await login_page(ctx, base, owner, PASSWORD)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/events/{eid}/console")
        await page.wait_for_function("document.body.dataset.ws === 'open'")
        await page.click("[data-tab=orders]")
        pages.append((ctx, page))

    ids = []
    for pid in (scarf, socks):
        resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1}, headers=vh(await new_viewer(app, "Mia")))
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["order"]["id"])
    for _, page in pages:
        for oid in ids:
            await page.locator(f"#feed-orders [data-order='{oid}'] .order-status.status-placed", has_text="placed").wait_for()
    # a status change anywhere (the Orders page, a payment plugin) reaches the console at once
    for oid, to in ((ids[0], "paid"), (ids[1], "cancelled")):
        resp = await client.post(f"/api/orders/{oid}/status", json={"status": to}, headers=staff)
        assert resp.status == 200, await resp.text()
    for _, page in pages:
        await page.locator(f"#feed-orders [data-order='{ids[0]}'] .order-status.status-paid", has_text="paid").wait_for()
        await page.locator(f"#feed-orders [data-order='{ids[1]}'] .order-status.status-cancelled", has_text="cancelled").wait_for()
    # the same colour as the Orders page's pill for that status
    console_colour = await pages[0][1].locator(f"[data-order='{ids[0]}'] .order-status").evaluate("e => getComputedStyle(e).color")
    orders_page = await pages[0][0].new_page()
    await orders_page.goto(f"{base}/events/{eid}/orders")
    assert await orders_page.locator(f"tr[data-order-id='{ids[0]}'] .order-status").evaluate("e => getComputedStyle(e).color") == console_colour
    # after a reload the console reads the statuses from the server
    await pages[0][1].reload()
    await pages[0][1].click("[data-tab=orders]")
    await pages[0][1].locator(f"#feed-orders [data-order='{ids[0]}'] .order-status.status-paid").wait_for()
    for (ctx, page), name in zip(pages, ("console-orders-status-desktop", "console-orders-status-phone")):
        await page.locator("#feed-orders").scroll_into_view_if_needed()
        check_screenshot(await page.screenshot(), name)
        await ctx.close()
    assert errors == []
