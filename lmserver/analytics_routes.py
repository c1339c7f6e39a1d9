"""The analytics pages and API: the LIVE Board, the event's recap, the JSON/CSV exports and the viewer's
product-card opens (what they show: :mod:`lmserver.analytics`; the LIVE Recap itself is the session page,
``/sessions/{sid}`` in :mod:`lmserver.events.pages`). Permission: ``console.view``; opens: the viewer cookie."""

from __future__ import annotations

from aiohttp import web

from . import auth, validate
from .analytics import (COMMENT_COLUMNS, MINUTE_COLUMNS, ORDER_COLUMNS, PRODUCT_COLUMNS, SORTS, comment_rows, figures,
                        load_session, minute_table, order_rows, product_table, record_open, report)
from .appkeys import CONFIG, DB, LIVE
from .csvexport import csv_response
from .errors import BadRequest, NotFound, Unauthorized
from .openapi import doc
from .templating import as_dict, render

routes = web.RouteTableDef()


@routes.post("/api/e/{id}/opens")
@doc("Count a product-card open: the viewer opened the pinned product's card or a bag item (at most once a minute per"
     " viewer and product; repeats answer counted: false)", body={"product_id": "integer: the product"},
     returns="{counted: boolean}", tags=["viewer"])
async def api_open(request: web.Request) -> web.Response:
    vid = auth.viewer_id(request)  # as lmserver.viewer.current_viewer (not imported: events' pages import this module)
    if not vid or await request.app[DB].fetchval("SELECT 1 FROM viewers WHERE id = ?", (vid,)) is None:
        raise Unauthorized("open the event's page first: it gives this browser its viewer identity")
    data = await validate.json_body(request)
    counted = await record_open(request.app, vid, validate.path_int(request), validate.integer(data, "product_id"))
    return web.json_response({"counted": counted})


def _sort(request: web.Request) -> str:
    sort = request.query.get("sort", "gmv")
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
    return sort


def _csv(request: web.Request) -> bool:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv")
    return fmt == "csv"


# --------------------------------------------------------------------------------------------- pages


@routes.get("/sessions/{sid}/board")
async def board_page(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    app = request.app
    session = await load_session(app, request.match_info["sid"])
    data = await report(app, session, sort=_sort(request), compare=False)
    event = await app[DB].fetchone("SELECT id, title FROM events WHERE id = ?", (session["event_id"],)) if session["event_id"] else None
    ctx = {**data, "event": dict(event) if event else None, "board": True}
    if request.query.get("fragment") == "1":
        response = await render(request, "analytics/_board.html", ctx)
    else:
        response = await render(request, "analytics/board.html", ctx)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/events/{id}/board")
async def event_board(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    app = request.app
    event_id = validate.path_int(request)
    live = app[LIVE].current
    sid = live.id if live is not None and live.event_id == event_id else await app[DB].fetchval(
        "SELECT id FROM sessions WHERE event_id = ? ORDER BY started_at DESC LIMIT 1", (event_id,))
    if sid is None:
        raise NotFound(f"event {event_id} has no session yet: the LIVE Board opens when it goes live")
    raise web.HTTPSeeOther(f"/sessions/{sid}/board")


@routes.get("/events/{id}/recap")
async def event_recap(request: web.Request) -> web.Response:
    """The sessions of one event together: totals, each session's figures, products over all sessions."""
    await auth.require(request, "console.view")
    app = request.app
    event_id = validate.path_int(request)
    event = await app[DB].fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
    if event is None:
        raise NotFound(f"event {event_id} does not exist")
    rows = [as_dict(r) for r in await app[DB].fetchall(
        "SELECT * FROM sessions WHERE event_id = ? ORDER BY started_at", (event_id,))]
    sessions = [{"session": s, "figures": await figures(app, s)} for s in rows]
    counted = [s for s in sessions if not s["session"]["practice"]]
    totals = {k: sum(s["figures"][k] for s in counted) for k in ("gmv_cents", "orders", "items_sold", "comments", "new_followers",
                                                                  "gifts", "opens")}
    totals["peak_viewers"] = max((s["figures"]["peak_viewers"] for s in counted), default=0)
    totals["buyers"] = await app[DB].fetchval(
        "SELECT COUNT(DISTINCT viewer_id) FROM orders WHERE event_id = ? AND practice = 0 AND status IN ('placed', 'pending_payment')",
        (event_id,), default=0)
    ids = [s["session"]["id"] for s in counted]
    products = []
    if ids:
        products = [dict(r) for r in await app[DB].fetchall(
            "SELECT sp.product_id, p.title, p.currency, SUM(sp.opens) AS opens, SUM(sp.orders) AS orders, SUM(sp.units) AS units,"
            " SUM(sp.gmv_cents) AS gmv_cents FROM session_products sp LEFT JOIN products p ON p.id = sp.product_id"
            f" WHERE sp.session_id IN ({', '.join('?' * len(ids))}) GROUP BY sp.product_id ORDER BY gmv_cents DESC, units DESC", ids)]
    currency = next((s["figures"]["currency"] for s in counted), app[CONFIG].catalog.default_currency)
    return await render(request, "analytics/event.html", {"event": as_dict(event), "sessions": sessions, "totals": totals,
                                                          "products": products, "currency": currency})


# --------------------------------------------------------------------------------------------- JSON API and CSV


@routes.get("/api/sessions/{sid}/analytics")
@doc("A session's LIVE Recap (or LIVE Board while it runs): selling and audience figures, the funnel, minute table,"
     " per-product table, chart markers, top commenters and the comparison with the previous five sessions",
     query={"sort": "the products' order: gmv (default), conversion, opens or units"},
     returns="{session, figures: {gmv_cents, orders, items_sold, buyers, first_time_buyers, aov_cents, peak_viewers, avg_viewers,"
     " unique_viewers, returning_viewers, avg_watch_seconds, new_followers, comments, gifts, opens, openers, currency}, funnel,"
     " minutes, products, markers: [{at, offset, kind, icon, label, text}], top_commenters, comparison: {sessions, rows}}",
     tags=["analytics"], permission="console.view")
async def api_analytics(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = await load_session(request.app, request.match_info["sid"])
    data = await report(request.app, session, sort=_sort(request))
    data.pop("charts")
    data["comparison"].pop("by_key")
    return web.json_response(data)


@routes.get("/api/sessions/{sid}/analytics/minutes")
@doc("A session's minute table (minute 0 is its first): " + ", ".join(MINUTE_COLUMNS) + "; ?format=csv downloads it",
     query={"format": "json (default) or csv"}, returns="{minutes: [{" + ", ".join(MINUTE_COLUMNS) + "}]}",
     tags=["analytics"], permission="console.view")
async def api_minutes(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = await load_session(request.app, request.match_info["sid"])
    as_csv = _csv(request)
    rows = await minute_table(request.app, session)
    if as_csv:
        return csv_response(f"session-{session['id']}-minutes.csv", MINUTE_COLUMNS, rows)
    return web.json_response({"minutes": rows})


@routes.get("/api/sessions/{sid}/analytics/products")
@doc("A session's per-product table (conversion = orders / opens, %; null without opens); ?format=csv downloads it",
     query={"format": "json (default) or csv", "sort": "gmv (default), conversion, opens or units"},
     returns="{products: [{" + ", ".join(PRODUCT_COLUMNS) + ", pinned_now}]}", tags=["analytics"], permission="console.view")
async def api_products(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = await load_session(request.app, request.match_info["sid"])
    as_csv = _csv(request)
    rows = await product_table(request.app, session, sort=_sort(request))
    if as_csv:
        return csv_response(f"session-{session['id']}-products.csv", PRODUCT_COLUMNS, rows)
    return web.json_response({"products": rows})


@routes.get("/api/sessions/{sid}/analytics/orders")
@doc("A session's orders, every status (only placed and pending_payment count in GMV); ?format=csv downloads them",
     query={"format": "json (default) or csv"}, returns="{orders: [{" + ", ".join(ORDER_COLUMNS) + "}]}",
     tags=["analytics"], permission="console.view")
async def api_session_orders(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = await load_session(request.app, request.match_info["sid"])
    as_csv = _csv(request)
    rows = await order_rows(request.app, session)
    if as_csv:
        return csv_response(f"session-{session['id']}-orders.csv", ORDER_COLUMNS, rows)
    return web.json_response({"orders": rows})


@routes.get("/api/sessions/{sid}/analytics/comments")
@doc("A session's comments (staff replies and hidden ones included, marked); ?format=csv downloads them",
     query={"format": "json (default) or csv"}, returns="{comments: [{" + ", ".join(COMMENT_COLUMNS) + "}]}",
     tags=["analytics"], permission="console.view")
async def api_session_comments(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = await load_session(request.app, request.match_info["sid"])
    as_csv = _csv(request)
    rows = await comment_rows(request.app, session)
    if as_csv:
        return csv_response(f"session-{session['id']}-comments.csv", COMMENT_COLUMNS, rows)
    return web.json_response({"comments": rows})
