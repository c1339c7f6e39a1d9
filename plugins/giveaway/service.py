"""Giveaways: create, edit, attach, start, enter, draw, redraw, claim. Database first, then the bus.

Every write is one transaction; the bus is told after it commits. The running giveaway of each event is
cached in memory (``RUNNING``) so that matching a comment against the keyword costs a dict lookup.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import BadRequest, Conflict, NotFound

from . import draw
from .store import NAME, Settings

SETTINGS = web.AppKey("giveaway_settings", Settings)
#: event id → the running giveaway {id, mode, keyword, ends_at}
RUNNING = web.AppKey("giveaway_running", dict)
TIMER = "giveaway.draw"
MODES = ("comment", "follow", "both", "none")


def settings(app: web.Application) -> Settings:
    return app[SETTINGS]


def proof_url(event: dict[str, Any] | None, gid: int) -> str | None:
    return f"/e/{event['slug']}/giveaways/{gid}" if event else None


# --------------------------------------------------------------------------------------------- reading


async def get_row(conn: Any, gid: int) -> Any:
    if isinstance(conn, api.Database):
        row = await conn.fetchone("SELECT * FROM giveaways WHERE id = ?", (gid,))
    else:
        row = await (await conn.execute("SELECT * FROM giveaways WHERE id = ?", (gid,))).fetchone()
    if row is None:
        raise NotFound(f"no giveaway {gid}: it was deleted or never existed")
    return row


async def to_json(app: web.Application, row: Any, *, staff: bool = False) -> dict[str, Any]:
    """A giveaway as the API shows it; ``staff`` adds stock held, who accepted the terms, winners' viewer ids and
    claim details. The public shape (viewer pages, the proof) names entrants by entry id and nickname only."""
    db = api.db(app)
    gid = row["id"]
    out = {k: row[k] for k in ("id", "title", "event_id", "winners", "items_per_winner", "entry_mode", "keyword",
                               "countdown_seconds", "status", "started_at", "ends_at", "created_at")}
    out["practice"] = bool(row["practice"])
    event = await api.event(db, row["event_id"]) if row["event_id"] is not None else None
    out["event"] = {"id": event["id"], "title": event["title"], "url": event["url"]} if event else None
    out["proof_url"] = proof_url(event, gid)
    products = []
    for p in await db.fetchall("SELECT product_id, allocated, held FROM giveaway_products WHERE giveaway_id = ? ORDER BY position", (gid,)):
        info = await api.product(db, p["product_id"]) or {"title": "(deleted)", "image_url": None}
        item = {"id": p["product_id"], "title": info["title"], "image_url": info["image_url"], "allocated": p["allocated"]}
        if staff:
            item["held"] = p["held"]
        products.append(item)
    out["products"] = products
    out["prize"] = ", ".join(p["title"] for p in products)
    out["entries"] = await db.fetchval("SELECT COUNT(*) FROM giveaway_entries WHERE giveaway_id = ?", (gid,), default=0)
    out["how_to_enter"] = how_to_enter(row["entry_mode"], row["keyword"])
    draws = []
    for d in await db.fetchall("SELECT * FROM giveaway_draws WHERE giveaway_id = ? ORDER BY number", (gid,)):
        revealed = d["revealed_at"] is not None
        wins = await db.fetchall("SELECT * FROM giveaway_winners WHERE draw_id = ? ORDER BY pick", (d["id"],))
        draws.append({
            "number": d["number"], "commitment": d["commitment"], "committed_at": d["committed_at"], "picks": d["picks"],
            "entries_hash": d["entries_hash"], "pool": json.loads(d["pool"]) if d["pool"] else None,
            "seed": d["seed"] if revealed else None, "revealed_at": d["revealed_at"],
            "winners": [_winner_json(w, staff) for w in wins]})
    out["draws"] = draws
    if staff:
        out["terms_accepted_by"] = row["terms_accepted_by"]
        out["terms_accepted_at"] = row["terms_accepted_at"]
    return out


def _winner_json(w: Any, staff: bool) -> dict[str, Any]:
    out = {"id": w["id"], "pick": w["pick"], "code": w["code"], "nickname": w["nickname"], "status": w["status"],
           "claim_until": w["claim_until"], "claimed_at": w["claimed_at"]}
    if staff:
        out.update(viewer_id=w["viewer_id"], claim_name=w["claim_name"], claim_email=w["claim_email"],
                   claim_address=w["claim_address"], order_ids=json.loads(w["order_ids"]) if w["order_ids"] else [])
    return out


def how_to_enter(mode: str, keyword: str) -> str:
    return {"comment": f"Comment {keyword} to enter", "follow": "Follow to enter",
            "both": f"Comment {keyword} or follow to enter", "none": "Tap Enter to enter"}[mode]


async def list_json(app: web.Application, event_id: int | None = None, *, staff: bool = True) -> list[dict[str, Any]]:
    if event_id is None:
        rows = await api.db(app).fetchall("SELECT * FROM giveaways ORDER BY id DESC")
    else:
        rows = await api.db(app).fetchall("SELECT * FROM giveaways WHERE event_id = ? ORDER BY id DESC", (event_id,))
    return [await to_json(app, r, staff=staff) for r in rows]


# --------------------------------------------------------------------------------------------- setting up


def check_rules(fields: dict[str, Any]) -> None:
    """Cross-field rules; BadRequest names the numbers."""
    if fields["entry_mode"] in ("comment", "both") and not fields["keyword"]:
        raise BadRequest(f"entry_mode {fields['entry_mode']!r} needs a keyword viewers type in the chat (e.g. WIN)")
    total = sum(p["allocated"] for p in fields["products"])
    needed = fields["winners"] * fields["items_per_winner"]
    if needed > total:
        raise BadRequest(f"{fields['winners']} winners × {fields['items_per_winner']} items per winner = {needed} items,"
                         f" but only {total} units are allocated: allocate more or lower the winners",
                         details={"needed": needed, "allocated": total})


async def _allocate(tx: Any, gid: int, products: list[dict[str, Any]]) -> None:
    for pos, p in enumerate(products):
        info = await api.product(tx, p["id"])
        if info is None:
            raise NotFound(f"product {p['id']} is not in the catalog")
        if info["archived"]:
            raise BadRequest(f"product {p['id']} ({info['title']}) is archived: unarchive it or pick another")
        if info["stock"] < p["allocated"]:
            raise Conflict(f"product {p['id']} ({info['title']}) has {info['stock']} in stock: {p['allocated']} cannot be allocated",
                           details={"product_id": p["id"], "stock": info["stock"], "allocated": p["allocated"]})
        await api.move_stock(tx, p["id"], -p["allocated"])
        await tx.execute("INSERT INTO giveaway_products (giveaway_id, product_id, position, allocated, held) VALUES (?, ?, ?, ?, ?)",
                         (gid, p["id"], pos, p["allocated"], p["allocated"]))


async def _release_all(tx: Any, gid: int) -> None:
    """Give every unit still held back to stock."""
    rows = await (await tx.execute("SELECT product_id, held FROM giveaway_products WHERE giveaway_id = ? AND held > 0", (gid,))).fetchall()
    for r in rows:
        await api.move_stock(tx, r["product_id"], r["held"])
    await tx.execute("UPDATE giveaway_products SET held = 0 WHERE giveaway_id = ?", (gid,))


async def _check_event(tx: Any, gid: int | None, event_id: int | None) -> None:
    if event_id is None:
        return
    await api.require_event(tx, event_id)


async def create(app: web.Application, user_name: str, fields: dict[str, Any]) -> Any:
    check_rules(fields)
    now = time.time()
    async with api.db(app).transaction() as tx:
        await _check_event(tx, None, fields.get("event_id"))
        cur = await tx.execute(
            "INSERT INTO giveaways (title, event_id, winners, items_per_winner, entry_mode, keyword, countdown_seconds, terms,"
            " terms_accepted_by, terms_accepted_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fields["title"], fields.get("event_id"), fields["winners"], fields["items_per_winner"], fields["entry_mode"],
             fields["keyword"], fields["countdown_seconds"], settings(app).terms, user_name, now, now, now))
        gid = cur.lastrowid
        await _allocate(tx, gid, fields["products"])
    await _changed(app, gid, "created")
    return await get_row(api.db(app), gid)


async def update(app: web.Application, gid: int, changes: dict[str, Any]) -> Any:
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        if row["status"] != "ready":
            raise Conflict(f"giveaway {gid} is {row['status']}: it can be edited only until it starts")
        fields = {k: row[k] for k in ("title", "winners", "items_per_winner", "entry_mode", "keyword", "countdown_seconds")}
        cur = await tx.execute("SELECT product_id AS id, allocated FROM giveaway_products WHERE giveaway_id = ? ORDER BY position", (gid,))
        fields["products"] = [dict(id=r["id"], allocated=r["allocated"]) for r in await cur.fetchall()]
        fields.update(changes)
        check_rules(fields)
        if "products" in changes:
            await _release_all(tx, gid)
            await tx.execute("DELETE FROM giveaway_products WHERE giveaway_id = ?", (gid,))
            await _allocate(tx, gid, fields["products"])
        await tx.execute("UPDATE giveaways SET title = ?, winners = ?, items_per_winner = ?, entry_mode = ?, keyword = ?,"
                         " countdown_seconds = ?, updated_at = ? WHERE id = ?",
                         (fields["title"], fields["winners"], fields["items_per_winner"], fields["entry_mode"], fields["keyword"],
                          fields["countdown_seconds"], time.time(), gid))
    await _changed(app, gid, "updated")
    return await get_row(api.db(app), gid)


async def delete(app: web.Application, gid: int) -> None:
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        if row["status"] != "ready":
            raise Conflict(f"giveaway {gid} has {'run' if row['status'] != 'running' else 'started'}: its entries and draw stay"
                           " on record, so it cannot be deleted")
        await _release_all(tx, gid)
        await tx.execute("DELETE FROM giveaways WHERE id = ?", (gid,))
    await api.publish(app, "giveaway.changed", {"giveaway_id": gid, "action": "deleted", "giveaway": None}, session=None)


async def attach(app: web.Application, gid: int, event_id: int | None) -> Any:
    """Attach to ``event_id`` (or detach with None); only while the giveaway has not run."""
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        if row["status"] != "ready":
            raise Conflict(f"giveaway {gid} has already started: it stays with its event")
        if event_id is not None:
            await api.require_event(tx, event_id)
            if row["event_id"] is not None and row["event_id"] != event_id:
                other = await api.event(tx, row["event_id"])
                raise Conflict(f"giveaway {gid} is already included in {other['title'] if other else 'another event'}:"
                               " remove it from that event first")
        await tx.execute("UPDATE giveaways SET event_id = ?, updated_at = ? WHERE id = ?", (event_id, time.time(), gid))
    await _changed(app, gid, "attached" if event_id is not None else "detached")
    return await get_row(api.db(app), gid)


async def _changed(app: web.Application, gid: int, action: str) -> None:
    row = await get_row(api.db(app), gid)
    await api.publish(app, "giveaway.changed", {"giveaway_id": gid, "action": action,
                                                "giveaway": await to_json(app, row, staff=True)}, session=None)


# --------------------------------------------------------------------------------------------- running


async def start(app: web.Application, gid: int) -> Any:
    session = api.current_session(app)
    now = time.time()
    seed = draw.new_seed()
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        if row["status"] != "ready":
            raise Conflict(f"giveaway {gid} is {row['status']}: a giveaway runs once (redraw a winner instead)")
        if row["event_id"] is None:
            raise Conflict(f"giveaway {gid} is not attached to an event: add it to the event that is live")
        if session is None or session.event_id != row["event_id"]:
            event = await api.event(tx, row["event_id"])
            raise Conflict(f"start giveaway {gid} while {event['title'] if event else 'its event'} is live (or in practice):"
                           " it is not live now")
        busy = await (await tx.execute("SELECT id FROM giveaways WHERE event_id = ? AND status = 'running'", (row["event_id"],))).fetchone()
        if busy is not None:
            raise Conflict(f"giveaway {busy['id']} is running: one giveaway at a time per event; wait for its draw")
        ends_at = now + row["countdown_seconds"]
        await tx.execute("UPDATE giveaways SET status = 'running', practice = ?, session_id = ?, started_at = ?, ends_at = ?,"
                         " updated_at = ? WHERE id = ?", (int(session.practice), session.id, now, ends_at, now, gid))
        await tx.execute("INSERT INTO giveaway_draws (giveaway_id, number, seed, commitment, committed_at, picks) VALUES (?, 1, ?, ?, ?, ?)",
                         (gid, seed.hex(), draw.commitment(seed), now, row["winners"]))
    await api.schedule_at(app, ends_at, f"giveaway:{gid}", TIMER, {"giveaway_id": gid})
    await refresh_running(app)
    row = await get_row(api.db(app), gid)
    await api.publish(app, "giveaway.started", {"giveaway": await to_json(app, row)}, session=session)
    return row


START_ACTION = "giveaway.start"


async def start_next(app: web.Application, params: dict[str, Any], user: Any = None) -> dict[str, Any]:
    """The ``giveaway.start`` action: start the event's next ready giveaway (oldest first)."""
    event_id = api.validate.integer(params, "event_id", min=1)
    row = await api.db(app).fetchone("SELECT id FROM giveaways WHERE event_id = ? AND status = 'ready' ORDER BY id LIMIT 1", (event_id,))
    if row is None:
        raise Conflict("no giveaway is ready for this event: set one up in the Giveaways panel, then start it")
    started = await start(app, row["id"])
    return {"text": f"Giveaway “{started['title']}” started: the draw is in {started['countdown_seconds']} s",
            "giveaway_id": started["id"]}


async def refresh_running(app: web.Application) -> None:
    rows = await api.db(app).fetchall("SELECT id, event_id, entry_mode, keyword, ends_at FROM giveaways WHERE status = 'running'")
    app[RUNNING].clear()
    app[RUNNING].update({r["event_id"]: {"id": r["id"], "mode": r["entry_mode"], "keyword": r["keyword"].strip().casefold(),
                                         "ends_at": r["ends_at"]} for r in rows})


async def enter(app: web.Application, gid: int, viewer: dict[str, Any], via: str) -> tuple[bool, str | None]:
    """Enter ``viewer`` (``api.viewer``) once; (entered now, refusal reason). Entries count only while running."""
    if viewer["blocked"]:
        return False, "blocked viewers cannot enter"
    if not viewer.get("nickname"):
        return False, "choose a nickname first: entrants are listed by nickname"
    now = time.time()
    code = secrets.token_hex(6)
    async with api.db(app).transaction() as tx:
        cur = await tx.execute(
            "INSERT OR IGNORE INTO giveaway_entries (giveaway_id, code, viewer_id, nickname, via, created_at)"
            " SELECT id, ?, ?, ?, ?, ? FROM giveaways WHERE id = ? AND status = 'running' AND ends_at > ?",
            (code, viewer["id"], viewer["nickname"], via, now, gid, now))
        new = cur.rowcount == 1
        count = await (await tx.execute("SELECT COUNT(*) FROM giveaway_entries WHERE giveaway_id = ?", (gid,))).fetchone()
    if new:
        entries = count[0]
        row = await get_row(api.db(app), gid)
        session = await _session_of(app, row)
        await api.publish(app, "giveaway.entered", {"giveaway_id": gid, "entries": entries, "viewer_id": viewer["id"],
                                                    "nickname": viewer["nickname"]}, session=session)
        step = settings(app).entry_milestone
        if step and entries % step == 0:
            await api.publish(app, "giveaway.milestone", {"giveaway_id": gid, "entries": entries, "title": row["title"]}, session=session)
    return new, None


async def _session_of(app: web.Application, row: Any) -> Any:
    """The session the giveaway ran in (its records are tagged with it, even after it ended)."""
    return await api.session(app, row["session_id"])


async def on_comment(app: web.Application, comment: dict[str, Any]) -> None:
    running = app[RUNNING].get(comment.get("event_id"))
    if running is None or running["mode"] not in ("comment", "both") or comment.get("staff") or comment.get("parent_id"):
        return
    if comment.get("body", "").strip().casefold() != running["keyword"] or not comment.get("viewer_id"):
        return
    viewer = await api.viewer(app, comment["viewer_id"])
    if viewer is not None:
        await enter(app, running["id"], viewer, "comment")


async def on_follow(app: web.Application, event_id: int | None, viewer_id: str) -> None:
    running = app[RUNNING].get(event_id)
    if running is None or running["mode"] not in ("follow", "both"):
        return
    viewer = await api.viewer(app, viewer_id)
    if viewer is not None:
        await enter(app, running["id"], viewer, "follow")


# --------------------------------------------------------------------------------------------- the draw


async def draw_due(app: web.Application, timer: api.Timer) -> None:
    """The countdown's end (a scheduler timer, also after a restart): freeze, pick, reveal. Idempotent."""
    gid = timer.payload["giveaway_id"]
    claim_seconds = settings(app).claim_hours * 3600
    now = time.time()
    async with api.db(app).transaction() as tx:
        cur = await tx.execute("UPDATE giveaways SET status = 'drawn', updated_at = ? WHERE id = ? AND status = 'running'", (now, gid))
        if cur.rowcount != 1:
            return  # drawn already (a timer fired twice) or deleted
        row = await get_row(tx, gid)
        codes = [r[0] for r in await (await tx.execute("SELECT code FROM giveaway_entries WHERE giveaway_id = ?", (gid,))).fetchall()]
        first = await (await tx.execute("SELECT * FROM giveaway_draws WHERE giveaway_id = ? AND number = 1", (gid,))).fetchone()
        await _run_draw(tx, row, first, codes, now, claim_seconds)
    await refresh_running(app)
    row = await get_row(api.db(app), gid)
    await api.publish(app, "giveaway.drawn", {"giveaway": await to_json(app, row), "redraw": False}, session=await _session_of(app, row))


async def _run_draw(tx: Any, row: Any, record: Any, codes: list[str], now: float, claim_seconds: float) -> int:
    """Pick from ``codes`` with ``record``'s seed, reveal it, add the winners, give surplus units back."""
    gid = row["id"]
    pool = sorted(codes)
    winners = draw.pick(bytes.fromhex(record["seed"]), pool, record["picks"])
    await tx.execute("UPDATE giveaway_draws SET pool = ?, entries_hash = ?, revealed_at = ? WHERE id = ?",
                     (json.dumps(pool), draw.entries_hash(pool), now, record["id"]))
    for i, code in enumerate(winners, 1):
        entry = await (await tx.execute("SELECT viewer_id, nickname FROM giveaway_entries WHERE giveaway_id = ? AND code = ?",
                                        (gid, code))).fetchone()
        await tx.execute("INSERT INTO giveaway_winners (giveaway_id, draw_id, pick, code, viewer_id, nickname, claim_until)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (gid, record["id"], i, code, entry["viewer_id"], entry["nickname"], now + claim_seconds))
    await _give_back_surplus(tx, row, missing=record["picks"] - len(winners))
    return len(winners)


async def _give_back_surplus(tx: Any, row: Any, missing: int = 0) -> None:
    """Units no prize can take any more go back to stock: in practice all of them (nothing is taken), else
    whatever exceeds the prizes still to be claimed."""
    gid = row["id"]
    if row["practice"]:
        await _release_all(tx, gid)
        return
    open_prizes = await (await tx.execute("SELECT COUNT(*) FROM giveaway_winners WHERE giveaway_id = ? AND status = 'won'", (gid,))).fetchone()
    keep = open_prizes[0] * row["items_per_winner"]
    rows = await (await tx.execute("SELECT product_id, held FROM giveaway_products WHERE giveaway_id = ? ORDER BY position", (gid,))).fetchall()
    for r in rows:
        take = min(r["held"], keep)
        keep -= take
        extra = r["held"] - take
        if extra:
            await api.move_stock(tx, r["product_id"], extra)
            await tx.execute("UPDATE giveaway_products SET held = ? WHERE giveaway_id = ? AND product_id = ?", (take, gid, r["product_id"]))


async def redraw(app: web.Application, gid: int) -> Any:
    """Draw again for every prize whose claim window passed unclaimed, from the entrants who have not won."""
    now = time.time()
    seed = draw.new_seed()
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        if row["status"] != "drawn":
            raise Conflict(f"giveaway {gid} is {row['status']}: only a drawn giveaway can be redrawn")
        lapsed = await (await tx.execute("SELECT id FROM giveaway_winners WHERE giveaway_id = ? AND status = 'won' AND claim_until < ?",
                                          (gid, now))).fetchall()
        if not lapsed:
            pending = await (await tx.execute("SELECT MIN(claim_until) FROM giveaway_winners WHERE giveaway_id = ? AND status = 'won'",
                                               (gid,))).fetchone()
            hint = (f"the next claim window closes at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(pending[0]))}"
                    if pending[0] else "every prize was claimed")
            raise Conflict(f"nothing to redraw: no unclaimed prize whose claim window has passed ({hint})")
        await tx.execute(f"UPDATE giveaway_winners SET status = 'redrawn' WHERE id IN ({','.join('?' * len(lapsed))})",
                         [r["id"] for r in lapsed])
        won = {r[0] for r in await (await tx.execute("SELECT code FROM giveaway_winners WHERE giveaway_id = ?", (gid,))).fetchall()}
        codes = [r[0] for r in await (await tx.execute("SELECT code FROM giveaway_entries WHERE giveaway_id = ?", (gid,))).fetchall()
                 if r[0] not in won]
        number = (await (await tx.execute("SELECT MAX(number) FROM giveaway_draws WHERE giveaway_id = ?", (gid,))).fetchone())[0] + 1
        cur = await tx.execute("INSERT INTO giveaway_draws (giveaway_id, number, seed, commitment, committed_at, picks) VALUES (?, ?, ?, ?, ?, ?)",
                               (gid, number, seed.hex(), draw.commitment(seed), now, len(lapsed)))
        record = await (await tx.execute("SELECT * FROM giveaway_draws WHERE id = ?", (cur.lastrowid,))).fetchone()
        await _run_draw(tx, row, record, codes, now, settings(app).claim_hours * 3600)
    row = await get_row(api.db(app), gid)
    await api.publish(app, "giveaway.drawn", {"giveaway": await to_json(app, row), "redraw": True}, session=await _session_of(app, row))
    return row


# --------------------------------------------------------------------------------------------- claims


async def claim(app: web.Application, gid: int, viewer: dict[str, Any], details: dict[str, str]) -> dict[str, Any]:
    """A winner claims their prize: zero-price orders labelled "giveaway" take the held units."""
    now = time.time()
    async with api.db(app).transaction() as tx:
        row = await get_row(tx, gid)
        win = await (await tx.execute("SELECT * FROM giveaway_winners WHERE giveaway_id = ? AND viewer_id = ? AND status != 'redrawn'"
                                      " ORDER BY id DESC", (gid, viewer["id"]))).fetchone()
        if win is None:
            raise Conflict(f"you did not win giveaway {gid}: only its winners can claim")
        if win["status"] == "claimed":
            raise Conflict("you already claimed this prize: it is on its way", details={"order_ids": json.loads(win["order_ids"] or "[]")})
        if now > win["claim_until"]:
            raise Conflict(f"the claim window closed at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(win['claim_until']))}:"
                           " the prize can no longer be claimed")
        practice = bool(row["practice"])
        need = row["items_per_winner"]
        order_ids = []
        rows = await (await tx.execute("SELECT product_id, held, allocated FROM giveaway_products WHERE giveaway_id = ? ORDER BY position",
                                       (gid,))).fetchall()
        for r in rows:
            if need == 0:
                break
            units = min(need, r["allocated"] if practice else r["held"])
            if units <= 0:
                continue
            need -= units
            order_ids.append(await api.record_order(tx, viewer_id=viewer["id"], product_id=r["product_id"], quantity=units,
                                                    event_id=row["event_id"], session_id=row["session_id"], practice=practice,
                                                    label="giveaway"))
            if not practice:
                await tx.execute("UPDATE giveaway_products SET held = held - ? WHERE giveaway_id = ? AND product_id = ?",
                                 (units, gid, r["product_id"]))
        if need:
            raise Conflict(f"the prize's units are no longer held ({need} missing): ask the host")
        await tx.execute("UPDATE giveaway_winners SET status = 'claimed', claimed_at = ?, claim_name = ?, claim_email = ?,"
                         " claim_address = ?, order_ids = ? WHERE id = ?",
                         (now, details["name"], details["email"], details["address"], json.dumps(order_ids), win["id"]))
    session = await _session_of(app, row)
    for oid in order_ids:
        await api.publish(app, "order.created", {"order": await api.order(app, oid)}, session=session)
    await api.publish(app, "giveaway.claimed", {"giveaway_id": gid, "nickname": win["nickname"], "order_ids": order_ids}, session=session)
    return {"claimed": True, "order_ids": order_ids}
