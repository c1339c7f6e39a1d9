"""Orders: a viewer buys a product of the live event's shopping bag.

The order path (:func:`place_order`) is built for bursts (a pinned product, thousands of thumbs at once):

1. checks at the edge, on the event loop: the event is live, the product is in its bag and not archived,
   the quantity is a whole number between 1 and ``live.max_order_quantity``, a blocked viewer may buy
   (``live.blocked_can_buy``);
2. **reserve** in the group-commit writer (one SQLite transaction per batch of buyers): the stock is
   decremented with ``UPDATE ... WHERE stock >= ?`` — never below zero, no lost update — and the order
   row is inserted as ``reserved`` with its unit price at this moment, the session, the practice flag
   and the first-time-buyer flag (no earlier non-practice order of this viewer in the studio);
3. **checkout** through the plugins' ``checkout`` hook (first answer wins; the core's default answers
   ``placed``), then, again in the writer, the order gets its status and the ``order.created`` activity
   is logged in the same savepoint; the record is dispatched to consoles after the commit, with a
   ``product.stock`` update for viewers' pages.

Practice sessions' orders are stored with ``practice = 1`` and left out of GMV, orders and items sold
(:func:`session_figures`).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from aiohttp import web

from . import auth, validate
from .appkeys import BUS, CONFIG, DB, LIVE, PM, WRITER
from .bus import Activity, record_sync
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .openapi import doc
from .plugins.types import CheckoutRequest, CheckoutResult

routes = web.RouteTableDef()


class SoldOut(Conflict):
    """Not enough stock left for the order."""


ORDER_COLUMNS = ("o.id, o.viewer_id, o.product_id, o.event_id, o.session_id, o.quantity, o.unit_price_cents, o.amount_cents,"
                 " o.currency, o.status, o.first_time, o.practice, o.created_at, v.nickname, p.title AS product_title")


def order_json(row: Any) -> dict[str, Any]:
    d = {k: row[k] for k in row.keys()}
    d["first_time"] = bool(d["first_time"])
    d["practice"] = bool(d["practice"])
    d["nickname"] = d.get("nickname") or "viewer"
    return d


def _reserve(conn: sqlite3.Connection, viewer_id: str, product_id: int, quantity: int, event_id: int | None,
             session_id: int | None, practice: bool) -> dict[str, Any]:
    """Writer thread: check the bag, decrement the stock and insert the reserved order, or raise NotFound / SoldOut.

    The bag check runs here, in the writer's batch, instead of as one aiosqlite round trip per attempt:
    in a burst of 1000 buyers that round trip alone cost more than the whole group commit."""
    in_bag = conn.execute("SELECT 1 FROM event_products ep JOIN products p ON p.id = ep.product_id"
                          " WHERE ep.event_id = ? AND ep.product_id = ? AND p.archived = 0", (event_id, product_id)).fetchone()
    if in_bag is None:
        raise NotFound(f"product {product_id} is not in this event's shopping bag")
    cur = conn.execute("UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ? AND archived = 0",
                       (quantity, product_id, quantity))
    if cur.rowcount != 1:
        left = conn.execute("SELECT stock FROM products WHERE id = ?", (product_id,)).fetchone()
        stock = left["stock"] if left else 0
        if stock <= 0:
            raise SoldOut("sold out: this product has no stock left")
        raise SoldOut(f"only {stock} left: lower the quantity and try again", details={"stock": stock})
    product = conn.execute("SELECT price_cents, currency, stock FROM products WHERE id = ?", (product_id,)).fetchone()
    earlier = conn.execute("SELECT 1 FROM orders WHERE viewer_id = ? AND practice = 0 AND status != 'cancelled' LIMIT 1",
                           (viewer_id,)).fetchone()
    now = time.time()
    cur = conn.execute(
        "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency,"
        " status, first_time, practice, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?)",
        (viewer_id, product_id, event_id, session_id, quantity, product["price_cents"], product["price_cents"] * quantity,
         product["currency"], int(earlier is None), int(practice), now))
    return {"id": cur.lastrowid, "unit_price_cents": product["price_cents"], "currency": product["currency"],
            "stock": product["stock"]}


def _confirm(conn: sqlite3.Connection, order_id: int, status: str, spec: Any) -> tuple[dict[str, Any], Activity]:
    """Writer thread: set the checkout's status and log ``order.created`` in the same savepoint."""
    conn.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
    row = conn.execute(f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
                       " JOIN products p ON p.id = o.product_id WHERE o.id = ?", (order_id,)).fetchone()
    order = order_json(row)
    record = record_sync(conn, spec, {"order": order}, event_id=order["event_id"], session_id=order["session_id"],
                         practice=order["practice"])
    return order, record


def _release(conn: sqlite3.Connection, order_id: int) -> None:
    """Writer thread: give back the stock of an order whose checkout failed."""
    row = conn.execute("SELECT product_id, quantity FROM orders WHERE id = ? AND status = 'reserved'", (order_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE products SET stock = stock + ? WHERE id = ?", (row["quantity"], row["product_id"]))
        conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order_id,))


def parse_quantity(value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and validate.ascii_int(value) is not None:
            value = validate.ascii_int(value)
        else:
            raise BadRequest("the quantity must be a whole number")
    if value < 1:
        raise BadRequest("the quantity must be at least 1")
    if value > limit:
        raise BadRequest(f"the quantity must be at most {limit} per order")
    return value


async def place_order(app: web.Application, viewer: dict[str, Any], event_id: int, product_id: Any, quantity: Any) -> dict[str, Any]:
    """Buy ``quantity`` of ``product_id`` in the live event ``event_id``; returns the order (see module doc)."""
    cfg = app[CONFIG].live
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise BadRequest("product_id must be the product's id (an integer)")
    qty = parse_quantity(quantity, cfg.max_order_quantity)
    session = app[LIVE].current
    if session is None or session.event_id != event_id:
        raise Conflict("this event is not live: buying opens when the LIVE starts")
    if viewer.get("blocked") and not cfg.blocked_can_buy:
        raise Forbidden("you cannot buy in this studio")
    writer = app[WRITER]
    reserved = await writer.submit(_reserve, viewer["id"], product_id, qty, event_id, session.id, session.practice)
    try:
        result = await app[PM].call_first("checkout", app=app, request=CheckoutRequest(
            viewer_id=viewer["id"], product_id=product_id, quantity=qty, unit_price_cents=reserved["unit_price_cents"],
            currency=reserved["currency"], event_id=event_id, session_id=session.id, practice=session.practice))
        if not isinstance(result, CheckoutResult):
            result = CheckoutResult(status="placed")
        if result.status not in ("placed", "pending_payment"):
            raise ValueError(f"checkout answered an unknown status {result.status!r}")
        order, record = await writer.submit(_confirm, reserved["id"], result.status, app[BUS].specs["order.created"])
    except BaseException:
        await writer.submit(_release, reserved["id"])
        raise
    app[BUS].dispatch(record)
    stock_record = Activity(None, "product.stock", event_id, session.id, session.practice, time.time(),
                            {"product_id": product_id, "stock": reserved["stock"]})
    app[BUS].dispatch(stock_record)
    if result.redirect_url:
        order["redirect_url"] = result.redirect_url
    return order


async def session_figures(app: web.Application, session_id: int) -> dict[str, Any]:
    """GMV, orders and items sold of a session (practice orders excluded), plus practice orders apart."""
    row = await app[DB].fetchone(
        "SELECT COALESCE(SUM(CASE WHEN practice = 0 THEN amount_cents END), 0) AS gmv_cents,"
        " COUNT(CASE WHEN practice = 0 THEN 1 END) AS orders, COALESCE(SUM(CASE WHEN practice = 0 THEN quantity END), 0) AS items_sold,"
        " COUNT(CASE WHEN practice = 0 AND first_time = 1 THEN 1 END) AS first_time_buyers,"
        " COUNT(CASE WHEN practice = 1 THEN 1 END) AS practice_orders,"
        " COALESCE(SUM(CASE WHEN practice = 1 THEN amount_cents END), 0) AS practice_amount_cents,"
        " MAX(currency) AS currency"
        " FROM orders WHERE session_id = ? AND status IN ('placed', 'pending_payment')", (session_id,))
    out = {k: row[k] for k in row.keys()}
    out["currency"] = out["currency"] or app[CONFIG].catalog.default_currency
    return out


async def list_orders(app: web.Application, *, event_id: int, session_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    where, params = ["o.event_id = ?", "o.status IN ('placed', 'pending_payment')"], [event_id]
    if session_id is not None:
        where.append("o.session_id = ?")
        params.append(session_id)
    rows = await app[DB].fetchall(
        f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id JOIN products p ON p.id = o.product_id"
        f" WHERE {' AND '.join(where)} ORDER BY o.id DESC LIMIT ?", (*params, limit))
    return [order_json(r) for r in rows]


@routes.get("/api/events/{id}/orders")
@doc("An event's orders, newest first (practice ones marked)", query={"session": "only this session", "limit": "1–1000, default 200"},
     returns="{orders: [{id, nickname, product_title, quantity, unit_price_cents, amount_cents, currency, status, first_time,"
     " practice, session_id, created_at}]}", tags=["orders"], permission="console.view")
async def api_orders(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    event_id = validate.path_int(request)
    session = validate.query_int(request, "session")
    limit = validate.query_int(request, "limit", default=200, min=1, max=1000, clamp=True)
    return web.json_response({"orders": await list_orders(request.app, event_id=event_id, session_id=session, limit=limit)})
