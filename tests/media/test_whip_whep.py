"""WHIP ingest and WHEP playback with real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from rtcclients import Publisher, Viewer, peer, rgb

from lmserver.media.fastsend import fast_sender


async def test_publish_and_play_with_a_layer(studio) -> None:
    publisher = Publisher()
    status, body = await publisher.publish(studio.http, studio.base, studio.key)
    assert status == 201, body
    assert publisher.location and publisher.location.startswith("/whip/")
    layer = np.zeros((64, 96, 4), np.uint8)
    layer[:] = (255, 0, 0, 255)
    studio.media.compositor.set_layer("box", layer, x=64, y=96)
    viewer = Viewer()
    try:
        status, body = await viewer.play(studio.http, studio.base)
        assert status == 201, body
        await viewer.wait_frames(15)
        img = rgb(viewer.frames[-1])
        assert img.shape == (240, 320, 3)
        inside = img[96 + 8 : 96 + 56, 64 + 8 : 64 + 88].reshape(-1, 3).mean(axis=0)
        assert inside[0] > 200 and inside[1] < 60 and inside[2] < 60, inside
        outside = np.concatenate([img[:80].reshape(-1, 3), img[170:].reshape(-1, 3), img[:, 170:].reshape(-1, 3)])
        assert np.abs(outside.astype(int) - 128).max() < 24
        assert studio.media.status()["viewers"] == 1
        # A viewer's PLI (real RTCP) makes the shared encoder emit a keyframe.
        encoder = studio.media.program.video_encoder
        server_viewer = next(iter(studio.media.viewers.values()))
        sender = next(t.sender for t in server_viewer.pc.getTransceivers() if t.kind == "video")
        receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
        before = encoder.keyframes
        await receiver._send_rtcp_pli(sender._ssrc)
        await viewer.wait_frames(viewer.count + 10)
        assert encoder.keyframes == before + 1
    finally:
        await viewer.close()
        await publisher.close()


async def test_the_publishers_audio_reaches_the_viewer(studio) -> None:
    publisher = Publisher(audio=True)
    viewer = Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        status, body = await viewer.play(studio.http, studio.base)
        assert status == 201, body
        await viewer.wait_frames(10)
        # audio frames are 20 ms: by 10 video frames (~330 ms) plenty have arrived; wait a bounded
        # number of further video frames for the first ones, not wall-clock time
        for _ in range(30):
            if viewer.audio_count > 0:
                break
            await viewer.wait_frames(viewer.count + 1)
        assert viewer.audio_count > 0
        # the program has no audio of its own: what the viewer hears came from the publisher
        assert studio.media.program.has_audio and studio.media.program.audio_frames_in > 0
    finally:
        await viewer.close()
        await publisher.close()


async def test_an_audio_only_whip_offer_is_refused_and_nothing_starts(studio) -> None:
    from lmserver.appkeys import LIVE

    audio_pc = peer()
    audio_pc.addTrack(AudioStreamTrack())
    try:
        await audio_pc.setLocalDescription(await audio_pc.createOffer())
        headers = {"Authorization": f"Bearer {studio.key}", "Content-Type": "application/sdp"}
        async with studio.http.post(studio.base + "/whip", data=audio_pc.localDescription.sdp, headers=headers) as resp:
            assert resp.status == 400
            assert "no video" in (await resp.json())["error"]["message"]
        assert studio.media.ingest is None
        assert studio.media.status()["live"] is False
        assert studio.app[LIVE].current is None  # no session began
    finally:
        await audio_pc.close()


async def test_obs_style_offer_without_candidates_goes_live(studio) -> None:
    publisher = Publisher()
    viewer = Viewer()
    try:
        status, body = await publisher.publish(studio.http, studio.base, studio.key, strip_candidates=True)
        assert status == 201 and "a=candidate" in body
        status, body = await viewer.play(studio.http, studio.base)
        assert status == 201, body
        await viewer.wait_frames(5)
        async with studio.http.delete(studio.base + publisher.location, headers=publisher.headers) as resp:
            assert resp.status == 200
        assert studio.media.ingest is None
        async with studio.http.delete(studio.base + publisher.location, headers=publisher.headers) as resp:
            assert resp.status == 404
            assert "no such ingest" in (await resp.json())["error"]["message"]
    finally:
        await viewer.close()
        await publisher.close()


async def test_bad_inputs_leave_the_live_stream_alone(studio) -> None:
    publisher = Publisher()
    viewer = Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        await viewer.wait_frames(5)
        second = Publisher()
        good_sdp = await second.offer()
        await second.close()

        async def post(path: str, data: Any, headers: dict[str, str]) -> tuple[int, str]:
            async with studio.http.post(studio.base + path, data=data, headers=headers) as resp:
                assert resp.headers.get("Access-Control-Allow-Origin") == "*"
                return resp.status, (await resp.json())["error"]["message"]

        sdp_type = {"Content-Type": "application/sdp"}
        bearer = {"Authorization": f"Bearer {studio.key}", **sdp_type}
        status, msg = await post("/whip", good_sdp, sdp_type)
        assert status == 401 and "stream key" in msg
        status, msg = await post("/whip", good_sdp, {**sdp_type, "Authorization": "Bearer nope"})
        assert status == 401 and "wrong stream key" in msg
        status, msg = await post("/whip", good_sdp, bearer)
        assert status == 409 and "already live from another device" in msg
        status, msg = await post("/whip", good_sdp, {**bearer, "Content-Type": "text/plain"})
        assert status == 415 and "application/sdp" in msg
        status, msg = await post("/whip", "hello, I am not SDP", bearer)
        assert status == 400 and "malformed" in msg
        status, msg = await post("/whip", io.BytesIO(b"v=0\r\na=x:" + b"y" * (1 << 20)), bearer)
        assert status == 400 and "too large" in msg
        audio_pc = peer()
        audio_pc.addTrack(AudioStreamTrack())
        await audio_pc.setLocalDescription(await audio_pc.createOffer())
        status, msg = await post("/whep", audio_pc.localDescription.sdp, sdp_type)
        assert status == 400 and "no video" in msg
        await audio_pc.close()
        async with studio.http.delete(studio.base + "/whep/unknown") as resp:
            assert resp.status == 404
        async with studio.http.delete(studio.base + "/whip/unknown", headers=publisher.headers) as resp:
            assert resp.status == 404
        for path in ("/whip", publisher.location, "/whep"):
            async with studio.http.options(studio.base + path) as resp:
                assert resp.status == 204
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
                assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
                assert "Location" in resp.headers["Access-Control-Expose-Headers"]
        async with studio.http.patch(studio.base + publisher.location, data="a=candidate:x",
                                     headers={"Content-Type": "application/trickle-ice-sdpfrag", **publisher.headers}) as resp:
            assert resp.status == 405 and "trickle ICE" in (await resp.json())["error"]["message"]
        # the stream is unaffected
        before = viewer.count
        await viewer.wait_frames(before + 10)
        assert studio.media.ingest is not None and len(studio.media.viewers) == 1
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_stalled_viewer_skips_to_a_keyframe_and_does_not_slow_the_other(studio) -> None:
    publisher = Publisher()
    fast, slow = Viewer(), Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        assert (await fast.play(studio.http, studio.base))[0] == 201
        assert (await slow.play(studio.http, studio.base))[0] == 201
        await fast.wait_frames(3)
        await slow.wait_frames(3)
        media = studio.media
        stalled = next(v for v in media.viewers.values() if v.id == slow.location.rsplit("/", 1)[1])
        queue = stalled.video
        release = asyncio.Event()
        sender = fast_sender(next(t.sender for t in stalled.pc.getTransceivers() if t.kind == "video"))
        assert sender is not None
        # The viewer's socket stops taking datagrams (a backlog): its batched sender skips it.
        sender.backlog = lambda: 0 if release.is_set() else 1  # type: ignore[method-assign]
        program = media.program
        out_before, fast_before = program.frames_out, fast.count
        skips_before = queue.skips
        # Enough frames for the stalled queue (small on purpose) to overflow at least once.
        queue.max_packets = 8
        await fast.wait_frames(fast_before + 40)
        assert queue.skips > skips_before
        assert len(queue) <= queue.max_packets
        produced = program.frames_out - out_before
        assert fast.count - fast_before >= produced - 3  # the fast viewer got every frame
        slow_before = slow.count
        release.set()
        await slow.wait_frames(slow_before + 10)
    finally:
        await fast.close()
        await slow.close()
        await publisher.close()


async def test_dropped_ingest_ends_the_session_and_frees_the_studio(studio) -> None:
    from lmserver.appkeys import BUS

    events: list[tuple[str, dict]] = []
    practice_flags: list[tuple[str, bool]] = []
    bus = studio.app[BUS]
    for name in ("stream.started", "stream.ended", "viewer.joined", "viewer.left", "stream.health"):
        bus.on(name, lambda record, name=name: events.append((name, record.data)))
        bus.on(name, lambda record, name=name: practice_flags.append((name, record.practice)))
    publisher = Publisher()
    viewer = Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key, query="?practice=1"))[0] == 201
        status, body = await viewer.play(studio.http, studio.base)
        assert status == 403 and "practising" in body
        await viewer.close()
        flowing = asyncio.Event()
        # the first record has no rates yet (they are differences to the previous second)
        bus.on("stream.health", lambda record: record.data["fps"] > 0 and record.data["bitrate"] is not None and flowing.set())
        await asyncio.wait_for(flowing.wait(), 30)
        health = [d for n, d in events if n == "stream.health" and d["fps"] > 0 and d["bitrate"] is not None][-1]
        assert isinstance(health["bitrate"], int) and health["bitrate"] > 0, health
        loss = health["packet_loss"]
        assert isinstance(loss, (int, float)) and 0 <= loss < 0.05, health  # loopback
        assert isinstance(health["jitter"], (int, float)) and health["jitter"] >= 0, health
        ended = asyncio.Event()
        bus.on("stream.ended", lambda record: ended.set())
        await publisher.close()  # no DELETE: the connection just goes away
        await asyncio.wait_for(ended.wait(), 60)
        assert studio.media.ingest is None
        publisher = Publisher()
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        viewer = Viewer()
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        await viewer.wait_frames(5)
        names = [n for n, _ in events]
        assert [d["reason"] for n, d in events if n == "stream.ended"] == ["the ingest ended"]
        # everything of the practice session is flagged, nothing of the real one
        first_end = names.index("stream.ended")
        assert all(flag for _, flag in practice_flags[: first_end + 1])
        assert not any(flag for _, flag in practice_flags[first_end + 1 :])
        assert names.count("stream.started") == 2 and names.count("stream.ended") == 1
        assert ("viewer.joined", {"viewer_id": None, "viewers": 1, "peak": 1}) in events
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_publisher_with_an_rsa_dtls_certificate_like_gstreamer(studio) -> None:
    """webrtcbin's DTLS certificate is RSA: our DTLS context must also allow ECDHE-RSA suites."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate

    class RsaCertificate(RTCCertificate):
        def _create_ssl_context(self, srtp_profiles):  # type: ignore[no-untyped-def]
            ctx = super()._create_ssl_context(srtp_profiles)
            ctx.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
            return ctx

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pc = peer()
    pc._RTCPeerConnection__certificates = [RsaCertificate(key=key, cert=generate_certificate(key))]  # type: ignore[attr-defined]
    publisher = Publisher(pc=pc)
    viewer = Viewer()
    try:
        status, body = await publisher.publish(studio.http, studio.base, studio.key)
        assert status == 201, body
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        await viewer.wait_frames(5)
    finally:
        await viewer.close()
        await publisher.close()


async def test_viewers_beyond_the_main_loop_share_go_to_a_viewer_process(studio) -> None:
    from lmserver.appkeys import BUS

    media = studio.media
    media.local_first = 1  # the second viewer already goes to the viewer process
    left: list[dict] = []
    gone = asyncio.Event()
    studio.app[BUS].on("viewer.left", lambda record: (left.append(record.data), gone.set()))
    publisher = Publisher()
    viewers = [Viewer(), Viewer(), Viewer()]
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        for viewer in viewers:
            status, body = await viewer.play(studio.http, studio.base)
            assert status == 201, body
        for viewer in viewers:
            await viewer.wait_frames(20)
        placed = [media.viewers[v.location.rsplit("/", 1)[1]].shard is not None for v in viewers]
        assert placed == [False, True, False]
        assert len(media.shards) == 1 and media.shards[0].alive
        assert media.status()["viewers"] == 3
        # DELETE of a viewer in the process
        async with studio.http.delete(studio.base + viewers[1].location) as resp:
            assert resp.status == 200
        assert len(media.viewers) == 2 and not media.shards[0].viewers
        # a new viewer goes to the (now empty) process and plays; closing it there is reported back
        late = Viewer()
        viewers.append(late)
        assert (await late.play(studio.http, studio.base))[0] == 201
        await late.wait_frames(10)
        assert media.viewers[late.location.rsplit("/", 1)[1]].shard is not None
        gone.clear()
        await late.close()  # the process notices the closed connection and reports it
        await asyncio.wait_for(gone.wait(), 30)
        assert len(media.viewers) == 2 and left[-1]["viewers"] == 2
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


async def test_a_viewer_offering_h264_without_fmtp_like_gstreamer_whepsrc(studio) -> None:
    publisher = Publisher()
    viewer = Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        sdp = "".join(line + "\r\n" for line in viewer.pc.localDescription.sdp.splitlines() if not line.startswith("a=fmtp:"))
        async with studio.http.post(studio.base + "/whep", data=sdp, headers={"Content-Type": "application/sdp"}) as resp:
            assert resp.status == 201, await resp.text()
            answer = await resp.text()
        assert "packetization-mode=1" in answer
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.wait_frames(5)
    finally:
        await viewer.close()
        await publisher.close()


async def test_malformed_offers_get_400_with_a_reason_never_500(studio) -> None:
    publisher = Publisher()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        probe = Viewer()
        await probe.pc.setLocalDescription(await probe.pc.createOffer())
        good = probe.pc.localDescription.sdp
        await probe.close()
        lines = good.splitlines()
        variants = [
            good[: len(good) // 2],
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "\r\n".join(l for l in lines if not l.startswith("a=fingerprint")) + "\r\n",
            "\r\n".join(l for l in lines if not l.startswith("a=ice-ufrag")) + "\r\n",
            "\r\n".join(l.replace("H264/90000", "AV1/90000").replace("VP8/90000", "AV1/90000") for l in lines) + "\r\n",
            "v=0\r\n" + "m=video\r\n" * 50,
        ]
        bearer = {"Authorization": f"Bearer {studio.key}", "Content-Type": "application/sdp"}

        async def post_all(path: str, headers: dict[str, str]) -> None:
            for sdp in variants:
                async with studio.http.post(studio.base + path, data=sdp, headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 400, (path, sdp[:200], body)
                    assert body["error"]["message"]

        await post_all("/whep", {"Content-Type": "application/sdp"})  # while live
        assert studio.media.ingest is not None and not studio.media.viewers
        async with studio.http.delete(studio.base + publisher.location, headers=publisher.headers) as resp:
            assert resp.status == 200
        await post_all("/whip", bearer)  # while not live: nothing starts
        assert studio.media.ingest is None
    finally:
        await publisher.close()


async def test_a_viewer_reacting_to_stream_started_is_not_refused(studio) -> None:
    from lmserver.appkeys import BUS

    publisher, viewer = Publisher(), Viewer()
    plays: list[asyncio.Task] = []
    studio.app[BUS].on("stream.started", lambda record: plays.append(asyncio.ensure_future(viewer.play(studio.http, studio.base))))
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        assert len(plays) == 1
        status, body = await plays[0]
        assert status == 201, body
        await viewer.wait_frames(3)
    finally:
        await viewer.close()
        await publisher.close()


async def test_shutdown_waits_for_an_event_being_published_before_the_database_closes(studio) -> None:
    """A viewer.left published as the server stops (its connection closed just before) is still written:
    the media server's close() waits for it, so the core closes the database after, not under it."""
    import sqlite3

    from lmserver.appkeys import DB
    from lmserver.media import MEDIA

    media, db = studio.app[MEDIA], studio.app[DB]
    # another writer holds the database: the publish waits in BEGIN IMMEDIATE (it retries, bounded)
    other = sqlite3.connect(db.path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    publishing = asyncio.ensure_future(media._publish("viewer.left", {"viewer_id": "v-shutdown", "viewers": 0}))
    await asyncio.sleep(0.2)
    assert not publishing.done()
    asyncio.get_running_loop().call_later(0.5, other.rollback)
    try:
        await asyncio.wait_for(media.close(), 10)
        assert publishing.done(), "close() returned while an event was still being published"
        rows = await db.fetchall("SELECT data FROM activity WHERE name = 'viewer.left'")
        assert any("v-shutdown" in r["data"] for r in rows)
    finally:
        other.close()
