"""Restream destinations: stored in SQLite (``restream_destinations``), managed in Settings by the owner
(``settings.manage``), started and stopped during a LIVE from the console (``show.run``), their state
read by every console (``console.view``). Stream keys and bearer tokens are stored, shown masked
(``key_hint``), and never sent back.

- ``GET/POST /api/restream/destinations``, ``PUT/DELETE /api/restream/destinations/{id}``
- ``POST /api/restream/destinations/{id}/start`` and ``/stop``
- ``GET /api/restream/status``
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .. import auth, validate
from ..db import Database
from ..errors import BadRequest, Conflict, NotFound
from ..openapi import doc
from . import MEDIA
from .restream_common import Destination, destination_from_row, load_destinations
from .rtmp import parse_target

#: name → (label, server URL, what the platform requires); "custom" is any RTMP(S) server (e.g. TikTok LIVE's)
PRESETS: dict[str, dict[str, str]] = {
    "youtube": {"label": "YouTube", "url": "rtmp://a.rtmp.youtube.com/live2",
                "needs": "H.264 + AAC, keyframes every 2 s (at most 4 s), 720p30 at 1.5–4 Mbit/s (1080p30: 3–6 Mbit/s)"},
    "twitch": {"label": "Twitch", "url": "rtmp://live.twitch.tv/app",
               "needs": "H.264 + AAC, keyframes every 2 s, constant bitrate at most 6 Mbit/s"},
    "facebook": {"label": "Facebook", "url": "rtmps://live-api-s.facebook.com:443/rtmp",
                 "needs": "RTMPS only, keyframes every 2 s, at most 4 Mbit/s at 720p, AAC 48 kHz"},
    "custom": {"label": "Custom RTMP (e.g. TikTok LIVE)", "url": "",
               "needs": "the server URL and stream key the platform shows (TikTok LIVE: keyframes every 2 s, 720p at 2–4 Mbit/s)"},
    "whip": {"label": "WHIP (lmserver, MediaMTX, a WebRTC service)", "url": "",
             "needs": "the WHIP endpoint URL and its bearer token; H.264 without B-frames + Opus (what the program is)"},
}
FIELDS = ("name", "preset", "url", "key", "start_with_live")
SCHEMES = {"rtmp": "rtmp", "rtmps": "rtmp", "http": "whip", "https": "whip"}


def mask(secret: str) -> str:
    """``••••1234`` (the last 4 characters of a long enough key), or "" when none is set."""
    if not secret:
        return ""
    return "••••" + (secret[-4:] if len(secret) >= 12 else "")


def public(dest: Destination) -> dict[str, Any]:
    """A destination as the API shows it: the key masked, never the key itself."""
    return {"id": dest.id, "name": dest.name, "kind": dest.kind, "preset": dest.preset, "url": dest.url,
            "key_set": bool(dest.secret), "key_hint": mask(dest.secret), "start_with_live": dest.start_with_live}


def check(data: dict[str, Any], old: Destination | None) -> dict[str, Any]:
    """Validate a create (``old`` None) or update body; returns the row's new values. Raises 400 saying what to fix."""
    validate.reject_unknown(data, FIELDS, "destination")
    preset = validate.choice(data, "preset", tuple(PRESETS), default=old.preset if old else "custom")
    url = validate.text(data, "url", max_len=1000, default=old.url if old else PRESETS[preset]["url"])
    if not url:
        raise BadRequest("'url' is required: the RTMP server URL (rtmp:// or rtmps://) or the WHIP endpoint (https://)")
    scheme = urlsplit(url).scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise BadRequest(f"unknown scheme {scheme + '://' if scheme else '(none)'} in 'url': use rtmp:// or rtmps:// for an RTMP"
                         " server, http:// or https:// for a WHIP endpoint")
    if (preset == "whip") != (kind == "whip"):
        raise BadRequest("the 'whip' preset takes an http(s):// WHIP endpoint; the RTMP presets take rtmp:// or rtmps://")
    name = validate.text(data, "name", max_len=60, default=old.name if old else PRESETS[preset]["label"].split(" (")[0])
    key = validate.text(data, "key", max_len=1000)
    if any(c.isspace() for c in key):
        raise BadRequest("'key' must not contain spaces or line breaks: paste the key exactly as the platform shows it")
    secret = key or (old.secret if old and old.kind == kind else "")
    if kind == "rtmp":
        try:
            parse_target(url, secret or "x")
        except ValueError as exc:
            raise BadRequest(f"'url': {exc}") from None
        if not secret:
            raise BadRequest("an RTMP destination needs its stream key in 'key' (the platform shows it beside the server URL)")
    else:
        parts = urlsplit(url)
        if not parts.hostname:
            raise BadRequest("the WHIP URL has no host: e.g. https://mediamtx.example.com:8889/studio/whip")
    start_with_live = validate.boolean(data, "start_with_live", required=False,
                                       default=old.start_with_live if old else True)
    return {"name": name or PRESETS[preset]["label"], "kind": kind, "preset": preset, "url": url.strip(), "secret": secret,
            "start_with_live": int(bool(start_with_live))}


def _db(request: web.Request) -> Database:
    db = request.app[MEDIA].db
    if db is None:
        raise RuntimeError("MediaServer.start() binds the database first")
    return db


async def _reload(request: web.Request) -> None:
    request.app[MEDIA].restream.set_destinations(await load_destinations(_db(request)))


async def _get(db: Database, dest_id: int) -> Destination:
    row = await db.fetchone("SELECT * FROM restream_destinations WHERE id = ?", (dest_id,))
    if row is None:
        raise NotFound(f"no destination {dest_id}: list them with GET /api/restream/destinations")
    return destination_from_row(row)


def _requirements(app: web.Application) -> dict[str, Any]:
    cfg = app[MEDIA].config
    warnings = []
    if cfg.keyframe_interval != 2.0:
        warnings.append(f"media.keyframe_interval is {cfg.keyframe_interval:g} s: the platforms ask for 2 s")
    if cfg.video_bitrate > 4_000_000:
        warnings.append(f"media.video_bitrate is {cfg.video_bitrate / 1e6:g} Mbit/s: Facebook accepts at most 4 Mbit/s at 720p")
    return {"program": {"width": cfg.width, "height": cfg.height, "fps": cfg.fps, "video_bitrate": cfg.video_bitrate,
                        "keyframe_interval": cfg.keyframe_interval, "audio": "AAC 128 kbit/s 48 kHz stereo (RTMP), Opus (WHIP)"},
            "warnings": warnings}


@doc("The restream destinations (keys masked), the presets with what each platform needs, and the program's settings",
     returns="{destinations: [{id, name, kind, preset, url, key_set, key_hint, start_with_live}], presets, program, warnings}",
     tags=["restream"], permission="settings.manage")
async def list_destinations(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    dests = await load_destinations(_db(request))
    return web.json_response({"destinations": [public(d) for d in dests], "presets": PRESETS, **_requirements(request.app)})


_BODY = {"name": "string: a label, 1–60 characters (default: the preset's)",
         "preset": "string: youtube, twitch, facebook, custom or whip (default custom)",
         "url": "string: rtmp:// or rtmps:// server URL, or the http(s):// WHIP endpoint (default: the preset's)",
         "key": "string: the stream key (RTMP, required) or bearer token (WHIP); on update, absent or empty keeps the stored one",
         "start_with_live": "boolean: start it with every LIVE (default true)"}


@doc("Add a restream destination", body=_BODY, returns="{destination}", tags=["restream"], permission="settings.manage")
async def create_destination(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    values = check(await validate.json_body(request), None)
    now = time.time()
    async with _db(request).transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO restream_destinations (name, kind, preset, url, secret, start_with_live, created_at, updated_at)"
            " VALUES (:name, :kind, :preset, :url, :secret, :start_with_live, :now, :now)", {**values, "now": now})
        dest_id = cur.lastrowid or 0
    await _reload(request)
    return web.json_response({"destination": public(await _get(_db(request), dest_id))}, status=201)


@doc("Change a restream destination (a running one reconnects with the new settings)", body=_BODY,
     returns="{destination}", tags=["restream"], permission="settings.manage")
async def update_destination(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    db = _db(request)
    old = await _get(db, validate.path_int(request))
    values = check(await validate.json_body(request), old)
    async with db.transaction() as tx:
        await tx.execute("UPDATE restream_destinations SET name = :name, kind = :kind, preset = :preset, url = :url,"
                         " secret = :secret, start_with_live = :start_with_live, updated_at = :now WHERE id = :id",
                         {**values, "now": time.time(), "id": old.id})
    await _reload(request)
    return web.json_response({"destination": public(await _get(db, old.id))})


@doc("Remove a restream destination (it stops if running)", returns="{deleted: id}", tags=["restream"],
     permission="settings.manage")
async def delete_destination(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    db = _db(request)
    dest = await _get(db, validate.path_int(request))
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM restream_destinations WHERE id = ?", (dest.id,))
    await _reload(request)
    return web.json_response({"deleted": dest.id})


@doc("Each destination's state: connecting, live, retrying (retry_in s), failed or stopped; its last error (naming DNS,"
     " refused, auth, TLS or timeout), bitrate, bytes sent and packets dropped; whether the slate is on",
     returns="{live, slate, destinations: [{id, name, kind, state, error, cause, retry_in, bitrate, bytes_sent, dropped}]}",
     tags=["restream"], permission="console.view")
async def restream_status(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    r = request.app[MEDIA].restream
    return web.json_response({"live": r.live, "slate": r.slate_on, "destinations": r.status()})


async def _start_stop(request: web.Request, start: bool) -> web.Response:
    await auth.require(request, "show.run")
    media = request.app[MEDIA]
    dest = await _get(_db(request), validate.path_int(request))
    r = media.restream
    if dest.id not in r.destinations:
        r.set_destinations(await load_destinations(_db(request)))
    if start:
        if not r.live:
            why = "a practice session never restreams" if media.ingest is not None and media.ingest.session.practice \
                else "the studio is not live"
            raise Conflict(f"{why}: destinations start during a LIVE")
        r.start(dest.id)
    else:
        r.stop(dest.id)
    return web.json_response({"destinations": r.status()})


@doc("Start one destination during the LIVE", returns="{destinations}", tags=["restream"], permission="show.run")
async def start_destination(request: web.Request) -> web.Response:
    return await _start_stop(request, True)


@doc("Stop one destination (the others, the viewers and the recording go on)", returns="{destinations}",
     tags=["restream"], permission="show.run")
async def stop_destination(request: web.Request) -> web.Response:
    return await _start_stop(request, False)


def setup_restream_routes(app: web.Application) -> None:
    app.router.add_get("/api/restream/destinations", list_destinations)
    app.router.add_post("/api/restream/destinations", create_destination)
    app.router.add_put("/api/restream/destinations/{id}", update_destination)
    app.router.add_delete("/api/restream/destinations/{id}", delete_destination)
    app.router.add_post("/api/restream/destinations/{id}/start", start_destination)
    app.router.add_post("/api/restream/destinations/{id}/stop", stop_destination)
    app.router.add_get("/api/restream/status", restream_status)
