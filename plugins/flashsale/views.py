"""HTTP routes of the flash-sale plugin (JSON under ``/api/plugins/flashsale/``).

Staff routes need ``flashsale.manage``; the viewer route (the sales of a LIVE event, for the flash card)
is public like the event's page. Buying is not here: the viewer page buys through the core order path
(``POST /api/e/{id}/orders`` with ``offer = "flashsale:<id>"``), where :mod:`.store` prices and limits it.
"""

from __future__ import annotations

import time

from aiohttp import web

from lmserver import api
from lmserver.api import BadRequest, doc, json_body, validate

from . import service
from .store import NAME

API = f"/api/plugins/{NAME}"
PERMISSION = "flashsale.manage"
TAGS = ["flashsale"]
SALE = ("{sale: {id, event_id, product_id, title, allocated, sold, left, deal_price_cents, regular_price_cents, lowest_30d_cents,"
        " currency, per_buyer_limit, countdown_seconds, duration_minutes, status, practice, starts_at, ends_at, end_reason,"
        " figures: {units_sold, buyers, gmv_cents, seconds_to_sell_out}}}")
SETTINGS_BODY = {
    "allocated": "integer: units set aside from stock for the sale, 1 to the product's free stock",
    "deal_price_cents": "integer: the deal price in cents, above 0 and below the regular price",
    "per_buyer_limit": "integer: optional, most units one buyer may buy in the sale (1–1000; null: no limit)",
    "countdown_seconds": "integer: the pre-launch countdown, 10–300 seconds (default 30)",
    "duration_minutes": "integer: how long the sale runs once started, 1–60 minutes (default 5)",
}


@doc("The flash sales of an event (drafts, running and ended), with their figures", returns="{sales: [" + SALE[7:-1] + "]}",
     tags=TAGS, permission=PERMISSION)
async def list_sales(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    event_id = validate.path_int(request, "event_id")
    return web.json_response({"sales": await service.list_for_event(request.app, event_id)})


@doc("Set up a flash sale on a product of the event's bag (a draft: launch it during the LIVE)",
     body={"product_id": "integer: a product of the event's shopping bag", **SETTINGS_BODY}, returns=SALE, tags=TAGS,
     permission=PERMISSION)
async def create_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    event_id = validate.path_int(request, "event_id")
    data = await json_body(request)
    validate.reject_unknown(data, ("product_id", *SETTINGS_BODY), "flash sale")
    product_id = validate.integer(data, "product_id", min=1)
    sale = await service.create(request.app, event_id, product_id, service.check_settings(data))
    return web.json_response({"sale": sale}, status=201)


@doc("One flash sale with its figures", returns=SALE, tags=TAGS, permission=PERMISSION)
async def get_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    sale = await service.get(request.app, validate.path_int(request))
    return web.json_response({"sale": await service.full(request.app, sale)})


@doc("Edit a flash sale before its launch (any subset of the settings)", body=SETTINGS_BODY, returns=SALE, tags=TAGS,
     permission=PERMISSION)
async def edit_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    data = await json_body(request)
    validate.reject_unknown(data, tuple(SETTINGS_BODY), "flash sale")
    settings = service.check_settings(data, partial=True)
    if not settings:
        raise BadRequest(f"nothing to change: send one or more of {', '.join(SETTINGS_BODY)}")
    return web.json_response({"sale": await service.edit(request.app, validate.path_int(request), settings)})


@doc("Delete a flash sale before its launch", returns="{deleted: id}", tags=TAGS, permission=PERMISSION)
async def delete_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    sale_id = validate.path_int(request)
    await service.delete(request.app, sale_id)
    return web.json_response({"deleted": sale_id})


@doc("Duplicate a flash sale: same product and settings, a new allocation (a draft)", returns=SALE, tags=TAGS,
     permission=PERMISSION)
async def duplicate_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return web.json_response({"sale": await service.duplicate(request.app, validate.path_int(request))}, status=201)


@doc("Launch a flash sale while its event is live: the countdown starts, then the sale runs for its duration"
     " (409 when not live or when another sale of the product runs)", returns=SALE, tags=TAGS, permission=PERMISSION)
async def launch_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return web.json_response({"sale": await service.launch(request.app, validate.path_int(request))})


@doc("End a running flash sale now: the units it did not sell are back in stock at once", returns=SALE, tags=TAGS,
     permission=PERMISSION)
async def end_sale(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    sale_id = validate.path_int(request)
    sale = await service.get(request.app, sale_id)
    if sale["status"] not in ("countdown", "live"):
        raise api.Conflict(f"flash sale {sale_id} is not running ({sale['status']}): only a launched sale can be ended")
    return web.json_response({"sale": await service.end(request.app, sale_id, "ended early by staff")})


@doc("The running flash sales of a LIVE event, for the viewer page's flash card (public; practice sales for staff only)",
     returns="{sales: [{id, product_id, title, allocated, sold, left, deal_price_cents, regular_price_cents, lowest_30d_cents,"
     " currency, per_buyer_limit, status, starts_at, ends_at, practice, waitlist: {status, units, offered_until} | null}], now}",
     tags=TAGS, permission=None)
async def viewer_sales(request: web.Request) -> web.Response:
    event_id = validate.path_int(request, "event_id")
    try:
        viewer_id = (await api.require_viewer(request))["id"]
    except api.Unauthorized:
        viewer_id = None
    staff = await api.staff_user(request)
    sales = []
    for sale in await service.running(request.app, event_id):
        if sale["practice"] and staff is None:  # a practice sale: nobody but staff watches
            continue
        full = await service.full(request.app, sale)
        full.pop("figures", None)
        full["waitlist"] = await service.my_waitlist(request.app, sale["id"], viewer_id) if viewer_id else None
        sales.append(full)
    return web.json_response({"sales": sales, "now": time.time()})


@doc("Join the waitlist of a sold-out flash sale (viewer): when a held unit comes back, it is held for the viewers"
     " waiting longest, one each, for hold_minutes", returns="{waitlist: {sale_id, status, position}}", tags=TAGS, permission=None)
async def join_waitlist(request: web.Request) -> web.Response:
    viewer = await api.require_viewer(request)
    sale = await service.get(request.app, validate.path_int(request))
    if sale["event_id"] != validate.path_int(request, "event_id"):
        raise api.NotFound(f"no flash sale {sale['id']} in this event")
    return web.json_response({"waitlist": await service.join_waitlist(request.app, sale["id"], viewer["id"])}, status=201)


def routes() -> list[web.RouteDef]:
    return [
        web.get(API + r"/events/{event_id:\d+}/sales", list_sales),
        web.post(API + r"/events/{event_id:\d+}/sales", create_sale),
        web.get(API + r"/sales/{id:\d+}", get_sale),
        web.patch(API + r"/sales/{id:\d+}", edit_sale),
        web.delete(API + r"/sales/{id:\d+}", delete_sale),
        web.post(API + r"/sales/{id:\d+}/duplicate", duplicate_sale),
        web.post(API + r"/sales/{id:\d+}/launch", launch_sale),
        web.post(API + r"/sales/{id:\d+}/end", end_sale),
        web.get(API + r"/e/{event_id:\d+}/sales", viewer_sales),
        web.post(API + r"/e/{event_id:\d+}/sales/{id:\d+}/waitlist", join_waitlist),
    ]
