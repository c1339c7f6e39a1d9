"""Capture ingest: a local device or an allowed source read with PyAV is the studio's stream."""

from __future__ import annotations

import asyncio
import secrets

from aiortc.contrib.media import MediaPlayer

from ..errors import BadRequest, Conflict
from ..live import ALREADY_LIVE
from .capture import CaptureSource
from .ingest import Ingest


def stop_player(player: MediaPlayer) -> None:
    for track in (player.video, player.audio):
        if track is not None:
            track.stop()


class CaptureIngest:
    """Capture ingest, a part of :class:`~lmserver.media.server.MediaServer`."""

    async def start_capture(
        self,
        source: CaptureSource,
        options: dict[str, str] | None = None,
        *,
        practice: bool = False,
        user_id: int | None = None,
        event_id: int | None = None,
    ) -> str:
        """Use an allowed capture source (:mod:`lmserver.media.capture`: a device, an owner-configured URL or
        a test pattern) as the ingest. ``options`` must come from :func:`~lmserver.media.capture.check_options`."""
        cfg = self.config
        device, fmt, opts = source.ffmpeg_input(options, width=cfg.width, height=cfg.height, fps=cfg.fps)
        async with self._lock:
            if self.ingest is not None:
                raise Conflict(ALREADY_LIVE)
            loop = asyncio.get_running_loop()
            try:
                player = await loop.run_in_executor(None, lambda: MediaPlayer(device, format=fmt, options=opts, timeout=10))
            except Exception as exc:
                raise BadRequest(f"the capture source could not be opened: {exc}") from None
            if player.video is None:
                raise BadRequest("the capture source has no video")
            try:
                session = await self._go_live("capture", practice, user_id, event_id)
            except BaseException:
                stop_player(player)
                raise
            program = self._new_program(session)
            ingest = Ingest(secrets.token_urlsafe(16), "capture", session, program, player=player, client=source.label)
            program.add_track(player.video)
            if player.audio is not None:
                program.add_track(player.audio)
            await self._after_start(ingest)
            return ingest.id
