"""``kill -9`` with undelivered webhook messages: after the restart every one arrives, exactly once.

A real ``lmserver serve`` process; its endpoint's receiver is down (connection refused) while products are
created, so the messages wait in the outbox; one more product is created right before SIGKILL (its activity
row may not even be fanned out yet). Then the receiver comes up and the server restarts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.conftest import PASSWORD
from tests.livehelpers import Server, free_port
from tests.test_webhooks import until
from tests.webhookreceiver import Receiver


async def test_kill_9_with_undelivered_messages(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.env.update({"LMSERVER_WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8", "LMSERVER_WEBHOOKS_RETRY_BASE_SECONDS": "0.2"})
    server.cli("user", "add", "host", "--role", "owner", stdin=PASSWORD + "\n")
    port = free_port()
    rx = Receiver()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await server.start(http)

        async def login() -> dict[str, str]:
            http.cookie_jar.clear()
            async with http.post(server.base + "/api/login", json={"name": "host", "password": PASSWORD}) as resp:
                assert resp.status == 200, await resp.text()
                return {"X-CSRF-Token": (await resp.json())["csrf_token"]}

        h = await login()
        async with http.post(server.base + "/api/webhooks", headers=h,
                             json={"url": f"http://127.0.0.1:{port}/hook", "events": ["product.created"]}) as resp:
            assert resp.status == 201, await resp.text()
            rx.secrets.append((await resp.json())["secret"])
        created = []
        for i in range(6):
            async with http.post(server.base + "/api/products", headers=h, json={"title": f"Item {i}", "price_cents": 100, "stock": 1}) as resp:
                assert resp.status == 201, await resp.text()
                created.append((await resp.json())["product"]["id"])
            if i == 4:  # the first five were tried (refused) and wait for their retry
                conn = server.db()
                await until(lambda: conn.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE attempts >= 1").fetchone()[0] == 5, 30)
        server.kill9()  # right after the sixth product's 201
        server.wait_dead()
        conn = server.db()
        assert conn.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'").fetchone()[0] == 0

        await rx.start(port)
        started = time.monotonic()
        await server.start(http)
        await until(lambda: len(rx.accepted) == 6, 60)
        await asyncio.sleep(1.0)  # and nothing arrives twice
        assert sorted(r["body"]["data"]["product"]["id"] for r in rx.requests if r["status"] == 200) == created
        assert all(n == 1 for n in rx.accepted.values()) and all(r["verified"] for r in rx.requests)
        assert conn.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'").fetchone()[0] == 6
        print(f"\nall six delivered {time.monotonic() - started:.1f} s after the restart began;"
              f" {len(rx.requests)} requests: {json.dumps(sorted(rx.accepted.values()))}", end="")
    finally:
        await http.close()
        await rx.stop()
        server.close()
