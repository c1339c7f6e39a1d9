"""An event and its scheduling rules: fields, durations, status, overlap, lookup (:func:`find_event`), queries."""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from typing import Any

from aiohttp import web

from .. import validate
from ..appkeys import BUS, CONFIG, DB, LIVE
from ..errors import BadRequest, Conflict, NotFound
from ..templating import as_dict
from ..timefmt import fmt, studio_zone


MIN_DURATION = 30
MAX_DURATION = 13 * 60


#: a start time this far in the past is still accepted for a new event (clock skew, a slow form)
PAST_GRACE_SECONDS = 120

EVENT_FIELDS = {"title", "description", "starts_at", "duration_minutes", "script"}


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


def when_text(ts: float, zone: Any = None) -> str:
    """A time in messages: "Tue 1 Dec 2026, 18:00 CET" in ``zone`` (the studio's: ``studio_zone(app)``; UTC without)."""
    return fmt(ts, "datetime", zone)


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
    if "script" in data:  # the run-of-show script: staff-only (event_detail, never event_json)
        out["script"] = validate.script(data)
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
    d.pop("script", None)  # staff-only: event_detail adds it
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


async def event_from_path(request: web.Request) -> Any:
    return await find_event(request.app[DB], request.match_info["id"])


async def check_overlap(db: Any, starts_at: float, duration_minutes: int, exclude_id: int | None = None, zone: Any = None) -> None:
    """409 when [start, end) overlaps another event's window (back-to-back is not an overlap)."""
    end = starts_at + duration_minutes * 60
    row = await db.fetchone(
        "SELECT * FROM events WHERE id IS NOT ? AND starts_at < ? AND starts_at + duration_minutes * 60 > ? ORDER BY starts_at LIMIT 1",
        (exclude_id, end, starts_at))
    if row is not None:
        raise Conflict(
            f"this time overlaps the event “{row['title']}” ({when_text(row['starts_at'], zone)} – {fmt(ends_at(row), 'time', zone)}): "
            "delete that event or pick another time",
            details={"event": {"id": row["id"], "title": row["title"], "starts_at": row["starts_at"], "ends_at": ends_at(row),
                               "url": f"/events/{row['id']}"}})


async def insert_event(app: web.Application, cols: dict[str, Any], user_id: int | None) -> Any:
    db = app[DB]
    await check_overlap(db, cols["starts_at"], cols["duration_minutes"], zone=studio_zone(app))
    now = time.time()
    async with db.transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO events (slug, title, description, starts_at, duration_minutes, created_by, created_at, updated_at, script)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (slugify(cols["title"]), cols["title"], cols.get("description", ""), cols["starts_at"], cols["duration_minutes"],
             user_id, now, now, cols.get("script", "")))
        event_id = cur.lastrowid
    row = await find_event(db, event_id or 0)
    await app[BUS].publish("event.created", {"event": event_json(app, row)}, event_id=row["id"])
    return row


def check_editable(app: web.Application, row: Any, what: str = "edited") -> None:
    if time.time() >= ends_at(row):
        raise Conflict(f"the event “{row['title']}” has ended: a past event cannot be {what}")


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
    d["script"] = row["script"]
    d["products"] = await db.fetchval("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (row["id"],))
    d["registrations"] = await db.fetchval("SELECT COUNT(*) FROM registrations WHERE event_id = ?", (row["id"],))
    d["sessions"] = await db.fetchval("SELECT COUNT(*) FROM sessions WHERE event_id = ?", (row["id"],))
    return d


async def update_event(app: web.Application, row: Any, cols: dict[str, Any]) -> Any:
    if not cols:
        return row
    cols["updated_at"] = time.time()
    if "starts_at" in cols and cols["starts_at"] != row["starts_at"]:
        cols["reminded_at"] = None
    async with app[DB].transaction() as tx:
        await tx.execute(f"UPDATE events SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?", (*cols.values(), row["id"]))
    row = await find_event(app[DB], row["id"])
    await app[BUS].publish("event.updated", {"event": {**event_json(app, row), "script": row["script"]}}, event_id=row["id"])
    return row
