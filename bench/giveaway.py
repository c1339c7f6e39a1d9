"""Giveaway benchmark: 1000 viewers commenting at 50 comments/s, with and without a running giveaway.

The giveaway plugin matches every comment against the running giveaway's keyword (``on_bus_event``) and
enters the viewers who typed it. This measures what that adds to the comment path, same run, same data,
each on a fresh database:

- no giveaway: the plugin is loaded, nothing runs;
- giveaway: one is running (entry by comment "WIN"); ``--share`` of the comments are the keyword.

Figures: process CPU per comment (the event loop, the SQLite threads, the bus and the plugin's
handlers: everything the comment causes), the comment call's latency, and the plugin's own handler time
for a comment that does not match (the keyword check alone). Only the "giveaway" section of
BENCHMARKS.md is rewritten.

    python -m bench.giveaway [--viewers 1000] [--rate 50] [--share 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

import lmserver_plugins.giveaway as giveaway
from bench.report import machine, write_section
from lmserver.app import create_app
from lmserver.appkeys import DB, LIVE
from lmserver.comments import create_viewer_comment
from lmserver.config import load_config
from lmserver_plugins.giveaway import service

BEGIN, END = "<!-- giveaway:begin -->", "<!-- giveaway:end -->"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(tmp: Path, viewers: int, rate: float, share: float, with_giveaway: bool) -> dict[str, Any]:
    cfg = load_config(None, env={}, overrides={"server": {"data_dir": str(tmp), "log_level": "warning"},
                                               "live": {"comment_rate_seconds": 0}})
    app = create_app(cfg, plugins=(giveaway,), load_entrypoints=False)
    runner = web.AppRunner(app)
    await runner.setup()
    handler_ms: list[float] = []
    original = service.on_comment

    async def timed(app_: Any, comment: dict[str, Any]) -> None:
        t = time.perf_counter()
        await original(app_, comment)
        if comment["body"] != "WIN":
            handler_ms.append((time.perf_counter() - t) * 1000)

    service.on_comment = timed
    try:
        db, now = app[DB], time.time()
        async with db.transaction() as tx:
            event_id = (await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                                         " VALUES ('bench', 'Bench', ?, 60, ?, ?)", (now, now, now))).lastrowid
            product = (await tx.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                                        " VALUES ('Mug', 1000, 'USD', 100, ?, ?)", (now, now))).lastrowid
            await tx.executemany("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)",
                                 [(f"v{i}", f"fan{i}", now) for i in range(viewers)])
        await app[LIVE].begin("bench", False, None, event_id=event_id)
        if with_giveaway:
            row = await service.create(app, "bench", {"title": "Mug", "event_id": event_id, "winners": 1, "items_per_winner": 1,
                                                      "entry_mode": "comment", "keyword": "WIN", "countdown_seconds": 600,
                                                      "products": [{"id": product, "allocated": 1}]})
            await service.start(app, row["id"])
        step = max(1, round(1 / share))
        bodies = ["WIN" if i % step == 0 else f"love this, number {i}?" for i in range(viewers)]
        latencies: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(viewers):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            await create_viewer_comment(app, {"id": f"v{i}", "nickname": f"fan{i}", "blocked": False}, event_id, bodies[i])
            latencies.append((time.perf_counter() - t) * 1000)
        expected = bodies.count("WIN") if with_giveaway else 0
        for _ in range(1000):  # let the bus's plugin handlers finish (bounded)
            entries = await db.fetchval("SELECT COUNT(*) FROM giveaway_entries", default=0)
            if entries >= expected and (not with_giveaway or len(handler_ms) >= viewers - expected):
                break
            await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu0
        assert entries == expected, f"{entries} entries, expected {expected}"
        return {"cpu_ms": cpu * 1000 / viewers, "p50": statistics.median(latencies), "p99": pct(latencies, 0.99),
                "entries": entries, "handler_p50": statistics.median(handler_ms) if handler_ms else None,
                "handler_p99": pct(handler_ms, 0.99) if handler_ms else None}
    finally:
        service.on_comment = original
        await runner.cleanup()


async def main(viewers: int, rate: float, share: float) -> str:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:  # warm-up (imports, caches): not reported
        await run(Path(tmp), min(viewers, 200), rate * 4, share, True)
    for label, flag in (("no giveaway", False), ("giveaway running", True)):
        with tempfile.TemporaryDirectory() as tmp:
            results[label] = await run(Path(tmp), viewers, rate, share, flag)
            print(label, results[label], flush=True)
    base, gv = results["no giveaway"], results["giveaway running"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {label} | {r['cpu_ms']:.2f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['entries']} |" for label, r in results.items())
    return f"""{BEGIN}
## Giveaway: the comment path during a giveaway (bench/giveaway.py)

Run {when} on {machine()}. {viewers} viewers comment once each at {rate:g} comments/s; during the
giveaway {share:.0%} of them comment the keyword (and are entered). CPU is the whole process's per comment
(the comment's insert, its bus record, the plugins' handlers and the entries they write).

| run | CPU per comment (ms) | comment call p50 (ms) | p99 (ms) | entries |
|---|---|---|---|---|
{rows}

CPU ratio, giveaway / no giveaway: **{gv['cpu_ms'] / base['cpu_ms']:.2f}x** (the entries' writes included). The keyword
check alone, the plugin's handler for a comment that does not match: p50 {gv['handler_p50'] * 1000:.1f} µs,
p99 {gv['handler_p99'] * 1000:.1f} µs.
{END}"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--share", type=float, default=0.2, help="share of comments that are the keyword")
    args = parser.parse_args()
    write_section(BEGIN, END, asyncio.run(main(args.viewers, args.rate, args.share)))
