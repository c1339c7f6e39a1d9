"""The events' staff pages and the session analytics page (and its JSON twin)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import analytics, auth, validate
from ..appkeys import CONFIG, DB
from ..errors import NotFound
from ..figures import counted_order
from ..openapi import doc
from ..sessionstats import event_sessions, session_stats, unassigned_sessions, viewers_chart
from ..suggest import suggest_for_app
from ..templating import as_dict, render
from ..views import public_base
from .bag import bag_json
from .model import MAX_DURATION, MIN_DURATION, event_detail, event_from_path, event_json, list_events

routes = web.RouteTableDef()


@routes.get("/events")
async def events_page(request: web.Request) -> web.Response:
    user = await auth.require(request)
    return await render(request, "events/list.html", {
        "events": await list_events(request.app, "upcoming"), "can_schedule": user.can("show.run"),
        "suggestion": await suggest_for_app(request.app), "min_duration": MIN_DURATION, "max_duration": MAX_DURATION,
        "default_duration": request.app[CONFIG].events.default_duration_minutes})


@routes.get("/events/past")
async def past_events_page(request: web.Request) -> web.Response:
    await auth.require(request)
    events = await list_events(request.app, "past", 100)
    for e in events:
        e["session_list"] = await event_sessions(request.app, e["id"])
    # sessions of events whose window is open too; a future event that only had practice sessions is not past
    current = []
    for e in await list_events(request.app, "upcoming", 20):
        if not e["sessions"]:
            continue
        e["session_list"] = await event_sessions(request.app, e["id"])
        if e["status"] in ("open", "live") or any(not s["practice"] for s in e["session_list"]):
            current.append(e)
    return await render(request, "events/past.html", {"events": events, "current": current,
                                                     "orphans": await unassigned_sessions(request.app)})


@routes.get("/events/{id}")
async def event_page(request: web.Request) -> web.Response:
    user = await auth.require(request)
    app = request.app
    row = await event_from_path(request)
    event = await event_detail(app, row)
    return await render(request, "events/detail.html", {
        "event": event, "bag": await bag_json(app, row["id"]), "can_edit": user.can("catalog.edit") and event["editable"],
        "can_run": user.can("show.run"), "public_url": public_base(request) + event["url"],
        "sessions": await event_sessions(app, row["id"]), "min_duration": MIN_DURATION, "max_duration": MAX_DURATION})


async def _session_report(app: web.Application, sid_text: str) -> dict[str, Any]:
    from ..prompter import session_findings

    sid = validate.ascii_int(sid_text)
    if sid is None:
        raise NotFound("the session id must be a number")
    db = app[DB]
    row = await db.fetchone("SELECT * FROM sessions WHERE id = ?", (sid,))
    if row is None:
        raise NotFound(f"session {sid_text} does not exist")
    stats = await session_stats(app, row)
    samples = [(r["at"], r["viewers"]) for r in await db.fetchall(
        "SELECT at, viewers FROM viewer_samples WHERE session_id = ? ORDER BY at", (row["id"],))]
    event = await db.fetchone("SELECT * FROM events WHERE id = ?", (row["event_id"],)) if row["event_id"] is not None else None
    products = await db.fetchall(
        "SELECT p.id, p.title, p.currency, SUM(o.quantity) AS units, SUM(o.amount_cents) AS amount, COUNT(*) AS orders"
        f" FROM orders o JOIN products p ON p.id = o.product_id WHERE o.session_id = ? AND {counted_order('o')}"
        " GROUP BY p.id ORDER BY amount DESC LIMIT 20", (row["id"],))
    pinned = await db.fetchall(
        "SELECT json_extract(data, '$.product.id') AS id, json_extract(data, '$.product.title') AS title, MIN(created_at) AS first_at,"
        " COUNT(*) AS times FROM activity WHERE session_id = ? AND name = 'product.pinned' GROUP BY 1 ORDER BY first_at", (row["id"],))
    recap = await analytics.report(app, as_dict(row), stats=stats)
    return {**recap, "figures_plain": recap["figures"], "session": stats, "event": event_json(app, event) if event is not None else None,
            "samples": [{"at": t, "viewers": v} for t, v in samples],
            "chart": viewers_chart(samples, row["started_at"], row["ended_at"]),
            "top_products": [dict(r) for r in products], "featured": [dict(r) for r in pinned],
            "findings": await session_findings(app, row["id"])}


@routes.get("/api/sessions/{sid}")
@doc("A session's analytics: figures, viewers over time, products sold and featured",
     returns="{session: {started_at, ended_at, duration, gmv_cents, orders, items_sold, buyers, first_time_buyers, peak_viewers, avg_viewers, comments, products_featured, figures: [{name, label, value, plugin}]}, event, samples, top_products, featured, findings}",
     tags=["events"], permission="console.view")
async def api_session(request: web.Request) -> web.Response:
    await auth.require(request)
    report = await _session_report(request.app, request.match_info["sid"])
    for key in ("chart", "charts", "comparison", "figures_plain", "minutes", "products", "markers", "funnel", "top_commenters",
                "plugin_figures", "sort", "figures"):
        report.pop(key, None)  # the analytics are /api/sessions/{sid}/analytics
    return web.json_response(report)


@routes.get("/sessions/{sid}")
async def session_page(request: web.Request) -> web.Response:
    await auth.require(request)
    return await render(request, "events/session.html", await _session_report(request.app, request.match_info["sid"]))
