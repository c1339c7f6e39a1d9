"""The public API of lmserver: everything a plugin may use, and nothing else.

A plugin imports this module only (a test fails when anything under ``plugins/`` imports another core
module)::

    from lmserver import api
    from lmserver.api import hookimpl

Names here are stable: they keep their meaning and their arguments (new optional arguments may come).
Everything else in ``lmserver`` is private to the core and may change in any release. The hooks
themselves are documented in :mod:`lmserver.plugins.hookspecs`; ``docs/plugins.md`` has one worked
example per family.

Families (each name has its own docstring below or where it is defined):

- hooks: :data:`hookimpl`, and the value types hooks exchange (:class:`Panel`, :class:`Permission`,
  :class:`Figure`, :class:`ChecklistItem`, :class:`MenuLink`, :class:`OrderDraft`,
  :class:`CheckoutRequest`, :class:`CheckoutResult`, :class:`Timer`, :class:`Action`);
- permissions: :func:`require` (staff), :func:`staff_user`, :class:`User`, :func:`require_viewer`;
- the bus: :func:`publish`, :class:`EventSpec`, :class:`Activity`, :func:`bus_event_names`;
- the database: :func:`db` (reads and ``transaction()``), :func:`writer_batch`, :class:`Migration`,
  :func:`require_event`;
- the catalog, viewers and orders: :func:`event`, :func:`product`, :func:`move_stock`, :func:`viewer`, :func:`record_order`,
  :func:`order`;
- errors: :class:`ApiError` and its family, :class:`ConfigError`;
- images: :func:`check_image`, :func:`store_image`, :func:`upright`, :func:`uploads_dir`;
- HTTP: :func:`doc` (OpenAPI), :func:`json_body`, :mod:`validate` (the validation layer: ``text``,
  ``integer``, ``path_int``, ... each a 400 naming the field), :func:`public_base`, :func:`render` (pages);
- settings: :func:`plugin_config`, :func:`program_size`;
- live state: :func:`current_session`, :func:`is_live`, :func:`is_practice`, :class:`LiveSession`, :func:`session`;
- the program's overlays: :func:`compositor`, :class:`Compositor`, :class:`LayerInfo`, the z bands
  :data:`Z_BANNER`, :data:`Z_CARD`, :data:`Z_COUNTDOWN`, :data:`Z_ALERT`;
- the scheduler: :func:`schedule_at`, :func:`cancel_timer`, :func:`pending_timers`;
- figures: :func:`session_figures` (the core's and the plugins' figures of one session);
- the shopping bag: :func:`event_bag` (an event's products in order, and the pinned one);
- the prompter: :func:`report_finding`, :func:`resolve_finding`, :func:`open_findings` (findings shown in the console's
  Suggestions and Content quality tabs; see :mod:`lmserver.prompter`);
- named actions: :func:`has_action` (a plugin's ``register_actions``, invoked by name; see :mod:`lmserver.actions`).
- catalog and orders, read-only: :func:`product`, :func:`bag_product_ids`, :func:`price_history`,
  :func:`order_statuses`; :func:`release_order` (cancel an unpaid order); :func:`set_order_status` (a payment
  plugin marks an order paid).

App state is reached through these functions (``api.db(app)``, not ``app[...]``): the core's app
keys are private.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from .appkeys import BUS as _BUS
from .appkeys import CONFIG as _CONFIG
from .appkeys import DB as _DB
from .appkeys import LIVE as _LIVE
from .appkeys import WRITER as _WRITER
from .auth import User, require, staff_user
from .bus import Activity
from .busevents import EventSpec
from .config import ConfigError
from .db import Database, Migration
from .errors import (ApiError, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable,
                     TooManyRequests, Unauthorized, UnsupportedMediaType)
from .images import CheckedImage, check_image, store_image, upright
from .live import LiveSession, session_tags
from .media.compositor import Compositor, LayerInfo
from .openapi import doc
from .plugins.hookspecs import hookimpl
from .plugins.types import (Action, CheckoutRequest, CheckoutResult, ChecklistItem, Figure, MenuLink, OrderDraft, Panel,
                            Permission, Timer)
from .scheduler import SCHEDULER as _SCHEDULER
from .templating import render
from .views import json_body, public_base
from . import validate

__all__ = [
    # hooks and their value types
    "hookimpl", "Panel", "Permission", "Figure", "ChecklistItem", "MenuLink", "OrderDraft", "CheckoutRequest",
    "CheckoutResult", "Timer", "Action",
    # permissions
    "require", "staff_user", "User", "require_viewer",
    # bus
    "publish", "EventSpec", "Activity", "bus_event_names",
    # database
    "db", "Database", "writer_batch", "Migration", "require_event",
    # catalog, viewers, orders
    "event", "product", "move_stock", "viewer", "record_order", "order",
    # errors
    "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "PayloadTooLarge",
    "UnsupportedMediaType", "TooManyRequests", "ServiceUnavailable", "ConfigError",
    # images
    "check_image", "store_image", "upright", "CheckedImage", "uploads_dir",
    # HTTP and pages
    "doc", "json_body", "validate", "public_base", "render",
    # settings
    "plugin_config", "program_size", "data_dir",
    # live state
    "current_session", "is_live", "is_practice", "LiveSession", "session",
    # overlays
    "compositor", "Compositor", "LayerInfo", "Z_BANNER", "Z_CARD", "Z_COUNTDOWN", "Z_ALERT",
    # scheduler
    "schedule_at", "cancel_timer", "pending_timers",
    # figures
    "session_figures",
    # shopping bag
    "event_bag",
    # prompter
    "report_finding", "resolve_finding", "open_findings",
    # named actions
    "has_action",
    # catalog and orders (read-only)
    "bag_product_ids", "price_history", "order_statuses", "release_order", "set_order_status",
]


# --------------------------------------------------------------------------------------------- permissions


async def require_viewer(request: web.Request) -> dict[str, Any]:
    """The viewer of this request, from the signed viewer cookie: ``{"id", "nickname", "blocked"}``.

    Raises 401 when the browser has no viewer identity yet (it gets one by opening the event's page).
    Use it in every viewer route of a plugin (enter a draw, claim a deal); the core CSRF-checks
    state-changing requests with the viewer's token before the handler runs.
    """
    from .viewer import current_viewer

    return await current_viewer(request)


# --------------------------------------------------------------------------------------------- bus


async def publish(app: web.Application, name: str, data: dict[str, Any] | None = None, *,
                  session: LiveSession | Activity | None | bool = True) -> Activity:
    """Publish a declared bus event (``register_bus_events``); returns the stored record.

    By default the record is tagged with the running session (its event, session id and practice
    flag), so it lands in that session's activity log and reaches that event's viewer pages when its
    audience is ``"public"``. Pass ``session=None`` for a studio-wide record, or a :class:`LiveSession`
    (or the :class:`Activity` you are reacting to, e.g. a ``stream.ended`` record) to tag that one.
    Undeclared names or fields raise (a plugin's bug).
    """
    if isinstance(session, Activity):  # the record reacted to carries its tags
        tags = {"event_id": session.event_id, "session_id": session.session_id, "practice": session.practice}
    else:  # the core's one way (lmserver.live.session_tags)
        tags = session_tags(app[_LIVE].current if session is True else session or None)
    return await app[_BUS].publish(name, data or {}, **tags)


def bus_event_names(app: web.Application) -> list[str]:
    """The names of every declared bus event (the core's and the installed plugins'), sorted.

    Lets a plugin react to what another plugin publishes only when that plugin is installed (a rule
    configured with ``"<other>.started"`` stays off when nothing declares it)."""
    return sorted(app[_BUS].specs)


# --------------------------------------------------------------------------------------------- database


def db(app: web.Application) -> Database:
    """The studio's database: ``await api.db(app).fetchone/fetchall/fetchval(sql, params)`` to read, and
    ``async with api.db(app).transaction() as tx: await tx.execute(...)`` to write, all or nothing.

    Read and write your own tables (``register_migrations``); read the core's through the functions of
    this module. Don't publish on the bus inside a transaction (the bus writes too: publish after).
    """
    return app[_DB]


async def writer_batch(app: web.Application, fn: Any, *args: Any) -> Any:
    """Run ``fn(conn, *args)`` in the group-commit writer (the order path's writer) and return its result.

    ``fn`` runs synchronously in the writer's thread, in its own SAVEPOINT of the current batch, with a
    ``sqlite3.Connection``: raise to roll back just this write. Use it for bursts of small writes (a
    thousand viewers voting at once); never await or touch the event loop inside ``fn``.
    """
    return await app[_WRITER].submit(fn, *args)


async def require_event(conn: Any, event_id: int) -> None:
    """Raise :class:`NotFound` unless the LIVE event ``event_id`` exists.

    ``conn`` is ``api.db(app)`` or a transaction (``tx``) so that the check and your insert that
    references the event happen in one transaction.
    """
    fetch = conn.fetchone if isinstance(conn, Database) else None
    if fetch is not None:
        row = await fetch("SELECT 1 FROM events WHERE id = ?", (event_id,))
    else:
        cur = await conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no event {event_id}: it was deleted or never existed")


# --------------------------------------------------------------------------------------------- catalog, viewers, orders
# (defined in lmserver/api_catalog.py, re-exported here)
from .api_catalog import event, move_stock, order, product, record_order, viewer  # noqa: E402


# --------------------------------------------------------------------------------------------- settings and files


def plugin_config(app: web.Application, name: str) -> Mapping[str, Any]:
    """The ``[plugins.NAME]`` table of ``config.toml`` (empty when absent). Check it once, at build time
    (in ``register_routes``), and raise :class:`ConfigError` naming the key (``plugins.NAME.key``)."""
    return app[_CONFIG].plugin_config(name)


def program_size(app: web.Application) -> tuple[int, int]:
    """The program's (outgoing video's) width and height in pixels: overlays are placed in these."""
    media = app[_CONFIG].media
    return media.width, media.height


def data_dir(app: web.Application) -> Path:
    """The studio's data directory (the database, recordings, uploads live there)."""
    return app[_CONFIG].data_dir


def uploads_dir(app: web.Application) -> Path:
    """Where uploaded images are kept; :func:`store_image` writes there and ``/uploads/<name>`` serves them."""
    return app[_CONFIG].data_dir / "uploads"


# --------------------------------------------------------------------------------------------- live state


def current_session(app: web.Application) -> LiveSession | None:
    """The running session (live or practice), or None: ``id``, ``event_id``, ``practice``, ``started_at``, ..."""
    return app[_LIVE].current


def is_live(app: web.Application) -> bool:
    """Whether a session runs (live or practice)."""
    return app[_LIVE].current is not None


async def session(app: web.Application, session_id: int | None) -> LiveSession | None:
    """Any session, running or past, as a :class:`LiveSession` (None when there is no such session).

    Tag a record about something that belongs to a session (a deal, a draw) with that session, even after
    it ended: ``await api.publish(app, name, data, session=await api.session(app, row["session_id"]))``."""
    current = app[_LIVE].current
    if session_id is None or (current is not None and current.id == session_id):
        return current if session_id is not None else None
    row = await app[_DB].fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
    if row is None:
        return None
    return LiveSession(row["id"], row["event_id"], bool(row["practice"]), row["source"] or "", row["started_at"], row["started_by"])


def is_practice(app: web.Application) -> bool:
    """Whether the running session is a practice one (viewers can't watch; nothing counts in figures)."""
    session = app[_LIVE].current
    return session is not None and session.practice


# --------------------------------------------------------------------------------------------- overlays

#: z-order bands of the program's layers (higher is drawn on top). A plugin picks the band of what it
#: shows and may use the 10 values from it (``Z_BANNER + 1``, ...). Banners and signs the host shows:
Z_BANNER = 10
#: product cards and offers (a deal's price):
Z_CARD = 20
#: countdowns and timers (a draw, a deal's end):
Z_COUNTDOWN = 30
#: short alerts over everything (a winner, "sold out"):
Z_ALERT = 40


def compositor(app: web.Application) -> Compositor | None:
    """The program's compositor, or None when the media core is not set up (some tests, tools).

    ``set_layer(name, image, x, y, width, height, opacity, z)`` (convert off the event loop:
    ``await asyncio.to_thread(comp.set_layer, ...)``), ``move_layer``, ``remove_layer``, ``layers()``.
    Name layers ``"<plugin>:<id>"``; use a z from one of the bands above. The core clears every layer
    when a session ends; ``register_overlays`` puts them back when one starts or resumes.
    """
    from .media import MEDIA

    return app[MEDIA].compositor if MEDIA in app else None


# --------------------------------------------------------------------------------------------- scheduler


async def schedule_at(app: web.Application, when: float | dt.datetime, key: str, handler: str, payload: Any = None) -> Timer:
    """Set a persisted timer: at ``when`` (UNIX seconds or an aware datetime) call the handler named
    ``handler`` (registered through ``register_timers``) with a :class:`Timer` carrying ``payload``
    (JSON). A pending timer with the same ``key`` is replaced. Survives restarts; at least once (see
    :mod:`lmserver.scheduler` for the guarantee: make the handler idempotent)."""
    return await app[_SCHEDULER].at(when, key, handler, payload)


async def cancel_timer(app: web.Application, key: str) -> bool:
    """Remove the pending timer ``key``; False when there was none (it fired, or never existed)."""
    return await app[_SCHEDULER].cancel(key)


async def pending_timers(app: web.Application, prefix: str = "") -> list[Timer]:
    """Pending timers whose key starts with ``prefix``, soonest first."""
    return await app[_SCHEDULER].pending(prefix)


# --------------------------------------------------------------------------------------------- figures


async def session_figures(app: web.Application, session_id: int) -> dict[str, Any] | None:
    """A session's figures as analytics shows them (GMV, orders, items sold, buyers, first-time buyers,
    viewers, comments, ..., and ``figures``: what plugins add), or None when there is no such session.

    Practice sessions' orders never count. Handy for prompter rules and ``tick`` implementations that
    compare figures over time."""
    from .sessionstats import session_stats

    row = await app[_DB].fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
    return await session_stats(app, row) if row is not None else None


# --------------------------------------------------------------------------------------------- shopping bag


async def event_bag(app: web.Application, event_id: int) -> dict[str, Any]:
    """An event's shopping bag: ``{"products": [...], "pinned_product_id": id or None, "live": bool}``.

    Each product has ``id``, ``title``, ``price_cents``, ``currency``, ``stock``, ``position`` (1-based),
    ... as the console's bag shows them; ``pinned_product_id`` is the product pinned in the running
    session when it is this event's. Read-only: change the bag through the console's routes.
    """
    from .events import bag_json

    return await bag_json(app, event_id)


# --------------------------------------------------------------------------------------------- prompter


async def report_finding(app: web.Application, plugin: str, finding: Mapping[str, Any], *,
                         session: LiveSession | Activity | None | bool = True) -> dict[str, Any] | None:
    """Show a finding in the console's prompter (Suggestions or Content quality), stored with the session.

    ``finding`` is ``{"key", "kind": "suggestion" | "violation", "level": "info" | "warning" |
    "critical", "text", "trigger": {"metric", "value", "threshold", "window"}, "actions": [...],
    "subject": {...}, "area": "stream"}`` (see :mod:`lmserver.prompter` for each field). A finding with
    the same ``plugin`` and ``key`` that is still open is **updated in place**; one that staff dismissed
    stays hidden (the call returns None) until you resolve it. An action is ``{"label", "method",
    "url", "body"}`` (one of the studio's ``/api/`` routes, called from the staff member's browser with
    their permissions), ``{"label", "action", "params"}`` (another plugin's named action: :func:`has_action`),
    ``{"label", "comment_id"}`` (jump to a comment) or ``{"label", "panel"}`` (open a console panel by id). Raises ValueError naming what is wrong. Returns the stored finding
    (``id``, ``status``, ...). Cooldowns and minimum-activity gates are the rule's business.
    """
    from .prompter import report

    return await report(app, plugin, dict(finding), session=session)


async def resolve_finding(app: web.Application, plugin: str, key: str, *, session_id: int | None | bool = True) -> dict[str, Any] | None:
    """The condition behind ``plugin``'s finding ``key`` ended: mark it resolved (in the running session by
    default). Returns the resolved finding, or None when none was open."""
    from .prompter import resolve

    return await resolve(app, plugin, key, session_id=session_id)


async def open_findings(app: web.Application, plugin: str, *, session_id: int | None | bool = True) -> list[dict[str, Any]]:
    """``plugin``'s findings that are not resolved yet (active or dismissed), in the running session by
    default, oldest first. After a restart, a rule that keeps its state in memory reads them to resolve
    what no longer holds."""
    from .prompter import open_findings as _open

    return await _open(app, plugin, app[_LIVE].current.id if session_id is True and app[_LIVE].current else
                       None if session_id is True else session_id)


# --------------------------------------------------------------------------------------------- named actions


def has_action(app: web.Application, name: str) -> bool:
    """Whether an installed, enabled plugin offers the action ``name`` (``register_actions``). A prompter rule
    offers ``{"label": ..., "action": name, "params": {...}}`` only then (the core drops it anyway when not)."""
    from .actions import find

    return find(app, name) is not None


# --------------------------------------------------------------------------------------------- catalog and orders


async def bag_product_ids(app: web.Application, event_id: int) -> list[int]:
    """The ids of the products in an event's shopping bag, in the bag's order (empty for an unknown event)."""
    rows = await app[_DB].fetchall("SELECT product_id FROM event_products WHERE event_id = ? ORDER BY position, added_at",
                                   (event_id,))
    return [r["product_id"] for r in rows]


async def price_history(app: web.Application, product_id: int, days: float = 30.0) -> list[dict[str, Any]]:
    """The catalog prices a product had during the last ``days`` days, oldest first: ``[{price_cents, currency,
    since}]``; the first one is the price in effect ``days`` ago (its ``since`` may be older). The catalog records
    every price change from the moment this history was added (migration ``032_price_history``). For a deal, the
    lowest price of the previous 30 days (as EU price-reduction rules ask) is the minimum of these."""
    since = dt.datetime.now(dt.timezone.utc).timestamp() - days * 86400
    rows = await app[_DB].fetchall(
        "SELECT price_cents, currency, since FROM product_prices WHERE product_id = ? AND (since >= ? OR id = ("
        " SELECT id FROM product_prices WHERE product_id = ? AND since < ? ORDER BY since DESC, id DESC LIMIT 1))"
        " ORDER BY since, id", (product_id, since, product_id, since))
    return [{k: r[k] for k in r.keys()} for r in rows]


async def order_statuses(app: web.Application, order_ids: list[int]) -> dict[int, str]:
    """The status (``reserved``, ``placed``, ``pending_payment``, ``paid``, ``shipped``, ``delivered``, ``cancelled``,
    ``refunded``; see :mod:`lmserver.orderstatus`) of each of these orders, by id
    (unknown ids are left out). A plugin that keeps rows about orders checks with it which still count."""
    out: dict[int, str] = {}
    ids = [int(i) for i in order_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = await app[_DB].fetchall(f"SELECT id, status FROM orders WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
        out.update({r["id"]: r["status"] for r in rows})
    return out


async def release_order(app: web.Application, order_id: int, reason: str, then: Any = None, *args: Any) -> tuple[bool, Any]:
    """Cancel an order that is still ``reserved`` or ``pending_payment`` (a payment that failed or expired): its
    units go back to stock, its status becomes ``cancelled`` with ``reason`` (say why: "payment not completed
    within 5 minutes"), its Idempotency-Key is freed and ``order.released`` is published (``product.stock`` too).
    A placed or already cancelled order is left alone (idempotent).

    ``then(conn, released, *args)``, if given, runs synchronously in the order writer's thread in the same
    savepoint, right after the release (``released`` says whether this call cancelled it): do your own
    bookkeeping there so it commits with the release (never await, never commit). Returns ``(released,
    then's answer)``."""
    from .orders import release_unpaid

    released, records, answer = await app[_WRITER].submit(release_unpaid, int(order_id), reason,
                                                          app[_BUS].specs["order.released"], then, args)
    for record in records:
        app[_BUS].dispatch(record)
    return released, answer


async def set_order_status(app: web.Application, order_id: int, status: str, *, by: str, note: str | None = None) -> dict[str, Any]:
    """Move an order to ``status`` as the orders' state machine allows (``pending_payment`` → ``paid`` when your
    payment provider confirms; ``cancelled`` when it reports a failure), recorded in the order's history as done by
    ``by`` (your plugin's name) with ``note``, published as ``order.status_changed``. Cancelling or refunding before
    shipping puts the units back in stock. Returns ``{order_id, from, to, by, note, units_returned, stock}``.

    Raises :class:`NotFound` (no such order), :class:`Conflict` (409: the order cannot take this status now; its
    ``details["allowed"]`` lists what it can take, e.g. a second "paid" for the same order), :class:`BadRequest`
    (an unknown status). A payment callback that may arrive twice checks :func:`order_statuses` first or treats
    the 409 of an order already ``paid`` as done."""
    from .orderstatus import set_status

    return (await set_status(app, [int(order_id)], status, by=by, note=note))[0]


def _check_surface() -> None:  # pragma: no cover - import-time sanity
    missing = [name for name in __all__ if name not in globals()]
    if missing:
        raise ImportError(f"lmserver.api lists names it does not define: {missing}")


_check_surface()
