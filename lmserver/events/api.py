"""The events API: list, schedule, edit, delete, recommend, Go LIVE now, suggestion, sessions."""

from __future__ import annotations

import time

from aiohttp import web

from .. import auth, validate
from ..appkeys import BUS, DB, LIVE
from ..errors import BadRequest, Conflict
from ..openapi import doc
from ..sessionstats import event_sessions
from ..suggest import suggest_for_app
from ..timefmt import studio_zone
from ..views import json_body
from .golive import go_live_now_offer, resolve_event, start_event_now
from .model import (MAX_DURATION, MIN_DURATION, PAST_GRACE_SECONDS, check_editable, check_overlap, clean_event, event_detail,
                    event_from_path, find_event, insert_event, list_events, update_event, when_text)

routes = web.RouteTableDef()


@routes.get("/api/events")
@doc("List events", query={"when": "upcoming (default: not yet ended, soonest first), past (newest first) or all"},
     returns="{events: [{id, slug, title, description, starts_at, ends_at, duration_minutes, status, ready, recommended, url, products, registrations, sessions}]}",
     tags=["events"], permission="console.view")
async def api_events(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response({"events": await list_events(request.app, request.query.get("when", "upcoming"))})


@routes.post("/api/events")
@doc("Schedule an event; 409 (naming the other event) when it overlaps one",
     body={"title": "string: 1–120 characters", "description": "string: optional",
           "script": "string: optional run-of-show script (staff-only, at most 4000 characters)", "starts_at": "ISO 8601 (UTC when no offset) or UNIX seconds",
           "duration_minutes": f"integer: {MIN_DURATION}–{MAX_DURATION}"},
     returns="{event}", tags=["events"], permission="show.run")
async def api_event_create(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    cols = clean_event(await json_body(request), partial=False)
    if cols["starts_at"] < time.time() - PAST_GRACE_SECONDS:
        raise BadRequest(f"the start time {when_text(cols['starts_at'], studio_zone(request.app))} is in the past: pick a later time, or use Go LIVE now")
    row = await insert_event(request.app, cols, user.id)
    return web.json_response({"event": await event_detail(request.app, row)}, status=201)


@routes.get("/api/events/now")
@doc("What Go LIVE now would do: the event whose window is open (current), the next event later today in the studio's time zone"
     " (next_today: offer to start it now, moving its start), and the title a new event would get",
     returns="{current: event or null, next_today: event or null, new_title}", tags=["events"], permission="show.run")
async def api_event_now_offer(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    return web.json_response(await go_live_now_offer(request.app))


@routes.post("/api/events/now")
@doc("Go LIVE now without waiting: the event whose window is open; else, with event_id, start that scheduled event now"
     " (its start moves to now, its bag and registrations stay); else create an event starting now, named after the"
     " studio's clock (events.default_duration_minutes, shortened to end before the next event)",
     body={"title": "string: optional title of a new event", "event_id": "integer: optional, a scheduled event to start now"},
     returns="{event, existing, moved}", tags=["events"], permission="show.run")
async def api_event_now(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    data = await json_body(request) if request.can_read_body else {}
    validate.reject_unknown(data, {"title", "event_id"}, "Go LIVE now")
    title = validate.text(data, "title", max_len=120)
    app = request.app
    now = time.time()
    current = await app[DB].fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? LIMIT 1", (now, now))
    if current is not None:
        return web.json_response({"event": await event_detail(app, current), "existing": True, "moved": False})
    if data.get("event_id") is not None:
        if isinstance(data["event_id"], bool) or not isinstance(data["event_id"], int):
            raise BadRequest(f"'event_id' must be the id (an integer) of a scheduled event, got {data['event_id']!r}")
        row = await find_event(app[DB], data["event_id"])
        if row["starts_at"] + row["duration_minutes"] * 60 <= now:
            raise Conflict(f"the event “{row['title']}” has ended: it cannot be started now")
        row = await start_event_now(app, row)
        return web.json_response({"event": await event_detail(app, row), "existing": True, "moved": True})
    event_id = await resolve_event(app, None, False)
    row = await find_event(app[DB], event_id or 0)
    if row["created_at"] < now:  # the next event is in its ready window: go live in it
        return web.json_response({"event": await event_detail(app, row), "existing": True, "moved": False})
    if title:
        row = await update_event(app, row, clean_event({"title": title}, partial=True))
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE events SET created_by = ? WHERE id = ?", (user.id, row["id"]))
    return web.json_response({"event": await event_detail(app, row), "existing": False, "moved": False}, status=201)


@routes.get("/api/events/suggestion")
@doc("Best time to start and duration for a new event, from past non-practice sessions (needs at least 3)",
     returns="{enough, message, weekday, hour, duration_minutes, next_start, reason, slots}", tags=["events"], permission="console.view")
async def api_event_suggestion(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response(await suggest_for_app(request.app))


@routes.get("/api/events/{id}")
@doc("One event (by id or slug)", returns="{event}", tags=["events"], permission="console.view")
async def api_event_get(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response({"event": await event_detail(request.app, await event_from_path(request))})


@routes.patch("/api/events/{id}")
@doc("Edit an event that has not ended (any subset of the create fields); 409 on overlap or for a past event",
     body={"title": "string", "description": "string", "starts_at": "", "duration_minutes": "integer",
           "script": "string: the run-of-show script (staff-only, at most 4000 characters)"}, returns="{event}", tags=["events"], permission="show.run")
async def api_event_update(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await event_from_path(request)
    check_editable(app, row)
    cols = clean_event(await json_body(request), partial=True)
    now = time.time()
    start = cols.get("starts_at", row["starts_at"])
    duration = cols.get("duration_minutes", row["duration_minutes"])
    if "starts_at" in cols and cols["starts_at"] != row["starts_at"]:
        if row["starts_at"] <= now or await app[DB].fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ?", (row["id"],)):
            raise Conflict("this event has already started: its start time can no longer be moved (change its duration instead)")
        if start < now - PAST_GRACE_SECONDS:
            raise BadRequest(f"the start time {when_text(start, studio_zone(app))} is in the past: pick a later time")
    if start + duration * 60 <= now:
        raise BadRequest("with this duration the event would already be over: make it longer")
    if "starts_at" in cols or "duration_minutes" in cols:
        await check_overlap(app[DB], start, duration, row["id"], zone=studio_zone(app))
    row = await update_event(app, row, cols)
    return web.json_response({"event": await event_detail(app, row)})


@routes.delete("/api/events/{id}")
@doc("Delete an event that has not ended and is not live", returns="{deleted: id}", tags=["events"], permission="show.run")
async def api_event_delete(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await event_from_path(request)
    check_editable(app, row, "deleted (its sessions and figures are kept)")
    live = app[LIVE].current
    if live is not None and live.event_id == row["id"]:
        raise Conflict("this event is live: end the LIVE before deleting the event")
    held = await app[DB].fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ? AND practice = 0", (row["id"],))
    if held:
        raise Conflict(f"this event already went live ({held} session{'s' if held != 1 else ''}): it is kept with its figures; "
                       "shorten it instead")
    async with app[DB].transaction() as tx:
        await tx.execute("DELETE FROM events WHERE id = ?", (row["id"],))
    await app[BUS].publish("event.deleted", {"event_id": row["id"], "title": row["title"]})
    return web.json_response({"deleted": row["id"]})


@routes.post("/api/events/{id}/recommend")
@doc("Turn 'recommend this event' on or off: while on and until the event's end, the studio's public pages link to its registration page",
     body={"on": "boolean: true or false"}, returns="{event}", tags=["events"], permission="show.run")
async def api_event_recommend(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await event_from_path(request)
    data = await json_body(request)
    on = data.get("on")
    if not isinstance(on, bool):
        raise BadRequest("'on' must be true or false")
    if on:
        check_editable(app, row, "recommended")
    row = await update_event(app, row, {"recommended": int(on)})
    return web.json_response({"event": await event_detail(app, row)})


@routes.get("/api/events/{id}/sessions")
@doc("The event's sessions with their figures", returns="{sessions: [{id, started_at, ended_at, duration, practice, products_featured, peak_viewers, avg_viewers, gmv_cents, figures: [{name, label, value, plugin}], ...}]}",
     tags=["events"], permission="console.view")
async def api_event_sessions(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await event_from_path(request)
    return web.json_response({"sessions": await event_sessions(request.app, row["id"])})
