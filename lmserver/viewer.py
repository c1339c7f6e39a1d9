"""The viewer page of a LIVE event and the viewer's APIs (nickname, comment, follow, gift, buy).

The events service renders ``/e/{slug_or_id}``; while the event is live it calls :func:`viewer_page`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import auth
from .templating import render


async def viewer_page(request: web.Request, event: dict[str, Any]) -> web.Response:
    """Render the live viewer page of ``event`` (a dict of the event's columns)."""
    response = web.Response()
    vid = await auth.ensure_viewer(request, response)
    page = await render(request, "viewer/page.html", {"event": event, "viewer_id": vid})
    for morsel in response.cookies.values():
        page.cookies[morsel.key] = morsel
    return page
