"""``kill -9`` of a real ``lmserver serve`` in the middle of a storm of buyers, then a restart.

Each round: a product with 100 units in the live event's bag, a burst of buy requests over loopback HTTP
(each with its own Idempotency-Key), the server killed with SIGKILL once a round-specific number of orders
were acknowledged, then restarted. After the restart: every acknowledged (201) order exists and is placed,
nothing is left ``reserved``, stock + units in placed orders == 100 exactly. Then every buyer whose answer
was lost retries with the same key: nobody ends up with two orders for one purchase.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from lmserver import auth
from lmserver.orders import RESTART_REASON
from tests.conftest import PASSWORD
from tests.livehelpers import WATCHER, Server, go_live_http

ATTEMPTS = 300          # buy requests per round
CONCURRENCY = 100       # connections at once
STOCK = 100
#: when each round kills: once the server has committed N orders (reserved or further), or once N orders were
#: acknowledged to the client (by then the server is further on: answers are read later than they are sent)
KILLS = (("committed", 1), ("acknowledged", 5), ("committed", 30))


async def test_kill_9_during_a_storm_of_buyers(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.cli("user", "add", "host", "--role", "owner", stdin=PASSWORD + "\n")  # creates the database
    secret = os.urandom(32)
    (server.data / "secret.key").write_text(secret.hex())
    now = time.time()
    conn = server.db()
    event_id = conn.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                            " VALUES ('storm', 'Storm', ?, 120, ?, ?)", (now - 60, now, now)).lastrowid
    viewers = [f"storm-viewer-{i}" for i in range(ATTEMPTS)]
    conn.executemany("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", [(v, v, now) for v in viewers])

    def headers(i: int, key: str) -> dict[str, str]:
        vid = viewers[i]
        return {"Cookie": f"{auth.VIEWER_COOKIE}={auth.sign(secret, vid)}", "X-CSRF-Token": auth.viewer_csrf(secret, vid),
                "Idempotency-Key": key}

    url = f"{server.base}/api/e/{event_id}/orders"
    staff = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies of 127.0.0.1
    buyers = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY), timeout=aiohttp.ClientTimeout(total=60))
    released_total = replayed_total = 0
    try:
        await server.start(staff)
        await go_live_http(server, staff, event_id)
        for round_no, (kill_on, kill_after) in enumerate(KILLS):
            now = time.time()
            product_id = conn.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                                      " VALUES (?, 500, 'USD', ?, ?, ?)", (f"Drop {round_no}", STOCK, now, now)).lastrowid
            conn.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                         (event_id, product_id, round_no, now))
            purchases = [(i, str(uuid.uuid4()), {"product_id": product_id, "quantity": 1 + i % 2}) for i in range(ATTEMPTS)]
            acked: dict[str, int] = {}   # key → order id of a 201
            lost: list[tuple[int, str, dict[str, Any]]] = []

            async def attempt(i: int, key: str, body: dict[str, Any]) -> None:
                try:
                    async with buyers.post(url, json=body, headers=headers(i, key)) as resp:
                        data = await resp.json()
                        if resp.status == 201:
                            acked[key] = data["order"]["id"]
                            if kill_on == "acknowledged" and len(acked) == kill_after:
                                server.kill9()
                        else:
                            assert resp.status == 409, (resp.status, data)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    lost.append((i, key, body))

            watcher = None
            if kill_on == "committed":
                assert server.proc is not None
                watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(server.data / "lmserver.sqlite3"), str(product_id),
                                            str(kill_after), str(server.proc.pid)], stdout=subprocess.PIPE, text=True)
                assert watcher.stdout is not None
                assert await asyncio.to_thread(watcher.stdout.readline) == "watching\n"
            await asyncio.gather(*(attempt(*p) for p in purchases))
            if watcher is not None:
                out, _ = await asyncio.to_thread(watcher.communicate, None, 90)
                print(f"\nwatcher: {out.strip()}", end="")
            if server.proc is not None and server.proc.poll() is None:  # the burst ended first (not expected)
                server.kill9()
            server.wait_dead()
            assert lost, "the kill interrupted nothing"

            await server.start(staff)
            rows = {r["id"]: r for r in conn.execute("SELECT id, status, status_reason, quantity FROM orders WHERE product_id = ?",
                                                     (product_id,))}
            # every acknowledged order exists and is placed; nothing is left reserved anywhere
            assert all(rows[oid]["status"] == "placed" for oid in acked.values())
            assert conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'reserved'").fetchone()[0] == 0
            released = [r for r in rows.values() if r["status"] == "cancelled"]
            assert all(r["status_reason"] == RESTART_REASON for r in released)
            released_total += len(released)
            print(f"\nround {round_no} (kill once {kill_after} {kill_on}): {len(acked)} acknowledged, {len(lost)} lost,"
                  f" {len(released)} reservations released at restart")
            stock = conn.execute("SELECT stock FROM products WHERE id = ?", (product_id,)).fetchone()[0]
            placed_units = sum(r["quantity"] for r in rows.values() if r["status"] == "placed")
            assert stock + placed_units == STOCK, (stock, placed_units, len(released))

            # the buyers whose answer was lost retry with the same key once the LIVE is back
            await go_live_http(server, staff, event_id)
            answered: dict[str, int] = dict(acked)

            async def retry(i: int, key: str, body: dict[str, Any]) -> int:
                async with buyers.post(url, json=body, headers=headers(i, key)) as resp:
                    data = await resp.json()
                    assert resp.status in (200, 201, 409), (resp.status, data)
                    if resp.status in (200, 201):
                        answered[key] = data["order"]["id"]
                    return resp.status

            statuses = await asyncio.gather(*(retry(*p) for p in lost))
            replayed_total += statuses.count(200)
            placed = {r[0]: r[1] for r in conn.execute("SELECT id, quantity FROM orders WHERE product_id = ? AND status = 'placed'",
                                                       (product_id,))}
            # one placed order per purchase that got an answer, and no placed order nobody was told about
            assert sorted(answered.values()) == sorted(placed), (len(answered), len(placed))
            stock = conn.execute("SELECT stock FROM products WHERE id = ?", (product_id,)).fetchone()[0]
            assert stock + sum(placed.values()) == STOCK
        print(f"\n{len(KILLS)} kills: {released_total} reservations released at restart, {replayed_total} lost answers replayed")
    finally:
        await buyers.close()
        await staff.close()
        server.close()
        conn.close()
