"""Named actions: what a plugin offers to do on request, invoked by name by anyone else.

A plugin declares its actions with the ``register_actions`` hook, an :class:`~lmserver.plugins.types.Action`
each: ``name`` (``"<plugin>.<what>"``, e.g. ``"poll.start"``), ``label`` ("Start a poll"), the
staff ``permission`` it needs and ``run(app, params, user)`` (may be a coroutine) that does it and answers a
dict (``{"text": "Poll 3 started"}``: ``text`` is what the console shows). Another plugin never imports
the one that offers an action: it asks :func:`lmserver.api.has_action` and names it.

- ``POST /api/actions/{name}`` (body ``{"params": {...}}``) runs one for a staff member who holds its
  permission (403 naming it otherwise) and answers ``{"action": name, "result": ...}``; an unknown name is
  404 ("no installed plugin offers it"). What ``run`` raises is answered like any API error (a 409 with
  its reason: "no poll is ready for this event: set one up in the Polls panel").
- A prompter finding offers one as ``{"label": ..., "action": "<name>", "params": {...}}``; the console's
  button calls the route above. The core drops such an action from a finding when nothing declares the
  name (its plugin is not installed, or disabled), so a rule never shows a button that cannot work.

Declaring an action twice, a malformed name or an undeclared permission is a plugin's build error:
logged, and that action is left out (build policy).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from . import auth, validate
from .appkeys import PM
from .errors import BadRequest, NotFound
from .openapi import doc
from .plugins.manager import await_me_maybe
from .plugins.types import Action

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ACTIONS: web.AppKey[dict[str, Action]] = web.AppKey("actions", dict)
routes = web.RouteTableDef()


def collect(app: web.Application) -> dict[str, Action]:
    """Ask the plugins for their actions (once, when the app is built); bad declarations are logged and skipped."""
    registry = app[auth.PERMISSIONS]
    out: dict[str, Action] = {}
    for plugin, action in app[PM].call_lists_sync("register_actions"):
        problem = None
        if not isinstance(action, Action) or not NAME_RE.match(str(action.name)) or not callable(action.run):
            problem = f"an action is Action(name='<plugin>.<what>', label, permission, run), got {action!r}"
        elif action.name in out:
            problem = f"action {action.name!r} is declared twice"
        elif action.permission not in registry:
            problem = f"action {action.name!r} needs the undeclared permission {action.permission!r}"
        if problem:
            log.error("plugin %s: %s; the action is left out", plugin, problem)
            continue
        out[action.name] = action
    return out


def find(app: web.Application, name: str) -> Action | None:
    return app.get(ACTIONS, {}).get(name)


async def run(app: web.Application, name: str, params: dict[str, Any], user: auth.User) -> dict[str, Any]:
    """Run the action ``name`` for ``user`` (who must hold its permission: checked by the caller)."""
    action = find(app, name)
    if action is None:
        raise NotFound(f"no action {name!r}: no installed plugin offers it")
    result = await await_me_maybe(action.run(app, params, user))
    return result if isinstance(result, dict) else {"text": f"{action.label}: done"}


@routes.post("/api/actions/{name}")
@doc("Run a plugin's named action (a prompter finding's one-click fix, e.g. poll.start): 404 when no installed"
     " plugin offers it, 403 without the action's own permission",
     body={"params": "object, optional: the action's parameters (what the finding passed)"},
     returns="{action, result: {text, ...}}", tags=["console"], permission="console.view")
async def api_run(request: web.Request) -> web.Response:
    user = await auth.require(request, "console.view")
    name = request.match_info["name"]
    action = find(request.app, name)
    if action is None:
        raise NotFound(f"no action {name!r}: no installed plugin offers it (see GET /-/plugins)")
    await auth.require(request, action.permission)
    body: dict[str, Any] = {}
    if request.can_read_body:
        from .views import json_body

        body = await json_body(request)
    validate.reject_unknown(body, ("params",), "action request")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest("params must be an object: the action's parameters, e.g. {\"event_id\": 3}")
    return web.json_response({"action": name, "result": await run(request.app, name, params, user)})
