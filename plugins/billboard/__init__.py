"""Billboards: text and image overlays the host displays on the live video.

This package is the example to copy when writing an lmserver plugin. It uses only the core's public
API (:mod:`lmserver.api`), and it is registered like any third-party plugin, through an entry point in
``pyproject.toml``::

    [project.entry-points.lmserver]
    billboard = "lmserver_plugins.billboard"

What lives where:

- ``__init__.py`` (this file): the hook implementations, the whole contract with the core;
- ``store.py``: settings (``[plugins.billboard]``), tables (migrations) and the JSON shape;
- ``render.py``: drawing text billboards with Pillow (pure functions; the benchmark uses them);
- ``service.py``: show / hide / move / edit: database first, then the compositor layer, then the bus;
- ``views.py``: the HTTP routes (JSON API and the preview page);
- ``templates/panel.html`` (``"billboard/panel.html"``): the console panel;
  ``static/`` (``/-/static/plugins/billboard/``): its script and style.

Settings (``config.toml``)::

    [plugins.billboard]
    max_shown = 2                 # most billboards shown at once
    max_image_bytes = 8388608     # largest image upload
    max_image_pixels = 40000000   # largest image, width × height
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import Activity, ChecklistItem, EventSpec, LiveSession, MenuLink, Panel, Permission, User, hookimpl

from . import service, views
from .store import MIGRATIONS, NAME, Settings

#: the name the core knows this plugin by when it is registered directly (tests); the entry point's
#: name is the same
PLUGIN_NAME = NAME
__version__ = "1.0"

BILLBOARD_FIELDS = {"billboard_id": "the billboard's id", "name": "its name"}
PLACE_FIELDS = {"x": "left, program px", "y": "top, program px", "width": "program px", "height": "program px"}


@hookimpl
def register_routes(app: web.Application) -> list[web.RouteDef]:
    # Check the settings once, when the app is built: a bad value is refused with its full key name.
    app[service.SETTINGS] = Settings.from_table(api.plugin_config(app, NAME))
    return views.routes()


@hookimpl
def register_migrations() -> list[tuple[str, str]]:
    return MIGRATIONS


@hookimpl
def register_permissions() -> list[Permission]:
    return [Permission(views.PERMISSION, "billboards: create, edit, show and hide them on the program",
                       ("owner", "moderator", "assistant"))]


@hookimpl
def register_bus_events() -> list[EventSpec]:
    return [
        EventSpec("billboard.shown", "A billboard was displayed in the program.",
                  {**BILLBOARD_FIELDS, **PLACE_FIELDS, "resumed": "shown again because its session resumed"},
                  activity="Billboard “{name}” on air{resumed|if: again}", label="Billboards shown", icon="🪧"),
        EventSpec("billboard.hidden", "A billboard was taken off the program.",
                  {**BILLBOARD_FIELDS, "reason": "hidden by staff, the stream ended, ..."},
                  activity="Billboard “{name}” off the program: {reason}", label="Billboards hidden", icon="🪧"),
        EventSpec("billboard.moved", "A billboard's position or size changed.", {"billboard_id": "the billboard's id", **PLACE_FIELDS}),
        EventSpec("billboard.changed", "A billboard was created, edited, deleted, attached to or detached from an event.",
                  {"billboard_id": "the billboard's id", "action": "created, updated, deleted, attached or detached",
                   "billboard": "the billboard (null when deleted)"}),
    ]


@hookimpl
async def register_overlays(app: web.Application, session: LiveSession) -> None:
    await service.restore(app, session)


@hookimpl
async def on_bus_event(app: web.Application, event: Activity) -> None:
    if event.name == "stream.ended":
        await service.stream_ended(app, event)


@hookimpl
async def console_panels(request: web.Request, event: dict[str, Any] | None) -> list[Panel]:
    user = await api.staff_user(request)
    if user is None or not user.can(views.PERMISSION):  # no panel for a role that could not use it
        return []
    context = views.panel_context(request.app, event["id"] if event else None)
    return [Panel("billboards", "Billboards", f"{NAME}/panel.html", {"billboard_panel": context}, order=50)]


@hookimpl
def menu_links(request: web.Request, user: User) -> list[MenuLink]:
    return [MenuLink("Billboards", f"/p/{NAME}/preview", order=50)] if user.can(views.PERMISSION) else []


@hookimpl
async def home_checklist(app: web.Application, events: list[dict[str, Any]]) -> list[ChecklistItem]:
    """"Prepare a billboard": done when the next event has one attached."""
    nxt = events[0] if events else None
    attached = await service.attached_count(app, nxt["id"]) if nxt else 0
    return [ChecklistItem("billboard", "Prepare a billboard for your next LIVE", attached > 0,
                          f"{attached} attached to {nxt['title']}" if attached and nxt else
                          "Free shipping, a discount code, your handle: shown on the video in one click",
                          nxt["console_url"] if nxt else f"/p/{NAME}/preview", order=60)]
