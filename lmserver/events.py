"""LIVE events: scheduling, the shopping bag, pinning, sessions inside an event, and going live.

- An event has a title, a description, a start time and a duration of 30 minutes to 13 hours. Events
  never overlap (back-to-back is fine): creating or moving one onto another is refused with 409, naming
  the other event and its time.
- Its status, from the clock and the live state: ``upcoming`` → ``ready`` (from ``events.ready_minutes``
  before its start: the console loads its products and shows a countdown; ``event.ready`` is published
  once as a reminder) → ``open`` (its window is running; not streaming) / ``live`` (a session of it is
  streaming) → ``ended``. A past event cannot be edited.
- The shopping bag: at most :data:`BAG_LIMIT` products in order, positions 1..N. Every change publishes
  ``bag.changed``; pinning (only while the event is live, one product at a time, stored in
  ``sessions.pinned_product_id``) publishes ``product.pinned`` / ``product.unpinned``.
- Going live: :func:`resolve_event` is installed as ``LiveState.resolve_event``; it picks the event a
  new session belongs to (the requested one, or the one whose window is open now), refuses a scheduled
  event before its start with the countdown, and otherwise creates a "Go LIVE now" event starting now.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import time
import unicodedata
from typing import Any, AsyncIterator

from aiohttp import web

from . import auth, validate
from .background import background
from .appkeys import BUS, CONFIG, DB, LIVE
from .catalog import product_json
from .errors import BadRequest, Conflict, NotFound
from .openapi import doc
from .templating import as_dict, datetime_utc, render
from .views import json_body, public_base

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

MIN_DURATION = 30
MAX_DURATION = 13 * 60
BAG_LIMIT = 100
#: a start time this far in the past is still accepted for a new event (clock skew, a slow form)
PAST_GRACE_SECONDS = 120

EVENT_FIELDS = {"title", "description", "starts_at", "duration_minutes"}


# --------------------------------------------------------------------------------------------- helpers


def fmt_span(seconds: float) -> str:
    """3725 → "1 h 2 min"; 75 → "1 min 15 s"; for messages."""
    s = max(int(round(seconds)), 0)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min {sec} s" if sec and m < 10 else f"{m} min"
    return f"{sec} s"


def when_text(ts: float) -> str:
    return datetime_utc(ts, "%a %d %b %Y %H:%M")


def slugify(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:48].strip("-")
    return f"{text or 'live'}-{secrets.token_hex(3)}"


def parse_time(value: Any, field: str = "starts_at") -> float:
    """UNIX seconds, or ISO 8601 (``2026-12-01T19:00:00+01:00``; without an offset it is UTC), 2000..2100."""
    return validate.as_time(value, field)


def check_duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise BadRequest(f"'duration_minutes' must be a whole number of minutes from {MIN_DURATION} to {MAX_DURATION} (13 h), got {value!r}")
    minutes = int(value)
    if minutes < MIN_DURATION:
        raise BadRequest(f"an event lasts at least {MIN_DURATION} minutes: {minutes} min is too short")
    if minutes > MAX_DURATION:
        raise BadRequest(f"an event lasts at most 13 hours ({MAX_DURATION} minutes): {fmt_span(minutes * 60)} is too long")
    return minutes


def clean_event(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    validate.reject_unknown(data, EVENT_FIELDS, "event")
    out: dict[str, Any] = {}
    if "title" in data or not partial:
        out["title"] = validate.title(data, max_len=120)
    if "description" in data:
        out["description"] = validate.description(data)
    if "starts_at" in data or not partial:
        out["starts_at"] = parse_time(data.get("starts_at"))
    if "duration_minutes" in data or not partial:
        if "duration_minutes" not in data:
            raise BadRequest(f"'duration_minutes' is required: {MIN_DURATION} to {MAX_DURATION} minutes")
        out["duration_minutes"] = check_duration(data["duration_minutes"])
    return out


def ends_at(row: Any) -> float:
    return float(row["starts_at"]) + int(row["duration_minutes"]) * 60


def event_status(row: Any, now: float, live_event_id: int | None, ready_seconds: float) -> str:
    start, end = float(row["starts_at"]), ends_at(row)
    if live_event_id is not None and live_event_id == row["id"]:
        return "live"
    if now >= end:
        return "ended"
    if now >= start:
        return "open"
    if now >= start - ready_seconds:
        return "ready"
    return "upcoming"


STATUS_LABELS = {"upcoming": "Scheduled", "ready": "Ready", "open": "On air window", "live": "LIVE", "ended": "Ended"}


def event_json(app: web.Application, row: Any, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    live = app[LIVE].current
    status = event_status(row, now, live.event_id if live else None, app[CONFIG].events.ready_minutes * 60)
    d = as_dict(row)
    d.pop("reminded_at", None)
    d["recommended"] = bool(d["recommended"])
    d["ends_at"] = ends_at(row)
    d["status"] = status
    d["status_label"] = STATUS_LABELS[status]
    d["ready"] = status in ("ready", "open", "live")
    d["editable"] = status != "ended"
    d["starts_in"] = max(float(row["starts_at"]) - now, 0.0)
    d["practice_live"] = bool(live and live.practice and live.event_id == row["id"])
    d["url"] = f"/e/{row['slug']}"
    d["console_url"] = f"/events/{row['id']}/console"
    return d


async def find_event(db: Any, ident: str | int) -> Any:
    """An event by id or slug; 404 when absent."""
    text = str(ident)
    number = validate.ascii_int(text)
    if number is not None:
        row = await db.fetchone("SELECT * FROM events WHERE id = ?", (number,))
    elif text.isdigit() or validate.has_surrogate(text) or len(text) > 200:
        row = None
    else:
        row = await db.fetchone("SELECT * FROM events WHERE slug = ?", (text,))
    if row is None:
        raise NotFound(f"event {text} does not exist (deleted, or a wrong link)")
    return row


async def _event_from_path(request: web.Request) -> Any:
    return await find_event(request.app[DB], request.match_info["id"])


async def check_overlap(db: Any, starts_at: float, duration_minutes: int, exclude_id: int | None = None) -> None:
    """409 when [start, end) overlaps another event's window (back-to-back is not an overlap)."""
    end = starts_at + duration_minutes * 60
    row = await db.fetchone(
        "SELECT * FROM events WHERE id IS NOT ? AND starts_at < ? AND starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1",
        (exclude_id, end, starts_at))
    if row is not None:
        raise Conflict(
            f"this time overlaps the event “{row['title']}” ({when_text(row['starts_at'])} – {datetime_utc(ends_at(row), '%H:%M')}): "
            "delete that event or pick another time",
            details={"event": {"id": row["id"], "title": row["title"], "starts_at": row["starts_at"], "ends_at": ends_at(row),
                               "url": f"/events/{row['id']}"}})


async def insert_event(app: web.Application, cols: dict[str, Any], user_id: int | None) -> Any:
    db = app[DB]
    await check_overlap(db, cols["starts_at"], cols["duration_minutes"])
    now = time.time()
    async with db.transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO events (slug, title, description, starts_at, duration_minutes, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (slugify(cols["title"]), cols["title"], cols.get("description", ""), cols["starts_at"], cols["duration_minutes"],
             user_id, now, now))
        event_id = cur.lastrowid
    row = await find_event(db, event_id or 0)
    await app[BUS].publish("event.created", {"event": event_json(app, row)}, event_id=row["id"])
    return row


def _live_ids(app: web.Application, event_id: int) -> dict[str, Any]:
    """Bus attribution for a change to ``event_id``: its running session, if any."""
    live = app[LIVE].current
    if live is not None and live.event_id == event_id:
        return {"event_id": event_id, "session_id": live.id, "practice": live.practice}
    return {"event_id": event_id}


# --------------------------------------------------------------------------------------------- going live


async def resolve_event(app: web.Application, requested: int | None, practice: bool) -> int | None:
    """Pick the event of a new session (installed as ``LiveState.resolve_event``); may refuse with 409."""
    db, cfg = app[DB], app[CONFIG].events
    now = time.time()
    ready_s = cfg.ready_minutes * 60
    if requested is not None:
        row = await find_event(db, requested)
        if now >= ends_at(row):
            raise Conflict(f"the event “{row['title']}” ended at {when_text(ends_at(row))}: schedule a new event or use Go LIVE now")
        if now < row["starts_at"] and not practice:
            raise Conflict(f"the event “{row['title']}” starts at {when_text(row['starts_at'])}, in {fmt_span(row['starts_at'] - now)}: "
                           "it cannot go live before its start time (practise meanwhile)",
                           details={"starts_in": row["starts_at"] - now, "event_id": row["id"]})
        return int(row["id"])
    current = await db.fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1", (now, now))
    if current is not None:
        return int(current["id"])
    nxt = await db.fetchone("SELECT * FROM events WHERE starts_at > ? ORDER BY starts_at LIMIT 1", (now,))
    if practice:
        # a rehearsal belongs to the next event when it is near (ready), else to no event
        return int(nxt["id"]) if nxt is not None and nxt["starts_at"] - now <= ready_s else None
    if nxt is not None and nxt["starts_at"] - now <= ready_s:
        raise Conflict(f"the event “{nxt['title']}” starts in {fmt_span(nxt['starts_at'] - now)} ({when_text(nxt['starts_at'])}): "
                       "go live at its start time (practise meanwhile)",
                       details={"starts_in": nxt["starts_at"] - now, "event_id": nxt["id"]})
    duration = cfg.default_duration_minutes
    if nxt is not None and nxt["starts_at"] < now + duration * 60:
        duration = int((nxt["starts_at"] - now) // 60)
        if duration < MIN_DURATION:
            raise Conflict(f"the event “{nxt['title']}” starts in {fmt_span(nxt['starts_at'] - now)}: not enough time for a "
                           f"{MIN_DURATION}-minute LIVE before it; wait for its start or move it")
    title = "LIVE " + dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%a %d %b %H:%M UTC")
    row = await insert_event(app, {"title": title, "description": "", "starts_at": now, "duration_minutes": duration}, None)
    return int(row["id"])


async def go_live_check(app: web.Application, event_id: int, practice: bool) -> dict[str, Any]:
    """Whether a go-live for this event would be accepted now, and why not."""
    if app[LIVE].current is not None:
        return {"ok": False, "message": "the studio is already live from another device: end that stream first"}
    try:
        await resolve_event_check_only(app, event_id, practice)
    except Conflict as exc:
        return {"ok": False, "message": exc.message, **(exc.details or {})}
    return {"ok": True, "message": "ready to go live"}


async def resolve_event_check_only(app: web.Application, event_id: int, practice: bool) -> None:
    row = await find_event(app[DB], event_id)
    now = time.time()
    if now >= ends_at(row):
        raise Conflict(f"the event “{row['title']}” has ended: schedule a new event or use Go LIVE now")
    if now < row["starts_at"] and not practice:
        raise Conflict(f"the event starts in {fmt_span(row['starts_at'] - now)}: it cannot go live before its start time",
                       details={"starts_in": row["starts_at"] - now})


# --------------------------------------------------------------------------------------------- reminders


async def publish_due_reminders(app: web.Application, now: float | None = None) -> list[int]:
    """Publish ``event.ready`` once for each event that entered its ready window; return their ids."""
    db = app[DB]
    now = time.time() if now is None else now
    ready_s = app[CONFIG].events.ready_minutes * 60
    rows = await db.fetchall(
        "SELECT * FROM events WHERE reminded_at IS NULL AND starts_at > ? AND starts_at - ? <= ? ORDER BY starts_at", (now, ready_s, now))
    done = []
    for row in rows:
        async with db.transaction() as tx:
            cur = await tx.execute("UPDATE events SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL", (now, row["id"]))
            claimed = cur.rowcount == 1
        if claimed:
            await app[BUS].publish("event.ready", {"event": event_json(app, row, now), "starts_in": round(row["starts_at"] - now)},
                                   event_id=row["id"])
            done.append(int(row["id"]))
    return done


async def _reminder_loop(app: web.Application) -> None:
    interval = app[CONFIG].events.reminder_check_seconds
    while True:
        try:
            await publish_due_reminders(app)
        except Exception:
            log.exception("events: publishing ready reminders failed")
        await asyncio.sleep(interval)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """Install the go-live resolver and run the reminder task (appended after the core's context)."""

    async def resolver(requested: int | None, practice: bool) -> int | None:
        return await resolve_event(app, requested, practice)

    app[LIVE].resolve_event = resolver
    try:
        async with background(_reminder_loop(app), "lmserver-event-reminders"):
            yield
    finally:
        app[LIVE].resolve_event = None


# --------------------------------------------------------------------------------------------- the bag


async def bag_rows(db: Any, event_id: int, q: str = "") -> list[Any]:
    where, params = "b.event_id = ?", [event_id]
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where += " AND (p.title LIKE ? ESCAPE '\\' OR p.sku LIKE ? ESCAPE '\\')"
        params += [like, like]
    return await db.fetchall(
        "SELECT p.*, b.position AS position FROM event_products b JOIN products p ON p.id = b.product_id"
        f" WHERE {where} ORDER BY b.position, b.added_at", params)


async def bag_ids(db: Any, event_id: int) -> list[int]:
    rows = await db.fetchall("SELECT product_id FROM event_products WHERE event_id = ? ORDER BY position, added_at", (event_id,))
    return [r["product_id"] for r in rows]


async def pinned_product_id(app: web.Application, event_id: int) -> int | None:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        return None
    return await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))


async def bag_json(app: web.Application, event_id: int, q: str = "") -> dict[str, Any]:
    db = app[DB]
    rows = await bag_rows(db, event_id, q)
    total = await db.fetchval("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (event_id,))
    live = app[LIVE].current
    products = []
    for r in rows:
        p = product_json(r)
        p["position"] = r["position"] + 1
        products.append(p)
    return {"event_id": event_id, "products": products, "count": total, "limit": BAG_LIMIT, "q": q,
            "pinned_product_id": await pinned_product_id(app, event_id),
            "live": bool(live and live.event_id == event_id), "practice": bool(live and live.event_id == event_id and live.practice)}


def _editable(app: web.Application, row: Any, what: str = "edited") -> None:
    if time.time() >= ends_at(row):
        raise Conflict(f"the event “{row['title']}” has ended: a past event cannot be {what}")


async def _write_order(db: Any, event_id: int, ids: list[int]) -> None:
    async with db.transaction() as tx:
        await tx.executemany("UPDATE event_products SET position = ? WHERE event_id = ? AND product_id = ?",
                             [(pos, event_id, pid) for pos, pid in enumerate(ids)])


async def _bag_changed(app: web.Application, event_id: int, action: str) -> dict[str, Any]:
    await app[BUS].publish("bag.changed", {"action": action, "product_ids": await bag_ids(app[DB], event_id)}, **_live_ids(app, event_id))
    return await bag_json(app, event_id)


async def bag_add(app: web.Application, event_id: int, product_ids: list[int]) -> dict[str, Any]:
    db = app[DB]
    if not product_ids:
        raise BadRequest("give 'product_id' (or 'product_ids') of the product(s) to add")
    if len(set(product_ids)) != len(product_ids):
        raise BadRequest("a product is listed twice")
    for pid in product_ids:
        row = await db.fetchone("SELECT id, title, archived FROM products WHERE id = ?", (pid,))
        if row is None:
            raise NotFound(f"product {pid} does not exist")
        if row["archived"]:
            raise Conflict(f"“{row['title']}” is archived: restore it in the catalog first")
    now = time.time()
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT product_id, position FROM event_products WHERE event_id = ? ORDER BY position", (event_id,))
        current = {r[0]: r[1] for r in await cur.fetchall()}
        for pid in product_ids:
            if pid in current:
                title = await db.fetchval("SELECT title FROM products WHERE id = ?", (pid,))
                raise Conflict(f"“{title}” is already in the shopping bag (position {sorted(current, key=current.get).index(pid) + 1})")
        if len(current) + len(product_ids) > BAG_LIMIT:
            room = BAG_LIMIT - len(current)
            raise Conflict(f"the shopping bag is full: an event holds at most {BAG_LIMIT} products and this one has {len(current)}"
                           + (f" (room for {room} more)" if room else "") + ": remove a product first",
                           details={"count": len(current), "limit": BAG_LIMIT})
        start = max(current.values(), default=-1) + 1
        await tx.executemany("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                             [(event_id, pid, start + i, now) for i, pid in enumerate(product_ids)])
    return await _bag_changed(app, event_id, "add")


async def bag_move(app: web.Application, event_id: int, product_id: int, position: int) -> dict[str, Any]:
    ids = await bag_ids(app[DB], event_id)
    if product_id not in ids:
        raise NotFound(f"product {product_id} is not in this event's shopping bag")
    if not 1 <= position <= len(ids):
        raise BadRequest(f"'position' must be from 1 to {len(ids)} (the number of products in the bag), got {position}")
    ids.remove(product_id)
    ids.insert(position - 1, product_id)
    await _write_order(app[DB], event_id, ids)
    return await _bag_changed(app, event_id, "move")


async def bag_reorder(app: web.Application, event_id: int, order: list[int]) -> dict[str, Any]:
    ids = await bag_ids(app[DB], event_id)
    if sorted(order) != sorted(ids):
        raise BadRequest("'product_ids' must list every product of the bag exactly once (the bag changed? reload it)")
    await _write_order(app[DB], event_id, order)
    return await _bag_changed(app, event_id, "move")


async def bag_remove(app: web.Application, event_id: int, product_id: int) -> dict[str, Any]:
    db = app[DB]
    live = app[LIVE].current
    async with db.transaction() as tx:
        cur = await tx.execute("DELETE FROM event_products WHERE event_id = ? AND product_id = ?", (event_id, product_id))
        if cur.rowcount == 0:
            raise NotFound(f"product {product_id} is not in this event's shopping bag")
    if live is not None and live.event_id == event_id and await pinned_product_id(app, event_id) == product_id:
        await unpin(app, event_id)
    await _write_order(db, event_id, await bag_ids(db, event_id))
    return await _bag_changed(app, event_id, "remove")


# --------------------------------------------------------------------------------------------- pinning


async def pin(app: web.Application, event_id: int, product_id: int) -> dict[str, Any]:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        raise Conflict("a product can be pinned only while this event is live: go live first")
    db = app[DB]
    if product_id not in await bag_ids(db, event_id):
        raise NotFound(f"product {product_id} is not in this event's shopping bag: add it first")
    previous = await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))
    if previous == product_id:
        return await bag_json(app, event_id)
    async with db.transaction() as tx:
        await tx.execute("UPDATE sessions SET pinned_product_id = ? WHERE id = ?", (product_id, live.id))
    ids = {"event_id": event_id, "session_id": live.id, "practice": live.practice}
    if previous is not None:
        await app[BUS].publish("product.unpinned", {"product_id": previous}, **ids)
    product = product_json(await db.fetchone("SELECT * FROM products WHERE id = ?", (product_id,)))
    await app[BUS].publish("product.pinned", {"product": product}, **ids)
    return await bag_json(app, event_id)


async def unpin(app: web.Application, event_id: int) -> dict[str, Any]:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        raise Conflict("nothing is pinned: this event is not live")
    db = app[DB]
    previous = await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))
    if previous is not None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE sessions SET pinned_product_id = NULL WHERE id = ?", (live.id,))
        await app[BUS].publish("product.unpinned", {"product_id": previous}, event_id=event_id, session_id=live.id, practice=live.practice)
    return await bag_json(app, event_id)


# --------------------------------------------------------------------------------------------- queries


async def list_events(app: web.Application, when: str = "upcoming", limit: int = 200) -> list[dict[str, Any]]:
    now = time.time()
    counts = ("(SELECT COUNT(*) FROM event_products b WHERE b.event_id = e.id) AS products,"
              " (SELECT COUNT(*) FROM registrations r WHERE r.event_id = e.id) AS registrations,"
              " (SELECT COUNT(*) FROM sessions s WHERE s.event_id = e.id) AS sessions")
    if when == "upcoming":
        sql, params = "WHERE e.starts_at + e.duration_minutes * 60 > ? ORDER BY e.starts_at", (now,)
    elif when == "past":
        sql, params = "WHERE e.starts_at + e.duration_minutes * 60 <= ? ORDER BY e.starts_at DESC", (now,)
    elif when == "all":
        sql, params = "ORDER BY e.starts_at DESC", ()
    else:
        raise BadRequest("'when' must be upcoming, past or all")
    rows = await app[DB].fetchall(f"SELECT e.*, {counts} FROM events e {sql} LIMIT ?", (*params, limit))
    out = []
    for r in rows:
        d = event_json(app, r, now)
        d.update(products=r["products"], registrations=r["registrations"], sessions=r["sessions"])
        out.append(d)
    return out


async def event_detail(app: web.Application, row: Any) -> dict[str, Any]:
    db = app[DB]
    d = event_json(app, row)
    d["products"] = await db.fetchval("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (row["id"],))
    d["registrations"] = await db.fetchval("SELECT COUNT(*) FROM registrations WHERE event_id = ?", (row["id"],))
    d["sessions"] = await db.fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ?", (row["id"],))
    return d


def _int(value: Any, field: str) -> int:
    return validate.as_int(value, field, min=None)


def _pid(request: web.Request) -> int:
    return validate.path_int(request, "pid")


# --------------------------------------------------------------------------------------------- API: events


@routes.get("/api/events")
@doc("List events", query={"when": "upcoming (default: not yet ended, soonest first), past (newest first) or all"},
     returns="{events: [{id, slug, title, description, starts_at, ends_at, duration_minutes, status, ready, recommended, url, products, registrations, sessions}]}",
     tags=["events"], permission="console.view")
async def api_events(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response({"events": await list_events(request.app, request.query.get("when", "upcoming"))})


@routes.post("/api/events")
@doc("Schedule an event; 409 (naming the other event) when it overlaps one",
     body={"title": "string: 1–120 characters", "description": "string: optional", "starts_at": "ISO 8601 (UTC when no offset) or UNIX seconds",
           "duration_minutes": f"integer: {MIN_DURATION}–{MAX_DURATION}"},
     returns="{event}", tags=["events"], permission="show.run")
async def api_event_create(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    cols = clean_event(await json_body(request), partial=False)
    if cols["starts_at"] < time.time() - PAST_GRACE_SECONDS:
        raise BadRequest(f"the start time {when_text(cols['starts_at'])} is in the past: pick a later time, or use Go LIVE now")
    row = await insert_event(request.app, cols, user.id)
    return web.json_response({"event": await event_detail(request.app, row)}, status=201)


@routes.post("/api/events/now")
@doc("Go LIVE now without scheduling: create an event starting now (events.default_duration_minutes, shortened to end before the next event)",
     body={"title": "string: optional title"}, returns="{event}", tags=["events"], permission="show.run")
async def api_event_now(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    data = await json_body(request) if request.can_read_body else {}
    title = validate.text(data, "title", max_len=120)
    app = request.app
    now = time.time()
    current = await app[DB].fetchone(
        "SELECT * FROM events WHERE starts_at <= ? AND starts_at + duration_minutes * 60 > ? LIMIT 1", (now, now))
    if current is not None:
        return web.json_response({"event": await event_detail(app, current), "existing": True})
    event_id = await resolve_event(app, None, False)
    row = await find_event(app[DB], event_id or 0)
    if title:
        row = await _update_event(app, row, clean_event({"title": title}, partial=True))
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE events SET created_by = ? WHERE id = ?", (user.id, row["id"]))
    return web.json_response({"event": await event_detail(app, row), "existing": False}, status=201)


@routes.get("/api/events/suggestion")
@doc("Best time to start and duration for a new event, from past non-practice sessions (needs at least 3)",
     returns="{enough, message, weekday, hour, duration_minutes, next_start, reason, slots}", tags=["events"], permission="console.view")
async def api_event_suggestion(request: web.Request) -> web.Response:
    await auth.require(request)
    from .suggest import suggest_for_app

    return web.json_response(await suggest_for_app(request.app))


@routes.get("/api/events/{id}")
@doc("One event (by id or slug)", returns="{event}", tags=["events"], permission="console.view")
async def api_event_get(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response({"event": await event_detail(request.app, await _event_from_path(request))})


async def _update_event(app: web.Application, row: Any, cols: dict[str, Any]) -> Any:
    if not cols:
        return row
    cols["updated_at"] = time.time()
    if "starts_at" in cols and cols["starts_at"] != row["starts_at"]:
        cols["reminded_at"] = None
    async with app[DB].transaction() as tx:
        await tx.execute(f"UPDATE events SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?", (*cols.values(), row["id"]))
    row = await find_event(app[DB], row["id"])
    await app[BUS].publish("event.updated", {"event": event_json(app, row)}, event_id=row["id"])
    return row


@routes.patch("/api/events/{id}")
@doc("Edit an event that has not ended (any subset of the create fields); 409 on overlap or for a past event",
     body={"title": "string", "description": "string", "starts_at": "", "duration_minutes": "integer"}, returns="{event}", tags=["events"], permission="show.run")
async def api_event_update(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await _event_from_path(request)
    _editable(app, row)
    cols = clean_event(await json_body(request), partial=True)
    now = time.time()
    start = cols.get("starts_at", row["starts_at"])
    duration = cols.get("duration_minutes", row["duration_minutes"])
    if "starts_at" in cols and cols["starts_at"] != row["starts_at"]:
        if row["starts_at"] <= now or await app[DB].fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ?", (row["id"],)):
            raise Conflict("this event has already started: its start time can no longer be moved (change its duration instead)")
        if start < now - PAST_GRACE_SECONDS:
            raise BadRequest(f"the start time {when_text(start)} is in the past: pick a later time")
    if start + duration * 60 <= now:
        raise BadRequest("with this duration the event would already be over: make it longer")
    if "starts_at" in cols or "duration_minutes" in cols:
        await check_overlap(app[DB], start, duration, row["id"])
    row = await _update_event(app, row, cols)
    return web.json_response({"event": await event_detail(app, row)})


@routes.delete("/api/events/{id}")
@doc("Delete an event that has not ended and is not live", returns="{deleted: id}", tags=["events"], permission="show.run")
async def api_event_delete(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await _event_from_path(request)
    _editable(app, row, "deleted (its sessions and figures are kept)")
    live = app[LIVE].current
    if live is not None and live.event_id == row["id"]:
        raise Conflict("this event is live: end the LIVE before deleting the event")
    held = await app[DB].fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ? AND practice = 0", (row["id"],))
    if held:
        raise Conflict(f"this event already went live ({held} session{'s' if held != 1 else ''}): it is kept with its figures; "
                       "shorten it instead")
    async with app[DB].transaction() as tx:
        await tx.execute("DELETE FROM events WHERE id = ?", (row["id"],))
    await app[BUS].publish("event.deleted", {"event_id": row["id"], "title": row["title"]})
    return web.json_response({"deleted": row["id"]})


@routes.post("/api/events/{id}/recommend")
@doc("Turn 'recommend this event' on or off: while on and until the event's end, the studio's public pages link to its registration page",
     body={"on": "boolean: true or false"}, returns="{event}", tags=["events"], permission="show.run")
async def api_event_recommend(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    app = request.app
    row = await _event_from_path(request)
    data = await json_body(request)
    on = data.get("on")
    if not isinstance(on, bool):
        raise BadRequest("'on' must be true or false")
    if on:
        _editable(app, row, "recommended")
    row = await _update_event(app, row, {"recommended": int(on)})
    return web.json_response({"event": await event_detail(app, row)})


@routes.get("/api/events/{id}/golive-check")
@doc("Would going live for this event be accepted now? (the console greys out Go LIVE and shows the reason)",
     query={"practice": "1 for a practice session"}, returns="{ok, message, starts_in?}", tags=["events"], permission="console.view")
async def api_event_golive_check(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await _event_from_path(request)
    return web.json_response(await go_live_check(request.app, row["id"], request.query.get("practice") in ("1", "true")))


@routes.get("/api/events/{id}/sessions")
@doc("The event's sessions with their figures", returns="{sessions: [{id, started_at, ended_at, duration, practice, products_featured, peak_viewers, avg_viewers, gmv_cents, figures: [{name, label, value, plugin}], ...}]}",
     tags=["events"], permission="console.view")
async def api_event_sessions(request: web.Request) -> web.Response:
    await auth.require(request)
    from .sessionstats import event_sessions

    row = await _event_from_path(request)
    return web.json_response({"sessions": await event_sessions(request.app, row["id"])})


# --------------------------------------------------------------------------------------------- API: the bag


@routes.get("/api/events/{id}/bag")
@doc("The event's shopping bag in order, with the pinned product while live", query={"q": "search the bag (title or SKU)"},
     returns="{event_id, products: [{position, id, title, price_cents, currency, stock, sku, image_url, ...}], count, limit, pinned_product_id, live}",
     tags=["bag"], permission="console.view")
async def api_bag(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await _event_from_path(request)
    return web.json_response(await bag_json(request.app, row["id"], validate.query_text(request, "q").strip()))


@routes.post("/api/events/{id}/bag")
@doc(f"Add products to the end of the bag (at most {BAG_LIMIT} per event: 409 beyond)",
     body={"product_id": "integer: one product", "product_ids": "integer[]: or several"}, returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_add(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await _event_from_path(request)
    _editable(request.app, row)
    data = await json_body(request)
    if "product_ids" in data:
        if not isinstance(data["product_ids"], list):
            raise BadRequest("'product_ids' must be a list of product ids")
        ids = [_int(v, "product_ids") for v in data["product_ids"]]
    else:
        ids = [_int(data.get("product_id"), "product_id")]
    return web.json_response(await bag_add(request.app, row["id"], ids), status=201)


@routes.put("/api/events/{id}/bag/order")
@doc("Reorder the whole bag (drag and drop)", body={"product_ids": "integer[]: every product id of the bag, in the new order"},
     returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_reorder(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await _event_from_path(request)
    _editable(request.app, row)
    data = await json_body(request)
    order = data.get("product_ids")
    if not isinstance(order, list):
        raise BadRequest("'product_ids' must be a list of product ids")
    return web.json_response(await bag_reorder(request.app, row["id"], [_int(v, "product_ids") for v in order]))


@routes.post("/api/events/{id}/bag/{pid}/move")
@doc("Move a product to a position (1 = top)", body={"position": "integer: 1..N"}, returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_move(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await _event_from_path(request)
    _editable(request.app, row)
    data = await json_body(request)
    return web.json_response(await bag_move(request.app, row["id"], _pid(request), _int(data.get("position"), "position")))


@routes.delete("/api/events/{id}/bag/{pid}")
@doc("Remove a product from the bag (unpins it if pinned)", returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_remove(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await _event_from_path(request)
    _editable(request.app, row)
    return web.json_response(await bag_remove(request.app, row["id"], _pid(request)))


@routes.post("/api/events/{id}/bag/refresh")
@doc("Reload the bag from the catalog (new prices and stock) and tell every console and viewer page", returns="the bag",
     tags=["bag"], permission="console.view")
async def api_bag_refresh(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await _event_from_path(request)
    return web.json_response(await _bag_changed(request.app, row["id"], "refresh"))


@routes.post("/api/events/{id}/pin")
@doc("Pin a product of the bag (only while this event is live; replaces the pinned one)", body={"product_id": "integer: a product in the bag"},
     returns="the bag", tags=["bag"], permission="show.run")
async def api_pin(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    row = await _event_from_path(request)
    data = await json_body(request)
    return web.json_response(await pin(request.app, row["id"], _int(data.get("product_id"), "product_id")))


@routes.delete("/api/events/{id}/pin")
@doc("Unpin the pinned product", returns="the bag", tags=["bag"], permission="show.run")
async def api_unpin(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    row = await _event_from_path(request)
    return web.json_response(await unpin(request.app, row["id"]))


# --------------------------------------------------------------------------------------------- pages


@routes.get("/events")
async def events_page(request: web.Request) -> web.Response:
    user = await auth.require(request)
    from .suggest import suggest_for_app

    return await render(request, "events/list.html", {
        "events": await list_events(request.app, "upcoming"), "can_schedule": user.can("show.run"),
        "suggestion": await suggest_for_app(request.app), "min_duration": MIN_DURATION, "max_duration": MAX_DURATION,
        "default_duration": request.app[CONFIG].events.default_duration_minutes})


@routes.get("/events/past")
async def past_events_page(request: web.Request) -> web.Response:
    await auth.require(request)
    from .sessionstats import event_sessions, unassigned_sessions

    events = await list_events(request.app, "past", 100)
    for e in events:
        e["session_list"] = await event_sessions(request.app, e["id"])
    # sessions of the running or upcoming events too: an event's window may still be open
    current = [e for e in await list_events(request.app, "upcoming", 20) if e["sessions"]]
    for e in current:
        e["session_list"] = await event_sessions(request.app, e["id"])
    return await render(request, "events/past.html", {"events": events, "current": current,
                                                     "orphans": await unassigned_sessions(request.app)})


@routes.get("/events/{id}")
async def event_page(request: web.Request) -> web.Response:
    user = await auth.require(request)
    app = request.app
    row = await _event_from_path(request)
    from .sessionstats import event_sessions

    event = await event_detail(app, row)
    return await render(request, "events/detail.html", {
        "event": event, "bag": await bag_json(app, row["id"]), "can_edit": user.can("catalog.edit") and event["editable"],
        "can_run": user.can("show.run"), "public_url": public_base(request) + event["url"],
        "sessions": await event_sessions(app, row["id"]), "min_duration": MIN_DURATION, "max_duration": MAX_DURATION})


async def _session_report(app: web.Application, sid_text: str) -> dict[str, Any]:
    from .sessionstats import session_stats, viewers_chart

    sid = validate.ascii_int(sid_text)
    if sid is None:
        raise NotFound("the session id must be a number")
    db = app[DB]
    row = await db.fetchone("SELECT * FROM sessions WHERE id = ?", (sid,))
    if row is None:
        raise NotFound(f"session {sid_text} does not exist")
    stats = await session_stats(app, row)
    samples = [(r["at"], r["viewers"]) for r in await db.fetchall(
        "SELECT at, viewers FROM viewer_samples WHERE session_id = ? ORDER BY at", (row["id"],))]
    event = await db.fetchone("SELECT * FROM events WHERE id = ?", (row["event_id"],)) if row["event_id"] is not None else None
    products = await db.fetchall(
        "SELECT p.id, p.title, p.currency, SUM(o.quantity) AS units, SUM(o.amount_cents) AS amount, COUNT(*) AS orders"
        " FROM orders o JOIN products p ON p.id = o.product_id WHERE o.session_id = ? AND o.practice = 0 AND o.status != 'cancelled'"
        " GROUP BY p.id ORDER BY amount DESC LIMIT 20", (row["id"],))
    pinned = await db.fetchall(
        "SELECT json_extract(data, '$.product.id') AS id, json_extract(data, '$.product.title') AS title, MIN(created_at) AS first_at,"
        " COUNT(*) AS times FROM activity WHERE session_id = ? AND name = 'product.pinned' GROUP BY 1 ORDER BY first_at", (row["id"],))
    return {"session": stats, "event": event_json(app, event) if event is not None else None,
            "samples": [{"at": t, "viewers": v} for t, v in samples],
            "chart": viewers_chart(samples, row["started_at"], row["ended_at"]),
            "top_products": [dict(r) for r in products], "featured": [dict(r) for r in pinned]}


@routes.get("/api/sessions/{sid}")
@doc("A session's analytics: figures, viewers over time, products sold and featured",
     returns="{session: {started_at, ended_at, duration, gmv_cents, orders, items_sold, buyers, first_time_buyers, peak_viewers, avg_viewers, comments, products_featured, figures: [{name, label, value, plugin}]}, event, samples, top_products, featured}",
     tags=["events"], permission="console.view")
async def api_session(request: web.Request) -> web.Response:
    await auth.require(request)
    report = await _session_report(request.app, request.match_info["sid"])
    report.pop("chart")
    return web.json_response(report)


@routes.get("/sessions/{sid}")
async def session_page(request: web.Request) -> web.Response:
    await auth.require(request)
    return await render(request, "events/session.html", await _session_report(request.app, request.match_info["sid"]))


__all__ = ["routes", "events_ctx", "resolve_event", "publish_due_reminders", "find_event", "event_json", "bag_json", "BAG_LIMIT"]
