"""The settings page's role table, generated from the permission registry, in a real browser; and a
plugin's menu link in the shell."""

from __future__ import annotations

from typing import Any

import lmserver_plugins.billboard as billboard

from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user


async def test_settings_role_table_and_plugin_menu_link(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    server = await aiohttp_server(app_factory(plugins=(billboard,)))
    base = f"http://127.0.0.1:{server.port}"
    name = await make_user(server, "owner")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await login_page(context, base, name, PASSWORD)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.click("nav.mainnav a:has-text('Billboards')")  # the plugin's menu_links
    await page.wait_for_url(base + "/p/billboard/preview")
    await page.goto(base + "/settings")
    rows = await page.eval_on_selector_all("#roles tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText.trim()))")
    by_name = {row[0].split(" ")[0]: row for row in rows}
    assert by_name["settings.manage"][2:] == ["✓", "", ""]
    assert by_name["show.run"][2:] == ["✓", "✓", ""]
    assert by_name["billboards.manage"][0] == "billboards.manage (billboard plugin)" and by_name["billboards.manage"][2:] == ["✓", "✓", "✓"]
    check_screenshot(await page.screenshot(full_page=True), "settings-roles-1280")
    assert errors == []
    await context.close()
