"""The LIVE console: one event's control page, live or not, and the figures it shows.

- ``GET /console``: the console of the live event, else of the next (or the latest) event.
- ``GET /events/{id}/console``: the console of an event; ``?session=SID`` shows a past session
  read-only (no edit controls, no live updates).
- ``GET /api/events/{id}/console``: everything the page draws (metrics, comments, orders, activities,
  prompter items); the page reloads it after a WebSocket reconnect, everything else arrives on the bus.
- ``GET /api/events/{id}/metrics``: the metrics panel's figures.

:func:`live_ctx` (appended to the app's ``cleanup_ctx`` after the core) follows the viewer count on the
bus (``viewer.joined`` / ``viewer.left`` / ``stream.health``) and samples it every
``live.viewer_sample_seconds`` into ``viewer_samples``, keeping ``sessions.peak_viewers`` up to date.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from aiohttp import web

from . import auth, comments, orders, validate
from .background import background
from .appkeys import BUS, CONFIG, DB, LIVE
from .bus import Activity
from .busevents import activity_kinds
from .errors import NotFound
from .figures import audience_figures, session_figures
from .openapi import doc
from .prompter import finding_record, session_findings
from .panels import render_panels
from .templating import as_dict, render
from .views import public_base
from .events import find_event
from .viewer import gifts_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@dataclass
class ViewerCount:
    session_id: int | None = None
    viewers: int = 0
    peak: int = 0


VIEWERS: web.AppKey[ViewerCount] = web.AppKey("viewer_count", ViewerCount)


def activity_names(app: web.Application) -> list[str]:
    """Bus events shown in the console's "All activities" feed: those declared with ``activity`` (the core's and
    plugins', through ``register_bus_events``; see :mod:`lmserver.busevents`)."""
    return [name for name, spec in app[BUS].specs.items() if spec.activity]


def activity_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "event_id": row["event_id"], "session_id": row["session_id"],
            "practice": bool(row["practice"]), "at": row["created_at"], "data": json.loads(row["data"])}


# --------------------------------------------------------------------------------------------- state


async def pick_session(app: web.Application, event_id: int, session_id: int | None) -> dict[str, Any] | None:
    """The session a console shows: the requested one, the live one, else the event's latest."""
    db = app[DB]
    if session_id is not None:
        row = await db.fetchone("SELECT * FROM sessions WHERE id = ? AND event_id = ?", (session_id, event_id))
        if row is None:
            raise NotFound(f"event {event_id} has no session {session_id}")
        return as_dict(row)
    live = app[LIVE].current
    if live is not None and live.event_id == event_id:
        row = await db.fetchone("SELECT * FROM sessions WHERE id = ?", (live.id,))
    else:
        row = await db.fetchone("SELECT * FROM sessions WHERE event_id = ? ORDER BY started_at DESC LIMIT 1", (event_id,))
    return as_dict(row) if row else None


async def metrics(app: web.Application, session: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"viewers": 0, "peak": 0, "gmv_cents": 0, "orders": 0, "items_sold": 0, "first_time_buyers": 0,
                           "practice_orders": 0, "practice_amount_cents": 0, "currency": app[CONFIG].catalog.default_currency,
                           "comments": 0, "gifts": 0, "followers": await app[DB].fetchval("SELECT COUNT(*) FROM follows", default=0)}
    if session is None:
        return out
    db = app[DB]
    out.update(await session_figures(db, session["id"], default_currency=out["currency"]))
    count = app[VIEWERS] if VIEWERS in app else ViewerCount()
    live = app[LIVE].current
    audience = await audience_figures(db, session)  # the one definition, shared with the LIVE Recap and the home page
    out.update({k: audience[k] for k in ("unique_viewers", "avg_watch_seconds", "new_followers", "opens")})
    out["peak"] = audience["peak_viewers"]
    if live is not None and live.id == session["id"] and count.session_id == session["id"]:
        out["viewers"] = count.viewers
        out["peak"] = max(out["peak"], count.peak)
    out["gifts"] = await db.fetchval("SELECT COUNT(*) FROM gifts WHERE session_id = ?", (session["id"],))
    return out


def session_json(app: web.Application, session: dict[str, Any] | None) -> dict[str, Any] | None:
    if session is None:
        return None
    live = app[LIVE].current
    return {"id": session["id"], "started_at": session["started_at"], "ended_at": session["ended_at"],
            "practice": bool(session["practice"]), "end_reason": session["end_reason"],
            "live": live is not None and live.id == session["id"]}


async def console_state(app: web.Application, event: dict[str, Any], session_id: int | None = None) -> dict[str, Any]:
    db = app[DB]
    session = await pick_session(app, event["id"], session_id)
    sid = session["id"] if session else None
    names = activity_names(app)
    acts, prompter = [], []
    if sid is not None:
        rows = await db.fetchall(
            f"SELECT * FROM activity WHERE session_id = ? AND name IN ({', '.join('?' for _ in names)}) ORDER BY id DESC LIMIT 200",
            (sid, *names))
        acts = [activity_json(r) for r in reversed(rows)]
        prompter = [finding_record(f) for f in await session_findings(app, sid)]
    live = app[LIVE].current
    pinned = await comments.pinned_comment(app, event["id"])
    pinned_pid = (await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))
                  if live is not None and live.event_id == event["id"] else None)
    pinned_row = await db.fetchone("SELECT id, title, script FROM products WHERE id = ?", (pinned_pid,)) if pinned_pid else None
    return {
        "event": {"id": event["id"], "title": event["title"], "slug": event["slug"], "starts_at": event["starts_at"],
                  "duration_minutes": event["duration_minutes"]},
        "session": session_json(app, session),
        "studio_live": None if live is None else {"session_id": live.id, "event_id": live.event_id, "practice": live.practice},
        "metrics": await metrics(app, session),
        "comments": await comments.list_comments(app, event["id"], session_id=sid, include_hidden=True) if sid else [],
        "pinned_comment": pinned,
        "orders": await orders.list_orders(app, event_id=event["id"], session_id=sid) if sid else [],
        "activities": acts,
        "activity_names": names,  # the feed's events, as declared (the page adds live records of these names)
        "prompter": prompter,
        "pinned_product_id": pinned_pid,
        # staff-only scripts: the pinned product's talking points and the event's run of show (the prompter view)
        "pinned_product": dict(pinned_row) if pinned_row else None,
        "event_script": await db.fetchval("SELECT script FROM events WHERE id = ?", (event["id"],), default=""),
        "now": time.time(),
    }


def _query_session(request: web.Request) -> int | None:
    return validate.query_int(request, "session")


def _path_id(request: web.Request) -> int:
    return validate.path_int(request)


# --------------------------------------------------------------------------------------------- pages


@routes.get("/console")
async def console_redirect(request: web.Request) -> web.StreamResponse:
    await auth.require(request, "console.view")
    app = request.app
    live = app[LIVE].current
    event_id = live.event_id if live is not None else None
    if event_id is None:
        now = time.time()
        event_id = await app[DB].fetchval(
            "SELECT id FROM events WHERE starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1", (now,))
    if event_id is None:
        event_id = await app[DB].fetchval("SELECT id FROM events ORDER BY starts_at DESC LIMIT 1")
    if event_id is None:
        return await render(request, "console/none.html", {})
    raise web.HTTPSeeOther(f"/events/{event_id}/console")


@routes.get("/events/{id}/console")
async def console_page(request: web.Request) -> web.Response:
    user = await auth.require(request, "console.view")
    app = request.app
    event = as_dict(await find_event(app[DB], _path_id(request)))
    session_id = _query_session(request)
    state = await console_state(app, event, session_id)
    readonly = session_id is not None
    panels = [] if readonly else await render_panels(request, "console_panels", event, {"can_edit": user.can("catalog.edit")})
    key = await auth.stream_key(app[DB]) if user.can("settings.manage") and not readonly else None
    response = await render(request, "console/page.html", {
        "event": event, "state": state, "readonly": readonly, "panels": panels, "can_edit": user.can("catalog.edit") and not readonly,
        "can_run": user.can("show.run") and not readonly, "can_publish": user.can("show.run"), "can_moderate": user.can("comments.moderate") and not readonly,
        "whip_url": public_base(request) + "/whip", "stream_key": key, "viewer_url": public_base(request) + f"/e/{event['slug']}",
        "gifts": {g["id"]: g for g in gifts_json()},
        "activity_kinds": activity_kinds(app[BUS].specs.values()),  # how the feed draws each kind, and its filter
        "program_width": app[CONFIG].media.width, "program_height": app[CONFIG].media.height,  # the preview's slots
        "ready_seconds": app[CONFIG].events.ready_minutes * 60, "can_choose_source": user.can("settings.manage"),  # golive.js
    })
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/api/events/{id}/console")
@doc("Everything the console of an event draws: session, metrics, comments (hidden included), orders, activities, "
     "prompter items", query={"session": "a past session (read-only console)"}, returns="{event, session, metrics, comments, "
     "pinned_comment, orders, activities, activity_names, prompter, pinned_product_id, pinned_product: {id, title, script}, event_script}", tags=["console"], permission="console.view")
async def api_console(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    event = as_dict(await find_event(request.app[DB], _path_id(request)))
    return web.json_response(await console_state(request.app, event, _query_session(request)))


@routes.get("/api/events/{id}/metrics")
@doc("The console's metrics of an event's live (or latest, or given) session: viewers now, peak, GMV, orders, items sold "
     "(practice orders apart)", query={"session": "a session id"}, returns="{session, metrics: {viewers, peak, gmv_cents, "
     "currency, orders, items_sold, first_time_buyers, practice_orders, comments, gifts, followers}}", tags=["console"],
     permission="console.view")
async def api_metrics(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    app = request.app
    event = as_dict(await find_event(app[DB], _path_id(request)))
    session = await pick_session(app, event["id"], _query_session(request))
    return web.json_response({"session": session_json(app, session), "metrics": await metrics(app, session)})


# --------------------------------------------------------------------------------------------- viewer counts


def _follow_viewers(app: web.Application) -> Any:
    count = app[VIEWERS]

    def on_record(record: Activity) -> None:
        if record.name not in ("viewer.joined", "viewer.left", "stream.health", "stream.started", "stream.ended"):
            return
        if record.session_id != count.session_id:
            count.session_id, count.viewers, count.peak = record.session_id, 0, 0
        if record.name == "stream.ended":
            count.viewers = 0
            return
        viewers = record.data.get("viewers")
        if isinstance(viewers, int):
            count.viewers = viewers
            count.peak = max(count.peak, viewers, int(record.data.get("peak") or 0))

    return on_record


async def sample_viewers(app: web.Application) -> None:
    """Write one viewer sample of the live session (and its peak so far)."""
    live = app[LIVE].current
    if live is None:
        return
    count = app[VIEWERS]
    viewers, peak = (count.viewers, count.peak) if count.session_id == live.id else (0, 0)
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO viewer_samples (session_id, at, viewers) VALUES (?, ?, ?)", (live.id, time.time(), viewers))
        await tx.execute("UPDATE sessions SET peak_viewers = MAX(peak_viewers, ?) WHERE id = ?", (peak, live.id))


async def _sampler(app: web.Application) -> None:
    every = app[CONFIG].live.viewer_sample_seconds
    while True:
        await asyncio.sleep(every)
        try:
            await sample_viewers(app)
        except Exception:  # never let a sampling hiccup stop the loop
            log.exception("viewer sampling failed")


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """Follow the viewer count on the bus and sample it (runs after the core context)."""
    app[VIEWERS] = ViewerCount()
    app[comments.LAST_COMMENT] = {}
    handler = _follow_viewers(app)
    app[BUS].on("*", handler)
    try:
        async with background(_sampler(app), "lmserver-viewer-sampler"):
            yield
    finally:
        app[BUS].remove_listener("*", handler)
