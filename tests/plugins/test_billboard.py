"""Billboard plugin without video: templates, the JSON API, uploads, display rules, settings, disabling.

The pixels in the program are checked with real aiortc peers in ``test_billboard_media.py``.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from PIL import Image

import lmserver_plugins.billboard as billboard
from lmserver.app import create_app
from lmserver.appkeys import BUS, CONFIG, DB, LIVE
from lmserver.config import ConfigError
from lmserver_plugins.billboard.render import TEMPLATES, render_text_billboard
from lmserver_plugins.billboard.store import Settings
from tests.conftest import login
from tests.livehelpers import make_event

API = "/api/plugins/billboard"


@pytest.fixture
def make_app(make_config: Any) -> Any:
    """``make_app(**billboard_settings)``: an app with the billboard plugin and that [plugins.billboard] table."""
    return lambda **settings: create_app(make_config(plugins={"billboard": settings}), plugins=(billboard,), load_entrypoints=False)


@pytest.fixture
async def staff(aiohttp_client: Any, make_app: Any) -> Any:
    """A client of an app with the billboard plugin, logged in as an assistant (CSRF header set)."""
    client = await aiohttp_client(make_app())
    client.session.headers["X-CSRF-Token"] = await login(client, "assistant")
    return client


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]["message"]


def png(size: tuple[int, int], mode: str = "RGBA", colour: Any = (0, 120, 255, 255)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def upload(data: bytes, filename: str = "banner.png", content_type: str = "image/png") -> FormData:
    form = FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    return form


def uploads(client: Any) -> list[Path]:
    return sorted((client.app[CONFIG].data_dir / "uploads").iterdir())


# --------------------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_templates_render_anti_aliased_rgba(template: str) -> None:
    img = render_text_billboard(template)
    assert img.mode == "RGBA" and img.width > 100 and img.height > 40
    alpha = np.asarray(img)[:, :, 3]
    assert alpha[0, 0] == 0, "outside the rounded shape stays transparent"
    assert alpha[img.height // 2, img.width // 2] == 255
    assert ((alpha > 0) & (alpha < 255)).any(), "the shape's edge is anti-aliased"
    grey = np.asarray(img.convert("L"))[alpha == 255]
    assert len(np.unique(grey)) > 20, "the text is anti-aliased (many levels between text and background)"


def test_render_text_colours_and_size() -> None:
    small = render_text_billboard("promo_code", "Use code SPRING", {"text": "#000000", "background": "#ffffff80"}, 24)
    big = render_text_billboard("promo_code", "Use code SPRING", None, 48)
    assert big.width > 1.8 * small.width
    centre = np.asarray(small)[small.height // 2, 3]
    assert tuple(centre) == (255, 255, 255, 128), "background colour with its transparency"
    with pytest.raises(ValueError, match="colour like #e11d48"):
        render_text_billboard("promo_code", colours={"text": "red"})
    with pytest.raises(ValueError, match="colour like #e11d48"):  # "$" alone would let a trailing newline through
        render_text_billboard("promo_code", colours={"text": "#ffffff\n"})
    with pytest.raises(ValueError, match="unknown template"):
        render_text_billboard("nope")
    with pytest.raises(ValueError, match="text is empty"):
        render_text_billboard("price", "   ")


# --------------------------------------------------------------------------------------------- settings


def test_settings_are_checked_with_their_key() -> None:
    assert Settings.from_table({}) == Settings(max_shown=2)
    assert Settings.from_table({"max_shown": 3}).max_shown == 3
    with pytest.raises(ConfigError, match=r"'plugins\.billboard\.max_shown' must be a whole number from 1 to 20, got 0"):
        Settings.from_table({"max_shown": 0})
    with pytest.raises(ConfigError, match=r"'plugins\.billboard\.max_image_bytes' must be"):
        Settings.from_table({"max_image_bytes": "big"})
    with pytest.raises(ConfigError, match=r"'plugins\.billboard\.colour' is not a setting"):
        Settings.from_table({"colour": "red"})


# --------------------------------------------------------------------------------------------- library


async def test_create_edit_preview_attach_delete(staff: Any) -> None:
    templates = (await ok(await staff.get(f"{API}/templates")))["templates"]
    assert {t["id"] for t in templates} >= {"free_shipping", "limited_stock", "promo_code", "price"}
    event_id = await make_event(staff.app)

    b = (await ok(await staff.post(f"{API}/billboards", json={"template": "free_shipping", "event_id": event_id}), 201))["billboard"]
    assert b["kind"] == "text" and b["text"] == "Free shipping today" and b["event_ids"] == [event_id] and not b["shown"]
    assert (b["x"], b["y"]) == (40, 40)

    preview = await staff.get(b["preview_url"])
    assert preview.status == 200 and preview.content_type == "image/png"
    img = Image.open(io.BytesIO(await preview.read()))
    assert img.size == (b["width"], b["height"]) and img.mode == "RGBA"

    # shorter text: the billboard keeps its scale, so it gets narrower
    edited = (await ok(await staff.patch(f"{API}/billboards/{b['id']}", json={"text": "Free shipping", "background_colour": "#000000"})))["billboard"]
    assert edited["text"] == "Free shipping" and edited["width"] < b["width"] and edited["background_colour"] == "#000000"
    moved = (await ok(await staff.patch(f"{API}/billboards/{b['id']}", json={"x": 300, "y": 200, "width": 200, "height": 40})))["billboard"]
    assert (moved["x"], moved["y"], moved["width"], moved["height"]) == (300, 200, 200, 40)
    assert "off the program" in await error(await staff.patch(f"{API}/billboards/{b['id']}", json={"x": 5000}), 400)
    assert "unknown fields" in await error(await staff.patch(f"{API}/billboards/{b['id']}", json={"colour": "#fff"}), 400)
    assert "font size" in await error(await staff.patch(f"{API}/billboards/{b['id']}", json={"font_size": 2}), 400)

    draft = await staff.get(f"{API}/preview.png", params={"template": "price", "text": "Only\n$9", "font_size": "30"})
    assert draft.status == 200 and Image.open(io.BytesIO(await draft.read())).mode == "RGBA"

    other = await make_event(staff.app, "Other show")
    listed = (await ok(await staff.get(f"{API}/billboards", params={"event_id": other})))["billboards"]
    assert [x["id"] for x in listed] == [b["id"]] and listed[0]["event_ids"] == [event_id]
    await ok(await staff.put(f"{API}/events/{other}/billboards/{b['id']}"))
    await ok(await staff.delete(f"{API}/events/{event_id}/billboards/{b['id']}"))
    assert (await ok(await staff.get(f"{API}/billboards/{b['id']}")))["billboard"]["event_ids"] == [other]
    assert "no event 999" in await error(await staff.put(f"{API}/events/999/billboards/{b['id']}"), 404)

    await ok(await staff.delete(f"{API}/billboards/{b['id']}"))
    assert "no billboard" in await error(await staff.get(f"{API}/billboards/{b['id']}"), 404)


async def test_staff_only_and_csrf(staff: Any, aiohttp_client: Any, make_app: Any) -> None:
    anonymous = await aiohttp_client(make_app())
    assert (await anonymous.get(f"{API}/billboards")).status == 401
    del staff.session.headers["X-CSRF-Token"]
    assert "CSRF" in await error(await staff.post(f"{API}/billboards", json={"template": "price"}), 403)


# --------------------------------------------------------------------------------------------- uploads


async def test_image_upload_keeps_transparency(staff: Any) -> None:
    img = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    img.paste((255, 200, 0, 255), (100, 100, 540, 380))
    out = io.BytesIO()
    img.save(out, "PNG")
    b = (await ok(await staff.post(f"{API}/billboards/image", data=upload(out.getvalue(), "sale.png")), 201))["billboard"]
    assert b["kind"] == "image" and b["name"] == "sale" and b["image_url"].startswith("/uploads/")
    assert b["width"] / b["height"] == pytest.approx(640 / 480, rel=0.02)
    preview = Image.open(io.BytesIO(await (await staff.get(b["preview_url"])).read()))
    alpha = np.asarray(preview)[:, :, 3]
    assert alpha[0, 0] == 0 and alpha[b["height"] // 2, b["width"] // 2] == 255
    files = uploads(staff)
    assert len(files) == 1
    await ok(await staff.delete(f"{API}/billboards/{b['id']}"))
    assert uploads(staff) == [], "deleting an image billboard removes its file"


def bomb() -> bytes:
    """A PNG of 8000×8000 pixels (64 megapixels) in a few kilobytes."""
    out = io.BytesIO()
    Image.new("1", (8000, 8000), 0).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize("case, data, filename, status, reason", [
    ("too small", png((479, 360)), "small.png", 400, "too small: 479×360 pixels, at least 480×360"),
    ("text named .png", b"hello, I am not an image\n" * 20, "fake.png", 415, "not an image"),
    ("decompression bomb", None, "bomb.png", 413, "too many pixels: 8000×8000 = 64,000,000, at most 40,000,000"),
    ("oversized file", None, "huge.png", 413, "too large: more than 300,000 bytes (plugins.billboard.max_image_bytes)"),
])
async def test_bad_uploads_are_refused_and_nothing_is_stored(aiohttp_client: Any, make_app: Any, case: str, data: bytes | None,
                                                             filename: str, status: int, reason: str) -> None:
    client = await aiohttp_client(make_app(max_image_bytes=300_000))
    client.session.headers["X-CSRF-Token"] = await login(client, "assistant")
    if case == "decompression bomb":
        data = bomb()
        assert len(data) < 300_000
    elif case == "oversized file":  # a real 640×480 image of noise: about 920 kB as PNG
        noise = np.random.default_rng(1).integers(0, 255, (480, 640, 3), np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise, "RGB").save(out, "PNG")
        data = out.getvalue()
        assert len(data) > 300_000
    assert data is not None
    message = await error(await client.post(f"{API}/billboards/image", data=upload(data, filename)), status)
    assert reason in message, message
    assert (await ok(await client.get(f"{API}/billboards")))["billboards"] == []
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM billboards") == 0
    assert uploads(client) == []


# --------------------------------------------------------------------------------------------- display rules (no video)


async def next_event(app: Any, name: str) -> Any:
    """A future resolved with the next bus record called ``name``."""
    fut = asyncio.get_running_loop().create_future()

    def listener(record: Any) -> None:
        if not fut.done():
            fut.set_result(record)

    app[BUS].on(name, listener)
    return fut


async def test_display_rules_and_stream_end(staff: Any) -> None:
    ids = [(await ok(await staff.post(f"{API}/billboards", json={"template": t}), 201))["billboard"]["id"]
           for t in ("free_shipping", "limited_stock", "promo_code")]
    assert "nothing is live" in await error(await staff.post(f"{API}/billboards/{ids[0]}/show"), 409)

    session = await staff.app[LIVE].begin("test", practice=True)
    async with staff.ws_connect("/ws/console") as ws:
        await ws.receive_json(timeout=5)  # hello
        shown = (await ok(await staff.post(f"{API}/billboards/{ids[0]}/show")))["billboard"]
        assert shown["shown"]
        msg = await ws.receive_json(timeout=5)
        assert msg["name"] == "billboard.shown" and msg["session_id"] == session.id and msg["practice"] is True
        assert msg["data"]["billboard_id"] == ids[0] and msg["data"]["x"] == 40
    await ok(await staff.post(f"{API}/billboards/{ids[0]}/show"))  # showing twice is harmless
    await ok(await staff.post(f"{API}/billboards/{ids[1]}/show"))
    message = await error(await staff.post(f"{API}/billboards/{ids[2]}/show"), 409)
    assert "most at once is 2 (plugins.billboard.max_shown): hide one first" in message
    await ok(await staff.post(f"{API}/billboards/{ids[1]}/hide"))
    await ok(await staff.post(f"{API}/billboards/{ids[2]}/show"))
    listed = {b["id"]: b["shown"] for b in (await ok(await staff.get(f"{API}/billboards")))["billboards"]}
    assert listed == {ids[0]: True, ids[1]: False, ids[2]: True}

    hidden = await next_event(staff.app, "billboard.hidden")
    await staff.app[LIVE].end("the host ended the stream")
    record = await asyncio.wait_for(hidden, 5)
    assert record.data["reason"] == "the stream ended" and record.session_id == session.id
    assert await staff.app[DB].fetchval("SELECT COUNT(*) FROM billboards WHERE shown_session_id IS NOT NULL") == 0


async def test_disabled_in_config_its_panel_and_routes_are_gone(aiohttp_client: Any, app_factory: Any) -> None:
    # as installed (entry point), enabled then disabled; the stream part is in test_billboard_media.py
    for disabled in ([], ["billboard"]):
        client = await aiohttp_client(app_factory(load_entrypoints=True, plugins={"disabled": disabled}))
        await login(client)
        there = not disabled
        assert ("billboard" in [p["name"] for p in await (await client.get("/-/plugins")).json()]) is there
        assert (await client.get(f"{API}/templates")).status == (200 if there else 404)
        assert (await client.get("/p/billboard/preview")).status == (200 if there else 404)
        assert (await client.get("/-/static/plugins/billboard/billboard.js")).status == (200 if there else 404)
        console = await client.get(f"/events/{await make_event(client.app)}/console")
        assert console.status == 200
        assert ("data-billboard-panel" in await console.text()) is there


async def test_portrait_phone_photo_is_shown_upright(staff: Any) -> None:
    """A JPEG stored 360×480 with EXIF orientation 6 is a 480×360 picture: accepted, sized and drawn upright."""
    from tests.test_images import rotated_jpeg

    form = upload(rotated_jpeg(360, 480, 6), "phone.jpg", "image/jpeg")
    b = (await ok(await staff.post(f"{API}/billboards/image", data=form), 201))["billboard"]
    assert b["width"] / b["height"] == pytest.approx(480 / 360, rel=0.02)
    preview = np.asarray(Image.open(io.BytesIO(await (await staff.get(b["preview_url"])).read())).convert("RGB"))
    h, w = preview.shape[:2]
    # the stored top-left marker is at the top-right once upright
    assert preview[h // 20, w - w // 20][0] > 200 and preview[h // 20, w // 20][0] < 80
