"""Session recordings over real lives (the lavfi capture source): parts of a resumed session, the MP4 served with
HTTP ranges (206, 416, 404), who may fetch it, the disk checks (warn, stop the recording, never the LIVE),
retention and deleting (refused while live)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from pathlib import Path
from typing import Any, AsyncIterator

import av
import pytest
from aiohttp import ClientSession, CookieJar
from mediafixtures import Studio, make_app

from lmserver.appkeys import BUS, DB, LIVE
from lmserver.recordings import GB, RECORDINGS, free_bytes

BARS = {"source": "lavfi:smptebars", "options": {"video_size": "320x240", "framerate": "15"}}


@pytest.fixture
async def studio(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Studio]:
    app = make_app(tmp_path, recording_check_seconds=0.2)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        yield Studio(app, f"http://127.0.0.1:{server.port}", http, "")


async def staff(studio: Studio) -> dict[str, str]:
    return {"X-CSRF-Token": await studio.login()}


async def new_event(studio: Studio) -> int:
    now = time.time()
    async with studio.app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES (?, 'Spring drop', ?, 60, ?, ?)", (f"drop-{now}", now - 60, now, now))
        return int(cur.lastrowid or 0)


async def go_live(studio: Studio, h: dict[str, str], **body: Any) -> int:
    async with studio.http.post(studio.base + "/api/media/capture", json={**BARS, **body}, headers=h) as resp:
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["ingest"]["session_id"])


async def end_live(studio: Studio, h: dict[str, str], *, interrupt: bool = False) -> None:
    if interrupt:  # what a server stop does: the session stays open and resumes on the next go-live
        await studio.media.end_ingest("the server stopped", interrupt=True)
        return
    async with studio.http.delete(studio.base + "/api/media/capture", headers=h) as resp:
        assert resp.status == 200, await resp.text()


async def until(check: Any, what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def frames_recorded(studio: Studio, seconds: float) -> None:
    """Until the part being recorded holds ``seconds`` of video (bounded)."""
    manager = studio.app[RECORDINGS]
    for _ in range(400):
        if manager.current is not None and manager.current.recorder.duration >= seconds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the recording did not reach {seconds} s")


async def parts(studio: Studio, sid: int, h: dict[str, str], *, settled: bool = True) -> list[dict[str, Any]]:
    for _ in range(200):
        async with studio.http.get(f"{studio.base}/api/sessions/{sid}/recording", headers=h) as resp:
            assert resp.status == 200, await resp.text()
            found = (await resp.json())["parts"]
        if not settled or (found and all(p["state"] != "recording" for p in found)):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"the recording of session {sid} never settled: {found}")


async def test_a_resumed_session_records_a_second_part_and_ranges_are_served(studio: Studio) -> None:
    h = await staff(studio)
    event = await new_event(studio)
    sid = await go_live(studio, h, event_id=event)
    await frames_recorded(studio, 1.0)
    await end_live(studio, h, interrupt=True)
    assert await go_live(studio, h, event_id=event) == sid  # resumed: the same session
    await frames_recorded(studio, 1.0)
    await end_live(studio, h)
    found = await parts(studio, sid, h)
    assert [p["part"] for p in found] == [1, 2] and {p["state"] for p in found} == {"complete"}
    assert found[0]["started_at"] < found[1]["started_at"]
    assert found[1]["started_at"] >= found[0]["started_at"] + found[0]["duration"] - 0.5
    for p in found:
        assert p["url"] == f"/recordings/{p['id']}/video.mp4" and p["duration"] >= 1.0

    url = studio.base + found[1]["url"]
    async with studio.http.get(url) as resp:
        assert resp.status == 200 and resp.headers["Accept-Ranges"] == "bytes"
        whole = await resp.read()
    assert len(whole) == found[1]["size"]
    with av.open(io.BytesIO(whole)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
    async with studio.http.get(url, headers={"Range": "bytes=100-1099"}) as resp:
        assert resp.status == 206 and resp.headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
        assert await resp.read() == whole[100:1100]
    async with studio.http.get(url, headers={"Range": f"bytes={len(whole) - 10}-"}) as resp:
        assert resp.status == 206 and await resp.read() == whole[-10:]
    async with studio.http.get(url, headers={"Range": f"bytes={len(whole) + 10}-{len(whole) + 20}"}) as resp:
        assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(whole)}"
    async with studio.http.get(url + "?download=1") as resp:
        assert resp.headers["Content-Disposition"] == f'attachment; filename="session-{sid}-part2.mp4"'

    # who may fetch it: staff; anyone once the replay is published (never for practice)
    async with ClientSession() as anonymous:
        async with anonymous.get(url, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        await studio.app[DB].execute("UPDATE sessions SET replay_published = 1 WHERE id = ?", (sid,))
        async with anonymous.get(url, headers={"Range": "bytes=0-99"}) as resp:
            assert resp.status == 206 and await resp.read() == whole[:100]
        await studio.app[DB].execute("UPDATE sessions SET practice = 1 WHERE id = ?", (sid,))
        async with anonymous.get(url, allow_redirects=False) as resp:
            assert resp.status == 303
    async with studio.http.get(studio.base + "/recordings/999999/video.mp4") as resp:
        assert resp.status == 404 and "recording 999999 does not exist" in await resp.text()


async def test_practice_to_live_finishes_the_practice_part_and_records_the_live(studio: Studio) -> None:
    h = await staff(studio)
    event = await new_event(studio)
    practice = await go_live(studio, h, event_id=event, practice=True)
    await frames_recorded(studio, 1.0)
    async with studio.http.post(studio.base + "/api/media/session", json={}, headers=h) as resp:
        assert resp.status == 200, await resp.text()
        live = int((await resp.json())["session_id"])
    assert live != practice
    # the practice part is finished (remuxed, complete) while the LIVE goes on, not left "recording"
    found = await parts(studio, practice, h)
    assert [(p["part"], p["state"]) for p in found] == [(1, "complete")] and found[0]["duration"] >= 1.0
    path = Path(studio.app[RECORDINGS].data_dir) / (await studio.app[DB].fetchval("SELECT path FROM recordings WHERE id = ?", (found[0]["id"],)))
    with av.open(str(path)) as container:  # a playable MP4 of the practice
        assert container.streams.video and container.duration and container.duration / 1e6 >= 1.0
    # the LIVE records its own part
    await frames_recorded(studio, 1.0)
    assert studio.app[RECORDINGS].current.session.id == live
    await end_live(studio, h)
    found = await parts(studio, live, h)
    assert [(p["part"], p["state"]) for p in found] == [(1, "complete")] and found[0]["duration"] >= 1.0


async def test_delete_is_refused_while_live_then_the_file_goes(studio: Studio) -> None:
    h = await staff(studio)
    sid = await go_live(studio, h, practice=True)
    await frames_recorded(studio, 0.5)
    [live_part] = await parts(studio, sid, h, settled=False)
    async with studio.http.delete(f"{studio.base}/api/recordings/{live_part['id']}", headers=h) as resp:
        assert resp.status == 409 and "live" in (await resp.json())["error"]["message"]
    async with studio.http.get(studio.base + "/api/recordings", headers=h) as resp:
        listing = await resp.json()
    assert [(r["id"], r["live"], r["state"]) for r in listing["recordings"]] == [(live_part["id"], True, "recording")]
    await end_live(studio, h)
    [part] = await parts(studio, sid, h)
    path = Path(studio.app[RECORDINGS].data_dir) / (await studio.app[DB].fetchval("SELECT path FROM recordings WHERE id = ?", (part["id"],)))
    assert path.is_file()
    async with studio.http.get(studio.base + "/settings/recordings") as resp:
        page = await resp.text()
    assert resp.status == 200 and f'data-delete="{part["id"]}"' in page and "Practice" in page
    async with studio.http.delete(f"{studio.base}/api/recordings/{part['id']}", headers=h) as resp:
        assert resp.status == 200, await resp.text()
    assert not path.exists()
    assert await parts(studio, sid, h, settled=False) == []
    async with studio.http.get(studio.base + part["url"]) as resp:
        assert resp.status == 404 and "was deleted" in await resp.text()
    async with studio.http.delete(f"{studio.base}/api/recordings/{part['id']}", headers=h) as resp:
        assert resp.status == 404


async def test_disk_checks_warn_then_stop_the_recording_never_the_live(studio: Studio) -> None:
    h = await staff(studio)
    manager = studio.app[RECORDINGS]
    free = free_bytes(manager.dir) / GB
    warnings: list[dict[str, Any]] = []
    studio.app[BUS].on("recording.warning", lambda record: warnings.append(record.data))
    healths: list[dict[str, Any]] = []
    studio.app[BUS].on("stream.health", lambda record: healths.append(record.data))
    # a threshold above the real free space (but not twice it): recording, with a warning
    manager.media = dataclasses.replace(manager.media, recording_min_free_gb=free * 1.5)
    sid = await go_live(studio, h, practice=True)
    await until(lambda: warnings, "a warning")
    assert [w["level"] for w in warnings] == ["warning"] and "nearly full" in warnings[0]["message"]
    await frames_recorded(studio, 1.0)
    # now twice the free space: the next check stops the recording; the LIVE goes on
    manager.media = dataclasses.replace(manager.media, recording_min_free_gb=free * 3)
    for _ in range(100):
        if len(warnings) > 1:
            break
        await asyncio.sleep(0.05)
    assert warnings[-1]["level"] == "critical" and "recording stopped" in warnings[-1]["message"]
    assert studio.app[LIVE].current is not None and studio.app[LIVE].current.id == sid
    stopped_at = manager.current.recorder.duration
    healths.clear()
    for _ in range(100):
        if healths:
            break
        await asyncio.sleep(0.05)
    assert healths[-1]["recording"]["state"] == "stopped" and "recording stopped" in healths[-1]["recording"]["warning"]
    assert studio.app[LIVE].current is not None  # still live
    await end_live(studio, h)
    [part] = await parts(studio, sid, h)
    assert part["state"] == "stopped" and part["duration"] <= stopped_at + 0.5
    # below half the threshold before going live: the LIVE starts, unrecorded, and the console is told
    warnings.clear()
    sid2 = await go_live(studio, h, practice=True)
    await until(lambda: warnings, "a warning")
    assert [w["level"] for w in warnings] == ["critical"] and "not recording" in warnings[0]["message"]
    assert manager.snapshot() is not None and manager.snapshot()["state"] == "off"
    await end_live(studio, h)
    assert await parts(studio, sid2, h, settled=False) == []


async def test_retention_by_age_and_total_size(studio: Studio) -> None:
    manager = studio.app[RECORDINGS]
    db = studio.app[DB]
    now = time.time()
    (manager.dir).mkdir(parents=True, exist_ok=True)
    ids = []
    async with db.transaction() as tx:
        cur = await tx.execute("INSERT INTO sessions (practice, source, started_at, ended_at) VALUES (1, 'test', ?, ?)", (now, now))
        sid = cur.lastrowid
        # ages 40, 20, 10, 1 days; 1 MB each
        for part, age in enumerate((40, 20, 10, 1), start=1):
            rel = f"recordings/old-{part}.mp4"
            (manager.data_dir / rel).write_bytes(b"\0" * 1_000_000)
            cur = await tx.execute("INSERT INTO recordings (session_id, part, path, started_at, duration, size, state, created_at)"
                                   " VALUES (?, ?, ?, ?, 10, 1000000, 'complete', ?)", (sid, part, rel, now - age * 86400, now - age * 86400))
            ids.append(cur.lastrowid)
    manager.media = dataclasses.replace(manager.media, recording_keep_days=30, recording_max_total_gb=0)
    assert await manager.apply_retention() == [ids[0]]
    manager.media = dataclasses.replace(manager.media, recording_max_total_gb=2_100_000 / GB)  # room for two
    assert await manager.apply_retention() == [ids[1]]
    states = {r["id"]: (r["state"], r["path"]) for r in await db.fetchall("SELECT id, state, path FROM recordings")}
    assert states[ids[0]] == ("deleted", None) and states[ids[1]] == ("deleted", None)
    assert states[ids[2]][0] == states[ids[3]][0] == "complete"
    assert sorted(p.name for p in manager.dir.iterdir()) == ["old-3.mp4", "old-4.mp4"]
