"""Analytics (issue 15): the rollups of a scripted session, exactly; product-card opens; exports; one definition.

The scripted session writes the rows the services write (viewer joins and leaves in the activity log, viewer
samples, comments, orders and their status changes, a follow, a gift, pins, a plugin's activity) at chosen
times, so that the minute and per-product tables can be computed by hand below. The rollups are kept by the
database's triggers, so these rows are all it takes; the HTTP tests further down go through the real routes.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from lmserver import analytics
from lmserver.appkeys import DB, WRITER
from lmserver.busevents import EventSpec
from lmserver.plugins import hookimpl
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


class Contest:
    """A plugin with its own activity kind: its records become chart markers without the core naming it."""

    @hookimpl
    def register_bus_events(self) -> list[EventSpec]:
        return [EventSpec("contest.drawn", "A contest was drawn.", {"title": "the contest"}, activity="Contest {title} drawn",
                          label="Contests", icon="🎉")]


async def scripted_session(app: Any) -> dict[str, Any]:
    db = app[DB]
    eid = await make_event(app, "Scripted")
    mug = await make_product(app, "Mug", stock=50, price_cents=1250, event_id=eid)
    scarf = await make_product(app, "Scarf", stock=50, price_cents=3000, event_id=eid)
    a, b, c, d = [(await new_viewer(app, n))["id"] for n in ("Ann", "Bo", "Cy", "Di")]
    t0 = time.time() - 7200
    async with db.transaction() as tx:  # last week, Bo watched: this time Bo is a returning viewer
        earlier = (await tx.execute("INSERT INTO sessions (event_id, practice, source, started_at, ended_at) VALUES (?, 0, 'test', ?, ?)",
                                    (eid, t0 - 7 * 86400, t0 - 7 * 86400 + 600))).lastrowid
        await tx.execute("INSERT INTO activity (name, event_id, session_id, practice, data, created_at) VALUES ('viewer.joined', ?, ?, 0, ?, ?)",
                         (eid, earlier, json.dumps({"viewer_id": b, "viewers": 1}), t0 - 7 * 86400 + 60))
    async with db.transaction() as tx:
        sid = (await tx.execute("INSERT INTO sessions (event_id, practice, source, started_at) VALUES (?, 0, 'test', ?)",
                                (eid, t0))).lastrowid

    async def act(t: float, name: str, data: dict[str, Any]) -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO activity (name, event_id, session_id, practice, data, created_at) VALUES (?, ?, ?, 0, ?, ?)",
                             (name, eid, sid, json.dumps(data), t0 + t))

    async def sql(q: str, *args: Any) -> int:
        async with db.transaction() as tx:
            return (await tx.execute(q, args)).lastrowid

    async def sample(t: float, n: int) -> None:
        await sql("INSERT INTO viewer_samples (session_id, at, viewers) VALUES (?, ?, ?)", sid, t0 + t, n)

    async def comment(t: float, viewer: str, body: str) -> None:
        await sql("INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, practice, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                  eid, sid, viewer, viewer, body, t0 + t)

    async def order(t: float, viewer: str, pid: int, qty: int, price: int, first: int, status: str = "placed") -> int:
        return await sql("INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents,"
                         " currency, status, first_time, practice, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'USD', ?, ?, 0, ?)",
                         viewer, pid, eid, sid, qty, price, price * qty, status, first, t0 + t)

    async def opened(t: float, viewer: str, pid: int) -> None:
        await app[WRITER].submit(analytics._open_sync, sid, t0, pid, viewer, t0 + t)

    # minute 0
    await act(5, "viewer.joined", {"viewer_id": a, "viewers": 1, "peak": 1})
    await act(10, "viewer.joined", {"viewer_id": b, "viewers": 2, "peak": 2})
    await sample(20, 2)
    await act(30, "product.pinned", {"product": {"id": mug, "title": "Mug"}})
    await comment(40, a, "hello")
    await opened(50, a, mug)
    # minute 1
    await sample(65, 2)
    await comment(70, b, "=HYPERLINK(\"x\")")
    await comment(71, a, "how big is it, really?")
    rid = await order(80, a, mug, 2, 1250, 1, "reserved")
    await sql("UPDATE orders SET status = 'placed' WHERE id = ?", rid)  # the checkout went through
    await act(90, "viewer.joined", {"viewer_id": c, "viewers": 3, "peak": 3})
    await act(95, "viewer.left", {"viewer_id": a, "viewers": 2})
    await act(100, "contest.drawn", {"title": "Spring"})
    # minute 2
    await sample(125, 2)
    await act(130, "viewer.joined", {"viewer_id": a, "viewers": 3, "peak": 3})
    await act(140, "product.pinned", {"product": {"id": scarf, "title": "Scarf"}})
    await opened(150, b, scarf)
    await opened(151, c, scarf)
    await order(152, b, scarf, 1, 3000, 1)
    cancelled = await order(160, c, scarf, 1, 3000, 1)
    await sql("UPDATE orders SET status = 'cancelled', status_reason = 'payment failed' WHERE id = ?", cancelled)
    await sql("INSERT INTO follows (viewer_id, session_id, created_at) VALUES (?, ?, ?)", d, sid, t0 + 170)
    await sql("INSERT INTO gifts (viewer_id, session_id, gift, practice, created_at) VALUES (?, ?, 'rose', 0, ?)", b, sid, t0 + 171)
    # minute 3
    await sample(185, 3)
    await order(190, a, mug, 1, 1250, 0)
    await act(200, "product.unpinned", {"product_id": scarf})
    await sql("UPDATE sessions SET ended_at = ?, end_reason = 'host ended' WHERE id = ?", t0 + 230, sid)  # A, B, C still watching
    return {"eid": eid, "sid": sid, "mug": mug, "scarf": scarf, "t0": t0}


COLS = analytics.MINUTE_COLUMNS[2:]
#: by hand: (avg_viewers, peak_viewers, new_viewers, followers, comments, gifts, opens, orders, items, gmv_cents, first_time_buyers)
EXPECTED_MINUTES = [
    (2, 2, 2, 0, 1, 0, 1, 0, 0, 0, 0),        # A and B join, a sample of 2, A comments and opens the Mug
    (2, 3, 1, 0, 2, 0, 0, 1, 2, 2500, 1),     # C joins (3 watching), two comments, A buys 2 Mugs (first order)
    (2, 3, 0, 1, 0, 1, 2, 1, 1, 3000, 1),     # A rejoins (not new), B and C open the Scarf, B buys one; C's is cancelled
    (3, 3, 0, 0, 0, 0, 0, 1, 1, 1250, 0),     # A's second order (not first-time)
]


async def test_scripted_session_rolls_up_to_the_expected_tables(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=(Contest(),)))
    app = client.app
    s = await scripted_session(app)
    staff = await staff_cookie(client)
    base = f"/api/sessions/{s['sid']}/analytics"

    minutes = (await (await client.get(base + "/minutes", headers=staff)).json())["minutes"]
    assert [m["minute"] for m in minutes] == [0, 1, 2, 3]
    assert [tuple(m[c] for c in COLS) for m in minutes] == EXPECTED_MINUTES

    products = (await (await client.get(base + "/products", headers=staff)).json())["products"]
    assert [(p["title"], p["opens"], p["orders"], p["units"], p["gmv_cents"], p["conversion"], p["pins"], p["pinned_seconds"])
            for p in products] == [("Mug", 1, 2, 3, 3750, 200.0, 1, 110), ("Scarf", 2, 1, 1, 3000, 50.0, 1, 60)]
    by_conversion = (await (await client.get(base + "/products?sort=conversion", headers=staff)).json())["products"]
    assert [p["title"] for p in by_conversion] == ["Mug", "Scarf"]

    report = await (await client.get(base, headers=staff)).json()
    f = report["figures"]
    assert (f["gmv_cents"], f["orders"], f["items_sold"], f["buyers"], f["first_time_buyers"], f["comments"]) == (6750, 3, 4, 2, 2, 3)
    # watch time: Ann 5→95 and 130→230 (190 s), Bo 10→230 (220 s), Cy 90→230 (140 s): 550 / 3 viewers
    assert (f["unique_viewers"], f["avg_watch_seconds"], f["peak_viewers"], f["new_followers"], f["gifts"], f["opens"]) == (3, 183, 3, 1, 1, 3)
    assert f["aov_cents"] == 2250 and f["avg_viewers"] == 2.2 and f["returning_viewers"] == 1 and f["openers"] == 3
    assert [(r["key"], r["value"], r["previous"], r["direction"]) for r in report["comparison"]["rows"]][:2] == [
        ("gmv_cents", 6750, [0], "up"), ("orders", 3, [0], "up")]
    assert [(st["label"], st["value"]) for st in report["funnel"]] == [("Viewers", 3), ("Opened a product", 3), ("Bought", 2)]
    assert [(m["kind"], m["text"], round(m["offset"])) for m in report["markers"]] == [
        ("product", "Pinned Mug", 30), ("contest", "Contest Spring drawn", 100), ("product", "Pinned Scarf", 140)]
    assert report["top_commenters"] == [{"nickname": "Ann", "comments": 2}, {"nickname": "Bo", "comments": 1}]

    page = await (await client.get(f"/sessions/{s['sid']}", headers=staff)).text()
    assert page.count('class="time-chart"') == 3 and "Contest Spring drawn" in page and "<title>0:30–1:00" not in page
    assert 'data-figure="gmv">$67.50<' in page and "2:00–3:00 · $30.00 · 1 orders, 1 items" in page


async def test_csv_exports_have_the_documented_columns_and_escape_formulas(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory())
    s = await scripted_session(client.app)
    staff = await staff_cookie(client)
    for table, columns in (("minutes", analytics.MINUTE_COLUMNS), ("products", analytics.PRODUCT_COLUMNS),
                           ("orders", analytics.ORDER_COLUMNS), ("comments", analytics.COMMENT_COLUMNS)):
        resp = await client.get(f"/api/sessions/{s['sid']}/analytics/{table}?format=csv", headers=staff)
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert f'filename="session-{s["sid"]}-{table}.csv"' in resp.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
        assert tuple(rows[0]) == columns, table
        if table == "comments":
            assert [r[3] for r in rows[1:]] == ["hello", "'=HYPERLINK(\"x\")", "how big is it, really?"]
        if table == "orders":
            assert [r[9] for r in rows[1:]] == ["placed", "placed", "cancelled", "placed"]
    bad = await client.get(f"/api/sessions/{s['sid']}/analytics/minutes?format=xls", headers=staff)
    assert bad.status == 400 and "format must be json or csv" in (await bad.json())["error"]["message"]
    assert (await client.get("/api/sessions/424242/analytics/minutes", headers=staff)).status == 404


async def test_opens_orders_and_one_definition_through_the_real_routes(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_rate_seconds": 0}))
    app = client.app
    staff = await staff_cookie(client)
    eid = await make_event(app)
    mug = await make_product(app, "Mug", stock=10, price_cents=1250, event_id=eid)
    other = await make_product(app, "Not in the bag")
    ann = await new_viewer(app, "Ann")
    assert (await client.post(f"/api/e/{eid}/opens", json={"product_id": mug}, headers=vh(ann))).status == 409  # not live
    session = await go_live(app, eid)
    assert (await (await client.post(f"/api/e/{eid}/opens", json={"product_id": mug}, headers=vh(ann))).json()) == {"counted": True}
    assert (await (await client.post(f"/api/e/{eid}/opens", json={"product_id": mug}, headers=vh(ann))).json()) == {"counted": False}
    assert (await client.post(f"/api/e/{eid}/opens", json={"product_id": other}, headers=vh(ann))).status == 404
    assert (await client.post(f"/api/e/{eid}/opens", json={"product_id": "x"}, headers=vh(ann))).status == 400
    assert (await client.post(f"/api/e/{eid}/opens", json={"product_id": mug})).status == 401
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": mug, "quantity": 2}, headers=vh(ann))
    assert resp.status == 201, await resp.text()
    assert (await client.post(f"/api/e/{eid}/comments", json={"body": "nice"}, headers=vh(ann))).status == 201

    board = await (await client.get(f"/sessions/{session.id}/board", headers=staff)).text()
    assert 'data-live="true"' in board and 'data-figure="gmv">$25.00<' in board and 'data-figure="opens">1<' in board
    minutes = (await (await client.get(f"/api/sessions/{session.id}/analytics/minutes", headers=staff)).json())["minutes"]
    assert (minutes[0]["opens"], minutes[0]["orders"], minutes[0]["items"], minutes[0]["gmv_cents"], minutes[0]["comments"]) == (1, 1, 2, 2500, 1)

    # one definition: the console's metrics, the LIVE Board/Recap, the session API and the home page agree
    console = (await (await client.get(f"/api/events/{eid}/metrics?session={session.id}", headers=staff)).json())["metrics"]
    recap = (await (await client.get(f"/api/sessions/{session.id}/analytics", headers=staff)).json())["figures"]
    stats = (await (await client.get(f"/api/sessions/{session.id}", headers=staff)).json())["session"]
    home = await (await client.get("/", headers=staff)).text()
    for key in ("gmv_cents", "orders", "items_sold", "unique_viewers", "opens"):
        assert console[key] == recap[key] == stats[key], key
    assert console["peak"] == recap["peak_viewers"] == stats["peak_viewers"]
    assert 'id="snap-gmv">$25.00<' in home and f'id="snap-peak">{recap["peak_viewers"]}<' in home
    assert f'id="snap-unique">{recap["unique_viewers"]}<' in home

    # the console's header opens the board; the event's board finds the live session; the event recap lists it
    assert f'href="/sessions/{session.id}/board"' in await (await client.get(f"/events/{eid}/console", headers=staff)).text()
    redirect = await client.get(f"/events/{eid}/board", headers=staff, allow_redirects=False)
    assert redirect.status == 303 and redirect.headers["Location"] == f"/sessions/{session.id}/board"
    recap_page = await (await client.get(f"/events/{eid}/recap", headers=staff)).text()
    assert f'data-session="{session.id}"' in recap_page and 'data-total="gmv">$25.00<' in recap_page
    assert f'href="/events/{eid}/recap"' in await (await client.get(f"/events/{eid}", headers=staff)).text()


async def test_practice_counts_nothing_and_a_cancellation_leaves_its_minute(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory())
    app = client.app
    staff = await staff_cookie(client)
    eid = await make_event(app)
    mug = await make_product(app, "Mug", stock=10, price_cents=1250, event_id=eid)
    ann = await new_viewer(app, "Ann")
    practice = await go_live(app, eid, practice=True)
    assert (await (await client.post(f"/api/e/{eid}/opens", json={"product_id": mug}, headers=vh(ann))).json()) == {"counted": False}
    assert (await client.post(f"/api/e/{eid}/orders", json={"product_id": mug}, headers=vh(ann))).status == 201
    assert await app[DB].fetchval("SELECT COUNT(*) FROM session_minutes WHERE session_id = ?", (practice.id,)) == 0
    assert await app[DB].fetchval("SELECT COUNT(*) FROM session_products WHERE session_id = ?", (practice.id,)) == 0
    order_id = await app[DB].fetchval("SELECT id FROM orders WHERE session_id = ?", (practice.id,))
    async with app[DB].transaction() as tx:  # a real session's order, then cancelled: out of its minute again
        await tx.execute("UPDATE sessions SET practice = 0 WHERE id = ?", (practice.id,))
        await tx.execute("UPDATE orders SET practice = 0 WHERE id = ?", (order_id,))
    assert await app[DB].fetchval("SELECT gmv_cents FROM session_minutes WHERE session_id = ?", (practice.id,)) == 1250
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order_id,))
    row = await app[DB].fetchone("SELECT orders, items, gmv_cents FROM session_minutes WHERE session_id = ?", (practice.id,))
    assert tuple(row) == (0, 0, 0)
    assert (await client.get(f"/sessions/{practice.id}/board?sort=nope", headers=staff)).status == 400


def test_chart_axes_have_even_ticks_and_time_labels() -> None:
    from lmserver.analytics_charts import Marker, Point, nice_axis, time_chart, time_ticks
    from lmserver.sessionstats import viewers_chart

    assert nice_axis(5) == (6.0, 2.0) and nice_axis(3) == (3.0, 1.0) and nice_axis(0) == (4.0, 1.0) and nice_axis(870) == (1000.0, 250.0)
    assert [label for _, label in time_ticks(90)] == ["0:00", "0:15", "0:30", "0:45", "1:00", "1:15", "1:30"]
    assert [label for _, label in time_ticks(1800)][:3] == ["0 min", "5 min", "10 min"]
    assert [label for _, label in time_ticks(13 * 3600)] == ["0:00", "2:00", "4:00", "6:00", "8:00", "10:00", "12:00"]
    # the past-session chart of a 30-second session that peaked at 5 viewers: it read 0/2/5 with one "0 min" label
    chart = viewers_chart([(100.0, 1), (110.0, 5), (130.0, 3)], 100.0, 130.0)
    assert [t["label"] for t in chart["y_ticks"]] == ["0", "2", "4", "6"]
    assert [t["label"] for t in chart["x_ticks"]] == ["0:00", "0:10", "0:20", "0:30"]
    svg = str(time_chart([Point(0, 3, "0:00–1:00 · 3 <viewers>"), Point(60, 1, "1:00–2:00 · 1")], 120, label="Viewers",
                         markers=[Marker(30, "pin", "📌", "Pinned <Mug>")]))
    assert svg.startswith("<svg") and "<title>0:00–1:00 · 3 &lt;viewers&gt;</title>" in svg and "0:30 · Pinned &lt;Mug&gt;" in svg
    long = str(time_chart([Point(60.0 * m, m % 7, f"m{m}") for m in range(780)], 780 * 60, label="13 h", kind="bar"))
    assert long.count('class="hit"') == 260  # 780 minutes drawn as 260 three-minute columns
