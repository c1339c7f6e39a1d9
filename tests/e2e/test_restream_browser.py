"""Restream in headless Chromium: the owner adds destinations in Settings (a missing key is refused with a
clear message; the key is shown masked), then the console shows each destination's state during a LIVE
(live with bitrate, retrying in N s, the refusing port's error) and stops one. Screenshots: desktop, and a
phone (375×812) in dark mode (saved to test-results/screenshots; docs/restream-*.png are copies of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nginxrtmp import NginxRtmp, free_port
from test_restream import LAVFI, _studio, _until, _state

from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD
from tests.livehelpers import make_event


async def test_settings_and_console_restream(tmp_path: Path, aiohttp_server: Any, browser: Any) -> None:
    nginx = NginxRtmp(tmp_path / "nginx")
    await nginx.start()
    studio, http = await _studio(tmp_path, aiohttp_server, width=640, height=360)
    event_id = await make_event(studio.app, "Spring sale")
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        headers = {"X-CSRF-Token": await studio.login(name="host")}
        page = await login_page(context, studio.base, "host", PASSWORD)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(studio.base + "/settings")
        form = "#restream-form"
        await page.wait_for_selector(f"{form} select[name=preset] option[value=twitch]", state="attached")
        # Twitch without its key: a clear error, nothing stored
        await page.select_option(f"{form} select[name=preset]", "twitch")
        assert await page.input_value(f"{form} input[name=url]") == "rtmp://live.twitch.tv/app"
        assert "6 Mbit/s" in await page.inner_text("#restream-needs")
        await page.click(f"{form} button.btn-primary")
        await page.wait_for_selector("#restream-error:not([hidden])")
        assert "stream key" in await page.inner_text("#restream-error")
        # two real ones: nginx on loopback, and a port that refuses
        for name, url, key in (("Studio nginx", f"rtmp://127.0.0.1:{nginx.port}/live", "abcdefgh-studio-1234"),
                               ("Backup server", f"rtmp://127.0.0.1:{free_port()}/live", "backup-key-5678")):
            await page.select_option(f"{form} select[name=preset]", "custom")
            await page.fill(f"{form} input[name=name]", name)
            await page.fill(f"{form} input[name=url]", url)
            await page.fill(f"{form} input[name=key]", key)
            await page.click(f"{form} button.btn-primary")
            await page.wait_for_function("(n) => document.querySelectorAll('#restream-destinations [data-edit]').length === n",
                                         arg=1 if name == "Studio nginx" else 2)
        listing = await page.inner_text("#restream-destinations")
        assert "••••1234" in listing and "abcdefgh" not in listing and "Studio nginx" in listing
        await page.evaluate("document.getElementById('toast').className = 'toast'")
        check_screenshot(await page.locator("#restream-card").screenshot(), "restream-settings")

        async with studio.http.post(studio.base + "/api/media/capture", json={**LAVFI, "event_id": event_id}, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        [nginx_id, backup_id] = [d["id"] for d in studio.media.restream.status()]
        await _until(studio, "one live, one retrying", lambda: _state(studio, nginx_id)["state"] == "live"
                     and _state(studio, backup_id)["cause"] == "refused")
        await page.goto(f"{studio.base}/events/{event_id}/console")
        panel = page.locator("#restream-panel")
        await page.wait_for_selector("#restream-panel:not([hidden]) [data-state=live]")
        await page.wait_for_function("document.querySelector('#restream-panel').textContent.includes('refused')")
        await page.wait_for_function("document.querySelector('#program-preview').readyState >= 2")
        await page.wait_for_function("() => /[1-9][0-9]* kbit\\/s/.test(document.querySelector('#restream-panel').textContent)")
        text = await panel.inner_text()
        assert "kbit/s" in text and "Studio nginx" in text and "Backup server" in text
        check_screenshot(await page.screenshot(), "restream-console")
        check_screenshot(await panel.screenshot(), "restream-console-panel")
        # stop the failing one from the console: the other keeps streaming
        await page.click(f"#restream-panel [data-stop='{backup_id}']")
        await page.wait_for_selector(f"#restream-panel [data-id='{backup_id}'] [data-state=stopped]")
        assert _state(studio, nginx_id)["state"] == "live"

        phone = await browser.new_context(viewport={"width": 375, "height": 812}, color_scheme="dark", is_mobile=True)
        try:
            mpage = await login_page(phone, studio.base, "host", PASSWORD)
            await mpage.goto(f"{studio.base}/events/{event_id}/console")
            await mpage.wait_for_selector("#restream-panel:not([hidden]) [data-state=live]")
            await mpage.locator("#restream-panel").scroll_into_view_if_needed()
            check_screenshot(await mpage.screenshot(), "restream-console-375x812-dark")
            check_screenshot(await mpage.locator("#restream-panel").screenshot(), "restream-console-phone-dark")
            overflow = await mpage.evaluate("document.querySelector('#restream-panel').scrollWidth"
                                            " - document.querySelector('#restream-panel').clientWidth")
            assert overflow <= 1, "the restream panel overflows a phone's width"
        finally:
            await phone.close()
        assert errors == []
        async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
            assert resp.status == 200
    finally:
        await context.close()
        await studio.http.close()
        await nginx.stop()
