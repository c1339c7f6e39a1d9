"""Whether the studio is live, and the current session.

Only one session runs at a time (one ingest). The media layer calls :meth:`LiveState.begin` when an
ingest connects and :meth:`LiveState.end` when it stops or drops. A session left open by a crash or a
restart (``ended_at`` NULL) is *interrupted*: the next ``begin`` for the same event and mode within
``events.resume_minutes`` resumes it (same session id; plugins restore their overlays); otherwise it is
closed with the reason "interrupted".

Hooks for the rest of the core: ``resolve_event`` (set by the events service) picks the event a new
session belongs to, and may refuse (e.g. a scheduled event before its start time).

Every bus record about the show carries the session it happened in: ``bus.publish(name, data,
**app[LIVE].tags(event_id))`` (or :func:`session_tags` for a session in hand) is the one way to say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .errors import Conflict

if TYPE_CHECKING:
    from .bus import Bus
    from .db import Database

log = logging.getLogger(__name__)

ALREADY_LIVE = "the studio is already live from another device: end that stream first"


@dataclass(frozen=True)
class LiveSession:
    id: int
    event_id: int | None
    practice: bool
    source: str
    started_at: float
    started_by: int | None
    resumed: bool = False


def session_tags(session: LiveSession | None, event_id: int | None | EllipsisType = ...) -> dict[str, Any]:
    """The ``event_id``, ``session_id`` and ``practice`` keywords of :meth:`Bus.publish <lmserver.bus.Bus.publish>`
    that attribute a bus record to ``session`` (the running one, or ``None``).

    Without ``event_id``: the record belongs to ``session`` and its event, whatever they are (nothing
    when no session runs). With ``event_id``: the record is about that event; it carries the session
    only when the session belongs to that event, else ``session_id`` is ``None`` and ``practice`` False.
    """
    if event_id is ...:
        if session is None:
            return {"event_id": None, "session_id": None, "practice": False}
        return {"event_id": session.event_id, "session_id": session.id, "practice": session.practice}
    if session is not None and session.event_id == event_id:
        return {"event_id": event_id, "session_id": session.id, "practice": session.practice}
    return {"event_id": event_id, "session_id": None, "practice": False}


ResolveEvent = Callable[[int | None, bool], Awaitable[int | None]]


class LiveState:
    def __init__(self, db: "Database", bus: "Bus", *, resume_minutes: float = 10.0):
        self.db = db
        self.bus = bus
        self.resume_seconds = resume_minutes * 60
        self.current: LiveSession | None = None
        self._lock = asyncio.Lock()
        #: ``await resolve_event(requested_event_id, practice) -> event_id | None``; may raise ApiError
        self.resolve_event: ResolveEvent | None = None

    @property
    def is_live(self) -> bool:
        return self.current is not None

    def tags(self, event_id: int | None | EllipsisType = ...) -> dict[str, Any]:
        """:func:`session_tags` of the running session: ``await bus.publish(name, data, **live.tags(event_id))``."""
        return session_tags(self.current, event_id)

    async def begin(self, source: str, practice: bool = False, user_id: int | None = None,
                    event_id: int | None = None) -> LiveSession:
        """Start (or resume) a session; raises :class:`Conflict` when one is already running."""
        async with self._lock:
            if self.current is not None:
                raise Conflict(ALREADY_LIVE)
            if self.resolve_event is not None:
                event_id = await self.resolve_event(event_id, practice)
            now = time.time()
            session = await self._resume(event_id, practice, source, user_id, now)
            if session is None:
                async with self.db.transaction() as tx:
                    cur = await tx.execute(
                        "INSERT INTO sessions (event_id, practice, source, started_by, started_at) VALUES (?, ?, ?, ?, ?)",
                        (event_id, int(practice), source, user_id, now))
                    session = LiveSession(cur.lastrowid or 0, event_id, practice, source, now, user_id)
            self.current = session
        log.info("LiveState: session %s %s (%s%s)", session.id, "resumed" if session.resumed else "started",
                 source, ", practice" if practice else "")
        await self.bus.publish("stream.started", {"source": source, "practice": practice, "resumed": session.resumed,
                                                  "started_by": user_id}, **session_tags(session))
        return session

    async def _resume(self, event_id: int | None, practice: bool, source: str, user_id: int | None, now: float) -> LiveSession | None:
        open_rows = await self.db.fetchall("SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY id")
        resumed: LiveSession | None = None
        for row in open_rows:
            last = await self.db.fetchval("SELECT MAX(created_at) FROM activity WHERE session_id = ?", (row["id"],)) or row["started_at"]
            if (resumed is None and row["event_id"] == event_id and bool(row["practice"]) == practice
                    and now - last <= self.resume_seconds):
                resumed = LiveSession(row["id"], row["event_id"], bool(row["practice"]), source, row["started_at"], user_id, True)
                continue
            async with self.db.transaction() as tx:
                await tx.execute("UPDATE sessions SET ended_at = ?, end_reason = 'interrupted' WHERE id = ? AND ended_at IS NULL",
                                 (last, row["id"]))
        return resumed

    async def end(self, reason: str) -> LiveSession | None:
        """End the running session (no-op when not live); returns it."""
        async with self._lock:
            session = self.current
            if session is None:
                return None
            self.current = None
            now = time.time()
            async with self.db.transaction() as tx:
                await tx.execute("UPDATE sessions SET ended_at = ?, end_reason = ?, pinned_product_id = NULL WHERE id = ?",
                                 (now, reason, session.id))
        log.info("LiveState: session %s ended (%s)", session.id, reason)
        await self.bus.publish("stream.ended", {"reason": reason, "duration": round(now - session.started_at, 1)},
                               **session_tags(session))
        return session

    async def interrupt(self, reason: str) -> LiveSession | None:
        """The server is stopping under a live session: leave its row open so that the next ``begin``
        for the same event and mode within ``events.resume_minutes`` resumes it (a restart is not an end)."""
        async with self._lock:
            session, self.current = self.current, None
        if session is not None:
            log.info("LiveState: session %s interrupted (%s); it resumes if the studio goes live again within %.0f min",
                     session.id, reason, self.resume_seconds / 60)
        return session

    def with_event(self, event_id: int | None) -> None:
        """Attach the running session to an event (used by the events service)."""
        if self.current is not None:
            self.current = replace(self.current, event_id=event_id)
