"""The prompter: real-time suggestions, LIVE diagnosis and content-quality checks that act.

Built only on :mod:`lmserver.api`. Every rule is a transparent local rule that says what it saw
(``trigger``: metric, value, threshold, window) and offers the fix as one click (an action that calls
the console's own API from the staff member's browser, with their permissions). The core stores and
draws the findings (Suggestions and Content quality tabs, the health line); every rule lives here.

- ``settings.py``: ``[plugins.prompter]``, every threshold with its default; ``disabled_rules``;
- ``content.py``: content quality (muted / prohibited words, links, e-mails, phones, flood, claims);
- ``engine.py``: suggestions and LIVE diagnosis over windows of figures, with cooldowns, activity
  gates, update in place and self-resolve.

Content checks run in ``moderate_comment`` (a held comment never reaches viewers; staff see it greyed
with the reason) and on bus events (staff replies, the bag's product titles); window rules run in
``tick`` (once a second while live) over what the bus told us (viewers, comments, orders, the pinned
product, ``stream.health``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from lmserver import api
from lmserver.api import Activity, LiveSession, hookimpl

from .content import Screen
from .engine import Engine, Live
from .settings import NAME, Settings

__version__ = "1.0"
PLUGIN_NAME = NAME
log = logging.getLogger(__name__)


class State:
    """The plugin's state in one app: its settings, the comment screen and the running session's view."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.screen = Screen(settings)
        self.live: Live | None = None
        self.engine = Engine(settings)
        #: (viewer id, body) -> the rule that held it, for the comment.held that follows (bounded)
        self.held: OrderedDict[tuple[str, str], str] = OrderedDict()
        #: product id -> the claim already reported (a title is re-checked when it changes)
        self.claims: dict[int, str] = {}


STATE: web.AppKey[State] = web.AppKey("prompter_state", State)


def state(app: web.Application) -> State | None:
    """None when the settings were refused at build time (logged): then the plugin does nothing."""
    return app.get(STATE)


@hookimpl
def register_routes(app: web.Application) -> list[web.RouteDef]:
    # Check the settings once, when the app is built: a bad value is refused with its full key name.
    app[STATE] = State(Settings.from_table(api.plugin_config(app, NAME)))
    return []


# --------------------------------------------------------------------------------------------- content quality


@hookimpl
def moderate_comment(app: web.Application, comment: dict[str, Any]) -> str | None:
    st = state(app)
    if st is None:
        return None
    found = st.screen.check(comment["body"], comment.get("viewer_id"))
    if found is None:
        return None
    rule, reason = found
    st.held[(str(comment.get("viewer_id")), comment["body"])] = rule
    while len(st.held) > 1000:
        st.held.popitem(last=False)
    return reason


def _held_violation(st: State, event: Activity) -> dict[str, Any] | None:
    c = event.data["comment"]
    rule = st.held.pop((str(c.get("viewer_id")), c.get("body")), None)
    if rule is None:
        return None  # held by someone else (a blocked viewer, another plugin)
    actions = []
    if c.get("viewer_id") and event.event_id is not None:
        actions.append({"label": f"Block {c['nickname'][:20]}", "method": "POST",
                        "url": f"/api/viewers/{c['viewer_id']}/block", "body": {"event_id": event.event_id},
                        "confirm": f"Block {c['nickname']}? Their comments stop appearing."})
    # one finding per flooding viewer, updated in place with their latest comment; one per other held comment
    key = f"flood:{c.get('viewer_id')}" if rule == "flood" else f"held:{c['id']}"
    return {"key": key, "kind": "violation", "level": "critical" if rule == "prohibited_words" else "warning",
            "text": f"Held from viewers: {c['nickname']}: “{c['body'][:120]}” ({c.get('hidden_reason')})",
            "trigger": {"metric": rule, "value": c.get("hidden_reason"), "threshold": None, "window": None},
            "subject": {"comment_id": c["id"], "viewer_id": c.get("viewer_id")}, "actions": actions}


def _staff_violation(st: State, c: dict[str, Any]) -> dict[str, Any] | None:
    word = st.screen.staff_word(c.get("body", ""))
    if word is None:
        return None
    return {"key": f"staff:{c['id']}", "kind": "violation", "level": "warning",
            "text": f"Your reply says “{word}”, a prohibited word: “{c['body'][:120]}”",
            "trigger": {"metric": "staff_prohibited", "value": word, "threshold": None, "window": None},
            "subject": {"comment_id": c["id"]},
            "actions": [{"label": "Hide the reply", "method": "POST", "url": f"/api/comments/{c['id']}/hide", "body": {}}]}


async def _check_bag(app: web.Application, st: State, event_id: int | None) -> list[dict[str, Any]]:
    """Refresh the bag (for the window rules) and report products whose title makes a prohibited claim."""
    if event_id is None:
        return []
    bag = (await api.event_bag(app, event_id))["products"]
    if st.live is not None and st.live.event_id == event_id:
        st.live.bag = bag
    out = []
    for p in bag:
        claim = st.screen.claim(p.get("title") or "")
        if claim == st.claims.get(p["id"]):
            continue
        if claim is None:
            st.claims.pop(p["id"], None)
            out.append({"key": f"claim:{p['id']}", "resolved": True})
            continue
        st.claims[p["id"]] = claim
        out.append({"key": f"claim:{p['id']}", "kind": "violation", "level": "warning",
                    "text": f"“{p['title']}” claims “{claim}”: edit the title before you show it",
                    "trigger": {"metric": "product_claims", "value": claim, "threshold": None, "window": None},
                    "subject": {"product_id": p["id"]},
                    "actions": [{"label": "Edit the product", "href": f"/catalog?product={p['id']}"}]})
    return out


# --------------------------------------------------------------------------------------------- bus events


def _live_for(app: web.Application, st: State, session_id: int | None) -> Live | None:
    live = st.live
    return live if live is not None and live.session_id == session_id else None


@hookimpl
def prompter_rules(app: web.Application) -> list[Any]:
    return [on_event]


async def on_event(app: web.Application, event: Activity) -> list[dict[str, Any]] | None:
    """The prompter rule run on every bus event: content quality now, and what the window rules count."""
    st, name, now = state(app), event.name, time.time()
    if st is None:
        return None
    s = st.settings
    if name == "comment.held":
        return [f] if (f := _held_violation(st, event)) else None
    if name in ("bag.changed", "product.updated", "product.created"):
        if st.live is not None and api.is_live(app):  # the running session's bag: refresh it, check the titles
            for f in await _check_bag(app, st, st.live.event_id):
                await _apply(app, f)
        return None
    live = _live_for(app, st, event.session_id)
    if name == "comment.created":
        c = event.data["comment"]
        if c.get("staff"):
            if live is not None and c.get("parent_id"):
                live.questions.pop(c["parent_id"], None)  # answered: its finding resolves at the next tick
            return [f] if (f := _staff_violation(st, c)) else None
        if live is not None:
            live.comments.append(now)
            if "?" in c.get("body", "") and not c.get("hidden"):
                live.questions[c["id"]] = (now, c.get("nickname") or "A viewer", c["body"])
                while len(live.questions) > 200:
                    live.questions.pop(next(iter(live.questions)))
        return None
    if live is None:
        return None
    if name == "comment.hidden":
        live.questions.pop(event.data.get("comment_id"), None)
    elif name in ("viewer.joined", "viewer.left"):
        if isinstance(event.data.get("viewers"), int):
            live.viewers = event.data["viewers"]
        if name == "viewer.joined":
            live.joins.append(now)
    elif name == "stream.health":
        live.health.append((now, dict(event.data)))
        if isinstance(event.data.get("viewers"), int):
            live.viewers = event.data["viewers"]
    elif name == "order.created":
        live.orders.append((now, event.data["order"].get("product_id")))
    elif name == "product.pinned":
        live.pinned_id, live.pinned_since = event.data["product"]["id"], now
    elif name == "product.unpinned":
        live.pinned_id, live.pinned_since, live.unpinned_since = None, None, now
    elif name == "product.stock":
        if (p := live.product(event.data.get("product_id"))) is not None:
            p["stock"] = event.data.get("stock")
    elif name in s.giveaway_events:
        live.giveaway_seen = True
    return None


# --------------------------------------------------------------------------------------------- window rules


async def start_live(app: web.Application, st: State, session: LiveSession) -> Live:
    """Begin watching a session (its first tick, or after a restart)."""
    live = Live(session_id=session.id, event_id=session.event_id, started_at=session.started_at,
                program_size=api.program_size(app))
    live.giveaway_available = any(n in api.bus_event_names(app) for n in st.settings.giveaway_events)
    live.actions = frozenset(n for n in (st.settings.giveaway_action, st.settings.flash_sale_action) if n and api.has_action(app, n))
    st.live, st.engine = live, Engine(st.settings)
    # after a restart: the window rules' findings still open are updated or resolved by the next step
    window_keys = [f["key"] for f in await api.open_findings(app, NAME, session_id=session.id)
                   if f["key"].split(":", 1)[0] in st.engine.rules]
    st.engine.adopt(window_keys, time.time())
    if session.event_id is not None:
        bag = await api.event_bag(app, session.event_id)
        live.bag = bag["products"]
        live.pinned_id = bag["pinned_product_id"]
        live.pinned_since = time.time() if live.pinned_id is not None else None
        for f in await _check_bag(app, st, session.event_id):
            await _apply(app, f)
    return live


async def _apply(app: web.Application, f: dict[str, Any]) -> None:
    if f.get("resolved"):
        await api.resolve_finding(app, NAME, f["key"])
    else:
        await api.report_finding(app, NAME, f)


@hookimpl
async def tick(app: web.Application, session: LiveSession, now: float) -> None:
    st = state(app)
    if st is None:
        return
    live = st.live
    if live is None or live.session_id != session.id:
        live = await start_live(app, st, session)
    live.viewer_series.append((now, live.viewers))
    for op, arg in st.engine.step(live, now):
        if op == "report":
            await api.report_finding(app, NAME, arg)
        else:
            await api.resolve_finding(app, NAME, arg)
