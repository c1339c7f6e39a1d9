"""LIVE events: scheduling, the shopping bag, pinning, sessions inside an event, and going live.

- An event has a title, a description, a start time and a duration of 30 minutes to 13 hours. Events
  never overlap (back-to-back is fine): creating or moving one onto another is refused with 409, naming
  the other event and its time.
- Its status, from the clock and the live state: ``upcoming`` → ``ready`` (from ``events.ready_minutes``
  before its start: the console loads its products and shows a countdown; ``event.ready`` is published
  once as a reminder, and registrants are e-mailed when ``[email]`` is set: :mod:`lmserver.remindmail`) → ``open`` (its window is running; not streaming) / ``live`` (a session of it is
  streaming) → ``ended``. A past event cannot be edited.
- The shopping bag: at most :data:`BAG_LIMIT` products in order, positions 1..N. Every change publishes
  ``bag.changed``; pinning (only while the event is live, one product at a time, stored in
  ``sessions.pinned_product_id``) publishes ``product.pinned`` / ``product.unpinned``.
- Going live: :func:`resolve_event` is installed as ``LiveState.resolve_event``; it picks the event a
  new session belongs to (the requested one, the one whose window is open now, or the one in its ready
  window). Going live is allowed from the ready window (as the commercial console allows; the event keeps
  its scheduled times); before it, it is refused with the countdown (practice is always allowed).
  Otherwise it creates a "Go LIVE now" event starting now, named on the studio's clock. "Go LIVE now"
  (``/api/events/now``) also offers to start the day's next scheduled event now, moving its start.
  The console's go-live check asks the same resolver with ``check_only=True``.

The package, one module per concern, each route beside its service: :mod:`.model` (an event, its
scheduling rules, :func:`find_event` — the one lookup by id or slug — and the queries),
:mod:`.golive`, :mod:`.reminders`, :mod:`.bag` (bag and pinning), :mod:`.api` (the events API) and
:mod:`.pages` (staff pages and session analytics). Everything public is importable from
``lmserver.events``; :data:`routes` lists the package's routes for the app factory.
"""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from ..appkeys import LIVE
from ..background import background
from . import api, bag, golive, pages
from .bag import BAG_LIMIT, bag_add, bag_ids, bag_json, bag_move, bag_remove, bag_reorder, bag_rows, pin, pinned_product_id, unpin
from .golive import go_live_check, resolve_event
from .model import (EVENT_FIELDS, MAX_DURATION, MIN_DURATION, PAST_GRACE_SECONDS, STATUS_LABELS, check_duration, check_overlap,
                    clean_event, ends_at, event_detail, event_json, event_status, find_event, fmt_span, insert_event, list_events,
                    parse_time, slugify, when_text)
from .reminders import publish_due_reminders, reminder_loop

#: every route of the events service, in matching order (fixed paths such as /api/events/now before /api/events/{id})
routes = [*api.routes, *golive.routes, *bag.routes, *pages.routes]


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """Install the go-live resolver and run the reminder task (appended after the core's context)."""

    async def resolver(requested: int | None, practice: bool) -> int | None:
        return await resolve_event(app, requested, practice)

    app[LIVE].resolve_event = resolver
    try:
        async with background(reminder_loop(app), "lmserver-event-reminders"):
            yield
    finally:
        app[LIVE].resolve_event = None


__all__ = ["routes", "events_ctx", "MIN_DURATION", "MAX_DURATION", "PAST_GRACE_SECONDS", "EVENT_FIELDS", "fmt_span",
    "when_text", "slugify", "parse_time", "check_duration", "clean_event", "ends_at", "event_status", "STATUS_LABELS",
    "event_json", "find_event", "check_overlap", "insert_event", "list_events", "event_detail",
    "publish_due_reminders", "resolve_event", "go_live_check", "BAG_LIMIT", "bag_rows",
    "bag_ids", "pinned_product_id", "bag_json", "bag_add", "bag_move", "bag_reorder", "bag_remove", "pin", "unpin"]
