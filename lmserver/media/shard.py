"""Viewer processes: WHEP viewers served from another process, to use more than one core.

Sending to a viewer (packetize, SRTP, sendto) runs on an event loop; one loop fills one core near
200 viewers. A :class:`Shard` is a child process (``python -m lmserver.media.shard_worker``) with its own
loop that hosts a share of the viewers. The main process sends it each program packet once over
a pipe; the shard fans it out to its viewers exactly like the main process does, and reports
back keyframe requests and viewers that leave.

Pipe frames: 4-byte big-endian length, 1-byte type, payload. Type 1 = packet (kind, keyframe,
pts, time base, data), type 2 = JSON control message.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

import av

from .fanout import Fanout

logger = logging.getLogger(__name__)

T_PACKET, T_JSON = 1, 2
_HEAD = struct.Struct(">IB")
_PKT = struct.Struct(">BBqII")
#: Main -> shard bytes allowed in flight before packets are dropped (the shard resumes at a keyframe).
MAX_BUFFERED = 8 * 1024 * 1024


def _frame(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) + 1, kind) + payload


def encode_packet(kind: str, packet: av.Packet) -> bytes:
    tb = packet.time_base or fractions.Fraction(1, 90000)
    head = _PKT.pack(0 if kind == "video" else 1, 1 if packet.is_keyframe else 0, packet.pts or 0, tb.numerator, tb.denominator)
    return _frame(T_PACKET, head + bytes(packet))


def decode_packet(payload: bytes) -> tuple[str, av.Packet]:
    kind, key, pts, num, den = _PKT.unpack_from(payload)
    packet = av.Packet(payload[_PKT.size :])
    packet.pts = packet.dts = pts
    packet.time_base = fractions.Fraction(num, den)
    packet.is_keyframe = bool(key)
    return ("video" if kind == 0 else "audio"), packet


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    try:
        head = await reader.readexactly(_HEAD.size)
        length, kind = _HEAD.unpack(head)
        return kind, await reader.readexactly(length - 1)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None


# ---------------------------------------------------------------------------------------- main side


class Shard:
    """The main process's handle on one viewer process."""

    def __init__(
        self,
        ice_addresses: list[str],
        queue_packets: int,
        on_keyframe: Callable[[], None],
        on_viewer_state: Callable[[str, str], Any],
    ) -> None:
        self.ice_addresses = ice_addresses
        self.queue_packets = queue_packets
        self.on_keyframe = on_keyframe
        self.on_viewer_state = on_viewer_state  # (viewer id, "connected" | "left")
        self.viewers: set[str] = set()
        self.proc: asyncio.subprocess.Process | None = None
        self.alive = False
        self.dropping = False
        self.dropped = 0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        root = str(Path(__file__).resolve().parent.parent.parent)  # lmserver importable whatever the cwd
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lmserver.media.shard_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        self.alive = True
        self._send({"op": "config", "ice": self.ice_addresses, "queue": self.queue_packets})
        self._reader_task = asyncio.ensure_future(self._read())

    def _send(self, message: dict[str, Any]) -> None:
        if self.alive and self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(_frame(T_JSON, json.dumps(message).encode()))

    def publish(self, kind: str, packet: av.Packet) -> None:
        """Forward one program packet (called for every packet; never blocks)."""
        if not self.alive or not self.viewers or self.proc is None or self.proc.stdin is None:
            return
        transport = self.proc.stdin.transport
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            self.dropping = True
        if self.dropping:
            if not (kind == "video" and packet.is_keyframe) or transport.get_write_buffer_size() > MAX_BUFFERED // 2:
                self.dropped += 1
                if kind == "video":
                    self.on_keyframe()
                return
            self.dropping = False
        self.proc.stdin.write(encode_packet(kind, packet))

    async def offer(self, viewer_id: str, sdp: str) -> dict[str, Any]:
        """Have the shard answer a viewer's offer: {"sdp": ...} or {"status", "message"}."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[viewer_id] = future
        self.viewers.add(viewer_id)
        self._send({"op": "offer", "id": viewer_id, "sdp": sdp})
        try:
            result = await asyncio.wait_for(future, 20)
        except asyncio.TimeoutError:
            result = {"status": 503, "message": "the viewer process did not answer: try again"}
        finally:
            self._pending.pop(viewer_id, None)
        if "sdp" not in result:
            self.viewers.discard(viewer_id)
        return result

    def close_viewer(self, viewer_id: str) -> None:
        if viewer_id in self.viewers:
            self.viewers.discard(viewer_id)
            self._send({"op": "close", "id": viewer_id})

    def end_session(self) -> None:
        """The stream ended: the shard closes all its viewers."""
        self.viewers.clear()
        self.dropping = False
        self._send({"op": "end"})

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            item = await read_frame(self.proc.stdout)
            if item is None:
                break
            message = json.loads(item[1])
            op = message.get("op")
            if op in ("answer", "error"):
                future = self._pending.get(message["id"])
                if future is not None and not future.done():
                    future.set_result(message)
            elif op == "keyframe":
                self.on_keyframe()
            elif op in ("connected", "left"):
                if op == "left":
                    self.viewers.discard(message["id"])
                await self.on_viewer_state(message["id"], op)
        self.alive = False
        for viewer_id in list(self.viewers):
            self.viewers.discard(viewer_id)
            await self.on_viewer_state(viewer_id, "left")
        for future in self._pending.values():
            if not future.done():
                future.set_result({"status": 503, "message": "the viewer process stopped: try again"})

    async def close(self) -> None:
        if self.proc is None:
            return
        self._send({"op": "quit"})
        self.alive = False
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


# ---------------------------------------------------------------------------------------- shard side


class _Worker:
    def __init__(self, writer: asyncio.StreamWriter | Any) -> None:
        self.writer = writer
        self.queue_packets = 256
        self.fanout = Fanout(self.queue_packets, self.request_keyframe)
        self.viewers: dict[str, Any] = {}
        self._last_request = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(_frame(T_JSON, json.dumps(message).encode()))

    def request_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._last_request >= 0.05:  # the encoder rate-limits too; this only saves messages
            self._last_request = now
            self.send({"op": "keyframe"})

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def offer(self, viewer_id: str, sdp: str) -> None:
        from ..errors import ApiError
        from .rtc import SdpError, check_offer
        from .viewers import answer_viewer

        try:
            offer = check_offer(sdp)
            pc, video_q, audio_q, answer = await answer_viewer(offer, self.fanout, self.request_keyframe)
        except (ApiError, SdpError) as exc:
            status = getattr(exc, "status", 400)
            self.send({"op": "error", "id": viewer_id, "status": status, "message": getattr(exc, "message", str(exc))})
            return
        self.viewers[viewer_id] = (pc, video_q, audio_q)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                self.send({"op": "connected", "id": viewer_id})
            elif pc.connectionState in ("failed", "closed") and viewer_id in self.viewers:
                await self.close_viewer(viewer_id, report=True)

        self.send({"op": "answer", "id": viewer_id, "sdp": answer})

    async def close_viewer(self, viewer_id: str, report: bool = False) -> None:
        entry = self.viewers.pop(viewer_id, None)
        if entry is None:
            return
        pc, video_q, audio_q = entry
        self.fanout.unsubscribe(video_q, audio_q)
        await pc.close()
        if report:
            self.send({"op": "left", "id": viewer_id})

    async def end(self) -> None:
        for viewer_id in list(self.viewers):
            await self.close_viewer(viewer_id)
        self.fanout = Fanout(self.queue_packets, self.request_keyframe)

    async def run(self, reader: asyncio.StreamReader) -> None:
        from .rtc import set_ice_host_addresses

        while True:
            item = await read_frame(reader)
            if item is None:
                break
            kind, payload = item
            if kind == T_PACKET:
                what, packet = decode_packet(payload)
                if what == "video":
                    self.fanout.publish_video(packet)
                else:
                    self.fanout.publish_audio(packet)
                continue
            message = json.loads(payload)
            op = message["op"]
            if op == "config":
                set_ice_host_addresses(message["ice"])
                self.queue_packets = message["queue"]
                self.fanout = Fanout(self.queue_packets, self.request_keyframe)
            elif op == "offer":
                self.spawn(self.offer(message["id"], message["sdp"]))
            elif op == "close":
                self.spawn(self.close_viewer(message["id"]))
            elif op == "end":
                await self.end()
            elif op == "quit":
                break
        await self.end()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def serve() -> None:
    """Run a viewer process's loop on stdin/stdout (``python -m lmserver.media.shard_worker``)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    await _Worker(writer).run(reader)
    transport.close()

