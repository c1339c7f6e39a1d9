"""Going live: which event a new session belongs to (:func:`resolve_event`), "Go LIVE now" (start the day's next event now,
or a new event), and the console's go-live check."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from .. import auth
from ..appkeys import CONFIG, DB, LIVE
from ..errors import Conflict
from ..openapi import doc
from ..timefmt import fmt, studio_zone
from .model import (MIN_DURATION, check_overlap, ends_at, event_from_path, event_json, find_event, fmt_span, insert_event, update_event,
                    when_text)

routes = web.RouteTableDef()


async def resolve_event(app: web.Application, requested: int | None, practice: bool, *, check_only: bool = False) -> int | None:
    """Pick the event of a new session (installed as ``LiveState.resolve_event``); may refuse with 409.

    Going live is allowed from an event's ready window (``events.ready_minutes`` before its start, as the
    commercial console allows); the event keeps its scheduled times. Earlier, only practice is allowed
    (or "Go LIVE now" offers to move the event's start to now: :func:`start_event_now`).

    ``check_only``: apply the same rules but write nothing (the console's go-live check): where going
    live would create a "Go LIVE now" event, answer None instead.
    """
    db, cfg = app[DB], app[CONFIG].events
    zone = studio_zone(app)
    now = time.time()
    ready_s = cfg.ready_minutes * 60
    if requested is not None:
        row = await find_event(db, requested)
        if now >= ends_at(row):
            raise Conflict(f"the event “{row['title']}” ended at {when_text(ends_at(row), zone)}: schedule a new event or use Go LIVE now")
        if now < row["starts_at"] - ready_s and not practice:
            raise Conflict(f"the event “{row['title']}” starts at {when_text(row['starts_at'], zone)}, in {fmt_span(row['starts_at'] - now)}: "
                           f"Go LIVE opens {cfg.ready_minutes} minutes before the start (practise meanwhile, or use Go LIVE now"
                           " to move its start to now)",
                           details={"starts_in": row["starts_at"] - now, "event_id": row["id"],
                                    "opens_in": row["starts_at"] - ready_s - now})
        return int(row["id"])
    current = await db.fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1", (now, now))
    if current is not None:
        return int(current["id"])
    nxt = await db.fetchone("SELECT * FROM events WHERE starts_at > ? ORDER BY starts_at LIMIT 1", (now,))
    if nxt is not None and nxt["starts_at"] - now <= ready_s:
        return int(nxt["id"])  # ready: a rehearsal or the LIVE itself belongs to it
    if practice:
        return None  # a rehearsal far from any event belongs to no event
    duration = cfg.default_duration_minutes
    if nxt is not None and nxt["starts_at"] < now + duration * 60:
        duration = int((nxt["starts_at"] - now) // 60)
        if duration < MIN_DURATION:
            raise Conflict(f"the event “{nxt['title']}” starts in {fmt_span(nxt['starts_at'] - now)}: not enough time for a "
                           f"{MIN_DURATION}-minute LIVE before it; start that event now (Go LIVE now) or wait for its ready window")
    if check_only:
        return None
    row = await insert_event(app, {"title": now_title(app, now), "description": "", "starts_at": now, "duration_minutes": duration}, None)
    return int(row["id"])


def now_title(app: web.Application, now: float) -> str:
    """The title of a "Go LIVE now" event: "LIVE Tue 1 Dec, 14:05" on the studio's clock."""
    return "LIVE " + fmt(now, "short", studio_zone(app))


async def next_today(app: web.Application, now: float | None = None) -> Any:
    """The next scheduled event that starts later on the same day (studio's calendar), or None."""
    now = time.time() if now is None else now
    zone = studio_zone(app)
    day = dt.datetime.fromtimestamp(now, zone).date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone) + dt.timedelta(days=1)
    return await app[DB].fetchone("SELECT * FROM events WHERE starts_at > ? AND starts_at < ? ORDER BY starts_at LIMIT 1",
                                  (now, midnight.timestamp()))


async def start_event_now(app: web.Application, row: Any) -> Any:
    """Move a scheduled event's start to now (its duration kept; the bag, registrations and practice sessions stay)."""
    now = time.time()
    if row["starts_at"] <= now:
        return row
    zone = studio_zone(app)
    await check_overlap(app[DB], now, int(row["duration_minutes"]), row["id"], zone=zone)
    return await update_event(app, row, {"starts_at": now})


async def go_live_now_offer(app: web.Application) -> dict[str, Any]:
    """What "Go LIVE now" would do: open the current event, offer to start the next one of the day now, or make a new one."""
    now = time.time()
    current = await app[DB].fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? LIMIT 1", (now, now))
    nxt = await next_today(app, now)
    zone = studio_zone(app)
    return {"current": event_json(app, current, now) if current is not None else None,
            "next_today": None if nxt is None else {
                **event_json(app, nxt, now), "starts_text": fmt(nxt["starts_at"], "time", zone),
                "products": await app[DB].fetchval("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (nxt["id"],))},
            "new_title": now_title(app, now)}


async def go_live_check(app: web.Application, event_id: int, practice: bool) -> dict[str, Any]:
    """Whether a go-live for this event would be accepted now, and why not."""
    if app[LIVE].current is not None:
        return {"ok": False, "message": "the studio is already live from another device: end that stream first"}
    try:
        await resolve_event(app, event_id, practice, check_only=True)
    except Conflict as exc:
        return {"ok": False, "message": exc.message, **(exc.details or {})}
    return {"ok": True, "message": "ready to go live"}


@routes.get("/api/events/{id}/golive-check")
@doc("Would going live for this event be accepted now? (the console greys out Go LIVE and shows the reason)",
     query={"practice": "1 for a practice session"}, returns="{ok, message, starts_in?}", tags=["events"], permission="console.view")
async def api_event_golive_check(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await event_from_path(request)
    return web.json_response(await go_live_check(request.app, row["id"], request.query.get("practice") in ("1", "true")))
