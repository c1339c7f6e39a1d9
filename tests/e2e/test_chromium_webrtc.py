"""Headless Chromium with a fake camera publishes through /media/publish; another page plays the program."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.mark.parametrize("codec,logged_in", [("", False), ("H264", False), ("", True)])
async def test_chromium_publishes_and_another_page_plays(studio, browser, codec: str, logged_in: bool) -> None:
    context = await browser.new_context()
    try:
        if logged_in:  # a staff cookie in the browser: publishing and ending with the key must not need its CSRF token
            from lmserver import auth
            from lmserver.appkeys import DB
            from tests.browser import login_page

            await auth.create_user(studio.app[DB], "assistant1", "assistant", "correct horse battery")
            await (await login_page(context, studio.base, "assistant1", "correct horse battery")).close()
        from lmserver.appkeys import BUS

        reasons: list[str] = []
        studio.app[BUS].on("stream.ended", lambda record: reasons.append(record.data["reason"]))
        publisher = await context.new_page()
        await publisher.goto(studio.base + "/media/publish")
        await publisher.fill("#key", studio.key)
        if codec:
            await publisher.select_option("#codec", codec)
        await publisher.click("#go")
        await publisher.wait_for_selector("#status[data-state=live]", timeout=30_000)
        ingest = studio.media.ingest
        assert ingest is not None and ingest.kind == "whip" and ingest.client == "chrome"
        assert ingest.codec == (codec or "VP8")
        viewer = await context.new_page()
        await viewer.goto(studio.base + "/media/play")
        await viewer.wait_for_selector("#status[data-state=playing]", timeout=30_000)
        await viewer.wait_for_function("window.lmsFrames >= 30", timeout=30_000)
        size = await viewer.evaluate("[document.getElementById('program').videoWidth, document.getElementById('program').videoHeight]")
        assert size == [320, 240]  # the program size, whatever the camera sends
        status = studio.media.status()
        assert (status["viewers"], status["previews"]) == ((0, 1) if logged_in else (1, 0))  # staff watch a preview
        await publisher.click("#stop")
        await publisher.wait_for_selector("#status[data-state=idle]")
        for _ in range(100):  # bounded: the session ends as the page stops
            if reasons:
                break
            await asyncio.sleep(0.05)
        assert reasons == ["the host ended the stream"]  # the page's DELETE ended the session (not the lost connection)
    finally:
        await context.close()
