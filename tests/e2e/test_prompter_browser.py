"""The prompter in headless Chromium: a LIVE from a real WebRTC publisher whose audio is silence; viewers
leave (traffic drop, with "Start a giveaway" and "Pin a product": clicking pin pins), a link comment is
held and listed under Content quality, and the silent audio raises the diagnosis (health line red)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar

import lmserver_plugins.prompter as prompter
from lmserver import auth
from lmserver import api
from lmserver.api import Action, EventSpec, hookimpl
from lmserver.app import create_app
from lmserver.appkeys import BUS, DB, LIVE
from lmserver.config import load_config
from lmserver.media import MEDIA
from lmserver.media.app import setup_media
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD
from tests.livehelpers import make_event, make_product, new_viewer, vh
from tests.media.mediafixtures import MEDIA_OVERRIDES
from tests.media.rtcclients import Publisher


class Raffle:
    """A stand-in for a giveaway plugin: the event the prompter listens for, and the named action it runs."""

    PLUGIN_NAME = "raffle"

    def __init__(self) -> None:
        self.started: list[tuple[dict[str, Any], str]] = []

    @hookimpl
    def register_bus_events(self) -> list[EventSpec]:
        return [EventSpec("giveaway.started", "A giveaway started.", {"id": "its id"})]

    @hookimpl
    def register_actions(self) -> list[Action]:
        async def start(app: Any, params: dict[str, Any], user: Any) -> dict[str, Any]:
            self.started.append((params, user.name))
            await api.publish(app, "giveaway.started", {"id": 1})
            return {"text": "Raffle started"}
        return [Action("giveaway.start", "Start a giveaway", "console.view", start)]


async def test_traffic_drop_held_link_and_silent_audio_in_the_console(tmp_path: Path, aiohttp_server: Any, browser: Any) -> None:
    settings = {"silent_seconds": 3, "traffic_drop_window": 60, "traffic_drop_min_viewers": 10, "giveaway_after_seconds": 1}
    cfg = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path)}, "media": dict(MEDIA_OVERRIDES),
                                         "plugins": {"prompter": settings}})
    raffle = Raffle()
    app = create_app(cfg, plugins=(prompter, raffle), load_entrypoints=False)
    if MEDIA not in app:
        setup_media(app)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    await auth.create_user(app[DB], "host", "owner", PASSWORD)
    eid = await make_event(app, "Spring sale")
    mug = await make_product(app, "Blue mug", event_id=eid)
    publisher = Publisher()  # a pattern and an audio track of silence
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        status, body = await publisher.publish(http, base, await auth.stream_key(app[DB]))
        assert status == 201, body
        for _ in range(100):  # bounded: the session starts when the first frame is in
            if app[LIVE].current is not None:
                break
            await asyncio.sleep(0.1)
        session = app[LIVE].current
        assert session is not None and session.event_id == eid
        page = await login_page(context, base, "host", PASSWORD)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/events/{eid}/console")
        await page.click("[data-tab=suggestions]")

        # "Start a giveaway" does it: the button runs the giveaway plugin's named action (and the finding resolves)
        early = "#feed-suggestions .finding[data-key=early_giveaway]"
        await page.click(f"{early} button:has-text('Start a giveaway')", timeout=30_000)
        await page.wait_for_selector(f"{early}.status-resolved, {early}.status-dismissed")
        assert raffle.started == [({"event_id": eid}, "host")]

        # the silent publisher: LIVE diagnosis, and the health line turns red
        await page.wait_for_selector("#feed-suggestions .finding[data-key=silent_audio]", timeout=30_000)
        assert "microphone" in await page.inner_text("#feed-suggestions .finding[data-key=silent_audio]")
        await page.wait_for_selector("#health[data-level=critical]")

        # twelve viewers watch, then they leave (the audience the media server counts is 0)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # bounded: a few ticks see them
            await app[BUS].publish("viewer.joined", {"viewer_id": None, "viewers": 12, "peak": 12}, event_id=eid,
                                   session_id=session.id)
            await asyncio.sleep(0.3)
        drop = "#feed-suggestions .finding[data-key=traffic_drop]"
        await page.wait_for_selector(drop, timeout=20_000)
        labels = [await b.inner_text() for b in await page.query_selector_all(f"{drop} button")]
        assert "Start a giveaway" in labels and "Pin a product: Blue mug" in labels and "Dismiss" in labels, labels
        assert "viewers" in await page.inner_text(f"{drop} .trigger")
        check_screenshot(await page.screenshot(), "prompter-suggestions")
        await page.click(f"{drop} button:has-text('Pin a product')")
        for _ in range(100):  # bounded: the click calls the console's pin API
            if await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (session.id,)) == mug:
                break
            await asyncio.sleep(0.1)
        assert await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (session.id,)) == mug
        await page.wait_for_selector(f"{drop}.status-dismissed")  # acted: recorded with who and what
        f = await app[DB].fetchone("SELECT * FROM prompter_findings WHERE key = 'traffic_drop'")
        assert f["dismissed_by"] == "host" and f["acted"] == "Pin a product: Blue mug"

        # a viewer's link is held from viewers and listed under Content quality
        viewer = await new_viewer(app, "Spammer")
        async with http.post(f"{base}/api/e/{eid}/comments", json={"body": "cheap at https://spam.example"}, headers=vh(viewer)) as r:
            assert r.status == 201
        await page.click("[data-tab=quality]")
        await page.wait_for_selector("#feed-quality .finding.status-active")
        text = await page.inner_text("#feed-quality .finding")
        assert "contains a link" in text and "Spammer" in text and "Block Spammer" in text
        check_screenshot(await page.screenshot(), "prompter-content-quality")
        assert errors == []
    finally:
        await context.close()
        await publisher.close()
        await http.close()
