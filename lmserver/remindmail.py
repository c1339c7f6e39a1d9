"""Reminder e-mails to registrants (with ``[email]`` set; :mod:`lmserver.mailer` sends them).

Every registrant who gave an address gets two e-mails, each once (the outbox's ``dedupe_key``): when
the event enters its ready window (``event.ready``, ``events.ready_minutes`` — 10 by default — before
the start: "starts in 10 minutes") and when its first non-practice session starts (``stream.started``:
"is LIVE now"). Each carries the event's link and its ``.ics`` calendar file. They are queued by a bus
listener, off the path of going live, and sent from the persisted outbox (retries with backoff).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from aiohttp import web

from . import mailer
from .appkeys import BUS, CONFIG, DB
from .promo import make_ics
from .timefmt import fmt, studio_zone

log = logging.getLogger(__name__)

__all__ = ["email_registrants", "remindmail_ctx"]


def public_base(app: web.Application) -> str:
    """The base of links in e-mails: ``server.public_url``, else this server's own address (set public_url for viewers)."""
    cfg = app[CONFIG].server
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    return f"{'https' if cfg.tls_cert else 'http'}://{cfg.host}:{cfg.port}"


def _minutes(n: int) -> str:
    return f"{n} minute{'s' if n != 1 else ''}"


async def email_registrants(app: web.Application, row: Any, kind: str) -> int:
    """Queue the ``kind`` ("ready" or "live") e-mail of event ``row`` to each registrant with an address; how many were queued."""
    if not mailer.enabled(app):
        return 0
    cfg = app[CONFIG]
    zone = studio_zone(app)
    url = f"{public_base(app)}/e/{row['slug']}"
    studio = cfg.server.studio_name
    minutes = max(1, round((row["starts_at"] - time.time()) / 60))
    if kind == "ready":
        subject = f"“{row['title']}” starts in {_minutes(minutes)}"
        lead = f"“{row['title']}” at {studio} starts at {fmt(row['starts_at'], 'datetime', zone)}, in {_minutes(minutes)}."
    else:
        subject = f"“{row['title']}” is LIVE now"
        lead = f"“{row['title']}” at {studio} is LIVE now."
    host = url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0] or "lmserver"
    ics = make_ics(row, url, studio, host, max(cfg.events.ready_minutes, 10))
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


async def remindmail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Listen to ``event.ready`` and ``stream.started`` (non-practice) for the app's lifetime."""
    tasks: set[asyncio.Task[None]] = set()

    async def send(event_id: int, kind: str) -> None:
        try:
            row = await app[DB].fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
            if row is not None:
                await email_registrants(app, row, kind)
        except Exception:
            log.exception("remindmail: queueing the %s e-mails of event %s failed", kind, event_id)

    def listener(record: Any) -> None:
        if record.event_id is None or not mailer.enabled(app):
            return
        if record.name == "event.ready":
            kind = "ready"
        elif record.name == "stream.started" and not record.practice:
            kind = "live"
        else:
            return
        task = asyncio.ensure_future(send(record.event_id, kind))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for name in ("event.ready", "stream.started"):
        app[BUS].on(name, listener)
    try:
        yield
    finally:
        for name in ("event.ready", "stream.started"):
            app[BUS].remove_listener(name, listener)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
