"""The viewer page's HLS fallback in Chromium: played through the vendored hls.js in low-latency mode when the
address asks for it (?hls=1) and when the server is full (WHEP 503); frames advance, parts are loaded with
blocking playlist reloads, the "a few s behind" pill shows."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar

from lmserver import auth
from lmserver.appkeys import CONFIG, DB
from tests.browser import check_screenshot
from tests.livehelpers import make_event
from tests.media.mediafixtures import make_app


async def playing(page: Any, seconds: float = 45) -> float:
    """Wait until the video's time advances by 2 s; returns its currentTime."""
    deadline = time.monotonic() + seconds
    first = None
    while time.monotonic() < deadline:
        t = await page.evaluate("document.getElementById('program').currentTime")
        if first is None and t > 0:
            first = t
        if first is not None and t - first >= 2:
            return t
        await asyncio.sleep(0.25)
    raise AssertionError(f"the HLS video did not play (currentTime {first})")


@pytest.mark.parametrize("how", ["forced", "full"])
async def test_viewer_plays_hls_when_asked_or_when_the_server_is_full(tmp_path: Any, aiohttp_server: Any, browser: Any, how: str) -> None:
    app = make_app(tmp_path, max_viewers=1)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    event_id = await make_event(app)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (event_id,))
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        await auth.create_user(app[DB], "host", "owner", "correct horse battery")
        async with http.post(base + "/api/login", json={"name": "host", "password": "correct horse battery"}) as resp:
            csrf = (await resp.json())["csrf_token"]
        async with http.post(base + "/api/media/capture", json={"source": "lavfi:testsrc2", "event_id": event_id},
                             headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 201, await resp.text()
        others = []
        if how == "full":  # the one WebRTC place is taken by another viewer page
            first = await browser.new_context(viewport={"width": 800, "height": 700})
            others.append(first)
            p1 = await first.new_page()
            await p1.goto(f"{base}/e/{slug}")
            await p1.wait_for_function("document.getElementById('program').srcObject && document.getElementById('program').currentTime > 0", timeout=30000)
        context = await browser.new_context(viewport={"width": 1000, "height": 800})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        await page.goto(f"{base}/e/{slug}" + ("?hls=1" if how == "forced" else ""))
        await playing(page)
        assert await page.is_visible("#hls-pill")
        # how far behind the wall clock the picture is (EXT-X-PROGRAM-DATE-TIME of the frame shown), for docs/scaling.md
        behind = await page.evaluate("(Date.now() - document.getElementById('program').lmsHls.playingDate.getTime()) / 1000")
        print(f"\nHLS ({how}): the picture shown is {behind:.1f} s behind the server's clock", end="")
        assert 0 < behind < 30
        assert any("/hls/" in u and u.endswith(".m4s") for u in requests)
        # LL-HLS: hls.js in lowLatencyMode asks for parts (seg<N>.<i>.m4s) and reloads the playlist blocking
        assert await page.evaluate("document.getElementById('program').lmsHls.config.lowLatencyMode") is True
        assert any(re.search(r"/hls/[^/]+/seg\d+\.\d+\.m4s$", u) for u in requests), requests
        assert any("index.m3u8?_HLS_msn=" in u for u in requests), requests
        assert any("/static/vendor/hls.js/hls.light.min.js" in u for u in requests)
        assert not any(u.startswith("http") and not u.startswith(base) for u in requests)  # nothing from the internet
        size = await page.evaluate("[document.getElementById('program').videoWidth, document.getElementById('program').videoHeight]")
        assert size == [app[CONFIG].media.width, app[CONFIG].media.height]
        check_screenshot(await page.screenshot(), f"viewer-hls-{how}")
        assert errors == []
        for c in [context, *others]:
            await c.close()
