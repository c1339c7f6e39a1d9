"""Routes of the shop-link checkout: which shop product or variant each catalog product is."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import BadRequest, Conflict, NotFound, doc, json_body, validate

from .links import NAME, SETTINGS, SHOP_ID, build_url

API = f"/api/plugins/{NAME}"
PERMISSION = "catalog.edit"
TAGS = ["shoplink"]
MAPPING = "{product_id, shop_id, example_url}"


async def _mappings(app: web.Application) -> list[dict[str, Any]]:
    rows = await api.db(app).fetchall("SELECT product_id, shop_id FROM shoplink_products ORDER BY product_id")
    settings = app[SETTINGS]
    return [{"product_id": r["product_id"], "shop_id": r["shop_id"],
             "example_url": None if settings.problem() else build_url(settings, shop_id=r["shop_id"], quantity=1)} for r in rows]


@doc("Every product mapped to the shop, with the URL one unit would open", returns=f"{{products: [{MAPPING}], url_template, problem}}",
     tags=TAGS, permission="console.view")
async def list_products(request: web.Request) -> web.Response:
    await api.require(request, "console.view")
    settings = request.app[SETTINGS]
    return web.json_response({"products": await _mappings(request.app), "url_template": settings.template, "problem": settings.problem()})


@doc("Map a catalog product to the shop's product or variant id: Buy then sends viewers to the shop",
     body={"shop_id": "string: the shop's product or variant id (letters, digits, - _ . : /; at most 100)"},
     returns=f"{{product: {MAPPING}}}", tags=TAGS, permission=PERMISSION)
async def put_product(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    pid = validate.path_int(request)
    data = await json_body(request)
    validate.reject_unknown(data, {"shop_id"}, "the body")
    shop_id = validate.text(data, "shop_id", max_len=100, required=True)
    if not SHOP_ID.fullmatch(shop_id):
        raise BadRequest("'shop_id' may hold letters, digits and - _ . : / only (e.g. Shopify's variant id 44012345678901)")
    problem = request.app[SETTINGS].problem()
    if problem:
        raise Conflict(problem)
    async with api.db(request.app).transaction() as tx:
        if await api.product(tx, pid) is None:
            raise NotFound(f"no product {pid} in the catalog")
        await tx.execute("INSERT INTO shoplink_products (product_id, shop_id, updated_at) VALUES (?, ?, ?) ON CONFLICT (product_id)"
                         " DO UPDATE SET shop_id = excluded.shop_id, updated_at = excluded.updated_at", (pid, shop_id, time.time()))
    found = [m for m in await _mappings(request.app) if m["product_id"] == pid]
    return web.json_response({"product": found[0]})


@doc("Unmap a product: Buy goes back to the next checkout (pay later)", returns="{removed: bool}", tags=TAGS, permission=PERMISSION)
async def delete_product(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    pid = validate.path_int(request)
    async with api.db(request.app).transaction() as tx:
        cur = await tx.execute("DELETE FROM shoplink_products WHERE product_id = ?", (pid,))
    return web.json_response({"removed": cur.rowcount == 1})


#: the settings page (the owner's: the studio's shop is a setting)
PAGE = f"/p/{NAME}/"
PAGE_PERMISSION = "settings.manage"


async def settings_page(request: web.Request) -> web.Response:
    """Every catalog product with its shop id (a form per row; saved through the routes above)."""
    await api.require(request, PAGE_PERMISSION)
    mapped = {m["product_id"]: m for m in await _mappings(request.app)}
    rows = await api.db(request.app).fetchall("SELECT id, title, sku FROM products WHERE archived = 0 ORDER BY title COLLATE NOCASE, id")
    products = [{"id": r["id"], "title": r["title"], "sku": r["sku"], "shop_id": mapped.get(r["id"], {}).get("shop_id"),
                 "example_url": mapped.get(r["id"], {}).get("example_url")} for r in rows]
    settings = request.app[SETTINGS]
    return await api.render(request, f"{NAME}/settings.html", {
        "products": products, "problem": settings.problem(),
        "settings": {"shop": settings.shop, "url_template": settings.url_template, "template": settings.template}})


def routes() -> list[web.RouteDef]:
    return [web.get(f"{API}/products", list_products), web.put(f"{API}/products/{{id}}", put_product),
            web.delete(f"{API}/products/{{id}}", delete_product), web.get(PAGE, settings_page)]
