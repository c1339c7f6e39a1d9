"""Best start time and duration, on seeded histories whose right answer is known; session analytics; home."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from lmserver.appkeys import DB
from lmserver.suggest import SessionFacts, next_occurrence, suggest, suggest_for_app
from tests.conftest import login

UTC = dt.timezone.utc


def at(weekday: int, hour: int, weeks_ago: int) -> float:
    """A past time on ``weekday`` (0 = Monday) at ``hour``:00 UTC, ``weeks_ago`` weeks back from a fixed Monday."""
    monday = dt.datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
    return (monday + dt.timedelta(days=weekday, hours=hour) - dt.timedelta(weeks=weeks_ago)).timestamp()


def facts(weekday: int, hour: int, weeks_ago: int, gmv: int, reached: int = 50, avg: float = 20.0,
          duration_min: int = 60, order_minutes: tuple[int, ...] = ()) -> SessionFacts:
    orders = [(m * 60.0, gmv // max(len(order_minutes), 1)) for m in order_minutes]
    return SessionFacts(at(weekday, hour, weeks_ago), duration_min * 60.0, gmv, reached, avg, orders)


def test_not_enough_history() -> None:
    for n in (0, 1, 2):
        got = suggest([facts(3, 19, w, 10000) for w in range(n)])
        assert got["enough"] is False and "Not enough history yet" in got["message"] and "at least 3" in got["message"]


def test_the_slot_with_the_best_gmv_wins_and_the_reason_says_why() -> None:
    history = [facts(3, 19, w, 30000, order_minutes=(5, 20, 40, 70)) for w in range(1, 6)]  # Thursdays 19:00, 5 sessions
    history += [facts(0, 12, w, 10000) for w in range(1, 6)]  # Mondays noon
    history += [facts(5, 10, w, 8000) for w in range(1, 4)]  # Saturdays 10:00
    got = suggest(history)
    assert got["enough"] and (got["weekday"], got["hour"]) == (3, 19)
    assert got["reason"] == "Thursdays at 19:00 averaged 3.0× your median GMV over 5 sessions"
    # 90 % of the GMV came by minute 70 in each of those sessions → 75 minutes (rounded up to 15)
    assert got["duration_minutes"] == 75


def test_one_lucky_show_does_not_beat_a_time_that_works_again_and_again() -> None:
    history = [facts(1, 9, w, 10000) for w in range(1, 9)]  # Tuesdays 9:00: the median, eight times
    history += [facts(4, 20, w, 20000) for w in range(1, 5)]  # Fridays 20:00: twice the median, four times
    history += [facts(6, 15, 2, 25000)]  # one Sunday: 2.5× the median, once
    got = suggest(history)
    assert (got["weekday"], got["hour"]) == (4, 20), got["slots"]
    assert got["reason"] == "Fridays at 20:00 averaged 2.0× your median GMV over 4 sessions"
    # ...but a single show far above the rest does win
    got = suggest(history[:-1] + [facts(6, 15, 2, 60000)])
    assert (got["weekday"], got["hour"]) == (6, 15) and "over 1 session" in got["reason"]


def test_viewers_decide_when_there_are_no_sales_yet() -> None:
    history = [facts(2, 18, w, 0, reached=300, avg=120.0) for w in range(1, 4)]
    history += [facts(2, 9, w, 0, reached=40, avg=10.0) for w in range(1, 4)]
    got = suggest(history)
    assert (got["weekday"], got["hour"]) == (2, 18)
    assert "reached" in got["reason"] and "usual number of viewers" in got["reason"]
    assert got["duration_minutes"] == 60  # no orders: the median length of those sessions


def test_duration_is_kept_between_30_minutes_and_13_hours() -> None:
    short = suggest([facts(0, 10, w, 5000, order_minutes=(1, 2, 3)) for w in range(1, 4)])
    assert short["duration_minutes"] == 30
    long = suggest([facts(0, 10, w, 5000, duration_min=900) for w in range(1, 4)])
    assert long["duration_minutes"] == 780


def test_next_occurrence() -> None:
    wed = dt.datetime(2026, 11, 25, 12, 30, tzinfo=UTC).timestamp()  # a Wednesday
    assert dt.datetime.fromtimestamp(next_occurrence(3, 19, wed), UTC) == dt.datetime(2026, 11, 26, 19, tzinfo=UTC)
    assert dt.datetime.fromtimestamp(next_occurrence(2, 12, wed), UTC) == dt.datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert dt.datetime.fromtimestamp(next_occurrence(2, 13, wed), UTC) == dt.datetime(2026, 11, 25, 13, tzinfo=UTC)


async def seed_session(app: Any, start: float, minutes: int, *, practice: bool = False, gmv: int = 0, event_id: int | None = None,
                       viewers: tuple[int, ...] = (), pinned: tuple[int, ...] = (), product_id: int | None = None) -> int:
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO sessions (event_id, practice, source, started_at, ended_at) VALUES (?, ?, 'whip', ?, ?)",
                               (event_id, int(practice), start, start + minutes * 60))
        sid = cur.lastrowid
        for i, v in enumerate(viewers):
            await tx.execute("INSERT INTO viewer_samples (session_id, at, viewers) VALUES (?, ?, ?)", (sid, start + 5 * i, v))
        if gmv:
            await tx.execute("INSERT INTO viewers (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (f"buyer{sid}", start))
            await tx.execute(
                "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency, first_time, practice, created_at)"
                " VALUES (?, ?, ?, ?, 2, ?, ?, 'USD', 1, ?, ?)", (f"buyer{sid}", product_id, event_id, sid, gmv // 2, gmv, int(practice), start + 600))
        for pid in pinned:
            await tx.execute("INSERT INTO activity (name, event_id, session_id, data, created_at) VALUES ('product.pinned', ?, ?, ?, ?)",
                             (event_id, sid, json.dumps({"product": {"id": pid, "title": f"P{pid}"}}), start + 60))
    return sid


async def product(app: Any) -> int:
    now = time.time()
    return await app[DB].execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at) VALUES ('Mug', 1000, 'USD', 5, ?, ?)", (now, now))


async def test_suggestion_from_the_database_ignores_practice(client: Any) -> None:
    app = client.app
    await login(client)
    pid = await product(app)
    assert (await suggest_for_app(app))["enough"] is False
    for w in range(1, 4):
        await seed_session(app, at(3, 19, w), 60, gmv=30000, viewers=(10, 30, 20), product_id=pid)
        await seed_session(app, at(0, 9, w), 60, practice=True, gmv=999999, viewers=(500,), product_id=pid)  # never counts
    got = await (await client.get("/api/events/suggestion")).json()
    assert got["enough"] and (got["weekday"], got["hour"]) == (3, 19) and got["sessions"] == 3
    start = dt.datetime.fromtimestamp(got["next_start"], UTC)
    assert (start.weekday(), start.hour, start.minute) == (3, 19, 0) and got["next_start"] > time.time()
    assert "Best time to start" in await (await client.get("/events")).text()


async def test_suggestion_counts_live_orders_only_not_the_replays(client: Any) -> None:
    app = client.app
    await login(client)
    pid = await product(app)
    for w in range(1, 4):
        await seed_session(app, at(3, 19, w), 60, gmv=30000, viewers=(10, 30, 20), product_id=pid)
        monday = await seed_session(app, at(0, 10, w), 60, gmv=5000, viewers=(10, 30, 20), product_id=pid)
        # the Monday LIVEs' published replays sold a lot, days later: that says nothing of when to go live
        await app[DB].execute(
            "INSERT INTO orders (viewer_id, product_id, session_id, quantity, unit_price_cents, amount_cents, currency, first_time,"
            " practice, created_at, label) VALUES (?, ?, ?, 1, 900000, 900000, 'USD', 0, 0, ?, 'replay')",
            (f"buyer{monday}", pid, monday, at(0, 10, w) + 2 * 86400))
    got = await suggest_for_app(app)
    assert got["enough"] and (got["weekday"], got["hour"]) == (3, 19)
    assert got["duration_minutes"] == 30  # 90 % of the LIVE's GMV in its first 10 minutes, not the replay's two days


async def test_past_events_analytics_and_home(client: Any) -> None:
    app = client.app
    await login(client)
    pid = await product(app)
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES ('past-one', 'Past one', ?, 120, ?, ?)",
                               (now - 86400, now, now))
        eid = cur.lastrowid
    sid = await seed_session(app, now - 86400 + 60, 45, gmv=5000, event_id=eid, viewers=(4, 10, 7, 3), pinned=(pid, pid, pid + 1000), product_id=pid)
    await seed_session(app, now - 86400 + 3600, 20, practice=True, gmv=700, event_id=eid, product_id=pid)
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO comments (event_id, session_id, nickname, body, created_at) VALUES (?, ?, 'a', 'hi', ?)", (eid, sid, now))
    sessions = (await (await client.get(f"/api/events/{eid}/sessions")).json())["sessions"]
    real, practice = sessions
    assert (real["duration"], real["products_featured"], real["figures"], real["peak_viewers"], real["avg_viewers"], real["gmv_cents"]) == \
        (2700, 2, [], 10, 6.0, 5000)  # no plugin, no plugin figures
    assert practice["practice"] is True and practice["gmv_cents"] == 0  # practice orders never count
    report = await (await client.get(f"/api/sessions/{sid}")).json()
    assert report["session"]["orders"] == 1 and report["session"]["comments"] == 1 and report["session"]["items_sold"] == 2
    assert [s["viewers"] for s in report["samples"]] == [4, 10, 7, 3]
    page = await (await client.get(f"/sessions/{sid}")).text()
    assert 'id="viewers-chart"' in page and "<polyline" in page and "$50.00" in page
    past = await (await client.get("/events/past")).text()
    assert "Past one" in past and f'href="/sessions/{sid}"' in past and f'href="/events/{eid}/console?session={sid}"' in past
    assert (await client.get("/sessions/99999")).status == 404

    home = await (await client.get("/")).text()
    assert 'data-check="catalog" data-done="1"' in home and 'data-check="practice" data-done="1"' in home
    assert 'data-check="event" data-done="0"' in home and 'data-check="promote" data-done="0"' in home
    assert 'id="snap-gmv">$50.00' in home
    for topic in ("product-selection", "structuring-a-show", "sales-pitches", "policy-violations"):
        assert f'href="/help/{topic}"' in home


def test_hours_of_the_week_are_the_studios_and_the_text_says_what_it_is_based_on() -> None:
    """Issue 16, item 13: slots on the studio's clock; never "in the first 0 minutes"; the number of sessions."""
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")  # September: UTC+2
    quick = [facts(3, 17, w, 10000, order_minutes=(0,)) for w in range(1, 5)]  # every order in the first seconds
    got = suggest(quick, paris)
    assert (got["weekday"], got["hour"]) == (3, 19) and got["label"] == "Thursdays at 19:00"
    assert "in the first 0 minutes" not in got["message"] and "within the first minute" in got["duration_reason"]
    assert got["based_on"] == "Based on 4 past LIVE sessions (practice excluded)" and got["based_on"] in got["message"]
    assert suggest(quick[:2])["based_on"] == "Based on 2 past LIVE sessions (practice excluded)"
    later = suggest([facts(3, 17, w, 10000, order_minutes=(1, 20, 25)) for w in range(1, 5)])
    assert "in the first 25 minutes" in later["duration_reason"]
    # the next Thursday 19:00 in Paris, across the change to winter time (25 Oct 2026)
    after = dt.datetime(2026, 10, 24, 12, tzinfo=UTC).timestamp()
    nxt = dt.datetime.fromtimestamp(next_occurrence(3, 19, after, paris), paris)
    assert (nxt.weekday(), nxt.hour, nxt.minute, nxt.utcoffset()) == (3, 19, 0, dt.timedelta(hours=1))
