"""The session bus: every domain change as a typed, documented record.

``await bus.publish(name, data, event_id=..., session_id=..., practice=...)``:

1. checks the name and the fields against the declared :class:`~lmserver.busevents.EventSpec`;
2. appends the record to the ``activity`` table (unless the spec is ``persist=False``);
3. emits it to in-process listeners (pyee: ``bus.on("order.created", handler)``; ``"*"`` gets all);
4. hands it to every plugin's ``on_bus_event`` hook (a failing plugin is logged and isolated);
5. pushes it to the WebSocket hub: whole to staff consoles, and — for a public event — reduced to its
   public fields to the viewer pages of the events it concerns (the rule is in :mod:`lmserver.busevents`).

A writer that must log the activity in its own transaction (the group-commit order path) calls
:func:`record_sync` inside that transaction and :meth:`Bus.dispatch` after the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pyee.asyncio import AsyncIOEventEmitter

from .busevents import CORE_EVENTS, EventSpec

if TYPE_CHECKING:
    from .db import Database
    from .ws import Hub

log = logging.getLogger(__name__)

__all__ = ["Bus", "Activity", "record_sync", "EventSpec"]


@dataclass(frozen=True)
class Activity:
    """One bus record (and, when persisted, one row of the activity log)."""

    id: int | None
    name: str
    event_id: int | None
    session_id: int | None
    practice: bool
    at: float
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _insert_sql() -> str:
    return "INSERT INTO activity (name, event_id, session_id, practice, data, created_at) VALUES (?, ?, ?, ?, ?, ?)"


def record_sync(conn: sqlite3.Connection, spec: EventSpec, data: dict[str, Any], *, event_id: int | None = None,
                session_id: int | None = None, practice: bool = False) -> Activity:
    """Append an activity row with a synchronous connection (inside the caller's transaction)."""
    at = time.time()
    rowid = None
    if spec.persist:
        cur = conn.execute(_insert_sql(), (spec.name, event_id, session_id, int(practice), json.dumps(data, default=str), at))
        rowid = cur.lastrowid
    return Activity(rowid, spec.name, event_id, session_id, practice, at, data)


async def record(tx: Any, spec: EventSpec, data: dict[str, Any], *, event_id: int | None = None,
                 session_id: int | None = None, practice: bool = False) -> Activity:
    """Append an activity row inside the caller's aiosqlite transaction ``tx`` (the change and its record commit
    together, so webhooks never miss one); call :meth:`Bus.dispatch` with the result after the commit."""
    at = time.time()
    rowid = None
    if spec.persist:
        cur = await tx.execute(_insert_sql(), (spec.name, event_id, session_id, int(practice), json.dumps(data, default=str), at))
        rowid = cur.lastrowid
    return Activity(rowid, spec.name, event_id, session_id, practice, at, data)


class Bus:
    def __init__(self, db: "Database", hub: "Hub | None" = None):
        self.db = db
        self.hub = hub
        self.emitter = AsyncIOEventEmitter()
        self.specs: dict[str, EventSpec] = {}
        #: called with each record after the listeners (set by the app to the plugin hook caller)
        self.plugin_dispatch: Callable[[Activity], None] | None = None
        self.published = 0
        #: viewer sends waiting for a ``scope="bag"`` record's bags (see :meth:`dispatch`)
        self._pending: set[asyncio.Task[None]] = set()
        self.register(CORE_EVENTS)

    def register(self, specs: Iterable[EventSpec]) -> None:
        for spec in specs:
            if spec.name in self.specs and self.specs[spec.name] != spec:
                raise ValueError(f"bus event {spec.name!r} is declared twice")
            self.specs[spec.name] = spec

    def spec(self, name: str, data: dict[str, Any]) -> EventSpec:
        try:
            spec = self.specs[name]
        except KeyError:
            raise KeyError(f"bus event {name!r} is not declared (declare it in lmserver/busevents.py or through register_bus_events)") from None
        extra = set(data) - set(spec.fields)
        if extra:
            raise ValueError(f"bus event {name!r} has undeclared fields {sorted(extra)}; declared: {sorted(spec.fields)}")
        return spec

    def on(self, name: str, handler: Callable[..., Any]) -> None:
        """Listen in-process: ``handler(activity)``; ``"*"`` receives every record."""
        self.emitter.on(name, handler)

    def remove_listener(self, name: str, handler: Callable[..., Any]) -> None:
        self.emitter.remove_listener(name, handler)

    async def publish(self, name: str, data: dict[str, Any] | None = None, *, event_id: int | None = None,
                      session_id: int | None = None, practice: bool = False) -> Activity:
        data = data or {}
        spec = self.spec(name, data)
        at = time.time()
        rowid = None
        if spec.persist:
            async with self.db.transaction() as tx:
                cur = await tx.execute(_insert_sql(), (name, event_id, session_id, int(practice), json.dumps(data, default=str), at))
                rowid = cur.lastrowid
        record = Activity(rowid, name, event_id, session_id, practice, at, data)
        viewer_events = await self.bag_events(data) if spec.audience == "public" and spec.scope == "bag" else None
        self.dispatch(record, viewer_events)
        return record

    async def bag_events(self, data: dict[str, Any]) -> list[int]:
        """The events whose shopping bag lists the product of ``data`` (none when it is archived)."""
        product = data.get("product")
        pid = product.get("id") if isinstance(product, dict) else data.get("product_id")
        if not isinstance(pid, int):
            return []
        rows = await self.db.fetchall("SELECT ep.event_id FROM event_products ep JOIN products p ON p.id = ep.product_id"
                                      " WHERE ep.product_id = ? AND p.archived = 0 ORDER BY ep.event_id", (pid,))
        return [row["event_id"] for row in rows]

    def viewer_events(self, spec: EventSpec, record: Activity, bag_events: Iterable[int] | None = None) -> list[int]:
        """The events whose viewer pages receive ``record`` (the rule in :mod:`lmserver.busevents`)."""
        if spec.audience != "public" or (record.practice and not spec.practice_public):
            return []
        if spec.scope == "bag":
            return list(bag_events or ())
        return [] if record.event_id is None else [record.event_id]

    def dispatch(self, record: Activity, bag_events: Iterable[int] | None = None) -> None:
        """Hand an already-recorded activity to listeners, plugins and WebSocket clients.

        ``bag_events``: for a ``scope="bag"`` event, the events whose bag lists its product
        (:meth:`bag_events`; :meth:`publish` finds them itself); without it they are looked up in a task and the
        viewers get the record right after (staff and listeners at once).
        """
        self.published += 1
        spec = self.specs[record.name]
        for target in (record.name, "*"):
            try:
                self.emitter.emit(target, record)
            except Exception:
                log.exception("bus listener for %s failed", record.name)
        if self.plugin_dispatch is not None:
            self.plugin_dispatch(record)
        if self.hub is not None:
            self.hub.broadcast(record.to_json(), "staff")
            if spec.audience == "public":
                if spec.scope == "bag" and bag_events is None and self.viewer_events(spec, record, [0]):
                    self._send_to_bags_later(spec, record)  # a writer's record (product.stock): find its bags first
                else:
                    self._send_public(spec, record, bag_events)

    def _send_public(self, spec: EventSpec, record: Activity, bag_events: Iterable[int] | None) -> None:
        assert self.hub is not None
        public = spec.project(record.data)
        for event_id in self.viewer_events(spec, record, bag_events):
            self.hub.broadcast({"id": record.id, "name": record.name, "event_id": event_id,
                                "session_id": record.session_id if record.event_id == event_id else None,
                                "practice": record.practice, "at": record.at, "data": public}, "public", event_id)

    def _send_to_bags_later(self, spec: EventSpec, record: Activity) -> None:
        async def send() -> None:
            try:
                self._send_public(spec, record, await self.bag_events(record.data))
            except Exception:  # the database closing at shutdown: viewers reload their state on reconnect
                log.exception("bus: could not find the bags of %s", record.name)

        task = asyncio.ensure_future(send())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
