"""Orders in headless Chromium (issue 18): a viewer's first purchase asks for name, e-mail and address, the second
is one tap; staff cancel an order on the Orders page and the stock comes back; a product mapped to a web shop
sends the viewer to the shop's cart. Screenshots: the Orders page (desktop, 375×812, dark), the packing list,
the details form."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lmserver.appkeys import DB, LIVE
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import make_event, make_product

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 812}


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def buy(page: Any, title: str) -> None:
    await page.locator("#bag [data-product]", has_text=title).locator("button", has_text="Buy").click()
    await page.click("#buy-confirm")


async def test_first_purchase_asks_details_second_is_one_tap_and_staff_cancel(aiohttp_server: Any, app_factory: Any,
                                                                              browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Autumn drop")
    mug = await make_product(app, "Ceramic mug", stock=5, price_cents=1800, event_id=eid)
    cap = await make_product(app, "Wool cap", stock=4, price_cents=2400, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    await app[LIVE].begin("test", False, None, event_id=eid)
    errors: list[str] = []

    vctx = await browser.new_context(viewport={"width": 390, "height": 844})
    viewer = await vctx.new_page()
    viewer.on("pageerror", lambda exc: errors.append(str(exc)))
    await viewer.goto(f"{base}/e/{slug}")
    await buy(viewer, "Ceramic mug")
    await viewer.locator("#buyer-dialog[open]").wait_for()
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders") == 0  # held until the details are saved
    await viewer.fill("#buyer-form input[name=name]", "Ann Lee")
    await viewer.fill("#buyer-form input[name=email]", "not-an-address")
    await viewer.fill("#buyer-form textarea[name=address]", "12 Harbour Road\n4000 Basel, Switzerland")
    await viewer.click("#buyer-save")
    await viewer.locator("#buyer-error", has_text="e-mail address").wait_for()  # checked at the edge, shown in the form
    await viewer.fill("#buyer-form input[name=email]", "ann@example.com")
    check_screenshot(await viewer.screenshot(), "orders-details-form-phone")
    await viewer.click("#buyer-save")
    await viewer.locator("#buy-result", has_text="Order placed: 1 × Ceramic mug").wait_for(timeout=15000)
    await viewer.locator("#buy-shipto", has_text="Ship to Ann Lee, 12 Harbour Road").wait_for()
    await viewer.click("#buy-cancel")
    # the second purchase: one tap, no form
    await buy(viewer, "Wool cap")
    await viewer.locator("#buy-result", has_text="Order placed: 1 × Wool cap").wait_for(timeout=15000)
    assert not await viewer.locator("#buyer-dialog[open]").count()
    rows = await app[DB].fetchall("SELECT product_id, buyer_name, ship_address FROM orders ORDER BY id")
    assert [(r["product_id"], r["buyer_name"]) for r in rows] == [(mug, "Ann Lee"), (cap, "Ann Lee")]
    assert rows[0]["ship_address"] == "12 Harbour Road\n4000 Basel, Switzerland"

    # staff: the Orders page shows the buyer; cancelling puts the unit back in stock
    owner = await make_user(AppHolder(app), "owner")
    sctx = await browser.new_context(viewport=DESKTOP)
    staff = await login_page(sctx, base, owner, PASSWORD)
    staff.on("pageerror", lambda exc: errors.append(str(exc)))
    staff.on("dialog", lambda d: d.accept())
    await staff.goto(f"{base}/events/{eid}/orders")
    mug_order = await app[DB].fetchval("SELECT id FROM orders WHERE product_id = ?", (mug,))
    row = staff.locator(f"tr[data-order-id='{mug_order}']")
    await row.locator("td", has_text="ann@example.com").wait_for()
    check_screenshot(await staff.screenshot(full_page=True), "orders-page-desktop")
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (mug,)) == 4
    await row.locator("[data-set-status=cancelled]").click()
    await staff.locator(f"tr[data-order-id='{mug_order}'][data-status=cancelled]").wait_for(timeout=15000)
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (mug,)) == 5
    assert await app[DB].fetchval("SELECT by FROM order_status_history WHERE order_id = ? AND to_status = 'cancelled'",
                                  (mug_order,)) == owner
    # bulk: the cap order → paid
    await staff.check(".order-pick[value='%d']" % await app[DB].fetchval("SELECT id FROM orders WHERE product_id = ?", (cap,)))
    await staff.select_option("#bulk-status", "paid")
    await staff.click("#bulk-apply")
    await staff.locator("tr[data-status=paid]").wait_for(timeout=15000)
    packing = await sctx.new_page()
    await packing.goto(f"{base}/orders/packing?event={eid}")
    await packing.locator(".packing-slip", has_text="12 Harbour Road").wait_for()
    check_screenshot(await packing.screenshot(full_page=True), "orders-packing-list")
    # phone and dark
    pctx = await browser.new_context(viewport=PHONE, color_scheme="dark")
    phone = await login_page(pctx, base, owner, PASSWORD)
    await phone.goto(f"{base}/orders")
    await phone.locator("tr[data-status=paid]").wait_for()
    check_screenshot(await phone.screenshot(full_page=True), "orders-page-phone-dark")
    assert errors == []
    await app[LIVE].end("host ended")
    for ctx in (vctx, sctx, pctx):
        await ctx.close()


async def test_shop_link_buy_redirects_to_the_shop(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    shop = web.Application()
    carts: list[str] = []

    async def cart(request: web.Request) -> web.Response:
        carts.append(request.match_info["item"])
        return web.Response(text=f"<h1>Shop cart: {request.match_info['item']}</h1>", content_type="text/html")

    shop.router.add_get("/cart/{item}", cart)
    shop_server = await aiohttp_server(shop)
    app = app_factory(plugins={"shoplink": {"url_template": f"http://127.0.0.1:{shop_server.port}/cart/{{id}}:{{qty}}"}},
                      load_entrypoints=True, live={"ask_buyer_details": False})
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    eid = await make_event(app, "Shop night")
    pid = await make_product(app, "Linen shirt", stock=3, price_cents=5900, event_id=eid)
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO shoplink_products (product_id, shop_id, updated_at) VALUES (?, '44012345678901', 0)", (pid,))
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    await app[LIVE].begin("test", False, None, event_id=eid)
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await ctx.new_page()
    await page.goto(f"{base}/e/{slug}")
    await page.locator("#bag [data-product]", has_text="Linen shirt").locator("button", has_text="Buy").click()
    await page.fill("#buy-qty", "2")
    await page.click("#buy-confirm")
    await page.wait_for_url(f"http://127.0.0.1:{shop_server.port}/cart/44012345678901:2", timeout=15000)
    assert carts == ["44012345678901:2"]
    assert await app[DB].fetchval("SELECT status FROM orders") == "pending_payment"
    await app[LIVE].end("host ended")
    await ctx.close()
