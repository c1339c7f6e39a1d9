"""A session's selling figures, defined once: GMV, orders, items sold, buyers, first-time buyers, comments.

The console's metrics panel, the session analytics page, the home page's "latest LIVE" and the events'
session lists all read these figures through :func:`session_figures`, so one session shows one GMV
everywhere. What counts:

- **an order** counts when it was placed in the session, outside practice (``practice = 0``), and its
  checkout went through: status ``placed``, ``pending_payment``, ``paid``, ``shipped`` or ``delivered`` (:data:`SOLD`).
  A ``reserved`` order is still in checkout (or was cut short by a crash, until it is reconciled) and a
  ``cancelled`` or ``refunded`` one is no sale.
- **GMV** is the sum of the counted orders' ``amount_cents`` (quantity × the unit price at the moment of
  the order); **orders** their number; **items sold** the sum of their quantities; **buyers** the
  distinct viewers among them; **first-time buyers** the distinct viewers whose counted order here was
  their first non-practice order in the studio (``orders.first_time``).
- practice orders are never in those figures; they are shown apart (``practice_orders``,
  ``practice_amount_cents``) so a rehearsal can check the buy path.
- orders placed later from the session's published replay (``label = 'replay'``, :mod:`lmserver.replay`)
  are not the LIVE's: they are left out of GMV, orders, items and buyers too, and shown apart
  (``replay_orders``, ``replay_amount_cents``).
- **comments** are what viewers wrote in the session outside practice, hidden ones included (a held
  or hidden comment was still written by a viewer; hiding is moderation, not a lack of engagement).
  Staff replies are not counted: they are the studio talking, not the audience.
- **currency**: the orders' currency (one per studio in practice), else ``catalog.default_currency``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Database

#: the order statuses that are a sale (the checkout went through)
SOLD_STATUSES = ("placed", "pending_payment", "paid", "shipped", "delivered")  # lmserver.orderstatus.SOLD
SOLD = f"status IN {SOLD_STATUSES!r}"
#: the label of an order placed from a published replay (not the LIVE's: counted apart)
REPLAY_LABEL = "replay"


def counted_order(alias: str = "") -> str:
    """SQL condition: an ``orders`` row (optionally aliased) that counts in GMV, orders, items and buyers."""
    p = f"{alias}." if alias else ""
    return f"{p}practice = 0 AND {p}status IN {SOLD_STATUSES!r} AND {p}label IS NOT '{REPLAY_LABEL}'"


def counted_comment(alias: str = "") -> str:
    """SQL condition: a ``comments`` row (optionally aliased) that counts in the comment figure."""
    p = f"{alias}." if alias else ""
    return f"{p}practice = 0 AND {p}user_id IS NULL"


FIGURES = ("gmv_cents", "orders", "items_sold", "buyers", "first_time_buyers", "comments", "practice_orders",
           "practice_amount_cents", "replay_orders", "replay_amount_cents", "currency")

_LIVE = f"practice = 0 AND label IS NOT '{REPLAY_LABEL}'"
_REPLAY = f"practice = 0 AND label IS '{REPLAY_LABEL}'"
_ORDERS_SQL = (
    f"SELECT COALESCE(SUM(CASE WHEN {_LIVE} THEN amount_cents END), 0) AS gmv_cents,"
    f" COUNT(CASE WHEN {_LIVE} THEN 1 END) AS orders,"
    f" COALESCE(SUM(CASE WHEN {_LIVE} THEN quantity END), 0) AS items_sold,"
    f" COUNT(DISTINCT CASE WHEN {_LIVE} THEN viewer_id END) AS buyers,"
    f" COUNT(DISTINCT CASE WHEN {_LIVE} AND first_time = 1 THEN viewer_id END) AS first_time_buyers,"
    f" COUNT(CASE WHEN practice = 1 THEN 1 END) AS practice_orders,"
    f" COALESCE(SUM(CASE WHEN practice = 1 THEN amount_cents END), 0) AS practice_amount_cents,"
    f" COUNT(CASE WHEN {_REPLAY} THEN 1 END) AS replay_orders,"
    f" COALESCE(SUM(CASE WHEN {_REPLAY} THEN amount_cents END), 0) AS replay_amount_cents,"
    f" MAX(currency) AS currency"
    f" FROM orders WHERE session_id = ? AND {SOLD}")  # practice and replay orders are summed apart above
_COMMENTS_SQL = f"SELECT COUNT(*) FROM comments WHERE session_id = ? AND {counted_comment()}"


async def session_figures(db: "Database", session_id: int, *, default_currency: str = "USD") -> dict[str, Any]:
    """The figures of one session (see the module doc for what counts): a dict with the keys :data:`FIGURES`."""
    row = await db.fetchone(_ORDERS_SQL, (session_id,))
    out: dict[str, Any] = {k: row[k] for k in row.keys()}
    out["currency"] = out["currency"] or default_currency
    out["comments"] = await db.fetchval(_COMMENTS_SQL, (session_id,), default=0)
    return out


# --------------------------------------------------------------------------------------------- audience figures

#: the audience figures of a session (:func:`audience_figures`)
AUDIENCE_FIGURES = ("peak_viewers", "avg_viewers", "unique_viewers", "returning_viewers", "avg_watch_seconds",
                    "new_followers", "gifts", "opens", "openers")

_AUDIENCE_SQL = ("SELECT COALESCE(SUM(new_viewers), 0) AS unique_viewers, COALESCE(SUM(returning_viewers), 0) AS returned,"
                 " COALESCE(SUM(followers), 0) AS new_followers, COALESCE(SUM(gifts), 0) AS gifts, COALESCE(SUM(opens), 0) AS opens,"
                 " COALESCE(SUM(openers), 0) AS openers, COALESCE(SUM(watch_seconds), 0) AS watched, COALESCE(MAX(peak_viewers), 0) AS peak"
                 " FROM session_minutes WHERE session_id = ?")
#: the running watch time of the players still open (a live session)
_WATCHING_SQL = "SELECT COALESCE(SUM(MAX(0, ? - since)), 0) FROM session_viewers WHERE session_id = ? AND open > 0"


async def audience_figures(db: "Database", session: Any, *, now: float | None = None) -> dict[str, Any]:
    """The audience figures of one session (a ``sessions`` row or dict), read from the analytics rollups:

    - **peak viewers**: the most viewers at once (the media layer's ``sessions.peak_viewers``, the viewer
      samples and the joins); **average viewers**: the mean of the viewer samples (``viewer_samples``);
    - **unique viewers**: viewers (by their viewer cookie) who joined the session's video at least once;
      **returning viewers**: those of them who had watched an earlier session; **average watch time**: their
      watching time (from WHEP joins to leaves, several players counted once) over their number, seconds;
    - **new followers**, **gifts**, product-card **opens** and **openers** (viewers who opened at least one).

    The console's metrics, the LIVE Board, the LIVE Recap and the home page all read these (one definition).
    Every figure but the running watch time of a live session is a sum over the session's minute rows.
    """
    import time as _time

    sid = session["id"]
    now = _time.time() if now is None else now
    end = session["ended_at"] if session["ended_at"] is not None else now
    row = await db.fetchone(_AUDIENCE_SQL, (sid,))
    samples = await db.fetchone("SELECT MAX(viewers) AS peak, AVG(viewers) AS avg FROM viewer_samples WHERE session_id = ?", (sid,))
    watched = row["watched"] + (await db.fetchval(_WATCHING_SQL, (end, sid), default=0) if session["ended_at"] is None else 0)
    unique = int(row["unique_viewers"])
    return {
        "peak_viewers": max(int(samples["peak"] or 0), int(session["peak_viewers"] or 0), int(row["peak"])),
        "avg_viewers": round(float(samples["avg"] or 0.0), 1),
        "unique_viewers": unique,
        "returning_viewers": int(row["returned"]),
        "avg_watch_seconds": round(watched / unique) if unique else 0,
        "new_followers": int(row["new_followers"]),
        "gifts": int(row["gifts"]),
        "opens": int(row["opens"]),
        "openers": int(row["openers"]),
    }
