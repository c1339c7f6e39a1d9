"""LiveState: one session at a time, ending, and resuming a session interrupted by a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lmserver.appkeys import DB, LIVE
from lmserver.errors import Conflict


async def test_one_session_at_a_time_and_end(client: Any) -> None:
    live = client.app[LIVE]
    s = await live.begin("test", practice=True)
    with pytest.raises(Conflict, match="already live from another device"):
        await live.begin("test")
    ended = await live.end("done")
    assert ended is not None and ended.id == s.id and live.current is None
    row = await client.app[DB].fetchone("SELECT practice, ended_at, end_reason FROM sessions WHERE id = ?", (s.id,))
    assert row["practice"] == 1 and row["ended_at"] is not None and row["end_reason"] == "done"


async def test_interrupted_session_resumes_after_restart(aiohttp_client: Any, app_factory: Any, data_dir: Path) -> None:
    first = await aiohttp_client(app_factory())
    s = await first.app[LIVE].begin("test", practice=False)
    await first.app[LIVE].interrupt("the server stopped")
    await first.close()
    # a new server process on the same data directory
    second = await aiohttp_client(app_factory())
    resumed = await second.app[LIVE].begin("test", practice=False)
    assert resumed.id == s.id and resumed.resumed
    await second.app[LIVE].end("done")


async def test_stale_interrupted_session_is_closed_not_resumed(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(events={"resume_minutes": 0}))
    live = client.app[LIVE]
    s = await live.begin("test")
    await live.interrupt("crash")
    await client.app[DB].execute("UPDATE sessions SET started_at = started_at - 3600 WHERE id = ?", (s.id,))
    await client.app[DB].execute("UPDATE activity SET created_at = created_at - 3600 WHERE session_id = ?", (s.id,))
    fresh = await live.begin("test")
    assert fresh.id != s.id and not fresh.resumed
    row = await client.app[DB].fetchone("SELECT end_reason FROM sessions WHERE id = ?", (s.id,))
    assert row["end_reason"] == "interrupted"


async def test_bus_records_are_tagged_with_the_live_session(client: Any) -> None:
    """``LiveState.tags``: the one way a record says which session it happened in (e.g. a comment pinned
    in another event while live carries no session)."""
    app = client.app
    live = app[LIVE]
    none = {"event_id": None, "session_id": None, "practice": False}
    assert live.tags() == none and live.tags(7) == {**none, "event_id": 7}
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES ('t-1', 'T', ?, 60, 0, 0)", (time.time() - 60,))
        eid = cur.lastrowid
    s = await live.begin("test", practice=True, event_id=eid)
    assert live.tags() == live.tags(eid) == {"event_id": eid, "session_id": s.id, "practice": True}
    assert live.tags(eid + 1) == {"event_id": eid + 1, "session_id": None, "practice": False}
    started = await app[DB].fetchone("SELECT event_id, session_id, practice FROM activity WHERE name = 'stream.started'")
    assert dict(started) == {"event_id": eid, "session_id": s.id, "practice": 1}
