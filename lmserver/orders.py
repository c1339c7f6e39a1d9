"""Orders: a viewer buys a product of the live event's shopping bag.

The order path (:func:`place_order`) is built for bursts (a pinned product, thousands of thumbs at once):

1. checks at the edge, on the event loop: the event is live, the product is in its bag and not archived,
   the quantity is a whole number between 1 and ``live.max_order_quantity``, a blocked viewer may buy
   (``live.blocked_can_buy``);
2. **reserve** in the group-commit writer (one SQLite transaction per batch of buyers): the stock is
   decremented with ``UPDATE ... WHERE stock >= ?`` — never below zero, no lost update — and the order
   row is inserted as ``reserved`` with its unit price at this moment, the session, the practice flag
   and the first-time-buyer flag (no earlier non-practice order of this viewer in the studio);
   Plugins take part in the same savepoint (:func:`_reserve_with_plugins`): ``order_price`` may set the
   unit price (a timed deal's price), ``reserve_order`` may refuse the order with a reason (409: quotas,
   per-buyer limits) or write its own rows, which commit or roll back with the order;
3. **checkout** through the plugins' ``checkout`` hook (first answer wins; the core's default answers
   ``placed``), then, again in the writer, the order gets its status and the ``order.created`` activity
   is logged in the same savepoint; the record is dispatched to consoles after the commit, with a
   ``product.stock`` update for viewers' pages.

Plugins' money hooks fail closed: an ``order_price``, ``reserve_order`` or ``checkout`` implementation
that raises (or answers nonsense) leaves no order placed, gives the stock back and answers ``503`` with
the reason; never an unpaid "placed" order.

After the checkout, an order's status moves as :mod:`lmserver.orderstatus` allows (paid, shipped, delivered,
cancelled, refunded; each change in ``order_status_history``). :func:`insert_order` is the one writer of order rows.

Practice sessions' orders are stored with ``practice = 1`` and left out of GMV, orders and items sold
(:mod:`lmserver.figures` defines what counts), and take no stock (stock checked, none moved: ``orderstatus.stock_units``).

**Reconciliation: reservations whose checkout never finished.** A ``reserved`` order holds stock until its
checkout answers. A checkout never finishes when the process dies between step 2 and step 3 (``kill -9``, a
power cut: the reservation's batch committed, the confirmation's did not) or when a checkout hangs. So:

- at startup (:func:`orders_ctx`, before the server listens) *every* ``reserved`` order is released, since no
  checkout survives a restart; reason ``"checkout interrupted by a server restart"``;
- every ``live.reconcile_seconds`` a background pass releases the ``reserved`` orders older than
  ``live.checkout_timeout_seconds``; reason ``"checkout did not finish within N s"``.

Releasing (units back to stock, status ``cancelled``, the reason in ``status_reason``) rather than completing
is deliberate: the buyer of such an order never got an answer (no 201 is sent before the confirmation is
committed, so an acknowledged order is never ``reserved``), and a pay-later checkout that never confirmed
must not become a sale. A pass is one transaction in the writer (so it is serialized with the buyers), is
idempotent (it only touches ``status = 'reserved'`` rows), is logged with the order ids, and publishes one
``order.released`` record per session (plus ``product.stock`` for viewers' pages). The confirmation in step 3
only turns a still-``reserved`` order into ``placed``: a checkout that answers after its reservation was
released gets 409 and places nothing. Released orders keep no Idempotency-Key, so the buyer's retry buys anew.

**Idempotency.** ``POST /api/e/{id}/orders`` accepts an ``Idempotency-Key`` header (1–128 printable ASCII
characters, else 400; the viewer page sends a fresh UUID per Buy click and reuses it on its own retry). The
key is stored per viewer (``order_idempotency``, primary key ``(viewer_id, key)``) in the same savepoint as the
reservation, and the answer (the order as first returned) in the same savepoint as the confirmation. A retry
with the same key and the same purchase (event, product, quantity) gets that stored order with **200** (not
201: nothing new was created) and the header ``Idempotent-Replayed: true``; the same key for a different
purchase gets 422. Two concurrent requests with the same key in this process share one attempt (the second
awaits the first's outcome, success or error); across the writer's batch the primary key guarantees one order
(a request that finds the first one's checkout still running gets 409 "retry in a moment"). A failed attempt
(sold out, checkout error) stores nothing, so the key can be retried. Keys expire after
``live.idempotency_hours`` (the periodic pass deletes them). Without the header, buying works as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from types import SimpleNamespace
from typing import Any, AsyncIterator

from aiohttp import web

from . import orderstatus, validate
from .appkeys import BUS, CONFIG, DB, LIVE, PM, WRITER
from .background import background
from .bus import Activity, record_sync
from .errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from .plugins.manager import HookFailed
from .plugins.types import CheckoutRequest, CheckoutResult, OrderDraft

log = logging.getLogger(__name__)


RESTART_REASON = "checkout interrupted by a server restart"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_RE = re.compile(r"[\x20-\x7e]{1,128}")


class SoldOut(Conflict):
    """Not enough stock left for the order."""


class KeyReused(ApiError):
    """The Idempotency-Key was already used for another purchase (422)."""

    status = 422


class ReplayedOrder(dict):  # type: ignore[type-arg]
    """An order answered from an earlier request with the same Idempotency-Key (HTTP 200, not 201)."""


#: in-flight keyed purchases of this process: (viewer_id, key) → ((event_id, product_id, quantity), outcome)
INFLIGHT = web.AppKey("orders_inflight", dict)


ORDER_COLUMNS = ("o.id, o.viewer_id, o.product_id, o.event_id, o.session_id, o.quantity, o.unit_price_cents, o.amount_cents,"
                 " o.currency, o.status, o.status_reason, o.first_time, o.practice, o.created_at, o.label, v.nickname, p.title AS product_title")


def order_json(row: Any) -> dict[str, Any]:
    d = {k: row[k] for k in row.keys()}
    d["first_time"] = bool(d["first_time"])
    d["practice"] = bool(d["practice"])
    d["nickname"] = d.get("nickname") or "viewer"
    return d


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` header (None when absent); 400 unless 1–128 printable ASCII characters."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not _KEY_RE.fullmatch(value):
        raise BadRequest(f"the {IDEMPOTENCY_HEADER} header must be 1 to 128 printable ASCII characters (a UUID is fine):"
                         f" send a new random key for each purchase and the same key when retrying it")
    return value


def _prior(row: Any, event_id: int | None, product_id: int, quantity: int) -> ReplayedOrder:
    """The stored answer of an earlier request with the same key, or 422/409 (see the module doc)."""
    if (row["event_id"], row["product_id"], row["quantity"]) != (event_id, product_id, quantity):
        raise KeyReused(f"this {IDEMPOTENCY_HEADER} was already used for another purchase (product {row['product_id']},"
                        f" quantity {row['quantity']}): send a new key for a new purchase",
                        details={"order_id": row["order_id"]})
    if row["response"] is None:
        raise Conflict(f"a purchase with this {IDEMPOTENCY_HEADER} is still being checked out: retry in a moment")
    return ReplayedOrder(json.loads(row["response"]))


_PRIOR_SQL = ("SELECT k.order_id, k.response, o.event_id, o.product_id, o.quantity FROM order_idempotency k"
              " JOIN orders o ON o.id = k.order_id WHERE k.viewer_id = ? AND k.key = ? AND k.created_at >= ?")


_INSERT_SQL = (
    "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency, status,"
    " first_time, practice, created_at, label, buyer_name, buyer_email, ship_address) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
    " ?10, ?11, ?12, ?13, b.name, b.email, b.address FROM (SELECT 1) LEFT JOIN buyer_details b ON b.viewer_id = ?1")


def insert_order(conn: Any, *, viewer_id: str, product_id: int, event_id: int | None, session_id: int | None, quantity: int,
                 unit_price_cents: int, currency: str, status: str, first_time: bool, practice: bool,
                 created_at: float | None = None, label: str | None = None, by: str = "checkout") -> Any:
    """THE insert of an order row (nothing else in lmserver writes one): the buyer's details are copied from
    ``buyer_details`` as they are now (what the packing list prints), and an order created in another status
    than ``reserved`` gets its first ``order_status_history`` row (by ``by``). The caller moves the stock.

    ``conn`` is the writer thread's ``sqlite3.Connection`` (returns the new id) or a transaction of
    :mod:`lmserver.db` (returns an awaitable of the id)."""
    params = (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, unit_price_cents * quantity, currency,
              status, int(first_time), int(practice), created_at or time.time(), label)
    if isinstance(conn, sqlite3.Connection):
        order_id = int(conn.execute(_INSERT_SQL, params).lastrowid or 0)
        if status != "reserved":
            orderstatus.log_transition(conn, order_id, None, status, by)
        return order_id

    async def run() -> int:
        order_id = int((await conn.execute(_INSERT_SQL, params)).lastrowid)
        if status != "reserved":
            await conn.execute(orderstatus.HISTORY_SQL, (order_id, None, status, by, time.time(), None))
        return order_id
    return run()


def _reserve(conn: sqlite3.Connection, viewer_id: str, product_id: int, quantity: int, event_id: int | None,
             session_id: int | None, practice: bool, key: str | None = None, key_since: float = 0.0,
             label: str | None = None) -> dict[str, Any]:
    """Writer thread: check the bag, decrement the stock and insert the reserved order, or raise NotFound / SoldOut.

    With an Idempotency-Key, an earlier purchase under the same key (stored since ``key_since``) is answered
    instead (``{"replay": ReplayedOrder}``), and a new one stores the key with the reservation.

    The bag check runs here, in the writer's batch, instead of as one aiosqlite round trip per attempt:
    in a burst of 1000 buyers that round trip alone cost more than the whole group commit."""
    if key is not None:
        prior = conn.execute(_PRIOR_SQL, (viewer_id, key, key_since)).fetchone()
        if prior is not None:
            return {"replay": _prior(prior, event_id, product_id, quantity)}
        conn.execute("DELETE FROM order_idempotency WHERE viewer_id = ? AND key = ?", (viewer_id, key))  # an expired one
    in_bag = conn.execute("SELECT 1 FROM event_products ep JOIN products p ON p.id = ep.product_id"
                          " WHERE ep.event_id = ? AND ep.product_id = ? AND p.archived = 0", (event_id, product_id)).fetchone()
    if in_bag is None:
        raise NotFound(f"product {product_id} is not in this event's shopping bag")
    cur = conn.execute("UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ? AND archived = 0",
                       (orderstatus.stock_units(quantity, practice), product_id, quantity))
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
    order_id = insert_order(conn, viewer_id=viewer_id, product_id=product_id, event_id=event_id, session_id=session_id,
                            quantity=quantity, unit_price_cents=product["price_cents"], currency=product["currency"],
                            status="reserved", first_time=earlier is None, practice=practice, created_at=now, label=label)
    if key is not None:
        conn.execute("INSERT INTO order_idempotency (viewer_id, key, order_id, created_at) VALUES (?, ?, ?, ?)",
                     (viewer_id, key, order_id, now))
    return {"id": order_id, "unit_price_cents": product["price_cents"], "currency": product["currency"],
            "stock": product["stock"]}


class Refused(Conflict):
    """A plugin's ``reserve_order`` refused the order (its reason is the message)."""


FAILED_CLOSED = ("the order could not be completed because a checkout step failed; nothing was bought or charged:"
                 " try again in a moment")


def _reserve_with_plugins(conn: sqlite3.Connection, app: web.Application, viewer_id: str, product_id: int, quantity: int,
                          event_id: int | None, session_id: int | None, practice: bool, key: str | None = None,
                          key_since: float = 0.0, offer: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Writer thread, one savepoint: :func:`_reserve`, then the plugins' ``order_price`` (the unit price the
    order is recorded at) and ``reserve_order`` (a refusal raises :class:`Refused`; the savepoint is rolled
    back, stock and Idempotency-Key included). A failing plugin raises :class:`HookFailed` (rolled back the
    same way). A replayed Idempotency-Key answers at once: its order went through the plugins already."""
    reserved = _reserve(conn, viewer_id, product_id, quantity, event_id, session_id, practice, key, key_since, label)
    if "replay" in reserved:
        return reserved
    pm = app[PM]
    draft = OrderDraft(viewer_id=viewer_id, product_id=product_id, quantity=quantity, unit_price_cents=reserved["unit_price_cents"],
                       currency=reserved["currency"], event_id=event_id, session_id=session_id, practice=practice,
                       stock_left=reserved["stock"], offer=offer)
    price = pm.call_first_sync("order_price", app=app, conn=conn, draft=draft)
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise HookFailed("an order_price implementation", "order_price",
                             ValueError(f"order_price must answer whole cents ≥ 0 or None, got {price!r}"))
        conn.execute("UPDATE orders SET unit_price_cents = ?, amount_cents = ? WHERE id = ?", (price, price * quantity, reserved["id"]))
        reserved["unit_price_cents"] = price
    draft = OrderDraft(**{**draft.__dict__, "unit_price_cents": reserved["unit_price_cents"], "order_id": reserved["id"]})
    for plugin, reason in pm.call_sync_named("reserve_order", app=app, conn=conn, draft=draft):
        if not isinstance(reason, str) or not reason.strip():
            raise HookFailed(plugin, "reserve_order", ValueError(f"reserve_order must answer a reason (str) or None, got {reason!r}"))
        raise Refused(reason.strip())
    return reserved


def _confirm(conn: sqlite3.Connection, order_id: int, status: str, spec: Any,
             redirect_url: str | None = None) -> tuple[dict[str, Any], Activity]:
    """Writer thread: set the checkout's status and log ``order.created`` in the same savepoint (and store the
    answer for the order's Idempotency-Key). Only a still-reserved order is confirmed: one released meanwhile
    (checkout too slow) raises 409."""
    cur = conn.execute("UPDATE orders SET status = ? WHERE id = ? AND status = 'reserved'", (status, order_id))
    if cur.rowcount != 1:
        gone = conn.execute("SELECT status_reason FROM orders WHERE id = ?", (order_id,)).fetchone()
        reason = gone["status_reason"] if gone is not None and gone["status_reason"] else "released"
        raise Conflict(f"the order was not placed: its reservation was released before the checkout answered ({reason});"
                       " buy again", details={"order_id": order_id})
    orderstatus.log_transition(conn, order_id, "reserved", status, "checkout")
    row = conn.execute(f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
                       " JOIN products p ON p.id = o.product_id WHERE o.id = ?", (order_id,)).fetchone()
    order = order_json(row)
    record = record_sync(conn, spec, {"order": order}, event_id=order["event_id"], session_id=order["session_id"],
                         practice=order["practice"])
    if redirect_url:
        order = {**order, "redirect_url": redirect_url}
    conn.execute("UPDATE order_idempotency SET response = ? WHERE order_id = ?", (json.dumps(order), order_id))
    return order, record


def _release(conn: sqlite3.Connection, order_id: int, reason: str = "checkout failed") -> None:
    """Writer thread: give back the stock of an order whose checkout failed (its Idempotency-Key is freed)."""
    row = conn.execute("SELECT product_id, quantity, practice FROM orders WHERE id = ? AND status = 'reserved'", (order_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE products SET stock = stock + ? WHERE id = ?", (orderstatus.stock_units(row["quantity"], row["practice"]), row["product_id"]))
        conn.execute("UPDATE orders SET status = 'cancelled', status_reason = ? WHERE id = ?", (reason, order_id))
        conn.execute("DELETE FROM order_idempotency WHERE order_id = ?", (order_id,))
        orderstatus.log_transition(conn, order_id, "reserved", "cancelled", "system", reason)


def release_unpaid(conn: sqlite3.Connection, order_id: int, reason: str, spec: Any, then: Any = None,
                   args: tuple[Any, ...] = ()) -> tuple[bool, list[Activity], Any]:
    """Writer thread, one savepoint: cancel an order still ``reserved`` or ``pending_payment`` (units back to stock,
    ``cancelled`` with ``reason``, its Idempotency-Key freed, ``order.released`` logged), then run
    ``then(conn, released, *args)`` in the same savepoint. Returns (released, records to dispatch, then's answer).
    See :func:`lmserver.api.release_order`."""
    row = conn.execute("SELECT id, status, product_id, quantity, event_id, session_id, practice FROM orders WHERE id = ?"
                       " AND status IN ('reserved', 'pending_payment')", (order_id,)).fetchone()
    records: list[Activity] = []
    if row is not None:
        conn.execute("UPDATE products SET stock = stock + ? WHERE id = ?", (orderstatus.stock_units(row["quantity"], row["practice"]), row["product_id"]))
        conn.execute("UPDATE orders SET status = 'cancelled', status_reason = ? WHERE id = ?", (reason, order_id))
        conn.execute("DELETE FROM order_idempotency WHERE order_id = ?", (order_id,))
        orderstatus.log_transition(conn, order_id, row["status"], "cancelled", "system", reason)
        stock = conn.execute("SELECT stock FROM products WHERE id = ?", (row["product_id"],)).fetchone()["stock"]
        records.append(record_sync(conn, spec, {"order_ids": [order_id], "units": row["quantity"], "reason": reason,
                                                "products": [{"product_id": row["product_id"], "stock": stock}]},
                                   event_id=row["event_id"], session_id=row["session_id"], practice=bool(row["practice"])))
        records.append(Activity(None, "product.stock", row["event_id"], row["session_id"], bool(row["practice"]), time.time(),
                                {"product_id": row["product_id"], "stock": stock}))
    answer = then(conn, row is not None, *args) if then is not None else None
    return row is not None, records, answer


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


async def place_order(app: web.Application, viewer: dict[str, Any], event_id: int, product_id: Any, quantity: Any,
                      idempotency_key: str | None = None, offer: str | None = None, replay_of: int | None = None) -> dict[str, Any]:
    """Buy ``quantity`` of ``product_id`` in the live event ``event_id``; returns the order (see module doc).

    ``replay_of``: a past session whose published replay the viewer buys from (:mod:`lmserver.replay`): no LIVE
    needed; the order carries that session and ``label = 'replay'`` (out of the LIVE's GMV: :mod:`lmserver.figures`).

    With ``idempotency_key`` (already checked by :func:`idempotency_key`), a retry of the same purchase returns
    the first order as a :class:`ReplayedOrder`, a different purchase under the same key raises 422. ``offer`` (the
    request's optional ``offer``) is handed to the plugins' order hooks as ``OrderDraft.offer``."""
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise BadRequest("product_id must be the product's id (an integer)")
    qty = parse_quantity(quantity, app[CONFIG].live.max_order_quantity)
    if idempotency_key is None:
        return await _place(app, viewer, event_id, product_id, qty, offer=offer, replay_of=replay_of)
    # concurrent requests with the same key in this process share the first one's attempt and its outcome
    inflight = app[INFLIGHT]
    slot, purchase = (viewer["id"], idempotency_key), (event_id, product_id, qty)
    if slot in inflight:
        first, outcome = inflight[slot]
        if first != purchase:
            raise KeyReused(f"this {IDEMPOTENCY_HEADER} is being used for another purchase (product {first[1]},"
                            f" quantity {first[2]}): send a new key for a new purchase")
        return ReplayedOrder(await asyncio.shield(outcome))
    outcome = asyncio.get_running_loop().create_future()
    inflight[slot] = (purchase, outcome)
    try:
        order = await _place(app, viewer, event_id, product_id, qty, idempotency_key, offer, replay_of)
        outcome.set_result(dict(order))
        return order
    except BaseException as exc:
        outcome.set_exception(exc if isinstance(exc, Exception) else
                              Conflict(f"the first request with this {IDEMPOTENCY_HEADER} was interrupted: retry it"))
        outcome.exception()  # retrieved: there may be no one waiting
        raise
    finally:
        del inflight[slot]


async def _place(app: web.Application, viewer: dict[str, Any], event_id: int, product_id: int, qty: int,
                 key: str | None = None, offer: str | None = None, replay_of: int | None = None) -> dict[str, Any]:
    """The order path of the module doc: edge checks, reserve, checkout, confirm (or release)."""
    cfg = app[CONFIG].live
    key_since = time.time() - cfg.idempotency_hours * 3600
    session = app[LIVE].current if replay_of is None else SimpleNamespace(id=replay_of, event_id=event_id, practice=False)
    if session is None or session.event_id != event_id:
        if key is not None:  # the answer was lost and the LIVE ended since: the retry still gets its order
            prior = await app[DB].fetchone(_PRIOR_SQL, (viewer["id"], key, key_since))
            if prior is not None:
                return _prior(prior, event_id, product_id, qty)
        raise Conflict("this event is not live: buying opens when the LIVE starts")
    if viewer.get("blocked") and not cfg.blocked_can_buy:
        raise Forbidden("you cannot buy in this studio")
    writer = app[WRITER]
    try:
        reserved = await writer.submit(_reserve_with_plugins, app, viewer["id"], product_id, qty, event_id, session.id,
                                       session.practice, key, key_since, offer, None if replay_of is None else "replay")
    except HookFailed as exc:  # nothing was written: the savepoint was rolled back
        log.error("an order of product %s fails closed before checkout: %s", product_id, exc)
        raise ServiceUnavailable(FAILED_CLOSED) from exc
    if "replay" in reserved:
        replay: ReplayedOrder = reserved["replay"]
        return replay
    try:
        result = await app[PM].call_first("checkout", app=app, request=CheckoutRequest(
            viewer_id=viewer["id"], product_id=product_id, quantity=qty, unit_price_cents=reserved["unit_price_cents"],
            currency=reserved["currency"], event_id=event_id, session_id=session.id, practice=session.practice,
            order_id=reserved["id"]))
        if not isinstance(result, CheckoutResult) or result.status not in ("placed", "pending_payment"):
            raise HookFailed("a checkout implementation", "checkout",
                             ValueError(f"checkout must answer CheckoutResult(status='placed' or 'pending_payment'), got {result!r}"))
        order, record = await writer.submit(_confirm, reserved["id"], result.status, app[BUS].specs["order.created"],
                                            result.redirect_url)
    except HookFailed as exc:  # fail closed: the stock goes back, the order is cancelled, no order is placed
        log.error("order %s fails closed in checkout: %s; its stock is released", reserved["id"], exc)
        await writer.submit(_release, reserved["id"], f"checkout failed: {exc.hook} of plugin {exc.plugin} raised")
        raise ServiceUnavailable(FAILED_CLOSED) from exc
    except BaseException:
        await writer.submit(_release, reserved["id"])
        raise
    app[BUS].dispatch(record)
    stock_record = Activity(None, "product.stock", event_id, session.id, session.practice, time.time(),
                            {"product_id": product_id, "stock": reserved["stock"]})
    app[BUS].dispatch(stock_record)
    return order


# --------------------------------------------------------------------------------------------- reconciliation


def _reconcile(conn: sqlite3.Connection, cutoff: float, reason: str, keys_before: float,
               spec: Any) -> tuple[list[dict[str, Any]], list[Activity], list[Activity]]:
    """Writer thread, one savepoint: release every order still ``reserved`` that was created at or before
    ``cutoff`` (units back to stock, ``cancelled`` with ``reason``, its Idempotency-Key freed), log one
    ``order.released`` per session, delete the keys created before ``keys_before``.
    Returns the released orders, the records to dispatch and the ``product.stock`` updates."""
    rows = [dict(r) for r in conn.execute(
        "SELECT id, product_id, quantity, event_id, session_id, practice FROM orders WHERE status = 'reserved' AND created_at <= ?"
        " ORDER BY id", (cutoff,))]
    groups: dict[tuple[Any, Any, bool], list[dict[str, Any]]] = {}
    for r in rows:
        conn.execute("UPDATE products SET stock = stock + ? WHERE id = ?", (orderstatus.stock_units(r["quantity"], r["practice"]), r["product_id"]))
        conn.execute("UPDATE orders SET status = 'cancelled', status_reason = ? WHERE id = ? AND status = 'reserved'", (reason, r["id"]))
        orderstatus.log_transition(conn, r["id"], "reserved", "cancelled", "system", reason)
        conn.execute("DELETE FROM order_idempotency WHERE order_id = ?", (r["id"],))
        groups.setdefault((r["event_id"], r["session_id"], bool(r["practice"])), []).append(r)
    conn.execute("DELETE FROM order_idempotency WHERE created_at < ?", (keys_before,))
    records, stock = [], []
    now = time.time()
    for (event_id, session_id, practice), released in groups.items():
        products = sorted({r["product_id"] for r in released})
        stocks = {p: conn.execute("SELECT stock FROM products WHERE id = ?", (p,)).fetchone()["stock"] for p in products}
        records.append(record_sync(conn, spec, {
            "order_ids": [r["id"] for r in released], "units": sum(r["quantity"] for r in released), "reason": reason,
            "products": [{"product_id": p, "stock": stocks[p]} for p in products]},
            event_id=event_id, session_id=session_id, practice=practice))
        stock += [Activity(None, "product.stock", event_id, session_id, practice, now, {"product_id": p, "stock": stocks[p]})
                  for p in products]
    return rows, records, stock


async def reconcile(app: web.Application, older_than: float | None = None) -> list[int]:
    """Release the reservations whose checkout never finished (see module doc); returns the released order ids.

    ``older_than=None`` (at startup): every ``reserved`` order, reason :data:`RESTART_REASON`; otherwise those
    created more than ``older_than`` seconds ago."""
    cfg = app[CONFIG].live
    now = time.time()
    if older_than is None:
        cutoff, reason = float("inf"), RESTART_REASON
    else:
        cutoff, reason = now - older_than, f"checkout did not finish within {older_than:g} s"
    released, records, stock = await app[WRITER].submit(_reconcile, cutoff, reason, now - cfg.idempotency_hours * 3600,
                                                        app[BUS].specs["order.released"])
    if released:
        log.warning("released %d reserved orders (%d units back to stock): %s; orders %s", len(released),
                    sum(r["quantity"] for r in released), reason, ", ".join(str(r["id"]) for r in released))
    for record in (*records, *stock):
        app[BUS].dispatch(record)
    return [r["id"] for r in released]


async def _reconcile_loop(app: web.Application) -> None:
    cfg = app[CONFIG].live
    while True:
        await asyncio.sleep(cfg.reconcile_seconds)
        try:
            await reconcile(app, cfg.checkout_timeout_seconds)
        except Exception:  # a failed pass is retried by the next one
            log.exception("the reconciliation of reserved orders failed; next try in %g s", cfg.reconcile_seconds)


async def orders_ctx(app: web.Application) -> AsyncIterator[None]:
    """At startup release every reservation left by the previous run, then reconcile periodically."""
    app[INFLIGHT] = {}
    await reconcile(app)
    async with background(_reconcile_loop(app), "lmserver-order-reconcile"):
        yield


#: the ``status`` filter of the orders API → the statuses listed
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "placed": orderstatus.SOLD, "cancelled": ("cancelled", "refunded"), "reserved": ("reserved",), "all": orderstatus.STATUSES}


async def list_orders(app: web.Application, *, event_id: int, session_id: int | None = None, limit: int = 200,
                      statuses: tuple[str, ...] = STATUS_FILTERS["placed"]) -> list[dict[str, Any]]:
    where = ["o.event_id = ?", f"o.status IN ({', '.join('?' * len(statuses))})"]
    params: list[Any] = [event_id, *statuses]
    if session_id is not None:
        where.append("o.session_id = ?")
        params.append(session_id)
    rows = await app[DB].fetchall(
        f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id JOIN products p ON p.id = o.product_id"
        f" WHERE {' AND '.join(where)} ORDER BY o.id DESC LIMIT ?", (*params, limit))
    return [order_json(r) for r in rows]
