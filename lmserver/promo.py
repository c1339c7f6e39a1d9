"""Promotion: each event's public page, registrations, QR codes, calendar files and the studio's public home.

``/e/<slug-or-id>`` shows, by the clock and the live state:

- before the LIVE (or while its window is open but nothing streams): the registration page — nickname
  and optional email (with ``[email]`` set, reminders are e-mailed: :mod:`lmserver.events.reminders`;
  without, the reminder is the ``.ics`` file's alarm, which the page keeps offering either way, and the page itself, which shows a "starting in N minutes" banner in the ready
  window and turns into the viewer page when the LIVE starts), the count of registrations, a countdown;
- while a non-practice session of the event is streaming: the viewer page (``lmserver.viewer``);
- after the event: the "LIVE ended" page, listing the event's sessions (replays come with a later issue).

QR codes (PNG, SVG) are made locally with segno; ``.ics`` files follow RFC 5545. Events marked
"recommend" are linked from the studio's public pages until their end.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from typing import Any

import segno
from aiohttp import web

from . import auth, validate
from .appkeys import BUS, CONFIG, DB, LIVE, SECRET
from .errors import BadRequest, Conflict
from .events import ends_at, event_json, find_event
from .openapi import doc
from .replay import published_replays
from .sessionstats import event_sessions
from .templating import render, utc
from .viewer import viewer_page
from .views import json_body, public_base

routes = web.RouteTableDef()

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
QR_SCALE = 10
QR_BORDER = 4


def event_url(request: web.Request, row: Any) -> str:
    return f"{public_base(request)}/e/{row['slug']}"


def make_qr(url: str) -> segno.QRCode:
    return segno.make(url, error="m", micro=False)


def qr_png(url: str, scale: int = QR_SCALE) -> bytes:
    buf = io.BytesIO()
    make_qr(url).save(buf, kind="png", scale=scale, border=QR_BORDER)
    return buf.getvalue()


def qr_svg(url: str, scale: int = QR_SCALE) -> bytes:
    buf = io.BytesIO()
    make_qr(url).save(buf, kind="svg", scale=scale, border=QR_BORDER, title=url)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- calendar


def _ics_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")


def _ics_fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 sequence."""
    raw = line.encode()
    if len(raw) <= 75:
        return line
    parts, cur = [], b""
    for ch in line:
        b = ch.encode()
        if len(cur) + len(b) > (75 if not parts else 74):
            parts.append(cur.decode())
            cur = b""
        cur += b
    parts.append(cur.decode())
    return "\r\n ".join(parts)


def _ics_time(ts: float) -> str:
    when = utc(ts) or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)  # a bad stored time must not break the file
    return when.strftime("%Y%m%dT%H%M%SZ")


def make_ics(row: Any, url: str, studio: str, host: str, reminder_minutes: int) -> str:
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//lmserver//LIVE events//EN", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:event-{row['id']}-{row['slug']}@{host}",
        f"DTSTAMP:{_ics_time(time.time())}",
        f"DTSTART:{_ics_time(row['starts_at'])}",
        f"DTEND:{_ics_time(ends_at(row))}",
        f"SUMMARY:{_ics_escape(row['title'] + ' · LIVE at ' + studio)}",
        f"DESCRIPTION:{_ics_escape((row['description'] + chr(10) + chr(10) if row['description'] else '') + 'Watch and shop live: ' + url)}",
        f"URL:{url}",
        f"LOCATION:{_ics_escape(url)}",
        "BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{_ics_escape(row['title'] + ' starts soon')}",
        f"TRIGGER:-PT{max(reminder_minutes, 1)}M", "END:VALARM",
        "END:VEVENT", "END:VCALENDAR",
    ]
    return "\r\n".join(_ics_fold(line) for line in lines) + "\r\n"


# --------------------------------------------------------------------------------------------- queries


async def recommended_events(app: web.Application, exclude_id: int | None = None) -> list[dict[str, Any]]:
    """Events marked "recommend" whose end has not passed (the studio's public pages link to them)."""
    now = time.time()
    rows = await app[DB].fetchall(
        "SELECT * FROM events WHERE recommended = 1 AND starts_at + duration_minutes * 60 > ? AND id IS NOT ? ORDER BY starts_at",
        (now, exclude_id))
    return [event_json(app, r, now) for r in rows]


async def registration_count(db: Any, event_id: int) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM registrations WHERE event_id = ?", (event_id,)))


async def _public_context(request: web.Request, response: web.StreamResponse) -> dict[str, Any]:
    """CSRF token for the page's API calls: the staff token when staff is logged in, else the viewer's."""
    vid = await auth.ensure_viewer(request, response)
    user = await auth.staff_user(request)
    return {"viewer_id": vid, "csrf_token": user.csrf if user else auth.viewer_csrf(request.app[SECRET], vid)}


# --------------------------------------------------------------------------------------------- public pages


@routes.get("/e/{ident}")
async def event_public_page(request: web.Request) -> web.StreamResponse:
    app = request.app
    row = await find_event(app[DB], request.match_info["ident"])
    event = event_json(app, row)
    live = app[LIVE].current
    streaming = live is not None and live.event_id == row["id"] and not live.practice
    if streaming:
        return await viewer_page(request, event)
    holder = web.Response()
    ctx = await _public_context(request, holder)
    public_url = event_url(request, row)
    common = {"event": event, "public_url": public_url, "recommended": await recommended_events(app, row["id"]),
              "studio_name": app[CONFIG].server.studio_name, **ctx}
    if event["status"] == "ended" and not streaming:
        sessions = [s for s in await event_sessions(app, row["id"]) if not s["practice"]]
        response = await render(request, "public/ended.html", {**common, "sessions": sessions,
                                                                 "replays": {r["id"]: r["url"] for r in await published_replays(app, row["id"])}})
    else:
        reg = await app[DB].fetchone("SELECT nickname, email FROM registrations WHERE event_id = ? AND viewer_id = ?",
                                     (row["id"], ctx["viewer_id"]))
        response = await render(request, "public/register.html", {
            **common, "registration": dict(reg) if reg else None, "registrations": await registration_count(app[DB], row["id"]),
            "streaming": streaming, "ready_minutes": app[CONFIG].events.ready_minutes, "email_reminders": bool(app[CONFIG].email.host)})
    for cookie in holder.cookies.values():
        response.cookies[cookie.key] = cookie
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/studio")
async def studio_public_home(request: web.Request) -> web.Response:
    app = request.app
    now = time.time()
    rows = await app[DB].fetchall(
        "SELECT e.*, (SELECT COUNT(*) FROM registrations r WHERE r.event_id = e.id) AS registrations FROM events e"
        " WHERE e.starts_at + e.duration_minutes * 60 > ? ORDER BY e.starts_at LIMIT 20", (now,))
    upcoming = []
    for r in rows:
        e = event_json(app, r, now)
        e["registrations"] = r["registrations"]
        upcoming.append(e)
    past_rows = await app[DB].fetchall(
        "SELECT e.* FROM events e WHERE e.starts_at + e.duration_minutes * 60 <= ?"
        " AND EXISTS (SELECT 1 FROM sessions s WHERE s.event_id = e.id AND s.practice = 0) ORDER BY e.starts_at DESC LIMIT 6", (now,))
    return await render(request, "public/studio.html", {
        "upcoming": upcoming, "past": [event_json(app, r, now) for r in past_rows], "recommended": await recommended_events(app),
        "studio_name": app[CONFIG].server.studio_name})


QR_FORMATS = {"png": (qr_png, "image/png"), "svg": (qr_svg, "image/svg+xml")}


@routes.get(r"/e/{ident}/qr.{fmt:(png|svg)}")
async def event_qr(request: web.Request) -> web.Response:
    """The event URL's QR code as PNG or SVG; ``?download=1`` saves it as a file."""
    row = await find_event(request.app[DB], request.match_info["ident"])
    fmt = request.match_info["fmt"]
    make, content_type = QR_FORMATS[fmt]
    headers = {"Cache-Control": "public, max-age=300"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{row["slug"]}-qr.{fmt}"'
    return web.Response(body=make(event_url(request, row)), content_type=content_type, headers=headers)


@routes.get("/e/{ident}/event.ics")
async def event_ics(request: web.Request) -> web.Response:
    row = await find_event(request.app[DB], request.match_info["ident"])
    cfg = request.app[CONFIG]
    text = make_ics(row, event_url(request, row), cfg.server.studio_name, request.host.split(":")[0] or "lmserver",
                    max(cfg.events.ready_minutes, 10))
    return web.Response(text=text, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{row["slug"]}.ics"'})


# --------------------------------------------------------------------------------------------- API


@routes.post("/api/events/{id}/registrations")
@doc("Register this viewer (viewer cookie) for an upcoming event; registering again updates the nickname/email."
     " With [email] set, a registrant who gives an address is e-mailed when the event is ready (events.ready_minutes"
     " before the start) and when it goes live; without, the reminder is the event's .ics calendar file",
     body={"nickname": "string: 1–40 characters", "email": "string: optional, stored so the host can contact the viewer about this event"}, returns="{registered: true, registrations: count, nickname}",
     tags=["promotion"])
async def api_register(request: web.Request) -> web.Response:
    app = request.app
    row = await find_event(app[DB], request.match_info["id"])
    vid = auth.viewer_id(request)
    if vid is None or not await app[DB].fetchone("SELECT 1 FROM viewers WHERE id = ?", (vid,)):
        raise BadRequest("open the event's page first (it gives this browser its viewer cookie), then register")
    if time.time() >= ends_at(row):
        raise Conflict(f"the event “{row['title']}” has ended: registrations are closed")
    data = await json_body(request)
    nickname = " ".join(validate.text(data, "nickname", max_len=400).split())
    if not 1 <= len(nickname) <= 40:
        raise BadRequest("'nickname' is required: 1 to 40 characters")
    email = validate.text(data, "email", max_len=254) or None
    if email is not None and (len(email) > 254 or not EMAIL_RE.match(email)):
        raise BadRequest(f"'email' does not look like an email address: {email!r} (leave it empty to register without one)")
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("SELECT 1 FROM registrations WHERE event_id = ? AND viewer_id = ?", (row["id"], vid))
        new = await cur.fetchone() is None
        await tx.execute(
            "INSERT INTO registrations (event_id, viewer_id, nickname, email, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(event_id, viewer_id) DO UPDATE SET nickname = excluded.nickname, email = excluded.email", (row["id"], vid, nickname, email, now))
        await tx.execute("UPDATE viewers SET nickname = COALESCE(nickname, ?) WHERE id = ?", (nickname, vid))
    count = await registration_count(app[DB], row["id"])
    if new:
        await app[BUS].publish("registration.created", {"nickname": nickname, "registrations": count}, event_id=row["id"])
    return web.json_response({"registered": True, "new": new, "registrations": count, "nickname": nickname, "email": email},
                             status=201 if new else 200)


@routes.get("/api/events/{id}/registrations")
@doc("Who registered for the event", returns="{registrations: [{nickname, email, created_at}], count}", tags=["promotion"], permission="console.view")
async def api_registrations(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await find_event(request.app[DB], request.match_info["id"])
    rows = await request.app[DB].fetchall("SELECT nickname, email, created_at FROM registrations WHERE event_id = ? ORDER BY created_at", (row["id"],))
    return web.json_response({"registrations": [dict(r) for r in rows], "count": len(rows)})


__all__ = ["routes", "make_ics", "qr_png", "qr_svg", "make_qr", "recommended_events"]
