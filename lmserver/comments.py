"""Comments of a LIVE event: viewers' comments, staff replies, one pinned comment, hiding and blocking.

- A viewer comments while the event is live (:func:`create_viewer_comment`): the body is stripped and
  length-checked (``live.comment_max_length``), one comment per ``live.comment_rate_seconds`` per viewer
  (429 with the seconds to wait), then screened by the plugins' ``moderate_comment`` hook. A comment a
  plugin objects to, or one from a blocked viewer, is stored hidden with its reason and published as the
  staff-only ``comment.held``; every other comment is published as ``comment.created`` (public).
- Each viewer comment is classified when it is stored (:func:`product_of`): the product of the event's
  shopping bag it names (its title, or a word of its title no other product of the bag has), or the pinned
  product whose card the viewer asked from (``product_id`` in the request). Staff see it as ``product_id``
  (the console's "Product questions" filter); viewers never do.
- Staff (``comments.moderate``) reply (threaded to the root of the comment's thread), pin one comment
  per event (pinning another unpins the first), hide a comment, block and unblock a viewer. Blocking
  hides the viewer's visible comments of the event at once (``comment.hidden`` for each) and holds back
  their later ones; their buy button keeps working unless ``live.blocked_can_buy`` is false.

Viewers' pages get comments only through :func:`public_comments` and ``comment.created`` — hidden ones
never leave the server for them. Bodies are plain text; every page escapes them.
"""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Any

from aiohttp import web

from . import auth, validate
from .appkeys import BUS, CONFIG, DB, LIVE, PM
from .errors import BadRequest, Conflict, NotFound, TooManyRequests
from .live import session_tags
from .openapi import doc
from .templating import as_dict
from .views import json_body

routes = web.RouteTableDef()

#: viewer id → monotonic time of their last accepted comment (per process; rate limiting only)
LAST_COMMENT: web.AppKey[dict[str, float]] = web.AppKey("last_comment", dict)

COMMENT_COLUMNS = ("id, event_id, session_id, viewer_id, user_id, parent_id, nickname, body, hidden, hidden_reason,"
                   " pinned, practice, created_at, product_id")

_WORD = re.compile(r"\w+")
#: words too common in product titles to say which product a comment is about
_COMMON = frozenset("""the and for with from this that your size sizes color colour colours colors pack set new
    edition style model large small medium extra mini plus pro""".split())


def comment_json(row: Any) -> dict[str, Any]:
    d = as_dict(row)
    for key in ("hidden", "pinned", "practice"):
        d[key] = bool(d[key])
    d["staff"] = d.get("user_id") is not None
    return d


def public_json(comment: dict[str, Any]) -> dict[str, Any]:
    """A comment without its moderation reason and staff author (the viewer socket and page keep only PUBLIC_COMMENT)."""
    return {k: v for k, v in comment.items() if k not in ("hidden_reason", "user_id")}


def clean_text(value: Any, what: str, max_length: int) -> str:
    """Strip, drop control characters, check 1..max_length characters."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be text")
    text = "".join(ch for ch in value if ch in "\n" or unicodedata.category(ch)[0] != "C").strip()
    if not text:
        raise BadRequest(f"{what} is empty: write something first")
    if len(text) > max_length:
        raise BadRequest(f"{what} is too long: at most {max_length} characters (this one has {len(text)})")
    return text


def _words(text: str) -> list[str]:
    """Lower-case words, a plural's trailing "s" dropped ("Beanies" and "beanie" match)."""
    out = []
    for w in _WORD.findall(text.casefold()):
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def product_of(text: str, products: list[tuple[int, str]]) -> int | None:
    """The product of ``products`` (id, title) that ``text`` is about: the longest title it contains, else the
    product with a distinctive word of its title (4+ letters, not a common word, in no other title); None if none
    or if distinctive words of several products appear."""
    words = _words(text)
    joined = " " + " ".join(words) + " "
    by_title = [(len(t), pid) for pid, t in products if (tw := _words(t)) and f" {' '.join(tw)} " in joined]
    if by_title:
        return max(by_title)[1]
    owners: dict[str, set[int]] = {}
    for pid, title in products:
        for w in set(_words(title)):
            if len(w) >= 4 and w not in _COMMON and not w.isdigit():
                owners.setdefault(w, set()).add(pid)
    found = {next(iter(ids)) for w in set(words) if len(ids := owners.get(w, set())) == 1}
    return found.pop() if len(found) == 1 else None


async def bag_titles(app: web.Application, event_id: int) -> list[tuple[int, str]]:
    rows = await app[DB].fetchall("SELECT p.id, p.title FROM event_products ep JOIN products p ON p.id = ep.product_id"
                                  " WHERE ep.event_id = ? AND p.archived = 0", (event_id,))
    return [(r["id"], r["title"]) for r in rows]


async def get_comment(app: web.Application, comment_id: int) -> dict[str, Any]:
    row = await app[DB].fetchone(f"SELECT {COMMENT_COLUMNS} FROM comments WHERE id = ?", (comment_id,))
    if row is None:
        raise NotFound(f"there is no comment {comment_id}")
    return comment_json(row)


async def list_comments(app: web.Application, event_id: int, *, session_id: int | None = None, include_hidden: bool,
                        limit: int = 200) -> list[dict[str, Any]]:
    """The event's comments, oldest first (the newest ``limit``); hidden ones only for staff."""
    where, params = ["event_id = ?"], [event_id]
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    if not include_hidden:
        where.append("hidden = 0")
    rows = await app[DB].fetchall(
        f"SELECT {COMMENT_COLUMNS} FROM comments WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [comment_json(r) for r in reversed(rows)]


async def public_comments(app: web.Application, event_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return [public_json(c) for c in await list_comments(app, event_id, include_hidden=False, limit=limit)]


async def pinned_comment(app: web.Application, event_id: int) -> dict[str, Any] | None:
    row = await app[DB].fetchone(f"SELECT {COMMENT_COLUMNS} FROM comments WHERE event_id = ? AND pinned = 1 AND hidden = 0",
                                 (event_id,))
    return comment_json(row) if row else None


async def _insert(app: web.Application, values: dict[str, Any]) -> dict[str, Any]:
    cols = ", ".join(values)
    async with app[DB].transaction() as tx:
        cur = await tx.execute(f"INSERT INTO comments ({cols}) VALUES ({', '.join('?' for _ in values)})", tuple(values.values()))
        cid = cur.lastrowid or 0
    return await get_comment(app, cid)


def check_rate(app: web.Application, viewer_id: str, what: str = "commenting") -> None:
    """429 when this viewer acted less than ``live.comment_rate_seconds`` ago; else note the time."""
    rate = app[CONFIG].live.comment_rate_seconds
    last = app[LAST_COMMENT]
    now = time.monotonic()
    prev = last.get(viewer_id)
    if prev is not None and now - prev < rate:
        wait = rate - (now - prev)
        raise TooManyRequests(f"you are {what} too fast: wait {wait:.1f} s and send it again",
                              headers={"Retry-After": str(max(1, round(wait + 0.49)))})
    last[viewer_id] = now
    if len(last) > 50_000:  # forget viewers who stopped long ago
        for vid, at in list(last.items()):
            if now - at > rate:
                del last[vid]


async def create_viewer_comment(app: web.Application, viewer: dict[str, Any], event_id: int, body: Any,
                                about: int | None = None) -> dict[str, Any]:
    """A viewer's comment on the live event: checked, rate-limited, screened, classified, stored and published.
    ``about``: the product whose pinned card the viewer asked from (it must be in the event's bag)."""
    cfg = app[CONFIG].live
    text = clean_text(body, "the comment", cfg.comment_max_length)
    session = app[LIVE].current
    if session is None or session.event_id != event_id:
        raise Conflict("this event is not live: comments open when the LIVE starts")
    if not viewer.get("nickname"):
        raise BadRequest("choose a nickname first")
    bag = await bag_titles(app, event_id)
    if about is not None and about not in {pid for pid, _ in bag}:
        raise BadRequest(f"product {about} is not in this event's shopping bag: ask about a product of the bag, or leave product_id out")
    check_rate(app, viewer["id"])
    reason: str | None = "blocked viewer" if viewer.get("blocked") else None
    if reason is None:
        for answer in await app[PM].call("moderate_comment", app=app,
                                         comment={"body": text, "nickname": viewer["nickname"], "viewer_id": viewer["id"],
                                                  "event_id": event_id}):
            if answer:
                reason = str(answer)
                break
    comment = await _insert(app, {"event_id": event_id, "session_id": session.id, "viewer_id": viewer["id"],
                                  "nickname": viewer["nickname"], "body": text, "hidden": int(reason is not None),
                                  "hidden_reason": reason, "practice": int(session.practice), "created_at": time.time(),
                                  "product_id": about if about is not None else product_of(text, bag)})
    name, data = ("comment.held", comment) if reason else ("comment.created", public_json(comment))
    await app[BUS].publish(name, {"comment": data}, **session_tags(session))
    return comment


# --------------------------------------------------------------------------------------------- staff actions


def _id(request: web.Request, name: str = "id") -> int:
    return validate.path_int(request, name)


@routes.post("/api/comments/{id}/reply")
@doc("Reply to a comment as staff: shown to every viewer, threaded under the comment", body={"body": "string: the reply text"},
     returns="{comment}", tags=["comments"], permission="comments.moderate")
async def api_reply(request: web.Request) -> web.Response:
    user = await auth.require(request, "comments.moderate")
    app = request.app
    parent = await get_comment(app, _id(request))
    text = clean_text((await json_body(request)).get("body"), "the reply", app[CONFIG].live.comment_max_length)
    live = app[LIVE].tags(parent["event_id"])
    comment = await _insert(app, {"event_id": parent["event_id"], "session_id": live["session_id"] or parent["session_id"],
                                  "user_id": user.id, "parent_id": parent["parent_id"] or parent["id"],
                                  "nickname": app[CONFIG].server.studio_name,  # viewers see the studio, never a staff login name
                                  "body": text, "practice": int(live["practice"] or parent["practice"]), "created_at": time.time()})
    await app[BUS].publish("comment.created", {"comment": public_json(comment)}, event_id=comment["event_id"],
                           session_id=comment["session_id"], practice=comment["practice"])
    return web.json_response({"comment": comment}, status=201)


@routes.post("/api/comments/{id}/pin")
@doc("Pin a comment at the top of every console and viewer page (unpins the event's previous one)",
     returns="{comment}", tags=["comments"], permission="comments.moderate")
async def api_pin(request: web.Request) -> web.Response:
    await auth.require(request, "comments.moderate")
    app = request.app
    comment = await get_comment(app, _id(request))
    if comment["hidden"]:
        raise Conflict("a hidden comment cannot be pinned")
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE comments SET pinned = 0 WHERE event_id IS ? AND pinned = 1", (comment["event_id"],))
        await tx.execute("UPDATE comments SET pinned = 1 WHERE id = ?", (comment["id"],))
    comment["pinned"] = True
    await app[BUS].publish("comment.pinned", {"comment": public_json(comment)}, **app[LIVE].tags(comment["event_id"]))
    return web.json_response({"comment": comment})


@routes.delete("/api/comments/{id}/pin")
@doc("Unpin a comment", returns="{comment}", tags=["comments"], permission="comments.moderate")
async def api_unpin(request: web.Request) -> web.Response:
    await auth.require(request, "comments.moderate")
    app = request.app
    comment = await get_comment(app, _id(request))
    await app[DB].execute("UPDATE comments SET pinned = 0 WHERE id = ?", (comment["id"],))
    comment["pinned"] = False
    await app[BUS].publish("comment.unpinned", {"comment_id": comment["id"]}, **app[LIVE].tags(comment["event_id"]))
    return web.json_response({"comment": comment})


async def hide_comment(app: web.Application, comment: dict[str, Any], reason: str) -> None:
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE comments SET hidden = 1, pinned = 0, hidden_reason = ? WHERE id = ?", (reason, comment["id"]))
    await app[BUS].publish("comment.hidden", {"comment_id": comment["id"]}, **app[LIVE].tags(comment["event_id"]))


@routes.post("/api/comments/{id}/hide")
@doc("Hide a comment from viewers (staff still see it, greyed)", returns="{comment}", tags=["comments"],
     permission="comments.moderate")
async def api_hide(request: web.Request) -> web.Response:
    user = await auth.require(request, "comments.moderate")
    app = request.app
    comment = await get_comment(app, _id(request))
    if not comment["hidden"]:
        await hide_comment(app, comment, f"hidden by {user.name}")
    return web.json_response({"comment": await get_comment(app, comment["id"])})


async def _viewer_row(app: web.Application, viewer_id: str) -> Any:
    row = None if validate.has_surrogate(viewer_id) else await app[DB].fetchone(
        "SELECT id, nickname, blocked FROM viewers WHERE id = ?", (viewer_id,))
    if row is None:
        raise NotFound(f"there is no viewer {viewer_id!r}")
    return row


@routes.post("/api/viewers/{viewer_id}/block")
@doc("Block a viewer: their comments stop appearing (their visible ones in the event are hidden); buying still works "
     "unless live.blocked_can_buy is false", body={"event_id": "integer: the event whose comments to hide now (optional)"},
     returns="{viewer: {id, nickname, blocked}, hidden: [comment ids]}", tags=["comments"], permission="comments.moderate")
async def api_block(request: web.Request) -> web.Response:
    user = await auth.require(request, "comments.moderate")
    app = request.app
    viewer = await _viewer_row(app, request.match_info["viewer_id"])
    body = await json_body(request) if request.can_read_body else {}
    await app[DB].execute("UPDATE viewers SET blocked = 1 WHERE id = ?", (viewer["id"],))
    where, params = ["viewer_id = ?", "hidden = 0"], [viewer["id"]]
    event_id = validate.integer(body, "event_id", required=False)
    if event_id is not None:
        where.append("event_id = ?")
        params.append(event_id)
    rows = await app[DB].fetchall(f"SELECT {COMMENT_COLUMNS} FROM comments WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT 500", params)
    for row in rows:
        await hide_comment(app, comment_json(row), f"viewer blocked by {user.name}")
    await app[BUS].publish("viewer.blocked", {"viewer_id": viewer["id"], "nickname": viewer["nickname"]}, **app[LIVE].tags())
    return web.json_response({"viewer": {"id": viewer["id"], "nickname": viewer["nickname"], "blocked": True},
                              "hidden": [r["id"] for r in rows]})


@routes.delete("/api/viewers/{viewer_id}/block")
@doc("Unblock a viewer (their hidden comments stay hidden)", returns="{viewer: {id, nickname, blocked}}", tags=["comments"],
     permission="comments.moderate")
async def api_unblock(request: web.Request) -> web.Response:
    await auth.require(request, "comments.moderate")
    app = request.app
    viewer = await _viewer_row(app, request.match_info["viewer_id"])
    await app[DB].execute("UPDATE viewers SET blocked = 0 WHERE id = ?", (viewer["id"],))
    await app[BUS].publish("viewer.unblocked", {"viewer_id": viewer["id"], "nickname": viewer["nickname"]}, **app[LIVE].tags())
    return web.json_response({"viewer": {"id": viewer["id"], "nickname": viewer["nickname"], "blocked": False}})


@routes.get("/api/events/{id}/comments")
@doc("An event's comments for staff, oldest first, hidden ones included (with hidden_reason)",
     query={"session": "only this session", "limit": "1–500, default 200"}, returns="{comments: [...]}", tags=["comments"],
     permission="console.view")
async def api_comments(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    session = validate.query_int(request, "session")
    limit = validate.query_int(request, "limit", default=200, min=1, max=500, clamp=True)
    return web.json_response({"comments": await list_comments(request.app, _id(request), session_id=session,
                                                              include_hidden=True, limit=limit)})
