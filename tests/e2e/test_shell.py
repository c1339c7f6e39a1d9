"""The web shell in a real browser: log in, see the home page and the catalog, toggle the theme."""

from __future__ import annotations

from typing import Any

from lmserver.demo import seed_demo
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user


async def test_login_home_catalog_screenshots(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    await seed_demo(app)
    name = await make_user(server, "owner")
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await page.goto(base + "/")
    assert page.url.startswith(base + "/login")  # not logged in: sent to the login page
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", "wrong password!")
    await page.click("button[type=submit]")
    assert "wrong user name or password" in await page.inner_text(".alert-error")
    await page.close()

    page = await login_page(context, base, name, PASSWORD)
    assert "Welcome back" in await page.inner_text("h1")
    assert "Weekend home & lifestyle drop" in await page.inner_text("main")
    check_screenshot(await page.screenshot(full_page=True), "home-1440")

    await page.click("text=Catalog")
    await page.wait_for_selector(".product-card")
    cards = await page.query_selector_all(".product-card")
    assert len(cards) == 12
    # every demo product image really loaded
    loaded = await page.eval_on_selector_all(".product-card img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")
    assert loaded == 12
    check_screenshot(await page.screenshot(full_page=True), "catalog-1440")

    # dark mode persists across pages
    await page.click("#theme-toggle")
    await page.goto(base + "/")
    assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
    check_screenshot(await page.screenshot(), "home-dark")
    await context.close()


async def test_catalog_create_product_in_browser(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    server = await aiohttp_server(app_factory())
    base = f"http://127.0.0.1:{server.port}"
    name = await make_user(server, "assistant")
    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    page = await login_page(context, base, name, PASSWORD)
    await page.goto(base + "/catalog")
    await page.click("#new-product")
    await page.fill("#product-form input[name=title]", "Hand cream <b>rose</b>")
    await page.fill("#product-form input[name=price]", "12.5")
    await page.fill("#product-form input[name=stock]", "7")
    await page.click("#product-save")
    await page.wait_for_selector(".product-card")
    text = await page.inner_text(".product-card")
    assert "Hand cream <b>rose</b>" in text  # escaped, shown as text
    assert "$12.50" in text and "7 in stock" in text
    check_screenshot(await page.screenshot(full_page=True), "catalog-tablet")
    await context.close()


async def test_settings_page_reveals_and_rotates_the_key_and_adds_an_account(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    server = await aiohttp_server(app_factory(media={"capture_lavfi": True}))
    base = f"http://127.0.0.1:{server.port}"
    name = await make_user(server, "owner")
    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    page = await login_page(context, base, name, PASSWORD)
    await page.goto(base + "/settings")
    assert await page.input_value("#stream-key") == ""  # hidden until revealed
    assert await page.is_checked("#rotate-end")  # rotating ends a stream on the old key unless unticked
    # the capture source moderators may start: chosen from the allow-list
    await page.wait_for_selector("#capture-source option[value='lavfi:testsrc2']", state="attached")
    await page.select_option("#capture-source", "lavfi:testsrc2")
    await page.click("#capture-choose")
    await page.wait_for_function("LMS.api('GET', '/api/media/capture/sources').then((r) => r.selected === 'lavfi:testsrc2')")
    await page.click("#reveal-key")
    await page.wait_for_function("document.querySelector('#stream-key').value.startsWith('lms_')")
    first = await page.input_value("#stream-key")
    page.once("dialog", lambda d: d.accept())
    await page.click("#rotate-key")
    await page.wait_for_function(f"document.querySelector('#stream-key').value !== {first!r}")
    await page.fill("#user-form input[name=name]", "mod1")
    await page.fill("#user-form input[name=password]", "short")
    await page.evaluate("document.querySelector('#user-form input[name=password]').removeAttribute('minlength')")
    await page.click("#user-form button")
    await page.wait_for_selector("#user-error:not([hidden])")
    assert "at least 10 characters" in await page.inner_text("#user-error")
    await page.fill("#user-form input[name=password]", "a good long password")
    await page.click("#user-form button")
    await page.wait_for_selector("#users td:text('mod1')")
    check_screenshot(await page.screenshot(full_page=True), "settings-tablet")
    await context.close()
