"""Database: migrations (ordered, recorded, atomic), transactions, and the group-commit writer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from lmserver.db import Database, GroupCommitWriter, Migration, run_migrations
from lmserver.migrations import MIGRATIONS


def test_migrations_run_once_in_order_and_record_owner(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    extra = [Migration("plugin_a", "001_t", "CREATE TABLE a_t (x INTEGER)"),
             Migration("plugin_a", "002_t", "INSERT INTO a_t VALUES (42)")]
    applied = run_migrations(path, [*MIGRATIONS, *extra])
    assert applied[0] == "core:001_initial" and applied[-2:] == ["plugin_a:001_t", "plugin_a:002_t"]
    assert run_migrations(path, [*MIGRATIONS, *extra]) == []  # idempotent
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT owner, name FROM migrations ORDER BY rowid").fetchall()[-1] == ("plugin_a", "002_t")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failing_migration_leaves_nothing_half_applied(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    bad = Migration("p", "001_bad", "CREATE TABLE half (x INTEGER);\nINSERT INTO nowhere VALUES (1);")
    with pytest.raises(sqlite3.OperationalError):
        run_migrations(path, [bad])
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == 0


async def test_transaction_rolls_back_and_concurrent_tasks_do_not_interfere(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    run_migrations(path, [Migration("t", "001", "CREATE TABLE t (x INTEGER NOT NULL)")])
    db = Database(path)
    await db.open()
    try:
        async def good(i: int) -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (?)", (i,))
                await asyncio.sleep(0)
                await tx.execute("INSERT INTO t VALUES (?)", (i,))

        async def bad() -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1000)")
                await asyncio.sleep(0)
                await tx.execute("INSERT INTO t VALUES (NULL)")  # NOT NULL fails

        results = await asyncio.gather(*(good(i) for i in range(50)), *(bad() for _ in range(10)), return_exceptions=True)
        assert sum(isinstance(r, sqlite3.IntegrityError) for r in results) == 10
        assert await db.fetchval("SELECT COUNT(*) FROM t") == 100
        assert await db.fetchval("SELECT COUNT(*) FROM t WHERE x = 1000") == 0
    finally:
        await db.close()



async def test_a_write_waits_while_another_task_reads_a_snapshot_another_connection_made_stale(tmp_path: Path) -> None:
    """A task part-way through a SELECT on the shared connection holds a read snapshot; once another connection
    (the order writer's thread) commits, SQLite answers BEGIN IMMEDIATE with "database is locked" at once, without
    consulting the busy timeout (seen at startup after a kill -9: the webhooks' first write failed). The write
    must wait for the reader, not fail."""
    path = tmp_path / "db.sqlite3"
    run_migrations(path, [Migration("t", "001", "CREATE TABLE t (x INTEGER NOT NULL)")])
    db = Database(path)
    await db.open()
    other = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
        cursor = await db.conn.execute("SELECT x FROM t")
        assert await cursor.fetchone() is not None  # the statement stays open: a read snapshot
        other.execute("INSERT INTO t VALUES (100)")  # the snapshot is now stale

        async def finish_reading() -> None:
            await asyncio.sleep(0.2)
            await cursor.fetchall()
            await cursor.close()

        reader = asyncio.create_task(finish_reading())
        await db.execute("INSERT INTO t VALUES (200)")
        await reader
        assert await db.fetchval("SELECT COUNT(*) FROM t") == 12
    finally:
        other.close()
        await db.close()

async def test_group_commit_batches_and_isolates_failures(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    run_migrations(path, [Migration("t", "001", "CREATE TABLE stock (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0));"
                                               "INSERT INTO stock VALUES (1, 100);"
                                               "CREATE TABLE orders (id INTEGER PRIMARY KEY, q INTEGER)")])
    writer = GroupCommitWriter(path)
    writer.start()
    try:
        def buy(conn: sqlite3.Connection, q: int) -> int:
            cur = conn.execute("UPDATE stock SET n = n - ? WHERE id = 1 AND n >= ?", (q, q))
            if cur.rowcount == 0:
                raise LookupError("sold out")
            return conn.execute("INSERT INTO orders (q) VALUES (?)", (q,)).lastrowid or 0

        results = await asyncio.gather(*(writer.submit(buy, 1) for _ in range(1000)), return_exceptions=True)
        ok = [r for r in results if isinstance(r, int)]
        assert len(ok) == 100
        assert all(isinstance(r, LookupError) for r in results if not isinstance(r, int))
        assert writer.batches < 1000  # grouped: far fewer commits than writes
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT n FROM stock").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 100
    finally:
        await writer.stop()
