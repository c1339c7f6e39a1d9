"""HLS output: the program as low-latency HLS (LL-HLS, RFC 8216bis) at ``/hls/<event>/index.m3u8``, for
viewers WebRTC cannot reach and for a CDN.

No second encode: :class:`HlsOutput` listens to the restreamer (:meth:`Restreamer.add_listener`) and gets
the program's shared H.264 packets and the ONE shared AAC encode of its audio (the same AAC the RTMP
destinations get; Opus stays for WebRTC). It writes the fragmented MP4 itself — an ``init.mp4`` (moov with
an ``avc1`` and an ``mp4a`` track) and ``moof``+``mdat`` fragments — in memory, on the event loop (a few
boxes per part: cheaper than a muxer thread).

- A **segment** starts at every keyframe: it lasts ``[media] keyframe_interval`` (2 s by default; extra
  keyframes that new WebRTC viewers ask for make some shorter). ``EXT-X-TARGETDURATION`` is that interval.
- A segment is made of **parts** (``EXT-X-PART``) of at most ``[media] hls_part_seconds`` (0.5 s by
  default: 15 frames at 30 fps), cut at frame boundaries; the first part of a segment starts with the
  keyframe (``INDEPENDENT=YES``). A full segment (``seg<N>.m4s``) is the bytes of its parts one after the
  other, so a player without LL-HLS (or a CDN) plays the same playlist from plain segments.
- ``EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=<3 × part target>``, ``EXT-X-PRELOAD-HINT``
  for the part being written, ``EXT-X-PROGRAM-DATE-TIME`` on every segment (the server's clock when its
  first frame was encoded). Parts are listed for the last segments only (about three target durations).
- **Blocking playlist reload**: ``index.m3u8?_HLS_msn=N&_HLS_part=M`` waits until part M of segment N
  exists (``_HLS_msn`` alone: until segment N is complete), at most 3 × the target duration (then 503);
  a value that is not a number, ``_HLS_part`` without ``_HLS_msn``, a segment more than two ahead of the
  one being written or a part too far ahead is a 400 that says so. A request for the hinted part waits
  until it is written (blocking part request).
- The playlist text is built once per new part, not per request. Memory stays bounded: the last
  ``hls_list_size`` segments are listed, two more stay fetchable for players that loaded an older
  playlist; part bytes are kept only while their segment's parts are listed.

Each program has its own output, with media sequence numbers that only grow (they start from the clock),
so a player whose stream resumed after an ingest drop reloads cleanly. Playlists are served ``no-cache``
(blocking ones ``max-age`` of a few parts: that answer stays right), parts, segments and ``init.mp4``
``immutable`` (a CDN caches them; it must pass the ``_HLS_msn``/``_HLS_part`` query strings through and
keep them in its cache key): see ``docs/scaling.md``. Practice is never served (nobody watches a
rehearsal).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from .encoder import AUDIO_RATE
from .restream_common import AAC_FRAME, Item
from .rtmp import avcc_record, parameter_sets, split_annexb

logger = logging.getLogger(__name__)

#: the names a playlist serves (anything else, e.g. "../x", is a 404): the playlist, init, segments, parts
FILE_RE = re.compile(r"^(index\.m3u8|init\.mp4|seg\d{1,12}\.m4s|seg\d{1,12}\.\d{1,4}\.m4s)$")
VIDEO_TIMESCALE = 90000
#: a fully written segment stays fetchable this many segments after it left the playlist
EXTRA_SEGMENTS = 2
#: how far past the part being written a blocking request may ask before it is refused (RFC 8216bis 6.2.5.2)
ADVANCE_PART_LIMIT = 3
#: the last segments whose parts are listed and kept (three target durations and the one being written)
PART_SEGMENTS = 4
#: the longest audio gap filled with silence (longer: the audio goes on right after the last frame)
MAX_SILENCE = 10


# --------------------------------------------------------------------------------------------- fMP4 boxes

def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _trak(track_id: int, timescale: int, handler: bytes, name: bytes, sample_entry: bytes, width: int = 0,
          height: int = 0) -> bytes:
    video = handler == b"vide"
    tkhd = _full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(8),
                 struct.pack(">hhhH", 0, 0, 0 if video else 0x0100, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))  # language "und"
    hdlr = _full(b"hdlr", 0, 0, bytes(4), handler, bytes(12), name + b"\0")
    media_header = _full(b"vmhd", 0, 1, bytes(8)) if video else _full(b"smhd", 0, 0, bytes(4))
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    stbl = _box(b"stbl", _full(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry), _full(b"stts", 0, 0, bytes(4)),
                _full(b"stsc", 0, 0, bytes(4)), _full(b"stsz", 0, 0, bytes(8)), _full(b"stco", 0, 0, bytes(4)))
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, _box(b"minf", media_header, dinf, stbl)))


def _descriptor(tag: int, body: bytes) -> bytes:
    return bytes([tag, len(body)]) + body  # every descriptor here is shorter than 128 bytes


def init_segment(width: int, height: int, avcc: bytes, aac_config: bytes, aac_bitrate: int = 128_000) -> bytes:
    """``init.mp4``: track 1 H.264 (``avc1`` with ``avcc``), track 2 AAC-LC 48 kHz stereo, fragmented (``mvex``)."""
    ftyp = _box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcavc1mp41")
    mvhd = _full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), struct.pack(">IH", 0x10000, 0x100), bytes(10),
                 _MATRIX, bytes(24), struct.pack(">I", 3))
    avc1 = _box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HHII", width, height, 0x480000, 0x480000),
                bytes(4), struct.pack(">H", 1), bytes(32), struct.pack(">Hh", 0x18, -1), _box(b"avcC", avcc))
    es = _descriptor(3, struct.pack(">HB", 2, 0)
                     + _descriptor(4, bytes([0x40, 0x15]) + bytes(3) + struct.pack(">II", aac_bitrate, aac_bitrate)
                                   + _descriptor(5, aac_config))
                     + _descriptor(6, b"\x02"))
    mp4a = _box(b"mp4a", bytes(6), struct.pack(">H", 1), bytes(8), struct.pack(">HHHHI", 2, 16, 0, 0, AUDIO_RATE << 16),
                _full(b"esds", 0, 0, es))
    mvex = _box(b"mvex", *(_full(b"trex", 0, 0, struct.pack(">IIIII", tid, 1, 0, 0, 0)) for tid in (1, 2)))
    moov = _box(b"moov", mvhd, _trak(1, VIDEO_TIMESCALE, b"vide", b"lmserver video", avc1, width, height),
                _trak(2, AUDIO_RATE, b"soun", b"lmserver audio", mp4a), mvex)
    return ftyp + moov


KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (an I-frame)
DELTA_FLAGS = 0x01010000  # depends on others, not a sync sample


def fragment(sequence: int, video: list[tuple[bytes, int, bool]], video_dts: int, audio: list[bytes], audio_dts: int) -> bytes:
    """One ``moof`` + ``mdat``: ``video`` as (AVCC sample, duration in 1/90000, keyframe), ``audio`` raw AAC frames
    of 1024 samples; ``*_dts`` the decode time of the first sample of each track."""

    def trafs(data_offset: int) -> list[bytes]:
        out = []
        offset = data_offset
        for track_id, base, rows in ((1, video_dts, [(len(d), dur, KEY_FLAGS if key else DELTA_FLAGS) for d, dur, key in video]),
                                     (2, audio_dts, [(len(d), AAC_FRAME, KEY_FLAGS) for d in audio])):
            if not rows:
                continue
            trun = _full(b"trun", 0, 0x000701, struct.pack(">Ii", len(rows), offset),
                         b"".join(struct.pack(">III", dur, size, flags) for size, dur, flags in rows))
            out.append(_box(b"traf", _full(b"tfhd", 0, 0x020000, struct.pack(">I", track_id)),
                            _full(b"tfdt", 1, 0, struct.pack(">Q", base)), trun))
            offset += sum(size for size, _, _ in rows)
        return out

    mfhd = _full(b"mfhd", 0, 0, struct.pack(">I", sequence))
    size = len(_box(b"moof", mfhd, *trafs(0)))
    moof = _box(b"moof", mfhd, *trafs(size + 8))
    return moof + _box(b"mdat", *(d for d, _, _ in video), *audio)


def avcc_sample(units: list[bytes]) -> bytes:
    """An access unit as an MP4 sample: 4-byte lengths; parameter sets (in ``avcC``) and delimiters dropped."""
    return b"".join(struct.pack(">I", len(u)) + u for u in units if u and u[0] & 0x1F not in (7, 8, 9))


# --------------------------------------------------------------------------------------------- the output

@dataclass
class Part:
    data: bytes
    duration: float
    independent: bool


@dataclass
class Segment:
    msn: int
    start: float  # wall clock of its first frame (EXT-X-PROGRAM-DATE-TIME)
    parts: list[Part] = field(default_factory=list)
    done: bool = False
    duration: float = 0.0
    data: bytes | None = None  # the whole segment, once done
    keep_parts: bool = True


class HlsOutput:
    """The LL-HLS packager of one LIVE program: ``feed`` it restreamer items; ``file(name)`` serves it."""

    def __init__(self, width: int, height: int, fps: int, segment_seconds: float, list_size: int,
                 part_seconds: float, aac_config: bytes) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.target_duration = max(1, round(segment_seconds))
        self.part_target = part_seconds
        self.part_hold_back = 3 * part_seconds
        self.list_size = list_size
        self.aac_config = aac_config
        self.segments: list[Segment] = []  # listed ones and EXTRA_SEGMENTS older ones
        self.playlist_text: bytes = b""  # built once per new part
        self.init: bytes | None = None
        self.closed = False
        #: the live event's slug, looked up once by the HTTP handler (serve_hls) for the program's lifetime: a part
        #: request (several a second per player) then costs no database query
        self.event_slug: str | None = None
        self.error: str | None = None
        self.packets = 0
        self.first_msn = int(time.time() * 10)  # sequence numbers that only grow, program after program
        self.started_at = time.time()
        self._wall_offset = time.time() - time.monotonic()  # restreamer item times are monotonic
        self._loop = asyncio.get_running_loop()
        self._wake: asyncio.Future[None] = self._loop.create_future()
        self._sequence = 0  # moof sequence number
        self._t0: float | None = None  # item time of the first keyframe (decode time 0)
        self._video: list[tuple[bytes, float, bool]] = []  # the open part: (sample, t, key)
        self._audio: list[bytes] = []
        self._audio_dts: int | None = None  # decode time (1/48000) of the next AAC frame
        self._audio_next: int = 0  # decode time of the first AAC frame of the open part
        self._silence: bytes | None = None
        self._open_msn: int | None = None  # segment of the open part
        self._part_start: int | None = None  # decode time (1/90000) where the open part starts: the last one's end

    # --- input (the restreamer calls this on the event loop for video, from its AAC thread for audio)
    def feed(self, item: Item) -> None:
        if self.closed:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._on_item(item)
        else:
            try:
                self._loop.call_soon_threadsafe(self._on_item, item)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _on_item(self, item: Item) -> None:
        if self.closed:
            return
        try:
            kind, t, data, key = item
            if kind == "v":
                self._on_video(t, data, key)
            elif kind == "a" and self._t0 is not None:
                self._on_audio(t, data)
            self.packets += 1
        except Exception as exc:  # a failing HLS output must never take the stream down
            self.error = str(exc)
            logger.exception("HlsOutput(%s) failed", id(self))
            self.close()

    def _on_audio(self, t: float, data: bytes) -> None:
        assert self._t0 is not None
        dts = round((t - self._t0) * AUDIO_RATE)
        if dts < 0:
            return  # before the first keyframe
        if self._audio_dts is None:
            self._audio_dts = self._audio_next = dts
        elif dts - self._audio_dts > AUDIO_RATE // 5:  # audio stalled and came back: silence over the gap
            self._append_silence(min(dts, self._audio_dts + MAX_SILENCE * AUDIO_RATE))
        self._audio.append(data)
        self._audio_dts += AAC_FRAME

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _on_video(self, t: float, data: bytes, key: bool) -> None:
        units = split_annexb(data)
        if self.init is None:
            if not key:
                return
            ps = parameter_sets(units)
            if ps is None:
                return
            self.init = init_segment(self.width, self.height, avcc_record(*ps), self.aac_config)
            self._t0 = t
        sample = avcc_sample(units)
        if self._video:
            start = self._t0 + self._part_start / VIDEO_TIMESCALE if self._part_start is not None else self._video[0][1]
            if key or t - start + 1.0 / self.fps > self.part_target + 1e-3:
                self._cut(t, segment_ends=key)
        if not self._video:  # a new part starts with this frame
            if key or self._open_msn is None:
                msn = self.first_msn if self._open_msn is None else self._open_msn + 1
                first = self._t0 + self._part_start / VIDEO_TIMESCALE if self._part_start is not None else t
                self.segments.append(Segment(msn, self._wall_offset + first))  # where its first frame's decode time is
                self._open_msn = msn
        self._video.append((sample, t, key))

    def _cut(self, end: float, *, segment_ends: bool) -> None:
        """Write the open part (it ends at ``end``, the next frame's time) and publish the new playlist."""
        assert self._t0 is not None
        video = self._video
        t0 = self._t0
        dts = [round((t - t0) * VIDEO_TIMESCALE) for _, t, _ in video] + [round((end - t0) * VIDEO_TIMESCALE)]
        if self._part_start is not None:  # parts follow each other without a hole
            dts[0] = min(self._part_start, dts[1] - 1)
        # a late frame (the capture dropped one) would make the part longer than PART-TARGET, which players rely
        # on: its last frame is shown a little shorter and the next part starts where this one ends
        dts[-1] = max(dts[-2] + 1, min(dts[-1], dts[0] + round(self.part_target * VIDEO_TIMESCALE)))
        self._part_start = dts[-1]
        samples = [(s, max(1, dts[i + 1] - dts[i]), k) for i, (s, _, k) in enumerate(video)]
        self._fill_silence(end)
        data = fragment(self._next_sequence(), samples, dts[0], self._audio, self._audio_next)
        if self._audio_dts is not None:
            self._audio_next = self._audio_dts
        self._audio = []
        self._video = []
        segment = self.segments[-1]
        segment.parts.append(Part(data, (dts[-1] - dts[0]) / VIDEO_TIMESCALE, video[0][2]))
        segment.duration += segment.parts[-1].duration
        if segment_ends:
            segment.done = True
            segment.data = b"".join(p.data for p in segment.parts)
            self._trim()
        self._publish()

    def _fill_silence(self, end: float) -> None:
        """No audio for over a second (an ingest without a microphone, a stalled one): silent AAC keeps the
        audio track going, so a player's buffer (audio and video alike) never waits for audio that does not come."""
        assert self._t0 is not None
        end_dts = round((end - self._t0 - 0.5) * AUDIO_RATE)
        if end_dts - (self._audio_dts if self._audio_dts is not None else 0) >= AUDIO_RATE:
            if self._audio_dts is None:
                self._audio_dts = self._audio_next = 0
            self._append_silence(end_dts)

    def _append_silence(self, until: int) -> None:
        assert self._audio_dts is not None
        if self._silence is None:
            from .restream_audio import Slate, _new_aac

            self._silence = Slate._silence(_new_aac(), AAC_FRAME, "fltp")
        while self._audio_dts + AAC_FRAME <= until:
            self._audio.append(self._silence)
            self._audio_dts += AAC_FRAME

    def _trim(self) -> None:
        done = [s for s in self.segments if s.done]
        for segment in done[:-(self.list_size + EXTRA_SEGMENTS)]:
            self.segments.remove(segment)
        for segment in self.segments[:-PART_SEGMENTS]:
            if segment.done and segment.keep_parts:
                segment.keep_parts = False
                segment.parts = [Part(b"", p.duration, p.independent) for p in segment.parts]  # the bytes go

    # --- the playlist
    def listed(self) -> list[Segment]:
        """The segments the playlist lists: the last ``list_size`` done ones and the open one (if it has a part)."""
        done = [s for s in self.segments if s.done][-self.list_size:]
        tail = [s for s in self.segments if not s.done and s.parts]
        return done + tail

    def _publish(self) -> None:
        segments = self.listed()
        if not any(s.done for s in segments):
            return  # not ready: the first full segment comes first (players without LL-HLS need one)
        lines = ["#EXTM3U", "#EXT-X-VERSION:9", f"#EXT-X-TARGETDURATION:{self.target_duration}",
                 f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={self.part_hold_back:.3f}",
                 f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
                 f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn}", "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init.mp4"']
        with_parts = {id(s) for s in segments[-PART_SEGMENTS:] if s.keep_parts}
        for segment in segments:
            pdt = datetime.datetime.fromtimestamp(segment.start, datetime.timezone.utc).isoformat(timespec="milliseconds")
            lines.append("#EXT-X-PROGRAM-DATE-TIME:" + pdt.replace("+00:00", "Z"))
            if id(segment) in with_parts:
                for i, part in enumerate(segment.parts):
                    lines.append(f'#EXT-X-PART:DURATION={part.duration:.5f},URI="seg{segment.msn}.{i}.m4s"'
                                 + (",INDEPENDENT=YES" if part.independent else ""))
            if segment.done:
                lines += [f"#EXTINF:{segment.duration:.5f},", f"seg{segment.msn}.m4s"]
        msn, index = self.open_part()
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{msn}.{index}.m4s"')
        self.playlist_text = ("\n".join(lines) + "\n").encode()
        wake, self._wake = self._wake, self._loop.create_future()
        wake.set_result(None)

    def open_part(self) -> tuple[int, int]:
        """(segment, part index) of the part being written: the one ``EXT-X-PRELOAD-HINT`` names (a keyframe
        ends a segment, so after a complete segment comes part 0 of the next)."""
        if not self.segments:
            return self.first_msn, 0
        segment = self.segments[-1]
        return (segment.msn + 1, 0) if segment.done else (segment.msn, len(segment.parts))

    def last_part(self) -> tuple[int, int]:
        """(segment, part index) of the newest part written."""
        for segment in reversed(self.segments):
            if segment.parts:
                return segment.msn, len(segment.parts) - 1
        return -1, -1

    def ready(self) -> bool:
        """Whether the playlist lists at least one full segment."""
        return bool(self.playlist_text)

    # --- serving
    def file(self, name: str) -> bytes | None:
        """The bytes of ``init.mp4``, ``seg<N>.m4s`` (done) or ``seg<N>.<i>.m4s`` (written, still listed); else None."""
        if name == "init.mp4":
            return self.init
        m = re.fullmatch(r"seg(\d+)(?:\.(\d+))?\.m4s", name)
        if m is None:
            return None
        msn, index = int(m.group(1)), m.group(2)
        for segment in self.segments:
            if segment.msn == msn:
                if index is None:
                    return segment.data
                i = int(index)
                if i < len(segment.parts) and segment.keep_parts:
                    return segment.parts[i].data
                return None
        return None

    def check_request(self, msn: int, part: int | None) -> str | None:
        """Why a blocking request for (``msn``, ``part``) is refused (400), or None."""
        open_msn, open_index = self.open_part()
        if msn > open_msn + 2:
            return f"_HLS_msn={msn} is more than two segments ahead of the one being written ({open_msn})"
        if part is not None:
            most = math.ceil(self.target_duration / self.part_target) * 2 + ADVANCE_PART_LIMIT
            if part > most or (msn == open_msn and part > open_index + ADVANCE_PART_LIMIT):
                return f"_HLS_part={part} is too far ahead of the part being written ({open_msn}.{open_index})"
        return None

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds part ``part`` of segment ``msn`` (or later), or segment ``msn``
        complete when ``part`` is None."""
        if not self.ready():
            return False
        if part is None:
            return any(s.done and s.msn >= msn for s in self.segments)
        return self.last_part() >= (msn, part)

    async def wait_for(self, check: Any, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until ``check()`` is true; False on timeout or when the output closed."""
        deadline = self._loop.time() + timeout
        while not check():
            remaining = deadline - self._loop.time()
            if self.closed or remaining <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(self._wake), remaining)
            except asyncio.TimeoutError:
                return False
        return not self.closed

    def memory(self) -> int:
        """Bytes held (segments and parts): bounded by ``hls_list_size``."""
        return sum(len(s.data or b"") + sum(len(p.data) for p in s.parts) for s in self.segments)

    def close(self) -> None:
        """Stop: waiting requests return (404), memory is freed."""
        self.closed = True
        self.segments = []
        self.playlist_text = b""
        if not self._wake.done():
            self._wake.set_result(None)


# --------------------------------------------------------------------------------------------- HTTP
# (the handler, ``serve_hls``, is in lmserver/media/app.py with the other media routes)

CACHE_PLAYLIST = "no-cache, max-age=1"
CACHE_SEGMENT = "public, max-age=86400, immutable"
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}


def cache_blocking(part_seconds: float) -> str:
    """A blocking reload's answer stays right (it holds at least the part asked for): a CDN may keep it for a
    few parts, so the viewers asking for the same part share one request to the studio."""
    return f"public, max-age={max(1, round(6 * part_seconds))}"
