"""Webhook endpoints in Settings: the JSON API and the ``/settings/webhooks`` page (owner: ``settings.manage``).

The delivery machinery is :mod:`lmserver.webhooks`. A new endpoint's secret is shown once, in the answer
that creates it (and in the answer of a rotation); it is never listed again.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from . import auth
from . import validate as v
from .appkeys import BUS, CONFIG, DB, WEBHOOKS
from .errors import BadRequest, NotFound
from .openapi import doc
from .templating import page
from .webhooks import ROTATION_OVERLAP, check_url, new_secret, parse_events

routes = web.RouteTableDef()

FIELDS = ("url", "description", "events", "include_practice", "enabled")
TAGS = ["webhooks"]


def webhook_events(app: web.Application) -> list[dict[str, str]]:
    """The bus events an endpoint may subscribe to: every persisted one, the core's and the plugins'."""
    specs = app[BUS].specs.values()
    return [{"name": s.name, "description": s.doc} for s in sorted(specs, key=lambda s: s.name)
            if s.persist and not s.name.startswith("webhook.")]


def endpoint_json(row: Any, stats: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"id": row["id"], "url": row["url"], "description": row["description"], "events": json.loads(row["events"]),
           "include_practice": bool(row["include_practice"]), "enabled": bool(row["enabled"]),
           "disabled_reason": row["disabled_reason"], "created_at": row["created_at"], "updated_at": row["updated_at"],
           "rotating": bool(row["old_secret"] and (row["old_secret_until"] or 0) > time.time())}
    if stats is not None:
        out.update(stats.get(row["id"], {"pending": 0, "delivered": 0, "failed": 0, "last_status": None, "last_error": None, "last_at": None}))
    return out


async def _stats(app: web.Application) -> dict[int, dict[str, Any]]:
    rows = await app[DB].fetchall(
        "SELECT endpoint_id, SUM(state = 'pending') AS pending, SUM(state = 'delivered') AS delivered, SUM(state = 'failed') AS failed"
        " FROM webhook_deliveries GROUP BY endpoint_id")
    out = {r["endpoint_id"]: {"pending": r["pending"], "delivered": r["delivered"], "failed": r["failed"],
                              "last_status": None, "last_error": None, "last_at": None} for r in rows}
    last = await app[DB].fetchall(
        "SELECT d.endpoint_id, a.status, a.error, a.at FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
        " WHERE a.id IN (SELECT MAX(a2.id) FROM webhook_attempts a2 JOIN webhook_deliveries d2 ON d2.id = a2.delivery_id"
        " GROUP BY d2.endpoint_id)")
    for r in last:
        out.setdefault(r["endpoint_id"], {"pending": 0, "delivered": 0, "failed": 0}).update(
            {"last_status": r["status"], "last_error": r["error"], "last_at": r["at"]})
    return out


async def _endpoint(request: web.Request) -> Any:
    row = await request.app[DB].fetchone("SELECT * FROM webhook_endpoints WHERE id = ?", (v.path_int(request),))
    if row is None:
        raise NotFound(f"there is no webhook endpoint {request.match_info['id']} (GET /api/webhooks lists them)")
    return row


async def _fields(request: web.Request, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    v.reject_unknown(data, FIELDS, "webhook endpoint")
    out: dict[str, Any] = {}
    if "description" in data:
        out["description"] = v.text(data, "description", max_len=200)
    if "events" in data or not partial:
        out["events"] = json.dumps(parse_events(data.get("events"), [e["name"] for e in webhook_events(request.app)]))
    if "include_practice" in data:
        out["include_practice"] = int(bool(v.boolean(data, "include_practice")))
    if "enabled" in data:
        out["enabled"] = int(bool(v.boolean(data, "enabled")))
    if "url" in data or not partial:
        url = v.text(data, "url", max_len=2000, required=True)
        out["url"] = await check_url(url, request.app[CONFIG].webhooks)
    return out


@routes.get("/api/webhooks/events")
@doc("The events a webhook endpoint can subscribe to (every persisted bus event, the core's and the plugins')",
     returns="{events: [{name, description}]}", tags=TAGS, permission="settings.manage")
async def api_events(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    return web.json_response({"events": webhook_events(request.app)})


@routes.get("/api/webhooks")
@doc("The webhook endpoints, with their delivery counts and last attempt (never their secrets)",
     returns="{endpoints: [{id, url, description, events, include_practice, enabled, disabled_reason, pending, delivered,"
             " failed, last_status, last_error, last_at}]}", tags=TAGS, permission="settings.manage")
async def api_list(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    rows = await request.app[DB].fetchall("SELECT * FROM webhook_endpoints ORDER BY id")
    stats = await _stats(request.app)
    return web.json_response({"endpoints": [endpoint_json(r, stats) for r in rows]})


@routes.post("/api/webhooks")
@doc("Add a webhook endpoint. The answer carries its signing secret, shown this once",
     body={"url": "string: http(s) URL of the receiver (public addresses only, unless [webhooks] allow_networks allows it)",
           "events": "string[]: event names or patterns such as order.* (GET /api/webhooks/events)",
           "description": "string: optional, up to 200 characters",
           "include_practice": "boolean: also deliver practice sessions' events (default false)"},
     returns="{endpoint, secret: whsec_...}", tags=TAGS, permission="settings.manage")
async def api_create(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    fields = await _fields(request, await v.json_body(request), partial=False)
    now = time.time()
    secret = new_secret()
    db = request.app[DB]
    new_id = await db.execute(
        "INSERT INTO webhook_endpoints (url, description, events, include_practice, secret, enabled, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (fields["url"], fields.get("description", ""), fields["events"], fields.get("include_practice", 0), secret,
         fields.get("enabled", 1), now, now))
    await request.app[WEBHOOKS].endpoints_changed()
    row = await db.fetchone("SELECT * FROM webhook_endpoints WHERE id = ?", (new_id,))
    return web.json_response({"endpoint": endpoint_json(row), "secret": secret}, status=201)


@routes.patch("/api/webhooks/{id}")
@doc("Change an endpoint (url, events, description, include_practice, enabled: true re-enables one a 410 disabled)",
     body={"url": "string: http(s) URL", "events": "string[]: event names or patterns", "description": "string",
           "include_practice": "boolean", "enabled": "boolean"},
     returns="{endpoint}", tags=TAGS, permission="settings.manage")
async def api_update(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    row = await _endpoint(request)
    fields = await _fields(request, await v.json_body(request), partial=True)
    if fields:
        if fields.get("enabled") == 1:
            fields["disabled_reason"] = None
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        await request.app[DB].execute(f"UPDATE webhook_endpoints SET {sets} WHERE id = ?", (*fields.values(), row["id"]))
        await request.app[WEBHOOKS].endpoints_changed()
    row = await request.app[DB].fetchone("SELECT * FROM webhook_endpoints WHERE id = ?", (row["id"],))
    return web.json_response({"endpoint": endpoint_json(row)})


@routes.delete("/api/webhooks/{id}")
@doc("Remove an endpoint and its delivery log", returns="{deleted: id}", tags=TAGS, permission="settings.manage")
async def api_delete(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    row = await _endpoint(request)
    await request.app[DB].execute("DELETE FROM webhook_endpoints WHERE id = ?", (row["id"],))
    await request.app[WEBHOOKS].endpoints_changed()
    return web.json_response({"deleted": row["id"]})


@routes.post("/api/webhooks/{id}/rotate")
@doc("A new signing secret (shown this once); for the next 24 hours deliveries carry both signatures",
     returns="{endpoint, secret: whsec_..., old_secret_until}", tags=TAGS, permission="settings.manage")
async def api_rotate(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    row = await _endpoint(request)
    now = time.time()
    secret = new_secret()
    await request.app[DB].execute(
        "UPDATE webhook_endpoints SET old_secret = secret, old_secret_until = ?, secret = ?, updated_at = ? WHERE id = ?",
        (now + ROTATION_OVERLAP, secret, now, row["id"]))
    row = await request.app[DB].fetchone("SELECT * FROM webhook_endpoints WHERE id = ?", (row["id"],))
    return web.json_response({"endpoint": endpoint_json(row), "secret": secret, "old_secret_until": now + ROTATION_OVERLAP})


@routes.post("/api/webhooks/{id}/test")
@doc("Send a webhook.test message to the endpoint now (it shows in the delivery log)",
     returns="{delivery_id}", tags=TAGS, permission="settings.manage")
async def api_test(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    row = await _endpoint(request)
    delivery_id = await request.app[WEBHOOKS].enqueue_test(row["id"])
    return web.json_response({"delivery_id": delivery_id}, status=202)


@routes.get("/api/webhooks/{id}/deliveries")
@doc("The endpoint's delivery log, newest first, each with its attempts (status codes, errors, durations)",
     query={"limit": "integer: 1–500, default 50", "state": "pending | delivered | failed (default: all)"},
     returns="{deliveries: [{id, msg_id, event, state, attempts, next_at, last_status, last_error, created_at, finished_at,"
             " payload, tries: [{at, status, error, duration_ms}]}]}", tags=TAGS, permission="settings.manage")
async def api_deliveries(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    row = await _endpoint(request)
    limit = v.query_int(request, "limit", default=50, min=1, max=500)
    state = v.query_text(request, "state", max_len=20)
    if state and state not in ("pending", "delivered", "failed"):
        raise BadRequest("'state' must be pending, delivered or failed")
    db = request.app[DB]
    rows = await db.fetchall(
        "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND (? = '' OR state = ?) ORDER BY id DESC LIMIT ?",
        (row["id"], state, state, limit))
    ids = [r["id"] for r in rows]
    tries: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        for a in await db.fetchall(f"SELECT * FROM webhook_attempts WHERE delivery_id IN ({marks}) ORDER BY id", ids):
            tries[a["delivery_id"]].append({"at": a["at"], "status": a["status"], "error": a["error"], "duration_ms": a["duration_ms"]})
    keys = ("id", "msg_id", "event", "state", "attempts", "next_at", "last_status", "last_error", "created_at", "finished_at", "payload")
    return web.json_response({"deliveries": [{**{k: r[k] for k in keys}, "tries": tries[r["id"]]} for r in rows]})


@routes.post("/api/webhooks/deliveries/{id}/redeliver")
@doc("Send a delivery again now (same webhook-id, freshly signed), whatever its state",
     returns="{delivery_id}", tags=TAGS, permission="settings.manage")
async def api_redeliver(request: web.Request) -> web.Response:
    await auth.require(request, "settings.manage")
    delivery_id = v.path_int(request)
    db = request.app[DB]
    found = await db.fetchone("SELECT d.id, e.enabled FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                              " WHERE d.id = ?", (delivery_id,))
    if found is None:
        raise NotFound(f"there is no webhook delivery {delivery_id}")
    if not found["enabled"]:
        raise BadRequest("the endpoint is disabled: enable it first (PATCH /api/webhooks/{id} with enabled: true)")
    now = time.time()
    # a redelivery is a fresh try: its retry window starts now
    await db.execute("UPDATE webhook_deliveries SET state = 'pending', next_at = ?, created_at = ?, finished_at = NULL WHERE id = ?",
                     (now, now, delivery_id))
    request.app[WEBHOOKS].wake()
    return web.json_response({"delivery_id": delivery_id}, status=202)


@routes.get("/settings/webhooks")
@page("settings_webhooks.html")
async def webhooks_page(request: web.Request) -> dict[str, Any]:
    await auth.require(request, "settings.manage")
    return {"events": webhook_events(request.app), "allow_networks": request.app[CONFIG].webhooks.allow_networks}
