"""Going live in a named event (?event=ID), and console previews that count as no viewer."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import ClientSession
from rtcclients import Publisher, Viewer

from lmserver.appkeys import DB, LIVE


async def _event(studio: Any, starts_in: float) -> int:
    now = time.time()
    async with studio.app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES (?, 'Named show', ?, 60, ?, ?)", (f"named-{now}", now + starts_in, now, now))
        return cur.lastrowid


async def test_whip_goes_live_in_the_named_event(studio: Any) -> None:
    later = await _event(studio, 3600)
    publisher = Publisher()
    try:
        status, body = await publisher.publish(studio.http, studio.base, studio.key, query=f"?event={later}")
        assert status == 409 and "Go LIVE opens 10 minutes before the start" in body
        status, body = await publisher.publish(studio.http, studio.base, studio.key, query="?event=tomorrow")
        assert status == 400 and "'event' must be an event id" in body
        assert studio.app[LIVE].current is None
        status, body = await publisher.publish(studio.http, studio.base, studio.key, query=f"?event={later}&practice=1")
        assert status == 201, body
        assert studio.app[LIVE].current.event_id == later and studio.app[LIVE].current.practice
    finally:
        await publisher.close()


async def test_console_previews_are_not_counted_as_viewers(studio: Any) -> None:
    now_event = await _event(studio, -60)
    publisher = Publisher()
    preview, audience = Viewer(), Viewer()
    try:
        status, body = await publisher.publish(studio.http, studio.base, studio.key, query=f"?event={now_event}")
        assert status == 201, body
        csrf = await studio.login("owner")
        status, body = await preview.play(studio.http, studio.base, {"X-CSRF-Token": csrf})  # staff cookie: a preview
        assert status == 201, body
        await preview.wait_frames(3)
        assert studio.media.status()["viewers"] == 0 and studio.media.status()["previews"] == 1
        async with ClientSession() as anonymous:
            status, body = await audience.play(anonymous, studio.base)
            assert status == 201, body
            await audience.wait_frames(3)
        status = studio.media.status()
        assert status["viewers"] == 1 and status["peak_viewers"] == 1
        joined = await studio.app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'viewer.joined'")
        assert joined == 1
    finally:
        await audience.close()
        await preview.close()
        await publisher.close()
