"""The home page's figures: the checklist for success, upcoming events, the latest LIVE and LIVE tasks.

Everything is computed from the studio's real state on each visit (nothing is stored for it). Plugins
add checklist items through ``home_checklist`` and figures of the latest LIVE through
``session_figures``; the core knows nothing of their tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from aiohttp import web

from .appkeys import CONFIG, DB, LIVE, PM
from .events import list_events
from .helppages import TOPICS
from .plugins.types import ChecklistItem
from .sessionstats import session_stats
from .timefmt import studio_zone

log = logging.getLogger(__name__)

def week_start(now: float, zone: dt.tzinfo = dt.timezone.utc) -> float:
    """Monday 00:00 of ``now``'s week on the studio's clock (``zone``)."""
    d = dt.datetime.fromtimestamp(now, zone).date()
    monday = d - dt.timedelta(days=d.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=zone).timestamp()


def month_start(now: float, zone: dt.tzinfo = dt.timezone.utc) -> float:
    """The 1st, 00:00 of ``now``'s month on the studio's clock (``zone``)."""
    d = dt.datetime.fromtimestamp(now, zone)
    return dt.datetime(d.year, d.month, 1, tzinfo=zone).timestamp()


async def plugin_checklist(app: web.Application, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plugins' ``home_checklist`` items as the template's dicts, by order (display policy: a failing
    plugin's items are left out, an answer that is not a list of ChecklistItem is logged and skipped)."""
    out: list[tuple[int, dict[str, Any]]] = []
    for plugin, answer in await app[PM].call_named("home_checklist", app=app, events=events):
        for item in answer if isinstance(answer, (list, tuple)) else [answer]:
            if not isinstance(item, ChecklistItem):
                log.warning("plugin %s: home_checklist must answer a list of ChecklistItem, got %r", plugin, item)
                continue
            out.append((item.order, {"key": item.key, "label": item.label, "done": bool(item.done), "detail": item.detail,
                                     "href": item.href, "plugin": plugin}))
    return [i for _, i in sorted(out, key=lambda o: o[0])]


async def home_context(request: web.Request) -> dict[str, Any]:
    app = request.app
    db, cfg = app[DB], app[CONFIG].events
    now = time.time()
    events = await list_events(app, "upcoming", 10)
    nxt = events[0] if events else None
    products = await db.fetchval("SELECT COUNT(*) FROM products WHERE archived = 0")
    practice_done = await db.fetchval("SELECT COUNT(*) FROM sessions WHERE practice = 1")
    promoted_events = [e for e in events if e["registrations"] or e["recommended"]]
    promoted = bool(promoted_events)
    to_promote = next((e for e in events if not (e["registrations"] or e["recommended"])), nxt)
    event_link = f"/events/{nxt['id']}" if nxt else "/events"
    checklist = [
        {"key": "catalog", "label": "Add products to your catalog", "done": products > 0,
         "detail": f"{products} product{'s' if products != 1 else ''} ready" if products else "Create products or import a CSV file",
         "href": "/catalog"},
        {"key": "event", "label": "Schedule a LIVE event", "done": nxt is not None,
         "detail": f"Next: {nxt['title']}" if nxt else "Pick a time and a duration (30 min – 13 h)", "href": "/events"},
        {"key": "bag", "label": "Fill the event's shopping bag", "done": bool(nxt and nxt["products"]),
         "detail": f"{nxt['products']} product{'s' if nxt['products'] != 1 else ''} in the bag" if nxt and nxt["products"] else "Add the products you will show, in order",
         "href": event_link + "#bag"},
        {"key": "practice", "label": "Do a practice session", "done": practice_done > 0,
         "detail": "Practice sessions: " + str(practice_done) if practice_done else "Test camera, sound and lighting: viewers can't see it",
         "href": (nxt["console_url"] if nxt else "/events")},
        {"key": "promote", "label": "Promote your event", "done": promoted,
         "detail": (f"{sum(e['registrations'] for e in events)} registered"
                    + (f" · {sum(1 for e in events if e['recommended'])} recommended" if any(e["recommended"] for e in events) else ""))
         if promoted else "Share the link or QR code; viewers register to be reminded",
         "href": (f"/events/{to_promote['id']}#promote" if to_promote else "/events")},
    ]
    checklist += await plugin_checklist(app, events)
    latest_row = await db.fetchone("SELECT * FROM sessions WHERE practice = 0 ORDER BY started_at DESC LIMIT 1")
    latest = await session_stats(app, latest_row) if latest_row is not None else None
    latest_event = (await db.fetchone("SELECT id, title FROM events WHERE id = ?", (latest_row["event_id"],))
                    if latest_row is not None and latest_row["event_id"] is not None else None)
    week = await db.fetchval("SELECT COUNT(*) FROM sessions WHERE practice = 0 AND started_at >= ?", (week_start(now, studio_zone(app)),))
    month = await db.fetchval("SELECT COUNT(*) FROM sessions WHERE practice = 0 AND started_at >= ?", (month_start(now, studio_zone(app)),))
    tasks = [
        {"label": f"Go LIVE {cfg.weekly_goal} times this week", "done": week, "goal": cfg.weekly_goal,
         "percent": min(100, round(100 * week / cfg.weekly_goal))},
        {"label": f"Go LIVE {cfg.monthly_goal} times this month", "done": month, "goal": cfg.monthly_goal,
         "percent": min(100, round(100 * month / cfg.monthly_goal))},
    ]
    return {"events": events, "product_count": products, "checklist": checklist,
            "checklist_done": sum(1 for c in checklist if c["done"]), "latest": latest,
            "latest_event": dict(latest_event) if latest_event else None, "tasks": tasks, "help_topics": TOPICS,
            "live_now": app[LIVE].current}
