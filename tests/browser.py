"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the end-to-end tests."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LMSERVER_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]

SCREENSHOTS = Path(os.environ.get("LMSERVER_SCREENSHOTS", Path(__file__).resolve().parent.parent / "test-results" / "screenshots"))


async def launch(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (make test does)")
    return await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


async def login_page(context: Any, base_url: str, name: str, password: str) -> Any:
    page = await context.new_page()
    await page.goto(base_url + "/login")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(base_url + "/")
    return page


def check_screenshot(png: bytes, name: str) -> dict[str, float]:
    """Save the screenshot and check it is not blank: many colours, real contrast."""
    from PIL import Image, ImageStat

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.png").write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    stat = ImageStat.Stat(img.convert("L"))
    colours = len(img.getcolors(maxcolors=1 << 20) or [])
    assert stat.stddev[0] > 8, f"screenshot {name} looks blank (stddev {stat.stddev[0]:.1f})"
    assert colours > 50, f"screenshot {name} has only {colours} colours"
    return {"stddev": stat.stddev[0], "colours": colours}
