"""Billboards in the program video, checked in what a real aiortc WHEP viewer decodes.

A grey pattern is published over WHIP (practice); a billboard is displayed, moved, hidden; each time
the viewer's decoded frames must show the billboard's own pixels (as the plugin draws them, blended
over the grey) at its saved position, within codec tolerance, and the plain grey elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import av
import numpy as np
import pytest
from aiohttp import ClientSession, CookieJar, web

import lmserver_plugins.billboard as billboard
from lmserver import auth
from lmserver.app import create_app
from lmserver.appkeys import CONFIG, DB, LIVE
from lmserver.config import load_config
from lmserver.media import MEDIA
from lmserver.media.app import setup_media
from lmserver_plugins.billboard.service import draw, layer_name
from tests.conftest import PASSWORD
from tests.media.mediafixtures import MEDIA_OVERRIDES
from tests.media.rtcclients import Publisher, Viewer, rgb

API = "/api/plugins/billboard"
GREY = 128
#: mean absolute error allowed between the expected and the decoded billboard (H.264 at 500 kbit/s, 320×240)
TOLERANCE = 14


class Studio:
    """A running server with the billboard plugin; ``http`` is logged in as ``owner`` (CSRF header set)."""

    def __init__(self, app: web.Application, base: str, http: ClientSession, key: str, owner: str) -> None:
        self.app, self.base, self.http, self.key, self.owner = app, base, http, key, owner

    async def api(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        async with self.http.request(method, self.base + API + path, **kwargs) as resp:
            body = await resp.json()
            assert resp.status == status, body
            return body


def make_app(data_dir: Path, media: dict[str, Any] | None = None, **plugins: Any) -> web.Application:
    """The app with the media core and the billboard plugin; ``plugins``: the ``[plugins]`` section."""
    cfg = load_config(env={}, overrides={"server": {"data_dir": str(data_dir)}, "media": {**MEDIA_OVERRIDES, **(media or {})},
                                         "plugins": plugins})
    app = create_app(cfg, plugins=(billboard,), load_entrypoints=False)
    if MEDIA not in app:  # until the core calls setup_media itself
        setup_media(app)
    return app


async def open_studio(app: web.Application, aiohttp_server: Any) -> tuple[Any, Studio]:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))  # cookies from 127.0.0.1
    name = f"host{server.port}"
    await auth.create_user(app[DB], name, "owner", PASSWORD)
    async with http.post(base + "/api/login", json={"name": name, "password": PASSWORD}) as resp:
        assert resp.status == 200
        http.headers["X-CSRF-Token"] = (await resp.json())["csrf_token"]
    return server, Studio(app, base, http, await auth.stream_key(app[DB]), name)


@pytest.fixture
async def studio(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Studio]:
    _, s = await open_studio(make_app(tmp_path), aiohttp_server)
    try:
        yield s
    finally:
        await s.http.close()


def expected_region(b: dict[str, Any], app: web.Application) -> np.ndarray:
    """The billboard as the plugin draws it, blended over the grey test pattern (RGB floats)."""
    rgba = np.asarray(draw(b, app[CONFIG].data_dir), np.float32)
    alpha = rgba[:, :, 3:] / 255.0
    return rgba[:, :, :3] * alpha + GREY * (1 - alpha)


def region(frame: np.ndarray, b: dict[str, Any]) -> np.ndarray:
    return frame[b["y"]: b["y"] + b["height"], b["x"]: b["x"] + b["width"]].astype(np.float32)


async def frame_after(viewer: Viewer, frames: int = 12) -> np.ndarray:
    """A frame decoded well after now (the layer change has gone through encode and decode)."""
    await viewer.wait_frames(viewer.count + frames)
    return rgb(viewer.frames[-1])


def assert_billboard_at(frame: np.ndarray, b: dict[str, Any], app: web.Application) -> None:
    expected = expected_region(b, app)
    assert np.abs(expected - GREY).mean() > 3 * TOLERANCE, "the billboard must differ from the background to be seen"
    error = np.abs(region(frame, b) - expected).mean()
    print(f"billboard {b['id']} at ({b['x']}, {b['y']}): mean error {error:.1f}")
    assert error < TOLERANCE, f"billboard {b['id']} not found at ({b['x']}, {b['y']}): mean error {error:.1f}"


def assert_plain(frame: np.ndarray, b: dict[str, Any]) -> None:
    error = np.abs(region(frame, b) - GREY).mean()
    assert error < 6, f"the program is not plain at ({b['x']}, {b['y']}): mean error {error:.1f}"


async def test_display_move_hide_in_the_decoded_program(studio: Studio) -> None:
    publisher, viewer = Publisher(), Viewer(keep=2)
    try:
        status, body = await publisher.publish(studio.http, studio.base, studio.key, query="?practice=1")
        assert status == 201, body
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        created = (await studio.api("POST", "/billboards", 201, json={"template": "limited_stock", "text": "Only 3 left"}))["billboard"]
        b = (await studio.api("PATCH", f"/billboards/{created['id']}", json={"x": 20, "y": 30}))["billboard"]
        assert b["width"] <= 240 and b["height"] >= 20
        frame = await frame_after(viewer)
        assert_plain(frame, b)

        shown = (await studio.api("POST", f"/billboards/{b['id']}/show"))["billboard"]
        assert shown["shown"]
        assert [layer.name for layer in studio.app[MEDIA].compositor.layers()] == [layer_name(b["id"])]
        assert_billboard_at(await frame_after(viewer), b, studio.app)

        moved = (await studio.api("PATCH", f"/billboards/{b['id']}", json={"x": 60, "y": 160}))["billboard"]
        frame = await frame_after(viewer)
        assert_billboard_at(frame, moved, studio.app)
        assert_plain(frame, b)

        await studio.api("POST", f"/billboards/{b['id']}/hide")
        frame = await frame_after(viewer)
        assert_plain(frame, moved)
        assert studio.app[MEDIA].compositor.layers() == []

        # the recording has it too, at both places
        async with studio.http.delete(studio.base + publisher.location) as resp:
            assert resp.status == 200
        [recording] = (studio.app[CONFIG].data_dir / "recordings").glob("*.mp4")
        with av.open(str(recording)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for place in (b, moved):
            errors = [np.abs(region(f, place) - expected_region(place, studio.app)).mean() for f in frames]
            assert min(errors) < TOLERANCE, f"the recording never shows the billboard at ({place['x']}, {place['y']})"
    finally:
        await viewer.close()
        await publisher.close()


async def test_shown_again_when_the_session_resumes_after_a_restart(tmp_path: Path, aiohttp_server: Any) -> None:
    # First run: a practice session with a billboard shown, then the server goes away without the
    # session ending (as in a crash: no stream.ended).
    app = make_app(tmp_path)
    server, first = await open_studio(app, aiohttp_server)
    session = await app[LIVE].begin("whip", practice=True)
    b = (await first.api("POST", "/billboards", 201, json={"template": "promo_code"}))["billboard"]
    await first.api("POST", f"/billboards/{b['id']}/show")
    app[LIVE].current = None  # the process dies here: the session stays open in the database
    await first.http.close()
    await server.close()

    # Second run on the same data directory: the studio goes live again, the session resumes.
    app = make_app(tmp_path)
    _, second = await open_studio(app, aiohttp_server)
    publisher, viewer = Publisher(), Viewer(keep=2)
    try:
        assert (await publisher.publish(second.http, second.base, second.key, query="?practice=1"))[0] == 201
        assert app[LIVE].current is not None and app[LIVE].current.id == session.id and app[LIVE].current.resumed
        assert [layer.name for layer in app[MEDIA].compositor.layers()] == [layer_name(b["id"])]
        assert (await second.api("GET", f"/billboards/{b['id']}"))["billboard"]["shown"]
        assert (await viewer.play(second.http, second.base))[0] == 201
        assert_billboard_at(await frame_after(viewer), b, app)

        # The stream ends: the billboard is hidden, and stays hidden in the next session.
        async with second.http.delete(second.base + publisher.location) as resp:
            assert resp.status == 200
        await viewer.close()
        await publisher.close()
        publisher, viewer = Publisher(), Viewer(keep=2)
        assert (await publisher.publish(second.http, second.base, second.key, query="?practice=1"))[0] == 201
        assert app[MEDIA].compositor.layers() == []
        assert not (await second.api("GET", f"/billboards/{b['id']}"))["billboard"]["shown"]
    finally:
        await viewer.close()
        await publisher.close()
        await second.http.close()


async def test_disabled_plugin_the_stream_still_runs(tmp_path: Path, aiohttp_server: Any) -> None:
    app = make_app(tmp_path, disabled=["billboard"])
    _, studio = await open_studio(app, aiohttp_server)
    publisher, viewer = Publisher(), Viewer(keep=2)
    try:
        async with studio.http.get(studio.base + API + "/templates") as resp:
            assert resp.status == 404
        assert (await publisher.publish(studio.http, studio.base, studio.key, query="?practice=1"))[0] == 201
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        frame = await frame_after(viewer, 10)
        assert frame.shape == (240, 320, 3) and abs(frame.mean() - GREY) < 6
    finally:
        await viewer.close()
        await publisher.close()
        await studio.http.close()
