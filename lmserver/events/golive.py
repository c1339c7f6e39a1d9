"""Going live: which event a new session belongs to (:func:`resolve_event`), and the console's go-live check."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from .. import auth
from ..appkeys import CONFIG, DB, LIVE
from ..errors import Conflict
from ..openapi import doc
from .model import MIN_DURATION, ends_at, event_from_path, find_event, fmt_span, insert_event, when_text

routes = web.RouteTableDef()


async def resolve_event(app: web.Application, requested: int | None, practice: bool, *, check_only: bool = False) -> int | None:
    """Pick the event of a new session (installed as ``LiveState.resolve_event``); may refuse with 409.

    ``check_only``: apply the same rules but write nothing (the console's go-live check): where going
    live would create a "Go LIVE now" event, answer None instead.
    """
    db, cfg = app[DB], app[CONFIG].events
    now = time.time()
    ready_s = cfg.ready_minutes * 60
    if requested is not None:
        row = await find_event(db, requested)
        if now >= ends_at(row):
            raise Conflict(f"the event “{row['title']}” ended at {when_text(ends_at(row))}: schedule a new event or use Go LIVE now")
        if now < row["starts_at"] and not practice:
            raise Conflict(f"the event “{row['title']}” starts at {when_text(row['starts_at'])}, in {fmt_span(row['starts_at'] - now)}: "
                           "it cannot go live before its start time (practise meanwhile)",
                           details={"starts_in": row["starts_at"] - now, "event_id": row["id"]})
        return int(row["id"])
    current = await db.fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1", (now, now))
    if current is not None:
        return int(current["id"])
    nxt = await db.fetchone("SELECT * FROM events WHERE starts_at > ? ORDER BY starts_at LIMIT 1", (now,))
    if practice:
        # a rehearsal belongs to the next event when it is near (ready), else to no event
        return int(nxt["id"]) if nxt is not None and nxt["starts_at"] - now <= ready_s else None
    if nxt is not None and nxt["starts_at"] - now <= ready_s:
        raise Conflict(f"the event “{nxt['title']}” starts in {fmt_span(nxt['starts_at'] - now)} ({when_text(nxt['starts_at'])}): "
                       "go live at its start time (practise meanwhile)",
                       details={"starts_in": nxt["starts_at"] - now, "event_id": nxt["id"]})
    duration = cfg.default_duration_minutes
    if nxt is not None and nxt["starts_at"] < now + duration * 60:
        duration = int((nxt["starts_at"] - now) // 60)
        if duration < MIN_DURATION:
            raise Conflict(f"the event “{nxt['title']}” starts in {fmt_span(nxt['starts_at'] - now)}: not enough time for a "
                           f"{MIN_DURATION}-minute LIVE before it; wait for its start or move it")
    if check_only:
        return None
    title = "LIVE " + dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%a %d %b %H:%M UTC")
    row = await insert_event(app, {"title": title, "description": "", "starts_at": now, "duration_minutes": duration}, None)
    return int(row["id"])


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
