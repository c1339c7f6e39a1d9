"""The optional flash-sale banner on the program video (``[plugins.flashsale] banner = true``): a compositor layer in
the countdown band, blended into a real PyAV program frame; its text follows the countdown and "N of M sold"; it
goes when the sale ends; off by default."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import av
import numpy as np
import pytest

import lmserver_plugins.flashsale as flashsale
from lmserver import api
from lmserver.api import ConfigError
from lmserver_plugins.flashsale.banner import PREFIX, SHOWN, Z
from lmserver_plugins.flashsale.store import Settings
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie
from tests.media.mediafixtures import MEDIA_OVERRIDES
from tests.plugins.flashsalehelpers import buy, create, launch, make_app, ok, start_now

GREY = 128


def grey_frame(app: Any) -> av.VideoFrame:
    w, h = api.program_size(app)
    frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), GREY, np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    return frame


def program_with_banner(app: Any, sale_id: int) -> tuple[np.ndarray, Any]:
    """A grey program frame through the program's compositor (as the encoder gets it), and the banner's layer."""
    [layer] = [layer for layer in api.compositor(app).layers() if layer.name == f"{PREFIX}{sale_id}"]
    out = api.compositor(app).composite(grey_frame(app)).to_ndarray(format="rgb24").astype(np.float32)
    return out, layer


def assert_banner_shown(app: Any, sale_id: int) -> tuple[Any, ...]:
    frame, layer = program_with_banner(app, sale_id)
    key, image = app[SHOWN][sale_id]
    rgba = np.asarray(image, np.float32)
    alpha = rgba[:, :, 3:] / 255.0
    expected = rgba[:, :, :3] * alpha + GREY * (1 - alpha)
    region = frame[layer.y: layer.y + layer.height, layer.x: layer.x + layer.width]
    assert np.abs(expected - GREY).mean() > 30, "the banner stands out from the picture"
    error = np.abs(region - expected).mean()
    assert error < 6, f"the banner is not in the program frame at ({layer.x}, {layer.y}): mean error {error:.1f}"
    outside = frame[: layer.y - 2]
    assert np.abs(outside - GREY).mean() < 2, "the rest of the picture is untouched"
    assert api.Z_COUNTDOWN <= layer.z < api.Z_ALERT and layer.z == Z
    return key[0]


@pytest.fixture
async def client(aiohttp_client: Any, make_config: Any) -> Any:
    return await aiohttp_client(make_app(lambda **s: make_config(media=dict(MEDIA_OVERRIDES), **s), banner=True))


async def test_the_banner_follows_the_sale_on_the_program(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client, "assistant")
    eid = await make_event(app)
    pid = await make_product(app, "Blue mug", stock=20, price_cents=1000, event_id=eid)
    sale = await create(client, staff, eid, pid, allocated=2, countdown_seconds=30)
    session = await go_live(app, eid)
    await launch(client, staff, sale["id"], start=False)
    await flashsale.tick(app, session, time.time())
    head, deal, clock, count, _ = assert_banner_shown(app, sale["id"])
    assert "FLASH SALE" in head and "Blue mug" in head and deal == "5.00 USD"
    assert clock.startswith("Starts in 0:") and count == "0 of 2 sold"

    await start_now(app, sale["id"])
    viewer = await new_viewer(app)
    await ok(await buy(client, viewer, eid, pid, 1, f"flashsale:{sale['id']}"), 201)
    await flashsale.tick(app, session, time.time())
    _, _, clock, count, share = assert_banner_shown(app, sale["id"])
    assert clock.startswith("Ends in 4:") or clock.startswith("Ends in 5:0")
    assert count == "1 of 2 sold" and share == 0.5
    await ok(await buy(client, viewer, eid, pid, 1, f"flashsale:{sale['id']}"), 201)
    await flashsale.tick(app, session, time.time())
    assert assert_banner_shown(app, sale["id"])[3] == "SOLD OUT"

    await ok(await client.post(f"/api/plugins/flashsale/sales/{sale['id']}/end", headers=staff))
    async with asyncio.timeout(10):  # bounded: flashsale.ended reaches the plugin through the bus
        while any(layer.name.startswith(PREFIX) for layer in api.compositor(app).layers()):
            await asyncio.sleep(0.02)
    assert sale["id"] not in app[SHOWN]


async def test_the_banner_is_off_by_default(aiohttp_client: Any, make_config: Any) -> None:
    client = await aiohttp_client(make_app(lambda **s: make_config(media=dict(MEDIA_OVERRIDES), **s)))
    app = client.app
    staff = await staff_cookie(client, "assistant")
    eid = await make_event(app)
    pid = await make_product(app, stock=20, price_cents=1000, event_id=eid)
    sale = await create(client, staff, eid, pid)
    session = await go_live(app, eid)
    await launch(client, staff, sale["id"])
    await flashsale.tick(app, session, time.time())
    assert api.compositor(app).layers() == []


def test_the_banner_setting_is_checked() -> None:
    assert Settings() == Settings(hold_minutes=5, banner=False)
    assert Settings.from_table({"banner": True}).banner
    with pytest.raises(ConfigError, match="'plugins.flashsale.banner' must be true or false"):
        Settings.from_table({"banner": "yes"})
