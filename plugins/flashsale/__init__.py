"""Flash sales: short, limited deals on allocated inventory during a LIVE, never oversold.

Built on the public plugin API only (:mod:`lmserver.api`), registered through an entry point in
``pyproject.toml`` like any third-party plugin. What lives where:

- ``__init__.py`` (this file): the hook implementations, the whole contract with the core;
- ``store.py``: settings, tables, and the rules that run in the order writer (``order_price``,
  ``reserve_order``): the deal price, the allocation, the per-buyer limit, the set-aside units;
- ``service.py``: set up, launch, start, end (scheduler timers), figures;
- ``views.py``: the HTTP routes;
- ``templates/``, ``static/``: the console panel and the viewer page's flash card.

Settings (``config.toml``)::

    [plugins.flashsale]
    hold_minutes = 5     # minutes a unit stays held for a buyer whose checkout answered pending_payment
    banner = false       # composite the running sale's banner on the program video (``banner.py``)
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import Action, Activity, EventSpec, Figure, OrderDraft, Panel, Permission, hookimpl

from . import banner, service, store, views
from .store import MIGRATIONS, NAME, Settings

PLUGIN_NAME = NAME
__version__ = "1.0"

SALE_FIELD = {"sale": "the sale (settings, sold, left, prices, times, figures)"}
#: what viewers see of a sale (not its figures: GMV and buyers are staff-only)
PUBLIC_SALE = ("id", "product_id", "title", "allocated", "sold", "left", "deal_price_cents", "regular_price_cents", "lowest_30d_cents",
               "currency", "per_buyer_limit", "status", "starts_at", "ends_at", "practice")


@hookimpl
def register_routes(app: web.Application) -> list[web.RouteDef]:
    app[service.SETTINGS] = Settings.from_table(api.plugin_config(app, NAME))
    app[service.PROGRESS] = {}
    app[banner.SHOWN] = {}
    return views.routes()


@hookimpl
def register_migrations() -> list[tuple[str, str]]:
    return MIGRATIONS


@hookimpl
def register_actions() -> list[Action]:
    """``flashsale.launch`` (params ``{"event_id", "product_id"?}``): launch the next flash sale set up for the event
    (for that product; else its last sale again), the prompter's "Launch a flash sale" button."""
    return [Action(service.LAUNCH_ACTION, "Launch a flash sale", views.PERMISSION, service.launch_next,
                   "launch the live event's next flash sale (on the given product)")]


@hookimpl
def register_permissions() -> list[Permission]:
    return [Permission(views.PERMISSION, "flash sales: set up, launch, duplicate and end them", ("owner", "moderator", "assistant"))]


@hookimpl
def register_bus_events() -> list[EventSpec]:
    text = {"text": "what the activity feed shows"}
    return [
        EventSpec("flashsale.changed", "A flash sale was created, edited or deleted (before its launch).",
                  {"sale_id": "the sale's id", "action": "created, updated or deleted", "sale": "the sale (null when deleted)"}),
        EventSpec("flashsale.launched", "A flash sale was launched: its countdown runs ('Flash sale launched: Mug at 5.00 USD').",
                  {**SALE_FIELD, **text}, "public", activity="{text}", public={"sale": PUBLIC_SALE}),
        EventSpec("flashsale.started", "A flash sale's countdown ended: it is selling.", SALE_FIELD, "public", public={"sale": PUBLIC_SALE}),
        EventSpec("flashsale.progress", "Units of a flash sale were sold (or given back).",
                  {"sale_id": "the sale's id", "sold": "units sold", "allocated": "units allocated"}, "public",
                  public={"sale_id": None, "sold": None, "allocated": None}),
        EventSpec("flashsale.offered", "Units came back from an expired hold: these waitlisted viewers each have one held for them.",
                  {"sale_id": "the sale's id", "viewer_ids": "the viewers with a hold", "until": "the holds expire then (UNIX s)"}, "public",
                  public={"sale_id": None, "until": None}),
        EventSpec("flashsale.sold_out", "A flash sale sold its whole allocation ('Flash sale sold out: Mug, 100 units in 42 s').",
                  {"sale_id": "the sale's id", **SALE_FIELD, **text}, "public", activity="{text}", public={"sale_id": None, "sale": PUBLIC_SALE}),
        EventSpec("flashsale.ended", "A flash sale ended (time is up, ended early, the LIVE ended); what it did not sell is back in stock.",
                  {**SALE_FIELD, "reason": "why it ended", **text}, "public", activity="{text}", public={"sale": PUBLIC_SALE, "reason": None}),
    ]


@hookimpl
def register_timers() -> dict[str, Any]:
    return {service.START: service.on_start, service.END: service.on_end, service.HOLD: service.on_hold_expired,
            service.OFFER: service.on_offer_expired}


@hookimpl
async def startup(app: web.Application) -> None:
    await service.catch_up(app)


@hookimpl
async def shutdown(app: web.Application) -> None:
    await service.stop(app)


@hookimpl
def order_price(conn: sqlite3.Connection, draft: OrderDraft) -> int | None:
    return store.order_price(conn, draft)


@hookimpl
def reserve_order(conn: sqlite3.Connection, draft: OrderDraft) -> str | None:
    return store.reserve(conn, draft)


@hookimpl
def order_cancelled(conn: sqlite3.Connection, order: dict[str, Any]) -> None:
    """Staff cancelled or refunded an order of a sale before shipping: its units go back to the sale's allocation."""
    store.release(conn, [order["id"]])


@hookimpl
async def on_bus_event(app: web.Application, event: Activity) -> None:
    if event.name == "order.created":
        await service.after_order(app, event)
    elif event.name == "order.released":
        await service.released(app, event)
    elif event.name == "stream.ended" and event.session_id is not None:
        await service.session_ended(app, event)
    elif event.name == "flashsale.ended":
        banner.remove(app, event.data["sale"]["id"])


@hookimpl
async def tick(app: web.Application, session: api.LiveSession, now: float) -> None:
    """Once a second while live: the banners on the program (when ``banner = true``) follow the running sales."""
    if not app[service.SETTINGS].banner or session.event_id is None:
        return
    sales = [s for s in await service.running(app, session.event_id) if s["session_id"] == session.id and s["ends_at"] > now]
    await banner.refresh(app, [await service.full(app, s) for s in sales], now)


@hookimpl
async def session_figures(app: web.Application, session: dict[str, Any]) -> list[Figure]:
    rows = await api.db(app).fetchall("SELECT id FROM flashsale_sales WHERE session_id = ? ORDER BY id", (session["id"],))
    if not rows:
        return []
    units = buyers = gmv = 0
    fastest = None
    for r in rows:
        sale = await service.get(app, r["id"])
        f = await service.figures(app, sale)
        units, buyers, gmv = units + f["units_sold"], buyers + f["buyers"], gmv + f["gmv_cents"]
        if f["seconds_to_sell_out"] is not None:
            fastest = f["seconds_to_sell_out"] if fastest is None else min(fastest, f["seconds_to_sell_out"])
    out = [Figure("flashsale_sales", "Flash sales", len(rows), order=60),
           Figure("flashsale_units", "Flash-sale units sold", units, order=61),
           Figure("flashsale_buyers", "Flash-sale buyers", buyers, order=62),
           Figure("flashsale_gmv", "Flash-sale GMV", service.money(gmv), order=63)]
    if fastest is not None:
        out.append(Figure("flashsale_sell_out", "Flash sale sold out in", f"{fastest:g} s", order=64))
    return out


@hookimpl
async def console_panels(request: web.Request, event: dict[str, Any] | None) -> list[Panel]:
    user = await api.staff_user(request)
    if event is None or user is None or not user.can(views.PERMISSION):
        return []
    products = [p for p in [await api.product(request.app, pid) for pid in await api.bag_product_ids(request.app, event["id"])] if p]
    return [Panel("flashsale", "Flash sales", f"{NAME}/panel.html",
                  {"flashsale": {"event_id": event["id"], "sales": await service.list_for_event(request.app, event["id"]),
                                 "products": products}}, order=55)]


@hookimpl
async def viewer_widgets(request: web.Request, event: dict[str, Any] | None) -> list[Panel]:
    if event is None:
        return []
    return [Panel("flashsale", "Flash sale", f"{NAME}/card.html", {"flashsale": {"event_id": event["id"]}}, order=20)]
