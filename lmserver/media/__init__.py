"""Media core: WHIP/capture ingest, the composited program encoded once, WHEP viewers, recording.

Plugins reach the program's overlays through ``app[MEDIA].compositor`` (see
:class:`lmserver.media.compositor.Compositor`).
"""

from __future__ import annotations

from aiohttp import web

from .compositor import Compositor, LayerInfo
from .server import MediaServer

MEDIA: web.AppKey[MediaServer] = web.AppKey("media", MediaServer)

__all__ = ["MEDIA", "Compositor", "LayerInfo", "MediaServer"]
