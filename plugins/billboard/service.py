"""What a billboard does: database state first, then the compositor layer, then the bus event.

Every change follows the same three steps, so the database is always the truth: consoles read it,
and a session resumed after a restart shows again what it says is shown (:func:`restore`).

Drawing (Pillow) and converting a layer (the compositor's RGBA → YUV) run in a worker thread: they
never stall the event loop that serves viewers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web
from PIL import Image

from lmserver import api
from lmserver.api import Activity, BadRequest, Compositor, Conflict, LiveSession, NotFound, upright

from . import render
from .store import NAME, Settings, as_json, now

log = logging.getLogger(__name__)

SETTINGS: web.AppKey[Settings] = web.AppKey("billboard.settings", Settings)
#: billboards are drawn in the lowest public band: below product cards, countdowns and alerts
LAYER_Z = api.Z_BANNER
MIN_SIZE = 16


def layer_name(billboard_id: int) -> str:
    return f"{NAME}:{billboard_id}"


def settings(app: web.Application) -> Settings:
    return app[SETTINGS]


def program_size(app: web.Application) -> tuple[int, int]:
    return api.program_size(app)


def compositor(app: web.Application) -> Compositor | None:
    """The program's compositor, or None when the media core is not set up (e.g. some tests)."""
    return api.compositor(app)


# --------------------------------------------------------------------------------------------- drawing


def draw(row: Mapping[str, Any], data_dir: Path) -> Image.Image:
    """The billboard as an RGBA image of exactly its saved width × height (blocking: run in a thread)."""
    size = (row["width"], row["height"])
    if row["kind"] == "image":
        with Image.open(Path(data_dir) / "uploads" / row["image"]) as img:
            return upright(img).convert("RGBA").resize(size, Image.Resampling.LANCZOS)
    # Text: draw at the font size that gives this width, so enlarged text stays sharp.
    natural = natural_size(row)
    scale = size[0] / natural[0]
    font = min(max(round(row["font_size"] * scale), render.MIN_FONT_SIZE), render.MAX_FONT_SIZE)
    img = render.render_text_billboard(row["template"], row["text"], _colours(row), font)
    return img if img.size == size else img.resize(size, Image.Resampling.LANCZOS)


def natural_size(row: Mapping[str, Any]) -> tuple[int, int]:
    """The size of a text billboard drawn at its own font size."""
    return render.render_text_billboard(row["template"], row["text"], _colours(row), row["font_size"]).size


def _colours(row: Mapping[str, Any]) -> dict[str, str]:
    return {"text": row["text_colour"], "background": row["background_colour"]}


async def _set_layer(app: web.Application, row: Mapping[str, Any]) -> None:
    comp = compositor(app)
    if comp is None:
        return
    image = await asyncio.to_thread(draw, row, api.data_dir(app))
    await asyncio.to_thread(comp.set_layer, layer_name(row["id"]), image, row["x"], row["y"], row["width"],
                            row["height"], 1.0, LAYER_Z)


async def _update_layer(app: web.Application, row: Mapping[str, Any], *, moved_only: bool) -> None:
    """A shown billboard changed: move its layer (cheap), or draw and set it again."""
    comp = compositor(app)
    if moved_only and comp is not None:
        try:
            comp.move_layer(layer_name(row["id"]), row["x"], row["y"])
            return
        except KeyError:  # not on the program (e.g. the media core restarted): set it again
            pass
    await _set_layer(app, row)


# --------------------------------------------------------------------------------------------- reading


async def get(app: web.Application, billboard_id: int) -> Any:
    row = await api.db(app).fetchone("SELECT * FROM billboards WHERE id = ?", (billboard_id,))
    if row is None:
        raise NotFound(f"no billboard {billboard_id}: it was deleted or never existed")
    return row


async def to_json(app: web.Application, row: Mapping[str, Any]) -> dict[str, Any]:
    events = await api.db(app).fetchall("SELECT event_id FROM billboard_events WHERE billboard_id = ? ORDER BY event_id", (row["id"],))
    return as_json(row, session_id=_session_id(app), event_ids=[r["event_id"] for r in events])


async def list_json(app: web.Application, event_id: int | None = None) -> list[dict[str, Any]]:
    """Every billboard, the ones attached to ``event_id`` first, newest first within each group."""
    rows = await api.db(app).fetchall(
        "SELECT b.*, (SELECT group_concat(event_id) FROM billboard_events WHERE billboard_id = b.id) AS events,"
        " EXISTS (SELECT 1 FROM billboard_events WHERE billboard_id = b.id AND event_id = ?) AS attached"
        " FROM billboards b ORDER BY attached DESC, b.id DESC", (event_id,))
    session_id = _session_id(app)
    return [as_json(r, session_id=session_id, event_ids=sorted(int(e) for e in (r["events"] or "").split(",") if e))
            for r in rows]


async def attached_count(app: web.Application, event_id: int) -> int:
    """How many billboards are attached to the event."""
    return int(await api.db(app).fetchval("SELECT COUNT(*) FROM billboard_events WHERE event_id = ?", (event_id,)) or 0)


def _session_id(app: web.Application) -> int | None:
    session = api.current_session(app)
    return session.id if session else None


# --------------------------------------------------------------------------------------------- changing


async def create(app: web.Application, fields: dict[str, Any], event_id: int | None) -> Any:
    """Insert a billboard (``fields``: the checked columns, without position); place it top-left."""
    pw, ph = program_size(app)
    if fields["kind"] == "text":
        natural = await asyncio.to_thread(natural_size, fields)
        width, height = render.fit(natural, (pw - 80, ph - 80))
    else:
        width, height = render.fit(fields.pop("image_size"), (pw // 3, ph // 3))
    row = {**fields, "x": 40, "y": 40, "width": width, "height": height, "created_at": now(), "updated_at": now()}
    async with api.db(app).transaction() as tx:
        if event_id is not None:
            await _check_event(tx, event_id)
        cols = ", ".join(row)
        cur = await tx.execute(f"INSERT INTO billboards ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        billboard_id = cur.lastrowid
        if event_id is not None:
            await tx.execute("INSERT INTO billboard_events (billboard_id, event_id) VALUES (?, ?)", (billboard_id, event_id))
    created = await get(app, billboard_id)
    await publish(app, "billboard.changed", {"billboard_id": billboard_id, "action": "created", "billboard": await to_json(app, created)})
    return created


async def update(app: web.Application, billboard_id: int, content: dict[str, Any], place: dict[str, int]) -> Any:
    """Change a billboard's content (text, colours, ...) and/or its place (x, y, width, height).

    New text keeps the billboard's scale: its size follows the text. A shown billboard changes in the
    program at once.
    """
    old = await get(app, billboard_id)
    if content and old["kind"] == "image" and set(content) - {"name"}:
        raise BadRequest("an image billboard has no text, colours or font size: upload another image instead")
    new = {**dict(old), **content, **place}
    if old["kind"] == "text" and set(content) - {"name"} and not {"width", "height"} & set(place):
        before, after = await asyncio.to_thread(lambda: (natural_size(old), natural_size(new)))
        scale = old["width"] / before[0]
        new["width"], new["height"] = max(MIN_SIZE, round(after[0] * scale)), max(MIN_SIZE, round(after[1] * scale))
    check_place(app, new)
    changes = {k: new[k] for k in new if k in old.keys() and new[k] != old[k]}
    if not changes:
        return old
    changes["updated_at"] = now()
    # Column names come from our own field lists (views.CONTENT_FIELDS / PLACE_FIELDS), never from the request.
    async with api.db(app).transaction() as tx:
        await tx.execute(f"UPDATE billboards SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                         (*changes.values(), billboard_id))
    row = await get(app, billboard_id)
    if row["shown_session_id"] is not None and row["shown_session_id"] == _session_id(app):
        await _update_layer(app, row, moved_only=set(changes) <= {"x", "y", "updated_at"})
    if set(changes) & {"x", "y", "width", "height"}:
        await publish(app, "billboard.moved", {k: row[k] for k in ("x", "y", "width", "height")} | {"billboard_id": billboard_id})
    if set(changes) - {"x", "y", "width", "height", "updated_at"}:
        await publish(app, "billboard.changed", {"billboard_id": billboard_id, "action": "updated", "billboard": await to_json(app, row)})
    return row


def check_place(app: web.Application, row: Mapping[str, Any]) -> None:
    """Position and size must keep at least part of the billboard on the program."""
    pw, ph = program_size(app)
    for key in ("x", "y", "width", "height"):
        if isinstance(row[key], bool) or not isinstance(row[key], int):
            raise BadRequest(f"{key} must be a whole number of program pixels, got {row[key]!r}")
    if not (MIN_SIZE <= row["width"] <= pw * 2 and MIN_SIZE <= row["height"] <= ph * 2):
        raise BadRequest(f"the size must be from {MIN_SIZE}×{MIN_SIZE} to {pw * 2}×{ph * 2} pixels, got {row['width']}×{row['height']}")
    if not (-row["width"] < row["x"] < pw and -row["height"] < row["y"] < ph):
        raise BadRequest(f"the billboard would be off the program ({pw}×{ph}): x from {1 - row['width']} to {pw - 1}, "
                         f"y from {1 - row['height']} to {ph - 1}")


async def delete(app: web.Application, billboard_id: int) -> None:
    row = await get(app, billboard_id)
    if row["shown_session_id"] is not None:
        await hide(app, billboard_id, "the billboard was deleted")
    async with api.db(app).transaction() as tx:
        await tx.execute("DELETE FROM billboards WHERE id = ?", (billboard_id,))
    if row["image"]:
        (api.uploads_dir(app) / row["image"]).unlink(missing_ok=True)
    await publish(app, "billboard.changed", {"billboard_id": billboard_id, "action": "deleted", "billboard": None})


async def attach(app: web.Application, billboard_id: int, event_id: int, attached: bool) -> Any:
    row = await get(app, billboard_id)
    async with api.db(app).transaction() as tx:
        if attached:
            await _check_event(tx, event_id)
            await tx.execute("INSERT OR IGNORE INTO billboard_events (billboard_id, event_id) VALUES (?, ?)", (billboard_id, event_id))
        else:
            await tx.execute("DELETE FROM billboard_events WHERE billboard_id = ? AND event_id = ?", (billboard_id, event_id))
    await publish(app, "billboard.changed", {"billboard_id": billboard_id, "action": "attached" if attached else "detached",
                                             "billboard": await to_json(app, row)})
    return row


async def _check_event(tx: Any, event_id: int) -> None:
    await api.require_event(tx, event_id)


# --------------------------------------------------------------------------------------------- display


async def show(app: web.Application, billboard_id: int) -> Any:
    """Display a billboard in the running session's program; 409 when not live or too many shown."""
    session = api.current_session(app)
    if session is None:
        raise Conflict("nothing is live: go LIVE or start a practice session, then display the billboard")
    row = await get(app, billboard_id)
    if row["shown_session_id"] == session.id:
        return row
    limit = settings(app).max_shown
    async with api.db(app).transaction() as tx:
        cur = await tx.execute("SELECT COUNT(*) FROM billboards WHERE shown_session_id = ?", (session.id,))
        (shown,) = await cur.fetchone()
        if shown >= limit:
            raise Conflict(f"{shown} billboards are already shown, the most at once is {limit} "
                           f"(plugins.{NAME}.max_shown): hide one first")
        cur = await tx.execute("UPDATE billboards SET shown_session_id = ? WHERE id = ?", (session.id, billboard_id))
        if cur.rowcount == 0:
            raise NotFound(f"no billboard {billboard_id}: it was deleted or never existed")
    row = await get(app, billboard_id)
    await _set_layer(app, row)
    await _publish_shown(app, row, session, resumed=False)
    return row


async def hide(app: web.Application, billboard_id: int, reason: str = "hidden by staff") -> Any:
    row = await get(app, billboard_id)
    async with api.db(app).transaction() as tx:
        cur = await tx.execute("UPDATE billboards SET shown_session_id = NULL WHERE id = ? AND shown_session_id IS NOT NULL",
                               (billboard_id,))
        changed = cur.rowcount
    comp = compositor(app)
    if comp is not None:
        comp.remove_layer(layer_name(billboard_id))
    if changed:
        await publish(app, "billboard.hidden", {"billboard_id": billboard_id, "name": row["name"], "reason": reason})
    return await get(app, billboard_id)


async def restore(app: web.Application, session: LiveSession) -> None:
    """A session started or resumed: show again what the database says is shown in it.

    Billboards left "shown" by another (interrupted, not resumed) session are hidden.
    """
    async with api.db(app).transaction() as tx:
        await tx.execute("UPDATE billboards SET shown_session_id = NULL WHERE shown_session_id IS NOT NULL AND shown_session_id != ?",
                         (session.id,))
    for row in await api.db(app).fetchall("SELECT * FROM billboards WHERE shown_session_id = ? ORDER BY id", (session.id,)):
        try:
            await _set_layer(app, row)
        except Exception:  # a missing image file must not keep the others off the program
            log.exception("billboard %s could not be shown again", row["id"])
            continue
        await _publish_shown(app, row, session, resumed=True)


async def stream_ended(app: web.Application, ended: Activity) -> None:
    """A ``stream.ended`` record: that session's billboards are hidden (the core already cleared its layers)."""
    if ended.session_id is None:
        return
    async with api.db(app).transaction() as tx:
        cur = await tx.execute("UPDATE billboards SET shown_session_id = NULL WHERE shown_session_id = ? RETURNING id, name",
                               (ended.session_id,))
        hidden = list(await cur.fetchall())
    for row in hidden:
        await api.publish(app, "billboard.hidden", {"billboard_id": row["id"], "name": row["name"], "reason": "the stream ended"},
                          session=ended)


async def _publish_shown(app: web.Application, row: Mapping[str, Any], session: LiveSession, *, resumed: bool) -> None:
    await publish(app, "billboard.shown", {"billboard_id": row["id"], "name": row["name"], "resumed": resumed,
                                           **{k: row[k] for k in ("x", "y", "width", "height")}}, session=session)


async def publish(app: web.Application, name: str, data: dict[str, Any], session: LiveSession | bool = True) -> None:
    """Publish on the bus, tagged with ``session`` (the running one by default): api.publish tags it the core's one way."""
    await api.publish(app, name, data, session=session)
