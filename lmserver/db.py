"""The database: one SQLite file in the data directory (WAL, foreign keys on).

Three ways in:

- :class:`Database` wraps one aiosqlite connection. Reads go straight through; every write runs inside
  ``async with db.transaction() as tx:`` which holds an asyncio lock, so concurrent tasks never share
  (and never roll back) each other's transaction.
- :class:`GroupCommitWriter` is the write path for bursts (orders): a single writer thread with its own
  ``sqlite3`` connection (``synchronous=FULL``) that takes every queued write, runs each in its own
  SAVEPOINT and commits the whole batch in one transaction. ``bench/orders.py`` measures it against one
  aiosqlite transaction per attempt (``synchronous=NORMAL``, so the baseline is favoured): see the
  "Order path" section of BENCHMARKS.md for the figures of the last run.
- :func:`run_migrations` applies ordered migrations (core first, then each plugin's), recording
  ``(owner, name)`` in the ``migrations`` table; each runs in its own transaction.

Times are stored as UNIX seconds (REAL, UTC); money as integer cents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Sequence, TypeVar

import aiosqlite

log = logging.getLogger(__name__)

#: how long a write transaction keeps trying to begin while SQLite answers "locked" at once (see Database._begin_immediate)
BEGIN_RETRY_SECONDS = 10.0
T = TypeVar("T")

__all__ = ["Database", "GroupCommitWriter", "Migration", "run_migrations", "DB_FILENAME"]

DB_FILENAME = "lmserver.sqlite3"


@dataclass(frozen=True)
class Migration:
    """One schema step. ``apply`` is SQL (one or more statements) or ``fn(conn: sqlite3.Connection)``.

    ``owner`` is ``"core"`` or the plugin's name; ``name`` sorts the steps of one owner
    (``"001_initial"``, ``"002_..."``). A step runs once, in a transaction with its record.
    """

    owner: str
    name: str
    apply: str | Callable[[sqlite3.Connection], None]


def _connect_sync(path: Path, synchronous: str = "NORMAL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def run_migrations(path: Path, migrations: Iterable[Migration]) -> list[str]:
    """Apply the migrations not yet recorded, in the given order; return ``owner:name`` of each applied."""
    conn = _connect_sync(path, "FULL")
    applied: list[str] = []
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (owner TEXT NOT NULL, name TEXT NOT NULL,"
            " applied_at REAL NOT NULL, PRIMARY KEY (owner, name))"
        )
        done = {(r["owner"], r["name"]) for r in conn.execute("SELECT owner, name FROM migrations")}
        for m in migrations:
            if (m.owner, m.name) in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(m.apply, str):
                    for stmt in _split_sql(m.apply):
                        conn.execute(stmt)
                else:
                    m.apply(conn)
                conn.execute("INSERT INTO migrations (owner, name, applied_at) VALUES (?, ?, ?)", (m.owner, m.name, time.time()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                log.error("migration %s:%s failed; nothing of it was applied", m.owner, m.name)
                raise
            applied.append(f"{m.owner}:{m.name}")
            log.info("applied migration %s:%s", m.owner, m.name)
    finally:
        conn.close()
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a script into statements at each ``;`` that completes one (quotes and triggers respected)."""
    out, buf = [], ""
    for ch in script:
        buf += ch
        if ch == ";" and sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        if not sqlite3.complete_statement(buf + ";"):
            raise sqlite3.ProgrammingError(f"incomplete SQL statement in migration: {buf.strip()[:80]!r}")
        out.append(buf.strip())
    return out


class Database:
    """One aiosqlite connection; writes serialized by :meth:`transaction`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=10.0)
        self._conn.row_factory = aiosqlite.Row
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=10000"):
            await self._conn.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database.open() must be awaited first (the app's cleanup_ctx does it)")
        return self._conn

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchval(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), default: Any = None) -> Any:
        row = await self.fetchone(sql, params)
        return default if row is None else row[0]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``async with db.transaction() as tx: await tx.execute(...)`` — all or nothing."""
        async with self._lock:
            await self._begin_immediate()
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    async def _begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, retried (bounded: ``BEGIN_RETRY_SECONDS``) while SQLite answers "database is locked"
        or "busy" at once. The busy timeout covers an ordinary writer; it is not consulted in a few WAL cases,
        e.g. while another connection recovers the WAL left by a process killed with -9 (seen at the first
        write after such a restart). BEGIN changes nothing, so trying it again is safe."""
        deadline = time.monotonic() + BEGIN_RETRY_SECONDS
        delay = 0.02
        while True:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or time.monotonic() + delay > deadline:
                    raise
                log.warning("BEGIN IMMEDIATE: %s; trying again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One write statement in its own transaction; returns lastrowid."""
        async with self.transaction() as tx:
            cur = await tx.execute(sql, params)
            return cur.lastrowid or 0

    async def healthy(self) -> str:
        try:
            await self.fetchval("SELECT 1")
            return "ok"
        except Exception as exc:  # reported by /healthz, never raised
            return f"error: {exc}"


class GroupCommitWriter:
    """A single writer thread that commits queued writes in batches (group commit, ``synchronous=FULL``).

    ``await writer.submit(fn, *args)`` runs ``fn(conn, *args)`` in the writer thread inside its own
    SAVEPOINT of the current batch's transaction and returns its result (or raises its exception; a
    failing write is rolled back alone, the rest of the batch commits). The batch commits once, then
    every waiting caller is answered. Use it for bursts of small writes (orders).
    """

    def __init__(self, path: Path, *, max_batch: int = 512):
        self.path = Path(path)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.writes = 0

    def start(self) -> None:
        conn = _connect_sync(self.path, "FULL")
        self._thread = threading.Thread(target=self._run, args=(conn,), name="lmserver-group-commit", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    async def submit(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise RuntimeError("GroupCommitWriter.start() must be called first (the app's cleanup_ctx does it)")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, fut, loop))
        return await fut

    def _run(self, conn: sqlite3.Connection) -> None:
        stop = False
        try:
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit_batch(conn, batch)
        finally:
            conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, _fut, _loop in batch:
                conn.execute("SAVEPOINT w")
                try:
                    results.append((True, fn(conn, *args)))
                    conn.execute("RELEASE w")
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((False, exc))
            conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing of the batch is written
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            log.exception("group commit of %d writes failed", len(batch))
            results = [(False, exc)] * len(batch)
        self.batches += 1
        self.writes += len(batch)
        for (ok, value), (_fn, _args, fut, loop) in zip(results, batch):
            loop.call_soon_threadsafe(_settle, fut, ok, value)


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
