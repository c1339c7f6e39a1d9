"""The owner maps catalog products to the web shop on the Shop links page (the shoplink plugin's settings, no
longer API-only): save, a refused id with the server's reason, remove; moderators neither see nor open it.
Screenshots desktop and 375×812."""

from __future__ import annotations

from typing import Any

from lmserver.appkeys import DB
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import make_product


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def test_owner_maps_products_to_the_shop(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(plugins={"shoplink": {"shop": "knit-studio.myshopify.com"}}, load_entrypoints=True)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    shirt = await make_product(app, "Linen shirt", stock=3, price_cents=5900)
    scarf = await make_product(app, "Merino scarf", stock=8, price_cents=3900)
    owner = await make_user(AppHolder(app), "owner")
    errors: list[str] = []
    ctx = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await login_page(ctx, base, owner, PASSWORD)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/")
    await page.click("text=Shop links")
    await page.wait_for_url(f"{base}/p/shoplink/")
    row = page.locator(f"tr[data-product='{shirt}']")
    await row.locator("input[name=shop_id]").fill("44012345678901")
    await row.locator("button", has_text="Save").click()
    await row.locator("[data-example]", has_text="https://knit-studio.myshopify.com/cart/44012345678901:1").wait_for()
    assert await app[DB].fetchval("SELECT shop_id FROM shoplink_products WHERE product_id = ?", (shirt,)) == "44012345678901"
    # a bad id: the server's reason, nothing saved
    other = page.locator(f"tr[data-product='{scarf}']")
    await other.locator("input[name=shop_id]").fill("no spaces please")
    await other.locator("button", has_text="Save").click()
    await page.locator("#shoplink-error", has_text="letters, digits").wait_for()
    assert await app[DB].fetchval("SELECT COUNT(*) FROM shoplink_products WHERE product_id = ?", (scarf,)) == 0
    await other.locator("input[name=shop_id]").fill("gid-778")
    await other.locator("button", has_text="Save").click()
    await other.locator("[data-unmap]").wait_for()
    check_screenshot(await page.screenshot(full_page=True), "shoplink-settings-desktop")
    # the page as the server draws it after a reload, then remove one
    await page.reload()
    assert await row.locator("input[name=shop_id]").input_value() == "44012345678901"
    await row.locator("[data-unmap]").click()
    await row.locator("[data-example]", has_text="pay later").wait_for()
    assert await app[DB].fetchval("SELECT COUNT(*) FROM shoplink_products WHERE product_id = ?", (shirt,)) == 0
    phone_ctx = await browser.new_context(viewport={"width": 375, "height": 812})
    phone = await login_page(phone_ctx, base, owner, PASSWORD)
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    await phone.goto(f"{base}/p/shoplink/")
    await phone.locator(f"tr[data-product='{scarf}'] [data-unmap]").wait_for()
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    check_screenshot(await phone.screenshot(full_page=True), "shoplink-settings-phone")
    # a moderator: no menu link, and the page is refused
    moderator = await make_user(AppHolder(app), "moderator")
    mctx = await browser.new_context(viewport={"width": 1366, "height": 900})
    mod = await login_page(mctx, base, moderator, PASSWORD)
    await mod.goto(f"{base}/")
    assert await mod.locator("a", has_text="Shop links").count() == 0
    resp = await mod.goto(f"{base}/p/shoplink/")
    assert resp is not None and resp.status == 403
    assert errors == []
    for c in (ctx, phone_ctx, mctx):
        await c.close()
