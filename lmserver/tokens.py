"""API tokens: ``Authorization: Bearer lmst_...`` for scripts and integrations (Settings → API tokens).

A token carries **scopes**, which are permission names of the app's registry (``console.view`` reads the
console's data: orders, analytics, comments; ``catalog.edit`` the catalog and bags; ``show.run`` runs the
show; plugins add theirs). A request with a token acts as the staff member who made it, limited to those
scopes (:meth:`lmserver.auth.User.can`), so every route's permission check is also its scope check; the
OpenAPI document names each operation's scope. Only the token's SHA-256 is stored: it is shown once.
Tokens cannot manage tokens (a logged-in owner does), expire when asked to, and are revoked at once.
Requests with a token carry no cookie, so they need no CSRF token.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from . import auth
from . import validate as v
from .appkeys import DB
from .errors import BadRequest, Forbidden, NotFound
from .openapi import doc
from .templating import page

routes = web.RouteTableDef()
TAGS = ["tokens"]
MAX_DAYS = 3650


async def _owner_session(request: web.Request) -> auth.User:
    user = await auth.require(request, "settings.manage")
    if user.token_id is not None:
        raise Forbidden("API tokens cannot manage API tokens: log in as the owner")
    return user


def token_json(row: Any) -> dict[str, Any]:
    now = time.time()
    state = "revoked" if row["revoked_at"] else "expired" if row["expires_at"] and row["expires_at"] <= now else "active"
    return {"id": row["id"], "name": row["name"], "hint": row["hint"], "scopes": json.loads(row["scopes"]),
            "created_by": row["created_by"], "created_at": row["created_at"], "expires_at": row["expires_at"],
            "last_used_at": row["last_used_at"], "revoked_at": row["revoked_at"], "state": state}


_SELECT = "SELECT t.*, u.name AS created_by FROM api_tokens t JOIN users u ON u.id = t.user_id"


@routes.get("/api/tokens")
@doc("The API tokens (never the tokens themselves: a hint of their first characters), with the scopes they may use",
     returns="{tokens: [{id, name, hint, scopes, created_by, created_at, expires_at, last_used_at, revoked_at, state}],"
             " scopes: [{name, description}]}", tags=TAGS, permission="settings.manage", token=False)
async def api_list(request: web.Request) -> web.Response:
    await _owner_session(request)
    rows = await request.app[DB].fetchall(_SELECT + " ORDER BY t.revoked_at IS NOT NULL, t.id DESC")
    scopes = [{"name": p.name, "description": p.description} for p in request.app[auth.PERMISSIONS]]
    return web.json_response({"tokens": [token_json(r) for r in rows], "scopes": scopes})


@routes.post("/api/tokens")
@doc("Make an API token. The answer carries the token, shown this once: send it as 'Authorization: Bearer <token>'",
     body={"name": "string: 1–60 characters, what it is for", "scopes": "string[]: permission names (GET /api/tokens lists them)",
           "expires_in_days": "integer: optional, 1–3650; without it the token does not expire"},
     returns="{token: lmst_..., api_token: {id, name, hint, scopes, expires_at, ...}}", tags=TAGS, permission="settings.manage", token=False)
async def api_create(request: web.Request) -> web.Response:
    user = await _owner_session(request)
    data = await v.json_body(request)
    v.reject_unknown(data, ("name", "scopes", "expires_in_days"), "API token")
    name = v.text(data, "name", max_len=60, min_len=1, required=True)
    registry = request.app[auth.PERMISSIONS]
    scopes = data.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise BadRequest("'scopes' must be a non-empty list of permission names, e.g. [\"console.view\"]; known: "
                         + ", ".join(registry.names()))
    unknown = sorted(set(scopes) - set(registry.names()))
    if unknown:
        raise BadRequest(f"'scopes': unknown {unknown}; known: {', '.join(registry.names())}")
    beyond = sorted(s for s in set(scopes) if not registry.allows(user.role, s))
    if beyond:
        raise BadRequest(f"'scopes': your role ({user.role}) does not hold {beyond}")
    days = v.integer(data, "expires_in_days", min=1, max=MAX_DAYS, required=False)
    now = time.time()
    token = auth.TOKEN_PREFIX + secrets.token_urlsafe(32)
    db = request.app[DB]
    new_id = await db.execute(
        "INSERT INTO api_tokens (name, token_hash, hint, scopes, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, auth._sha(token), token[:len(auth.TOKEN_PREFIX) + 4], json.dumps(sorted(set(scopes))), user.id, now,
         now + days * 86400 if days else None))
    row = await db.fetchone(_SELECT + " WHERE t.id = ?", (new_id,))
    return web.json_response({"token": token, "api_token": token_json(row)}, status=201)


@routes.delete("/api/tokens/{id}")
@doc("Revoke an API token: requests carrying it are refused from now on", returns="{api_token}", tags=TAGS, permission="settings.manage", token=False)
async def api_revoke(request: web.Request) -> web.Response:
    await _owner_session(request)
    db = request.app[DB]
    token_id = v.path_int(request)
    row = await db.fetchone(_SELECT + " WHERE t.id = ?", (token_id,))
    if row is None:
        raise NotFound(f"there is no API token {token_id} (GET /api/tokens lists them)")
    await db.execute("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (time.time(), token_id))
    return web.json_response({"api_token": token_json(await db.fetchone(_SELECT + " WHERE t.id = ?", (token_id,)))})


@routes.get("/settings/tokens")
@page("settings_tokens.html")
async def tokens_page(request: web.Request) -> dict[str, Any]:
    await _owner_session(request)
    return {"scopes": request.app[auth.PERMISSIONS].table()}
