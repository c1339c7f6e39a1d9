"""Help pages shipped with the server (templates under ``web/templates/help/``), linked from the home page."""

from __future__ import annotations

from aiohttp import web

from . import auth
from .errors import NotFound
from .templating import render

routes = web.RouteTableDef()

#: slug → title, in the order the home page lists them
TOPICS: dict[str, str] = {
    "product-selection": "Choosing the products for a LIVE",
    "structuring-a-show": "Structuring a show",
    "sales-pitches": "Sales pitches that work live",
    "policy-violations": "Avoiding policy violations",
    "webhooks": "Webhooks: receiving the studio's events",
}


@routes.get("/help")
async def help_index(request: web.Request) -> web.Response:
    await auth.require(request)
    return await render(request, "help/index.html", {"topics": TOPICS})


@routes.get("/help/{topic}")
async def help_topic(request: web.Request) -> web.Response:
    await auth.require(request)
    topic = request.match_info["topic"]
    if topic not in TOPICS:
        raise NotFound(f"no help page named {topic!r}: see /help")
    return await render(request, f"help/{topic}.html", {"topics": TOPICS, "topic": topic, "title": TOPICS[topic]})
