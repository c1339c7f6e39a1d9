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
  :class:`CheckoutRequest`, :class:`CheckoutResult`, :class:`Timer`);
- permissions: :func:`require` (staff), :func:`staff_user`, :class:`User`, :func:`require_viewer`;
- the bus: :func:`publish`, :class:`EventSpec`, :class:`Activity`;
- the database: :func:`db` (reads and ``transaction()``), :func:`writer_batch`, :class:`Migration`,
  :func:`require_event`;
- the catalog, viewers and orders: :func:`event`, :func:`product`, :func:`move_stock`, :func:`viewer`, :func:`record_order`,
  :func:`order`;
- errors: :class:`ApiError` and its family, :class:`ConfigError`;
- images: :func:`check_image`, :func:`store_image`, :func:`upright`, :func:`uploads_dir`;
- HTTP: :func:`doc` (OpenAPI), :func:`json_body`, :mod:`validate` (the validation layer: ``text``,
  ``integer``, ``path_int``, ... each a 400 naming the field), :func:`public_base`, :func:`render` (pages);
- settings: :func:`plugin_config`, :func:`program_size`;
- live state: :func:`current_session`, :func:`is_live`, :func:`is_practice`, :class:`LiveSession`;
- the program's overlays: :func:`compositor`, :class:`Compositor`, :class:`LayerInfo`, the z bands
  :data:`Z_BANNER`, :data:`Z_CARD`, :data:`Z_COUNTDOWN`, :data:`Z_ALERT`;
- the scheduler: :func:`schedule_at`, :func:`cancel_timer`, :func:`pending_timers`;
- figures: :func:`session_figures` (the core's and the plugins' figures of one session).

App state is reached through these functions (``api.db(app)``, not ``app[...]``): the core's app
keys are private.
"""

from __future__ import annotations

import datetime as dt
import time
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
from .live import LiveSession
from .media.compositor import Compositor, LayerInfo
from .openapi import doc
from .plugins.hookspecs import hookimpl
from .plugins.types import (CheckoutRequest, CheckoutResult, ChecklistItem, Figure, MenuLink, OrderDraft, Panel,
                            Permission, Timer)
from .scheduler import SCHEDULER as _SCHEDULER
from .templating import render
from .views import json_body, public_base
from . import validate

__all__ = [
    # hooks and their value types
    "hookimpl", "Panel", "Permission", "Figure", "ChecklistItem", "MenuLink", "OrderDraft", "CheckoutRequest",
    "CheckoutResult", "Timer",
    # permissions
    "require", "staff_user", "User", "require_viewer",
    # bus
    "publish", "EventSpec", "Activity",
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
    "current_session", "is_live", "is_practice", "LiveSession",
    # overlays
    "compositor", "Compositor", "LayerInfo", "Z_BANNER", "Z_CARD", "Z_COUNTDOWN", "Z_ALERT",
    # scheduler
    "schedule_at", "cancel_timer", "pending_timers",
    # figures
    "session_figures",
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
    target = app[_LIVE].current if session is True else session or None
    if isinstance(target, Activity):
        event_id, session_id, practice = target.event_id, target.session_id, target.practice
    elif target is not None:
        event_id, session_id, practice = target.event_id, target.id, target.practice
    else:
        event_id, session_id, practice = None, None, False
    return await app[_BUS].publish(name, data or {}, event_id=event_id, session_id=session_id, practice=practice)


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


async def _one(conn: Any, sql: str, params: tuple[Any, ...]) -> Any:
    if isinstance(conn, Database):
        return await conn.fetchone(sql, params)
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def event(conn: Any, event_id: int) -> dict[str, Any] | None:
    """A LIVE event ``{id, slug, title, starts_at, url}`` (``url``: its public page), or None.

    ``conn`` is ``api.db(app)`` or a transaction (``tx``)."""
    row = await _one(conn, "SELECT id, slug, title, starts_at FROM events WHERE id = ?", (event_id,))
    if row is None:
        return None
    return {"id": row["id"], "slug": row["slug"], "title": row["title"], "starts_at": row["starts_at"], "url": f"/e/{row['slug']}"}


async def product(conn: Any, product_id: int) -> dict[str, Any] | None:
    """A catalog product ``{id, title, price_cents, currency, stock, archived, image_url}``, or None.

    ``conn`` is ``api.db(app)`` or a transaction (``tx``), so a check and the write it guards are atomic.
    """
    row = await _one(conn, "SELECT id, title, price_cents, currency, stock, archived, image FROM products WHERE id = ?",
                     (product_id,))
    if row is None:
        return None
    d = {k: row[k] for k in row.keys()}
    d["archived"] = bool(d["archived"])
    d["image_url"] = f"/uploads/{d.pop('image')}" if d["image"] else None
    return d


async def move_stock(tx: Any, product_id: int, delta: int) -> int:
    """Take units out of a product's stock (``delta < 0``) or put them back (``delta > 0``), inside the
    caller's transaction ``tx``; returns the stock left. Units set aside this way (a prize, a bundle) can
    no longer be bought; give them back the same way.

    Taking more than the stock raises :class:`Conflict` naming both numbers; an unknown or archived
    product raises :class:`NotFound`/:class:`Conflict`. Nothing is changed when it raises.
    """
    found = await _one(tx, "SELECT title, stock, archived FROM products WHERE id = ?", (product_id,))
    if found is None:
        raise NotFound(f"no product {product_id} in the catalog")
    if delta < 0:
        if found["archived"]:
            raise Conflict(f"product {product_id} ({found['title']}) is archived: unarchive it first")
        if found["stock"] < -delta:
            raise Conflict(f"product {product_id} ({found['title']}) has {found['stock']} in stock: {-delta} cannot be set aside",
                           details={"product_id": product_id, "stock": found["stock"], "requested": -delta})
    await tx.execute("UPDATE products SET stock = stock + ?, updated_at = strftime('%s', 'now') WHERE id = ?", (delta, product_id))
    return int(found["stock"]) + delta


async def viewer(app: web.Application, viewer_id: str) -> dict[str, Any] | None:
    """A viewer ``{id, nickname, blocked, following}`` (``following``: they follow the host), or None."""
    row = await app[_DB].fetchone("SELECT v.id, v.nickname, v.blocked, f.viewer_id AS follows FROM viewers v"
                                  " LEFT JOIN follows f ON f.viewer_id = v.id WHERE v.id = ?", (viewer_id,))
    if row is None:
        return None
    return {"id": row["id"], "nickname": row["nickname"], "blocked": bool(row["blocked"]), "following": row["follows"] is not None}


async def record_order(tx: Any, *, viewer_id: str, product_id: int, quantity: int, event_id: int | None,
                       session_id: int | None, practice: bool, label: str, unit_price_cents: int = 0) -> int:
    """Record a placed order whose units the caller already holds (set aside with :func:`move_stock`):
    the stock is not touched. For orders a plugin grants rather than sells (a prize: ``unit_price_cents=0``,
    ``label="prize"``). Runs in the caller's transaction ``tx``; returns the order's id. ``label`` shows
    in the orders list; publish ``order.created`` with :func:`order` after the transaction commits.
    """
    if quantity < 1 or unit_price_cents < 0:
        raise BadRequest(f"an order needs a quantity ≥ 1 and a price ≥ 0 (got {quantity} and {unit_price_cents})")
    found = await _one(tx, "SELECT currency FROM products WHERE id = ?", (product_id,))
    if found is None:
        raise NotFound(f"no product {product_id} in the catalog")
    cur = await tx.execute(
        "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency,"
        " status, first_time, practice, created_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'placed', 0, ?, ?, ?)",
        (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, unit_price_cents * quantity,
         found["currency"], int(practice), time.time(), label))
    return int(cur.lastrowid)


async def order(app: web.Application, order_id: int) -> dict[str, Any] | None:
    """An order as the orders API shows it (``{order: ...}`` of ``order.created``), or None."""
    from .orders import ORDER_COLUMNS, order_json

    row = await app[_DB].fetchone(f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
                                  " JOIN products p ON p.id = o.product_id WHERE o.id = ?", (order_id,))
    return order_json(row) if row is not None else None


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


def _check_surface() -> None:  # pragma: no cover - import-time sanity
    missing = [name for name in __all__ if name not in globals()]
    if missing:
        raise ImportError(f"lmserver.api lists names it does not define: {missing}")


_check_surface()
