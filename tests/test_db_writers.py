"""Two write connections share the SQLite file: the aiosqlite one (``Database.transaction``) and the group-commit
writer thread (orders). Each waits at most ``busy_timeout`` for the other's write lock, so a transaction of the
aiosqlite connection must not hold the lock across reads and Python work: under load every statement is an
event-loop round trip, and a long one made the writer fail with "database is locked" (a flaky flash-sale test).

These tests trace the statements of the aiosqlite connection while the writer commits concurrently and check
that the background paths (webhook fan-out) read outside their write transaction."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from lmserver.appkeys import BUS, DB, WEBHOOKS, WRITER
from lmserver.bus import record_sync


async def traced(db: Any) -> list[tuple[bool, str]]:
    """Every statement the aiosqlite connection runs from now on, with whether it ran inside a transaction."""
    seen: list[tuple[bool, str]] = []
    state = {"tx": False}

    def trace(sql: str) -> None:
        head = sql.strip().upper()
        if head.startswith("BEGIN"):
            state["tx"] = True
        seen.append((state["tx"], sql))
        if head.startswith(("COMMIT", "ROLLBACK")) and not head.startswith("ROLLBACK TO"):
            state["tx"] = False

    await db.conn.set_trace_callback(trace)
    return seen


async def test_webhook_fan_out_reads_outside_its_write_transaction_while_the_writer_commits(client: Any) -> None:
    app = client.app
    db, writer = app[DB], app[WRITER]
    now = time.time()
    await db.execute("INSERT INTO webhook_endpoints (url, events, secret, created_at, updated_at) VALUES (?, ?, 'whsec_AAAA', ?, ?)",
                     ("http://127.0.0.1:9/hook", json.dumps(["*"]), now - 60, now - 60))
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO activity (name, data, created_at) VALUES ('comment.created', ?, ?)",
                             [(json.dumps({"n": n}), now) for n in range(300)])
    spec = app[BUS].specs["order.created"]
    seen = await traced(db)

    def order_write(conn: Any, n: int) -> int:
        return int(record_sync(conn, spec, {"n": n}).id or 0)

    async def writers() -> list[int]:  # the order path's writer, committing while the fan-out runs
        return [await writer.submit(order_write, n) for n in range(40)]

    made, ids = await asyncio.gather(app[WEBHOOKS].fan_out(), writers())
    made += await app[WEBHOOKS].fan_out()  # what the writers added after the first pass
    await db.conn.set_trace_callback(None)
    assert len(ids) == 40 and all(ids)
    assert made == 340
    assert await db.fetchval("SELECT COUNT(*) FROM webhook_deliveries") == 340
    assert await db.fetchval("SELECT activity_id FROM webhook_cursor WHERE id = 1") == await db.fetchval("SELECT MAX(id) FROM activity")
    reads_in_tx = [sql for in_tx, sql in seen if in_tx and "FROM activity" in sql]
    assert reads_in_tx == [], f"the fan-out read the activity log while holding the write lock: {reads_in_tx[:2]}"
    assert not [sql for in_tx, sql in seen if in_tx and sql.lstrip().upper().startswith("SELECT")]
    assert any(in_tx and "INSERT OR IGNORE INTO webhook_deliveries" in sql for in_tx, sql in seen)
