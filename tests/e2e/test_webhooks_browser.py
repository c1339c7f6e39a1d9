"""Settings → Webhooks in Chromium: add an endpoint (the secret shown once), send a test event, read the
delivery log, redeliver; at desktop, phone (375×812) and dark-mode sizes without horizontal scrolling."""

from __future__ import annotations

from typing import Any

from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.test_webhooks import LOOPBACK, Receiver, until


async def test_add_endpoint_test_event_and_delivery_log(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    rx = await Receiver().start()
    server = await aiohttp_server(app_factory(webhooks=LOOPBACK))
    base = f"http://127.0.0.1:{server.port}"
    name = await make_user(server, "owner")
    try:
        for width, height, scheme in ((1280, 900, "light"), (375, 812, "dark")):
            context = await browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            page = await login_page(context, base, name, PASSWORD)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(base + "/settings")
            await page.click("a:has-text('Webhooks')")
            await page.wait_for_url(base + "/settings/webhooks")
            await page.fill("input[name=url]", rx.url)
            await page.fill("input[name=description]", f"shop sync ({width})")
            await page.click("button[data-pick='order.']")
            await page.check("input[value='stream.started']")
            await page.click("button:has-text('Add endpoint')")
            await page.wait_for_selector("#secret-alert:not([hidden])")
            secret = await page.input_value("#secret-value")
            assert secret.startswith("whsec_")
            rx.secrets.append(secret)
            card = page.locator(f"article:has-text('shop sync ({width})')")
            assert "order.created" in await card.inner_text()
            before = len(rx.accepted)
            await card.locator("button:has-text('Send test event')").click()
            await until(lambda: len(rx.accepted) == before + 1)
            await card.locator("button:has-text('Delivery log')").click()
            await page.wait_for_selector("#log-rows tr:has-text('webhook.test')")
            await page.click("#log-refresh")
            await page.wait_for_selector("#log-rows tr:has-text('delivered')")
            await page.click("#log-rows button:has-text('Redeliver')")
            await until(lambda: len(rx.requests) == before + 2)
            await page.click("#log-refresh")
            overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"horizontal scrolling at {width}px: {overflow}px"
            check_screenshot(await page.screenshot(full_page=True), f"settings-webhooks-{width}-{scheme}")
            assert errors == []
            await context.close()
        assert all(r["verified"] for r in rx.requests)
    finally:
        await rx.stop()


async def test_api_tokens_page_makes_shows_once_and_revokes(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    import aiohttp

    server = await aiohttp_server(app_factory())
    base = f"http://127.0.0.1:{server.port}"
    name = await make_user(server, "owner")
    for width, height, scheme in ((1280, 900, "light"), (375, 812, "dark")):
        context = await browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        page = await login_page(context, base, name, PASSWORD)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(base + "/settings")
        await page.click("a:has-text('API tokens')")
        await page.wait_for_url(base + "/settings/tokens")
        await page.fill("input[name=name]", f"orders export {width}")
        await page.check("input[value='console.view']")
        await page.click("button:has-text('Make token')")
        await page.wait_for_selector("#token-alert:not([hidden])")
        token = await page.input_value("#token-value")
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/events", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
        row = page.locator(f"#tokens tr:has-text('orders export {width}')")
        await row.locator("text=active").wait_for()
        check_screenshot(await page.screenshot(full_page=True), f"settings-tokens-{width}-{scheme}")
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"horizontal scrolling at {width}px: {overflow}px"
        page.once("dialog", lambda d: d.accept())
        await row.locator("button:has-text('Revoke')").click()
        await row.locator("text=revoked").wait_for()
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/events", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 401
        assert errors == []
        await context.close()
