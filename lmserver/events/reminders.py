"""Reminders: ``event.ready`` once per event when it enters its ready window (the consoles show it;
:mod:`lmserver.remindmail` e-mails registrants on it)."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from ..appkeys import BUS, CONFIG, DB
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

