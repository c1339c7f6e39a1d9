"""OpenAPI description of every JSON endpoint, kept true by walking the router.

Decorate each JSON handler (everything under ``/api/``, and the few JSON paths outside it listed in
:data:`JSON_PATHS`) with :func:`doc`; ``GET /api/openapi.json`` is built from the router at request
time, so a route without documentation shows up (and a test fails).
"""

from __future__ import annotations

import re
from typing import Any, Callable, TypeVar

from aiohttp import web

from lmserver import __version__

F = TypeVar("F", bound=Callable[..., Any])
ATTR = "__openapi__"
#: JSON endpoints outside /api/ (health and plugin listing are conventional paths)
JSON_PATHS = ("/healthz", "/-/plugins")


def doc(summary: str, *, body: dict[str, Any] | None = None, query: dict[str, str] | None = None,
        returns: str = "JSON object", tags: list[str] | None = None, content_type: str = "application/json",
        permission: str | None = None, token: bool = True) -> Callable[[F], F]:
    """Document a JSON handler.

    ``body``: field → description (or a JSON-schema dict) of the request body; a description may start
    with its JSON type, ``"integer: the product"``, ``"string: 1–120 characters"``, ``"integer[]: ids"``
    (then the field is typed in the OpenAPI document, and fuzzers generate useful values); ``query``: parameter →
    description; ``returns``: what a 2xx answer holds; ``permission``: the staff permission needed (None:
    public or viewer), which is also the API token scope the operation needs; ``token=False``: only a logged-in
    staff member, never an API token (managing the tokens themselves).
    """

    def mark(fn: F) -> F:
        setattr(fn, ATTR, {"summary": summary, "body": body, "query": query or {}, "returns": returns,
                           "tags": tags or [], "content_type": content_type, "permission": permission,
                           "token": token})
        return fn

    return mark


#: ``"integer: the product"`` → a typed field (see :func:`doc`); ``"integer[]: ..."`` → a list of them
_TYPED = re.compile(r"^(string|integer|number|boolean|object|array)(\[\])?(?:: |$)")
#: path parameters that are ids: documented as 64-bit integers (the edge answers 404 to anything else)
ID_PARAMS = ("id", "pid", "sid", "event_id")
MAX_ID = 2**63 - 1


def field_schema(spec: Any) -> dict[str, Any]:
    """One body field: a JSON-schema dict as is, ``"type: description"`` typed, any other text a description."""
    if isinstance(spec, dict):
        return spec
    text = str(spec)
    m = _TYPED.match(text)
    if m is None:
        return {"description": text}
    item: dict[str, Any] = {"type": m.group(1)}
    if m.group(1) == "integer":
        item.update(minimum=-MAX_ID - 1, maximum=MAX_ID)
    schema = {"type": "array", "items": item} if m.group(2) else item
    rest = text[m.end():]
    return {**schema, "description": rest} if rest else schema


def _schema(spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict) and "type" in spec:
        return spec
    return {"type": "object", "properties": {k: field_schema(v) for k, v in (spec or {}).items()}}


def api_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "OPTIONS", "*"):
            continue
        if path.startswith("/api/") or path in JSON_PATHS:
            out.append((route.method, path, route.handler))
    return out


def build(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in api_routes(app):
        meta = getattr(handler, ATTR, None)
        op: dict[str, Any] = {"responses": {"200": {"description": "OK"}, "4XX": {"description": "Error: {\"error\": {\"status\", \"message\"}}"}}}
        if meta is None:
            op["summary"] = "UNDOCUMENTED"
        else:
            op["summary"] = meta["summary"]
            op["tags"] = meta["tags"]
            op["responses"]["200"]["description"] = meta["returns"]
            if meta["permission"]:
                op["x-permission"] = meta["permission"]
                # a staff session (cookie + X-CSRF-Token on writes), or an API token holding the permission as a scope
                op["security"] = [{"staffSession": []}] + ([{"apiToken": [meta["permission"]]}] if meta.get("token", True) else [])
            params = [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                      for n, d in meta["query"].items()]
            if params:
                op["parameters"] = params
            if meta["body"] is not None:
                op["requestBody"] = {"content": {meta["content_type"]: {"schema": _schema(meta["body"])}}}
        path_params = re.findall(r"\{(\w+)(?::([^}]*))?\}", path)
        if path_params:
            op.setdefault("parameters", []).extend(
                {"name": p, "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID} if p in ID_PARAMS or pattern == r"\d+" else {"type": "string"}}
                for p, pattern in path_params)
        clean = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        paths.setdefault(clean, {})[method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "lmserver", "version": __version__}, "paths": dict(sorted(paths.items())),
            "components": {"securitySchemes": SECURITY_SCHEMES}}


#: how staff operations authenticate (each operation's ``security`` names the scope it needs)
SECURITY_SCHEMES = {
    "staffSession": {"type": "apiKey", "in": "cookie", "name": "lms_session",
                     "description": "A staff login (POST /api/login); writes also send its X-CSRF-Token header."},
    "apiToken": {"type": "http", "scheme": "bearer",
                 "description": "An API token made by the owner in Settings -> API tokens ('Authorization: Bearer lmst_...');"
                                " its scopes are permission names, and an operation needs the scope named in its security."},
}


def undocumented(app: web.Application) -> list[str]:
    return [f"{m} {p}" for m, p, h in api_routes(app) if getattr(h, ATTR, None) is None]


@doc("This document: every JSON endpoint of the server", returns="OpenAPI 3.1 document", tags=["meta"])
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build(request.app))
