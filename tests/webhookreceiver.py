"""A real webhook receiver on loopback, for the webhook tests and ``bench/orders.py``: an aiohttp server on
127.0.0.1 that verifies every request with the Standard Webhooks algorithm written out here (independently of
lmserver's code), answers from a script of statuses and records what it accepted (by ``webhook-id``).

``rx = await Receiver().start()`` … ``await rx.stop()``, or ``async with Receiver() as rx:``; add each endpoint's
secret to ``rx.secrets`` (a request no secret verifies gets 401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Callable

from aiohttp import web


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The receiver's check, as the Standard Webhooks specification writes it."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1]) for sig in headers["webhook-signature"].split(" ")
               if sig.startswith("v1,"))


class Receiver:
    """An aiohttp server on 127.0.0.1 that answers from a script of statuses and records what it accepted."""

    def __init__(self, script: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (200, {})) -> None:
        self.script = script
        self.secrets: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.accepted: dict[str, int] = {}  # webhook-id -> times accepted with a 2xx
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    @property
    def count(self) -> int:
        """Requests answered with a 2xx (a message retried and accepted twice counts twice)."""
        return sum(self.accepted.values())

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = any(verify(s, request.headers, body) for s in self.secrets)
        status, headers = self.script(len(self.requests)) if ok else (401, {})
        self.requests.append({"id": request.headers.get("webhook-id"), "ts": request.headers.get("webhook-timestamp"),
                              "sig": request.headers.get("webhook-signature"), "body": json.loads(body), "verified": ok,
                              "status": status, "at": time.time()})
        if 200 <= status < 300:
            self.accepted[request.headers["webhook-id"]] = self.accepted.get(request.headers["webhook-id"], 0) + 1
        return web.Response(status=status, headers=headers)

    async def start(self, port: int = 0) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> "Receiver":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
