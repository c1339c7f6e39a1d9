"""Restream destinations against real servers: nginx-rtmp (RTMP, RTMPS through nginx's TLS terminator, a
key refused by on_publish), a port that refuses, nginx killed and started again, the slate on an ingest
drop, and the Settings API's validation. The program arrives, decodes with PyAV, and the billboard's
pixels are in it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
from aiohttp import ClientSession, CookieJar, web
from mediafixtures import Studio, make_app
from nginxrtmp import NginxRtmp, free_port
from rtcclients import Viewer, rgb

from lmserver import auth
from lmserver.appkeys import BUS, DB

LAVFI = {"source": "lavfi:testsrc2"}
BLUE = np.full((40, 320, 4), (0, 0, 255, 255), np.uint8)


async def _studio(tmp_path: Path, aiohttp_server: Any, **media: Any) -> tuple[Studio, ClientSession]:
    app = make_app(tmp_path / "studio", **media)
    server = await aiohttp_server(app, host="127.0.0.1")
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    return Studio(app, f"http://127.0.0.1:{server.port}", http, await auth.stream_key(app[DB])), http


async def _add(studio: Studio, headers: dict[str, str], **body: Any) -> int:
    async with studio.http.post(studio.base + "/api/restream/destinations", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["destination"]["id"])


def _state(studio: Studio, dest_id: int) -> dict[str, Any]:
    return next(d for d in studio.media.restream.status() if d["id"] == dest_id)


async def _until(studio: Studio, what: str, check: Callable[[], bool], seconds: float = 40.0) -> None:
    """Wait (bounded) until ``check()`` holds, re-checking on each restream.state record and every 0.2 s."""
    changed = asyncio.Event()
    studio.app[BUS].on("restream.state", lambda record: changed.set())
    for _ in range(int(seconds / 0.2)):
        if check():
            return
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    raise AssertionError(f"{what}: {studio.media.restream.status()}")


def _video(path: Path) -> tuple[list[av.VideoFrame], list[float], int]:
    """Decoded frames, video packet times (s) and decoded AAC frames of an FLV recording."""
    frames, times = [], []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.pts is not None:
                times.append(float(packet.pts * packet.time_base))
            frames.extend(packet.decode())
    with av.open(str(path)) as container:
        audio = sum(1 for _ in container.decode(audio=0)) if container.streams.audio else 0
    return frames, times, audio


async def test_rtmp_rtmps_refused_auth_and_restart(tmp_path: Path, aiohttp_server: Any) -> None:
    async def on_publish(request: web.Request) -> web.Response:  # nginx-rtmp's on_publish: 2xx accepts, else refused
        form = await request.post()
        return web.Response(status=200 if form.get("name") == "good" else 403)

    auth_app = web.Application()
    auth_app.router.add_post("/auth", on_publish)
    auth_server = await aiohttp_server(auth_app, host="127.0.0.1")
    nginx = NginxRtmp(tmp_path / "nginx", auth_url=f"http://127.0.0.1:{auth_server.port}/auth")
    await nginx.start()
    studio, http = await _studio(tmp_path, aiohttp_server, restream_ca_file=str(nginx.cert))
    try:
        headers = {"X-CSRF-Token": await studio.login()}
        rtmp = await _add(studio, headers, preset="custom", name="nginx", url=f"rtmp://127.0.0.1:{nginx.port}/live",
                          key="studio")
        rtmps = await _add(studio, headers, name="nginx TLS", url=f"rtmps://127.0.0.1:{nginx.tls_port}/live", key="secure")
        refused = await _add(studio, headers, name="nobody", url=f"rtmp://127.0.0.1:{free_port()}/live", key="x")
        bad_key = await _add(studio, headers, name="wrong key", url=f"rtmp://127.0.0.1:{nginx.port}/secure", key="bad")
        untrusted = await _add(studio, headers, name="wrong name", url=f"rtmps://localhost:{nginx.tls_port}/live", key="e")
        await asyncio.to_thread(studio.media.compositor.set_layer, "banner", BLUE, 0, 200)
        async with studio.http.post(studio.base + "/api/media/capture", json=LAVFI, headers=headers) as resp:
            assert resp.status == 201, await resp.text()

        await _until(studio, "the nginx destinations go live", lambda: all(
            _state(studio, d)["state"] == "live" for d in (rtmp, rtmps)))
        await _until(studio, "each failing destination names its cause", lambda: (
            _state(studio, refused)["cause"] == "refused" and _state(studio, bad_key)["state"] == "failed"
            and _state(studio, untrusted)["cause"] == "tls"))
        assert "auth" in _state(studio, bad_key)["error"] and "refused" in _state(studio, refused)["error"]
        assert _state(studio, refused)["state"] in ("retrying", "connecting")
        # the refusing port keeps retrying with backoff (2 s, 3 s, ...) while the others stream
        await _until(studio, "three attempts on the refusing port", lambda: _state(studio, refused)["attempts"] >= 3)
        assert _state(studio, rtmp)["state"] == "live" and _state(studio, rtmp)["connects"] == 1
        assert _state(studio, rtmp)["dropped"] == 0  # its queue never overflowed while the other one failed
        async with studio.http.get(studio.base + "/api/restream/status", headers=headers) as resp:
            status = await resp.json()
        assert {d["id"]: d["state"] for d in status["destinations"]}[rtmp] == "live"
        assert "secure" not in str(status) and "studio" not in str([d.get("key_hint") for d in status["destinations"]])

        # nginx dies: the destination retries; nginx is back: it resumes (a second connection)
        await nginx.stop()
        await _until(studio, "the destination notices nginx is gone", lambda: _state(studio, rtmp)["state"] != "live")
        await nginx.start()
        await _until(studio, "forwarding resumes", lambda: _state(studio, rtmp)["state"] == "live"
                     and _state(studio, rtmp)["connects"] == 2, seconds=60)
        sent = _state(studio, rtmp)["bytes_sent"]
        await _until(studio, "bytes flow again", lambda: _state(studio, rtmp)["bytes_sent"] > sent + 20_000)
        async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
            assert resp.status == 200
        await _until(studio, "the LIVE's end stops every destination",
                     lambda: all(d["state"] == "stopped" for d in studio.media.restream.status()))
    finally:
        await studio.http.close()
        await nginx.stop()

    first, second = nginx.recordings("studio")[:2]
    frames, times, audio = _video(first)
    assert len(frames) >= 60 and audio > 50
    gaps = np.diff(times)  # media time (the packets' own pts): a gap means packets lost on the way
    assert gaps.max() < 0.5, f"a gap of {gaps.max():.2f} s while another destination was failing"
    img = frames[-1].to_ndarray(format="rgb24")
    banner = img[208:232, 8:312].reshape(-1, 3).mean(axis=0)
    assert banner[2] > 200 and banner[0] < 60, banner  # the billboard is in what the platform got
    assert len(_video(second)[0]) >= 10
    tls_frames = _video(nginx.recordings("secure")[0])[0]
    assert len(tls_frames) >= 30 and tls_frames[-1].to_ndarray(format="rgb24")[208:232, 8:312, 2].mean() > 200


async def test_slate_while_the_ingest_is_away(tmp_path: Path, aiohttp_server: Any) -> None:
    nginx = NginxRtmp(tmp_path / "nginx")
    await nginx.start()
    studio, http = await _studio(tmp_path, aiohttp_server)
    try:
        headers = {"X-CSRF-Token": await studio.login()}
        dest = await _add(studio, headers, name="nginx", url=f"rtmp://127.0.0.1:{nginx.port}/live", key="slate")
        async with studio.http.post(studio.base + "/api/media/capture", json=LAVFI, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        await _until(studio, "live", lambda: _state(studio, dest)["state"] == "live")
        sent = _state(studio, dest)["bytes_sent"]
        await _until(studio, "the program flows", lambda: _state(studio, dest)["bytes_sent"] > sent + 20_000)
        # the ingest drops (as when the WHIP connection is lost): the slate keeps the platform's broadcast going
        assert await studio.media.end_ingest("the ingest connection was lost", dropped=True)
        await _until(studio, "the slate plays", lambda: studio.media.restream.slate_on)
        sent = _state(studio, dest)["bytes_sent"]
        await _until(studio, "slate bytes flow", lambda: _state(studio, dest)["bytes_sent"] > sent + 5_000)
        assert _state(studio, dest)["state"] == "live" and _state(studio, dest)["slate"]
        # the host is back: the same connection carries the program again
        async with studio.http.post(studio.base + "/api/media/capture", json=LAVFI, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        assert not studio.media.restream.slate_on
        sent = _state(studio, dest)["bytes_sent"]
        await _until(studio, "the program flows again", lambda: _state(studio, dest)["bytes_sent"] > sent + 20_000)
        assert _state(studio, dest)["connects"] == 1
        async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
            assert resp.status == 200
        await _until(studio, "stopped", lambda: _state(studio, dest)["state"] == "stopped")
    finally:
        await studio.http.close()
        await nginx.stop()
    [recording] = nginx.recordings("slate")
    frames, times, audio = _video(recording)
    assert np.diff(times).max() < 2.0  # no hole where the host was away (the slate follows the program at once)
    pictures = [f.to_ndarray(format="rgb24") for f in frames]
    slate = [p for p in pictures if abs(int(p[5, 5, 0]) - 24) < 8 and abs(int(p[5, 5, 2]) - 32) < 8]
    assert slate, "no slate frame reached the destination"
    assert slate[0][100:140, :].max() > 200  # the text "We'll be right back"
    assert pictures[-1][5, 5].tolist() != slate[0][5, 5].tolist()  # and the program came back after it


async def test_destinations_settings_api(studio) -> None:
    headers = {"X-CSRF-Token": await studio.login()}
    url = studio.base + "/api/restream/destinations"

    async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with studio.http.post(url, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    status, body = await post({"url": "srt://example.com:9000", "key": "k"})
    assert status == 400 and "unknown scheme srt://" in body["error"]["message"]
    status, body = await post({"preset": "twitch"})
    assert status == 400 and "stream key" in body["error"]["message"]
    status, body = await post({"url": "rtmp://example.com/live", "key": "two words"})
    assert status == 400 and "spaces" in body["error"]["message"]
    status, body = await post({"preset": "whip", "url": "rtmp://example.com/live", "key": "k"})
    assert status == 400
    status, body = await post({"preset": "youtube", "key": "abcd-efgh-ijkl-mnop", "start_with_live": False})
    assert status == 201
    dest = body["destination"]
    assert dest["url"] == "rtmp://a.rtmp.youtube.com/live2" and dest["kind"] == "rtmp" and dest["name"] == "YouTube"
    assert dest["key_hint"] == "••••mnop" and "abcd-efgh-ijkl-mnop" not in str(body)
    # an update without a key keeps the stored one
    async with studio.http.put(f"{url}/{dest['id']}", json={"name": "YT main"}, headers=headers) as resp:
        assert resp.status == 200 and (await resp.json())["destination"]["key_set"]
    async with studio.http.get(url, headers=headers) as resp:
        listing = await resp.json()
    assert "abcd-efgh-ijkl-mnop" not in str(listing) and listing["presets"]["twitch"]["needs"]
    assert [d["name"] for d in listing["destinations"]] == ["YT main"]
    status, body = await post({"preset": "whip", "url": "https://sfu.example.com/whip", "key": "token"})
    assert status == 201 and body["destination"]["kind"] == "whip"
    # starting needs a LIVE; practice never restreams
    async with studio.http.post(f"{url}/{dest['id']}/start", headers=headers) as resp:
        assert resp.status == 409 and "not live" in (await resp.json())["error"]["message"]
    async with studio.http.post(studio.base + "/api/media/capture", json={**LAVFI, "practice": True}, headers=headers) as resp:
        assert resp.status == 201
    async with studio.http.post(f"{url}/{dest['id']}/start", headers=headers) as resp:
        assert resp.status == 409 and "practice" in (await resp.json())["error"]["message"]
    assert studio.media.restream.workers == {}
    async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
        assert resp.status == 200
    async with studio.http.delete(f"{url}/{dest['id']}", headers=headers) as resp:
        assert resp.status == 200
    async with studio.http.delete(f"{url}/{dest['id']}", headers=headers) as resp:
        assert resp.status == 404


def test_backoff_grows_to_a_minute_with_jitter() -> None:
    from lmserver.media.restream import backoff_delays

    seq = [d for _, d in zip(range(20), backoff_delays())]
    assert 1.6 <= seq[0] <= 2.4 and 2.4 <= seq[1] <= 3.6
    assert all(48 <= d <= 72 for d in seq[-5:])
    assert len({round(d, 6) for d in seq[-5:]}) > 1  # jitter


class SecondStudio:
    """Another ``lmserver serve`` process: the WHIP server a destination publishes to."""

    def __init__(self, directory: Path) -> None:
        self.dir, self.port = directory, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
        self.env.update(LMSERVER_MEDIA_ICE_HOST_ADDRESSES="127.0.0.1", LMSERVER_MEDIA_WIDTH="320", LMSERVER_MEDIA_HEIGHT="240",
                        LMSERVER_MEDIA_RECORD="false")
        self.proc: asyncio.subprocess.Process | None = None
        self.key = ""

    async def start(self) -> None:
        cli = [sys.executable, "-m", "lmserver"]
        keyproc = await asyncio.create_subprocess_exec(*cli, "stream-key", "--data-dir", str(self.dir), env=self.env,
                                                       cwd=self.dir.parent, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(keyproc.communicate(), 60)
        self.key = out.decode().split()[-1]
        self.proc = await asyncio.create_subprocess_exec(*cli, "serve", "--data-dir", str(self.dir), "--port", str(self.port),
                                                         env=self.env, cwd=self.dir.parent, stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.DEVNULL)
        async with ClientSession() as http:
            for _ in range(300):  # bounded: up to 60 s under load
                try:
                    async with http.get(self.base + "/login") as resp:
                        if resp.status == 200:
                            return
                except OSError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("the second lmserver did not start")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 30)


async def test_whip_out_to_a_second_lmserver(tmp_path: Path, aiohttp_server: Any) -> None:
    second = SecondStudio(tmp_path / "second")
    second.dir.mkdir()
    await second.start()
    studio, http = await _studio(tmp_path, aiohttp_server)
    viewer = Viewer()
    try:
        headers = {"X-CSRF-Token": await studio.login()}
        good = await _add(studio, headers, preset="whip", name="second studio", url=second.base + "/whip", key=second.key)
        wrong = await _add(studio, headers, preset="whip", name="wrong token", url=second.base + "/whip", key="not-the-key")
        await asyncio.to_thread(studio.media.compositor.set_layer, "banner", BLUE, 0, 200)
        async with studio.http.post(studio.base + "/api/media/capture", json=LAVFI, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        await _until(studio, "the WHIP destination goes live and the wrong token fails", lambda: (
            _state(studio, good)["state"] == "live" and _state(studio, wrong)["state"] == "failed"))
        assert "401" in _state(studio, wrong)["error"] and _state(studio, wrong)["cause"] == "auth"
        async with ClientSession() as anonymous:  # a viewer of the SECOND studio sees the first one's program
            status, answer = await viewer.play(anonymous, second.base)
            assert status == 201, answer
            await viewer.wait_frames(20, timeout=60)
        img = rgb(viewer.frames[-1])
        banner = img[208:232, 8:312].reshape(-1, 3).mean(axis=0)
        assert banner[2] > 180 and banner[0] < 80, banner
        await _until(studio, "bytes counted from the sender's stats", lambda: _state(studio, good)["bytes_sent"] > 10_000)
        async with studio.http.post(f"{studio.base}/api/restream/destinations/{good}/stop", headers=headers) as resp:
            assert resp.status == 200
        assert _state(studio, good)["state"] == "stopped"
        async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
            assert resp.status == 200
    finally:
        await viewer.close()
        await studio.http.close()
        await second.stop()


def test_avcc_from_the_programs_sps_pps_and_rtmp_urls() -> None:
    import fractions

    from lmserver.media.encoder import VideoEncoder
    from lmserver.media.rtmp import amf_decode, amf_encode, avcc_record, flv_avc_frame, parameter_sets, parse_target, split_annexb

    enc = VideoEncoder(320, 240, 30, 500_000, 2.0, 0.2, "superfast", 1)
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
    [packet] = enc.encode(frame)
    units = split_annexb(bytes(packet))
    assert [u[0] & 0x1F for u in units][:2] == [7, 8] and 5 in [u[0] & 0x1F for u in units]
    sps, pps = parameter_sets(units)
    record = avcc_record(sps, pps)
    # version 1, constrained baseline (profile 66, constraint flags), level 3.1, 4-byte lengths, one SPS, one PPS
    assert record[:6] == bytes([1, 66, sps[2], 31, 0xFF, 0xE1]) and record.endswith(pps)
    body = flv_avc_frame(units, True)
    assert body[:2] == b"\x17\x01" and b"\x00\x00\x00\x01" not in body[5:9]  # length-prefixed, SPS/PPS left out
    assert amf_decode(amf_encode("onStatus") + amf_encode(0) + amf_encode(None) + amf_encode({"code": "NetStream.Publish.Start"})) \
        == ["onStatus", 0.0, None, {"code": "NetStream.Publish.Start"}]
    target = parse_target("rtmps://live-api-s.facebook.com:443/rtmp/", "FB-1")
    assert (target.host, target.port, target.app, target.tc_url) == ("live-api-s.facebook.com", 443, "rtmp",
                                                                      "rtmps://live-api-s.facebook.com:443/rtmp")
    assert parse_target("rtmp://live.twitch.tv/app", "k").port == 1935
    for bad, why in (("srt://host/app", "unknown scheme"), ("rtmp:///app", "no host"), ("rtmp://host", "no application")):
        try:
            parse_target(bad, "k")
        except ValueError as exc:
            assert why in str(exc)
        else:
            raise AssertionError(bad)
