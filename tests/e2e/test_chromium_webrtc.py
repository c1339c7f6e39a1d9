"""Headless Chromium with a fake camera publishes through /media/publish; another page plays the program."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.mark.parametrize("codec", ["", "H264"])
async def test_chromium_publishes_and_another_page_plays(studio, browser, codec: str) -> None:
    context = await browser.new_context()
    try:
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
        assert studio.media.status()["viewers"] == 1
        await publisher.click("#stop")
        await publisher.wait_for_selector("#status[data-state=idle]")
        assert studio.media.ingest is None  # the page's DELETE ended the session
    finally:
        await context.close()
