"""Practice → LIVE in one step (issue 16, item 2): the ingest goes on, the practice session ends, a real one starts."""

from __future__ import annotations

import asyncio
import time

from lmserver.appkeys import BUS, DB
from tests.livehelpers import make_event


async def test_practice_turns_into_the_live_without_stopping_the_source(studio) -> None:
    csrf = await studio.login()
    headers = {"X-CSRF-Token": csrf}
    app = studio.app
    eid = await make_event(app, "Open window", starts_in=-60)
    async with studio.http.post(studio.base + "/api/media/session", json={}, headers=headers) as resp:
        assert resp.status == 409 and "not live" in (await resp.json())["error"]["message"]
    body = {"source": "lavfi:testsrc2", "options": {"video_size": "320x240", "framerate": "30"}, "practice": True, "event_id": eid}
    async with studio.http.post(studio.base + "/api/media/capture", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        ingest_id = (await resp.json())["ingest"]["id"]
    first = studio.media.ingest
    player = first.player
    old_program = first.program
    started = asyncio.Event()
    app[BUS].on("stream.started", lambda rec: started.set() if not rec.practice else None)
    for _ in range(200):  # the practice program gets frames (bounded: ~10 s)
        if old_program.frames_in >= 5:
            break
        await asyncio.sleep(0.05)
    assert old_program.frames_in >= 5
    async with studio.http.post(studio.base + "/api/media/session", json={"practice": "no"}, headers=headers) as resp:
        assert resp.status == 400
    async with studio.http.post(studio.base + "/api/media/session", json={}, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    await asyncio.wait_for(started.wait(), 10)
    assert answer["practice"] is False and answer["event_id"] == eid and answer["ingest"]["id"] == ingest_id
    ingest = studio.media.ingest
    assert ingest is first and ingest.player is player and ingest.program is not old_program  # same source, new program
    for _ in range(200):  # the same capture keeps feeding the LIVE's program
        if ingest.program.frames_in >= 5:
            break
        await asyncio.sleep(0.05)
    assert ingest.program.frames_in >= 5
    rows = await app[DB].fetchall("SELECT * FROM sessions WHERE event_id = ? ORDER BY id", (eid,))
    assert [(r["practice"], r["end_reason"]) for r in rows] == [(1, "practice ended: the host went LIVE"), (0, None)]
    assert rows[1]["started_at"] <= time.time()
    async with studio.http.post(studio.base + "/api/media/session", json={}, headers=headers) as resp:
        assert resp.status == 409 and "already LIVE" in (await resp.json())["error"]["message"]
    async with studio.http.delete(studio.base + "/api/media/capture", headers=headers) as resp:
        assert resp.status == 200
