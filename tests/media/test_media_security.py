"""Media hardening: capture only from the allow-list, WHIP resources ended only by their publisher or
show.run, and a rotated stream key ends the stream published with the old one (API and CLI)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, web
from rtcclients import Publisher, Viewer

from lmserver import auth
from lmserver.appkeys import BUS, DB
from lmserver.config import ConfigError, load_config
from lmserver.media import ingest_whip


async def staff(studio: Any, role: str, name: str) -> tuple[ClientSession, dict[str, str]]:
    """A logged-in staff client of ``role`` (cookie jar) and its CSRF header."""
    await auth.create_user(studio.app[DB], name, role, "correct horse battery")
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    async with http.post(studio.base + "/api/login", json={"name": name, "password": "correct horse battery"}) as resp:
        assert resp.status == 200, await resp.text()
        return http, {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def test_capture_never_hands_a_request_string_to_ffmpeg(studio, aiohttp_server: Any) -> None:
    hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path} {request.headers.get('User-Agent', '')}")
        return web.Response(body=b"\xff\xd8 internal secret", content_type="image/jpeg")

    inner = web.Application()
    inner.router.add_route("*", "/{tail:.*}", internal)
    internal_server = await aiohttp_server(inner, host="127.0.0.1")
    url = f"http://127.0.0.1:{internal_server.port}/internal"
    database = str(studio.media.data_dir / "lmserver.sqlite3")
    headers = {"X-CSRF-Token": await studio.login()}  # the owner: even they cannot pass a device in a request

    bad_bodies: list[dict[str, Any]] = [
        {"device": url, "format": "mjpeg"},
        {"device": database, "format": "tty"},
        {"source": url},
        {"source": database},
        {"source": "tty:" + database},
        {"source": "lavfi:testsrc2", "format": "mjpeg"},
        {"source": "lavfi:testsrc2", "options": {"i": url}},
        {"source": "lavfi:testsrc2", "options": {"video_size": "640x480,movie=" + database}},
        {"source": "lavfi:testsrc2", "options": {"framerate": "30[out0];movie=" + database}},
        {"source": "lavfi:testsrc2", "options": {"pixel_format": "../../" + database}},
    ]
    for body in bad_bodies:
        async with studio.http.post(studio.base + "/api/media/capture", json=body, headers=headers) as resp:
            answer = await resp.json()
            assert resp.status == 400, (body, answer)
            assert "source" in answer["error"]["message"] or "option" in answer["error"]["message"], answer
        assert studio.media.ingest is None, body
    async with studio.http.get(studio.base + "/api/media/capture/sources") as resp:
        listed = await resp.json()
    assert {"lavfi:testsrc2", "lavfi:smptebars"} <= {s["id"] for s in listed["sources"]}
    assert not any(url in s["label"] or database in s["label"] for s in listed["sources"])
    async with studio.http.put(studio.base + "/api/media/capture/source", json={"source": url}, headers=headers) as resp:
        assert resp.status == 400
    assert hits == [], "the server fetched a URL given in a request"


def test_the_configuration_allows_network_sources_and_devices_never_files() -> None:
    def load(**media: Any) -> Any:
        return load_config(env={}, overrides={"media": media})

    ok = load(capture_sources=["rtsp://cam.studio.lan:554/stream1", "dshow:video=OBS Virtual Camera", "v4l2:/dev/video4"],
              capture_device="/dev/video0", capture_format="v4l2")
    assert len(ok.media.capture_sources) == 3
    for bad in (["/srv/data/lmserver.sqlite3"], ["file:///etc/passwd"], ["tty:/etc/passwd"], ["lavfi:movie=/etc/passwd"],
                ["v4l2:/etc/passwd"], ["concat:/a|/b"], ["http://"], ["rtsp://cam:port/x"]):
        with pytest.raises(ConfigError, match="media.capture_sources"):
            load(capture_sources=bad)
    for fmt, device in (("tty", "/etc/passwd"), ("lavfi", "testsrc"), ("", "/srv/data/lmserver.sqlite3")):
        with pytest.raises(ConfigError, match="media.capture_(format|device)"):
            load(capture_format=fmt, capture_device=device)


async def test_a_moderator_starts_only_the_source_the_owner_chose(studio) -> None:
    owner = {"X-CSRF-Token": await studio.login()}
    moderator, mod_h = await staff(studio, "moderator", "mod")
    assistant, asst_h = await staff(studio, "assistant", "asst")
    capture = studio.base + "/api/media/capture"
    try:
        async with assistant.get(capture + "/sources") as resp:
            assert resp.status == 403
        async with moderator.get(capture + "/sources") as resp:
            assert resp.status == 200 and (await resp.json())["selected"] is None
        async with moderator.post(capture, json={}, headers=mod_h) as resp:
            assert resp.status == 400 and "no capture source is chosen" in (await resp.json())["error"]["message"]
        async with moderator.post(capture, json={"source": "lavfi:smptebars"}, headers=mod_h) as resp:
            assert resp.status == 403 and "settings.manage" in (await resp.json())["error"]["message"]
        async with moderator.put(capture + "/source", json={"source": "lavfi:smptebars"}, headers=mod_h) as resp:
            assert resp.status == 403
        assert studio.media.ingest is None
        async with studio.http.put(capture + "/source", json={"source": "lavfi:testsrc2"}, headers=owner) as resp:
            assert resp.status == 200 and (await resp.json())["selected"] == "lavfi:testsrc2"
        async with moderator.post(capture, json={"source": "lavfi:smptebars"}, headers=mod_h) as resp:
            assert resp.status == 403
        # the chosen, allowed test pattern goes live for the moderator
        async with moderator.post(capture, json={"practice": True}, headers=mod_h) as resp:
            assert resp.status == 201, await resp.text()
            status = await resp.json()
        assert status["live"] and status["ingest"]["kind"] == "capture" and "Test pattern" in status["ingest"]["client"]
        program = studio.media.program
        for _ in range(200):  # bounded wait for encoded frames
            if program.frames_out > 3:
                break
            await asyncio.sleep(0.05)
        assert program.frames_out > 3
        async with moderator.delete(capture, headers=mod_h) as resp:
            assert resp.status == 200
        # the owner may start another source: it becomes the chosen one
        async with studio.http.post(capture, json={"source": "lavfi:smptebars", "practice": True}, headers=owner) as resp:
            assert resp.status == 201
        async with moderator.get(capture + "/sources") as resp:
            assert (await resp.json())["selected"] == "lavfi:smptebars"
        async with studio.http.post(studio.base + "/api/media/end", headers=owner) as resp:
            assert resp.status == 200
    finally:
        await moderator.close()
        await assistant.close()


async def test_only_the_publisher_or_show_run_ends_a_whip_stream(studio) -> None:
    moderator, mod_h = await staff(studio, "moderator", "mod")
    assistant, asst_h = await staff(studio, "assistant", "asst")
    publisher = Publisher()
    console = Publisher()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        ingest_id = publisher.location.rsplit("/", 1)[1]
        assert len(ingest_id) >= 22  # 128 random bits, like the WHEP viewer ids
        async with assistant.get(studio.base + "/api/media/status") as resp:
            shown = (await resp.json())["ingest"]
        assert shown["kind"] == "whip" and "id" not in shown and ingest_id not in str(shown)
        async with moderator.get(studio.base + "/api/media/status") as resp:
            assert (await resp.json())["ingest"]["id"] == ingest_id

        # a WHEP resource id is that viewer's capability: 128 random bits, not guessable
        viewer = Viewer(read=False)
        try:
            async with ClientSession() as audience:
                assert (await viewer.play(audience, studio.base))[0] == 201
                viewer_id = viewer.location.rsplit("/", 1)[1]
                assert len(viewer_id) >= 22 and viewer_id != ingest_id
                async with audience.delete(studio.base + "/whep/" + viewer_id[:-1] + ("A" if viewer_id[-1] != "A" else "B")) as resp:
                    assert resp.status == 404
                assert len(studio.media.viewers) == 1
        finally:
            await viewer.close()

        url = studio.base + publisher.location
        async with assistant.delete(url, headers=asst_h) as resp:
            assert resp.status == 403 and "show.run" in (await resp.json())["error"]["message"]
        async with assistant.patch(url, headers=asst_h) as resp:
            assert resp.status == 403
        async with ClientSession() as anonymous:
            async with anonymous.delete(url) as resp:
                assert resp.status == 401
            async with anonymous.delete(url, headers={"Authorization": "Bearer lms_not-the-key"}) as resp:
                assert resp.status == 401 and "published with" in (await resp.json())["error"]["message"]
            async with anonymous.patch(url) as resp:
                assert resp.status == 401
        assert studio.media.ingest is not None and studio.media.ingest.id == ingest_id
        async with studio.http.delete(url, headers=publisher.headers) as resp:  # OBS / FFmpeg: the key they published with
            assert resp.status == 200
        assert studio.media.ingest is None

        # a console publishing with its staff session: the stream key alone cannot end it, show.run can
        sdp = await console.offer()
        async with moderator.post(studio.base + "/whip?practice=1", data=sdp,
                                  headers={"Content-Type": "application/sdp", **mod_h}) as resp:
            assert resp.status == 201, await resp.text()
            location = resp.headers["Location"]
        async with ClientSession() as key_holder:
            async with key_holder.delete(studio.base + location, headers={"Authorization": f"Bearer {studio.key}"}) as resp:
                assert resp.status == 401
        assert studio.media.ingest is not None
        async with moderator.delete(studio.base + location, headers=mod_h) as resp:
            assert resp.status == 200
        assert studio.media.ingest is None
    finally:
        await publisher.close()
        await console.close()
        await moderator.close()
        await assistant.close()


async def test_rotating_the_key_in_the_settings_ends_the_stream_published_with_it(studio, monkeypatch: Any) -> None:
    monkeypatch.setattr(ingest_whip, "KEY_CHECK_SECONDS", 0.05)
    owner = {"X-CSRF-Token": await studio.login()}
    ended: list[str] = []
    studio.app[BUS].on("stream.ended", lambda record: ended.append(record.data.get("reason", "")))
    health = asyncio.Queue[None]()
    studio.app[BUS].on("stream.health", lambda record: health.put_nowait(None))
    rotate = studio.base + "/api/settings/stream-key/rotate"
    publisher = Publisher()
    obs = ClientSession()  # the publisher has no staff cookie, like OBS
    try:
        assert (await publisher.publish(obs, studio.base, studio.key))[0] == 201
        # keep it running: it runs on under the new key (the key watch sees many checks meanwhile)
        async with studio.http.post(rotate, json={"end_stream": False}, headers=owner) as resp:
            assert resp.status == 200 and (await resp.json())["ended_stream"] is False
        for _ in range(2):
            await asyncio.wait_for(health.get(), 10)
        assert studio.media.ingest is not None and not ended
        async with studio.http.post(rotate, json={"end_stream": "yes"}, headers=owner) as resp:
            assert resp.status == 400
        async with studio.http.post(rotate, headers=owner) as resp:  # default: end it
            answer = await resp.json()
        assert resp.status == 200 and answer["ended_stream"] is True
        assert studio.media.ingest is None and ended and "rotated" in ended[-1]
        # the old key publishes no more; the new one does
        again = Publisher()
        try:
            assert (await again.publish(obs, studio.base, studio.key))[0] == 401
            assert (await again.publish(obs, studio.base, answer["stream_key"]))[0] == 201
            async with obs.delete(studio.base + again.location, headers=again.headers) as resp:
                assert resp.status == 200
        finally:
            await again.close()
    finally:
        await obs.close()
        await publisher.close()


async def test_rotating_the_key_from_the_cli_ends_the_running_stream(studio) -> None:
    ended = asyncio.Event()
    reasons: list[str] = []

    def on_ended(record: Any) -> None:
        reasons.append(record.data.get("reason", ""))
        ended.set()

    studio.app[BUS].on("stream.ended", on_ended)
    publisher = Publisher()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lmserver", "stream-key", "--rotate", "--data-dir", str(studio.media.data_dir),
            cwd=str(studio.media.data_dir), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err
        new_key = out.decode().strip()
        assert new_key.startswith("lms_") and new_key != studio.key and b"ends a stream" in err
        await asyncio.wait_for(ended.wait(), 30)  # the server re-reads the key every KEY_CHECK_SECONDS
        assert studio.media.ingest is None and "rotated" in reasons[-1]
    finally:
        await publisher.close()
