"""WebSocket fan-out: each message is serialized once for all clients.

Every client has a bounded queue (``live.ws_queue_messages``). A client whose queue is full — a slow
tablet on bad Wi-Fi — is dropped with close code :data:`CLOSE_TOO_SLOW` and a logged reason, so it never
delays the others; its page reconnects and reloads the state.

Endpoints: ``/ws/console`` (staff; every record whole) and ``/ws/viewer?event=<id>`` (anonymous; only the
public records of that event, reduced to their public fields by the bus: see :mod:`lmserver.busevents`).
The hub itself never decides what is public: a ``"public"`` message is queued only for the viewer
sockets of its event, a ``"staff"`` message only for consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

#: close code sent to a client that could not keep up
CLOSE_TOO_SLOW = 4008


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    audience: str  # "staff" or "public"
    event_id: int | None
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    label: str = ""
    dropped: bool = False
    sender: "asyncio.Task[None] | None" = None
    transport: "asyncio.BaseTransport | None" = None

    def wants(self, audience: str, event_id: int | None) -> bool:
        if self.audience == "staff":
            return audience == "staff"
        return audience == "public" and event_id is not None and event_id == self.event_id


class Hub:
    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        #: the same clients by what they receive: ("staff", None) or ("public", event id)
        self._groups: dict[tuple[str, int | None], set[Client]] = {}
        self.sent = 0
        self.dropped = 0
        self.close_timeout = 5.0
        self._closing: set[asyncio.Task[None]] = set()

    def count(self, audience: str | None = None) -> int:
        return sum(1 for c in self.clients if audience is None or c.audience == audience)

    def broadcast(self, message: dict[str, Any], audience: str = "staff", event_id: int | None = None) -> None:
        """Serialize ``message`` once and queue it for every client of ``audience``: ``"staff"`` for the
        consoles, ``"public"`` for the viewer sockets of ``event_id`` (none when it is None). A public
        message must already hold only public fields (:meth:`lmserver.bus.Bus.dispatch` reduces it)."""
        group = self._groups.get(("staff", None) if audience == "staff" else (audience, event_id), ())
        targets = [c for c in group if not c.dropped and c.wants(audience, event_id)]
        if not targets:
            return
        text = json.dumps(message, separators=(",", ":"), default=str)
        for client in targets:
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client, f"{self.queue_size} messages queued: the client cannot keep up")

    def _drop(self, client: Client, reason: str) -> None:
        client.dropped = True
        self.dropped += 1
        self._remove(client)
        log.warning("Hub: dropping WebSocket client %s: %s", client.label, reason)
        task = asyncio.ensure_future(self._close_slow(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_slow(self, client: Client) -> None:
        """Stop the sender (it may be blocked on a full socket), send the close frame, abort if it never drains."""
        if client.sender is not None:
            client.sender.cancel()
        try:
            await asyncio.wait_for(client.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow: reconnect"), self.close_timeout)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            transport = client.transport
            if transport is not None:
                transport.abort()

    async def serve(self, request: web.Request, audience: str, event_id: int | None, hello: dict[str, Any] | None = None) -> web.WebSocketResponse:
        # compress=False: permessage-deflate measured 2.5x the CPU for 1000 clients
        ws = web.WebSocketResponse(heartbeat=25, compress=False, max_msg_size=64 * 1024)
        await ws.prepare(request)
        client = Client(ws, audience, event_id, asyncio.Queue(self.queue_size), label=f"{request.remote}/{audience}")
        client.transport = request.transport
        self.clients.add(client)
        self._groups.setdefault(self._key(client), set()).add(client)
        sender = client.sender = asyncio.create_task(self._sender(client))
        try:
            if hello is not None:
                client.queue.put_nowait(json.dumps(hello, default=str))
            async for msg in ws:  # clients only send pings; everything else goes through HTTP
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    with contextlib.suppress(asyncio.QueueFull):
                        client.queue.put_nowait('{"name":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._remove(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _sender(self, client: Client) -> None:
        while True:
            text = await client.queue.get()
            if client.dropped or client.ws.closed:
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionResetError, RuntimeError):
                return
            self.sent += 1

    async def close_all(self) -> None:
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"server shutting down")
        self.clients.clear()
        self._groups.clear()

    @staticmethod
    def _key(client: Client) -> tuple[str, int | None]:
        return ("staff", None) if client.audience == "staff" else ("public", client.event_id)

    def _remove(self, client: Client) -> None:
        self.clients.discard(client)
        group = self._groups.get(self._key(client))
        if group is not None:
            group.discard(client)
            if not group:
                del self._groups[self._key(client)]
