"""The LIVE Board and the LIVE Recap in Chromium: the board follows a viewer who opens a product and buys on the
viewer page; the recap draws the charts with markers and the comparison; screenshots (desktop, tablet, dark)
for the README (``LMSERVER_UPDATE_DOCS=1`` writes them to docs/)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from lmserver.appkeys import DB, LIVE
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product

DESKTOP = {"width": 1440, "height": 900}
TABLET = {"width": 1024, "height": 768}
#: LMSERVER_UPDATE_DOCS=1 also writes the README's screenshots to docs/ (a plain run leaves the checkout alone)
DOCS = Path(__file__).resolve().parents[2] / "docs" if os.environ.get("LMSERVER_UPDATE_DOCS") else None


def save_doc(name: str, png: bytes) -> None:
    if DOCS is not None:
        (DOCS / name).write_bytes(png)


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def seed_history(app: Any, eid: int, sid: int, pids: list[int], start: float, minutes: int, scale: float, seed: int) -> None:
    """A session's rows as the services write them (joins and leaves, samples, comments, orders, pins): the
    database's triggers roll them up."""
    rnd = random.Random(seed)
    db = app[DB]
    now = time.time()
    async with db.transaction() as tx:
        viewers = [f"fan-{i}" for i in range(int(120 * scale))]  # the same fans come back: returning viewers
        for v in viewers:
            await tx.execute("INSERT OR IGNORE INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", (v, v, now))
        watching: list[str] = []
        for m in range(minutes):
            x = m / max(minutes - 1, 1)
            target = int(scale * (10 + 60 * math.sin(math.pi * min(x * 1.2, 1.0)) ** 1.3))
            for k in range(4):
                t = start + 60 * m + 15 * k
                while len(watching) < target and len(watching) < len(viewers):
                    v = rnd.choice([w for w in viewers if w not in watching])
                    watching.append(v)
                    await tx.execute("INSERT INTO activity (name, event_id, session_id, data, created_at) VALUES ('viewer.joined', ?, ?, ?, ?)",
                                     (eid, sid, json.dumps({"viewer_id": v, "viewers": len(watching), "peak": len(watching)}), t))
                while len(watching) > target:
                    v = watching.pop(rnd.randrange(len(watching)))
                    await tx.execute("INSERT INTO activity (name, event_id, session_id, data, created_at) VALUES ('viewer.left', ?, ?, ?, ?)",
                                     (eid, sid, json.dumps({"viewer_id": v, "viewers": len(watching)}), t + 1))
                await tx.execute("INSERT INTO viewer_samples (session_id, at, viewers) VALUES (?, ?, ?)", (sid, t + 2, len(watching)))
            for _ in range(rnd.randint(0, int(6 * scale * (0.3 + x)))):
                v = rnd.choice(watching or viewers)
                await tx.execute("INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                 (eid, sid, v, v, rnd.choice(["Love it!", "Price?", "Size M please", "🔥🔥"]), start + 60 * m + rnd.random() * 59))
            if m % 8 == 2:
                pid = pids[(m // 8) % len(pids)]
                await tx.execute("INSERT INTO activity (name, event_id, session_id, data, created_at) VALUES ('product.pinned', ?, ?, ?, ?)",
                                 (eid, sid, json.dumps({"product": {"id": pid, "title": f"product {pid}"}}), start + 60 * m + 5))
            for _ in range(rnd.randint(0, int(3 * scale * x + 1))):
                v, pid = rnd.choice(watching or viewers), rnd.choice(pids)
                price = await (await tx.execute("SELECT price_cents FROM products WHERE id = ?", (pid,))).fetchone()
                t = start + 60 * m + rnd.random() * 59
                for opener in (v, rnd.choice(watching or viewers), rnd.choice(watching or viewers)):  # what analytics._open_sync writes for each open
                    await tx.execute("INSERT INTO session_minutes (session_id, minute, opens) VALUES (?, ?, 1)"
                                     " ON CONFLICT (session_id, minute) DO UPDATE SET opens = opens + 1", (sid, m))
                    await tx.execute("INSERT INTO session_products (session_id, product_id, opens) VALUES (?, ?, 1)"
                                     " ON CONFLICT (session_id, product_id) DO UPDATE SET opens = opens + 1", (sid, pid))
                    await tx.execute("INSERT INTO session_viewers (session_id, viewer_id, opens) VALUES (?, ?, 1)"
                                     " ON CONFLICT (session_id, viewer_id) DO UPDATE SET opens = opens + 1", (sid, opener))
                await tx.execute("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                                 " currency, first_time, created_at) VALUES (?, ?, ?, ?, 1, ?, ?, 'USD', ?, ?)",
                                 (v, pid, eid, sid, price[0], price[0], int(rnd.random() < .4), t))
        await tx.execute("INSERT INTO prompter_findings (session_id, event_id, plugin, key, kind, level, text, created_at, updated_at)"
                         " VALUES (?, ?, 'rules', 'quiet', 'suggestion', 'info', 'Comments slowed down: ask a question', ?, ?)",
                         (sid, eid, start + 60 * (minutes // 2), start + 60 * (minutes // 2)))


async def test_board_follows_a_buyer_and_the_recap_draws_charts(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(live={"comment_rate_seconds": 0, "ask_buyer_details": False})  # the details form has its own test
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    owner = await make_user(AppHolder(app), "owner")
    db = app[DB]
    eid = await make_event(app, "Autumn knitwear drop", starts_in=-45 * 60)
    pids = [await make_product(app, title, stock=500, price_cents=price, event_id=eid) for title, price in (
        ("Merino scarf", 3900), ("Chunky cardigan", 8900), ("Wool socks (3 pairs)", 1800), ("Beanie", 2200))]
    now = time.time()
    for week in range(5, 0, -1):  # five earlier sessions to compare with
        start = now - week * 7 * 86400
        async with db.transaction() as tx:
            past = (await tx.execute("INSERT INTO sessions (event_id, source, started_at) VALUES (?, 'whip', ?)", (eid, start))).lastrowid
        await seed_history(app, eid, past, pids, start, 15, 0.6 + 0.1 * week, week)
        async with db.transaction() as tx:
            await tx.execute("UPDATE sessions SET ended_at = ? WHERE id = ?", (start + 900, past))
    live = await go_live(app, eid)
    started = now - 40 * 60  # the LIVE runs for 40 minutes already: its history, then the browser's viewer
    async with db.transaction() as tx:
        await tx.execute("UPDATE sessions SET started_at = ? WHERE id = ?", (started, live.id))
    app[LIVE].current = dataclasses.replace(live, started_at=started)
    await seed_history(app, eid, live.id, pids, started, 40, 1.0, 99)

    ctx = await browser.new_context(viewport=DESKTOP)
    board = await login_page(ctx, base, owner, PASSWORD)
    errors: list[str] = []
    board.on("pageerror", lambda exc: errors.append(str(exc)))
    await board.goto(f"{base}/events/{eid}/board")
    assert board.url == f"{base}/sessions/{live.id}/board"
    await board.wait_for_function("document.body.dataset.ws === 'open'")
    gmv_before = await board.inner_text('[data-figure="gmv"]')
    opens_before = int(await board.inner_text('[data-figure="opens"]'))
    assert await board.locator("svg.time-chart").count() == 3 and await board.locator("svg.time-chart .marker").count() >= 3

    viewer_ctx = await browser.new_context(viewport={"width": 420, "height": 860})
    vpage = await viewer_ctx.new_page()
    vpage.on("pageerror", lambda exc: errors.append(str(exc)))
    slug = await db.fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    await vpage.goto(f"{base}/e/{slug}")
    await vpage.wait_for_selector(f'#bag [data-buy="{pids[1]}"]')
    async with vpage.expect_response(lambda r: r.url.endswith(f"/api/e/{eid}/opens")) as opened:
        await vpage.click(f'#bag [data-buy="{pids[1]}"]')  # opening the bag item: an open, and the buy dialog
    assert (await (await opened.value).json()) == {"counted": True}
    await vpage.fill("#buy-qty", "2")
    await vpage.click("#buy-confirm")
    await vpage.wait_for_selector("#buy-result:not([hidden])")

    # the board follows over the WebSocket: GMV up by 2 × $89.00, one more open, the cardigan's row
    await board.wait_for_function(f"document.querySelector('[data-figure=\"opens\"]').textContent.trim() === '{opens_before + 1}'",
                                  timeout=60000)
    await board.wait_for_function(f"document.querySelector('[data-figure=\"gmv\"]').textContent !== {json.dumps(gmv_before)}", timeout=60000)
    gmv_after = await board.inner_text('[data-figure="gmv"]')
    assert _cents(gmv_after) - _cents(gmv_before) == 17800
    check_screenshot(await board.screenshot(full_page=True), "analytics-board")
    save_doc("analytics-board.png", await board.screenshot())

    tablet = await browser.new_context(viewport=TABLET, color_scheme="dark")
    tpage = await login_page(tablet, base, owner, PASSWORD)
    tpage.on("pageerror", lambda exc: errors.append(str(exc)))
    await tpage.evaluate("localStorage.setItem('lms-theme', 'dark')")
    await tpage.goto(f"{base}/sessions/{live.id}/board")
    check_screenshot(await tpage.screenshot(), "analytics-board-tablet-dark")
    save_doc("analytics-board-tablet-dark.png", await tpage.screenshot(full_page=True))

    await app[LIVE].end("host ended")
    await board.goto(f"{base}/sessions/{live.id}")
    assert await board.locator("svg.time-chart").count() == 3
    assert await board.locator("#comparison tr[data-compare]").count() == 8
    assert await board.locator("#figures .trend").count() >= 5
    tip = await board.locator("#viewers-chart rect.hit >> nth=10").locator("title").text_content()
    assert "viewers on average" in tip
    check_screenshot(await board.screenshot(full_page=True), "analytics-recap")
    save_doc("analytics-recap.png", await board.screenshot(full_page=True))
    async with board.expect_download() as dl:
        await board.click("#exports >> text=minute table")
    text = Path(await (await dl.value).path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "minute,start,avg_viewers,peak_viewers,new_viewers,followers,comments,gifts,opens,orders,items,gmv_cents,first_time_buyers"
    assert len(text.splitlines()) == 42  # the header and minutes 0 to 40
    assert errors == []
    for c in (ctx, viewer_ctx, tablet):
        await c.close()


def _cents(text: str) -> int:
    return int(round(float(text.replace("$", "").replace(",", "")) * 100))
