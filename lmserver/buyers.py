"""Buyer details: a viewer's name, e-mail and shipping address, asked on their first purchase.

The viewer page (``web/static/js/buyer.js``) asks for them before a viewer's first order when
``live.ask_buyer_details`` is on, remembers them for that viewer (``buyer_details``, one row per viewer) and
lets them edit them; later purchases are one tap. Each order copies the details as they were when it was placed
(:func:`lmserver.orders.insert_order`), so a later edit does not change what was shipped.

Only the viewer themselves reads or writes their details here (``/api/viewer/buyer``, the signed viewer cookie);
staff see them on the Orders pages (:mod:`lmserver.orderpages`). They are never on a bus event, the viewer
WebSocket or a public route.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from . import validate
from .appkeys import CONFIG, DB
from .errors import BadRequest
from .openapi import doc
from .viewer import current_viewer

routes = web.RouteTableDef()

NAME_MAX, EMAIL_MAX, ADDRESS_MAX, ADDRESS_LINES = 100, 254, 500, 8
#: one @, something before it, a dot in the domain, no spaces (what a shop can send a confirmation to)
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def check(data: dict[str, Any]) -> dict[str, str]:
    """The details of a request body, checked: 400 naming the field and the fix."""
    validate.reject_unknown(data, {"name", "email", "address"}, "the buyer details")
    name = " ".join(validate.text(data, "name", max_len=NAME_MAX, min_len=2, required=True).split())
    email = validate.text(data, "email", max_len=EMAIL_MAX, required=True)
    if not _EMAIL.fullmatch(email):
        raise BadRequest("'email' must be an e-mail address like ann@example.com")
    address = validate.text(data, "address", max_len=ADDRESS_MAX, min_len=5, required=True)
    lines = [" ".join(line.split()) for line in address.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if len(lines) > ADDRESS_LINES:
        raise BadRequest(f"'address' has {len(lines)} lines: write it in at most {ADDRESS_LINES}")
    if len(lines) < 2:
        raise BadRequest("'address' needs at least two lines: the street and the town (with its postcode and country)")
    return {"name": name, "email": email.lower() if email.isascii() else email, "address": "\n".join(lines)}


async def details(app: web.Application, viewer_id: str) -> dict[str, Any] | None:
    row = await app[DB].fetchone("SELECT name, email, address, updated_at FROM buyer_details WHERE viewer_id = ?", (viewer_id,))
    return dict(row) if row is not None else None


_RETURNS = "{buyer: {name, email, address, updated_at} or null, ask: live.ask_buyer_details}"


@routes.get("/api/viewer/buyer")
@doc("This viewer's own buyer details (null before their first purchase) and whether the page asks for them",
     returns=_RETURNS, tags=["viewer"])
async def api_buyer(request: web.Request) -> web.Response:
    viewer = await current_viewer(request)
    return web.json_response({"buyer": await details(request.app, viewer["id"]), "ask": request.app[CONFIG].live.ask_buyer_details},
                             headers={"Cache-Control": "no-store"})


@routes.put("/api/viewer/buyer")
@doc("Save this viewer's buyer details (used for their next orders; orders already placed keep theirs)",
     body={"name": f"string: 2–{NAME_MAX} characters", "email": "string: an e-mail address",
           "address": f"string: the shipping address, 2–{ADDRESS_LINES} lines, at most {ADDRESS_MAX} characters"},
     returns=_RETURNS, tags=["viewer"])
async def api_save_buyer(request: web.Request) -> web.Response:
    viewer = await current_viewer(request)
    d = check(await validate.json_body(request))
    async with request.app[DB].transaction() as tx:
        await tx.execute("INSERT INTO buyer_details (viewer_id, name, email, address, updated_at) VALUES (?, ?, ?, ?, ?)"
                         " ON CONFLICT (viewer_id) DO UPDATE SET name = excluded.name, email = excluded.email,"
                         " address = excluded.address, updated_at = excluded.updated_at",
                         (viewer["id"], d["name"], d["email"], d["address"], time.time()))
    return web.json_response({"buyer": await details(request.app, viewer["id"]), "ask": request.app[CONFIG].live.ask_buyer_details})
