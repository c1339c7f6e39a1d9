"""Core JSON endpoints: health, plugins, WebSockets, accounts, login API and the stream key."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from . import __version__, auth, validate
from .appkeys import BUS, CONFIG, DB, HUB, LIVE, PM, SECRET
from .errors import BadRequest, NotFound
from .openapi import doc

routes = web.RouteTableDef()


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400/415 that says what was wrong (see :func:`lmserver.validate.json_body`)."""
    return await validate.json_body(request)


@routes.get("/healthz")
@doc("Health: the version and the state of the database (503 when it does not answer)",
     returns="{status, version, database, live}", tags=["meta"])
async def healthz(request: web.Request) -> web.Response:
    db_state = await request.app[DB].healthy()
    live = request.app[LIVE].current
    body = {"status": "ok" if db_state == "ok" else "degraded", "version": __version__, "database": db_state,
            "live": live is not None}
    return web.json_response(body, status=200 if db_state == "ok" else 503)


@routes.get("/-/plugins")
@doc("The loaded plugins: name, version, implemented hooks, static files prefix",
     returns="[{name, version, hooks, module, static}]", tags=["meta"])
async def plugins_list(request: web.Request) -> web.Response:
    return web.json_response([
        {"name": p.name, "version": p.version, "hooks": p.hooks, "module": p.module,
         "static": f"/-/static/plugins/{p.name}/" if p.static else None}
        for p in request.app[PM].info()
    ])


@routes.get("/ws/console")
async def ws_console(request: web.Request) -> web.StreamResponse:
    await auth.require(request, "console.view")
    return await request.app[HUB].serve(request, "staff", None, {"name": "hello", "data": {"audience": "staff"}})


@routes.get("/ws/viewer")
async def ws_viewer(request: web.Request) -> web.StreamResponse:
    """Anonymous: the public records of one event (see :mod:`lmserver.busevents` for what that is)."""
    event_id = validate.ascii_int(request.query.get("event") or "")
    if event_id is None:
        raise BadRequest("say which event to follow: /ws/viewer?event=ID (the event's numeric id)")
    if await request.app[DB].fetchval("SELECT 1 FROM events WHERE id = ?", (event_id,)) is None:
        raise NotFound(f"there is no event {event_id}")
    return await request.app[HUB].serve(request, "public", event_id, {"name": "hello", "data": {"audience": "public"}})


# --------------------------------------------------------------------------------------------- login API


@routes.post("/api/login")
@doc("Log in as staff; sets the session cookie and returns the CSRF token for later calls",
     body={"name": "string: user name", "password": "string: password"}, returns="{user: {id, name, role}, csrf_token}", tags=["accounts"])
async def api_login(request: web.Request) -> web.Response:
    data = await json_body(request)
    user, cookie = await auth.login(request, validate.text(data, "name", max_len=200, strip=False),
                                    validate.text(data, "password", max_len=1024, strip=False))
    response = web.json_response({"user": {"id": user.id, "name": user.name, "role": user.role}, "csrf_token": user.csrf})
    auth.set_session_cookie(request, response, cookie)
    return response


@routes.get("/api/me")
@doc("The logged-in staff user and their CSRF token", returns="{user, csrf_token, permissions}", tags=["accounts"], permission="console.view")
async def api_me(request: web.Request) -> web.Response:
    user = await auth.require(request)
    return web.json_response({"user": {"id": user.id, "name": user.name, "role": user.role}, "csrf_token": user.csrf,
                              "permissions": [p for p in request.app[auth.PERMISSIONS].names() if user.can(p)]})


@routes.get("/api/users")
@doc("List staff accounts", returns="{users: [{id, name, role, created_at}]}", tags=["accounts"], permission="accounts.manage")
async def api_users(request: web.Request) -> web.Response:
    await auth.require(request, "accounts.manage")
    rows = await request.app[DB].fetchall("SELECT id, name, role, disabled, created_at FROM users ORDER BY id")
    return web.json_response({"users": [dict(r) for r in rows]})


@routes.post("/api/users")
@doc("Create a staff account", body={"name": "string: 2–32 letters, digits, _ . -", "role": "string: owner, moderator or assistant",
     "password": "at least security.min_password_length characters"}, returns="{user: {id, name, role}}", tags=["accounts"],
     permission="accounts.manage")
async def api_users_create(request: web.Request) -> web.Response:
    await auth.require(request, "accounts.manage")
    data = await json_body(request)
    name, role = validate.text(data, "name", max_len=200, strip=False), validate.text(data, "role", max_len=40)
    uid = await auth.create_user(request.app[DB], name, role, validate.text(data, "password", max_len=1024, strip=False),
                                 min_password_length=request.app[CONFIG].security.min_password_length)
    await request.app[BUS].publish("user.created", {"user_id": uid, "name": name.strip(), "role": role})
    return web.json_response({"user": {"id": uid, "name": name.strip(), "role": role}}, status=201)


@routes.get("/api/settings/stream-key")
@doc("The studio's stream key (WHIP bearer token) and the WHIP URL to paste into OBS", returns="{stream_key, whip_url}",
     tags=["settings"], permission="settings.manage")
async def api_stream_key(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    return web.json_response({"stream_key": await auth.stream_key(request.app[DB]), "whip_url": public_base(request) + "/whip"})


@routes.post("/api/settings/stream-key/rotate")
@doc("Replace the stream key (the old one stops working at once). A stream published with the old key ends too,"
     " unless end_stream is false (then it runs on until it stops)",
     body={"end_stream": {"type": "boolean", "description": "end a stream published with the old key (default true)"}},
     returns="{stream_key, whip_url, ended_stream}", tags=["settings"], permission="settings.manage")
async def api_stream_key_rotate(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    data = await json_body(request) if request.can_read_body else {}
    end_stream = bool(validate.boolean(data, "end_stream", required=False, default=True))
    from .media import MEDIA

    db = request.app[DB]
    if MEDIA in request.app:
        key, ended = await request.app[MEDIA].rotate_stream_key(lambda: auth.rotate_stream_key(db), end_stream=end_stream)
    else:
        key, ended = await auth.rotate_stream_key(db), False
    await request.app[BUS].publish("stream_key.rotated", {})
    return web.json_response({"stream_key": key, "whip_url": public_base(request) + "/whip", "ended_stream": ended})


@routes.put("/api/settings/timezone")
@doc("Set the studio's time zone (every page, event time, e-mail and LIVE task uses it); an empty string goes back to"
     " [server] timezone (or this machine's zone)", body={"timezone": "string: an IANA name such as \"Europe/Paris\", or \"\""},
     returns="{timezone, configured}", tags=["settings"], permission="settings.manage")
async def api_timezone(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    from .timefmt import set_zone, zone_problem

    data = await json_body(request)
    validate.reject_unknown(data, {"timezone"}, "time zone")
    name = validate.text(data, "timezone", max_len=64)
    problem = zone_problem(name)
    if problem:
        raise BadRequest(f"'timezone' must be {problem}, got {name!r}")
    holder = await set_zone(request.app, name)
    return web.json_response({"timezone": holder.name, "configured": holder.configured})


@routes.get("/api/activity")
@doc("The activity log, newest first", query={"session": "session id", "name": "event name prefix, e.g. comment.",
     "before": "activity id (paging)", "limit": "1–500, default 100"}, returns="{activity: [...]}", tags=["bus"],
     permission="console.view")
async def api_activity(request: web.Request) -> web.Response:
    await auth.require(request)
    q = request.query
    limit = validate.query_int(request, "limit", default=100, min=1, max=500, clamp=True)
    before = validate.query_int(request, "before")
    session = validate.query_int(request, "session")
    where, params = ["1=1"], []
    if session is not None:
        where.append("session_id = ?")
        params.append(session)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if q.get("name"):
        where.append("name LIKE ?")
        params.append(validate.query_text(request, "name").replace("%", "") + "%")
    rows = await request.app[DB].fetchall(
        f"SELECT * FROM activity WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit))
    import json

    return web.json_response({"activity": [{"id": r["id"], "name": r["name"], "event_id": r["event_id"], "session_id": r["session_id"],
                                            "practice": bool(r["practice"]), "at": r["created_at"], "data": json.loads(r["data"])}
                                           for r in rows]})


def public_base(request: web.Request) -> str:
    """The base URL viewers use: ``server.public_url``, or the request's own scheme and host."""
    configured = request.app[CONFIG].server.public_url.rstrip("/")
    return configured or f"{request.scheme}://{request.host}"


def now() -> float:
    return time.time()


__all__ = ["routes", "json_body", "public_base", "SECRET"]
