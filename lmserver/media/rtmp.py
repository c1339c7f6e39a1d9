"""A small RTMP(S) publisher: handshake, connect/createStream/publish, FLV tags in chunks.

Written on plain sockets (not FFmpeg's rtmp protocol) so that every blocking call has a timeout
(the stall watchdog), the TLS trust is ours (``ssl`` with an optional extra CA file for a
self-signed terminator), and a failure names its cause: DNS, refused, TLS, auth (the server's
``onStatus`` code), timeout. The video is the program's H.264 as FLV/AVC (an ``avcC`` sequence
header built from the SPS/PPS, then length-prefixed NAL units); the audio is AAC.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CHUNK_SIZE = 4096
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}


class RtmpError(Exception):
    """A publishing failure; ``cause`` is one of dns, refused, tls, auth, timeout, closed, protocol."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class RtmpTarget:
    scheme: str
    host: str
    port: int
    app: str
    tc_url: str
    key: str


def parse_target(server_url: str, key: str) -> RtmpTarget:
    """``rtmp[s]://host[:port]/app[/more]`` and a stream key -> where to publish (ValueError says what is wrong)."""
    parts = urlsplit(server_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unknown scheme {parts.scheme + '://' if parts.scheme else '(none)'}: an RTMP server URL starts"
                         " with rtmp:// or rtmps://")
    if not parts.hostname:
        raise ValueError("the server URL has no host: e.g. rtmp://a.rtmp.youtube.com/live2")
    app = parts.path.strip("/")
    if not app:
        raise ValueError("the server URL has no application path: e.g. rtmp://live.twitch.tv/app")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("the server URL's port is not a number between 1 and 65535") from None
    tc_url = f"{scheme}://{parts.netloc}/{app}"
    if parts.query:
        app += "?" + parts.query
        tc_url += "?" + parts.query
    return RtmpTarget(scheme, parts.hostname, port, app, tc_url, key)


# --- AMF0 -----------------------------------------------------------------------------------

def amf_encode(value: Any) -> bytes:
    if value is None:
        return b"\x05"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        data = value.encode()
        return b"\x02" + struct.pack(">H", len(data)) + data
    if isinstance(value, dict):
        body = b"".join(struct.pack(">H", len(k.encode())) + k.encode() + amf_encode(v) for k, v in value.items())
        return b"\x03" + body + b"\x00\x00\x09"
    raise TypeError(f"cannot AMF-encode {type(value).__name__}")


def amf_decode(data: bytes) -> list[Any]:
    values: list[Any] = []
    pos = 0

    def one() -> Any:
        nonlocal pos
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            pos += 8
            return struct.unpack(">d", data[pos - 8:pos])[0]
        if marker == 0x01:
            pos += 1
            return bool(data[pos - 1])
        if marker == 0x02:
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            pos += 2 + n
            return data[pos - n:pos].decode("utf-8", "replace")
        if marker in (0x03, 0x08):
            if marker == 0x08:
                pos += 4
            obj: dict[str, Any] = {}
            while pos + 3 <= len(data) and data[pos:pos + 3] != b"\x00\x00\x09":
                (n,) = struct.unpack(">H", data[pos:pos + 2])
                pos += 2 + n
                name = data[pos - n:pos].decode("utf-8", "replace")
                obj[name] = one()
            pos += 3
            return obj
        if marker in (0x05, 0x06):
            return None
        if marker == 0x0A:
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            pos += 4
            return [one() for _ in range(n)]
        raise ValueError(f"unsupported AMF0 marker {marker}")

    try:
        while pos < len(data):
            values.append(one())
    except (ValueError, IndexError, struct.error):
        pass  # keep what was read: only the command name, transaction and info codes matter here
    return values


# --- FLV payloads ---------------------------------------------------------------------------

def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (start codes removed)."""
    units: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt == -1 else (nxt - 1 if data[nxt - 1] == 0 else nxt)
        if end > begin:
            units.append(data[begin:end])
        start = nxt
    return units


def avcc_record(sps: bytes, pps: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord (``avcC``) of one SPS and one PPS (4-byte NAL lengths)."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
            + b"\x01" + struct.pack(">H", len(pps)) + pps)


def parameter_sets(units: list[bytes]) -> tuple[bytes, bytes] | None:
    sps = next((u for u in units if u[0] & 0x1F == 7), None)
    pps = next((u for u in units if u[0] & 0x1F == 8), None)
    return (sps, pps) if sps and pps else None


def flv_avc_header(avcc: bytes) -> bytes:
    return b"\x17\x00\x00\x00\x00" + avcc


def flv_avc_frame(units: list[bytes], keyframe: bool) -> bytes:
    body = b"".join(struct.pack(">I", len(u)) + u for u in units if u[0] & 0x1F not in (7, 8, 9))
    return (b"\x17" if keyframe else b"\x27") + b"\x01\x00\x00\x00" + body


def flv_aac_header(audio_specific_config: bytes) -> bytes:
    return b"\xaf\x00" + audio_specific_config


def flv_aac_frame(data: bytes) -> bytes:
    return b"\xaf\x01" + data


# --- the publisher --------------------------------------------------------------------------

def _cause_of(exc: BaseException) -> RtmpError:
    if isinstance(exc, RtmpError):
        return exc
    if isinstance(exc, socket.gaierror):
        return RtmpError("dns", f"DNS: the server's name does not resolve ({exc.strerror or exc})")
    if isinstance(exc, ConnectionRefusedError):
        return RtmpError("refused", "refused: nothing accepts connections at that host and port")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RtmpError("tls", f"TLS: the server's certificate is not trusted ({exc.verify_message or exc})"
                                " — for a self-signed terminator set media.restream_ca_file")
    if isinstance(exc, ssl.SSLError):
        return RtmpError("tls", f"TLS: the handshake failed ({exc.reason or exc}): is it an rtmps:// server?")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RtmpError("timeout", "timeout: the server accepted no data for the stall limit")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return RtmpError("closed", "closed: the server closed the connection")
    if isinstance(exc, OSError):
        return RtmpError("network", f"network: {exc.strerror or exc}")
    return RtmpError("protocol", f"protocol: {exc}")


class RtmpPublisher:
    """One publishing connection. Blocking; every call times out after ``timeout`` seconds."""

    def __init__(self, target: RtmpTarget, *, timeout: float = 10.0, ca_file: str = "") -> None:
        self.target = target
        self.timeout = timeout
        self.ca_file = ca_file
        self.sock: socket.socket | None = None
        self.bytes_sent = 0
        self.stream_id = 1
        self._in_chunk = 128
        self._headers: dict[int, list[int]] = {}
        self._partial: dict[int, bytearray] = {}
        self._buf = b""

    # connection
    def connect(self, metadata: dict[str, Any] | None = None) -> None:
        try:
            self._connect(metadata or {})
        except BaseException as exc:
            self.close()
            raise _cause_of(exc) from exc

    def _connect(self, metadata: dict[str, Any]) -> None:
        t = self.target
        sock = socket.create_connection((t.host, t.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.scheme == "rtmps":
            ctx = ssl.create_default_context()
            if self.ca_file:
                ctx.load_verify_locations(self.ca_file)
            sock = ctx.wrap_socket(sock, server_hostname=t.host)
        self.sock = sock
        # handshake: C0+C1, S0+S1+S2, C2 (= S1)
        c1 = b"\x00" * 8 + os.urandom(1528)
        self._send(b"\x03" + c1)
        s0s1 = self._recv_exact(1 + 1536)
        if s0s1[0] != 3:
            raise RtmpError("protocol", f"protocol: not an RTMP server (handshake version {s0s1[0]})")
        self._recv_exact(1536)
        self._send(s0s1[1:])
        self._send_message(2, 1, 0, struct.pack(">I", CHUNK_SIZE))  # Set Chunk Size
        self._command(3, "connect", 1, {"app": t.app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; lmserver)",
                                        "tcUrl": t.tc_url})
        self._await_result(1, "connect")
        self._command(3, "releaseStream", 2, None, t.key)
        self._command(3, "FCPublish", 3, None, t.key)
        self._command(3, "createStream", 4, None)
        result = self._await_result(4, "createStream")
        if len(result) > 3 and isinstance(result[3], float):
            self.stream_id = int(result[3])
        self._command(4, "publish", 5, None, t.key, "live", stream=self.stream_id)
        self._await_status()
        if metadata:
            payload = amf_encode("@setDataFrame") + amf_encode("onMetaData") + b"\x08" + struct.pack(">I", len(metadata)) \
                + amf_encode(metadata)[1:]
            self._send_message(4, 18, 0, payload, stream=self.stream_id)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    # media
    def send_video(self, timestamp_ms: int, body: bytes) -> None:
        self._media(6, 9, timestamp_ms, body)

    def send_audio(self, timestamp_ms: int, body: bytes) -> None:
        self._media(4, 8, timestamp_ms, body)

    def _media(self, csid: int, kind: int, timestamp_ms: int, body: bytes) -> None:
        try:
            self._send_message(csid, kind, timestamp_ms, body, stream=self.stream_id)
        except BaseException as exc:
            raise _cause_of(exc) from exc

    def drain(self) -> None:
        """Read (and drop) what the server sent meanwhile (acknowledgements, pings); notices a closed connection."""
        sock = self.sock
        if sock is None:
            return
        try:
            while True:
                pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
                if not pending and not select.select([sock], [], [], 0)[0]:
                    return
                data = sock.recv(65536)
                if not data:
                    raise RtmpError("closed", "closed: the server closed the connection")
        except BaseException as exc:
            raise _cause_of(exc) from exc

    # chunk stream
    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)
        self.bytes_sent += len(data)

    def _send_message(self, csid: int, kind: int, timestamp: int, payload: bytes, stream: int = 0) -> None:
        extended = timestamp >= 0xFFFFFF
        ts = 0xFFFFFF if extended else timestamp
        ext = struct.pack(">I", timestamp) if extended else b""
        header = bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big") + bytes([kind]) \
            + struct.pack("<I", stream) + ext
        out = [header, payload[:CHUNK_SIZE]]
        for pos in range(CHUNK_SIZE, len(payload), CHUNK_SIZE):
            out.append(bytes([0xC0 | csid]) + ext)
            out.append(payload[pos:pos + CHUNK_SIZE])
        self._send(b"".join(out))

    def _command(self, csid: int, name: str, txn: int, *args: Any, stream: int = 0) -> None:
        payload = amf_encode(name) + amf_encode(txn) + b"".join(amf_encode(a) for a in args)
        self._send_message(csid, 20, 0, payload, stream=stream)

    def _recv_exact(self, n: int) -> bytes:
        assert self.sock is not None
        while len(self._buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise RtmpError("closed", "closed: the server closed the connection during the RTMP handshake"
                                " (wrong application path, or an rtmps:// server reached with rtmp://?)")
            self._buf += data
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_message(self) -> tuple[int, bytes]:
        """The next complete message: (type, payload)."""
        while True:
            first = self._recv_exact(1)[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid == 0:
                csid = 64 + self._recv_exact(1)[0]
            elif csid == 1:
                b = self._recv_exact(2)
                csid = 64 + b[0] + b[1] * 256
            state = self._headers.setdefault(csid, [0, 0, 0, 0])  # timestamp, length, type, stream
            if fmt <= 2:
                h = self._recv_exact((11, 7, 3)[fmt])
                ts = int.from_bytes(h[0:3], "big")
                if fmt <= 1:
                    state[1] = int.from_bytes(h[3:6], "big")
                    state[2] = h[6]
                if ts == 0xFFFFFF:
                    self._recv_exact(4)
            part = self._partial.setdefault(csid, bytearray())
            take = min(self._in_chunk, state[1] - len(part))
            part += self._recv_exact(take)
            if len(part) < state[1]:
                continue
            payload = bytes(part)
            self._partial[csid] = bytearray()
            if state[2] == 1:
                self._in_chunk = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                continue
            return state[2], payload

    def _await_result(self, txn: int, what: str) -> list[Any]:
        for _ in range(64):
            kind, payload = self._read_message()
            if kind != 20:
                continue
            values = amf_decode(payload)
            if len(values) >= 2 and values[1] == txn:
                if values[0] == "_result":
                    return values
                info = next((v for v in values[2:] if isinstance(v, dict)), {})
                raise RtmpError("auth" if what == "connect" else "protocol",
                                f"{'auth' if what == 'connect' else 'protocol'}: the server refused {what}"
                                f" ({info.get('code', '')} {info.get('description', '')})".rstrip())
        raise RtmpError("protocol", f"protocol: no answer to {what}")

    def _await_status(self) -> None:
        for _ in range(64):
            try:
                kind, payload = self._read_message()
            except RtmpError as exc:
                if exc.cause == "closed":
                    raise RtmpError("auth", "auth: the server closed the connection on publish: check the stream key") from None
                raise
            if kind != 20:
                continue
            values = amf_decode(payload)
            if not values or values[0] != "onStatus":
                continue
            info = next((v for v in values[2:] if isinstance(v, dict)), {})
            code = str(info.get("code", ""))
            if code == "NetStream.Publish.Start":
                return
            if info.get("level") == "error" or code.startswith("NetStream.Publish."):
                raise RtmpError("auth", f"auth: the server refused the stream key ({code} {info.get('description', '')})".rstrip())
        raise RtmpError("protocol", "protocol: no answer to publish")
