"""Reminders: ``event.ready`` once per event when it enters its ready window, and e-mails to registrants.

With ``[email]`` configured (:mod:`lmserver.mailer`), every registrant who gave an address gets two
e-mails, each once: when the event enters its ready window (``events.ready_minutes``, 10 by default,
before the start: "starts in 10 minutes") and when its first non-practice session starts ("is LIVE
now"). Each carries the event's link and its ``.ics`` calendar file. They go through the persisted
outbox, so a failing SMTP server is retried with backoff and never holds up going live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from .. import mailer
from ..appkeys import BUS, CONFIG, DB
from ..timefmt import fmt, studio_zone
from .model import event_json

log = logging.getLogger(__name__)


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
            await email_registrants(app, row, "ready")
            done.append(int(row["id"]))
    return done


async def reminder_loop(app: web.Application) -> None:
    interval = app[CONFIG].events.reminder_check_seconds
    while True:
        try:
            await publish_due_reminders(app)
        except Exception:
            log.exception("events: publishing ready reminders failed")
        await asyncio.sleep(interval)


def public_base(app: web.Application) -> str:
    """The base of links in e-mails: ``server.public_url``, else this server's own address (set public_url for viewers)."""
    cfg = app[CONFIG].server
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    scheme = "https" if cfg.tls_cert else "http"
    return f"{scheme}://{cfg.host}:{cfg.port}"


async def email_registrants(app: web.Application, row: Any, kind: str) -> int:
    """Queue the ``kind`` ("ready" or "live") e-mail of event ``row`` to each registrant with an address; how many were queued."""
    if not mailer.enabled(app):
        return 0
    from ..promo import make_ics

    cfg = app[CONFIG]
    zone = studio_zone(app)
    url = f"{public_base(app)}/e/{row['slug']}"
    studio = cfg.server.studio_name
    minutes = max(1, round((row["starts_at"] - time.time()) / 60))
    if kind == "ready":
        subject = f"“{row['title']}” starts in {minutes} minute{'s' if minutes != 1 else ''}"
        lead = f"“{row['title']}” at {studio} starts at {fmt(row['starts_at'], 'datetime', zone)}, in {minutes} minute{'s' if minutes != 1 else ''}."
    else:
        subject = f"“{row['title']}” is LIVE now"
        lead = f"“{row['title']}” at {studio} is LIVE now."
    ics = make_ics(row, url, studio, url.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "lmserver", max(cfg.events.ready_minutes, 10))
    rows = await app[DB].fetchall("SELECT nickname, email FROM registrations WHERE event_id = ? AND email IS NOT NULL AND email != ''",
                                  (row["id"],))
    queued = 0
    for reg in rows:
        body = (f"Hi {reg['nickname']},\n\n{lead}\n\nWatch and shop live: {url}\n\n"
                f"The calendar file is attached.\n\n— {studio}\n(You get this because you registered for this LIVE.)\n")
        if await mailer.enqueue(app, to=reg["email"], subject=subject, body=body, event_id=row["id"], studio=studio,
                                dedupe_key=f"reminder:{kind}:{row['id']}:{reg['email'].lower()}",
                                attachment=mailer.Attachment(f"{row['slug']}.ics", ics)):
            queued += 1
    return queued


def on_stream_started(app: web.Application) -> Any:
    """A bus listener: the first non-practice session of an event e-mails its registrants ("is LIVE now"), off the go-live path."""
    tasks: set[asyncio.Task[None]] = set()

    async def send(event_id: int) -> None:
        try:
            row = await app[DB].fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
            if row is not None:
                await email_registrants(app, row, "live")
        except Exception:
            log.exception("events: queueing the LIVE e-mails of event %s failed", event_id)

    def listener(record: Any) -> None:
        if record.name != "stream.started" or record.practice or record.event_id is None:
            return
        task = asyncio.ensure_future(send(record.event_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return listener
