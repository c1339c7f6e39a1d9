"""WHIP ingest (RFC 9725): a browser, OBS or FFmpeg publishes the studio's stream; its resource ends it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from typing import Awaitable, Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ..errors import BadRequest, Conflict, NotFound
from ..live import ALREADY_LIVE
from .ingest import Ingest
from .rtc import (OFFER_ERRORS, AiortcChanged, SdpError, check_offer, create_peer_connection, relax_consent,
                  release_frames_on_marker, trust_peer_nomination)

logger = logging.getLogger(__name__)


#: While an ingest published with the stream key lives, the key is re-read this often, seconds: once it
#: changed (rotated in the settings, or by ``lmserver stream-key --rotate`` in another process) the ingest ends.
KEY_CHECK_SECONDS = 2.0


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def is_ffmpeg(user_agent: str, sdp: str) -> bool:
    """FFmpeg's WHIP muxer (it never answers ICE consent checks)."""
    return user_agent.startswith("Lavf") or "FFmpegPublishSession" in sdp or "a=tool:FFmpeg" in sdp


def _client_name(user_agent: str) -> str:
    ua = user_agent.lower()
    for name in ("obs", "gstreamer", "chrome", "firefox", "safari"):
        if name in ua:
            return name
    return re.sub(r"[^\w./ -]", "", user_agent)[:40] or "unknown"


def _video_codec(pc: RTCPeerConnection) -> str:
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video" and transceiver._codecs:
            return transceiver._codecs[0].mimeType.split("/", 1)[1]
    return ""


class WhipIngest:
    """WHIP ingest, a part of :class:`~lmserver.media.server.MediaServer` (it uses the server's lock, live state and program)."""

    async def publish_whip(
        self, sdp: str, *, user_agent: str = "", practice: bool = False, user_id: int | None = None, event_id: int | None = None,
        stream_key: str | None = None,
    ) -> tuple[str, str]:
        """Accept a WHIP offer: returns (ingest id, SDP answer). Raises 400 or 409.

        ``stream_key``: the bearer token the publisher was let in with (None: a staff session). Only that
        token ends or patches the resource, and the ingest ends when the studio's key is rotated."""
        try:
            offer = check_offer(sdp)
        except SdpError as exc:
            raise BadRequest(str(exc)) from None
        async with self._lock:
            if self.ingest is not None:
                raise Conflict(ALREADY_LIVE)
            pc = create_peer_connection()
            tracks: list[MediaStreamTrack] = []
            pc.on("track", tracks.append)
            ffmpeg = is_ffmpeg(user_agent, sdp)
            try:
                answer = await self._answer_whip(pc, offer.sdp, ffmpeg)
                session = await self._go_live("whip", practice, user_id, event_id)
            except BaseException:
                await pc.close()
                raise
            program = self._new_program(session)
            ingest = Ingest(secrets.token_urlsafe(16), "whip", session, program, pc=pc,
                            client="ffmpeg" if ffmpeg else _client_name(user_agent), relaxed_consent=ffmpeg,
                            codec=_video_codec(pc))
            if stream_key is not None:
                ingest.publisher_digest = ingest.key_digest = _digest(stream_key)
            for track in tracks:
                program.add_track(track)

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self._end_soon("the ingest connection was lost", ingest.id)

            await self._after_start(ingest)
            if ingest.key_digest is not None and self.db is not None:
                self._spawn(self._watch_stream_key(ingest), "media-key-watch")
            return ingest.id, answer

    async def _answer_whip(self, pc: RTCPeerConnection, sdp: str, ffmpeg: bool) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except OFFER_ERRORS as exc:
            raise BadRequest(f"the offer could not be used ({exc or type(exc).__name__}): send VP8 or H.264 "
                             "(constrained baseline, packetization-mode=1)") from None
        video = [t for t in pc.getTransceivers() if t.kind == "video"]
        if not video or not video[0]._codecs:
            raise BadRequest("no common video codec: send VP8 or H.264 (constrained baseline, packetization-mode=1)")
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly"
        try:  # decode each frame when its last packet is in, not when the next frame begins (rtc.py)
            release_frames_on_marker(pc)
        except AiortcChanged as exc:
            logger.error("WHIP ingest: frames are released a frame interval late: %s", exc)
        if ffmpeg:
            relax_consent(pc)
            trust_peer_nomination(pc)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    async def delete_whip(self, ingest_id: str) -> None:
        ingest = self.ingest
        if ingest is None or ingest.kind != "whip" or ingest.id != ingest_id:
            raise NotFound("no such ingest: it has already ended or never existed")
        await self.end_ingest("the host ended the stream", ingest_id=ingest_id)

    def published_with(self, ingest_id: str, token: str) -> bool | None:
        """Whether the live WHIP ingest ``ingest_id`` was published with bearer ``token``
        (None: no such ingest is live)."""
        ingest = self.ingest
        if ingest is None or ingest.kind != "whip" or ingest.id != ingest_id:
            return None
        return ingest.publisher_digest is not None and hmac.compare_digest(ingest.publisher_digest, _digest(token))

    async def rotate_stream_key(self, rotate: Callable[[], Awaitable[str]], *, end_stream: bool = True) -> tuple[str, bool]:
        """Rotate the studio's stream key with ``rotate()`` (it stores and returns the new key).

        An ingest published with the old key ends (``end_stream``), or is let run under the new key.
        Returns (new key, whether an ingest was ended)."""
        async with self._key_lock:  # the key watch must not see the new key before the ingest is rebound
            key = await rotate()
            ingest = self.ingest
            if ingest is None or ingest.key_digest is None:
                return key, False
            if not end_stream:
                ingest.key_digest = _digest(key)
                return key, False
        return key, await self.end_ingest("the stream key was rotated", ingest_id=ingest.id)

    async def _watch_stream_key(self, ingest: Ingest) -> None:
        """While ``ingest`` (published with the stream key) lives: end it once the stored key is another.
        This is how ``lmserver stream-key --rotate``, run in another process, ends the stream."""
        assert self.db is not None
        while self.ingest is ingest:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            async with self._key_lock:
                if self.ingest is not ingest or ingest.key_digest is None:
                    return
                try:
                    key = await self.db.fetchval("SELECT value FROM settings WHERE key = 'stream_key'")
                except Exception:  # a busy or closing database: look again next time
                    logger.exception("MediaServer: reading the stream key failed")
                    continue
                if not key or not hmac.compare_digest(_digest(key), ingest.key_digest):
                    self._end_soon("the stream key was rotated", ingest.id, dropped=False)
                    return
