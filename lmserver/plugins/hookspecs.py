"""The extension points of lmserver: one hookspec per point, project name ``lmserver``.

A plugin is a module (or object) with functions decorated ``@hookimpl`` and named like the specs below,
registered through the entry-point group ``lmserver`` in its ``pyproject.toml``::

    [project.entry-points.lmserver]
    myplugin = "my_package.plugin"

A plugin imports only :mod:`lmserver.api` (``from lmserver.api import hookimpl, ...``): everything a
hook gets or returns is there, documented.

**Calling.** Every hook is called through pluggy, so ``tryfirst``/``trylast`` order implementations and
``@hookimpl(wrapper=True)`` wrappers see (and may change) the other implementations' answers: a wrapper
of a list hook gets the list of answers from ``yield``, a wrapper of a ``firstresult`` hook gets the one
answer. An implementation may take any subset of a spec's arguments. Unless a spec says it is
synchronous, an implementation may return a value, a coroutine or a callable returning either; the core
resolves all three (``await_me_maybe``) after pluggy has collected the answers, so a wrapper of such a
hook may see an awaitable where a value will be.

**Failure policy** (each spec says which applies):

- *display* hooks (pages, panels, figures, checklist, menu, overlays, bus reactions, ticks, startup):
  an implementation that raises is logged with its plugin's name and skipped; the others still answer
  and the page, the stream and the server go on.
- *build* hooks (``register_*``): same, at build time; a plugin whose registration fails contributes
  nothing from that hook.
- *money* hooks (``order_price``, ``reserve_order``, ``checkout``): an implementation that raises fails
  the order **closed**: the reserved stock is given back, no order is placed, and the buyer gets a
  ``503`` saying the order could not be completed (nothing was charged). ``order_cancelled`` too: one
  that raises leaves the order as it was (the cancellation is refused with ``503``).

Conventions: a plugin package's ``templates/`` folder is reachable as ``"<plugin name>/<file>"`` in
Jinja, and its ``static/`` folder is served under ``/-/static/plugins/<plugin name>/``. Its settings are
``lmserver.api.plugin_config(app, "<plugin name>")`` (the ``[plugins.NAME]`` table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import sqlite3

    from aiohttp import web

    from lmserver.auth import User
    from lmserver.bus import Activity
    from lmserver.busevents import EventSpec
    from lmserver.db import Migration
    from lmserver.live import LiveSession
    from lmserver.plugins.types import (Action, CheckoutRequest, CheckoutResult, ChecklistItem, Figure, MenuLink, OrderDraft,
                                        Panel, Permission, PrompterRule, TimerHandler)

hookspec = pluggy.HookspecMarker("lmserver")
hookimpl = pluggy.HookimplMarker("lmserver")

#: hooks whose failure fails the order closed (see the module's failure policy); every other hook is skipped on error
FAIL_CLOSED = frozenset({"order_price", "reserve_order", "checkout", "order_cancelled"})
#: hooks called synchronously (at build time, or in the order writer's thread): a coroutine answer is an error
SYNCHRONOUS = frozenset({"register_routes", "register_migrations", "register_asset_dirs", "register_bus_events",
                         "register_permissions", "register_timers", "register_actions", "order_price", "reserve_order",
                         "order_cancelled"})


# ============================================================================================ build time


@hookspec
def register_routes(app: "web.Application") -> "list[web.AbstractRouteDef]":
    """Add HTTP routes. Called once while the app is built (synchronous; build policy).

    Return a list of aiohttp route definitions (``web.get(...)``, ``web.post(...)``). Use paths under
    ``/api/plugins/<name>/`` for JSON (document each with ``lmserver.api.doc``) and ``/p/<name>/`` for
    pages. State-changing routes are CSRF-checked by the core; call ``await lmserver.api.require(request,
    "<permission>")`` in each staff handler and ``await lmserver.api.require_viewer(request)`` in each
    viewer one.
    """


@hookspec
def register_migrations() -> "list[Migration | tuple[str, str]]":
    """Add schema steps for this plugin's own tables (synchronous; build policy).

    Return ``Migration`` objects or ``(name, sql)`` pairs, in order; names sort within the plugin
    (``"001_init"``). They run once, after the core's and before any plugin starts, each in a
    transaction with its record (owner = the plugin's name). A plugin's tables may reference the core's
    ``events``, ``sessions``, ``products``, ``orders`` and ``viewers`` by foreign key (their ``id``
    columns are stable); read them through :mod:`lmserver.api`, never with your own SQL.
    """


@hookspec
def register_asset_dirs() -> "dict[str, str]":
    """Say where this plugin's templates and static files are, when not at the convention.

    Return ``{"templates": path, "static": path}`` (either key optional). By default the core looks for
    ``templates/`` and ``static/`` beside the plugin's module; most plugins need not implement this.
    Synchronous; build policy.
    """


@hookspec
def register_bus_events() -> "list[EventSpec]":
    """Declare the bus events this plugin publishes (name, documentation, fields, audience).

    Return a list of :class:`lmserver.api.EventSpec`. Names are ``"<plugin>.<what>"``
    (``"shoutout.sent"``). Publishing an undeclared event is an error. ``activity=True`` puts the event
    in the console's "All activities" feed. A public event (``audience="public"``) must list what viewers
    see of it (``public={...}``): the rule of who sees what is in :mod:`lmserver.busevents`.
    Synchronous; build policy.
    """


@hookspec
def register_permissions() -> "list[Permission]":
    """Declare staff permissions: a :class:`lmserver.api.Permission` (name, description, roles) each.

    Called once while the app is built (synchronous; build policy). The core's own permissions
    (``settings.manage``, ``catalog.edit``, ...) are declared by a ``trylast`` core implementation of
    this hook. ``await lmserver.api.require(request, name)`` checks one; asking for an undeclared
    permission is an error (a typo never silently lets everyone in). Declaring a name twice with
    different roles is an error at startup. The settings page's role table and the README's are
    generated from these declarations.
    """


@hookspec
def register_timers() -> "dict[str, TimerHandler]":
    """Name the callbacks that the persisted scheduler may fire: ``{"<plugin>.<what>": handler}``.

    ``handler(app, timer)`` (may be a coroutine function) runs when a timer set with
    ``await lmserver.api.schedule_at(app, when, key, "<plugin>.<what>", payload)`` is due, also after a
    restart (timers live in SQLite). Called once at build time (synchronous; build policy). A handler
    that raises is logged and its timer dropped (display policy); see :mod:`lmserver.scheduler` for
    the at-least-once guarantee.
    """


@hookspec
def register_actions() -> "list[Action]":
    """Offer named actions that others invoke by name: a :class:`lmserver.api.Action` (name, label,
    permission, run) each. Called once while the app is built (synchronous; build policy).

    ``name`` is ``"<plugin>.<what>"`` (``"poll.start"``). Another plugin's prompter finding offers it
    as ``{"label": ..., "action": "poll.start", "params": {...}}``, and the console's button runs it
    through ``POST /api/actions/{name}`` for a staff member holding ``permission``; ``run(app, params,
    user)`` (may be a coroutine) answers ``{"text": "what was done", ...}`` or raises an ``ApiError`` with
    the reason. ``lmserver.api.has_action(app, name)`` tells a rule whether the action is there (its plugin
    installed and enabled): a finding naming a missing action has that button left out. See
    :mod:`lmserver.actions`.
    """


# ============================================================================================ lifetime


@hookspec
def startup(app: "web.Application") -> None:
    """Called once when the server has started (database migrated, bus and scheduler running). May be a
    coroutine. Display policy: a plugin whose startup fails is logged; the server starts anyway."""


@hookspec
def shutdown(app: "web.Application") -> None:
    """Called once when the server stops, before the database closes. May be a coroutine. Display policy."""


@hookspec
def tick(app: "web.Application", session: "LiveSession", now: float) -> None:
    """Called about once a second while the studio is live (practice included), with the running session.

    For rules that look at windows of figures ("no order for 5 minutes"), countdowns and the like. May
    be a coroutine; keep it short (the next tick waits for this one; a slow tick delays the next, it
    never piles up). Display policy: an implementation that raises is logged and skipped, the next
    tick comes anyway. For anything that must happen at a given wall-clock time even across a
    restart, use the scheduler (``register_timers``), not ticks.
    """


# ============================================================================================ bus


@hookspec
def on_bus_event(app: "web.Application", event: "Activity") -> None:
    """React to a bus record (every event, after it is stored). Return nothing (may be a coroutine).

    Called for every event on the bus; filter on ``event.name``. Keep it quick: it runs on the event loop.
    Display policy.
    """


@hookspec
def prompter_rules(app: "web.Application") -> "list[PrompterRule]":
    """Add prompter rules: callables ``rule(app, event) -> list[dict] | None`` run on every bus event.

    Each returned dict is a *finding* (:mod:`lmserver.prompter` documents every field): ``{"key",
    "kind": "suggestion" | "violation", "level": "info" | "warning" | "critical", "text", "trigger":
    {"metric", "value", "threshold", "window"}, "actions": [...], "subject": {...}, "area": "stream"}``
    (only ``text`` is required). The core stores it with the session and publishes it as
    ``prompter.suggestion`` or ``prompter.violation`` so every console's prompter shows it; a finding
    with the same ``key`` is updated in place, ``{"key": k, "resolved": True}`` resolves it. Rules over
    windows of figures use ``tick`` with ``lmserver.api.report_finding`` / ``resolve_finding``. A rule may
    be a coroutine function. Display policy (for the hook and for each rule).
    """


@hookspec
def moderate_comment(app: "web.Application", comment: "dict[str, Any]") -> "str | None":
    """Screen a viewer's comment before it is shown.

    ``comment`` has ``body``, ``nickname``, ``viewer_id``, ``event_id``. Return a reason (str) to store it
    hidden (viewers never see it; staff see it greyed with the reason), or None to let it through.
    Display policy (a failing screen lets the comment through).
    """


# ============================================================================================ pages


@hookspec
def console_panels(request: "web.Request", event: "dict[str, Any] | None") -> "list[Panel]":
    """Add panels to the LIVE console (left column, below the shopping bag). Display policy.

    ``event`` is the console's event (a dict of its columns) or None. Return a list of
    :class:`lmserver.api.Panel` (id, title, template, context, order). The template is rendered
    with the page's context plus ``panel.context``.

    Live updates: the page has one WebSocket, ``LMS.bus`` (web/static/js/app.js; docs/plugins.md, "Front
    end"): ``LMS.bus.on("<plugin>.", record => ...)`` returns an unsubscribe function; after a reconnect
    subscribers of ``"bus.reconnected"`` are told to reload. Records are also DOM events,
    ``document.addEventListener("lms:bus", ev => ev.detail /* the record */)``. Never open a socket.
    """


@hookspec
def viewer_widgets(request: "web.Request", event: "dict[str, Any] | None") -> "list[Panel]":
    """Add widgets to the public viewer page of an event (same :class:`Panel` shape as console panels).
    Display policy."""


@hookspec
def menu_links(request: "web.Request", user: "User") -> "list[MenuLink]":
    """Add links to the main menu of staff pages, for this logged-in ``user``. Display policy.

    Return :class:`lmserver.api.MenuLink` (label, href, order); return none for a user whose role could
    not use the page (``user.can("<permission>")``). Links are shown after the core's main links (before
    Settings), by ``order``; ``href`` must be a local path.
    """


@hookspec
def home_checklist(app: "web.Application", events: "list[dict[str, Any]]") -> "list[ChecklistItem]":
    """Add items to the home page's "Checklist for success". Display policy.

    ``events`` are the upcoming events (dicts with ``id``, ``title``, ``starts_at``, ``console_url``,
    ...; the next one first). Return :class:`lmserver.api.ChecklistItem` (key, label, done, detail,
    href, order): e.g. "Prepare a poll", done when the next event has one.
    """


@hookspec
def session_figures(app: "web.Application", session: "dict[str, Any]") -> "list[Figure]":
    """Add named figures of one session to analytics, the event's recap and the home page.

    ``session`` is the session's row as a dict (``id``, ``event_id``, ``practice``, ``started_at``,
    ``ended_at``, ...). Return :class:`lmserver.api.Figure` (name, label, value, order):
    ``Figure("polls_run", "Polls run", 2)``. Practice sessions are asked too (``practice`` says
    which). Display policy: a failing plugin's figures are left out.
    """


# ============================================================================================ media


@hookspec
def register_overlays(app: "web.Application", session: "LiveSession") -> None:
    """A session started or resumed: put on the program the overlays that must be showing.

    Add layers through ``lmserver.api.compositor(app)`` with a z in one of the public bands
    (``lmserver.api.Z_BANNER``, ...). Layers are cleared by the core when the session ends. Return
    nothing (may be a coroutine). Display policy.
    """


# ============================================================================================ orders (money: fail closed)


@hookspec(firstresult=True)
def order_price(app: "web.Application", conn: "sqlite3.Connection", draft: "OrderDraft") -> "int | None":
    """The unit price, in cents, this viewer pays for this product in this session (a timed deal's price).

    First non-None answer wins; None leaves the catalog price (``draft.unit_price_cents``). Runs
    **synchronously in the order writer's thread**, inside the batch transaction that reserves the
    stock, with that batch's ``sqlite3`` connection ``conn`` (read your tables with
    ``conn.execute(...)``; never await, never touch the event loop, never commit). Answer a whole
    number of cents ≥ 0. Money policy: raising, or answering anything else, fails the order closed (503).
    """


@hookspec
def reserve_order(app: "web.Application", conn: "sqlite3.Connection", draft: "OrderDraft") -> "str | None":
    """May this order be placed? Return a reason (str) to refuse it, None to let it through.

    Runs **synchronously in the order writer's thread**, after the stock was decremented and the order
    row inserted as ``reserved`` (``draft.order_id``; ``draft.unit_price_cents`` is the price it is
    recorded at), in the same savepoint. Use ``conn`` to read and write your own tables (quotas,
    per-buyer limits, allocated units): your writes commit with the order, or roll back with it. A
    refusal rolls the whole reservation back and the buyer gets ``409`` with your reason (say what to do:
    "one per viewer at this deal price: you already bought one"). Never await, never commit. Money
    policy: raising fails the order closed (503), nothing is written.
    """


@hookspec(firstresult=True)
def checkout(app: "web.Application", request: "CheckoutRequest") -> "CheckoutResult | None":
    """Take over checkout of an order (e.g. a payment plugin). First non-None answer wins.

    Called after stock is reserved, before the order is recorded. Return a :class:`CheckoutResult`
    (``status``: ``"placed"`` or ``"pending_payment"``, optional ``redirect_url``), or None to let the
    next implementation (finally the core's default, which records the order as placed) decide. May be
    a coroutine. Money policy: raising fails the order closed — the stock is released, the order is
    cancelled, and the buyer gets ``503`` with the reason; never an unpaid "placed" order.
    """


@hookspec
def order_cancelled(app: "web.Application", conn: "sqlite3.Connection", order: "dict[str, Any]") -> None:
    """An order was cancelled or refunded before it shipped: its units are going back.

    ``order`` is ``{id, viewer_id, product_id, quantity, event_id, session_id, practice, from_status,
    to_status, by, note}``. The core has already put the units back into the product's stock; a plugin
    that counted this order's units in an allocation of its own (a deal's allocation, a quota) takes them
    back here, in its own tables, so they can be sold again under its rules. Runs **synchronously in the
    order writer's thread**, in the savepoint that changes the status (not called for a reservation
    released before its checkout answered: ``order.released`` says that). Never await, never commit.
    Money policy: raising leaves the order unchanged and the staff member gets ``503``. Return nothing.
    """
