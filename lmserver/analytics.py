"""Analytics of sessions: the LIVE Board (during the LIVE) and the LIVE Recap (after it), their charts and exports.

**What is recorded, as it happens.** The rollup tables of migration ``056_analytics_rollups`` (:mod:`lmserver.analytics_schema`) are kept by
SQLite triggers in the same transaction as the row that changes them (an order's status, a comment, a gift,
a follow, a viewer sample, a ``viewer.joined``/``viewer.left``/``product.pinned`` activity), and by
:func:`record_open` for product-card opens:

- ``session_minutes``: per minute of a session (minute 0 = its first): average and peak concurrent viewers,
  new unique viewers, new followers, comments, gifts, product-card opens, orders, items, GMV, first-time buyers;
- ``session_products``: per product: card opens, orders, units, GMV, pins and time pinned;
- ``session_viewers``: per viewer: first join, watch time (several players count once), comments, opens.

What counts is :mod:`lmserver.figures`' definition (practice never does; an order counts while its status
is a sale, so a cancellation takes it back out of its minute). The recap reads only these rollups, a few
hundred rows whatever the length of the activity log (``bench/analytics.py`` measures it).

**Product-card opens** are a cheap viewer event: ``POST /api/e/{id}/opens {product_id}`` when a viewer opens
the pinned product's card or a bag item, counted at most once per :data:`OPEN_REPEAT_SECONDS` per viewer and
product (the viewer page also sends it at most that often); the staff-only bus event ``product.opened``
(not persisted) tells the LIVE Board.

**Markers** on the charts are found generically: every persisted activity kind (the core's and plugins'
declared :class:`~lmserver.busevents.EventSpec` with ``activity``) that is not an audience action (its fields
name no ``viewer_id``, and it is not one of :data:`AUDIENCE_ACTIONS`), plus the prompter's findings.
Plugins' figures come through their ``session_figures`` hook (:mod:`lmserver.sessionstats`).

Routes (:mod:`lmserver.analytics_routes`; permission ``console.view``): the recap ``/sessions/{sid}`` (in
:mod:`lmserver.events.pages`), the board ``/sessions/{sid}/board`` (``/events/{id}/board`` finds the live or latest session), the event's recap
``/events/{id}/recap``, and the JSON API ``/api/sessions/{sid}/analytics[/minutes|/products|/orders|/comments]``
(each table also as CSV with ``?format=csv``, through :mod:`lmserver.csvexport`).
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from aiohttp import web

from . import validate
from .appkeys import BUS, CONFIG, DB, LIVE, WRITER
from .analytics_charts import Marker, Point, time_chart, time_label
from .bus import Activity
from .busevents import EventSpec
from .errors import Conflict, NotFound
from .figures import AUDIENCE_FIGURES, FIGURES, audience_figures, session_figures
from .sessionstats import plugin_figures
from .templating import as_dict, iso, money

#: a viewer's opens of one product count once per this many seconds
OPEN_REPEAT_SECONDS = 60.0
#: the last counted open per (session, viewer, product)
OPENS: web.AppKey[dict[tuple[int, str, int], float]] = web.AppKey("analytics_opens", dict)
#: core activity kinds that are the audience's own actions (never chart markers)
AUDIENCE_ACTIONS = frozenset({"comment.created", "comment.held", "order.created", "viewer.joined", "stream.started",
                              "stream.ended", "product.unpinned", "comment.pinned"})

MINUTE_COLUMNS = ("minute", "start", "avg_viewers", "peak_viewers", "new_viewers", "followers", "comments", "gifts", "opens",
                  "orders", "items", "gmv_cents", "first_time_buyers")
PRODUCT_COLUMNS = ("product_id", "title", "opens", "orders", "units", "gmv_cents", "currency", "conversion", "pins", "pinned_seconds")
ORDER_COLUMNS = ("id", "created_at", "nickname", "product_id", "product_title", "quantity", "unit_price_cents", "amount_cents",
                 "currency", "status", "first_time", "label")
COMMENT_COLUMNS = ("id", "created_at", "nickname", "body", "staff", "parent_id", "hidden", "pinned")
SORTS = ("gmv", "conversion", "opens", "units")


# --------------------------------------------------------------------------------------------- product-card opens


def _open_sync(conn: sqlite3.Connection, session_id: int, started_at: float, product_id: int, viewer_id: str, at: float) -> None:
    """Writer thread: count one open in the minute, the product and the viewer of the session."""
    minute = max(0, int((at - started_at) // 60))
    before = conn.execute("SELECT opens FROM session_viewers WHERE session_id = ? AND viewer_id = ?", (session_id, viewer_id)).fetchone()
    first = int(before is None or before[0] == 0)
    conn.execute("INSERT INTO session_minutes (session_id, minute, opens, openers) VALUES (?, ?, 1, ?)"
                 " ON CONFLICT (session_id, minute) DO UPDATE SET opens = opens + 1, openers = openers + excluded.openers",
                 (session_id, minute, first))
    conn.execute("INSERT INTO session_products (session_id, product_id, opens) VALUES (?, ?, 1)"
                 " ON CONFLICT (session_id, product_id) DO UPDATE SET opens = opens + 1", (session_id, product_id))
    conn.execute("INSERT INTO session_viewers (session_id, viewer_id, opens) VALUES (?, ?, 1)"
                 " ON CONFLICT (session_id, viewer_id) DO UPDATE SET opens = opens + 1", (session_id, viewer_id))


async def record_open(app: web.Application, viewer_id: str, event_id: int, product_id: int) -> bool:
    """Count a product-card open of the live event ``event_id``; False when not counted (a repeat within
    :data:`OPEN_REPEAT_SECONDS`, or practice). 409 when the event is not live, 404 when the product is not in its bag."""
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        raise Conflict("this event is not live: product opens are counted during the LIVE only")
    in_bag = await app[DB].fetchval("SELECT 1 FROM event_products ep JOIN products p ON p.id = ep.product_id"
                                    " WHERE ep.event_id = ? AND ep.product_id = ? AND p.archived = 0", (event_id, product_id))
    if in_bag is None:
        raise NotFound(f"product {product_id} is not in this event's shopping bag")
    if live.practice:
        return False
    now = time.time()
    seen = app[OPENS]
    key = (live.id, viewer_id, product_id)
    if now - seen.get(key, 0.0) < OPEN_REPEAT_SECONDS:
        return False
    if len(seen) > 100_000:  # bounded memory: forget the expired ones
        for k in [k for k, t in seen.items() if now - t >= OPEN_REPEAT_SECONDS]:
            del seen[k]
    seen[key] = now
    await app[WRITER].submit(_open_sync, live.id, live.started_at, product_id, viewer_id, now)
    app[BUS].dispatch(Activity(None, "product.opened", event_id, live.id, False, now, {"product_id": product_id}))
    return True


# --------------------------------------------------------------------------------------------- tables


async def load_session(app: web.Application, sid_text: str) -> dict[str, Any]:
    sid = validate.ascii_int(sid_text)
    row = await app[DB].fetchone("SELECT * FROM sessions WHERE id = ?", (sid,)) if sid is not None else None
    if row is None:
        raise NotFound(f"session {sid_text} does not exist" if sid is not None else "the session id must be a number")
    return as_dict(row)


def _end(session: dict[str, Any], now: float) -> float:
    return session["ended_at"] if session["ended_at"] is not None else max(now, session["started_at"])


async def minute_table(app: web.Application, session: dict[str, Any], *, now: float | None = None) -> list[dict[str, Any]]:
    """Every minute of the session (quiet ones as zeros), from the ``session_minutes`` rollup."""
    now = time.time() if now is None else now
    rows = {r["minute"]: r for r in await app[DB].fetchall(
        "SELECT * FROM session_minutes WHERE session_id = ? ORDER BY minute", (session["id"],))}
    last = max([int((_end(session, now) - session["started_at"]) // 60), *rows.keys(), 0])
    out = []
    for m in range(last + 1):
        r = rows.get(m)
        d: dict[str, Any] = {"minute": m, "start": iso(session["started_at"] + 60 * m)}
        if r is None:
            d.update({c: 0 for c in MINUTE_COLUMNS[2:]})
        else:
            d.update({c: r[c] for c in MINUTE_COLUMNS[3:]})
            d["avg_viewers"] = round(r["viewer_sum"] / r["viewer_n"], 1) if r["viewer_n"] else 0
        out.append(d)
    return out


async def product_table(app: web.Application, session: dict[str, Any], *, sort: str = "gmv",
                        now: float | None = None) -> list[dict[str, Any]]:
    """The session's products (opened, ordered or pinned) from ``session_products``; conversion = orders / opens, %."""
    now = time.time() if now is None else now
    end = _end(session, now)
    rows = await app[DB].fetchall(
        "SELECT sp.*, p.title, p.currency FROM session_products sp LEFT JOIN products p ON p.id = sp.product_id"
        " WHERE sp.session_id = ?", (session["id"],))
    out = []
    for r in rows:
        pinned = r["pinned_seconds"] + (max(0.0, end - r["pinned_since"]) if r["pinned_since"] is not None else 0.0)
        out.append({"product_id": r["product_id"], "title": r["title"] or f"product {r['product_id']}", "opens": r["opens"],
                    "orders": r["orders"], "units": r["units"], "gmv_cents": r["gmv_cents"],
                    "currency": r["currency"] or app[CONFIG].catalog.default_currency,
                    "conversion": round(100.0 * r["orders"] / r["opens"], 1) if r["opens"] else None,
                    "pins": r["pins"], "pinned_seconds": round(pinned), "pinned_now": r["pinned_since"] is not None})
    key = {"gmv": lambda p: (p["gmv_cents"], p["units"]), "conversion": lambda p: (p["conversion"] or -1.0, p["orders"]),
           "opens": lambda p: (p["opens"], p["orders"]), "units": lambda p: (p["units"], p["gmv_cents"])}[sort]
    return sorted(out, key=lambda p: (*key(p), -p["product_id"]), reverse=True)


async def order_rows(app: web.Application, session: dict[str, Any]) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT o.id, o.created_at, v.nickname, o.product_id, p.title AS product_title, o.quantity, o.unit_price_cents,"
        " o.amount_cents, o.currency, o.status, o.first_time, o.label FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
        " LEFT JOIN products p ON p.id = o.product_id WHERE o.session_id = ? ORDER BY o.id", (session["id"],))
    return [{**dict(r), "created_at": iso(r["created_at"]), "first_time": bool(r["first_time"]), "nickname": r["nickname"] or "viewer"}
            for r in rows]


async def comment_rows(app: web.Application, session: dict[str, Any]) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT id, created_at, nickname, body, user_id IS NOT NULL AS staff, parent_id, hidden, pinned FROM comments"
        " WHERE event_id IS ? AND session_id = ? ORDER BY id", (session["event_id"], session["id"]))
    return [{**dict(r), "created_at": iso(r["created_at"]), "staff": bool(r["staff"]), "hidden": bool(r["hidden"]),
             "pinned": bool(r["pinned"])} for r in rows]


async def top_commenters(app: web.Application, session: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT sv.viewer_id, sv.comments, v.nickname FROM session_viewers sv LEFT JOIN viewers v ON v.id = sv.viewer_id"
        " WHERE sv.session_id = ? AND sv.comments > 0 ORDER BY sv.comments DESC, sv.viewer_id LIMIT ?", (session["id"], limit))
    return [{"nickname": r["nickname"] or "viewer", "comments": r["comments"]} for r in rows]


# --------------------------------------------------------------------------------------------- markers

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def activity_text(spec: EventSpec, data: dict[str, Any]) -> str:
    """A record's activity text (the console's ``LMS.activity`` templates, filled here for tooltips)."""
    if not isinstance(spec.activity, str):
        return spec.label or spec.name

    def fill(m: re.Match[str]) -> str:
        path, _, filt = m.group(1).partition("|")
        fname, _, arg = filt.partition(":")
        parent: Any = None
        value: Any = data
        for key in path.split("."):
            parent = value
            value = value.get(key) if isinstance(value, dict) else None
        if fname == "if":
            return arg if value else ""
        if fname == "money" and isinstance(value, int):
            return money(value, (parent or {}).get("currency") or "USD")
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(fill, spec.activity)


def marker_specs(app: web.Application) -> list[EventSpec]:
    """The activity kinds drawn as markers: persisted activities that are not the audience's own actions."""
    return [s for s in app[BUS].specs.values()
            if s.activity and s.persist and s.name not in AUDIENCE_ACTIONS and "viewer_id" not in s.fields]


async def markers(app: web.Application, session: dict[str, Any], limit: int = 300) -> list[dict[str, Any]]:
    """The session's markers, in time order: ``{at, offset, kind, icon, label, text}``."""
    specs = {s.name: s for s in marker_specs(app)}
    out: list[dict[str, Any]] = []
    if specs:
        import json

        rows = await app[DB].fetchall(
            f"SELECT name, data, created_at FROM activity WHERE session_id = ? AND name IN ({', '.join('?' * len(specs))})"
            " ORDER BY created_at LIMIT ?", (session["id"], *specs, limit))
        for r in rows:
            spec = specs[r["name"]]
            out.append({"at": r["created_at"], "offset": r["created_at"] - session["started_at"], "kind": r["name"].split(".")[0],
                        "icon": spec.icon or "◆", "label": spec.label or spec.name, "text": activity_text(spec, json.loads(r["data"]))})
    for f in await app[DB].fetchall("SELECT created_at, text, kind, level FROM prompter_findings WHERE session_id = ?"
                                    " ORDER BY created_at LIMIT ?", (session["id"], limit)):
        out.append({"at": f["created_at"], "offset": f["created_at"] - session["started_at"], "kind": "finding",
                    "icon": "⚠" if f["kind"] == "violation" else "💡", "label": f"Prompter {f['kind']}", "text": f["text"]})
    return sorted(out, key=lambda m: m["at"])[:limit]


# --------------------------------------------------------------------------------------------- figures and charts

#: figures compared with the previous sessions: (key, label, money?)
COMPARED = (("gmv_cents", "GMV", True), ("orders", "Orders", False), ("items_sold", "Items sold", False),
            ("buyers", "Buyers", False), ("peak_viewers", "Peak viewers", False), ("unique_viewers", "Unique viewers", False),
            ("avg_watch_seconds", "Avg watch time", False), ("comments", "Comments", False))


async def figures(app: web.Application, session: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """The selling and audience figures of a session (:mod:`lmserver.figures`), plus average order value."""
    out = await session_figures(app[DB], session["id"], default_currency=app[CONFIG].catalog.default_currency)
    out.update(await audience_figures(app[DB], session, now=now))
    out["aov_cents"] = round(out["gmv_cents"] / out["orders"]) if out["orders"] else 0
    return out


async def comparison(app: web.Application, session: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """This session against the average of the previous five (not practice): ``{sessions, rows}``."""
    prev = [as_dict(r) for r in await app[DB].fetchall(
        "SELECT * FROM sessions WHERE practice = 0 AND started_at < ? AND id != ? ORDER BY started_at DESC LIMIT 5",
        (session["started_at"], session["id"]))]
    figs = [await figures(app, p) for p in prev]
    rows = []
    for key, label, is_money in COMPARED:
        avg = sum(f[key] for f in figs) / len(figs) if figs else None
        value = current[key]
        delta = None if avg is None else value - avg
        rows.append({"key": key, "label": label, "money": is_money, "value": value, "average": avg, "delta": delta,
                     "percent": round(100.0 * delta / avg) if delta is not None and avg else None,
                     "direction": None if delta is None else ("up" if delta > 0.0005 else "down" if delta < -0.0005 else "same"),
                     "previous": [f[key] for f in figs]})
    return {"sessions": [{"id": p["id"], "started_at": p["started_at"], "url": f"/sessions/{p['id']}"} for p in prev], "rows": rows,
            "by_key": {r["key"]: r for r in rows} if prev else {}}


def charts(minutes: list[dict[str, Any]], marks: list[dict[str, Any]], span: float, currency: str) -> dict[str, Any]:
    """The minute charts (viewers, comments, GMV) as SVG, with the markers."""
    mk = [Marker(m["offset"], m["kind"], m["icon"], m["text"]) for m in marks]

    def pts(key: str, tip: Any) -> list[Point]:
        return [Point(60.0 * m["minute"], float(m[key]), tip(m)) for m in minutes]

    def when(m: dict[str, Any]) -> str:
        return time_label(60 * m["minute"], span) + "–" + time_label(60 * (m["minute"] + 1), span)

    return {
        "viewers": time_chart(pts("avg_viewers", lambda m: f"{when(m)} · {m['avg_viewers']:g} viewers on average, peak {m['peak_viewers']}"
                                                            f" · {m['new_viewers']} new"),
                              span, label="Viewers per minute (average)", markers=mk, chart_id="viewers-chart"),
        "comments": time_chart(pts("comments", lambda m: f"{when(m)} · {m['comments']} comments"), span,
                               label="Comments per minute", kind="bar", markers=mk, chart_id="chart-comments"),
        "gmv": time_chart(pts("gmv_cents", lambda m: f"{when(m)} · {money(m['gmv_cents'], currency)} · {m['orders']} orders,"
                                                      f" {m['items']} items"),
                          span, label="GMV per minute", kind="bar", markers=mk, chart_id="chart-gmv",
                          fmt=lambda v: money(int(v), currency).rsplit(".", 1)[0] if v else "0"),
    }


async def report(app: web.Application, session: dict[str, Any], *, sort: str = "gmv", compare: bool = True,
                 stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the board and the recap draw (the JSON API answers it without the charts). ``stats``: the
    session's :func:`lmserver.sessionstats.session_stats` when the caller has it (its figures are not read twice)."""
    now = time.time()
    if stats is not None:
        figs = {k: stats[k] for k in (*FIGURES, *AUDIENCE_FIGURES)}
        figs["aov_cents"] = round(figs["gmv_cents"] / figs["orders"]) if figs["orders"] else 0
    else:
        figs = await figures(app, session, now=now)
    minutes = await minute_table(app, session, now=now)
    marks = await markers(app, session)
    span = max(_end(session, now) - session["started_at"], 60.0 * len(minutes), 60.0)
    live = app[LIVE].current
    return {
        "session": {"id": session["id"], "event_id": session["event_id"], "started_at": session["started_at"],
                    "ended_at": session["ended_at"], "practice": bool(session["practice"]),
                    "live": live is not None and live.id == session["id"], "duration": _end(session, now) - session["started_at"]},
        "figures": figs,
        "funnel": funnel(figs),
        "minutes": minutes,
        "products": await product_table(app, session, sort=sort, now=now),
        "sort": sort,
        "markers": marks,
        "top_commenters": await top_commenters(app, session),
        "plugin_figures": stats["figures"] if stats is not None else await plugin_figures(app, session),
        "comparison": await comparison(app, session, figs) if compare else None,
        "charts": charts(minutes, marks, span, figs["currency"]),
    }


def funnel(figs: dict[str, Any]) -> list[dict[str, Any]]:
    """viewers → product opens → buyers, each with its share of the first step."""
    steps = [("Viewers", figs["unique_viewers"]), ("Opened a product", figs["openers"]), ("Bought", figs["buyers"])]
    top = steps[0][1]
    return [{"label": label, "value": v, "percent": round(100.0 * v / top) if top else None} for label, v in steps]


async def analytics_ctx(app: web.Application) -> Any:
    app[OPENS] = {}
    yield
