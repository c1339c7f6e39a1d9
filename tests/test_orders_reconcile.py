"""Reservations whose checkout never finished: released at startup (a crash left them) and by the periodic pass
(a checkout that hangs), with the reason on the order; a checkout answering after its release places nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from lmserver import orders
from lmserver.appkeys import BUS, DB, LIVE
from lmserver.db import DB_FILENAME, run_migrations
from lmserver.migrations import MIGRATIONS
from lmserver.plugins.hookspecs import hookimpl
from lmserver.plugins.types import CheckoutResult
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


def crashed_database(data_dir: Path) -> dict[str, Any]:
    """A database as ``kill -9`` in a burst leaves it (the probe's worst round): 100 units, 42 orders placed and
    acknowledged, 51 reserved whose confirmation never committed, stock 7; some reservations carry an
    Idempotency-Key, as does one placed order."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DB_FILENAME
    run_migrations(path, MIGRATIONS)
    conn = sqlite3.connect(path, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    eid = conn.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                       " VALUES ('drop', 'Drop', ?, 60, ?, ?)", (now - 600, now, now)).lastrowid
    pid = conn.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                       " VALUES ('Limited drop', 500, 'USD', 7, ?, ?)", (now, now)).lastrowid
    conn.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, 0, ?)", (eid, pid, now))
    sid = conn.execute("INSERT INTO sessions (event_id, practice, source, started_at) VALUES (?, 0, 'whip', ?)", (eid, now - 300)).lastrowid
    placed, reserved = [], []
    for i in range(93):
        vid = f"buyer{i}"
        conn.execute("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", (vid, vid, now))
        status = "placed" if i < 42 else "reserved"
        oid = conn.execute("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                           " currency, status, first_time, practice, created_at) VALUES (?, ?, ?, ?, 1, 500, 500, 'USD', ?, 1, 0, ?)",
                           (vid, pid, eid, sid, status, now - 5)).lastrowid
        (placed if status == "placed" else reserved).append(oid)
        if i in (0, 50, 51):  # the placed one has its answer stored; the reserved ones never got one
            conn.execute("INSERT INTO order_idempotency (viewer_id, key, order_id, response, created_at) VALUES (?, ?, ?, ?, ?)",
                         (vid, f"key-{i}", oid, json.dumps({"id": oid}) if status == "placed" else None, now - 5))
    conn.execute("COMMIT")
    conn.close()
    return {"event_id": eid, "product_id": pid, "session_id": sid, "placed": placed, "reserved": reserved, "path": path}


async def test_startup_releases_every_reservation_left_by_a_crash(aiohttp_client: Any, app_factory: Any, data_dir: Path) -> None:
    crash = crashed_database(data_dir)
    client = await aiohttp_client(app_factory())
    db = client.app[DB]
    pid = crash["product_id"]
    assert await db.fetchval("SELECT COUNT(*) FROM orders WHERE status = 'reserved'") == 0
    # the 51 units are back: stock + units in placed orders == 100 again
    assert await db.fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 7 + 51
    rows = await db.fetchall("SELECT id, status, status_reason FROM orders WHERE status = 'cancelled' ORDER BY id")
    assert [r["id"] for r in rows] == crash["reserved"]
    assert {r["status_reason"] for r in rows} == {orders.RESTART_REASON}
    # acknowledged orders are untouched
    placed = await db.fetchall("SELECT id, status_reason FROM orders WHERE status = 'placed' ORDER BY id")
    assert [r["id"] for r in placed] == crash["placed"] and all(r["status_reason"] is None for r in placed)
    # the released orders' keys are free again (a retry buys anew); the placed order keeps its key
    assert [r["key"] for r in await db.fetchall("SELECT key FROM order_idempotency")] == ["key-0"]
    # one order.released record for the session, in the activity log
    logged = await db.fetchall("SELECT session_id, data FROM activity WHERE name = 'order.released'")
    assert len(logged) == 1 and logged[0]["session_id"] == crash["session_id"]
    data = json.loads(logged[0]["data"])
    assert data["order_ids"] == crash["reserved"] and data["units"] == 51 and data["reason"] == orders.RESTART_REASON
    assert data["products"] == [{"product_id": pid, "stock": 58}]
    # the reason is shown in the orders API
    staff = await staff_cookie(client)
    resp = await client.get(f"/api/events/{crash['event_id']}/orders?status=cancelled&limit=1000", headers=staff)
    assert resp.status == 200, await resp.text()
    listed = (await resp.json())["orders"]
    assert len(listed) == 51 and {o["status"] for o in listed} == {"cancelled"}
    assert {o["status_reason"] for o in listed} == {orders.RESTART_REASON}
    default = (await (await client.get(f"/api/events/{crash['event_id']}/orders?limit=1000", headers=staff)).json())["orders"]
    assert len(default) == 42 and {o["status"] for o in default} == {"placed"}
    assert (await client.get(f"/api/events/{crash['event_id']}/orders?status=lost", headers=staff)).status == 400
    # a second start changes nothing (the pass is idempotent)
    await client.close()
    client2 = await aiohttp_client(app_factory())
    db2 = client2.app[DB]
    assert await db2.fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 58
    assert await db2.fetchval("SELECT COUNT(*) FROM activity WHERE name = 'order.released'") == 1
    assert await db2.fetchval("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'") == 51


async def test_periodic_pass_releases_reservations_older_than_the_checkout_timeout(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"reconcile_seconds": 0.05, "checkout_timeout_seconds": 30.0}))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=10, event_id=eid)
    session = await go_live(app, eid)
    viewer = await new_viewer(app, "Stuck")
    released: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    app[BUS].on("order.released", lambda record: released.done() or released.set_result(record))
    now = time.time()
    async with app[DB].transaction() as tx:  # two reservations: one stuck for a minute, one that just started
        await tx.execute("UPDATE products SET stock = stock - 5 WHERE id = ?", (pid,))
        ids = []
        for qty, at in ((3, now - 60), (2, now)):
            cur = await tx.execute(
                "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency,"
                " status, practice, created_at) VALUES (?, ?, ?, ?, ?, 100, 100, 'USD', 'reserved', 0, ?)",
                (viewer["id"], pid, eid, session.id, qty, at))
            ids.append(cur.lastrowid)
    record = await asyncio.wait_for(released, 20)
    assert record.data["order_ids"] == [ids[0]] and record.data["units"] == 3
    assert record.data["reason"] == "checkout did not finish within 30 s"
    old = await app[DB].fetchone("SELECT status, status_reason FROM orders WHERE id = ?", (ids[0],))
    assert (old["status"], old["status_reason"]) == ("cancelled", "checkout did not finish within 30 s")
    assert await app[DB].fetchval("SELECT status FROM orders WHERE id = ?", (ids[1],)) == "reserved"
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 10 - 2


class SlowPayment:
    """A checkout that answers only when the test lets it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    @hookimpl
    async def checkout(self, app: Any, request: Any) -> CheckoutResult:
        self.entered.set()
        await self.gate.wait()
        return CheckoutResult(status="placed")


async def test_a_checkout_answering_after_its_release_places_nothing(aiohttp_client: Any, app_factory: Any) -> None:
    plugin = SlowPayment()
    client = await aiohttp_client(app_factory(plugins=(plugin,)))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=4, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Late")
    buying = asyncio.ensure_future(client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 2}, headers=vh(viewer)))
    await asyncio.wait_for(plugin.entered.wait(), 20)
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 2
    released = await orders.reconcile(app, 0)  # the checkout "timed out"
    assert len(released) == 1
    plugin.gate.set()
    resp = await buying
    assert resp.status == 409, await resp.text()
    assert "reservation was released" in (await resp.json())["error"]["message"]
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 4
    row = await app[DB].fetchone("SELECT status, status_reason FROM orders WHERE id = ?", (released[0],))
    assert (row["status"], row["status_reason"]) == ("cancelled", "checkout did not finish within 0 s")
    assert await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'order.created'") == 0
    assert app[LIVE].current is not None  # the stream is untouched
