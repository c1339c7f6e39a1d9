"""Session recordings: the ``recordings`` table, the files, the disk checks, retention, and their routes.

One row per *part*: a session records into part 1; a session resumed after a restart records into part 2,
and so on (:func:`session_parts` lists them in order; the replay plays them one after the other and maps a
wall-clock time T to ``(part, T - part.started_at)``).

A part's life: :meth:`RecordingManager.open_part` (when a session goes live or resumes) inserts the row
(``state='recording'``) and hands the media server a :class:`~lmserver.media.recorder.Recorder` (a fragmented
MP4 as it is written) → :meth:`RecordingManager.finish` (the program stopped) remuxes it to a fast-start MP4
in a worker thread: ``complete`` (or ``failed`` with the reason; ``stopped`` when the disk check stopped it
early, remuxed all the same). A part left ``recording`` by a process that died (``kill -9``, power cut) is
remuxed at the next startup (:meth:`RecordingManager.recover`).

Disk: before going live and every ``[media] recording_check_seconds`` while recording, the free space of the
data directory's disk is checked: below ``recording_min_free_gb`` the console gets a warning
(``recording.warning``); below half of it the recording stops (never the LIVE). Retention
(``recording_keep_days``, ``recording_max_total_gb``) deletes the oldest finished recordings at startup and
after each session. Deleting marks the row ``deleted`` (its ``path`` NULL) and removes the file.

Routes: ``GET /recordings/{id}/video.mp4`` (the file with HTTP ranges; staff with ``console.view``, anyone
once the session's replay is published and it is not practice), ``GET /api/sessions/{sid}/recording``,
``GET /api/recordings`` and ``DELETE /api/recordings/{id}`` (``settings.manage``), and the Settings page
``/settings/recordings``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from . import auth, validate
from .appkeys import CONFIG, DB, LIVE
from .errors import Conflict, NotFound
from .media.recorder import NothingRecorded, Recorder, remux
from .openapi import doc
from .templating import page

if TYPE_CHECKING:
    from .bus import Bus
    from .config import Config
    from .db import Database
    from .live import LiveSession, LiveState

log = logging.getLogger(__name__)

GB = 1024**3
#: the states of a part (``deleted``: the file is gone, the row stays for the record)
STATES = ("recording", "complete", "failed", "stopped", "deleted")


def video_url(recording_id: int) -> str:
    return f"/recordings/{recording_id}/video.mp4"


def _part(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "part": row["part"], "started_at": row["started_at"], "duration": row["duration"],
            "size": row["size"], "state": row["state"], "url": video_url(row["id"])}


async def session_parts(db: "Database", session_id: int) -> list[dict[str, Any]]:
    """The session's recorded parts in order, each ``{"id", "part", "started_at", "duration", "size", "state",
    "url"}``; ``url`` is the fast-start MP4 once the part is ``complete`` (while ``recording``: the fragmented MP4
    as written so far). Deleted parts and parts that never got a first keyframe (no ``started_at``) are left out."""
    rows = await db.fetchall("SELECT * FROM recordings WHERE session_id = ? AND state != 'deleted' AND path IS NOT NULL"
                             " AND started_at IS NOT NULL ORDER BY part", (session_id,))
    return [_part(r) for r in rows]


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds ``path`` (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass
class Part:
    """The part being recorded: its row (inserted in the background: await ``row`` for its id), recorder, session."""

    row: "asyncio.Task[int]"
    recorder: Recorder
    session: "LiveSession"

    @property
    def id(self) -> int | None:
        done = self.row.done() and not self.row.cancelled() and self.row.exception() is None
        return self.row.result() if done else None


class RecordingManager:
    """The recordings of the studio: parts, disk checks, retention, recovery (``app[RECORDINGS]``)."""

    def __init__(self, config: "Config", db: "Database", bus: "Bus | None", live: "LiveState | None" = None,
                 *, free: Callable[[Path], int] = free_bytes) -> None:
        self.config = config
        self.media = config.media
        self.db, self.bus, self.live = db, bus, live
        self.data_dir = Path(config.data_dir)
        self.dir = self.data_dir / "recordings"
        self._free = free
        #: the part being recorded
        self.current: Part | None = None
        #: what the console shows of the recording while live (see :meth:`snapshot`)
        self.warning: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._check_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ helpers

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _publish(self, name: str, data: dict[str, Any], session: "LiveSession | None") -> None:
        if self.bus is None:
            return
        from .live import session_tags

        try:
            await self.bus.publish(name, data, **session_tags(session))
        except Exception:
            log.exception("RecordingManager: publishing %s failed", name)

    def free_gb(self) -> float:
        return self._free(self.dir) / GB

    def disk_level(self) -> tuple[str, float]:
        """``("ok" | "low" | "stop", free GB)``: low below ``recording_min_free_gb``, stop below half of it."""
        free = self.free_gb()
        minimum = self.media.recording_min_free_gb
        if free < minimum / 2:
            return "stop", free
        if free < minimum:
            return "low", free
        return "ok", free

    # ------------------------------------------------------------------ a part

    def open_part(self, session: "LiveSession") -> Recorder | None:
        """A new part for ``session`` (going live or resuming): the disk is checked and the recorder returned at
        once (None: not recorded, the console is told why); its row is inserted in the background (nothing
        awaits between ``stream.started`` and the ingest being in place)."""
        level, free = self.disk_level()
        minimum = self.media.recording_min_free_gb
        if level == "stop":
            self.warning = (f"not recording: only {free:.1f} GB free on the recordings disk (recording needs at least"
                            f" {minimum / 2:g} GB; free space or lower [media] recording_min_free_gb)")
            log.warning("RecordingManager: session %s %s", session.id, self.warning)
            self._spawn(self._publish("recording.warning", {"level": "critical", "message": self.warning,
                                                            "free_gb": round(free, 2), "recording_id": None}, session),
                        "recording-warning")
            return None
        now = time.time()
        stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = f"recordings/session-{session.id}-{stamp}{'-practice' if session.practice else ''}"
        rel, n = base + ".mp4", 1
        while (self.data_dir / rel).exists():  # a second part within the same second
            n += 1
            rel = f"{base}-{n}.mp4"
        row = self._spawn(self._insert(session.id, rel, now), "recording-row")
        recorder = Recorder(self.data_dir / rel, self.media.width, self.media.height, self.media.fps,
                            on_start=lambda at: self._spawn(self._started(row, at), "recording-started"))
        self.current = Part(row, recorder, session)
        self.warning = None
        self._check_task = self._spawn(self._check_loop(self.current, level, free), "recording-disk-check")
        log.info("RecordingManager: session %s records into %s", session.id, rel)
        return recorder

    async def _insert(self, session_id: int, rel: str, now: float) -> int:
        async with self.db.transaction() as tx:
            cur = await tx.execute("INSERT INTO recordings (session_id, part, path, state, size, duration, created_at)"
                                   " SELECT ?, COALESCE(MAX(part), 0) + 1, ?, 'recording', 0, 0, ? FROM recordings"
                                   " WHERE session_id = ?", (session_id, rel, now, session_id))
            return int(cur.lastrowid or 0)

    async def _started(self, row: "asyncio.Task[int]", at: float) -> None:
        await self.db.execute("UPDATE recordings SET started_at = ? WHERE id = ?", (at, await row))

    async def _warn_low(self, free: float, session: "LiveSession", rid: int) -> None:
        minimum = self.media.recording_min_free_gb
        self.warning = (f"the recordings disk is nearly full: {free:.1f} GB free (below {minimum:g} GB); recording"
                        f" stops below {minimum / 2:g} GB")
        await self._publish("recording.warning", {"level": "warning", "message": self.warning, "free_gb": round(free, 2),
                                                  "recording_id": rid}, session)

    async def check_disk(self) -> str:
        """One disk check of the part being recorded (every ``recording_check_seconds``): warn, or stop the
        recording (never the LIVE); the row's size and duration are brought up to date. Returns the level."""
        if self.current is None:
            return "ok"
        part = self.current
        rid, recorder, session = await part.row, part.recorder, part.session
        level, free = self.disk_level()
        if recorder.running:
            await self.db.execute("UPDATE recordings SET size = ?, duration = ? WHERE id = ? AND state = 'recording'",
                                  (self._size(recorder), round(recorder.duration, 3), rid))
        if level == "stop" and recorder.running:
            minimum = self.media.recording_min_free_gb
            reason = (f"recording stopped: only {free:.1f} GB free on the recordings disk (below {minimum / 2:g} GB);"
                      " the LIVE goes on. Free space to record the next session")
            recorder.stop(reason)
            self.warning = reason
            log.warning("RecordingManager: session %s: %s", session.id, reason)
            await self.db.execute("UPDATE recordings SET state = 'stopped', error = ? WHERE id = ?", (reason, rid))
            await self._publish("recording.warning", {"level": "critical", "message": reason, "free_gb": round(free, 2),
                                                      "recording_id": rid}, session)
        elif level == "low" and recorder.running and self.warning is None:
            await self._warn_low(free, session, rid)
        elif level == "ok" and recorder.running:
            self.warning = None
        return level

    async def _check_loop(self, part: "Part", level: str, free: float) -> None:
        if level == "low":
            await self._warn_low(free, part.session, await part.row)
        while self.current is part:
            await asyncio.sleep(self.media.recording_check_seconds)
            try:
                await self.check_disk()
            except Exception:
                log.exception("RecordingManager: the disk check failed")

    @staticmethod
    def _size(recorder: Recorder) -> int:
        try:
            return recorder.path.stat().st_size
        except OSError:
            return 0

    def snapshot(self) -> dict[str, Any] | None:
        """The recording as the console shows it (in ``stream.health``): ``{id, state, size, duration,
        warning}``, or None when the live is not recorded."""
        if self.current is None:
            return None if self.warning is None else {"id": None, "state": "off", "size": 0, "duration": 0,
                                                      "warning": self.warning}
        rid, recorder = self.current.id, self.current.recorder
        state = "failed" if recorder.error else "stopped" if recorder.stopped else "recording"
        return {"id": rid, "state": state, "size": recorder.bytes, "duration": round(recorder.duration, 1),
                "warning": self.warning}

    async def finish(self) -> None:
        """The program stopped (its sinks are closed): remux the part in a worker thread, then apply retention."""
        current, self.current = self.current, None
        self.warning = None
        if self._check_task is not None:
            self._check_task.cancel()
            self._check_task = None
        if current is None:
            return
        try:
            rid = await current.row
        except Exception:
            log.exception("RecordingManager: the recording's row could not be written; its file is %s", current.recorder.path)
            return
        recorder = current.recorder
        self._spawn(self._finalize(rid, recorder.error, recorder.duration), "recording-remux")

    async def _finalize(self, rid: int, error: str | None = None, duration: float | None = None) -> None:
        row = await self.db.fetchone("SELECT * FROM recordings WHERE id = ?", (rid,))
        if row is None or row["path"] is None or row["state"] not in ("recording", "stopped"):
            return
        path = self.data_dir / row["path"]
        size = path.stat().st_size if path.exists() else 0
        state = "stopped" if row["state"] == "stopped" else "complete"
        if size and duration and self._free(self.dir) < size * 1.1 + 64 * 1024**2:
            # no room for the fast-start copy: the fragmented MP4 plays as it is (seeking is slower)
            note = "kept as a fragmented MP4: not enough free space to remux it"
            await self.db.execute("UPDATE recordings SET state = ?, duration = ?, size = ?, error = COALESCE(error, ?)"
                                  " WHERE id = ?", (state, round(duration, 3), size, note, rid))
            log.warning("RecordingManager: recording %s %s", rid, note)
            return
        loop = asyncio.get_running_loop()
        try:
            duration, size = await loop.run_in_executor(None, remux, path, path)
        except NothingRecorded as exc:
            reason = error or str(exc)
            await self.db.execute("UPDATE recordings SET state = 'failed', error = ?, size = ? WHERE id = ?",
                                  (reason, path.stat().st_size if path.exists() else 0, rid))
            log.warning("RecordingManager: recording %s failed: %s", rid, reason)
        except Exception as exc:
            await self.db.execute("UPDATE recordings SET state = 'failed', error = ?, size = ? WHERE id = ?",
                                  (f"the remux failed: {exc}", path.stat().st_size if path.exists() else 0, rid))
            log.exception("RecordingManager: remux of recording %s failed", rid)
        else:
            await self.db.execute("UPDATE recordings SET state = ?, duration = ?, size = ?, error = COALESCE(error, ?)"
                                  " WHERE id = ?", (state, round(duration, 3), size, error, rid))
            log.info("RecordingManager: recording %s %s: %.1f s, %d bytes", rid, state, duration, size)
        await self.apply_retention()

    # ------------------------------------------------------------------ startup, retention, delete

    async def recover(self) -> None:
        """At startup: every part still ``recording`` was left by a process that died; remux what is there."""
        rows = await self.db.fetchall("SELECT id FROM recordings WHERE state = 'recording' ORDER BY id")
        for row in rows:
            if self.current is not None and self.current.id == row["id"]:
                continue
            log.info("RecordingManager: recovering recording %s (the server stopped while it was recording)", row["id"])
            await self._finalize(row["id"], None)
        await self.apply_retention()

    async def apply_retention(self) -> list[int]:
        """Delete finished recordings older than ``recording_keep_days``, then the oldest ones until all of
        them fit in ``recording_max_total_gb`` (0: no limit). Returns the ids deleted."""
        keep_days, max_gb = self.media.recording_keep_days, self.media.recording_max_total_gb
        rows = await self.db.fetchall("SELECT id, created_at, size FROM recordings WHERE state IN ('complete', 'failed',"
                                      " 'stopped') AND path IS NOT NULL ORDER BY created_at, id")
        doomed: list[int] = []
        if keep_days > 0:
            cutoff = time.time() - keep_days * 86400
            doomed += [r["id"] for r in rows if r["created_at"] < cutoff]
        if max_gb > 0:
            live = await self.db.fetchval("SELECT COALESCE(SUM(size), 0) FROM recordings WHERE state = 'recording'") or 0
            total = live + sum(r["size"] or 0 for r in rows if r["id"] not in doomed)
            for r in rows:
                if total <= max_gb * GB:
                    break
                if r["id"] not in doomed:
                    doomed.append(r["id"])
                    total -= r["size"] or 0
        for rid in doomed:
            await self._delete(rid, "retention")
        if doomed:
            log.info("RecordingManager: retention deleted recordings %s", doomed)
        return doomed

    def is_live(self, session_id: int) -> bool:
        current = self.live.current if self.live is not None else None
        return current is not None and current.id == session_id

    async def delete(self, rid: int) -> dict[str, Any]:
        """Delete a recording's file (the row stays, ``state='deleted'``); 409 while its session is live."""
        row = await self.db.fetchone("SELECT * FROM recordings WHERE id = ?", (rid,))
        if row is None or row["state"] == "deleted":
            raise NotFound(f"recording {rid} does not exist (or was already deleted)")
        if self.is_live(row["session_id"]):
            raise Conflict(f"recording {rid} belongs to session {row['session_id']}, which is live: end the LIVE first,"
                           " then delete it")
        if row["state"] == "recording":
            raise Conflict(f"recording {rid} is still being finished (remuxed): try again in a moment")
        await self._delete(rid, "deleted")
        return {"id": rid, "state": "deleted"}

    async def _delete(self, rid: int, why: str) -> None:
        row = await self.db.fetchone("SELECT path FROM recordings WHERE id = ?", (rid,))
        if row is None:
            return
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE recordings SET state = 'deleted', path = NULL, error = ? WHERE id = ?", (why, rid))
        if row["path"]:
            (self.data_dir / row["path"]).unlink(missing_ok=True)

    async def close(self) -> None:
        """Shutdown: let running remuxes finish (the files stay consistent)."""
        if self._check_task is not None:
            self._check_task.cancel()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=120)


RECORDINGS: web.AppKey[RecordingManager] = web.AppKey("recordings", RecordingManager)

# --------------------------------------------------------------------------------------------- routes

routes = web.RouteTableDef()


async def _listing(db: "Database", where: str = "r.state != 'deleted'", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT r.*, s.event_id, s.practice, s.started_at AS session_started_at, s.ended_at AS session_ended_at,"
        " s.replay_published, e.title AS event_title FROM recordings r JOIN sessions s ON s.id = r.session_id"
        f" LEFT JOIN events e ON e.id = s.event_id WHERE {where} ORDER BY r.created_at DESC, r.id DESC", params)
    out = []
    for r in rows:
        item = _part(r)
        item.update(session_id=r["session_id"], event_id=r["event_id"], event_title=r["event_title"],
                    practice=bool(r["practice"]), error=r["error"], created_at=r["created_at"],
                    session_started_at=r["session_started_at"], session_ended_at=r["session_ended_at"])
        out.append(item)
    return out


@routes.get("/recordings/{id}/video.mp4")
async def video(request: web.Request) -> web.StreamResponse:
    """The part's MP4 with HTTP ranges (``?download=1``: as an attachment)."""
    rid = validate.path_int(request)
    app = request.app
    row = await app[DB].fetchone("SELECT r.*, s.practice, s.replay_published FROM recordings r"
                                 " JOIN sessions s ON s.id = r.session_id WHERE r.id = ?", (rid,))
    if row is None or not (row["replay_published"] and not row["practice"]):
        await auth.require(request, "console.view")
    if row is None:
        raise NotFound(f"recording {rid} does not exist")
    path = Path(app[CONFIG].data_dir) / row["path"] if row["path"] else None
    if path is None or not path.is_file():
        raise NotFound(f"the video of recording {rid} was deleted" if row["state"] == "deleted" or path is None
                       else f"the video file of recording {rid} is missing from the data directory")
    headers = {"Cache-Control": "no-cache" if row["state"] == "recording" else "private, max-age=3600"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="session-{row["session_id"]}-part{row["part"]}.mp4"'
    return web.FileResponse(path, headers=headers)


@routes.get("/api/sessions/{sid}/recording")
@doc("A session's recording: its parts in order (a session resumed after a restart has several), each with the URL of "
     "its MP4 (HTTP ranges), and whether the replay is published",
     returns="{session_id, parts: [{id, part, started_at, duration, size, state, url}], published}",
     tags=["recordings"], permission="console.view")
async def api_session_recording(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    sid = validate.path_int(request, "sid")
    db = request.app[DB]
    row = await db.fetchone("SELECT id, replay_published FROM sessions WHERE id = ?", (sid,))
    if row is None:
        raise NotFound(f"session {sid} does not exist")
    return web.json_response({"session_id": sid, "parts": await session_parts(db, sid), "published": bool(row["replay_published"])})


@routes.get("/api/recordings")
@doc("Every recording (newest first) with its event, session, duration, size and state; and the disk's free space",
     returns="{recordings: [{id, part, session_id, event_id, event_title, practice, started_at, duration, size, state, "
             "error, url, created_at, live}], free_gb, total_gb, total_bytes}", tags=["recordings"], permission="settings.manage")
async def api_recordings(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    return web.json_response(await _recordings_context(request))


async def _recordings_context(request: web.Request) -> dict[str, Any]:
    app = request.app
    items = await _listing(app[DB])
    live = app[LIVE].current
    for item in items:
        item["live"] = live is not None and live.id == item["session_id"]
    manager = app.get(RECORDINGS)
    free = manager.free_gb() if manager is not None else free_bytes(Path(app[CONFIG].data_dir)) / GB
    total = sum(i["size"] or 0 for i in items)
    return {"recordings": items, "free_gb": round(free, 2), "total_gb": round(total / GB, 3), "total_bytes": total}


@routes.delete("/api/recordings/{id}")
@doc("Delete a recording's video file (the row stays as 'deleted'); refused (409) while its session is live",
     returns="{id, state}", tags=["recordings"], permission="settings.manage")
async def api_delete_recording(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    rid = validate.path_int(request)
    manager = request.app.get(RECORDINGS)
    if manager is None:  # pragma: no cover - media_ctx always sets it
        raise NotFound("recordings are not available")
    return web.json_response(await manager.delete(rid))


@routes.get("/settings/recordings")
@page("recordings.html")
async def recordings_page(request: web.Request) -> dict[str, Any]:
    await auth.require(request, "settings.manage")
    return await _recordings_context(request)


__all__ = ["RECORDINGS", "RecordingManager", "session_parts", "video_url", "routes"]
