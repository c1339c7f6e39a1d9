"""Analytics benchmark: the LIVE Recap of a 13-hour session with two million activity rows, and what rolling up
costs per activity.

1. **Recap.** A database with one 13-hour session: 2,000,000 activity rows (viewer joins and leaves of 50,000
   viewers, comments, orders, gifts, follows, pins) with their domain rows (comments, orders, gifts, follows,
   a viewer sample every 5 s), prompter findings, and rollups of the size the triggers build (one row per
   minute, product and viewer). Then the staff pages and API are requested over HTTP on loopback (the whole
   handler: figures, minute table, per-product table, markers, comparison, three SVG charts, the template):
   the recap page ``/sessions/{sid}``, its JSON ``/api/sessions/{sid}/analytics`` and the LIVE Board.
2. **Rollup cost.** The same mix of activities published through :meth:`lmserver.bus.Bus.publish` (the real
   path: one transaction each, the WebSocket fan-out, the listeners) on two fresh databases, with and without
   the analytics triggers; and the bare INSERTs (activity row plus its domain row) with and without them.

Only the "analytics" section of BENCHMARKS.md is rewritten.

    python -m bench.analytics [--rows 2000000] [--hours 13]
"""

from __future__ import annotations

import argparse
import os
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.report import machine, write_section
from lmserver import auth
from lmserver.app import create_app
from lmserver.appkeys import BUS, DB
from lmserver.config import load_config
from lmserver.analytics_schema import ROLLUPS_SQL
from lmserver.db import DB_FILENAME, _split_sql, run_migrations
from lmserver.migrations import MIGRATIONS

BEGIN, END = "<!-- analytics:begin -->", "<!-- analytics:end -->"
PASSWORD = "bench-password-123"
TRIGGERS = ("analytics_order_insert", "analytics_order_update", "analytics_comment", "analytics_gift", "analytics_follow",
            "analytics_viewer_sample", "analytics_viewer_joined", "analytics_viewer_left", "analytics_product_pinned",
            "analytics_product_unpinned", "analytics_session_ended")


def make_app(tmp: Path) -> web.Application:
    cfg = load_config(None, env={}, overrides={"server": {"data_dir": str(tmp), "log_level": "warning"}})
    return create_app(cfg, load_entrypoints=False)


def seed(path: Path, rows: int, hours: float) -> tuple[int, dict[str, int]]:
    """Write the 13-hour session (see the module doc) in SQL (recursive CTEs: seconds, not the hour that row-by-row
    Python with the triggers takes on a shared machine); the rollups are then built as the triggers would have built
    them: the same tables with the same number of rows (one per minute, per product, per viewer). Returns the session
    id and the counts of activity rows by name."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    for name in TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    now = time.time()
    start = now - hours * 3600 - 600
    span = hours * 3600
    minutes = int(span // 60)
    conn.execute("BEGIN")
    eid = conn.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                       " VALUES ('marathon', 'Marathon', ?, ?, ?, ?)", (start, int(hours * 60), start, start)).lastrowid
    for i in range(40):
        pid = conn.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                           " VALUES (?, ?, 'USD', 1000000, ?, ?)", (f"Product {i}", 500 + 100 * i, now, now)).lastrowid
        conn.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)", (eid, pid, i, now))
    first_pid = pid - 39
    for d in range(5, 0, -1):  # five earlier sessions for the comparison
        s = conn.execute("INSERT INTO sessions (event_id, source, started_at, ended_at) VALUES (?, 'whip', ?, ?)",
                         (eid, start - d * 86400, start - d * 86400 + 3600)).lastrowid
        conn.execute("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                     " currency, created_at) VALUES (NULL, ?, ?, ?, 1, 900, 900, 'USD', ?)", (first_pid, eid, s, start - d * 86400 + 60))
        conn.execute("INSERT INTO session_minutes (session_id, minute, orders, gmv_cents, comments) VALUES (?, 0, 1, 900, 3)", (s,))
    sid = conn.execute("INSERT INTO sessions (event_id, source, started_at, ended_at) VALUES (?, 'whip', ?, ?)",
                       (eid, start, start + span)).lastrowid
    nv = 50_000
    seq = "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ? - 1) "
    conn.execute(seq + "INSERT INTO viewers (id, nickname, created_at) SELECT 'viewer-' || i, 'viewer-' || i, ? FROM c", (nv, now))
    conn.execute(seq + "INSERT INTO viewer_samples (session_id, at, viewers) SELECT ?, ? + 5 * i, 200 + i % 300 FROM c",
                 (int(span // 5), sid, start))
    # the mix: 25 % joins, 25 % leaves, 40 % comments, 5 % orders, 4 % gifts, 1 % follows and pins (i % 100 decides)
    n_comments = rows * 40 // 100
    n_orders = rows * 5 // 100
    conn.execute(seq + "INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, created_at)"
                 " SELECT ?, ?, 'viewer-' || (i * 7919 % ?), 'viewer', 'so nice!', ? + ? * i / ? FROM c",
                 (n_comments, eid, sid, nv, start, span, n_comments))
    conn.execute(seq + "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency,"
                 " first_time, created_at) SELECT 'viewer-' || (i * 104729 % ?), ? + i % 40, ?, ?, 1, 900, 900, 'USD', i < 20000, ? + ? * i / ? FROM c",
                 (n_orders, nv, first_pid, eid, sid, start, span, n_orders))
    conn.execute(seq + "INSERT INTO gifts (viewer_id, session_id, gift, created_at) SELECT 'viewer-' || (i % ?), ?, 'rose', ? + ? * i / ? FROM c",
                 (rows * 4 // 100, nv, sid, start, span, rows * 4 // 100))
    conn.execute(seq + "INSERT INTO follows (viewer_id, session_id, created_at) SELECT 'viewer-' || i, ?, ? + ? * i / ? FROM c",
                 (rows // 200, sid, start, span, rows // 200))
    conn.execute(seq + "INSERT INTO activity (name, event_id, session_id, practice, data, created_at) SELECT"
                 " CASE WHEN i % 100 < 25 THEN 'viewer.joined' WHEN i % 100 < 50 THEN 'viewer.left' WHEN i % 100 < 90 THEN 'comment.created'"
                 " WHEN i % 100 < 95 THEN 'order.created' WHEN i % 100 < 99 THEN 'gift.sent' WHEN i % 1000 = 999 THEN 'product.pinned'"
                 " ELSE 'viewer.followed' END, ?, ?, 0,"
                 " CASE WHEN i % 1000 = 999 THEN json_object('product', json_object('id', ? + i % 40, 'title', 'Product'))"
                 " ELSE json_object('viewer_id', 'viewer-' || (i % ?), 'viewers', 2000) END, ? + ? * i / ? FROM c",
                 (rows, eid, sid, first_pid, nv, start, span, rows))
    # the rollups, as many rows as the triggers build: one per minute, per product, per viewer
    conn.execute(seq + "INSERT INTO session_minutes (session_id, minute, viewer_sum, viewer_n, peak_viewers, new_viewers, followers, comments,"
                 " gifts, opens, orders, items, gmv_cents, first_time_buyers, returning_viewers, openers, watch_seconds)"
                 " SELECT ?, i, 12 * (200 + i % 300), 12, 210 + i % 300, ? / ?, 1, ? / ?, 50, 300, ? / ?, ? / ?, 900 * (? / ?), 25, 20, 40, 60000 FROM c",
                 (minutes, sid, nv, minutes, n_comments, minutes, n_orders, minutes, n_orders, minutes, n_orders, minutes))
    conn.execute(seq + "INSERT INTO session_products (session_id, product_id, opens, orders, units, gmv_cents, pins, pinned_seconds)"
                 " SELECT ?, ? + i, 5000, ? / 40, ? / 40, 900 * (? / 40), 20, 1100 FROM c", (40, sid, first_pid, n_orders, n_orders, n_orders))
    conn.execute(seq + "INSERT INTO session_viewers (session_id, viewer_id, joined_at, watch_seconds, comments, opens)"
                 " SELECT ?, 'viewer-' || i, ? + i, 900 + i % 3000, ? / ? + i % 13, i % 3 FROM c", (nv, sid, start, n_comments, nv))
    conn.executemany("INSERT INTO prompter_findings (session_id, event_id, plugin, key, kind, level, text, created_at, updated_at)"
                     " VALUES (?, ?, 'rules', ?, 'suggestion', 'info', 'Pin a product', ?, ?)",
                     [(sid, eid, f"k{k}", start + k * 700, start + k * 700) for k in range(60)])
    for stmt in _split_sql(ROLLUPS_SQL):
        if stmt.startswith("CREATE TRIGGER"):
            conn.execute(stmt)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    counts = {r[0]: r[1] for r in conn.execute("SELECT name, COUNT(*) FROM activity WHERE session_id = ? GROUP BY name", (sid,))}
    conn.close()
    return sid, counts


async def recap(rows: int, hours: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DB_FILENAME
        run_migrations(path, MIGRATIONS)  # then seed before the app starts: its writers never wait for the seeding
        t = time.perf_counter()
        sid, counts = seed(path, rows, hours)
        seed_s = time.perf_counter() - t
        app = make_app(Path(tmp))
        client = TestClient(TestServer(app))
        await client.start_server()
        await auth.create_user(app[DB], "bench", "owner", PASSWORD)
        resp = await client.post("/api/login", json={"name": "bench", "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        out: dict[str, Any] = {"seed_s": seed_s, "counts": counts, "activity": await app[DB].fetchval("SELECT COUNT(*) FROM activity"),
                               "minutes": await app[DB].fetchval("SELECT COUNT(*) FROM session_minutes WHERE session_id = ?", (sid,)),
                               "comments": await app[DB].fetchval("SELECT COUNT(*) FROM comments"),
                               "orders": await app[DB].fetchval("SELECT COUNT(*) FROM orders")}
        for label, url in (("recap page", f"/sessions/{sid}"), ("recap JSON", f"/api/sessions/{sid}/analytics"),
                           ("LIVE Board", f"/sessions/{sid}/board"), ("minute CSV", f"/api/sessions/{sid}/analytics/minutes?format=csv")):
            times, cpus = [], []
            for _ in range(7):
                t, c = time.perf_counter(), time.process_time()
                r = await client.get(url)
                body = await r.read()
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)  # the server runs in this process: its CPU, whatever the machine's load
                assert r.status == 200, body[:300]
            out[label] = {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000, "bytes": len(body),
                          "cpu_ms": statistics.median(cpus) * 1000}
        await client.close()
        return out


MIX = (("viewer.joined", 0.25), ("viewer.left", 0.25), ("comment.created", 0.40), ("order.created", 0.05), ("gift.sent", 0.05))


async def publish_cost(n: int, with_triggers: bool) -> dict[str, float]:
    """Per-activity cost of the real publish path (and of the bare INSERTs) with or without the rollup triggers."""
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp))
        client = TestClient(TestServer(app))
        await client.start_server()
        db = app[DB]
        now = time.time()
        async with db.transaction() as tx:
            eid = (await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                                    " VALUES ('b', 'B', ?, 60, ?, ?)", (now, now, now))).lastrowid
            sid = (await tx.execute("INSERT INTO sessions (event_id, source, started_at) VALUES (?, 'whip', ?)", (eid, now))).lastrowid
            pid = (await tx.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                                    " VALUES ('P', 900, 'USD', 10, ?, ?)", (now, now))).lastrowid
            for i in range(2000):
                await tx.execute("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", (f"v{i}", f"v{i}", now))
            if not with_triggers:
                for name in TRIGGERS:
                    await tx.execute(f"DROP TRIGGER {name}")
        rnd = random.Random(1)
        names = [name for name, share in MIX for _ in range(int(share * 100))]
        bus = app[BUS]

        async def one(i: int) -> None:
            name, v = names[i % len(names)], f"v{rnd.randrange(2000)}"
            t = time.time()
            async with db.transaction() as tx:  # the domain row, as the service writes it
                if name == "comment.created":
                    await tx.execute("INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, created_at) VALUES (?, ?, ?, ?, 'hi', ?)",
                                     (eid, sid, v, v, t))
                elif name == "order.created":
                    await tx.execute("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                                     " currency, created_at) VALUES (?, ?, ?, ?, 1, 900, 900, 'USD', ?)", (v, pid, eid, sid, t))
                elif name == "gift.sent":
                    await tx.execute("INSERT INTO gifts (viewer_id, session_id, gift, created_at) VALUES (?, ?, 'rose', ?)", (v, sid, t))
            data = {"viewer.joined": {"viewer_id": v, "viewers": 10, "peak": 10}, "viewer.left": {"viewer_id": v, "viewers": 9},
                    "comment.created": {"comment": {"id": i}}, "order.created": {"order": {"id": i}},
                    "gift.sent": {"viewer_id": v, "nickname": v, "gift": "rose"}}[name]
            await bus.publish(name, data, event_id=eid, session_id=sid)

        for i in range(200):  # warm up
            await one(i)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            await one(i)
        out = {"publish_cpu_us": (time.process_time() - cpu) / n * 1e6, "publish_wall_us": (time.perf_counter() - wall) / n * 1e6}
        await client.close()
    out["insert_us"] = bare_inserts(n * 4, with_triggers, names)
    return out


def bare_inserts(n: int, with_triggers: bool, names: list[str]) -> float:
    """CPU µs per activity of the bare INSERTs (the activity row and its domain row) in one transaction, on a fresh
    database of its own: what the triggers add, without the rest of the path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DB_FILENAME
        run_migrations(path, MIGRATIONS)
        conn = sqlite3.connect(path, isolation_level=None)
        now = time.time()
        conn.execute("BEGIN")
        eid = conn.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                           " VALUES ('b', 'B', ?, 60, ?, ?)", (now, now, now)).lastrowid
        sid = conn.execute("INSERT INTO sessions (event_id, source, started_at) VALUES (?, 'whip', ?)", (eid, now)).lastrowid
        pid = conn.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                           " VALUES ('P', 900, 'USD', 10, ?, ?)", (now, now)).lastrowid
        conn.executemany("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", [(f"v{i}", f"v{i}", now) for i in range(2000)])
        if not with_triggers:
            for name in TRIGGERS:
                conn.execute(f"DROP TRIGGER {name}")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        cpu = time.process_time()
        for i in range(n):
            name, v, t = names[i % len(names)], f"v{i % 2000}", now + i * 0.01
            if name == "comment.created":
                conn.execute("INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, created_at) VALUES (?, ?, ?, ?, 'hi', ?)",
                             (eid, sid, v, v, t))
            elif name == "order.created":
                conn.execute("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                             " currency, created_at) VALUES (?, ?, ?, ?, 1, 900, 900, 'USD', ?)", (v, pid, eid, sid, t))
            elif name == "gift.sent":
                conn.execute("INSERT INTO gifts (viewer_id, session_id, gift, created_at) VALUES (?, ?, 'rose', ?)", (v, sid, t))
            data = {"viewer_id": v, "viewers": 10} if name.startswith("viewer.") else {"x": i}
            conn.execute("INSERT INTO activity (name, event_id, session_id, practice, data, created_at) VALUES (?, ?, ?, 0, ?, ?)",
                         (name, eid, sid, json.dumps(data), t))
        used = time.process_time() - cpu
        conn.execute("COMMIT")
        conn.close()
        return used / n * 1e6


async def main(rows: int, hours: float, n: int) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    r = await recap(rows, hours)
    with_t = [await publish_cost(n, True) for _ in range(3)]
    without = [await publish_cost(n, False) for _ in range(3)]

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in runs)

    pw, pn = med(with_t, "publish_cpu_us"), med(without, "publish_cpu_us")
    ww, wn = med(with_t, "publish_wall_us"), med(without, "publish_wall_us")
    iw, inn = med(with_t, "insert_us"), med(without, "insert_us")
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(r["counts"].items(), key=lambda kv: -kv[1]))
    lines = [
        BEGIN,
        "## Analytics: the LIVE Recap of a 13-hour session, and the rollups' cost (bench/analytics.py)",
        "",
        f"Run {when} on {machine()}; load average {os.getloadavg()[0]:.0f} during the run (CPU time is the fair figure then).",
        "",
        f"One {hours:g}-hour session with **{r['activity']:,} activity rows** ({counts}), {r['comments']:,} comments,",
        f"{r['orders']:,} orders, gifts and follows, a viewer sample every 5 s, 60 prompter findings, 50,000 viewers, and",
        f"five earlier sessions; its rollups have as many rows as the triggers build ({r['minutes']} minutes, 40 products,",
        "50,000 viewers). Each request over HTTP on loopback, logged in, 7 runs:",
        "",
        "| request | CPU (median) | wall (median) | wall (max) | size |",
        "|---|---|---|---|---|",
    ]
    for label in ("recap page", "recap JSON", "LIVE Board", "minute CSV"):
        x = r[label]
        lines.append(f"| {label} | {x['cpu_ms']:.0f} ms | {x['median_ms']:.0f} ms | {x['max_ms']:.0f} ms | {x['bytes'] / 1024:.0f} KiB |")
    lines += [
        "",
        f"Rolling up, per activity (mix: joins/leaves 50 %, comments 40 %, orders 5 %, gifts 5 %; {n} published, median of 3 runs):",
        "",
        "| path | with the triggers | without | added |",
        "|---|---|---|---|",
        f"| `bus.publish` + the domain row's transaction, CPU | {pw:.0f} µs | {pn:.0f} µs | {pw - pn:+.0f} µs ({100 * (pw - pn) / pn:+.1f} %) |",
        f"| the same, wall time | {ww:.0f} µs | {wn:.0f} µs | {ww - wn:+.0f} µs ({100 * (ww - wn) / wn:+.1f} %) |",
        f"| the bare INSERTs (activity + domain row), one transaction, CPU | {iw:.1f} µs | {inn:.1f} µs | {iw - inn:+.1f} µs |",
        "",
        f"The triggers add **{iw - inn:.0f} µs of CPU per activity** (the bare INSERTs), {100 * (iw - inn) / pw:.0f} % of the publish path's",
        "CPU; on a loaded machine the publish path's run-to-run spread can exceed that, so its rows show noise more than the triggers.",
        "",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--hours", type=float, default=13)
    parser.add_argument("--publish", type=int, default=3000, help="activities published per cost run")
    args = parser.parse_args()
    section = asyncio.run(main(args.rows, args.hours, args.publish))
    write_section(BEGIN, END, section)
    print(section)
