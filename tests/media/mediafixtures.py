"""Shared fixtures of the media and e2e tests: a real lmserver app with the media core, on loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import ClientSession, CookieJar, web


from lmserver import auth  # noqa: E402
from lmserver.app import create_app  # noqa: E402
from lmserver.appkeys import DB  # noqa: E402
from lmserver.config import load_config  # noqa: E402
from lmserver.media import MEDIA  # noqa: E402
from lmserver.media.app import setup_media  # noqa: E402

MEDIA_OVERRIDES: dict[str, Any] = {
    "ice_host_addresses": ["127.0.0.1"],
    "width": 320,
    "height": 240,
    "video_bitrate": 500_000,
    "keyframe_min_interval": 0.2,
    "capture_lavfi": True,  # the test patterns are capture sources here
}


class Studio:
    def __init__(self, app: web.Application, base: str, http: ClientSession, key: str) -> None:
        self.app, self.base, self.http, self.key = app, base, http, key

    @property
    def media(self):  # type: ignore[no-untyped-def]
        return self.app[MEDIA]

    async def login(self, role: str = "owner", name: str = "host") -> str:
        """Log this client in as staff (cookie); returns the CSRF token."""
        await auth.create_user(self.app[DB], name, role, "correct horse battery")
        async with self.http.post(self.base + "/api/login", json={"name": name, "password": "correct horse battery"}) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["csrf_token"]


def make_app(tmp_path: Path, **media: Any) -> web.Application:
    cfg = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path)}, "media": {**MEDIA_OVERRIDES, **media}})
    app = create_app(cfg, load_entrypoints=False)
    if MEDIA not in app:  # until the core calls setup_media itself
        setup_media(app)
    return app


@pytest.fixture
async def studio(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Studio]:
    app = make_app(tmp_path)
    server = await aiohttp_server(app, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        key = await auth.stream_key(app[DB])
        yield Studio(app, base, http, key)
