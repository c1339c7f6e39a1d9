"""A giveaway in headless Chromium: created in the console, the event goes live with a fake camera (WHIP),
three viewers enter (two by comment, one by follow), the countdown ends, the winners appear on the
console and on every viewer page, one claims, and the proof page's Verify says the draw checks out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

import lmserver_plugins.giveaway as giveaway
from lmserver import api
from lmserver.app import create_app
from lmserver.appkeys import DB
from lmserver.config import load_config
from lmserver.media import MEDIA
from lmserver.media.app import setup_media
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD
from tests.e2e.test_billboard_browser import GradientTrack
from tests.livehelpers import make_event, make_product
from tests.media.mediafixtures import MEDIA_OVERRIDES
from tests.media.rtcclients import Publisher
from tests.plugins.test_billboard_media import open_studio

API = "/api/plugins/giveaway"


async def listing(studio: Any, event_id: int) -> Any:
    async with studio.http.get(f"{studio.base}{API}/giveaways?event_id={event_id}") as resp:
        assert resp.status == 200
        return await resp.json()


def make_app(data_dir: Path) -> web.Application:
    cfg = load_config(env={}, overrides={"server": {"data_dir": str(data_dir)}, "live": {"comment_rate_seconds": 0},
                                         "media": {**MEDIA_OVERRIDES, "width": 640, "height": 360}})
    app = create_app(cfg, plugins=(giveaway,), load_entrypoints=False)
    if MEDIA not in app:
        setup_media(app)
    return app


async def test_giveaway_from_console_to_verified_proof(tmp_path: Path, aiohttp_server: Any, browser: Any) -> None:
    app = make_app(tmp_path)
    _, studio = await open_studio(app, aiohttp_server)
    event_id = await make_event(app, "Spring sale")
    await make_product(app, "Ceramic mug", stock=10, event_id=event_id)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (event_id,))
    publisher = Publisher(GradientTrack(), audio=False)
    console_ctx = await browser.new_context(viewport={"width": 1440, "height": 900})
    viewer_ctxs = [await browser.new_context(viewport={"width": 1024, "height": 800}) for _ in range(3)]
    errors: list[str] = []
    try:
        console = await login_page(console_ctx, studio.base, studio.owner, PASSWORD)
        console.on("pageerror", lambda exc: errors.append(str(exc)))
        await console.goto(f"{studio.base}/events/{event_id}/console")

        # create: one mug, one winner, comment WIN or follow
        await console.click("[data-gv-new]")
        await console.wait_for_selector("[data-gv-products] option", state="attached")
        await console.select_option("[data-gv-form] select[name=entry_mode]", "both")
        await console.fill("[data-gv-form] input[name=keyword]", "WIN")
        await console.check("[data-gv-form] input[name=accept_terms]")
        check_screenshot(await console.screenshot(), "giveaway-create")
        await console.click("[data-gv-create]")
        await console.wait_for_selector(".gv-item[data-status=ready]")

        # go live with the fake camera, then start
        status, _ = await publisher.publish(studio.http, studio.base, studio.key, query=f"?event={event_id}")
        assert status == 201
        await console.reload()
        await console.click(".gv-item [data-act=start]")
        await console.wait_for_selector(".gv-item[data-status=running]")
        [g] = (await listing(studio, event_id))["giveaways"]

        # three viewers: two comment the keyword, one follows
        viewers = []
        for n, ctx in enumerate(viewer_ctxs):
            page = await ctx.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{studio.base}/e/{slug}")
            await page.wait_for_selector("[data-giveaway-card]:not([hidden])")
            await page.evaluate("nick => LMS.api('POST', '/api/viewer/nickname', {nickname: nick})", f"fan{n}")
            viewers.append(page)
        for page in viewers[:2]:
            await page.evaluate("id => LMS.api('POST', `/api/e/${id}/comments`, {body: ' win '})", event_id)
        await viewers[2].evaluate("id => LMS.api('POST', `/api/e/${id}/follow`)", event_id)
        for page in viewers:
            await page.wait_for_selector("[data-gv-in]:not([hidden])")
        await console.wait_for_function("document.querySelector('.gv-item [data-gv-entries]').textContent === '3'")
        check_screenshot(await viewers[0].screenshot(), "giveaway-viewer-card")
        check_screenshot(await console.screenshot(), "giveaway-console-running")

        # the countdown ends (its timer, due now instead of in a minute)
        await api.schedule_at(app, time.time(), f"giveaway:{g['id']}", "giveaway.draw", {"giveaway_id": g["id"]})
        await console.wait_for_selector(".gv-item[data-status=drawn] [data-gv-winners]")
        for page in viewers:
            await page.wait_for_selector("[data-gv-winners]:not([hidden])")
        [g] = (await listing(studio, event_id))["giveaways"]
        winner = g["draws"][0]["winners"][0]["nickname"]
        assert winner in ("fan0", "fan1", "fan2")
        page = viewers[int(winner[-1])]
        await page.wait_for_selector("[data-gv-claim]:not([hidden])")
        await page.fill("[data-gv-claim] input[name=name]", "Ann Lee")
        await page.fill("[data-gv-claim] input[name=email]", "ann@example.com")
        await page.fill("[data-gv-claim] textarea[name=address]", "1 Main Street, Springfield")
        check_screenshot(await page.screenshot(), "giveaway-viewer-claim")
        await page.click("[data-gv-claim] button[type=submit]")
        await page.wait_for_selector("[data-gv-claimed]:not([hidden])")

        # the proof page: Verify recomputes it in the browser
        proof = await console_ctx.new_page()
        await proof.goto(studio.base + g["proof_url"])
        await proof.click("[data-verify]")
        result = await proof.wait_for_selector("[data-verify-result]:not([hidden])")
        assert "Verified" in await result.text_content()
        check_screenshot(await proof.screenshot(full_page=True), "giveaway-proof")
        await console.reload()
        await console.wait_for_selector(".gv-item[data-status=drawn]")
        check_screenshot(await console.screenshot(), "giveaway-console-drawn")
        assert errors == []
    finally:
        for ctx in (console_ctx, *viewer_ctxs):
            await ctx.close()
        await publisher.close()
        await studio.http.close()
