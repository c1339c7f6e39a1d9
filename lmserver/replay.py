"""Replays of past sessions: the synced timeline, the downloads, publishing, the shoppable public replay.

A session's video is its recording parts (:mod:`lmserver.recordings`, one part per stretch of the session;
a restart starts a new part) played one after the other. Every moment of the session is placed on that
video by :func:`video_offset`: a wall-clock time ``T`` inside part ``p`` is ``p``'s start in the replay
(the earlier parts' durations added up) plus ``T - p.started_at``; a moment between two parts (the server
was down) is placed at the start of the next part; without a recording, ``T - session.started_at``.

Routes (the session is ``{sid}``; "published" means ``sessions.replay_published = 1`` on a session that is
not practice):

- ``GET /api/sessions/{sid}/timeline``: what happened, in order, each item with its wall time ``at`` and
  its ``offset`` in the video: comments and replies (hidden ones with their reason), orders, and every bus
  event declared as an activity (:mod:`lmserver.busevents`: product and comment pins, and the plugins'
  own, found by kind, never by name). Staff with ``console.view``; anyone when published, then as
  viewers see it (no hidden comments, no orders, activities reduced to their public fields, staff-only
  activities left out; ``?view=public`` asks for that view as staff).
- ``GET /api/sessions/{sid}/comments.csv`` and ``.json``: the comments, :data:`COMMENT_COLUMNS`; staff, or
  anyone when published (without the hidden ones). ``GET /api/sessions/{sid}/orders.csv``:
  :data:`ORDER_COLUMNS`, staff only, published or not. Every CSV goes through :mod:`lmserver.csvexport`.
- ``POST`` / ``DELETE /api/sessions/{sid}/publish``: publish or unpublish the replay. Needs ``show.run``
  (publishing is the host's decision about the show, like going live; moderators run the show too);
  refused for practice sessions (a rehearsal is never public) and while the session is still live.
- ``GET /e/{event}/replay/{sid}``: the public replay page: the video, the comments appearing in time
  (read-only), the product pinned at that moment, the shopping bag with Buy while stock lasts. 404 for a
  session that is not published, is practice or is not the event's.
- ``POST /api/e/{id}/replay/{sid}/orders``: buy from a published replay. The live page's order path
  (:func:`lmserver.orders.place_order`, Idempotency-Key included) with ``replay_of``: the order carries
  the replayed session and ``label = 'replay'``, and :mod:`lmserver.figures` counts it apart from the
  LIVE's GMV.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from . import auth, bus, orders, recordings, validate
from .appkeys import BUS, CONFIG, DB, LIVE, SECRET
from .busevents import CORE_EVENTS, PUBLIC_COMMENT, PUBLIC_PRODUCT, activity_kinds
from .csvexport import csv_response
from .errors import Conflict, NotFound
from .events import find_event
from .openapi import doc
from .templating import as_dict, render
from .views import json_body

routes = web.RouteTableDef()

#: the columns of the comments download (CSV and JSON): ``time`` is ISO 8601 UTC, ``offset`` the seconds
#: into the replay video, ``reply_to`` the id of the comment answered (empty for a comment), ``staff`` a
#: studio reply, ``hidden_reason`` why moderation hid it
COMMENT_COLUMNS = ("id", "time", "offset", "nickname", "text", "reply_to", "staff", "hidden", "hidden_reason")
#: the columns of the orders download (amounts in the currency's units, e.g. 12.50); ``label`` is
#: ``replay`` for an order placed from the published replay (or a plugin's label, e.g. a prize)
ORDER_COLUMNS = ("id", "time", "offset", "nickname", "product_id", "product", "quantity", "unit_price", "amount",
                 "currency", "status", "first_time", "label")
#: activities that the timeline draws from their own tables (comments, orders) or leaves out (noise)
NOT_FROM_ACTIVITY = frozenset({"comment.created", "comment.held", "order.created", "viewer.joined"})
#: moments shown as markers on the replay's time bar (besides orders and every activity a plugin declares)
CORE_MARKERS = frozenset({"product.pinned", "comment.pinned"})
#: at most this many items in one timeline (the newest are dropped; ``truncated`` says so)
MAX_ITEMS = 20000


# --------------------------------------------------------------------------------------------- sessions


async def session_row(app: web.Application, sid_text: str) -> dict[str, Any]:
    sid = validate.ascii_int(sid_text)
    row = await app[DB].fetchone("SELECT * FROM sessions WHERE id = ?", (sid,)) if sid is not None else None
    if row is None:
        raise NotFound(f"there is no session {sid_text}")
    return as_dict(row)


def is_published(session: dict[str, Any]) -> bool:
    """Viewers may see this session's replay: published and not practice."""
    return bool(session.get("replay_published")) and not session["practice"]


async def staff_or_published(request: web.Request, session: dict[str, Any]) -> bool:
    """True when the caller is staff with ``console.view``; False for anyone else on a published replay;
    otherwise 401/403 as :func:`lmserver.auth.require` (an unpublished replay is staff-only)."""
    if is_published(session):
        user = await auth.staff_user(request)
        return user is not None and user.can("console.view")
    await auth.require(request, "console.view")
    return True


async def parts(app: web.Application, session_id: int) -> list[dict[str, Any]]:
    """The session's recording parts in order (see :func:`lmserver.recordings.session_parts`)."""
    return list(await recordings.session_parts(app[DB], session_id))


def video_offset(at: float, parts_: list[dict[str, Any]], session_started: float) -> float:
    """Seconds into the replay video of the wall-clock time ``at`` (see the module doc)."""
    if not parts_:
        return round(max(0.0, at - session_started), 3)
    before = 0.0
    for i, part in enumerate(parts_):
        start = float(part["started_at"] or session_started)
        duration = float(part["duration"] or 0.0)
        if at < start:
            return round(before, 3)
        if at <= start + duration or i == len(parts_) - 1:
            return round(before + at - start, 3)
        before += duration
    return round(before, 3)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------- timeline


async def _comments(app: web.Application, session_id: int, public: bool) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT id, parent_id, nickname, body, user_id, hidden, hidden_reason, pinned, created_at FROM comments"
        f" WHERE session_id = ? {'AND hidden = 0' if public else ''} ORDER BY created_at, id", (session_id,))
    return [dict(r) for r in rows]


async def _orders(app: web.Application, session_id: int) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        f"SELECT {orders.ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
        " JOIN products p ON p.id = o.product_id WHERE o.session_id = ? AND o.status IN ('placed', 'pending_payment')"
        " ORDER BY o.created_at, o.id", (session_id,))
    return [orders.order_json(r) for r in rows]


def _kinds(app: web.Application, public: bool) -> list[dict[str, Any]]:
    specs = app[BUS].specs
    return [k for k in activity_kinds(specs.values()) if k["name"] not in NOT_FROM_ACTIVITY
            and (not public or specs[k["name"]].audience == "public")]


async def timeline(app: web.Application, session: dict[str, Any], *, public: bool) -> dict[str, Any]:
    """The session's timeline (see the module doc): ``{session, parts, kinds, items, truncated}``."""
    sid, started = session["id"], session["started_at"]
    parts_ = await parts(app, sid)
    kinds = _kinds(app, public)
    specs = app[BUS].specs
    core = {spec.name for spec in CORE_EVENTS}
    items: list[dict[str, Any]] = []

    def place(at: float, item: dict[str, Any]) -> None:
        items.append({"at": at, "offset": video_offset(at, parts_, started), **item})

    for c in await _comments(app, sid, public):
        item = {"kind": "comment", "id": c["id"], "nickname": c["nickname"], "body": c["body"], "parent_id": c["parent_id"],
                "staff": c["user_id"] is not None, "pinned": bool(c["pinned"])}
        if not public:
            item.update(hidden=bool(c["hidden"]), hidden_reason=c["hidden_reason"])
        place(c["created_at"], item)
    if not public:
        for o in await _orders(app, sid):
            place(o["created_at"], {"kind": "order", "id": o["id"], "marker": True, "order": {
                k: o[k] for k in ("id", "nickname", "product_id", "product_title", "quantity", "unit_price_cents", "amount_cents",
                                  "currency", "status", "first_time", "label")}})
    names = [k["name"] for k in kinds]
    if names:
        rows = await app[DB].fetchall(
            f"SELECT id, name, data, created_at FROM activity WHERE session_id = ? AND name IN ({', '.join('?' * len(names))})"
            " ORDER BY created_at, id", (sid, *names))
        hidden = {r["id"] for r in await app[DB].fetchall("SELECT id FROM comments WHERE session_id = ? AND hidden = 1", (sid,))}
        for r in rows:
            data = json.loads(r["data"])
            if public:
                comment = data.get("comment")
                if isinstance(comment, dict) and comment.get("id") in hidden:
                    continue  # e.g. a comment pinned, then hidden: its text is not public any more
                data = specs[r["name"]].project(data)
            place(r["created_at"], {"kind": "activity", "id": r["id"], "name": r["name"], "data": data,
                                    "marker": r["name"] in CORE_MARKERS or r["name"] not in core})
    items.sort(key=lambda i: (i["at"], i["kind"], i["id"]))
    truncated = len(items) > MAX_ITEMS
    public_parts = [{k: p[k] for k in ("id", "part", "started_at", "duration", "state", "url") if k in p} for p in parts_]
    return {"session": {"id": sid, "event_id": session["event_id"], "started_at": started, "ended_at": session["ended_at"],
                        "practice": bool(session["practice"]), "published": is_published(session),
                        "duration": sum(float(p["duration"] or 0) for p in parts_) if parts_
                        else (session["ended_at"] or time.time()) - started},
            "parts": public_parts if public else parts_, "kinds": kinds, "items": items[:MAX_ITEMS], "truncated": truncated}


@routes.get("/api/sessions/{sid}/timeline")
@doc("A past session's timeline for its replay: comments and replies, orders, pins and every declared activity (plugins'"
     " too), each with its wall time `at` and its `offset` (seconds) in the replay video; and the video's parts."
     " Staff (console.view); anyone when the replay is published, then without hidden comments, orders or staff-only data",
     query={"view": "'public': the published view even for staff"},
     returns="{session: {id, event_id, started_at, ended_at, practice, published, duration}, parts: [{id, part, started_at,"
     " duration, state, url}], kinds: [{name, label, icon, template}], items: [{kind: comment|order|activity, id, at, offset,"
     " marker, ...}], truncated}", tags=["replay"], permission="console.view")
async def api_timeline(request: web.Request) -> web.Response:
    session = await session_row(request.app, request.match_info["sid"])
    staff = await staff_or_published(request, session)
    public = not staff or request.query.get("view") == "public"
    return web.json_response(await timeline(request.app, session, public=public), headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------- downloads


async def comment_rows(app: web.Application, session: dict[str, Any], public: bool) -> list[dict[str, Any]]:
    parts_ = await parts(app, session["id"])
    return [{"id": c["id"], "time": iso(c["created_at"]), "offset": round(video_offset(c["created_at"], parts_, session["started_at"]), 1),
             "nickname": c["nickname"], "text": c["body"], "reply_to": c["parent_id"], "staff": c["user_id"] is not None,
             "hidden": bool(c["hidden"]), "hidden_reason": c["hidden_reason"] or ""}
            for c in await _comments(app, session["id"], public)]


def _filename(session: dict[str, Any], what: str) -> str:
    return f"session-{session['id']}-{what}"


@routes.get("/api/sessions/{sid}/comments.csv")
@doc("Download a session's comments as CSV (columns id, time, offset, nickname, text, reply_to, staff, hidden, hidden_reason;"
     " spreadsheet-safe). Staff (console.view); anyone when the replay is published (then without hidden comments)",
     returns="text/csv", tags=["replay"], content_type="text/csv", permission="console.view")
async def api_comments_csv(request: web.Request) -> web.Response:
    session = await session_row(request.app, request.match_info["sid"])
    staff = await staff_or_published(request, session)
    return csv_response(_filename(session, "comments.csv"), COMMENT_COLUMNS, await comment_rows(request.app, session, not staff))


@routes.get("/api/sessions/{sid}/comments.json")
@doc("Download a session's comments as JSON (the CSV's columns as keys). Staff (console.view); anyone when the replay is"
     " published (then without hidden comments)", returns="{session_id, comments: [{id, time, offset, nickname, text, reply_to,"
     " staff, hidden, hidden_reason}]}", tags=["replay"], permission="console.view")
async def api_comments_json(request: web.Request) -> web.Response:
    session = await session_row(request.app, request.match_info["sid"])
    staff = await staff_or_published(request, session)
    body = {"session_id": session["id"], "comments": await comment_rows(request.app, session, not staff)}
    return web.json_response(body, headers={"Content-Disposition": f'attachment; filename="{_filename(session, "comments.json")}"'})


def _units(cents: int) -> str:
    return f"{cents / 100:.2f}"


@routes.get("/api/sessions/{sid}/orders.csv")
@doc("Download a session's orders as CSV (columns id, time, offset, nickname, product_id, product, quantity, unit_price,"
     " amount, currency, status, first_time, label; replay orders have label 'replay'). Staff only (console.view), published"
     " or not", returns="text/csv", tags=["replay"], content_type="text/csv", permission="console.view")
async def api_orders_csv(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    app = request.app
    session = await session_row(app, request.match_info["sid"])
    parts_ = await parts(app, session["id"])
    rows = [{"id": o["id"], "time": iso(o["created_at"]), "offset": round(video_offset(o["created_at"], parts_, session["started_at"]), 1),
             "nickname": o["nickname"], "product_id": o["product_id"], "product": o["product_title"], "quantity": o["quantity"],
             "unit_price": _units(o["unit_price_cents"]), "amount": _units(o["amount_cents"]), "currency": o["currency"],
             "status": o["status"], "first_time": o["first_time"], "label": o["label"] or ""}
            for o in await _orders(app, session["id"])]
    return csv_response(_filename(session, "orders.csv"), ORDER_COLUMNS, rows)


# --------------------------------------------------------------------------------------------- publishing


async def set_published(app: web.Application, session: dict[str, Any], published: bool, by: str = "system") -> None:
    """Publish or unpublish; a change (not a repeat) logs ``replay.published``/``replay.unpublished`` in the same
    transaction, so webhook subscribers learn of it."""
    if published:
        if session["practice"]:
            raise Conflict("a practice session's replay cannot be published: practice is never public")
        live = app[LIVE].current
        if (live is not None and live.id == session["id"]) or session["ended_at"] is None:
            raise Conflict("this session is still live: publish its replay once the LIVE has ended")
    name = "replay.published" if published else "replay.unpublished"
    data: dict[str, Any] = {"session_id": session["id"], "by": by}
    if published:
        slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (session["event_id"],))
        data = {"session_id": session["id"], "url": _replay_url(app, slug, session["id"]), "by": by}
    spec = app[BUS].spec(name, data)
    async with app[DB].transaction() as tx:
        cur = await tx.execute("UPDATE sessions SET replay_published = ? WHERE id = ? AND replay_published != ?",
                               (int(published), session["id"], int(published)))
        activity = await bus.record(tx, spec, data, event_id=session["event_id"], session_id=session["id"]) if cur.rowcount else None
    if activity is not None:
        app[BUS].dispatch(activity)


def _replay_url(app: web.Application, slug: str | None, session_id: int) -> str | None:
    return f"/e/{slug}/replay/{session_id}" if slug else None


async def _publish_answer(app: web.Application, session_id: int) -> dict[str, Any]:
    session = await session_row(app, str(session_id))
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (session["event_id"],)) if session["event_id"] else None
    return {"session_id": session_id, "published": is_published(session),
            "url": _replay_url(app, slug, session_id) if is_published(session) else None}


@routes.post("/api/sessions/{sid}/publish")
@doc("Publish a session's replay: the event's public page offers it at /e/<event>/replay/<session>, where viewers watch"
     " and buy. Needs show.run; 409 for a practice session or one still live", returns="{session_id, published, url}",
     tags=["replay"], permission="show.run")
async def api_publish(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    session = await session_row(request.app, request.match_info["sid"])
    await set_published(request.app, session, True, user.name)
    return web.json_response(await _publish_answer(request.app, session["id"]))


@routes.delete("/api/sessions/{sid}/publish")
@doc("Unpublish a session's replay: its public page answers 404 again. Needs show.run", returns="{session_id, published, url}",
     tags=["replay"], permission="show.run")
async def api_unpublish(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    session = await session_row(request.app, request.match_info["sid"])
    await set_published(request.app, session, False, user.name)
    return web.json_response(await _publish_answer(request.app, session["id"]))


async def published_replays(app: web.Application, event_id: int) -> list[dict[str, Any]]:
    """The event's published replays, oldest first: ``[{id, started_at, ended_at, url}]`` (the public event page)."""
    rows = await app[DB].fetchall(
        "SELECT s.id, s.started_at, s.ended_at, e.slug FROM sessions s JOIN events e ON e.id = s.event_id"
        " WHERE s.event_id = ? AND s.replay_published = 1 AND s.practice = 0 ORDER BY s.started_at", (event_id,))
    return [{"id": r["id"], "started_at": r["started_at"], "ended_at": r["ended_at"], "url": _replay_url(app, r["slug"], r["id"])}
            for r in rows]


# --------------------------------------------------------------------------------------------- the public replay


async def _public_replay(app: web.Application, ident: str, sid_text: str) -> tuple[Any, dict[str, Any]]:
    """The event and its published session, or 404 (also for practice, unpublished or another event's session)."""
    event = await find_event(app[DB], ident)
    sid = validate.ascii_int(sid_text)
    row = await app[DB].fetchone("SELECT * FROM sessions WHERE id = ? AND event_id = ?", (sid, event["id"])) if sid is not None else None
    if row is None or not is_published(as_dict(row)):
        raise NotFound("this replay is not available: it was never published, or it was taken down")
    return event, as_dict(row)


@routes.get("/e/{ident}/replay/{sid}")
async def replay_page(request: web.Request) -> web.StreamResponse:
    from .viewer import bag

    app = request.app
    event, session = await _public_replay(app, request.match_info["ident"], request.match_info["sid"])
    carrier = web.Response()
    vid = await auth.ensure_viewer(request, carrier)
    user = await auth.staff_user(request)
    data = {"event": {"id": event["id"], "slug": event["slug"], "title": event["title"]},
            "session_id": session["id"], "bag": await bag(app, event["id"]),
            "max_quantity": app[CONFIG].live.max_order_quantity, "public_comment": list(PUBLIC_COMMENT),
            "public_product": list(PUBLIC_PRODUCT)}
    page = await render(request, "public/replay.html", {
        "event": as_dict(event), "session": session, "data": data,
        "page_csrf": user.csrf if user else auth.viewer_csrf(app[SECRET], vid)})
    for morsel in carrier.cookies.values():
        page.cookies[morsel.key] = morsel
    page.headers["Cache-Control"] = "no-store"
    return page


@routes.post("/api/e/{id}/replay/{sid}/orders")
@doc("Buy a product of the event's shopping bag from its published replay, while stock lasts: the live page's order path"
     " (same checks, stock, Idempotency-Key header), the order labelled 'replay' and counted apart from the LIVE's GMV."
     " 404 when the replay is not published", body={"product_id": "integer: the product",
     "quantity": "integer: 1 to live.max_order_quantity, at most the stock"},
     returns="{order: {id, product_id, product_title, quantity, unit_price_cents, amount_cents, currency, status, label}}",
     tags=["viewer", "replay"])
async def api_replay_buy(request: web.Request) -> web.Response:
    from .viewer import current_viewer

    viewer = await current_viewer(request)
    event, session = await _public_replay(request.app, request.match_info["id"], request.match_info["sid"])
    key = orders.idempotency_key(request)
    data = await json_body(request)
    order = await orders.place_order(request.app, viewer, event["id"], validate.integer(data, "product_id"),
                                     validate.as_int(data.get("quantity", 1), "quantity", min=None), idempotency_key=key,
                                     replay_of=session["id"])
    order.pop("viewer_id", None)
    if isinstance(order, orders.ReplayedOrder):
        return web.json_response({"order": order}, status=200, headers={"Idempotent-Replayed": "true"})
    return web.json_response({"order": order}, status=201)
