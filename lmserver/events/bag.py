"""The shopping bag of an event (at most :data:`BAG_LIMIT` products, in order) and pinning while live, with its API."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .. import auth, validate
from ..appkeys import BUS, DB, LIVE
from ..catalog import product_json
from ..errors import BadRequest, Conflict, NotFound
from ..openapi import doc
from ..views import json_body
from .model import check_editable, event_from_path

routes = web.RouteTableDef()


BAG_LIMIT = 100


async def bag_rows(db: Any, event_id: int, q: str = "") -> list[Any]:
    where, params = "b.event_id = ?", [event_id]
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where += " AND (p.title LIKE ? ESCAPE '\\' OR p.sku LIKE ? ESCAPE '\\')"
        params += [like, like]
    return await db.fetchall(
        "SELECT p.*, b.position AS position FROM event_products b JOIN products p ON p.id = b.product_id"
        f" WHERE {where} ORDER BY b.position, b.added_at", params)


async def bag_ids(db: Any, event_id: int) -> list[int]:
    rows = await db.fetchall("SELECT product_id FROM event_products WHERE event_id = ? ORDER BY position, added_at", (event_id,))
    return [r["product_id"] for r in rows]


async def pinned_product_id(app: web.Application, event_id: int) -> int | None:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        return None
    return await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))


async def bag_json(app: web.Application, event_id: int, q: str = "") -> dict[str, Any]:
    db = app[DB]
    rows = await bag_rows(db, event_id, q)
    total = await db.fetchval("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (event_id,))
    live = app[LIVE].current
    products = []
    for r in rows:
        p = product_json(r)
        p["position"] = r["position"] + 1
        products.append(p)
    return {"event_id": event_id, "products": products, "count": total, "limit": BAG_LIMIT, "q": q,
            "pinned_product_id": await pinned_product_id(app, event_id),
            "live": bool(live and live.event_id == event_id), "practice": bool(live and live.event_id == event_id and live.practice)}


async def _write_order(db: Any, event_id: int, ids: list[int]) -> None:
    async with db.transaction() as tx:
        await tx.executemany("UPDATE event_products SET position = ? WHERE event_id = ? AND product_id = ?",
                             [(pos, event_id, pid) for pos, pid in enumerate(ids)])


async def _bag_changed(app: web.Application, event_id: int, action: str) -> dict[str, Any]:
    await app[BUS].publish("bag.changed", {"action": action, "product_ids": await bag_ids(app[DB], event_id)}, **app[LIVE].tags(event_id))
    return await bag_json(app, event_id)


async def bag_add(app: web.Application, event_id: int, product_ids: list[int]) -> dict[str, Any]:
    db = app[DB]
    if not product_ids:
        raise BadRequest("give 'product_id' (or 'product_ids') of the product(s) to add")
    if len(set(product_ids)) != len(product_ids):
        raise BadRequest("a product is listed twice")
    for pid in product_ids:
        row = await db.fetchone("SELECT id, title, archived FROM products WHERE id = ?", (pid,))
        if row is None:
            raise NotFound(f"product {pid} does not exist")
        if row["archived"]:
            raise Conflict(f"“{row['title']}” is archived: restore it in the catalog first")
    now = time.time()
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT product_id, position FROM event_products WHERE event_id = ? ORDER BY position", (event_id,))
        current = {r[0]: r[1] for r in await cur.fetchall()}
        for pid in product_ids:
            if pid in current:
                title = await db.fetchval("SELECT title FROM products WHERE id = ?", (pid,))
                raise Conflict(f"“{title}” is already in the shopping bag (position {sorted(current, key=current.get).index(pid) + 1})")
        if len(current) + len(product_ids) > BAG_LIMIT:
            room = BAG_LIMIT - len(current)
            raise Conflict(f"the shopping bag is full: an event holds at most {BAG_LIMIT} products and this one has {len(current)}"
                           + (f" (room for {room} more)" if room else "") + ": remove a product first",
                           details={"count": len(current), "limit": BAG_LIMIT})
        start = max(current.values(), default=-1) + 1
        await tx.executemany("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                             [(event_id, pid, start + i, now) for i, pid in enumerate(product_ids)])
    return await _bag_changed(app, event_id, "add")


async def bag_move(app: web.Application, event_id: int, product_id: int, position: int) -> dict[str, Any]:
    ids = await bag_ids(app[DB], event_id)
    if product_id not in ids:
        raise NotFound(f"product {product_id} is not in this event's shopping bag")
    if not 1 <= position <= len(ids):
        raise BadRequest(f"'position' must be from 1 to {len(ids)} (the number of products in the bag), got {position}")
    ids.remove(product_id)
    ids.insert(position - 1, product_id)
    await _write_order(app[DB], event_id, ids)
    return await _bag_changed(app, event_id, "move")


async def bag_reorder(app: web.Application, event_id: int, order: list[int]) -> dict[str, Any]:
    ids = await bag_ids(app[DB], event_id)
    if sorted(order) != sorted(ids):
        raise BadRequest("'product_ids' must list every product of the bag exactly once (the bag changed? reload it)")
    await _write_order(app[DB], event_id, order)
    return await _bag_changed(app, event_id, "move")


async def bag_remove(app: web.Application, event_id: int, product_id: int) -> dict[str, Any]:
    db = app[DB]
    live = app[LIVE].current
    async with db.transaction() as tx:
        cur = await tx.execute("DELETE FROM event_products WHERE event_id = ? AND product_id = ?", (event_id, product_id))
        if cur.rowcount == 0:
            raise NotFound(f"product {product_id} is not in this event's shopping bag")
    if live is not None and live.event_id == event_id and await pinned_product_id(app, event_id) == product_id:
        await unpin(app, event_id)
    await _write_order(db, event_id, await bag_ids(db, event_id))
    return await _bag_changed(app, event_id, "remove")


async def pin(app: web.Application, event_id: int, product_id: int) -> dict[str, Any]:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        raise Conflict("a product can be pinned only while this event is live: go live first")
    db = app[DB]
    if product_id not in await bag_ids(db, event_id):
        raise NotFound(f"product {product_id} is not in this event's shopping bag: add it first")
    previous = await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))
    if previous == product_id:
        return await bag_json(app, event_id)
    async with db.transaction() as tx:
        await tx.execute("UPDATE sessions SET pinned_product_id = ? WHERE id = ?", (product_id, live.id))
    ids = app[LIVE].tags(event_id)
    if previous is not None:
        await app[BUS].publish("product.unpinned", {"product_id": previous}, **ids)
    product = product_json(await db.fetchone("SELECT * FROM products WHERE id = ?", (product_id,)))
    await app[BUS].publish("product.pinned", {"product": product}, **ids)
    return await bag_json(app, event_id)


async def unpin(app: web.Application, event_id: int) -> dict[str, Any]:
    live = app[LIVE].current
    if live is None or live.event_id != event_id:
        raise Conflict("nothing is pinned: this event is not live")
    db = app[DB]
    previous = await db.fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (live.id,))
    if previous is not None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE sessions SET pinned_product_id = NULL WHERE id = ?", (live.id,))
        await app[BUS].publish("product.unpinned", {"product_id": previous}, **app[LIVE].tags(event_id))
    return await bag_json(app, event_id)


def _int(value: Any, field: str) -> int:
    return validate.as_int(value, field, min=None)


def _pid(request: web.Request) -> int:
    return validate.path_int(request, "pid")


@routes.get("/api/events/{id}/bag")
@doc("The event's shopping bag in order, with the pinned product while live", query={"q": "search the bag (title or SKU)"},
     returns="{event_id, products: [{position, id, title, price_cents, currency, stock, sku, image_url, ...}], count, limit, pinned_product_id, live}",
     tags=["bag"], permission="console.view")
async def api_bag(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await event_from_path(request)
    return web.json_response(await bag_json(request.app, row["id"], validate.query_text(request, "q").strip()))


@routes.post("/api/events/{id}/bag")
@doc(f"Add products to the end of the bag (at most {BAG_LIMIT} per event: 409 beyond)",
     body={"product_id": "integer: one product", "product_ids": "integer[]: or several"}, returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_add(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await event_from_path(request)
    check_editable(request.app, row)
    data = await json_body(request)
    if "product_ids" in data:
        if not isinstance(data["product_ids"], list):
            raise BadRequest("'product_ids' must be a list of product ids")
        ids = [_int(v, "product_ids") for v in data["product_ids"]]
    else:
        ids = [_int(data.get("product_id"), "product_id")]
    return web.json_response(await bag_add(request.app, row["id"], ids), status=201)


@routes.put("/api/events/{id}/bag/order")
@doc("Reorder the whole bag (drag and drop)", body={"product_ids": "integer[]: every product id of the bag, in the new order"},
     returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_reorder(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await event_from_path(request)
    check_editable(request.app, row)
    data = await json_body(request)
    order = data.get("product_ids")
    if not isinstance(order, list):
        raise BadRequest("'product_ids' must be a list of product ids")
    return web.json_response(await bag_reorder(request.app, row["id"], [_int(v, "product_ids") for v in order]))


@routes.post("/api/events/{id}/bag/{pid}/move")
@doc("Move a product to a position (1 = top)", body={"position": "integer: 1..N"}, returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_move(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await event_from_path(request)
    check_editable(request.app, row)
    data = await json_body(request)
    return web.json_response(await bag_move(request.app, row["id"], _pid(request), _int(data.get("position"), "position")))


@routes.delete("/api/events/{id}/bag/{pid}")
@doc("Remove a product from the bag (unpins it if pinned)", returns="the bag", tags=["bag"], permission="catalog.edit")
async def api_bag_remove(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    row = await event_from_path(request)
    check_editable(request.app, row)
    return web.json_response(await bag_remove(request.app, row["id"], _pid(request)))


@routes.post("/api/events/{id}/bag/refresh")
@doc("Reload the bag from the catalog (new prices and stock) and tell every console and viewer page", returns="the bag",
     tags=["bag"], permission="console.view")
async def api_bag_refresh(request: web.Request) -> web.Response:
    await auth.require(request)
    row = await event_from_path(request)
    return web.json_response(await _bag_changed(request.app, row["id"], "refresh"))


@routes.post("/api/events/{id}/pin")
@doc("Pin a product of the bag (only while this event is live; replaces the pinned one)", body={"product_id": "integer: a product in the bag"},
     returns="the bag", tags=["bag"], permission="show.run")
async def api_pin(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    row = await event_from_path(request)
    data = await json_body(request)
    return web.json_response(await pin(request.app, row["id"], _int(data.get("product_id"), "product_id")))


@routes.delete("/api/events/{id}/pin")
@doc("Unpin the pinned product", returns="the bag", tags=["bag"], permission="show.run")
async def api_unpin(request: web.Request) -> web.Response:
    await auth.require(request, "show.run")
    row = await event_from_path(request)
    return web.json_response(await unpin(request.app, row["id"]))
