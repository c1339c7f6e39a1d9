"""Flash sales: set up, launch, start, end; every change database first, then timers, then the bus.

Launch and end are persisted scheduler timers (``flashsale:start:<id>``, ``flashsale:end:<id>``), so a
restart neither stops nor stretches a sale: the clock (``starts_at``/``ends_at``) decides what an order
is (see :mod:`.store`), and a timer due while the server was down fires at startup. Handlers are
idempotent (they only move a sale forward).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import BadRequest, Conflict, NotFound

from .store import COUNTDOWN_RANGE, DURATION_RANGE, SALE_COLUMNS, Settings, release, sale_json

SETTINGS = web.AppKey("flashsale_settings", Settings)
#: sale id → the task that will publish its progress (a storm of orders publishes a few progress records, not one each)
PROGRESS = web.AppKey("flashsale_progress", dict)
PROGRESS_SECONDS = 0.25
START, END, HOLD, OFFER = "flashsale.start", "flashsale.end", "flashsale.hold", "flashsale.offer"


def money(cents: int, currency: str | None = "") -> str:
    return f"{cents / 100:.2f} {currency or ''}".strip()


# --------------------------------------------------------------------------------------------- reading


async def get(app: web.Application, sale_id: int) -> dict[str, Any]:
    row = await api.db(app).fetchone(f"SELECT {', '.join(SALE_COLUMNS)} FROM flashsale_sales WHERE id = ?", (sale_id,))
    if row is None:
        raise NotFound(f"no flash sale {sale_id}: it was deleted or never existed")
    return sale_json(row)


async def figures(app: web.Application, sale: dict[str, Any]) -> dict[str, Any]:
    """Units sold, buyers, GMV and time to sell out (seconds from the start, None when not sold out)."""
    row = await api.db(app).fetchone(
        "SELECT COALESCE(SUM(quantity), 0) AS units, COUNT(DISTINCT viewer_id) AS buyers, COALESCE(SUM(amount_cents), 0) AS gmv"
        " FROM flashsale_orders WHERE sale_id = ? AND cancelled = 0", (sale["id"],))
    sell_out = None
    if sale["sold_out_at"] is not None and sale["starts_at"] is not None:
        sell_out = round(max(0.0, sale["sold_out_at"] - sale["starts_at"]), 1)
    return {"units_sold": row["units"], "buyers": row["buyers"], "gmv_cents": row["gmv"], "seconds_to_sell_out": sell_out}


async def full(app: web.Application, sale: dict[str, Any]) -> dict[str, Any]:
    product = await api.product(app, sale["product_id"]) or {}
    history = await api.price_history(app, sale["product_id"], 30)
    lowest = sale["lowest_30d_cents"]
    if lowest is None and history:
        lowest = min(h["price_cents"] for h in history)
    return {**sale, "title": product.get("title", "?"), "image": product.get("image"),
            "regular_price_cents": sale["regular_price_cents"] or product.get("price_cents"),
            "currency": sale["currency"] or product.get("currency"), "lowest_30d_cents": lowest,
            "figures": await figures(app, sale)}


async def list_for_event(app: web.Application, event_id: int) -> list[dict[str, Any]]:
    rows = await api.db(app).fetchall(f"SELECT {', '.join(SALE_COLUMNS)} FROM flashsale_sales WHERE event_id = ? ORDER BY id",
                                      (event_id,))
    return [await full(app, sale_json(r)) for r in rows]


async def running(app: web.Application, event_id: int | None = None) -> list[dict[str, Any]]:
    where, params = "status IN ('countdown', 'live')", []
    if event_id is not None:
        where += " AND event_id = ?"
        params.append(event_id)
    rows = await api.db(app).fetchall(f"SELECT {', '.join(SALE_COLUMNS)} FROM flashsale_sales WHERE {where} ORDER BY id", params)
    return [sale_json(r) for r in rows]


# --------------------------------------------------------------------------------------------- setting up


def check_settings(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """The sale's settings present in ``data``, each checked (400 naming the field and the range)."""
    v = api.validate
    out: dict[str, Any] = {}
    if not partial or "allocated" in data:
        out["allocated"] = v.integer(data, "allocated", required=True, min=1, max=1_000_000)
    if not partial or "deal_price_cents" in data:
        out["deal_price_cents"] = v.integer(data, "deal_price_cents", required=True, min=1, max=10**12)
    if "per_buyer_limit" in data:
        out["per_buyer_limit"] = None if data["per_buyer_limit"] in (None, "", 0) else v.integer(data, "per_buyer_limit", required=False, min=1, max=1000)
    if not partial or "countdown_seconds" in data:
        out["countdown_seconds"] = v.integer(data, "countdown_seconds", required=False, default=30, min=COUNTDOWN_RANGE[0], max=COUNTDOWN_RANGE[1])
    if not partial or "duration_minutes" in data:
        out["duration_seconds"] = 60 * v.integer(data, "duration_minutes", required=False, default=5, min=DURATION_RANGE[0], max=DURATION_RANGE[1])
    return out


async def _check_against_product(app: web.Application, product_id: int, allocated: int, deal: int,
                                 exclude: int | None = None) -> dict[str, Any]:
    product = await api.product(app, product_id)
    if product is None or product["archived"]:
        raise NotFound(f"no product {product_id} in the catalog (or it is archived)")
    if deal >= product["price_cents"]:
        raise BadRequest(f"the deal price ({money(deal, product['currency'])}) must be below the regular price"
                         f" ({money(product['price_cents'], product['currency'])})",
                         details={"deal_price_cents": deal, "regular_price_cents": product["price_cents"]})
    aside = await api.db(app).fetchval(
        "SELECT COALESCE(SUM(allocated - sold), 0) FROM flashsale_sales WHERE product_id = ? AND status IN ('draft', 'countdown', 'live')"
        " AND practice = 0 AND id IS NOT ?", (product_id, exclude))
    free = product["stock"] - aside
    if allocated > free:
        extra = f" ({aside} already set aside for other flash sales)" if aside else ""
        raise BadRequest(f"cannot allocate {allocated} units: {product['title']} has {max(free, 0)} in stock{extra}",
                         details={"allocated": allocated, "available": max(free, 0)})
    return product


async def create(app: web.Application, event_id: int, product_id: int, settings: dict[str, Any]) -> dict[str, Any]:
    if product_id not in await api.bag_product_ids(app, event_id):
        raise BadRequest(f"product {product_id} is not in this event's shopping bag: add it to the bag first")
    await _check_against_product(app, product_id, settings["allocated"], settings["deal_price_cents"])
    now = time.time()
    async with api.db(app).transaction() as tx:
        await api.require_event(tx, event_id)
        cur = await tx.execute(
            "INSERT INTO flashsale_sales (event_id, product_id, allocated, deal_price_cents, per_buyer_limit, countdown_seconds,"
            " duration_seconds, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, product_id, settings["allocated"], settings["deal_price_cents"], settings.get("per_buyer_limit"),
             settings["countdown_seconds"], settings["duration_seconds"], now, now))
        sale_id = cur.lastrowid
    sale = await full(app, await get(app, sale_id))
    await _changed(app, sale, "created")
    return sale


async def edit(app: web.Application, sale_id: int, settings: dict[str, Any]) -> dict[str, Any]:
    sale = await get(app, sale_id)
    if sale["status"] != "draft":
        raise Conflict(f"flash sale {sale_id} was launched ({sale['status']}): only a sale not launched yet can be edited;"
                       " duplicate it to run it again with other settings")
    merged = {**sale, **settings}
    await _check_against_product(app, sale["product_id"], merged["allocated"], merged["deal_price_cents"], exclude=sale_id)
    cols = ", ".join(f"{k} = ?" for k in settings)
    async with api.db(app).transaction() as tx:
        cur = await tx.execute(f"UPDATE flashsale_sales SET {cols}, updated_at = ? WHERE id = ? AND status = 'draft'",
                               (*settings.values(), time.time(), sale_id))
        if cur.rowcount != 1:
            raise Conflict(f"flash sale {sale_id} was launched meanwhile: it can no longer be edited")
    sale = await full(app, await get(app, sale_id))
    await _changed(app, sale, "updated")
    return sale


async def delete(app: web.Application, sale_id: int) -> None:
    sale = await get(app, sale_id)
    async with api.db(app).transaction() as tx:
        cur = await tx.execute("DELETE FROM flashsale_sales WHERE id = ? AND status = 'draft'", (sale_id,))
        if cur.rowcount != 1:
            raise Conflict(f"flash sale {sale_id} was launched: end it instead (a launched sale keeps its record)")
    await api.publish(app, "flashsale.changed", {"sale_id": sale_id, "action": "deleted", "sale": None}, session=None)
    del sale


async def duplicate(app: web.Application, sale_id: int) -> dict[str, Any]:
    sale = await get(app, sale_id)
    settings = {k: sale[k] for k in ("allocated", "deal_price_cents", "per_buyer_limit", "countdown_seconds", "duration_seconds")}
    return await create(app, sale["event_id"], sale["product_id"], settings)


async def _changed(app: web.Application, sale: dict[str, Any], action: str) -> None:
    await api.publish(app, "flashsale.changed", {"sale_id": sale["id"], "action": action, "sale": sale}, session=None)


# --------------------------------------------------------------------------------------------- running


def _launch(conn: sqlite3.Connection, sale_id: int, session_id: int, practice: bool, regular: int, lowest: int, currency: str,
            now: float) -> None:
    """Writer thread: draft → countdown, unless another sale of the product runs (409 naming it)."""
    sale = conn.execute("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,)).fetchone()
    if sale is None:
        raise NotFound(f"no flash sale {sale_id}: it was deleted or never existed")
    if sale["status"] != "draft":
        raise Conflict(f"flash sale {sale_id} was already launched ({sale['status']}): duplicate it to run it again")
    other = conn.execute("SELECT id, status FROM flashsale_sales WHERE product_id = ? AND id != ? AND status IN ('countdown', 'live')",
                         (sale["product_id"], sale_id)).fetchone()
    if other is not None:
        raise Conflict(f"flash sale {other['id']} on this product is running ({other['status']}): two sales on the same product"
                       " cannot overlap; end it first or wait until it ends", details={"other_sale_id": other["id"]})
    starts = now + sale["countdown_seconds"]
    conn.execute("UPDATE flashsale_sales SET status = 'countdown', session_id = ?, practice = ?, regular_price_cents = ?,"
                 " lowest_30d_cents = ?, currency = ?, launched_at = ?, starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?",
                 (session_id, int(practice), regular, lowest, currency, now, starts, starts + sale["duration_seconds"], now, sale_id))


async def launch(app: web.Application, sale_id: int) -> dict[str, Any]:
    sale = await get(app, sale_id)
    session = api.current_session(app)
    if session is None or session.event_id != sale["event_id"]:
        raise Conflict("this event is not live: launch the flash sale during the LIVE (or a practice session)")
    product = await _check_against_product(app, sale["product_id"], 0, sale["deal_price_cents"], exclude=sale_id)
    history = await api.price_history(app, sale["product_id"], 30)
    lowest = min([h["price_cents"] for h in history] or [product["price_cents"]])
    await api.writer_batch(app, _launch, sale_id, session.id, session.practice, product["price_cents"], lowest,
                           product["currency"], time.time())
    sale = await get(app, sale_id)
    await api.schedule_at(app, sale["starts_at"], f"flashsale:start:{sale_id}", START, {"sale_id": sale_id})
    await api.schedule_at(app, sale["ends_at"], f"flashsale:end:{sale_id}", END, {"sale_id": sale_id})
    sale = await full(app, sale)
    await api.publish(app, "flashsale.launched", {"sale": sale, "text": f"Flash sale launched: {sale['title']} at"
                                                  f" {money(sale['deal_price_cents'], sale['currency'])}, {sale['allocated']} units"
                                                  f" (starts in {sale['countdown_seconds']} s)"}, session=session)
    return sale


LAUNCH_ACTION = "flashsale.launch"


async def launch_next(app: web.Application, params: dict[str, Any], user: Any = None) -> dict[str, Any]:
    """The ``flashsale.launch`` action (params ``{"event_id", "product_id"?}``): launch the event's next draft sale,
    on ``product_id`` when given; with no draft for that product, run its last sale again (duplicated, so a new
    allocation). 409 with what to do when there is nothing to launch."""
    v = api.validate
    event_id = v.integer(params, "event_id", min=1)
    product_id = v.integer(params, "product_id", min=1, required=False)
    session = api.current_session(app)
    if session is None or session.event_id != event_id:  # before anything is duplicated: nothing half-written
        raise Conflict("this event is not live: launch the flash sale during the LIVE (or a practice session)")
    where, args = "event_id = ? AND status = 'draft'", [event_id]
    if product_id is not None:
        where += " AND product_id = ?"
        args.append(product_id)
    sale_id = await api.db(app).fetchval(f"SELECT id FROM flashsale_sales WHERE {where} ORDER BY id LIMIT 1", args)
    if sale_id is None and product_id is not None:
        last = await api.db(app).fetchval("SELECT id FROM flashsale_sales WHERE event_id = ? AND product_id = ? AND status = 'ended'"
                                          " ORDER BY id DESC LIMIT 1", (event_id, product_id))
        if last is not None:
            sale_id = (await duplicate(app, last))["id"]
    if sale_id is None:
        what = "this product" if product_id is not None else "this event"
        raise Conflict(f"no flash sale is set up for {what}: set one up in the Flash sales panel, then launch it")
    sale = await launch(app, sale_id)
    return {"text": f"Flash sale launched: {sale['title']} at {money(sale['deal_price_cents'], sale['currency'])},"
                    f" starts in {sale['countdown_seconds']} s", "sale_id": sale_id}


def _start(conn: sqlite3.Connection, sale_id: int) -> bool:
    return conn.execute("UPDATE flashsale_sales SET status = 'live' WHERE id = ? AND status = 'countdown'", (sale_id,)).rowcount == 1


async def on_start(app: web.Application, timer: api.Timer) -> None:
    sale_id = timer.payload["sale_id"]
    await api.writer_batch(app, _start, sale_id)
    try:
        sale = await get(app, sale_id)
    except NotFound:
        return
    if sale["status"] == "live":
        await api.publish(app, "flashsale.started", {"sale": await full(app, sale)}, session=await _tag(app, sale))


def _end(conn: sqlite3.Connection, sale_id: int, reason: str, now: float) -> bool:
    return conn.execute("UPDATE flashsale_sales SET status = 'ended', ended_at = ?, end_reason = ?, ends_at = MIN(ends_at, ?),"
                        " updated_at = ? WHERE id = ? AND status IN ('countdown', 'live')",
                        (now, reason, now, now, sale_id)).rowcount == 1


async def end(app: web.Application, sale_id: int, reason: str) -> dict[str, Any]:
    """End a sale now (idempotent): what it did not sell is no longer set aside, so it is back in stock."""
    await get(app, sale_id)
    ended = await api.writer_batch(app, _end, sale_id, reason, time.time())
    await api.cancel_timer(app, f"flashsale:start:{sale_id}")
    await api.cancel_timer(app, f"flashsale:end:{sale_id}")
    await reconcile(app, sale_id)
    sale = await full(app, await get(app, sale_id))
    if ended:
        f = sale["figures"]
        await api.publish(app, "flashsale.ended", {
            "sale": sale, "reason": reason,
            "text": f"Flash sale ended ({reason}): {sale['title']}, {f['units_sold']} of {sale['allocated']} sold to {f['buyers']} buyers,"
                    f" {money(f['gmv_cents'], sale['currency'])}"}, session=await _tag(app, sale))
    return sale


async def on_end(app: web.Application, timer: api.Timer) -> None:
    try:
        await end(app, timer.payload["sale_id"], "time is up")
    except NotFound:
        pass


async def _tag(app: web.Application, sale: dict[str, Any]) -> api.LiveSession | None:
    """The session a sale runs in: its records are tagged with it (its event's viewers see them)."""
    return await api.session(app, sale["session_id"])


async def reconcile(app: web.Application, sale_id: int | None = None) -> list[int]:
    """Give back to their sales the units of orders the core released (checkout failed, restart)."""
    where, params = "cancelled = 0", []
    if sale_id is not None:
        where += " AND sale_id = ?"
        params.append(sale_id)
    rows = await api.db(app).fetchall(f"SELECT order_id FROM flashsale_orders WHERE {where}", params)
    statuses = await api.order_statuses(app, [r["order_id"] for r in rows])
    gone = [oid for oid, status in statuses.items() if status == "cancelled"]
    return await api.writer_batch(app, release, gone) if gone else []


async def after_order(app: web.Application, event: api.Activity) -> None:
    """An order was placed: tell viewers the sale's progress; announce a sell-out once."""
    order = event.data["order"]
    sale_id = await api.db(app).fetchval("SELECT sale_id FROM flashsale_orders WHERE order_id = ?", (order["id"],))
    if sale_id is None:
        return
    progress(app, sale_id, event)
    sale = await get(app, sale_id)
    if order["status"] == "pending_payment":  # a hold: its units come back if the payment is not completed in time
        hold = app[SETTINGS].hold_minutes * 60
        await api.schedule_at(app, order["created_at"] + hold, f"flashsale:hold:{order['id']}", HOLD,
                              {"order_id": order["id"], "sale_id": sale_id})
    if sale["left"] <= 0:
        async with api.db(app).transaction() as tx:
            cur = await tx.execute("UPDATE flashsale_sales SET announced_sold_out = 1 WHERE id = ? AND announced_sold_out = 0", (sale_id,))
            first = cur.rowcount == 1
        if first:
            sale = await full(app, sale)
            secs = sale["figures"]["seconds_to_sell_out"]
            await api.publish(app, "flashsale.sold_out", {
                "sale_id": sale_id, "sale": sale,
                "text": f"Flash sale sold out: {sale['title']}, {sale['allocated']} units in {secs} s"}, session=event)


async def session_ended(app: web.Application, event: api.Activity) -> None:
    rows = await api.db(app).fetchall("SELECT id FROM flashsale_sales WHERE session_id = ? AND status IN ('countdown', 'live')",
                                      (event.session_id,))
    for r in rows:
        await end(app, r["id"], "the LIVE ended")


async def released(app: web.Application, event: api.Activity) -> None:
    ids = [int(i) for i in event.data.get("order_ids", [])]
    for sale_id in await api.writer_batch(app, release, ids):
        sale = await get(app, sale_id)
        await api.publish(app, "flashsale.progress", {"sale_id": sale_id, "sold": sale["sold"], "allocated": sale["allocated"]},
                          session=event)


async def catch_up(app: web.Application) -> None:
    """At startup: count the orders the core released while we were down."""
    await reconcile(app)



# --------------------------------------------------------------------------------------------- holds and the waitlist


async def _offered(app: web.Application, sale_id: int, viewer_ids: list[str]) -> None:
    """Viewers of the waitlist got a hold: tell them (and set each hold's expiry timer)."""
    hold = app[SETTINGS].hold_minutes * 60
    until = time.time() + hold
    for vid in viewer_ids:
        await api.schedule_at(app, until, f"flashsale:offer:{sale_id}:{vid}", OFFER, {"sale_id": sale_id, "viewer_id": vid})
    sale = await get(app, sale_id)
    if viewer_ids:
        await api.publish(app, "flashsale.offered", {"sale_id": sale_id, "viewer_ids": viewer_ids, "until": until}, session=await _tag(app, sale))
    await api.publish(app, "flashsale.progress", {"sale_id": sale_id, "sold": sale["sold"], "allocated": sale["allocated"]},
                      session=await _tag(app, sale))


async def on_hold_expired(app: web.Application, timer: api.Timer) -> None:
    """A buyer's payment did not complete within hold_minutes: the order is cancelled, its units go to the waitlist."""
    from .store import hold_expired

    minutes = app[SETTINGS].hold_minutes
    released, answer = await api.release_order(app, timer.payload["order_id"], f"payment not completed within {minutes} min:"
                                                f" the flash-sale units were released", hold_expired, timer.payload["order_id"], minutes * 60.0)
    if released and answer["sale_id"] is not None:
        await _offered(app, answer["sale_id"], answer["offered"])


async def on_offer_expired(app: web.Application, timer: api.Timer) -> None:
    from .store import offer_expired

    sale_id, vid = timer.payload["sale_id"], timer.payload["viewer_id"]
    offered = await api.writer_batch(app, offer_expired, sale_id, vid, app[SETTINGS].hold_minutes * 60.0)
    try:
        await _offered(app, sale_id, offered)
    except NotFound:
        pass


async def join_waitlist(app: web.Application, sale_id: int, viewer_id: str) -> dict[str, Any]:
    from .store import join_waitlist as join

    return await api.writer_batch(app, join, sale_id, viewer_id)


async def my_waitlist(app: web.Application, sale_id: int, viewer_id: str) -> dict[str, Any] | None:
    row = await api.db(app).fetchone("SELECT status, units, offered_until FROM flashsale_waitlist WHERE sale_id = ? AND viewer_id = ?",
                                     (sale_id, viewer_id))
    return {k: row[k] for k in row.keys()} if row else None


def progress(app: web.Application, sale_id: int, tag: Any) -> None:
    """Publish the sale's progress soon (at most one record per sale every PROGRESS_SECONDS)."""
    pending = app[PROGRESS]
    if sale_id in pending:
        return

    async def later() -> None:
        try:
            await asyncio.sleep(PROGRESS_SECONDS)
        finally:
            pending.pop(sale_id, None)
        sale = await get(app, sale_id)
        await api.publish(app, "flashsale.progress", {"sale_id": sale_id, "sold": sale["sold"], "allocated": sale["allocated"]},
                          session=tag)

    pending[sale_id] = asyncio.get_running_loop().create_task(later(), name=f"flashsale-progress-{sale_id}")


async def stop(app: web.Application) -> None:
    """Shutdown: drop the progress records not yet published (the next start shows the figures anyway)."""
    tasks = list(app.get(PROGRESS, {}).values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
