"""The Orders pages: the studio's orders (or one event's) with their buyers, filters, bulk status changes, a
printable packing list, CSV exports (through :mod:`lmserver.csvexport`), and the buyer list of an event.

Staff only: reading needs ``orders.view``, changing a status ``orders.manage``. Buyers' details (name, e-mail,
shipping address) appear here and nowhere a viewer can reach. An order shows the details copied when it was
placed (``orders.buyer_name`` ...), or the buyer's current ones when it was placed before they gave any.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from . import auth, orders, orderstatus, validate
from .appkeys import DB
from .csvexport import csv_response
from .errors import BadRequest, NotFound
from .openapi import doc
from .templating import render

routes = web.RouteTableDef()

VIEW, MANAGE = "orders.view", "orders.manage"
#: the ``status`` filter: one status, ``open`` (not final), ``sold`` (the sales), or ``all``
STATUS_CHOICES = ("all", "open", "sold", *orderstatus.STATUSES)
_FILTERS_DOC = {"event": "an event id", "session": "a session id", "status": "all (default), open, sold or one status",
                "product": "a product id", "buyer": "text in the buyer's nickname, name or e-mail",
                "limit": "1–5000, default 1000"}
STAFF_COLUMNS = (orders.ORDER_COLUMNS + ", p.sku, COALESCE(o.buyer_name, b.name) AS buyer_name,"
                 " COALESCE(o.buyer_email, b.email) AS buyer_email, COALESCE(o.ship_address, b.address) AS ship_address,"
                 " e.title AS event_title")
_FROM = (" FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id JOIN products p ON p.id = o.product_id"
         " LEFT JOIN buyer_details b ON b.viewer_id = o.viewer_id LEFT JOIN events e ON e.id = o.event_id")
CSV_COLUMNS = ("id", "created_at", "status", "event_title", "session_id", "product_id", "sku", "product_title", "quantity",
               "unit_price_cents", "amount_cents", "currency", "nickname", "buyer_name", "buyer_email", "ship_address",
               "first_time", "practice", "label", "status_reason")


def filters(request: web.Request, event_id: int | None = None) -> dict[str, Any]:
    """The query's filters, checked (400 naming the parameter)."""
    q = request.query
    return {"event": event_id if event_id is not None else validate.query_int(request, "event"),
            "session": validate.query_int(request, "session"), "product": validate.query_int(request, "product"),
            "status": validate.choice(dict(q), "status", STATUS_CHOICES, default="all"),
            "buyer": validate.query_text(request, "buyer", max_len=100).strip()}


async def find_orders(app: web.Application, f: dict[str, Any], limit: int = 1000) -> list[dict[str, Any]]:
    """Orders matching the filters of :func:`filters`, newest first, with their buyers' details (staff only)."""
    where, params = ["1 = 1"], []
    for key, column in (("event", "o.event_id"), ("session", "o.session_id"), ("product", "o.product_id")):
        if f.get(key) is not None:
            where.append(f"{column} = ?")
            params.append(f[key])
    status = f.get("status") or "all"
    if status != "all":
        chosen = {"open": tuple(s for s in orderstatus.STATUSES if s not in orderstatus.FINAL), "sold": orderstatus.SOLD}.get(
            status, (status,))
        where.append(f"o.status IN ({', '.join('?' * len(chosen))})")
        params += chosen
    if f.get("buyer"):
        like = "%" + f["buyer"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(v.nickname LIKE ? ESCAPE '\\' OR COALESCE(o.buyer_name, b.name) LIKE ? ESCAPE '\\'"
                     " OR COALESCE(o.buyer_email, b.email) LIKE ? ESCAPE '\\')")
        params += [like, like, like]
    rows = await app[DB].fetchall(f"SELECT {STAFF_COLUMNS}{_FROM} WHERE {' AND '.join(where)} ORDER BY o.id DESC LIMIT ?",
                                  (*params, limit))
    out = []
    for r in rows:
        d = orders.order_json(r)
        d["allowed"] = orderstatus.allowed(d["status"])
        out.append(d)
    return out


async def _event(app: web.Application, event_id: int) -> Any:
    row = await app[DB].fetchone("SELECT id, title, slug FROM events WHERE id = ?", (event_id,))
    if row is None:
        raise NotFound(f"no event {event_id}: it was deleted or never existed")
    return row


async def _page_context(request: web.Request, event: Any) -> dict[str, Any]:
    user = await auth.require(request, VIEW)
    app = request.app
    f = filters(request, event["id"] if event is not None else None)
    products = await app[DB].fetchall("SELECT DISTINCT p.id, p.title FROM orders o JOIN products p ON p.id = o.product_id"
                                      + (" WHERE o.event_id = ?" if event is not None else "") + " ORDER BY p.title",
                                      (event["id"],) if event is not None else ())
    sessions = await app[DB].fetchall("SELECT DISTINCT session_id AS id FROM orders WHERE session_id IS NOT NULL"
                                      + (" AND event_id = ?" if event is not None else "") + " ORDER BY session_id DESC",
                                      (event["id"],) if event is not None else ())
    return {"event": dict(event) if event is not None else None, "orders": await find_orders(app, f), "filters": f,
            "statuses": STATUS_CHOICES, "targets": orderstatus.TARGETS, "products": [dict(p) for p in products],
            "sessions": [s["id"] for s in sessions], "can_manage": user.can(MANAGE), "query": request.query_string}


@routes.get("/orders")
async def orders_page(request: web.Request) -> web.Response:
    return await render(request, "orders/list.html", await _page_context(request, None))


@routes.get("/events/{id}/orders")
async def event_orders_page(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    return await render(request, "orders/list.html", await _page_context(request, await _event(request.app, validate.path_int(request))))


@routes.get("/orders/packing")
async def packing_list(request: web.Request) -> web.Response:
    """Printable: one block per order to ship (default: paid and placed ones), with the address."""
    await auth.require(request, VIEW)
    f = filters(request)
    if "status" not in request.query:
        f["status"] = "open"
    rows = [o for o in await find_orders(request.app, f, 5000) if not o["practice"] and o["status"] != "reserved"]
    return await render(request, "orders/packing.html", {"orders": rows, "filters": f, "printed_at": time.time()})


@routes.get("/api/orders")
@doc("Orders of the studio (or of one event) with their buyers' details, newest first", query=_FILTERS_DOC,
     returns="{orders: [{id, status, allowed, event_id, event_title, session_id, product_id, product_title, sku, quantity,"
     " unit_price_cents, amount_cents, currency, nickname, buyer_name, buyer_email, ship_address, first_time, practice, created_at}]}",
     tags=["orders"], permission=VIEW)
async def api_orders(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    limit = validate.query_int(request, "limit", default=1000, min=1, max=5000, clamp=True) or 1000
    return web.json_response({"orders": await find_orders(request.app, filters(request), limit)})


@routes.get("/api/orders.csv")
@doc("The same orders as a CSV download (spreadsheet-safe: formula characters escaped)", query=_FILTERS_DOC,
     returns="text/csv: " + ", ".join(CSV_COLUMNS), tags=["orders"], permission=VIEW)
async def api_orders_csv(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    f = filters(request)
    rows = await find_orders(request.app, f, 100_000)
    for r in rows:
        r["created_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created_at"]))
    return csv_response(f"orders{'-event-' + str(f['event']) if f['event'] else ''}.csv", CSV_COLUMNS, rows)


@routes.get("/api/orders/{id}")
@doc("One order with its buyer's details and its status history",
     returns="{order: {..., allowed}, history: [{from_status, to_status, by, at, note}]}", tags=["orders"], permission=VIEW)
async def api_order(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    oid = validate.path_int(request)
    row = await request.app[DB].fetchone(f"SELECT {STAFF_COLUMNS}{_FROM} WHERE o.id = ?", (oid,))
    if row is None:
        raise NotFound(f"no order {oid}")
    order = orders.order_json(row)
    order["allowed"] = orderstatus.allowed(order["status"])
    return web.json_response({"order": order, "history": await orderstatus.history(request.app, oid)})


_STATUS_BODY = {"status": "text: the new status (paid, shipped, delivered, cancelled, refunded)",
                "note": "text: optional, why (at most 500 characters; shown in the history)"}


async def _change(request: web.Request, ids: list[int] | None) -> web.Response:
    """Staff change of one order's status (``ids``) or of the body's ``order_ids`` (``ids=None``)."""
    user = await auth.require(request, MANAGE)
    data = await validate.json_body(request)
    validate.reject_unknown(data, {"status", "note"} | ({"order_ids"} if ids is None else set()), "the body")
    if ids is None:
        ids = validate.int_list(data, "order_ids")
        if not ids:
            raise BadRequest("'order_ids' is empty: choose at least one order")
    to = validate.choice(data, "status", orderstatus.STATUSES[1:])
    note = validate.text(data, "note", max_len=500) or None
    changes = await orderstatus.set_status(request.app, ids, to, by=user.name, note=note)
    return web.json_response({"changes": changes})


@routes.post("/api/orders/{id}/status")
@doc("Change an order's status; 409 names the statuses it can take. Cancelling or refunding before shipping puts"
     " its units back in stock", body=_STATUS_BODY, returns="{changes: [{order_id, from, to, units_returned, stock}]}",
     tags=["orders"], permission=MANAGE)
async def api_order_status(request: web.Request) -> web.Response:
    return await _change(request, [validate.path_int(request)])


@routes.post("/api/orders/status")
@doc("Change the status of several orders at once, all or none (409 names the first order that cannot change and"
     " what it can become)", body={"order_ids": "integer list: the orders (at most 1000)", **_STATUS_BODY},
     returns="{changes: [{order_id, from, to, units_returned, stock}]}", tags=["orders"], permission=MANAGE)
async def api_orders_status(request: web.Request) -> web.Response:
    return await _change(request, None)


# --------------------------------------------------------------------------------------------- buyers of an event


async def event_buyers(app: web.Application, event_id: int) -> list[dict[str, Any]]:
    """The buyers of an event (sales outside practice), most spent first; ``first_time``: their first order in the
    studio was in this event."""
    rows = await app[DB].fetchall(
        "SELECT o.viewer_id, v.nickname, b.name AS buyer_name, b.email AS buyer_email, b.address AS ship_address,"
        " COUNT(*) AS orders, SUM(o.quantity) AS items, SUM(o.amount_cents) AS amount_cents, MAX(o.currency) AS currency,"
        " MAX(o.first_time) AS first_time, MIN(o.created_at) AS first_order_at FROM orders o"
        " LEFT JOIN viewers v ON v.id = o.viewer_id LEFT JOIN buyer_details b ON b.viewer_id = o.viewer_id"
        f" WHERE o.event_id = ? AND o.practice = 0 AND o.status IN ({', '.join('?' * len(orderstatus.SOLD))})"
        " GROUP BY o.viewer_id ORDER BY amount_cents DESC, first_order_at", (event_id, *orderstatus.SOLD))
    return [{**dict(r), "first_time": bool(r["first_time"]), "nickname": r["nickname"] or "viewer"} for r in rows]


BUYER_COLUMNS = ("nickname", "buyer_name", "buyer_email", "ship_address", "orders", "items", "amount_cents", "currency", "first_time")


@routes.get("/events/{id}/buyers")
async def buyers_page(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    event = await _event(request.app, validate.path_int(request))
    return await render(request, "orders/buyers.html", {"event": dict(event), "buyers": await event_buyers(request.app, event["id"])})


@routes.get("/api/events/{id}/buyers")
@doc("An event's buyers (practice excluded) with their details, first-time buyers marked",
     returns="{buyers: [{viewer_id, nickname, buyer_name, buyer_email, ship_address, orders, items, amount_cents, currency,"
     " first_time}]}", tags=["orders"], permission=VIEW)
async def api_event_buyers(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    event = await _event(request.app, validate.path_int(request))
    return web.json_response({"buyers": await event_buyers(request.app, event["id"])})


@routes.get("/api/events/{id}/buyers.csv")
@doc("An event's buyers as a CSV download (spreadsheet-safe)", returns="text/csv: " + ", ".join(BUYER_COLUMNS),
     tags=["orders"], permission=VIEW)
async def api_event_buyers_csv(request: web.Request) -> web.Response:
    await auth.require(request, VIEW)
    event = await _event(request.app, validate.path_int(request))
    return csv_response(f"buyers-event-{event['id']}.csv", BUYER_COLUMNS, await event_buyers(request.app, event["id"]))


# --------------------------------------------------------------------------------------------- the console's list


@routes.get("/api/events/{id}/orders")
@doc("An event's orders, newest first (practice ones marked); status_reason says why the server set a status"
     " (e.g. a reservation released after a restart). No buyer details: see /api/orders",
     query={"session": "only this session", "limit": "1–1000, default 200",
            "status": "placed (default: every sale, placed to delivered), cancelled (and refunded), reserved or all"},
     returns="{orders: [{id, nickname, product_title, quantity, unit_price_cents, amount_cents, currency, status, status_reason,"
     " first_time, practice, session_id, created_at}]}", tags=["orders"], permission="console.view")
async def api_event_orders(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    event_id = validate.path_int(request)
    session = validate.query_int(request, "session")
    limit = validate.query_int(request, "limit", default=200, min=1, max=1000, clamp=True)
    status = validate.choice(dict(request.query), "status", list(orders.STATUS_FILTERS), default="placed")
    return web.json_response({"orders": await orders.list_orders(request.app, event_id=event_id, session_id=session,
                                                                 limit=limit or 200, statuses=orders.STATUS_FILTERS[status])})
