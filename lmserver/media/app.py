"""HTTP face of the media core: WHIP ingest, WHEP playback, and the console's media API.

- ``POST /whip`` (RFC 9725): ``Authorization: Bearer <stream key>`` or a staff session with
  ``show.run``; ``?practice=1`` starts a practice session; ``?event=ID`` names the event to go live in
  (default: the event whose time it is, or a new "Go LIVE now" event). ``DELETE /whip/{id}`` ends it;
  it needs the bearer token the stream was published with, or a staff session with ``show.run``
  (``PATCH`` too). The ingest id is shown only to ``show.run`` in ``/api/media/status``.
- ``POST /whep``: anyone while live; staff (``console.view``) also in practice mode (preview).
  ``DELETE /whep/{id}`` ends it: the resource id (128 random bits) is that viewer's capability.
- ``/api/media/capture``: only sources from the allow-list of :mod:`lmserver.media.capture`, by id.
- Both answer CORS preflight so a page on another origin can publish with the stream key.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

from .. import auth, validate
from ..appkeys import BUS, CONFIG, DB, LIVE, PM
from ..errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized, UnsupportedMediaType
from ..live import LiveSession
from ..openapi import doc
from ..templating import render
from . import MEDIA, MediaServer
from .capture import check_options, list_sources, select_source, selected_source
from .restream_api import setup_restream_routes
from .hls import CACHE_PLAYLIST as HLS_CACHE_PLAYLIST
from .hls import cache_blocking as HLS_CACHE_BLOCKING
from .hls import CACHE_SEGMENT as HLS_CACHE_SEGMENT
from .hls import CONTENT_TYPES as HLS_CONTENT_TYPES
from .hls import FILE_RE as HLS_FILE_RE

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, X-CSRF-Token",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch",
    "Access-Control-Max-Age": "600",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cors(handler: Handler) -> Handler:
    """Add the CORS headers to answers and to errors of a WHIP/WHEP handler."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            exc.headers = {**CORS, **exc.headers}
            raise
        response.headers.update(CORS)
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _read_offer(request: web.Request) -> str:
    if request.content_type != "application/sdp":
        raise UnsupportedMediaType(
            f"send the SDP offer with 'Content-Type: application/sdp' (got '{request.content_type or 'none'}')"
        )
    limit = request.app[CONFIG].media.max_sdp_bytes
    too_big = f"the SDP offer is too large: at most {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(too_big)
    body = b""
    while len(body) <= limit:  # bounded: stops at EOF or once past the limit
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise BadRequest(too_big)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("malformed SDP offer: it is not UTF-8 text") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes", "on")


async def options(request: web.Request) -> web.Response:
    """CORS preflight and RFC 9725 discovery."""
    headers = {**CORS, "Accept-Post": "application/sdp"}
    return web.Response(status=204, headers=headers)


def _event_param(value: object) -> int | None:
    """The event a go-live is for (``?event=ID`` on WHIP, ``event_id`` for capture); None: picked by time."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= validate.MAX_INT:
        return value
    if isinstance(value, str) and validate.ascii_int(value) is not None:
        return validate.ascii_int(value)
    raise BadRequest(f"'event' must be an event id (a whole number), got {value!r}")


async def _ingest_user(request: web.Request) -> int | None:
    token = auth.bearer_token(request)
    if token is not None and not token.startswith(auth.TOKEN_PREFIX):  # the stream key (an API token is staff)
        if not await auth.check_stream_key(request.app, token):
            raise Unauthorized("wrong stream key: copy the current key from the console's settings")
        return None
    if await auth.staff_user(request) is None:
        raise Unauthorized("send the studio's stream key as 'Authorization: Bearer <key>', or log in as staff")
    user = await auth.require(request, "show.run")
    return user.id


@_cors
async def whip_post(request: web.Request) -> web.Response:
    user_id = await _ingest_user(request)
    sdp = await _read_offer(request)
    media = request.app[MEDIA]
    ingest_id, answer = await media.publish_whip(
        sdp, user_agent=request.headers.get("User-Agent", ""), practice=_flag(request, "practice"), user_id=user_id,
        event_id=_event_param(request.query.get("event")), stream_key=auth.bearer_token(request) if user_id is None else None,
    )
    location = f"/whip/{ingest_id}"
    return web.Response(
        status=201, body=answer.encode(), content_type="application/sdp", headers={"Location": location, "ETag": f'"{ingest_id}"'}
    )


async def _may_change_ingest(request: web.Request) -> None:
    """DELETE/PATCH of a WHIP resource: the publisher's own bearer token, or staff with ``show.run``.

    For an id that is not live, the studio's current key (or staff) gets the 404; anyone else a 401/403."""
    ingest_id = request.match_info["id"]
    token = auth.bearer_token(request)
    if token is not None:
        mine = request.app[MEDIA].published_with(ingest_id, token)
        if mine or (mine is None and await auth.check_stream_key(request.app, token)):
            return
    user = await auth.staff_user(request)
    if user is not None:
        if user.can("show.run"):
            return
        raise Forbidden(f"your role ({user.role}) may not end or change the LIVE: it needs the 'show.run' permission")
    if token is not None:
        raise Unauthorized("this is not the key the stream was published with: send the same 'Authorization: Bearer <key>'"
                           " as the WHIP POST, or log in as staff")
    raise Unauthorized("send the key the stream was published with as 'Authorization: Bearer <key>', or log in as staff"
                       " with the 'show.run' permission")


@_cors
async def whip_delete(request: web.Request) -> web.Response:
    await _may_change_ingest(request)
    await request.app[MEDIA].delete_whip(request.match_info["id"])
    return web.Response(status=200)


@_cors
async def whip_patch(request: web.Request) -> web.Response:
    await _may_change_ingest(request)
    raise ApiError("trickle ICE is not supported: send all candidates in the offer, or none", status=405,
                   headers={"Allow": "DELETE, OPTIONS"})


@_cors
async def whep_patch(request: web.Request) -> web.Response:
    raise ApiError("trickle ICE is not supported: send all candidates in the offer, or none", status=405,
                   headers={"Allow": "DELETE, OPTIONS"})


@_cors
async def whep_post(request: web.Request) -> web.Response:
    sdp = await _read_offer(request)
    user = await auth.staff_user(request)
    staff = user is not None and user.can("console.view")
    media = request.app[MEDIA]
    viewer_res, answer = await media.play_whep(sdp, staff=staff, viewer_id=None if staff else auth.viewer_id(request))
    return web.Response(
        status=201, body=answer.encode(), content_type="application/sdp", headers={"Location": f"/whep/{viewer_res}"}
    )


@_cors
async def whep_delete(request: web.Request) -> web.Response:
    await request.app[MEDIA].delete_whep(request.match_info["id"])
    return web.Response(status=200)


@doc("Media status: live or not, the ingest, viewers, overlay layers and the last stream health.",
     tags=["media"], permission="console.view")
async def media_status(request: web.Request) -> web.Response:
    user = await auth.require(request, "console.view")
    status = request.app[MEDIA].status()
    if status["ingest"] is not None and not user.can("show.run"):  # the WHIP resource id is for show.run only
        status["ingest"] = {k: v for k, v in status["ingest"].items() if k != "id"}
    return web.json_response(status)


@doc("The capture sources the studio may use: this machine's cameras, the owner's configured sources (media.capture_sources)"
     " and, when media.capture_lavfi is on, test patterns; 'selected' is the studio's chosen one",
     returns="{sources: [{id, kind, label}], selected: id or null}", tags=["media"], permission="show.run")
async def capture_sources(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    sources = list_sources(request.app[CONFIG].media)
    selected = await selected_source(request.app[DB], request.app[CONFIG].media)
    return web.json_response({"sources": [s.public() for s in sources.values()], "selected": selected})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body: Any = validate.loads(await request.read()) if request.can_read_body else {}
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _source_param(value: object, sources: dict[str, Any]) -> str:
    if not isinstance(value, str) or value not in sources:
        raise BadRequest(f"unknown capture source {value!r}: use an id from GET /api/media/capture/sources"
                         " (network sources are added by the owner in media.capture_sources)")
    return value


@doc("Choose the studio's capture source (owner): moderators can then start it",
     body={"source": "a source id from GET /api/media/capture/sources"}, returns="{selected: id}", tags=["media"],
     permission="settings.manage")
async def capture_select(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    body = await _json_object(request)
    source_id = _source_param(body.get("source"), list_sources(request.app[CONFIG].media))
    await select_source(request.app[DB], source_id)
    return web.json_response({"selected": source_id})


_CAPTURE_FIELDS = ("source", "options", "practice", "event_id")


@doc("Start a capture source as the ingest: the studio's chosen one, or (owner only) another from the list, which becomes"
     " the chosen one. Devices, formats and URLs are never taken from a request.",
     body={"source": "a source id from GET /api/media/capture/sources; default: the chosen one",
           "options": {"type": "object", "description": "only video_size (e.g. \"1280x720\"), framerate (e.g. \"30\") and"
                       " pixel_format (e.g. \"yuyv422\")"},
           "practice": {"type": "boolean", "description": "practice session (viewers refused)"},
           "event_id": {"type": "integer", "description": "the event to go live in (default: by time)"}},
     returns="{\"ingest\": id, ...status}", tags=["media"], permission="show.run")
async def capture_start(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    body = await _json_object(request)
    unknown = [k for k in body if k not in _CAPTURE_FIELDS]
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}: capture takes a 'source' id from GET /api/media/capture/sources"
                         " (devices, formats and URLs are not accepted from a request; the owner adds network sources"
                         " in media.capture_sources), 'options', 'practice' and 'event_id'")
    cfg = request.app[CONFIG].media
    db = request.app[DB]
    sources = list_sources(cfg)
    selected = await selected_source(db, cfg)
    if body.get("source") in (None, ""):
        if selected is None:
            raise BadRequest("no capture source is chosen: the owner picks one from GET /api/media/capture/sources")
        if selected not in sources:
            raise BadRequest("the studio's capture source is not available now (unplugged, or removed from the configuration):"
                             " the owner picks another from GET /api/media/capture/sources")
        source_id = selected
    else:
        source_id = _source_param(body["source"], sources)
    if source_id != selected and not user.can("settings.manage"):
        raise Forbidden(f"your role ({user.role}) may start only the studio's chosen capture source"
                        f" ({selected or 'none is chosen'}): choosing another needs the 'settings.manage' permission")
    options = check_options(body.get("options"))
    media = request.app[MEDIA]
    ingest_id = await media.start_capture(sources[source_id], options, practice=bool(body.get("practice")), user_id=user.id,
                                          event_id=_event_param(body.get("event_id")))
    if source_id != selected:
        await select_source(db, source_id)
    return web.json_response({"ingest": ingest_id, **media.status()}, status=201)


@doc("Stop the local capture source (ends the session).", tags=["media"], permission="show.run")
async def capture_stop(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    media = request.app[MEDIA]
    ingest = media.ingest
    if ingest is None or ingest.kind != "capture":
        raise ApiError("the capture source is not running", status=404)
    await media.end_ingest("the host stopped the capture source", ingest_id=ingest.id)
    return web.json_response(media.status())


@doc("End the LIVE: stop whatever ingest is running (WHIP or capture).", tags=["media"], permission="show.run")
async def ingest_end(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    media = request.app[MEDIA]
    if not await media.end_ingest("the host ended the stream"):
        raise ApiError("the studio is not live", status=409)
    return web.json_response(media.status())


@doc("Practice → LIVE in one step: the running ingest (browser camera, OBS or capture) goes on, the practice session"
     " ends and a real one of the same event starts (or back to practice with practice: true)",
     body={"practice": {"type": "boolean", "description": "switch to practice instead (default false: go LIVE)"}},
     returns="{session_id, practice, event_id, ...status}", tags=["media"], permission="show.run")
async def session_switch(request: web.Request) -> web.Response:
    user = await auth.require(request, "show.run")
    body = await _json_object(request)
    unknown = [k for k in body if k != "practice"]
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}: only 'practice' (true or false)")
    if not isinstance(body.get("practice", False), bool):
        raise BadRequest(f"'practice' must be true or false, got {body['practice']!r}")
    media = request.app[MEDIA]
    session = await media.switch_session(practice=bool(body.get("practice", False)), user_id=user.id)
    return web.json_response({"session_id": session.id, "practice": session.practice, "event_id": session.event_id,
                              **media.status()})


async def publish_page(request: web.Request) -> web.Response:
    """Publish this browser's camera over WHIP (stream key, or the staff session)."""
    return await render(request, "media/publish.html")


async def play_page(request: web.Request) -> web.Response:
    """Play the program over WHEP."""
    return await render(request, "media/play.html")


def _directive(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) < 13):
        raise BadRequest(f"{name}={value!r} is not a media sequence or part number (a whole number, 0 or more)")
    return int(value)


async def serve_hls(request: web.Request) -> web.StreamResponse:
    """``GET /hls/{event}/{name}``: the LL-HLS playlist, parts and segments of the event's live (not practice) program.

    ``event`` is the event's id or slug. Anything else (another event, not live, practice, a name that is
    not one of the playlist's files, a segment already dropped) is a 404 that says why. Blocking playlist
    reload: ``index.m3u8?_HLS_msn=N&_HLS_part=M`` answers once part M of segment N exists (``_HLS_msn``
    alone: once segment N is complete), at most 3 target durations later (else 503); a bad value or one too
    far ahead is a 400. The part named by ``EXT-X-PRELOAD-HINT`` may be asked for before it exists: the
    answer comes when it is written.
    """
    media = request.app[MEDIA]
    ident, name = request.match_info["event"], request.match_info["name"]
    if not HLS_FILE_RE.match(name):
        raise NotFound(f"no HLS file {name!r}: the playlist is index.m3u8")
    ingest = media.ingest
    out = media.hls
    if ingest is None or out is None or ingest.session.practice:
        raise NotFound("this event is not live (HLS serves the LIVE itself, never practice)")
    event_id = ingest.session.event_id
    if ident != str(event_id):
        if out.event_slug is None:
            out.event_slug = await request.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (event_id,), default="")
        if ident != out.event_slug:
            raise NotFound(f"event {ident} is not the one live now")
    headers = {"Access-Control-Allow-Origin": "*", "Content-Type": HLS_CONTENT_TYPES[name[name.rindex("."):]]}
    hold = 3 * out.target_duration  # the longest a blocking request waits (RFC 8216bis 6.2.5.2)
    if name == "index.m3u8":
        msn, part = _directive(request, "_HLS_msn"), _directive(request, "_HLS_part")
        if part is not None and msn is None:
            raise BadRequest("_HLS_part needs _HLS_msn (the media sequence number of the segment the part belongs to)")
        if msn is not None:
            if out.ready() and (reason := out.check_request(msn, part)) is not None:
                raise BadRequest(reason + ": ask for the part after the playlist's last one (its EXT-X-PRELOAD-HINT)")
            if not await out.wait_for(lambda: out.has(msn, part), hold):
                if out.closed:
                    raise NotFound("the LIVE stopped")
                raise ApiError(f"segment {msn} part {part} did not come within {hold} s: reload index.m3u8", status=503,
                               headers={"Retry-After": "1"})
            headers["Cache-Control"] = HLS_CACHE_BLOCKING(out.part_target)
        else:
            headers["Cache-Control"] = HLS_CACHE_PLAYLIST
        if not out.ready():
            # 503 (players retry it; hls.js gives up on a 404): the first segment takes one keyframe interval
            raise ApiError("the HLS playlist is not ready yet: try again in a second", status=503, headers={"Retry-After": "1"})
        return web.Response(body=out.playlist_text, headers=headers)  # built once per new part
    body = out.file(name)
    if body is None and name.count(".") == 2 and out.ready():  # a part: the hinted one may be asked for early
        hinted = "seg{}.{}.m4s".format(*out.open_part())
        if name == hinted:
            await out.wait_for(lambda: out.file(name) is not None or out.open_part() != tuple(map(int, name[3:-4].split("."))), hold)
            body = out.file(name)
    if body is None:
        raise NotFound(f"{name} is no longer (or not yet) in the playlist: reload index.m3u8")
    headers["Cache-Control"] = HLS_CACHE_SEGMENT
    return web.Response(body=body, headers=headers)


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start ``app[MEDIA]`` with the core's live state, bus and database, passed in (so it runs after the
    core's context); on shutdown end any stream (interrupted: it resumes after a restart) while the
    database is still open."""
    server, pm = app[MEDIA], app[PM]

    async def on_session(session: LiveSession) -> None:
        await pm.call("register_overlays", app=app, session=session)

    await server.start(app[LIVE], bus=app[BUS], db=app[DB], on_session=on_session)
    from ..recordings import RECORDINGS, RecordingManager

    recordings = RecordingManager(app[CONFIG], app[DB], app[BUS], app[LIVE])
    app[RECORDINGS] = server.recordings = recordings
    recover = asyncio.ensure_future(recordings.recover())  # parts left by a process that died; then retention
    try:
        yield
    finally:
        await server.close()
        await asyncio.gather(recover, return_exceptions=True)
        await recordings.close()


def setup_media(app: web.Application) -> None:
    """Create the MediaServer (``app[MEDIA]``) and add the WHIP/WHEP and /api/media routes.

    The server starts in :func:`media_ctx` (append it to ``cleanup_ctx`` after the core's context).
    """
    cfg = app[CONFIG]
    app[MEDIA] = MediaServer(cfg.media, cfg.data_dir)
    app.router.add_route("OPTIONS", "/whip", options)
    app.router.add_post("/whip", whip_post)
    app.router.add_route("OPTIONS", "/whip/{id}", options)
    app.router.add_delete("/whip/{id}", whip_delete)
    app.router.add_patch("/whip/{id}", whip_patch)
    app.router.add_route("OPTIONS", "/whep", options)
    app.router.add_post("/whep", whep_post)
    app.router.add_route("OPTIONS", "/whep/{id}", options)
    app.router.add_delete("/whep/{id}", whep_delete)
    app.router.add_patch("/whep/{id}", whep_patch)
    app.router.add_get("/media/publish", publish_page)
    app.router.add_get("/media/play", play_page)
    app.router.add_get("/api/media/status", media_status)
    app.router.add_post("/api/media/capture", capture_start)
    app.router.add_get("/api/media/capture/sources", capture_sources)
    app.router.add_put("/api/media/capture/source", capture_select)
    app.router.add_delete("/api/media/capture", capture_stop)
    app.router.add_post("/api/media/end", ingest_end)
    setup_restream_routes(app)
    app.router.add_post("/api/media/session", session_switch)
    app.router.add_get("/hls/{event}/{name}", serve_hls)


__all__ = ["setup_media", "media_ctx"]
