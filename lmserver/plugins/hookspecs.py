"""The extension points of lmserver: one hookspec per point, project name ``lmserver``.

A plugin is a module (or object) with functions decorated ``@hookimpl`` and named like the specs below,
registered through the entry-point group ``lmserver`` in its ``pyproject.toml``::

    [project.entry-points.lmserver]
    myplugin = "my_package.plugin"

An implementation may take any subset of a spec's arguments. It may return a value, a coroutine or a
callable returning either; the core resolves all three (``await_me_maybe``). A plugin that raises is
logged with its name and skipped; it never takes the stream down.

Conventions: a plugin package's ``templates/`` folder is reachable as ``"<plugin name>/<file>"`` in
Jinja, and its ``static/`` folder is served under ``/-/static/plugins/<plugin name>/``. Its settings are
``config.plugin_config("<plugin name>")`` (the ``[plugins.NAME]`` table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from lmserver.bus import Activity
    from lmserver.busevents import EventSpec
    from lmserver.db import Migration
    from lmserver.live import LiveSession
    from lmserver.plugins.types import CheckoutRequest, CheckoutResult, Panel, PrompterRule

hookspec = pluggy.HookspecMarker("lmserver")
hookimpl = pluggy.HookimplMarker("lmserver")


@hookspec
def register_routes(app: "web.Application") -> "list[web.AbstractRouteDef]":
    """Add HTTP routes. Called once while the app is built.

    Return a list of aiohttp route definitions (``web.get(...)``, ``web.post(...)``). Use paths under
    ``/api/plugins/<name>/`` for JSON (document each with ``lmserver.openapi.doc``) and ``/p/<name>/`` for
    pages. State-changing routes are CSRF-checked by the core; call ``await lmserver.auth.require(request,
    "<permission>")`` in each staff handler.
    """


@hookspec
def register_migrations() -> "list[Migration | tuple[str, str]]":
    """Add schema steps for this plugin's own tables.

    Return ``Migration`` objects or ``(name, sql)`` pairs, in order; names sort within the plugin
    (``"001_billboards"``). They run once, after the core's and before any plugin starts, each in a
    transaction with its record (owner = the plugin's name).
    """


@hookspec
def register_asset_dirs() -> "dict[str, str]":
    """Say where this plugin's templates and static files are, when not at the convention.

    Return ``{"templates": path, "static": path}`` (either key optional). By default the core looks for
    ``templates/`` and ``static/`` beside the plugin's module; most plugins need not implement this.
    """


@hookspec
def register_bus_events() -> "list[EventSpec]":
    """Declare the bus events this plugin publishes (name, documentation, fields, audience).

    Return a list of :class:`lmserver.busevents.EventSpec`. Names are ``"<plugin>.<what>"``
    (``"billboard.shown"``). Publishing an undeclared event is an error. A public event
    (``audience="public"``) must list what viewers see of it (``public={...}``): the rule of who sees
    what is in :mod:`lmserver.busevents`.
    """


@hookspec
def on_bus_event(app: "web.Application", event: "Activity") -> None:
    """React to a bus record (every event, after it is stored). Return nothing (may be a coroutine).

    Called for every event on the bus; filter on ``event.name``. Keep it quick: it runs on the event loop.
    """


@hookspec
def startup(app: "web.Application") -> None:
    """Called once when the server has started (database migrated, bus running). May be a coroutine."""


@hookspec
def shutdown(app: "web.Application") -> None:
    """Called once when the server stops, before the database closes. May be a coroutine."""


@hookspec
def console_panels(request: "web.Request", event: "dict[str, Any] | None") -> "list[Panel]":
    """Add panels to the LIVE console (left column, below the shopping bag).

    ``event`` is the console's event (a dict of its columns) or None. Return a list of
    :class:`lmserver.plugins.types.Panel` (id, title, template, context, order). The template is rendered
    with the page's context plus ``panel.context``.

    Live updates: the page has one WebSocket, ``LMS.bus`` (web/static/js/app.js; docs/plugins.md, "Front
    end"): ``LMS.bus.on("<plugin>.", record => ...)`` returns an unsubscribe function; after a reconnect
    subscribers of ``"bus.reconnected"`` are told to reload. Records are also DOM events,
    ``document.addEventListener("lms:bus", ev => ev.detail /* the record */)``. Never open a socket.
    """


@hookspec
def viewer_widgets(request: "web.Request", event: "dict[str, Any] | None") -> "list[Panel]":
    """Add widgets to the public viewer page of an event (same :class:`Panel` shape as console panels)."""


@hookspec
def register_overlays(app: "web.Application", session: "LiveSession") -> None:
    """A session started or resumed: put on the program the overlays that must be showing.

    Add layers through the compositor's public API (``app[lmserver.media.MEDIA].compositor``). Layers
    are cleared by the core when the session ends. Return nothing (may be a coroutine).
    """


@hookspec
def prompter_rules(app: "web.Application") -> "list[PrompterRule]":
    """Add prompter rules: callables ``rule(app, event) -> list[dict] | None`` run on every bus event.

    Each returned dict is ``{"kind": "suggestion" | "violation", "text": str, "level": "info" |
    "warning" | "critical"}``; the core publishes it as ``prompter.suggestion`` or ``prompter.violation``
    so every console's prompter shows it. A rule may be a coroutine function.
    """


@hookspec
def moderate_comment(app: "web.Application", comment: "dict[str, Any]") -> "str | None":
    """Screen a viewer's comment before it is shown.

    ``comment`` has ``body``, ``nickname``, ``viewer_id``, ``event_id``. Return a reason (str) to store it
    hidden (viewers never see it; staff see it greyed with the reason), or None to let it through.
    """


@hookspec(firstresult=True)
def checkout(app: "web.Application", request: "CheckoutRequest") -> "CheckoutResult | None":
    """Take over checkout of an order (e.g. a payment plugin). First non-None answer wins.

    Called after stock is reserved, before the order is recorded. Return a :class:`CheckoutResult`
    (``status``: ``"placed"`` or ``"pending_payment"``, optional ``redirect_url``), or None to let the
    next implementation (finally the core's default, which records the order as placed) decide.
    """
