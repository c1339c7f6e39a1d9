"""The viewer page of a LIVE event and the viewer's APIs: nickname, comment, follow, gift, buy.

The events service renders ``/e/{slug_or_id}``; while the event is live it calls :func:`viewer_page`.
The page plays the program over WHEP, shows the pinned product and the shopping bag with Buy buttons,
the pinned comment and the comments, and follows the bus over ``/ws/viewer?event=ID``.

Viewers are anonymous (signed ``lms_viewer`` cookie). Every POST here needs that cookie and its CSRF
token (``X-CSRF-Token``, embedded in the page); none of them is a staff endpoint, and a viewer cookie
opens no staff endpoint.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from . import auth, comments, orders, validate
from .appkeys import BUS, CONFIG, DB, LIVE, SECRET
from .busevents import PUBLIC_COMMENT, PUBLIC_PRODUCT
from .catalog import product_json
from .errors import BadRequest, Conflict, Unauthorized
from .events import find_event
from .openapi import doc
from .panels import render_panels
from .templating import as_dict, render
from .views import json_body

routes = web.RouteTableDef()

#: the gifts a viewer can send: id → (label, emoji). Gifts are activities, never GMV.
GIFTS: dict[str, tuple[str, str]] = {
    "rose": ("Rose", "🌹"),
    "heart": ("Heart", "💖"),
    "clap": ("Applause", "👏"),
    "star": ("Star", "⭐"),
    "crown": ("Crown", "👑"),
}
NICKNAME_MAX = 24


def gifts_json() -> list[dict[str, str]]:
    return [{"id": k, "label": label, "emoji": emoji} for k, (label, emoji) in GIFTS.items()]


async def bag(app: web.Application, event_id: int) -> list[dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT p.* FROM event_products ep JOIN products p ON p.id = ep.product_id WHERE ep.event_id = ? AND p.archived = 0"
        " ORDER BY ep.position, ep.added_at", (event_id,))
    return [_public_product(product_json(r)) for r in rows]


def _public_product(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p.get(k) for k in PUBLIC_PRODUCT}


def _public_comment(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c.get(k) for k in PUBLIC_COMMENT}  # the same fields as on the viewer socket (no viewer ids)


async def live_state(app: web.Application, event: dict[str, Any]) -> dict[str, Any]:
    """What a viewer page needs to (re)draw itself: live session, pinned product, bag, comments."""
    db = app[DB]
    session = app[LIVE].current
    # a practice session is nobody's business but the staff's: for viewers the event is simply not live
    live = session is not None and session.event_id == event["id"] and not session.practice
    pinned_product = None
    if live and session is not None:
        pid = await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (session.id,))
        if pid is not None:
            row = await db.fetchone("SELECT * FROM products WHERE id = ?", (pid,))
            pinned_product = _public_product(product_json(row)) if row else None
    last_ended = await db.fetchval("SELECT MAX(ended_at) FROM sessions WHERE event_id = ? AND practice = 0", (event["id"],))
    # the session whose comments the chat shows first (earlier ones go behind "previous sessions")
    current_sid = session.id if live and session is not None else await db.fetchval(
        "SELECT id FROM sessions WHERE event_id = ? AND practice = 0 ORDER BY started_at DESC, id DESC LIMIT 1", (event["id"],))
    pinned = await comments.pinned_comment(app, event["id"])
    return {
        "event": {"id": event["id"], "title": event["title"], "slug": event["slug"], "starts_at": event["starts_at"],
                  "duration_minutes": event["duration_minutes"], "description": event.get("description", "")},
        "live": bool(live),
        "session": {"id": session.id, "started_at": session.started_at} if live and session is not None else None,
        "ended_at": None if live else last_ended,
        "current_session_id": current_sid,
        "replay_url": None if live else await replay_url(app, event),
        "pinned_product": pinned_product,
        "bag": await bag(app, event["id"]),
        "pinned_comment": _public_comment(pinned) if pinned and not pinned["practice"] else None,
        "comments": [_public_comment(c) for c in await comments.public_comments(app, event["id"], limit=80) if not c["practice"]],
        "followers": await db.fetchval("SELECT COUNT(*) FROM follows", default=0),
        "gifts": gifts_json(),
        "max_quantity": app[CONFIG].live.max_order_quantity,
        "comment_max_length": app[CONFIG].live.comment_max_length,
    }


async def replay_url(app: web.Application, event: dict[str, Any]) -> str | None:
    """The public replay of the event's latest published session (``sessions.replay_published``, when the replay
    feature's migration is there), else None."""
    db = app[DB]
    columns = {r["name"] for r in await db.fetchall("PRAGMA table_info(sessions)")}
    if "replay_published" not in columns:
        return None
    sid = await db.fetchval("SELECT id FROM sessions WHERE event_id = ? AND practice = 0 AND replay_published"
                            " ORDER BY started_at DESC, id DESC LIMIT 1", (event["id"],))
    return None if sid is None else f"/e/{event['slug']}/replay/{sid}"


async def viewer_info(app: web.Application, vid: str | None) -> dict[str, Any]:
    if vid is None:
        return {"id": None, "nickname": None, "following": False}
    row = await app[DB].fetchone("SELECT v.nickname, f.viewer_id AS follows FROM viewers v LEFT JOIN follows f ON f.viewer_id = v.id"
                                 " WHERE v.id = ?", (vid,))
    return {"id": vid, "nickname": row["nickname"] if row else None, "following": bool(row and row["follows"])}


async def viewer_page(request: web.Request, event: dict[str, Any]) -> web.Response:
    """Render the live viewer page of ``event`` (a dict of the event's columns)."""
    app = request.app
    carrier = web.Response()
    vid = await auth.ensure_viewer(request, carrier)
    user = await auth.staff_user(request)
    state = await live_state(app, event)
    widgets = await render_panels(request, "viewer_widgets", event, {"viewer_id": vid})
    page = await render(request, "viewer/page.html", {
        "event": event, "state": state, "viewer": await viewer_info(app, vid), "widgets": widgets,
        # a logged-in staff member's browser is CSRF-checked with the staff token, a viewer's with the viewer token
        "page_csrf": user.csrf if user else auth.viewer_csrf(app[SECRET], vid),
        # the HLS fallback's playlist ([media] hls), None when it is off
        "hls_url": f"/hls/{event['id']}/index.m3u8" if app[CONFIG].media.hls else None,
    })
    for morsel in carrier.cookies.values():
        page.cookies[morsel.key] = morsel
    page.headers["Cache-Control"] = "no-store"
    return page


# --------------------------------------------------------------------------------------------- viewer APIs


async def current_viewer(request: web.Request) -> dict[str, Any]:
    """The viewer of this request (from the signed cookie); 401 without one."""
    vid = auth.viewer_id(request)
    row = await request.app[DB].fetchone("SELECT id, nickname, blocked FROM viewers WHERE id = ?", (vid,)) if vid else None
    if row is None:
        raise Unauthorized("open the event's page first: it gives this browser its viewer identity")
    return {"id": row["id"], "nickname": row["nickname"], "blocked": bool(row["blocked"])}


def _event_id(request: web.Request) -> int:
    return validate.path_int(request)


@routes.get("/api/e/{id}/state")
@doc("The viewer page's state: live or not, pinned product, shopping bag with stock, pinned comment, recent comments, "
     "followers, gifts; and this viewer (nickname, following, csrf_token; the first call sets the viewer cookie)", returns="{event, live, session, ended_at, current_session_id, "
     "replay_url, pinned_product, bag, pinned_comment, comments, followers, gifts, max_quantity, viewer}", tags=["viewer"])
async def api_state(request: web.Request) -> web.Response:
    app = request.app
    event = as_dict(await find_event(app[DB], _event_id(request)))
    state = await live_state(app, event)
    response = web.json_response({}, headers={"Cache-Control": "no-store"})
    vid = await auth.ensure_viewer(request, response)
    state["viewer"] = {**await viewer_info(app, vid), "csrf_token": auth.viewer_csrf(app[SECRET], vid)}
    response.text = json.dumps(state)
    return response


@routes.post("/api/viewer/nickname")
@doc("Choose this viewer's nickname (once)", body={"nickname": f"string: 1–{NICKNAME_MAX} characters"}, returns="{viewer}",
     tags=["viewer"])
async def api_nickname(request: web.Request) -> web.Response:
    viewer = await current_viewer(request)
    name = comments.clean_text((await json_body(request)).get("nickname"), "the nickname", NICKNAME_MAX).replace("\n", " ")
    if viewer["nickname"]:
        if viewer["nickname"] == name:
            return web.json_response({"viewer": {"id": viewer["id"], "nickname": name}})
        raise Conflict(f"you already chose a nickname: {viewer['nickname']}")
    async with request.app[DB].transaction() as tx:
        cur = await tx.execute("UPDATE viewers SET nickname = ? WHERE id = ? AND nickname IS NULL", (name, viewer["id"]))
        if cur.rowcount != 1:
            raise Conflict("you already chose a nickname")
    return web.json_response({"viewer": {"id": viewer["id"], "nickname": name}})


@routes.post("/api/e/{id}/comments")
@doc("Post a comment on the live event (needs a nickname; rate- and length-limited: live.comment_rate_seconds, "
     "live.comment_max_length)", body={"body": "string: the comment",
                                       "product_id": "integer, optional: the product of the bag asked about (its pinned card's Ask button)"},
     returns="{comment}", tags=["viewer"])
async def api_comment(request: web.Request) -> web.Response:
    viewer = await current_viewer(request)
    data = await json_body(request)
    about = validate.integer(data, "product_id", required=False)
    comment = await comments.create_viewer_comment(request.app, viewer, _event_id(request), data.get("body"), about)
    # a held comment looks sent to its author (as on every platform); only staff know it is hidden
    return web.json_response({"comment": comments.public_json({**comment, "hidden": False})}, status=201)


@routes.post("/api/e/{id}/follow")
@doc("Follow the host (once per viewer; following again changes nothing)", returns="{following: true, followers, already}",
     tags=["viewer"])
async def api_follow(request: web.Request) -> web.Response:
    app = request.app
    viewer = await current_viewer(request)
    event_id = _event_id(request)
    await find_event(app[DB], event_id)
    ids = app[LIVE].tags(event_id)
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT OR IGNORE INTO follows (viewer_id, session_id, created_at) VALUES (?, ?, ?)",
                               (viewer["id"], ids["session_id"], time.time()))
        new = cur.rowcount == 1
    followers = await app[DB].fetchval("SELECT COUNT(*) FROM follows", default=0)
    if new:
        await app[BUS].publish("viewer.followed", {"viewer_id": viewer["id"], "nickname": viewer["nickname"] or "viewer",
                                                   "followers": followers}, **ids)
    return web.json_response({"following": True, "followers": followers, "already": not new})


@routes.post("/api/e/{id}/gifts")
@doc("Send a gift from the fixed set (an activity, never GMV); rate-limited like comments",
     body={"gift": "string: one of " + ", ".join(GIFTS)}, returns="{gift: {id, label, emoji}}", tags=["viewer"])
async def api_gift(request: web.Request) -> web.Response:
    app = request.app
    viewer = await current_viewer(request)
    event_id = _event_id(request)
    gift = validate.text(await json_body(request), "gift", max_len=40)
    if gift not in GIFTS:
        raise BadRequest(f"unknown gift {gift!r}: send one of {', '.join(GIFTS)}")
    ids = app[LIVE].tags(event_id)
    if ids["session_id"] is None:
        raise Conflict("this event is not live: gifts open when the LIVE starts")
    comments.check_rate(app, viewer["id"], "sending gifts")
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO gifts (viewer_id, session_id, gift, practice, created_at) VALUES (?, ?, ?, ?, ?)",
                         (viewer["id"], ids["session_id"], gift, int(ids["practice"]), time.time()))
    await app[BUS].publish("gift.sent", {"viewer_id": viewer["id"], "nickname": viewer["nickname"] or "viewer", "gift": gift}, **ids)
    label, emoji = GIFTS[gift]
    return web.json_response({"gift": {"id": gift, "label": label, "emoji": emoji}}, status=201)


@routes.post("/api/e/{id}/orders")
@doc("Buy a product of the live event's shopping bag: stock is decremented atomically (409 'sold out' or 'only N left')."
     " Optional header Idempotency-Key (1–128 printable ASCII, one per purchase): a retry with the same key answers"
     " 200 with the first order (header Idempotent-Replayed: true); the same key for another purchase is 422",
     body={"product_id": "integer: the product", "quantity": "integer: 1 to live.max_order_quantity, at most the stock",
           "offer": "string: optional, 1–100 characters: the deal the buyer accepts (a plugin's offer id, e.g. \"<plugin>:<id>\"); a plugin refuses it once the deal is over"},
     returns="{order: {id, product_id, product_title, quantity, unit_price_cents, amount_cents, currency, status, first_time, practice}}",
     tags=["viewer"])
async def api_buy(request: web.Request) -> web.Response:
    viewer = await current_viewer(request)
    key = orders.idempotency_key(request)
    data = await json_body(request)
    order = await orders.place_order(request.app, viewer, _event_id(request), validate.integer(data, "product_id"),
                                     validate.as_int(data.get("quantity", 1), "quantity", min=None), idempotency_key=key,
                                     offer=validate.text(data, "offer", max_len=100) or None)
    order.pop("viewer_id", None)
    if isinstance(order, orders.ReplayedOrder):
        return web.json_response({"order": order}, status=200, headers={"Idempotent-Replayed": "true"})
    return web.json_response({"order": order}, status=201)
