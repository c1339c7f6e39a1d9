"""HTTP routes of the giveaway plugin: staff JSON under ``/api/plugins/giveaway/``, viewer JSON (enter,
claim, the current giveaway), the public proof page ``/e/<event>/giveaways/<id>`` and the list page
``/p/giveaway/``. Every input is checked at the edge; each refusal is a 4xx with the reason."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import BadRequest, Conflict, Forbidden, NotFound, doc, json_body, validate
from lmserver.api import render as render_page

from . import service
from .store import NAME

API = f"/api/plugins/{NAME}"
PERMISSION = "giveaways.manage"
TAGS = ["giveaway"]
GIVEAWAY = ("{giveaway: {id, title, event_id, event, products: [{id, title, allocated, held}], prize, winners, items_per_winner,"
            " entry_mode, keyword, how_to_enter, countdown_seconds, status, practice, started_at, ends_at, entries, proof_url,"
            " draws: [{number, commitment, committed_at, entries_hash, pool, seed, revealed_at, picks, winners}]}}")
BODY = {
    "title": "string: 1–80 characters (default: the first product's title)",
    "event_id": "integer: optional: attach it to this event",
    "products": "array: [{id: integer: a catalog product, allocated: integer: units set aside from its stock, ≥ 1}]",
    "winners": "integer: number of winners, ≥ 1", "items_per_winner": "integer: items each winner gets, ≥ 1",
    "entry_mode": "string: comment, follow, both (either one enters) or none (an Enter button)",
    "keyword": "string: what viewers comment to enter (required for comment and both), matched case-insensitively",
    "countdown_minutes": "integer: 1–10",
    "accept_terms": "boolean: true: the host accepts the giveaway terms (create only)",
}


def _id(request: web.Request, key: str = "id") -> int:
    return validate.path_int(request, key)


def _fields(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The giveaway fields present in ``data``, each checked (BadRequest names the field)."""
    out: dict[str, Any] = {}
    if "products" in data or not partial:
        products = data.get("products")
        if not isinstance(products, list) or not 1 <= len(products) <= 20:
            raise BadRequest("'products' must be a list of 1 to 20 {id, allocated} items")
        seen = set()
        out["products"] = []
        for i, p in enumerate(products):
            if not isinstance(p, dict):
                raise BadRequest(f"'products[{i}]' must be an object {{id, allocated}}")
            pid = validate.integer(p, "id", min=1, label=f"'products[{i}].id'")
            allocated = validate.integer(p, "allocated", min=1, max=1_000_000, label=f"'products[{i}].allocated'")
            if pid in seen:
                raise BadRequest(f"product {pid} is listed twice in 'products': allocate its units in one item")
            seen.add(pid)
            out["products"].append({"id": pid, "allocated": allocated})
    for key in ("winners", "items_per_winner"):
        if key in data or not partial:
            out[key] = validate.integer(data, key, min=1, max=10_000)
    if "entry_mode" in data or not partial:
        out["entry_mode"] = validate.choice(data, "entry_mode", service.MODES, default="comment")
    if "keyword" in data or not partial:
        out["keyword"] = validate.text(data, "keyword", max_len=40)
    if "countdown_minutes" in data or not partial:
        minutes = validate.integer(data, "countdown_minutes", min=None, max=MAX_INT, required=False, default=5)
        if not 1 <= minutes <= 10:
            raise BadRequest(f"'countdown_minutes' must be 1 to 10 minutes, got {minutes}")
        out["countdown_seconds"] = minutes * 60
    if "title" in data:
        out["title"] = validate.text(data, "title", max_len=80)
    return out


MAX_INT = 2**62


async def _json(request: web.Request, row: Any, status: int = 200) -> web.Response:
    return web.json_response({"giveaway": await service.to_json(request.app, row, staff=True)}, status=status)


# --------------------------------------------------------------------------------------------- staff


@doc("Every giveaway (or those of one event) with its event, products, entries, draws and winners",
     query={"event_id": "an event's id (optional)"}, returns="{giveaways: [...], terms, claim_hours}", tags=TAGS, permission=PERMISSION)
async def list_giveaways(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    event_id = validate.query_int(request, "event_id")
    cfg = service.settings(request.app)
    return web.json_response({"giveaways": await service.list_json(request.app, event_id), "terms": cfg.terms,
                              "claim_hours": cfg.claim_hours})


@doc("Create a giveaway: allocate units from each product's stock, set winners, entry and countdown; the host accepts the terms",
     body=BODY, returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def create(request: web.Request) -> web.Response:
    user = await api.require(request, PERMISSION)
    data = await json_body(request)
    if validate.boolean(data, "accept_terms", required=False, default=False) is not True:
        raise BadRequest("accept the giveaway terms first ('accept_terms': true); they are listed at GET " + API + "/giveaways")
    fields = _fields(data, partial=False)
    if "title" not in fields or not fields["title"]:
        first = await api.product(api.db(request.app), fields["products"][0]["id"])
        fields["title"] = first["title"] if first else "Giveaway"
    fields["event_id"] = validate.integer(data, "event_id", min=1, required=False)
    row = await service.create(request.app, user.name, fields)
    return await _json(request, row, 201)


@doc("One giveaway", returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def get_one(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.get_row(api.db(request.app), _id(request)))


@doc("Edit a giveaway until it starts (products re-allocate their units)", body={k: v for k, v in BODY.items() if k not in ("event_id", "accept_terms")},
     returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def patch(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    gid = _id(request)
    changes = _fields(await json_body(request), partial=True)
    if "title" in changes and not changes["title"]:
        raise BadRequest("'title' must be 1 to 80 characters")
    return await _json(request, await service.update(request.app, gid, changes))


@doc("Delete a giveaway that never ran; its allocated units go back to stock", returns="{deleted: true}", tags=TAGS, permission=PERMISSION)
async def delete(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    await service.delete(request.app, _id(request))
    return web.json_response({"deleted": True})


@doc("Include a giveaway in an event (a giveaway belongs to at most one event)", returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def attach(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.attach(request.app, _id(request), _id(request, "event_id")))


@doc("Remove a giveaway from its event (while it has not run)", returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def detach(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    gid, event_id = _id(request), _id(request, "event_id")
    row = await service.get_row(api.db(request.app), gid)
    if row["event_id"] != event_id:
        raise NotFound(f"giveaway {gid} is not included in event {event_id}")
    return await _json(request, await service.attach(request.app, gid, None))


@doc("Start the giveaway's countdown (its event must be live or in practice); publishes the draw's commitment SHA-256(seed)",
     returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def start(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.start(request.app, _id(request)))


@doc("Redraw every prize whose claim window passed unclaimed, from the entrants who have not won (a new draw record)",
     returns=GIVEAWAY, tags=TAGS, permission=PERMISSION)
async def redraw(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.redraw(request.app, _id(request)))


# --------------------------------------------------------------------------------------------- viewers and public


async def _public(request: web.Request, gid: int, event: str | None = None) -> dict[str, Any]:
    db = api.db(request.app)
    row = await service.get_row(db, gid)
    if row["status"] == "ready":
        raise NotFound(f"giveaway {gid} has not started")
    out = await service.to_json(request.app, row)
    if event is not None and (out["event"] is None or event not in (str(out["event"]["id"]), out["event"]["url"].rsplit("/", 1)[-1])):
        raise NotFound(f"giveaway {gid} is not part of event {event}")
    out["entrants"] = [{"code": r["code"], "nickname": r["nickname"]} for r in await db.fetchall(
        "SELECT code, nickname FROM giveaway_entries WHERE giveaway_id = ? ORDER BY code", (gid,))]
    return out


@doc("A started giveaway's public record and proof: commitment, entrants (entry id and nickname), entries hash, revealed seed, winners",
     returns="{giveaway: {..., entrants: [{code, nickname}]}}", tags=TAGS)
async def proof(request: web.Request) -> web.Response:
    return web.json_response({"giveaway": await _public(request, _id(request))})


@doc("The event's current (or latest) started giveaway for this viewer: whether they are in, whether they won",
     returns="{giveaway: {...} | null, you: {entered, won, claimed, claim_until, nickname}}", tags=TAGS)
async def current(request: web.Request) -> web.Response:
    event_id = _id(request, "event_id")
    db = api.db(request.app)
    gid = await db.fetchval("SELECT id FROM giveaways WHERE event_id = ? AND status != 'ready' ORDER BY started_at DESC LIMIT 1", (event_id,))
    if gid is None:
        return web.json_response({"giveaway": None, "you": None})
    row = await service.get_row(db, gid)
    vid = None
    try:
        vid = (await api.require_viewer(request))["id"]
    except api.Unauthorized:
        pass
    you = {"entered": False, "won": False, "claimed": False, "claim_until": None, "nickname": None}
    if vid:
        you["nickname"] = (await api.viewer(request.app, vid) or {}).get("nickname")
        you["entered"] = await db.fetchval("SELECT 1 FROM giveaway_entries WHERE giveaway_id = ? AND viewer_id = ?", (gid, vid)) is not None
        win = await db.fetchone("SELECT status, claim_until FROM giveaway_winners WHERE giveaway_id = ? AND viewer_id = ? AND status != 'redrawn'",
                                (gid, vid))
        if win is not None:
            you.update(won=True, claimed=win["status"] == "claimed", claim_until=win["claim_until"])
    return web.json_response({"giveaway": await service.to_json(request.app, row), "you": you})


@doc("Enter a running giveaway with the Enter button (entry mode none; follow or both when the viewer already follows)",
     returns="{entered: true, already}", tags=TAGS)
async def enter(request: web.Request) -> web.Response:
    me = await api.require_viewer(request)
    gid = _id(request)
    if await api.staff_user(request) is not None:
        raise Forbidden("staff cannot enter giveaways")
    row = await service.get_row(api.db(request.app), gid)
    viewer = await api.viewer(request.app, me["id"])
    assert viewer is not None
    if row["status"] != "running":
        raise Conflict(f"giveaway {gid} is not running: entries are taken during its countdown only")
    mode = row["entry_mode"]
    if mode == "comment" and not await api.db(request.app).fetchval(
            "SELECT 1 FROM giveaway_entries WHERE giveaway_id = ? AND viewer_id = ?", (gid, viewer["id"])):
        raise Conflict(service.how_to_enter(mode, row["keyword"]))
    if mode in ("follow", "both") and not viewer["following"]:
        raise Conflict("follow the host to enter" if mode == "follow" else service.how_to_enter(mode, row["keyword"]))
    new, reason = await service.enter(request.app, gid, viewer, "button" if mode == "none" else "follow")
    if reason:
        raise Forbidden(reason)
    return web.json_response({"entered": True, "already": not new})


@doc("Claim a won prize within the claim window: it becomes a zero-price order marked giveaway",
     body={"name": "string: 1–120 characters", "email": "string: an email address", "address": "string: shipping address, 5–500 characters"},
     returns="{claimed: true, order_ids}", tags=TAGS)
async def claim(request: web.Request) -> web.Response:
    me = await api.require_viewer(request)
    gid = _id(request)
    data = await json_body(request)
    name = validate.text(data, "name", max_len=120, min_len=1, required=True)
    email = validate.text(data, "email", max_len=254, required=True)
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        raise BadRequest(f"'email' must be an email address like name@example.com, got {email!r}")
    address = validate.text(data, "address", max_len=500, min_len=5, required=True)
    return web.json_response(await service.claim(request.app, gid, me, {"name": name, "email": email, "address": address}))


# --------------------------------------------------------------------------------------------- pages


async def proof_page(request: web.Request) -> web.Response:
    """The public proof page of a started giveaway, with the in-browser Verify."""
    data = await _public(request, _id(request), request.match_info["ident"])
    return await render_page(request, f"{NAME}/proof.html", {"giveaway": data})


async def list_page(request: web.Request) -> web.Response:
    """Every giveaway and the event it is attached to."""
    await api.require(request, PERMISSION)
    return await render_page(request, f"{NAME}/list.html", {"giveaways": await service.list_json(request.app)})


def routes() -> list[web.RouteDef]:
    one = API + r"/giveaways/{id:\d+}"
    return [
        web.get(API + "/giveaways", list_giveaways),
        web.post(API + "/giveaways", create),
        web.get(one, get_one),
        web.patch(one, patch),
        web.delete(one, delete),
        web.post(one + "/start", start),
        web.post(one + "/redraw", redraw),
        web.get(one + "/proof", proof),
        web.post(one + "/enter", enter),
        web.post(one + "/claim", claim),
        web.put(API + r"/events/{event_id:\d+}/giveaways/{id:\d+}", attach),
        web.delete(API + r"/events/{event_id:\d+}/giveaways/{id:\d+}", detach),
        web.get(API + r"/events/{event_id:\d+}/current", current),
        web.get(r"/e/{ident}/giveaways/{id:\d+}", proof_page),
        web.get(f"/p/{NAME}/", list_page),
    ]
