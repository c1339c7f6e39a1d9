"""Giveaways: products given away during a LIVE, with a draw anyone can verify.

Built only on :mod:`lmserver.api`, registered like a third-party plugin::

    [project.entry-points.lmserver]
    giveaway = "lmserver_plugins.giveaway"

What lives where: ``store.py`` (settings, tables), ``draw.py`` (the commit–reveal draw, pure functions),
``service.py`` (the flow: allocate, start, enter, draw, redraw, claim), ``views.py`` (routes and pages),
``templates/`` and ``static/`` (console panel, viewer card, proof page with its WebCrypto verifier). The
algorithm, and a 20-line verifier, are in ``docs/giveaways.md``.

Settings (``config.toml``)::

    [plugins.giveaway]
    terms = "..."          # the terms the host accepts before creating a giveaway
    claim_hours = 48       # a winner's claim window, in hours
    entry_milestone = 10   # an "N entries" activity every this many entries (0: never)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import Action, Activity, ChecklistItem, EventSpec, Figure, MenuLink, Panel, Permission, User, hookimpl

from . import service, views
from .store import MIGRATIONS, NAME, Settings

PLUGIN_NAME = NAME
__version__ = "1.0"


@hookimpl
def register_routes(app: web.Application) -> list[web.RouteDef]:
    app[service.SETTINGS] = Settings.from_table(api.plugin_config(app, NAME))
    app[service.RUNNING] = {}
    return views.routes()


@hookimpl
def register_migrations() -> list[tuple[str, str]]:
    return MIGRATIONS


@hookimpl
def register_actions() -> list[Action]:
    """``giveaway.start`` (params ``{"event_id"}``): start the event's next ready giveaway (the prompter's
    "Start a giveaway" button)."""
    return [Action(service.START_ACTION, "Start a giveaway", views.PERMISSION, service.start_next,
                   "start the live event's next ready giveaway (its countdown to the draw)")]


@hookimpl
def register_permissions() -> list[Permission]:
    return [Permission(views.PERMISSION, "giveaways: create, edit, start and redraw them; see winners' claims",
                       ("owner", "moderator", "assistant"))]


@hookimpl
def register_timers() -> dict[str, Any]:
    return {service.TIMER: service.draw_due}


@hookimpl
def register_bus_events() -> list[EventSpec]:
    return [
        EventSpec("giveaway.started", "A giveaway's countdown started; its draw's commitment SHA-256(seed) is public.",
                  {"giveaway": "the giveaway (public fields)"}, "public", activity=True, public={"giveaway": None}),
        EventSpec("giveaway.entered", "A viewer entered the running giveaway.",
                  {"giveaway_id": "id", "entries": "entries so far", "viewer_id": "the entrant", "nickname": "their nickname"},
                  "public", persist=False, public={"giveaway_id": None, "entries": None, "nickname": None}),
        EventSpec("giveaway.milestone", "A running giveaway reached a round number of entries.",
                  {"giveaway_id": "id", "entries": "entries so far", "title": "the giveaway"}, "staff", activity=True),
        EventSpec("giveaway.drawn", "The winners were drawn (at the countdown's end, or a redraw); the seed is revealed.",
                  {"giveaway": "the giveaway with its draws and winners (public fields)", "redraw": "a redraw of unclaimed prizes"},
                  "public", activity=True, public={"giveaway": None, "redraw": None}),
        EventSpec("giveaway.claimed", "A winner claimed their prize (zero-price orders marked giveaway).",
                  {"giveaway_id": "id", "nickname": "the winner", "order_ids": "the orders"}, "staff", activity=True),
        EventSpec("giveaway.changed", "A giveaway was created, edited, deleted, attached to or removed from an event.",
                  {"giveaway_id": "id", "action": "created, updated, deleted, attached or detached", "giveaway": "it (null when deleted)"}),
    ]


@hookimpl
async def startup(app: web.Application) -> None:
    await service.refresh_running(app)


@hookimpl
async def on_bus_event(app: web.Application, event: Activity) -> None:
    if event.name == "comment.created":
        await service.on_comment(app, event.data["comment"])
    elif event.name == "viewer.followed":
        await service.on_follow(app, event.event_id, event.data["viewer_id"])


@hookimpl
async def console_panels(request: web.Request, event: dict[str, Any] | None) -> list[Panel]:
    user = await api.staff_user(request)
    if user is None or not user.can(views.PERMISSION) or event is None:
        return []
    cfg = service.settings(request.app)
    return [Panel("giveaways", "Giveaways", f"{NAME}/panel.html",
                  {"giveaway_panel": {"event_id": event["id"], "api": views.API, "terms": cfg.terms}}, order=55)]


@hookimpl
async def viewer_widgets(request: web.Request, event: dict[str, Any] | None) -> list[Panel]:
    if event is None:
        return []
    return [Panel("giveaway", "Giveaway", f"{NAME}/card.html", {"giveaway_card": {"event_id": event["id"], "api": views.API}}, order=40)]


@hookimpl
def menu_links(request: web.Request, user: User) -> list[MenuLink]:
    return [MenuLink("Giveaways", f"/p/{NAME}/", order=55)] if user.can(views.PERMISSION) else []


@hookimpl
async def session_figures(app: web.Application, session: dict[str, Any]) -> list[Figure]:
    db = api.db(app)
    run = await db.fetchval("SELECT COUNT(*) FROM giveaways WHERE session_id = ?", (session["id"],), default=0)
    if not run:
        return []  # a session without giveaways shows no giveaway figures
    entries = await db.fetchval("SELECT COUNT(*) FROM giveaway_entries e JOIN giveaways g ON g.id = e.giveaway_id"
                                " WHERE g.session_id = ?", (session["id"],), default=0)
    return [Figure("giveaways_run", "Giveaways", run, order=60), Figure("giveaway_entries", "Giveaway entries", entries, order=61)]


@hookimpl
async def home_checklist(app: web.Application, events: list[dict[str, Any]]) -> list[ChecklistItem]:
    """"Prepare a giveaway": done when the next event has one."""
    nxt = events[0] if events else None
    count = await api.db(app).fetchval("SELECT COUNT(*) FROM giveaways WHERE event_id = ?", (nxt["id"],), default=0) if nxt else 0
    return [ChecklistItem("giveaway", "Prepare a giveaway", count > 0,
                          f"{count} ready for {nxt['title']}" if count and nxt else "Give a product away to drive comments and follows",
                          nxt["console_url"] if nxt else f"/p/{NAME}/", order=40)]
