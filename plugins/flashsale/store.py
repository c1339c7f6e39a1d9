"""The flash-sale plugin's settings, its tables and the rules that run in the order writer.

A **flash sale** sells ``allocated`` units of one product of an event's bag at ``deal_price_cents`` for
``duration_seconds``, after a pre-launch countdown of ``countdown_seconds``. Its life::

    draft --launch (while live)--> countdown --start timer--> live --end timer / end early / LIVE ends--> ended

The allocation is **set aside** from the product's stock from the moment the sale is created until it
ends: the product's stock still counts those units, but a regular order that would leave fewer units
than the sales set aside is refused (``reserve_order``). What a sale did not sell is simply no longer
set aside once it ends: it is back in stock for everyone. A practice sale sets nothing aside.

While a sale runs (``starts_at <= now < ends_at``: the clock decides, so a late timer never stretches
a sale), every order of its product in its session is a sale order at the deal price, as long as the
allocation has units; once it is sold out, an order naming the sale (``offer = "flashsale:<id>"``) is
refused ("sold out") and a plain one is a regular order at the regular price. An order naming a sale
that is not running is refused with the reason (not started, ended). All of this runs synchronously
in the writer's batch (:func:`decide`, :func:`reserve`): the units of a sale can never be oversold
and the per-buyer limit holds whatever the number of simultaneous requests.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, Mapping

from lmserver.api import ConfigError, OrderDraft

NAME = "flashsale"
OFFER_RE = re.compile(r"flashsale:(\d{1,18})")
ACTIVE = ("draft", "countdown", "live")
RUNNING = ("countdown", "live")

#: the ranges of a sale's settings (also in the API's documentation and the panel's form)
COUNTDOWN_RANGE = (10, 300)          # seconds
DURATION_RANGE = (1, 60)             # minutes


@dataclass(frozen=True)
class Settings:
    """``[plugins.flashsale]``: each field is a key, with its default."""

    #: minutes a unit stays held for a buyer whose checkout answered ``pending_payment``
    hold_minutes: int = 5
    #: composite the running sale's banner on the program video (countdown / time left, "N of M sold"; see banner.py)
    banner: bool = False

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Settings":
        """Check the table; raises :class:`ConfigError` naming the key (``plugins.flashsale.<key>``)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"'plugins.{NAME}.{key}' is not a setting of the flashsale plugin; known: {', '.join(sorted(known))}")
            if key == "banner":
                if not isinstance(value, bool):
                    raise ConfigError(f"'plugins.{NAME}.banner' must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 60:
                raise ConfigError(f"'plugins.{NAME}.hold_minutes' must be a whole number of minutes from 1 to 60, got {value!r}")
            values[key] = value
        return cls(**values)


#: ``register_migrations``: ordered ``(name, sql)`` steps; never edit one that has shipped, add the next.
MIGRATIONS: list[tuple[str, str]] = [("001_flashsales", """
CREATE TABLE flashsale_sales (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    allocated INTEGER NOT NULL CHECK (allocated >= 1),
    deal_price_cents INTEGER NOT NULL CHECK (deal_price_cents > 0),
    per_buyer_limit INTEGER CHECK (per_buyer_limit IS NULL OR per_buyer_limit >= 1),
    countdown_seconds INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'countdown', 'live', 'ended')),
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    practice INTEGER NOT NULL DEFAULT 0,
    regular_price_cents INTEGER,         -- at launch: shown struck through
    lowest_30d_cents INTEGER,            -- at launch: the lowest catalog price of the previous 30 days
    currency TEXT,
    launched_at REAL, starts_at REAL, ends_at REAL, ended_at REAL, end_reason TEXT,
    sold INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),      -- units of its orders (placed or held for payment)
    offered INTEGER NOT NULL DEFAULT 0 CHECK (offered >= 0), -- units held for viewers of the waitlist
    sold_out_at REAL,
    announced_sold_out INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK (sold + offered <= allocated)
);
CREATE INDEX flashsale_sales_product ON flashsale_sales(product_id, status);
CREATE INDEX flashsale_sales_event ON flashsale_sales(event_id);
CREATE TABLE flashsale_orders (
    order_id INTEGER PRIMARY KEY REFERENCES orders(id) ON DELETE CASCADE,
    sale_id INTEGER NOT NULL REFERENCES flashsale_sales(id) ON DELETE CASCADE,
    viewer_id TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,  -- the core released the order (checkout failed, restart, hold expired): units back
    held_until REAL,                       -- pending payment: the hold expires then
    created_at REAL NOT NULL
);
CREATE INDEX flashsale_orders_buyer ON flashsale_orders(sale_id, viewer_id);
CREATE TABLE flashsale_waitlist (
    sale_id INTEGER NOT NULL REFERENCES flashsale_sales(id) ON DELETE CASCADE,
    viewer_id TEXT NOT NULL,
    joined_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'offered', 'used', 'expired')),
    units INTEGER NOT NULL DEFAULT 0,      -- units held for this viewer while 'offered'
    offered_until REAL,
    PRIMARY KEY (sale_id, viewer_id)
);
""")]

SALE_COLUMNS = ("id", "event_id", "product_id", "allocated", "deal_price_cents", "per_buyer_limit", "countdown_seconds",
                "duration_seconds", "status", "session_id", "practice", "regular_price_cents", "lowest_30d_cents", "currency",
                "launched_at", "starts_at", "ends_at", "ended_at", "end_reason", "sold", "offered", "sold_out_at", "created_at")


def sale_json(row: Any) -> dict[str, Any]:
    d = {k: row[k] for k in SALE_COLUMNS}
    d["practice"] = bool(d["practice"])
    d["left"] = d["allocated"] - d["sold"] - d["offered"]
    d["duration_minutes"] = d["duration_seconds"] // 60
    return d


# --------------------------------------------------------------------------------------------- writer thread


_last = threading.local()  # order_price's decision, reused by reserve_order for the same order (same writer thread)


def set_aside(conn: sqlite3.Connection, product_id: int) -> int:
    """Units of ``product_id`` set aside by its active, non-practice sales (allocated and not sold)."""
    return conn.execute("SELECT COALESCE(SUM(allocated - sold), 0) FROM flashsale_sales WHERE product_id = ?"
                        " AND status IN ('draft', 'countdown', 'live') AND practice = 0", (product_id,)).fetchone()[0]


def _offer_id(draft: OrderDraft) -> int | None:
    m = OFFER_RE.fullmatch(draft.offer or "")
    return int(m.group(1)) if m else None


def _why_not(conn: sqlite3.Connection, sale_id: int, draft: OrderDraft, now: float) -> str:
    row = conn.execute("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,)).fetchone()
    if row is None or row["product_id"] != draft.product_id:
        return f"there is no flash sale {sale_id} on this product: reload the page"
    if row["status"] == "ended" or (row["ends_at"] is not None and now >= row["ends_at"]):
        return "this flash sale has ended: the product is back at its regular price"
    if row["status"] == "draft" or row["session_id"] != draft.session_id:
        return "this flash sale has not been launched in this LIVE yet"
    return f"this flash sale starts in {max(1, round(row['starts_at'] - now))} s: buy when the countdown ends"


def decide(conn: sqlite3.Connection, draft: OrderDraft, now: float | None = None) -> tuple[Any, str | None]:
    """Writer thread: (the running sale this order belongs to or None, a refusal or None). See the module doc."""
    now = time.time() if now is None else now
    offer = _offer_id(draft)
    sale = conn.execute("SELECT * FROM flashsale_sales WHERE product_id = ? AND session_id = ? AND status IN ('countdown', 'live')"
                        " AND starts_at <= ? AND ends_at > ? ORDER BY id LIMIT 1",
                        (draft.product_id, draft.session_id, now, now)).fetchone()
    if offer is not None and (sale is None or sale["id"] != offer):
        return None, _why_not(conn, offer, draft, now)
    if sale is None:
        return None, None
    left = sale["allocated"] - sale["sold"] - sale["offered"] + _my_offer(conn, sale["id"], draft.viewer_id, now)
    if left < draft.quantity:
        if offer is None:
            return None, None  # a plain buy once the sale is sold out: a regular order
        if left <= 0:
            return None, "sold out: every unit of this flash sale is taken; join the waitlist or buy at the regular price"
        return None, f"only {left} left at the flash-sale price: lower the quantity to {left} or less"
    return sale, None


def _my_offer(conn: sqlite3.Connection, sale_id: int, viewer_id: str, now: float) -> int:
    """Units held for this viewer from the waitlist (0 when none or expired)."""
    row = conn.execute("SELECT units FROM flashsale_waitlist WHERE sale_id = ? AND viewer_id = ? AND status = 'offered'"
                       " AND offered_until > ?", (sale_id, viewer_id, now)).fetchone()
    return row["units"] if row else 0


def order_price(conn: sqlite3.Connection, draft: OrderDraft) -> int | None:
    sale, refusal = decide(conn, draft)
    _last.key = (draft.viewer_id, draft.product_id, draft.quantity, draft.session_id)
    _last.sale_id, _last.refusal, _last.at = (sale["id"] if sale else None), refusal, time.monotonic()
    return sale["deal_price_cents"] if sale is not None else None


def reserve(conn: sqlite3.Connection, draft: OrderDraft) -> str | None:
    """Writer thread, in the order's savepoint: take the units from the sale (or check the set-aside units)."""
    now = time.time()
    if (getattr(_last, "key", None) == (draft.viewer_id, draft.product_id, draft.quantity, draft.session_id)
            and time.monotonic() - _last.at < 1.0):  # the same order, a moment ago in this thread
        sale_id, refusal = _last.sale_id, _last.refusal
        _last.key = None
        sale = conn.execute("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,)).fetchone() if sale_id else None
    else:  # order_price was answered by another plugin first: decide now
        sale, refusal = decide(conn, draft, now)
    if refusal is not None:
        return refusal
    if sale is not None:
        if sale["per_buyer_limit"] is not None:
            bought = conn.execute("SELECT COALESCE(SUM(quantity), 0) FROM flashsale_orders WHERE sale_id = ? AND viewer_id = ?"
                                  " AND cancelled = 0", (sale["id"], draft.viewer_id)).fetchone()[0]
            if bought + draft.quantity > sale["per_buyer_limit"]:
                have = f"you already have {bought}" if bought else f"you asked for {draft.quantity}"
                return f"at most {sale['per_buyer_limit']} per buyer in this flash sale: {have}"
        held = _my_offer(conn, sale["id"], draft.viewer_id, now)
        if held:  # the viewer uses the units held for them from the waitlist
            conn.execute("UPDATE flashsale_waitlist SET status = 'used', units = 0 WHERE sale_id = ? AND viewer_id = ?",
                         (sale["id"], draft.viewer_id))
            conn.execute("UPDATE flashsale_sales SET offered = offered - ? WHERE id = ?", (held, sale["id"]))
        cur = conn.execute("UPDATE flashsale_sales SET sold = sold + ?1, status = 'live',"
                           " sold_out_at = CASE WHEN sold + offered + ?1 = allocated THEN ?2 ELSE sold_out_at END"
                           " WHERE id = ?3 AND sold + offered + ?1 <= allocated", (draft.quantity, now, sale["id"]))
        if cur.rowcount != 1:
            return "sold out: every unit of this flash sale is taken"
        conn.execute("INSERT INTO flashsale_orders (order_id, sale_id, viewer_id, quantity, amount_cents, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (draft.order_id, sale["id"], draft.viewer_id, draft.quantity,
                                                    draft.unit_price_cents * draft.quantity, now))
    if draft.stock_left is not None:
        aside = set_aside(conn, draft.product_id)
        if draft.stock_left < aside:
            free = draft.stock_left + draft.quantity - aside
            if free <= 0:
                return f"sold out: the {aside} units left are set aside for a flash sale"
            return f"only {free} left ({aside} are set aside for a flash sale): lower the quantity and try again"
    return None


def release(conn: sqlite3.Connection, order_ids: list[int]) -> list[int]:
    """Writer thread: the core released these orders; give their units back to their sales. Returns the sale ids touched."""
    touched: set[int] = set()
    for oid in order_ids:
        row = conn.execute("SELECT sale_id, quantity FROM flashsale_orders WHERE order_id = ? AND cancelled = 0", (oid,)).fetchone()
        if row is None:
            continue
        conn.execute("UPDATE flashsale_orders SET cancelled = 1 WHERE order_id = ?", (oid,))
        conn.execute("UPDATE flashsale_sales SET sold = sold - ?, sold_out_at = NULL WHERE id = ?", (row["quantity"], row["sale_id"]))
        touched.add(row["sale_id"])
    return sorted(touched)


# --------------------------------------------------------------------------------------------- holds and the waitlist


def hold_expired(conn: sqlite3.Connection, released: bool, order_id: int, hold_seconds: float) -> dict[str, Any]:
    """Writer thread, in the core's release savepoint: the order's units leave the sale's count and go first to
    the waitlist (one unit per waiting viewer, each a hold of their own), the rest back to the sale."""
    row = conn.execute("SELECT sale_id FROM flashsale_orders WHERE order_id = ?", (order_id,)).fetchone()
    if row is None:
        return {"sale_id": None, "offered": []}
    release(conn, [order_id])
    return {"sale_id": row["sale_id"], "offered": offer_units(conn, row["sale_id"], hold_seconds)}


def offer_units(conn: sqlite3.Connection, sale_id: int, hold_seconds: float) -> list[str]:
    """Writer thread: hold the sale's free units for the viewers waiting longest (one each). Returns their ids."""
    now = time.time()
    sale = conn.execute("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,)).fetchone()
    if sale is None or sale["status"] not in RUNNING or now >= sale["ends_at"]:
        return []
    free = sale["allocated"] - sale["sold"] - sale["offered"]
    waiting = conn.execute("SELECT viewer_id FROM flashsale_waitlist WHERE sale_id = ? AND status = 'waiting'"
                           " ORDER BY joined_at, viewer_id LIMIT ?", (sale_id, max(free, 0))).fetchall()
    ids = [w["viewer_id"] for w in waiting]
    for vid in ids:
        conn.execute("UPDATE flashsale_waitlist SET status = 'offered', units = 1, offered_until = ? WHERE sale_id = ? AND viewer_id = ?",
                     (now + hold_seconds, sale_id, vid))
    if ids:
        conn.execute("UPDATE flashsale_sales SET offered = offered + ?, sold_out_at = NULL WHERE id = ?", (len(ids), sale_id))
    elif free > 0:
        conn.execute("UPDATE flashsale_sales SET sold_out_at = NULL, announced_sold_out = 0 WHERE id = ?", (sale_id,))
    return ids


def offer_expired(conn: sqlite3.Connection, sale_id: int, viewer_id: str, hold_seconds: float) -> list[str]:
    """Writer thread: a waitlist hold lapsed unused: its unit goes to the next waiting viewer, or back to the sale."""
    row = conn.execute("SELECT units FROM flashsale_waitlist WHERE sale_id = ? AND viewer_id = ? AND status = 'offered'",
                       (sale_id, viewer_id)).fetchone()
    if row is None:
        return []
    conn.execute("UPDATE flashsale_waitlist SET status = 'expired', units = 0 WHERE sale_id = ? AND viewer_id = ?", (sale_id, viewer_id))
    conn.execute("UPDATE flashsale_sales SET offered = offered - ? WHERE id = ?", (row["units"], sale_id))
    return offer_units(conn, sale_id, hold_seconds)


def join_waitlist(conn: sqlite3.Connection, sale_id: int, viewer_id: str) -> dict[str, Any]:
    """Writer thread: a viewer joins a sold-out sale's waitlist (409 unless it runs and is sold out)."""
    from lmserver.api import Conflict, NotFound

    now = time.time()
    sale = conn.execute("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,)).fetchone()
    if sale is None:
        raise NotFound(f"no flash sale {sale_id}")
    if sale["status"] not in RUNNING or now >= sale["ends_at"] or now < sale["starts_at"]:
        raise Conflict("this flash sale is not selling: the waitlist is open while a sold-out sale runs")
    if sale["allocated"] - sale["sold"] - sale["offered"] > 0:
        raise Conflict("this flash sale is not sold out: buy now instead of joining the waitlist")
    conn.execute("INSERT INTO flashsale_waitlist (sale_id, viewer_id, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                 (sale_id, viewer_id, now))
    position = conn.execute("SELECT COUNT(*) FROM flashsale_waitlist WHERE sale_id = ? AND status = 'waiting' AND joined_at <= ("
                            "SELECT joined_at FROM flashsale_waitlist WHERE sale_id = ? AND viewer_id = ?)", (sale_id, sale_id, viewer_id)).fetchone()[0]
    status = conn.execute("SELECT status FROM flashsale_waitlist WHERE sale_id = ? AND viewer_id = ?", (sale_id, viewer_id)).fetchone()[0]
    return {"sale_id": sale_id, "status": status, "position": position}
