"""Plugins' console panels and viewer widgets, rendered into the console and the viewer page."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from .appkeys import PM
from .templating import BASE_CONTEXT

log = logging.getLogger(__name__)


async def render_panels(request: web.Request, hook: str, event: dict[str, Any], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Plugins' console panels / viewer widgets, sorted by order, each rendered with the page's context plus its own.

    A panel whose template fails is logged and left out: a plugin never breaks the page.
    """
    app = request.app
    env = aiohttp_jinja2.get_env(app)
    base = {**await app[BASE_CONTEXT](request), "event": event, **extra}
    out = []
    for panel in sorted(await app[PM].call_lists(hook, request=request, event=event), key=lambda p: p.order):
        try:
            html = env.get_template(panel.template).render({**base, **panel.context})
        except Exception:
            log.exception("panel %s (%s) could not be rendered; it is left out", panel.id, panel.template)
            continue
        out.append({"id": panel.id, "title": panel.title, "html": Markup(html)})
    return out
