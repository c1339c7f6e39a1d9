"""Helpers for the console / viewer / orders tests: an event with a shopping bag, going live, viewers; and a real
``lmserver serve`` process to ``kill -9`` (:class:`Server`, :data:`WATCHER`, :func:`go_live_http`) for the crash tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from lmserver import auth
from lmserver.appkeys import DB, LIVE, SECRET

_n = itertools.count(1)


async def make_event(app: Any, title: str = "Spring sale", starts_in: float = -60.0) -> int:
    now = time.time()
    n = next(_n)
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES (?, ?, ?, 60, ?, ?)",
            (f"show-{n}-{int(now)}", title, now + starts_in, now, now))
        return cur.lastrowid


async def make_product(app: Any, title: str = "Mug", stock: int = 10, price_cents: int = 1250, event_id: int | None = None) -> int:
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at) VALUES (?, ?, 'USD', ?, ?, ?)",
            (title, price_cents, stock, now, now))
        pid = cur.lastrowid
        if event_id is not None:
            pos = await (await tx.execute("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (event_id,))).fetchone()
            await tx.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                             (event_id, pid, pos[0], now))
    return pid


async def go_live(app: Any, event_id: int, practice: bool = False) -> Any:
    return await app[LIVE].begin("test", practice, None, event_id=event_id)


async def new_viewer(app: Any, nickname: str | None = None) -> dict[str, str]:
    """A viewer row and the headers that carry its cookie and CSRF token."""
    vid = f"v{next(_n)}x{int(time.time() * 1000)}"
    await app[DB].execute("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", (vid, nickname, time.time()))
    return {"id": vid, "Cookie": f"{auth.VIEWER_COOKIE}={auth.sign(app[SECRET], vid)}",
            "X-CSRF-Token": auth.viewer_csrf(app[SECRET], vid)}


def vh(viewer: dict[str, str]) -> dict[str, str]:
    return {"Cookie": viewer["Cookie"], "X-CSRF-Token": viewer["X-CSRF-Token"]}


async def staff_cookie(client: Any, role: str = "owner") -> dict[str, str]:
    """Log a staff user in and return headers carrying their session (the client's cookie jar stays empty,
    so the same client can act as viewers too)."""
    from tests.conftest import login

    client.session.cookie_jar.clear()
    csrf = await login(client, role)
    cookie = next(c for c in client.session.cookie_jar if c.key == auth.SESSION_COOKIE)
    client.session.cookie_jar.clear()
    return {"Cookie": f"{auth.SESSION_COOKIE}={cookie.value}", "X-CSRF-Token": csrf}


# --------------------------------------------------------------------------------------------- a real server to kill

LAVFI = "lavfi:testsrc2"  # a capture source id (media.capture_lavfi is on for this server)


#: run in its own process (its own GIL, as an outside observer): SIGKILL the server as soon as N orders of the
#: product are committed, at least one of them still ``reserved`` (a checkout under way), within 60 s
WATCHER = """
import os, signal, sqlite3, sys, time
path, product_id, orders, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
conn = sqlite3.connect(path, timeout=30)
print("watching", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    total, reserved = conn.execute("SELECT COUNT(*), COUNT(CASE WHEN status = 'reserved' THEN 1 END) FROM orders"
                                   " WHERE product_id = ?", (product_id,)).fetchone()
    if total >= orders and reserved:
        os.kill(pid, signal.SIGKILL)
        print(f"killed at {total} orders, {reserved} reserved", flush=True)
        break
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m lmserver serve`` on a data directory, small program settings, started and killed for real."""

    def __init__(self, tmp: Path):
        self.data = tmp / "data"
        self.log = open(tmp / "server.log", "ab")  # noqa: SIM115 (closed in close())
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
        self.env.update({"LMSERVER_MEDIA_WIDTH": "160", "LMSERVER_MEDIA_HEIGHT": "120", "LMSERVER_MEDIA_FPS": "5",
                         "LMSERVER_MEDIA_RECORD": "false", "LMSERVER_MEDIA_FANOUT_PROCESSES": "0",
                         "LMSERVER_MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1", "LMSERVER_MEDIA_CAPTURE_LAVFI": "true"})
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str = "") -> None:
        r = subprocess.run([sys.executable, "-m", "lmserver", *args, "--data-dir", str(self.data)], input=stdin.encode(),
                           capture_output=True, timeout=60, env=self.env)
        assert r.returncode == 0, r.stderr.decode()

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "lmserver", "serve", "--port", str(self.port), "--data-dir", str(self.data)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        for _ in range(300):  # the port opens once the startup (migrations, reconciliation) is done
            assert self.proc.poll() is None, f"the server exited with {self.proc.returncode}: see {self.log.name}"
            try:
                async with http.get(self.base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("the server did not start within 60 s")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    def wait_dead(self) -> None:
        assert self.proc is not None
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.data / "lmserver.sqlite3", timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn


async def go_live_http(server: Server, http: aiohttp.ClientSession, event_id: int) -> None:
    """Log the owner ``host`` in and go live in ``event_id`` from the server's test capture source (over HTTP)."""
    http.cookie_jar.clear()  # a fresh login (a logged-in session would need its CSRF token to log in again)
    from tests.conftest import PASSWORD

    async with http.post(server.base + "/api/login", json={"name": "host", "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        csrf = (await resp.json())["csrf_token"]
    async with http.post(server.base + "/api/media/capture", json={"source": LAVFI, "event_id": event_id},
                         headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 201, await resp.text()
