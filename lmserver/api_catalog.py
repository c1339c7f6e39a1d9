"""Catalog, viewer and order helpers of the public plugin API (re-exported by :mod:`lmserver.api`;
plugins import them from there, never from here)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .appkeys import DB as _DB
from .db import Database
from .errors import BadRequest, Conflict, NotFound
from .orders import ORDER_COLUMNS, insert_order, order_json



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


async def product(source: Any, product_id: int) -> dict[str, Any] | None:
    """A catalog product as a dict, or None: every column of the catalog (``id``, ``title``, ``price_cents``,
    ``currency``, ``stock``, ``sku``, ``image``, ...) with ``archived`` as a bool and ``image_url``.

    ``source`` is the app, ``api.db(app)`` or a transaction (``tx``): inside a transaction a check and the
    write it guards are atomic.
    """
    conn = source[_DB] if isinstance(source, web.Application) else source
    row = await _one(conn, "SELECT * FROM products WHERE id = ?", (product_id,))
    if row is None:
        return None
    d = {k: row[k] for k in row.keys()}
    d["archived"] = bool(d["archived"])
    d["image_url"] = f"/uploads/{d['image']}" if d.get("image") else None
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
    return int(await insert_order(tx, viewer_id=viewer_id, product_id=product_id, event_id=event_id, session_id=session_id,
                                  quantity=quantity, unit_price_cents=unit_price_cents, currency=found["currency"], status="placed",
                                  first_time=False, practice=practice, label=label, by=label))


async def order(app: web.Application, order_id: int) -> dict[str, Any] | None:
    """An order as the orders API shows it (``{order: ...}`` of ``order.created``), or None."""
    row = await app[_DB].fetchone(f"SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN viewers v ON v.id = o.viewer_id"
                                  " JOIN products p ON p.id = o.product_id WHERE o.id = ?", (order_id,))
    return order_json(row) if row is not None else None
