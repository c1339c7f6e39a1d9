"""FFmpeg's own WHIP muxer (through PyAV) publishes H.264 + Opus for 45 s without being dropped."""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rtcclients import Viewer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SECONDS = int(os.environ.get("WHIP_SECONDS", "46"))
FPS = 15


def p256_cert(directory: Path) -> tuple[str, str]:
    """FFmpeg's default DTLS certificate is P-224, which aiortc's OpenSSL refuses: give it P-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffmpeg-whip-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


async def test_ffmpeg_whip_muxer_publishes_for_45_seconds(studio, tmp_path: Path) -> None:
    cert_file, key_file = p256_cert(tmp_path)
    started = asyncio.Event()
    ended = asyncio.Event()
    from lmserver.appkeys import BUS

    bus = studio.app[BUS]
    reasons: list[str] = []
    bus.on("stream.started", lambda record: started.set())
    bus.on("stream.ended", lambda record: (reasons.append(record.data["reason"]), ended.set()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "ffmpeg_whip_publisher.py"), f"{studio.base}/whip", studio.key,
        cert_file, key_file, str(SECONDS), str(FPS), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    viewer = Viewer()
    try:
        await asyncio.wait_for(started.wait(), 20)
        ingest = studio.media.ingest
        assert ingest is not None and ingest.client == "ffmpeg" and ingest.relaxed_consent
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        await viewer.wait_frames(10, timeout=20)
        # FFmpeg's RTP muxer marks each access unit's last packet: frames go to the decoder on it, not a frame later
        from lmserver.media.jitter import MarkerJitterBuffer

        video = next(t.receiver for t in ingest.pc.getTransceivers() if t.kind == "video")
        jb = getattr(video, "_RTCRtpReceiver__jitter_buffer")
        assert isinstance(jb, MarkerJitterBuffer) and jb.marker_trusted
        assert jb.released_on_marker >= 10 and jb.released_on_next <= 1, (jb.released_on_marker, jb.released_on_next)
        stages = ingest.program.stage_medians()
        assert all(stages[k] is not None for k in ("receive", "jitter", "decode", "wait", "scale", "encode", "total")), stages
        output, _ = await asyncio.wait_for(proc.communicate(), SECONDS + 30)
        assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
        assert f"done {SECONDS * FPS}" in output.decode()
        # The viewer kept receiving to the end (all but the first seconds of program frames).
        assert viewer.count >= (SECONDS - 6) * FPS, viewer.count
        assert viewer.audio_count > 0
        # FFmpeg never answered a consent check, yet it was not dropped; its DELETE ended the session.
        await asyncio.wait_for(ended.wait(), 15)
        assert studio.media.ingest is None
        assert reasons == ["the host ended the stream"]  # its DELETE (with the key it published with), not the watchdog
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await viewer.close()


async def test_a_killed_ffmpeg_publisher_ends_the_stream_cleanly(studio, tmp_path: Path) -> None:
    """No DELETE and no consent checks (relaxed for FFmpeg): the no-video watchdog ends the session."""
    from lmserver.appkeys import BUS

    cert_file, key_file = p256_cert(tmp_path)
    bus = studio.app[BUS]
    flowing, ended = asyncio.Event(), asyncio.Event()
    reasons: list[str] = []
    bus.on("stream.health", lambda record: record.data["fps"] > 0 and flowing.set())
    bus.on("stream.ended", lambda record: (reasons.append(record.data["reason"]), ended.set()))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "ffmpeg_whip_publisher.py"), f"{studio.base}/whip", studio.key,
        cert_file, key_file, "60", str(FPS), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(flowing.wait(), 30)
        assert studio.media.ingest is not None and studio.media.ingest.relaxed_consent
        proc.kill()
        await proc.wait()
        await asyncio.wait_for(ended.wait(), 30)
        assert reasons == ["the ingest dropped: no video for 10 s"]
        assert studio.media.ingest is None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
