"""The persisted scheduler: timers that fire at a wall-clock time, across restarts; and the live tick.

A plugin names its callbacks once, through the ``register_timers`` hook, and sets timers by key::

    @hookimpl
    def register_timers():
        return {"poll.close": close_poll}      # handler(app, timer), may be async

    await api.schedule_at(app, time.time() + 300, f"poll.close:{pid}", "poll.close", {"id": pid})
    await api.cancel_timer(app, f"poll.close:{pid}")
    await api.pending_timers(app, "poll.close:")   # [Timer(key, handler, payload, due_at)]

A timer is a row of the ``timers`` table: (key, handler name, JSON payload, due time). Nothing of it
lives only in memory, so a 5-minute countdown set before a restart fires at its wall-clock time after
it; one whose time passed while the server was down fires at startup (late: ``timer.due_at`` says when
it was due, the handler decides what that means).

**Guarantee: at least once, in due order, one at a time.**

- A timer's row is deleted only *after* its handler returned, in one transaction that deletes exactly
  that setting of the timer (same key and same token: a timer the handler or anyone else re-set
  meanwhile is kept). If the server stops or crashes while a handler runs, or before that delete
  commits, the timer fires again at the next start. So make handlers idempotent: check your own state
  ("close the poll unless it is closed"), or do the handler's writes and a "done" mark in
  one transaction of your own.
- A handler that raises is logged with its plugin's name and its timer is deleted (not retried: a
  bug would fire forever). A handler whose name is no longer registered (plugin disabled or
  uninstalled) leaves its timers untouched; they fire when it is registered again.
- Timers fire whether or not the studio is live; a handler that only matters while live checks
  ``api.current_session(app)``. Handlers run one at a time on the event loop: keep them short and
  start a task for long work. The wait is recomputed at least once a minute, so a wall-clock change
  (NTP) delays a timer by at most that.

The **tick** (``tick`` hook) is the other clock: about once a second while the studio is live, every
implementation is called with the running session; a slow tick delays the next one, ticks never pile up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import secrets
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from aiohttp import web

from .plugins.manager import await_me_maybe
from .plugins.types import Timer, TimerHandler

if TYPE_CHECKING:
    from .db import Database
    from .plugins.manager import PluginManager

log = logging.getLogger(__name__)

#: the longest the scheduler sleeps before looking at the table again (wall-clock changes, safety)
MAX_WAIT = 60.0
KEY_MAX = 200
TICK_SECONDS = 1.0


class Scheduler:
    """The app's scheduler (``app[SCHEDULER]``): :meth:`at`, :meth:`cancel`, :meth:`pending`."""

    def __init__(self, app: web.Application, db: "Database", pm: "PluginManager"):
        self.app = app
        self.db = db
        self.handlers: dict[str, tuple[str, TimerHandler]] = {}
        for plugin, answer in pm.call_sync_named("register_timers"):
            for name, fn in dict(answer).items():
                if not isinstance(name, str) or not name or not callable(fn):
                    raise ValueError(f"plugin {plugin}: register_timers answers {{name: callable}}, got {name!r}: {fn!r}")
                if name in self.handlers:
                    raise ValueError(f"timer handler {name!r} is registered twice (by {self.handlers[name][0]} and {plugin})")
                self.handlers[name] = (plugin, fn)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.fired = 0

    # ------------------------------------------------------------------ API
    async def at(self, when: float | dt.datetime, key: str, handler: str, payload: Any = None) -> Timer:
        """Set (or re-set) the timer ``key`` to call ``handler`` at ``when`` (UNIX seconds or an aware datetime).

        A pending timer with the same key is replaced. ``payload`` must be JSON-serialisable. Raises
        ValueError (unknown handler, bad key, time or payload) — a plugin's bug, not the user's input.
        """
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise ValueError("the timer's time must be an aware datetime (with a time zone) or UNIX seconds")
            when = when.timestamp()
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
            raise ValueError(f"the timer's time must be UNIX seconds, got {when!r}")
        if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX:
            raise ValueError(f"a timer key is a string of 1 to {KEY_MAX} characters, got {key!r}")
        if handler not in self.handlers:
            raise ValueError(f"no timer handler named {handler!r}: register it with the register_timers hook "
                             f"(registered: {', '.join(sorted(self.handlers)) or 'none'})")
        try:
            data = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the payload of timer {key!r} must be JSON: {exc}") from None
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO timers (key, handler, payload, due_at, token, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET handler = excluded.handler, payload = excluded.payload,"
                " due_at = excluded.due_at, token = excluded.token, created_at = excluded.created_at",
                (key, handler, data, float(when), secrets.token_hex(8), time.time()))
        self._wake.set()
        return Timer(key, handler, payload, float(when))

    async def cancel(self, key: str) -> bool:
        """Remove the pending timer ``key``; False when there was none."""
        async with self.db.transaction() as tx:
            cur = await tx.execute("DELETE FROM timers WHERE key = ?", (key,))
            removed = cur.rowcount > 0
        self._wake.set()
        return removed

    async def pending(self, prefix: str = "") -> list[Timer]:
        """Pending timers whose key starts with ``prefix``, soonest first."""
        rows = await self.db.fetchall(
            "SELECT key, handler, payload, due_at FROM timers WHERE substr(key, 1, ?) = ? ORDER BY due_at, key",
            (len(prefix), prefix))
        return [Timer(r["key"], r["handler"], json.loads(r["payload"]), r["due_at"]) for r in rows]

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lmserver-scheduler")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _next(self) -> Any:
        names = list(self.handlers)
        if not names:
            return None
        return await self.db.fetchone(
            f"SELECT * FROM timers WHERE handler IN ({', '.join('?' * len(names))}) ORDER BY due_at, key LIMIT 1", names)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                row = await self._next()
            except Exception:  # the database hiccupped: try again shortly, never stop the loop
                log.exception("scheduler: reading the timers failed")
                row, delay = None, 1.0
            else:
                delay = MAX_WAIT if row is None else row["due_at"] - time.time()
            if row is not None and delay <= 0:
                await self._fire(row)
                continue
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races a wake-up
                async with asyncio.timeout(min(delay, MAX_WAIT)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _fire(self, row: Any) -> None:
        timer = Timer(row["key"], row["handler"], json.loads(row["payload"]), row["due_at"])
        plugin, fn = self.handlers[timer.handler]
        try:
            await await_me_maybe(fn(self.app, timer))
        except asyncio.CancelledError:
            raise  # stopping: the row stays, the timer fires again at the next start
        except Exception:
            log.exception("timer %s (handler %s of plugin %s) failed; it is dropped", timer.key, timer.handler, plugin)
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM timers WHERE key = ? AND token = ?", (row["key"], row["token"]))
        self.fired += 1


SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler", Scheduler)


async def _ticker(app: web.Application, pm: "PluginManager") -> None:
    from .appkeys import LIVE

    loop = asyncio.get_running_loop()
    next_at = loop.time() + TICK_SECONDS
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at = max(next_at + TICK_SECONDS, loop.time() + TICK_SECONDS / 2)  # never pile up after a slow tick
        session = app[LIVE].current
        if session is not None:
            await pm.call("tick", app=app, session=session, now=time.time())


async def clocks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the scheduler and the tick for the app's lifetime (after the core context: needs the database)."""
    from .appkeys import PM

    pm = app[PM]
    app[SCHEDULER].start()
    ticker = asyncio.create_task(_ticker(app, pm), name="lmserver-tick") if pm.impls("tick") else None
    try:
        yield
    finally:
        if ticker is not None:
            ticker.cancel()
            try:
                await ticker
            except asyncio.CancelledError:
                pass
        await app[SCHEDULER].stop()
