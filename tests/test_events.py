"""LIVE events over the API: durations, overlaps, editing rules, going live, the ready window, sessions."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from lmserver.appkeys import BUS, DB, LIVE
from lmserver.errors import Conflict
from lmserver.events import publish_due_reminders
from tests.conftest import login

HOUR = 3600


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


def future(hours: float = 24) -> float:
    """A whole minute, ``hours`` from now (tests never depend on the clock's seconds)."""
    return (int(time.time() // 60) * 60) + hours * HOUR


async def create(client: Any, csrf: str, title: str, starts_at: float, minutes: int, **extra: Any) -> Any:
    return await client.post("/api/events", json={"title": title, "starts_at": iso(starts_at), "duration_minutes": minutes, **extra},
                             headers={"X-CSRF-Token": csrf})


async def insert_event(app: Any, title: str, starts_at: float, minutes: int = 60) -> int:
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                               (f"t-{title.lower().replace(' ', '-')}-{int(starts_at)}", title, starts_at, minutes, now, now))
        return cur.lastrowid


@pytest.mark.parametrize("minutes,ok", [(29, False), (30, True), (780, True), (781, False)])
async def test_duration_is_30_minutes_to_13_hours(client: Any, minutes: int, ok: bool) -> None:
    csrf = await login(client)
    resp = await create(client, csrf, "Boundary", future(), minutes)
    body = await resp.json()
    if ok:
        assert resp.status == 201, body
        assert body["event"]["duration_minutes"] == minutes
        assert body["event"]["ends_at"] == body["event"]["starts_at"] + minutes * 60
    else:
        assert resp.status == 400
        assert ("at least 30 minutes" if minutes < 30 else "at most 13 hours") in body["error"]["message"]


async def test_overlap_is_refused_naming_the_other_event_back_to_back_is_fine(client: Any) -> None:
    csrf = await login(client)
    t = future(48)
    first = await create(client, csrf, "Morning show", t, 60)
    assert first.status == 201
    after = await create(client, csrf, "Right after", t + HOUR, 30)  # starts when the first ends
    assert after.status == 201, await after.json()
    before = await create(client, csrf, "Right before", t - 30 * 60, 30)  # ends when the first starts
    assert before.status == 201, await before.json()
    for start, minutes in ((t + 59 * 60, 30), (t - 31 * 60, 32), (t - HOUR, 180), (t + 10 * 60, 30)):
        resp = await create(client, csrf, "Clash", start, minutes)
        assert resp.status == 409
        err = (await resp.json())["error"]
        assert "“" in err["message"] and "delete that event or pick another time" in err["message"]
        assert err["details"]["event"]["title"] in ("Morning show", "Right after", "Right before")
    resp = await create(client, csrf, "Clash", t + 20 * 60, 30)
    err = (await resp.json())["error"]
    assert "Morning show" in err["message"]
    assert dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M") in err["message"]  # names its time

    # moving an event onto another is refused the same way; moving it to a free time works
    other = (await (await create(client, csrf, "Evening", t + 5 * HOUR, 60)).json())["event"]
    resp = await client.patch(f"/api/events/{other['id']}", json={"starts_at": iso(t + 30 * 60)}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 409 and "Morning show" in (await resp.json())["error"]["message"]
    resp = await client.patch(f"/api/events/{other['id']}", json={"duration_minutes": 120, "title": "Evening, longer"},
                              headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert (await resp.json())["event"]["title"] == "Evening, longer"


async def test_bad_event_input(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    cases = [
        ({"title": "", "starts_at": iso(future()), "duration_minutes": 60}, "'title' is required"),
        ({"title": "x", "starts_at": "next tuesday", "duration_minutes": 60}, "ISO 8601"),
        ({"title": "x", "starts_at": iso(time.time() - 2 * HOUR), "duration_minutes": 60}, "in the past"),
        ({"title": "x", "starts_at": iso(future()), "duration_minutes": "an hour"}, "whole number of minutes"),
        ({"title": "x", "starts_at": iso(future())}, "'duration_minutes' is required"),
        ({"title": "x", "starts_at": iso(future()), "duration_minutes": 60, "colour": "red"}, "unknown event fields"),
    ]
    for body, message in cases:
        resp = await client.post("/api/events", json=body, headers=h)
        assert resp.status == 400, body
        assert message in (await resp.json())["error"]["message"]


async def test_past_events_cannot_be_edited_or_deleted_upcoming_ones_can(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    past = await insert_event(client.app, "Last week", time.time() - 7 * 86400)
    resp = await client.patch(f"/api/events/{past}", json={"title": "Renamed"}, headers=h)
    assert resp.status == 409 and "a past event cannot be edited" in (await resp.json())["error"]["message"]
    assert (await client.delete(f"/api/events/{past}", headers=h)).status == 409
    upcoming = (await (await create(client, csrf, "Soon", future(), 60)).json())["event"]
    assert (await client.delete(f"/api/events/{upcoming['id']}", headers=h)).status == 200
    assert (await client.get(f"/api/events/{upcoming['id']}")).status == 404
    listed = await (await client.get("/api/events?when=past")).json()
    assert [e["title"] for e in listed["events"]] == ["Last week"]


async def test_assistant_cannot_schedule(client: Any) -> None:
    csrf = await login(client, "assistant")
    resp = await create(client, csrf, "Nope", future(), 60)
    assert resp.status == 403


async def test_ready_window_starts_10_minutes_before_and_reminds_once(client: Any) -> None:
    csrf = await login(client)
    app = client.app
    heard: list[Any] = []
    app[BUS].on("event.ready", heard.append)
    t = future(3)
    ev = (await (await create(client, csrf, "Ready check", t, 60)).json())["event"]
    assert ev["status"] == "upcoming" and ev["ready"] is False
    assert await publish_due_reminders(app, now=t - 601) == []
    assert await publish_due_reminders(app, now=t - 600) == [ev["id"]]
    assert await publish_due_reminders(app, now=t - 300) == []  # once
    assert len(heard) == 1 and heard[0].event_id == ev["id"] and heard[0].data["starts_in"] == 600
    # moving the event re-arms its reminder
    resp = await client.patch(f"/api/events/{ev['id']}", json={"starts_at": iso(t + HOUR)}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert await publish_due_reminders(app, now=t + HOUR - 599) == [ev["id"]]

    # the status as the API reports it, with the real clock: 9 minutes away is ready, 11 is not
    now = time.time()
    ready_id = await insert_event(app, "In nine", now + 9 * 60, 30)
    later_id = await insert_event(app, "In eleven", now + 60 * 60, 30)
    assert (await (await client.get(f"/api/events/{ready_id}")).json())["event"]["status"] == "ready"
    assert (await (await client.get(f"/api/events/{later_id}")).json())["event"]["status"] == "upcoming"


async def test_going_live_opens_in_the_ready_window_before_it_only_practice(client: Any) -> None:
    """Decision (issue 16, item 1): Go LIVE is allowed from the ready window, as the commercial console allows."""
    await login(client)
    app = client.app
    later = await insert_event(app, "Later today", time.time() + 40 * 60, 60)
    with pytest.raises(Conflict) as exc:  # before the ready window: refused with the countdown and when it opens
        await app[LIVE].begin("test", False, None, event_id=later)
    assert "Go LIVE opens 10 minutes before the start" in exc.value.message and "min" in exc.value.message
    assert 29 * 60 < exc.value.details["opens_in"] <= 30 * 60
    assert app[LIVE].current is None
    resp = await client.get(f"/api/events/{later}/golive-check")
    assert (await resp.json())["ok"] is False
    # a practice session before the start is fine
    resp = await client.get(f"/api/events/{later}/golive-check?practice=1")
    assert (await resp.json())["ok"] is True
    # inside the ready window: the LIVE itself may start, early, in that event (which keeps its schedule)
    soon = await insert_event(app, "Starts soon", time.time() + 5 * 60, 30)
    resp = await client.get(f"/api/events/{soon}/golive-check")
    assert (await resp.json())["ok"] is True
    session = await app[LIVE].begin("test", False, None)  # no event named: the ready one
    assert session.event_id == soon and not session.practice
    row = await app[DB].fetchone("SELECT starts_at FROM events WHERE id = ?", (soon,))
    assert row["starts_at"] > time.time()
    await app[LIVE].end("host ended")


async def test_go_live_now_creates_an_event_and_sessions_pause_and_resume(client: Any) -> None:
    csrf = await login(client)
    app = client.app
    heard: list[Any] = []
    app[BUS].on("event.created", heard.append)
    first = await app[LIVE].begin("test", False, None)
    assert first.event_id is not None
    row = await app[DB].fetchone("SELECT * FROM events WHERE id = ?", (first.event_id,))
    assert row["duration_minutes"] == 60 and abs(row["starts_at"] - first.started_at) < 5
    assert len(heard) == 1
    with pytest.raises(Conflict):  # one session at a time
        await app[LIVE].begin("test", False, None)
    ev = (await (await client.get(f"/api/events/{first.event_id}")).json())["event"]
    assert ev["status"] == "live"
    await app[LIVE].end("host ended")
    assert (await (await client.get(f"/api/events/{first.event_id}")).json())["event"]["status"] == "open"
    # going live again inside the window: a new session of the same event (resume window disabled by ending cleanly)
    second = await app[LIVE].begin("test", False, None)
    assert second.event_id == first.event_id and second.id != first.id
    await app[LIVE].end("host ended")
    resp = await client.delete(f"/api/events/{first.event_id}", headers={"X-CSRF-Token": csrf})
    assert resp.status == 409 and "already went live (2 sessions)" in (await resp.json())["error"]["message"]
    sessions = (await (await client.get(f"/api/events/{first.event_id}/sessions")).json())["sessions"]
    assert [s["id"] for s in sessions] == [first.id, second.id]
    assert all(s["ended_at"] is not None and s["duration"] >= 0 for s in sessions)


async def test_go_live_now_is_shortened_before_the_next_event(client: Any) -> None:
    csrf = await login(client)
    app = client.app
    nxt = await insert_event(app, "Next one", time.time() + 45 * 60, 60)
    resp = await client.post("/api/events/now", json={"title": "Quick LIVE"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201
    ev = (await resp.json())["event"]
    assert ev["title"] == "Quick LIVE" and ev["status"] == "open"
    assert 30 <= ev["duration_minutes"] <= 45 and ev["ends_at"] <= time.time() + 45 * 60 + 1
    # the same call inside that window returns the open event instead of a new one
    again = await client.post("/api/events/now", json={}, headers={"X-CSRF-Token": csrf})
    assert again.status == 200 and (await again.json())["event"]["id"] == ev["id"]
    assert nxt != ev["id"]


async def test_requested_event_that_ended_is_refused(client: Any) -> None:
    app = client.app
    old = await insert_event(app, "Yesterday", time.time() - 86400, 60)
    with pytest.raises(Conflict) as exc:
        await app[LIVE].begin("test", False, None, event_id=old)
    assert "ended" in exc.value.message


async def test_pages_render(client: Any) -> None:
    csrf = await login(client)
    ev = (await (await create(client, csrf, "Page <b>test</b>", future(), 90, description="Line one\nLine two")).json())["event"]
    for path in ("/events", "/events/past", f"/events/{ev['id']}", "/", "/help", "/help/product-selection", "/help/structuring-a-show",
                 "/help/sales-pitches", "/help/policy-violations", "/studio", ev["url"]):
        resp = await client.get(path)
        assert resp.status == 200, path
        text = await resp.text()
        assert "<b>test</b>" not in text, path  # escaped everywhere
    assert (await client.get("/help/nope")).status == 404
    assert (await client.get("/events/999999")).status == 404


async def test_the_go_live_check_asks_the_one_resolver_and_writes_nothing(client: Any) -> None:
    """``resolve_event(..., check_only=True)`` applies the going-live rules without creating the "Go LIVE
    now" event, and the console's go-live check answers with the resolver's own refusal."""
    from lmserver.events import resolve_event

    await login(client)
    app = client.app
    assert await resolve_event(app, None, False, check_only=True) is None
    assert await app[DB].fetchval("SELECT COUNT(*) FROM events") == 0  # nothing written
    past = await insert_event(app, "Yesterday", time.time() - 26 * HOUR, 60)
    later = await insert_event(app, "Later", time.time() + 25 * 60, 60)  # before its ready window; leaves <30 min for a new one
    for requested in (None, later, past):
        with pytest.raises(Conflict) as checked:
            await resolve_event(app, requested, False, check_only=True)
        with pytest.raises(Conflict) as real:
            await resolve_event(app, requested, False)
        assert checked.value.message == real.value.message
        if requested is not None:
            answer = await (await client.get(f"/api/events/{requested}/golive-check")).json()
            assert answer["ok"] is False and answer["message"] == real.value.message
    assert await app[DB].fetchval("SELECT COUNT(*) FROM events") == 2


async def test_a_future_event_with_only_practice_is_not_a_past_event(client: Any) -> None:
    await login(client)
    app = client.app
    rehearsed = await insert_event(app, "Rehearsed tomorrow", time.time() + 26 * HOUR, 60)
    running = await insert_event(app, "Running now", time.time() - 60, 60)
    await app[LIVE].begin("test", True, None, event_id=rehearsed)
    await app[LIVE].end("practice over")
    await app[LIVE].begin("test", False, None, event_id=running)
    await app[LIVE].end("host ended")
    page = await (await client.get("/events/past")).text()
    assert "Running now" in page and "Rehearsed tomorrow" not in page
