"""Order statuses: what an order can become, who changed it, and the units that come back.

::

    reserved ──checkout──> placed ───────────┐
        │                                     ├──> paid ──> shipped ──> delivered
        └──────checkout──> pending_payment ──┘
    cancelled / refunded: from any open state (every status but delivered, cancelled and refunded)

- ``reserved`` → ``placed`` / ``pending_payment`` is the checkout's answer (:mod:`lmserver.orders`); staff
  can only cancel a reservation. ``pending_payment`` → ``paid`` is a payment plugin's (or staff's) call.
- Every change is one savepoint in the order writer: the row's status (and ``status_reason``: the note),
  one ``order_status_history`` row (who, when, from, to, note) and one ``order.status_changed`` record.
  A change the table does not allow is a 409 naming the statuses the order can take.
- **Units come back** when an order is cancelled or refunded before it shipped (from ``reserved``,
  ``placed``, ``pending_payment`` or ``paid``): the product's stock grows by its quantity, then the plugins'
  ``order_cancelled`` hook lets a plugin take the units back into its own allocation (a deal that counted
  them). A shipped order's units left the studio: cancelling or refunding it changes only its status.
- Who: a staff member's name, ``"checkout"``, ``"system"`` (reconciliation), or a plugin's name.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from aiohttp import web

from .appkeys import BUS, DB, PM, WRITER
from .bus import Activity, record_sync
from .errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from .plugins.manager import HookFailed


def stock_units(quantity: int, practice: Any) -> int:
    """The units an order of ``quantity`` takes from stock (and gives back when released or cancelled): none in practice."""
    return 0 if practice else quantity

#: every status, in the order an order goes through them
STATUSES = ("reserved", "placed", "pending_payment", "paid", "shipped", "delivered", "cancelled", "refunded")
FINAL = ("delivered", "cancelled", "refunded")
#: status → the statuses it may become
NEXT: dict[str, tuple[str, ...]] = {
    "reserved": ("placed", "pending_payment", "cancelled"),
    "placed": ("paid", "cancelled", "refunded"),
    "pending_payment": ("paid", "cancelled", "refunded"),
    "paid": ("shipped", "cancelled", "refunded"),
    "shipped": ("delivered", "cancelled", "refunded"),
    "delivered": (), "cancelled": (), "refunded": (),
}
#: what only the checkout does (staff and plugins calling :func:`set_status` cannot)
CHECKOUT_ONLY = {("reserved", "placed"), ("reserved", "pending_payment")}
#: the statuses staff (and plugins) set
TARGETS = ("paid", "shipped", "delivered", "cancelled", "refunded")
#: from these statuses the units are still in the studio: cancelling or refunding puts them back in stock
UNITS_HELD = ("reserved", "placed", "pending_payment", "paid")
#: the statuses that are a sale (figures count them; see :mod:`lmserver.figures`)
SOLD = ("placed", "pending_payment", "paid", "shipped", "delivered")


def allowed(status: str) -> list[str]:
    """The statuses an order in ``status`` may be set to by staff or a plugin."""
    return [s for s in NEXT.get(status, ()) if (status, s) not in CHECKOUT_ONLY]


HISTORY_SQL = "INSERT INTO order_status_history (order_id, from_status, to_status, by, at, note) VALUES (?, ?, ?, ?, ?, ?)"


def log_transition(conn: sqlite3.Connection, order_id: int, from_status: str | None, to_status: str, by: str,
                   note: str | None = None) -> None:
    """Writer thread: append one ``order_status_history`` row (the caller changes the order in the same savepoint)."""
    conn.execute(HISTORY_SQL, (order_id, from_status, to_status, by, time.time(), note))


def _refuse(order_id: int, status: str, to: str) -> Conflict:
    can = allowed(status)
    if to == status:
        why = f"order {order_id} is already {status}"
    else:
        why = f"order {order_id} is {status} and cannot become {to}"
    hint = f": it can become {', '.join(can)}" if can else f": {status} is final"
    return Conflict(why + hint, details={"order_id": order_id, "status": status, "allowed": can})


def _check(conn: sqlite3.Connection, order_id: int, to: str) -> Any:
    row = conn.execute("SELECT id, viewer_id, product_id, quantity, event_id, session_id, practice, status FROM orders"
                       " WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise NotFound(f"no order {order_id}")
    if to not in allowed(row["status"]):
        raise _refuse(order_id, row["status"], to)
    return row


def change(conn: sqlite3.Connection, app: web.Application, order_ids: list[int], to: str, by: str,
           note: str | None) -> tuple[list[dict[str, Any]], list[Activity]]:
    """Writer thread, one savepoint: move every order of ``order_ids`` to ``to``, all or none (the first one
    that cannot raises 404/409 and nothing is written). Returns the changes and the records to dispatch."""
    rows = [_check(conn, oid, to) for oid in order_ids]
    spec = app[BUS].specs["order.status_changed"]
    changes: list[dict[str, Any]] = []
    records: list[Activity] = []
    for row in rows:
        oid, before = row["id"], row["status"]
        conn.execute("UPDATE orders SET status = ?, status_reason = ? WHERE id = ?", (to, note, oid))
        log_transition(conn, oid, before, to, by, note)
        stock = None
        if to in ("cancelled", "refunded") and before in UNITS_HELD:
            conn.execute("UPDATE products SET stock = stock + ? WHERE id = ?", (stock_units(row["quantity"], row["practice"]), row["product_id"]))
            conn.execute("DELETE FROM order_idempotency WHERE order_id = ?", (oid,))
            stock = conn.execute("SELECT stock FROM products WHERE id = ?", (row["product_id"],)).fetchone()["stock"]
            info = {k: row[k] for k in ("id", "viewer_id", "product_id", "quantity", "event_id", "session_id")}
            info.update(practice=bool(row["practice"]), from_status=before, to_status=to, by=by, note=note)
            app[PM].call_sync_named("order_cancelled", app=app, conn=conn, order=info)
        data = {"order_id": oid, "from": before, "to": to, "by": by, "note": note, "product_id": row["product_id"],
                "units_returned": row["quantity"] if stock is not None else 0}
        records.append(record_sync(conn, spec, data, event_id=row["event_id"], session_id=row["session_id"],
                                   practice=bool(row["practice"])))
        if stock is not None:
            records.append(Activity(None, "product.stock", row["event_id"], row["session_id"], bool(row["practice"]), time.time(),
                                    {"product_id": row["product_id"], "stock": stock}))
        changes.append({**data, "stock": stock})
    return changes, records


async def set_status(app: web.Application, order_ids: list[int], to: str, *, by: str, note: str | None = None) -> list[dict[str, Any]]:
    """Move orders to the status ``to`` (see the module doc), all or none; publish ``order.status_changed`` for each.

    Raises :class:`NotFound` for an unknown order, :class:`Conflict` (409, naming the allowed statuses) for a
    change the table does not allow, :class:`ServiceUnavailable` when a plugin's ``order_cancelled`` fails."""
    if to not in STATUSES:
        raise BadRequest(f"unknown status {to!r}: use one of {', '.join(STATUSES[1:])}")
    try:
        changes, records = await app[WRITER].submit(change, app, list(dict.fromkeys(order_ids)), to, by, note)
    except HookFailed as exc:
        raise ServiceUnavailable(f"the orders were left unchanged: {exc.hook} of plugin {exc.plugin} failed; try again") from exc
    for record in records:
        app[BUS].dispatch(record)
    return changes


async def history(app: web.Application, order_id: int) -> list[dict[str, Any]]:
    """An order's status changes, oldest first: ``[{from_status, to_status, by, at, note}]``."""
    rows = await app[DB].fetchall("SELECT from_status, to_status, by, at, note FROM order_status_history WHERE order_id = ?"
                                  " ORDER BY id", (order_id,))
    return [dict(r) for r in rows]
