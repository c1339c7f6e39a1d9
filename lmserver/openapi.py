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
        permission: str | None = None) -> Callable[[F], F]:
    """Document a JSON handler.

    ``body``: field → description (or a JSON-schema dict) of the request body; ``query``: parameter →
    description; ``returns``: what a 2xx answer holds; ``permission``: the staff permission needed (None:
    public or viewer).
    """

    def mark(fn: F) -> F:
        setattr(fn, ATTR, {"summary": summary, "body": body, "query": query or {}, "returns": returns,
                           "tags": tags or [], "content_type": content_type, "permission": permission})
        return fn

    return mark


def _schema(spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict) and "type" in spec:
        return spec
    return {"type": "object", "properties": {k: (v if isinstance(v, dict) else {"description": v}) for k, v in (spec or {}).items()}}


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
            params = [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                      for n, d in meta["query"].items()]
            if params:
                op["parameters"] = params
            if meta["body"] is not None:
                op["requestBody"] = {"content": {meta["content_type"]: {"schema": _schema(meta["body"])}}}
        path_params = re.findall(r"\{(\w+)(?::[^}]*)?\}", path)
        if path_params:
            op.setdefault("parameters", []).extend(
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in path_params)
        clean = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        paths.setdefault(clean, {})[method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "lmserver", "version": __version__}, "paths": dict(sorted(paths.items()))}


def undocumented(app: web.Application) -> list[str]:
    return [f"{m} {p}" for m, p, h in api_routes(app) if getattr(h, ATTR, None) is None]


@doc("This document: every JSON endpoint of the server", returns="OpenAPI 3.1 document", tags=["meta"])
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build(request.app))
