"""Local capture sources: an allow-list the owner controls.

A capture request never hands a string of its own to FFmpeg as a file, URL, format or filter graph. It
names a source by its id, and the server builds the FFmpeg input from what it found or what the owner
wrote in the configuration:

- ``v4l2:videoN``: the ``/dev/videoN`` character devices of this machine (Linux), found on each listing;
- ``avfoundation:N``: on macOS, AVFoundation video devices 0–3 by index;
- ``config:<hash>``: ``media.capture_device`` (with ``media.capture_format``) and every entry of
  ``media.capture_sources`` (network URLs, ``FORMAT:DEVICE``); the id stays the same while the entry does;
- ``lavfi:testsrc2``, ``lavfi:smptebars``: FFmpeg test patterns with a 440 Hz tone, offered only when
  ``media.capture_lavfi`` is true (tests and the demo).

The studio's chosen source (``selected_source``) is kept in the ``settings`` table; only the owner
(``settings.manage``) chooses another one, a moderator (``show.run``) starts the chosen one.
From a request only the options in :data:`OPTION_CHECKS` are taken (``video_size``, ``framerate``,
``pixel_format``), each matched against a strict pattern. Network inputs are opened with an FFmpeg
``protocol_whitelist`` of their own scheme's protocols, so a playlist cannot reach ``file:``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from ..config import capture_entry_problem
from ..errors import BadRequest

if TYPE_CHECKING:
    from ..config import MediaConfig
    from ..db import Database

__all__ = ["CaptureSource", "list_sources", "lavfi_source", "check_options", "selected_source", "select_source",
           "LAVFI_PATTERNS", "OPTION_CHECKS"]

#: Test patterns offered when ``media.capture_lavfi`` is true: id suffix → (FFmpeg source filter, label).
LAVFI_PATTERNS = {"testsrc2": "Test pattern with a tone", "smptebars": "Colour bars with a tone"}

#: FFmpeg protocols a network source of each scheme may use (its ``protocol_whitelist``).
PROTOCOLS = {
    "rtsp": "rtsp,rtp,srtp,udp,tcp,tls,http,https",
    "rtsps": "rtsps,rtsp,rtp,srtp,udp,tcp,tls",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,rtmp,tcp,tls",
    "srt": "srt,udp",
    "udp": "udp,rtp",
    "http": "http,https,tcp,tls,crypto,httpproxy",
    "https": "https,http,tcp,tls,crypto,httpproxy",
}

_PIXEL_FORMATS = ("yuyv422", "uyvy422", "nv12", "yuv420p", "mjpeg", "0rgb", "bgr0", "rgb24")


def _video_size(v: str) -> bool:
    m = re.fullmatch(r"([1-9][0-9]{1,3})x([1-9][0-9]{1,3})", v)
    return m is not None and 16 <= int(m[1]) <= 3840 and 16 <= int(m[2]) <= 2160


def _framerate(v: str) -> bool:
    m = re.fullmatch(r"([1-9][0-9]{0,2})(?:/([1-9][0-9]{0,3})|\.([0-9]{1,3}))?", v)
    if m is None:
        return False
    rate = int(m[1]) / int(m[2]) if m[2] else float(v)
    return 1 <= rate <= 240


#: The only FFmpeg input options a request may set: name → (check, what a good value looks like).
OPTION_CHECKS = {
    "video_size": (_video_size, "WIDTHxHEIGHT, e.g. 1280x720 (at most 3840x2160)"),
    "framerate": (_framerate, "frames per second, e.g. 30, 29.97 or 30000/1001 (1 to 240)"),
    "pixel_format": (lambda v: v in _PIXEL_FORMATS, "one of " + ", ".join(_PIXEL_FORMATS)),
}


def check_options(value: Any) -> dict[str, str]:
    """The request's ``options``, checked: only :data:`OPTION_CHECKS`, each value matching its pattern (else 400)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("'options' must be an object, e.g. {\"video_size\": \"1280x720\", \"framerate\": \"30\"}")
    out: dict[str, str] = {}
    for name, v in value.items():
        if name not in OPTION_CHECKS:
            raise BadRequest(f"capture option {name!r} is not allowed: the options are " + ", ".join(OPTION_CHECKS))
        check, shape = OPTION_CHECKS[name]
        if not isinstance(v, str) or not check(v):
            raise BadRequest(f"capture option {name!r} must be {shape}, got {v!r}")
        out[name] = v
    return out


@dataclass(frozen=True)
class CaptureSource:
    """One capture source the server may open. ``device``/``format`` come from the machine or the owner's
    configuration, never from a request."""

    id: str
    kind: str  # "device", "url" or "lavfi"
    label: str
    device: str
    format: str | None = None

    def public(self) -> dict[str, str]:
        """What ``GET /api/media/capture/sources`` shows (URL credentials and queries left out)."""
        return {"id": self.id, "kind": self.kind, "label": self.label}

    def ffmpeg_input(self, options: Mapping[str, str] | None = None, *, width: int = 1280, height: int = 720,
                     fps: int = 30) -> tuple[str, str | None, dict[str, str]]:
        """(file/URL/graph, format, options) for PyAV, with ``options`` already checked by :func:`check_options`."""
        opts = dict(options or {})
        if self.kind == "lavfi":
            if "pixel_format" in opts:
                raise BadRequest("a test pattern takes only the options video_size and framerate")
            size = opts.get("video_size", f"{width}x{height}")
            rate = opts.get("framerate", str(fps))
            graph = f"{self.device}=size={size}:rate={rate}[out0];sine=frequency=440:sample_rate=48000[out1]"
            return graph, "lavfi", {}
        if self.kind == "url":
            if opts:
                raise BadRequest("a network source takes no options: its size and frame rate are set where it is sent from")
            scheme = urlsplit(self.device).scheme.lower()
            return self.device, None, {"protocol_whitelist": PROTOCOLS[scheme]}
        return self.device, self.format, opts


def lavfi_source(pattern: str = "testsrc2") -> CaptureSource:
    """The test pattern ``pattern`` (a key of :data:`LAVFI_PATTERNS`) as a source (also for benchmarks)."""
    if pattern not in LAVFI_PATTERNS:
        raise ValueError(f"unknown test pattern {pattern!r}: one of " + ", ".join(LAVFI_PATTERNS))
    return CaptureSource(f"lavfi:{pattern}", "lavfi", LAVFI_PATTERNS[pattern], pattern, "lavfi")


def configured_source(entry: str) -> CaptureSource:
    """A source written by the owner (``FORMAT:DEVICE`` or a network URL), already valid for the config."""
    if capture_entry_problem(entry) is not None:  # the config refuses these; never open one
        raise ValueError(f"not a capture source: {entry!r}")
    sid = "config:" + hashlib.sha256(entry.encode()).hexdigest()[:12]
    if "://" in entry:
        parts = urlsplit(entry)
        host = parts.hostname or ""
        label = f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        return CaptureSource(sid, "url", label, entry)
    fmt, _, device = entry.partition(":")
    return CaptureSource(sid, "device", f"{device} ({fmt})", device, fmt)


def _v4l2_devices(root: Path = Path("/dev")) -> list[CaptureSource]:
    out = []
    try:
        names = sorted(os.listdir(root), key=lambda n: (len(n), n))
    except OSError:
        return out
    for name in names:
        if not re.fullmatch(r"video[0-9]{1,3}", name):
            continue
        path = root / name
        try:
            if not stat.S_ISCHR(os.stat(path).st_mode):
                continue
        except OSError:
            continue
        try:
            label = Path(f"/sys/class/video4linux/{name}/name").read_text(encoding="utf-8").strip()[:60] or name
        except OSError:
            label = name
        out.append(CaptureSource(f"v4l2:{name}", "device", f"{label} ({path})", str(path), "v4l2"))
    return out


def enumerate_devices() -> list[CaptureSource]:
    """This machine's capture devices: v4l2 ``/dev/video*`` on Linux, AVFoundation indices on macOS.
    (DirectShow devices have names, not numbers: add them to ``media.capture_sources``.)"""
    if sys.platform.startswith("linux"):
        return _v4l2_devices()
    if sys.platform == "darwin":
        return [CaptureSource(f"avfoundation:{i}", "device", f"AVFoundation camera {i}", str(i), "avfoundation") for i in range(4)]
    return []


def list_sources(config: "MediaConfig") -> dict[str, CaptureSource]:
    """Every source the server may open now, by id: devices, the owner's configured ones, test patterns."""
    sources: list[CaptureSource] = list(enumerate_devices())
    entries = []
    if config.capture_device:
        entries.append(f"{config.capture_format}:{config.capture_device}" if config.capture_format else config.capture_device)
    entries += list(config.capture_sources)
    for entry in entries:
        try:
            sources.append(configured_source(entry))
        except ValueError:
            continue
    if config.capture_lavfi:
        sources += [lavfi_source(p) for p in LAVFI_PATTERNS]
    out: dict[str, CaptureSource] = {}
    for source in sources:
        out.setdefault(source.id, source)
    return out


def default_source_id(config: "MediaConfig") -> str | None:
    if not config.capture_device:
        return None
    entry = f"{config.capture_format}:{config.capture_device}" if config.capture_format else config.capture_device
    try:
        return configured_source(entry).id
    except ValueError:
        return None


async def selected_source(db: "Database", config: "MediaConfig") -> str | None:
    """The id of the studio's chosen capture source (settings), else ``media.capture_device``'s."""
    chosen = await db.fetchval("SELECT value FROM settings WHERE key = 'capture_source'")
    return chosen or default_source_id(config)


async def select_source(db: "Database", source_id: str) -> None:
    """Make ``source_id`` (an id from :func:`list_sources`) the studio's chosen capture source."""
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('capture_source', ?)"
                         " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (source_id,))

