"""The prompter: findings of plugins' rules, stored per session and shown in the console.

A *finding* is what a rule saw and what to do about it (see :func:`report`)::

    {"key": "traffic-drop",                       # stable: the same condition updates the same finding
     "kind": "suggestion" | "violation",           # Suggestions tab / Content quality tab
     "level": "info" | "warning" | "critical",
     "text": "Viewers fell 48 → 30 in 2 min",
     "trigger": {"metric": "viewers", "value": 30, "threshold": 33.6, "window": 120},   # optional
     "actions": [{"label": "Pin a product", "method": "POST", "url": "/api/events/3/pin", "body": {...}},
                 {"label": "Jump to it", "comment_id": 12}, {"label": "Open the panel", "panel": "..."},
                 {"label": "Edit the product", "href": "/catalog?product=5"},
                 {"label": "Start a poll", "action": "poll.start", "params": {"event_id": 3}}],
     "subject": {"comment_id": 12, "viewer_id": "...", "product_id": 5},                 # optional
     "area": "stream"}                              # optional: LIVE diagnosis (colours the health line)

Actions call the console's own APIs from the staff member's browser, so the server checks the same
permissions as when they click the console's buttons. An ``action`` action names what another plugin offers
(``register_actions``, :mod:`lmserver.actions`): the console runs it through ``POST /api/actions/{name}``;
one naming an action nobody offers (its plugin is not installed) is left out of the stored finding. Findings are stored in ``prompter_findings``
(one row per session and key while it lasts); each change is published as ``prompter.suggestion`` or
``prompter.violation`` with the whole finding (``id``, ``status``: active, resolved or dismissed), so
every console updates it in place. A finding is *updated in place* while its rule keeps reporting it,
*resolved* when the rule says its condition ended (:func:`resolve`), and *dismissed* by staff
(``POST /api/prompter/findings/{id}/dismiss``, stored with who); a dismissed finding stays dismissed
until it resolves. Cooldowns and activity gates belong to the rules (plugins).

Plugins report through ``prompter_rules`` (run on every bus event: return findings, or
``{"key": k, "resolved": True}``) or, from ``tick`` and anywhere else, ``lmserver.api.report_finding`` /
``lmserver.api.resolve_finding``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from . import auth, validate
from .appkeys import BUS, DB, LIVE, PM
from .bus import Activity
from .errors import BadRequest, NotFound
from .openapi import doc
from .plugins.manager import await_me_maybe

log = logging.getLogger(__name__)
LEVELS = ("info", "warning", "critical")
KINDS = ("suggestion", "violation")
METHODS = ("POST", "DELETE", "PATCH", "PUT")
RULES: web.AppKey[list[tuple[str, Any]]] = web.AppKey("prompter_rules")
routes = web.RouteTableDef()


class FindingError(ValueError):
    """A rule's finding is malformed (the message says which field)."""


async def load_rules(app: web.Application) -> None:
    """Ask the plugins for their rules (once, at startup)."""
    app[RULES] = [(plugin, rule) for plugin, rules in await app[PM].call_named("prompter_rules", app=app) for rule in rules]


async def run_rules(app: web.Application, event: Activity) -> None:
    for plugin, rule in app.get(RULES, []):
        try:
            findings = await await_me_maybe(rule(app, event)) or []
        except Exception:
            log.exception("prompter rule of plugin %s failed on %s", plugin, event.name)
            continue
        for f in findings:
            try:
                if isinstance(f, dict) and f.get("resolved") and f.get("key"):
                    await resolve(app, plugin, str(f["key"]), session_id=event.session_id)
                else:
                    await report(app, plugin, f, session=event)
            except FindingError as e:
                log.warning("prompter rule of plugin %s returned an invalid finding %r: %s", plugin, f, e)
            except Exception:
                log.exception("prompter: storing a finding of plugin %s failed", plugin)


# --------------------------------------------------------------------------------------------- the model


def _clean_action(a: Any) -> dict[str, Any]:
    if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not a["label"].strip():
        raise FindingError("an action is a dict with a label")
    out: dict[str, Any] = {"label": a["label"].strip()[:60]}
    if "url" in a:
        if not isinstance(a["url"], str) or not a["url"].startswith("/api/"):
            raise FindingError("an action's url is one of the studio's /api/ routes")
        method = str(a.get("method", "POST")).upper()
        if method not in METHODS:
            raise FindingError(f"an action's method is one of {', '.join(METHODS)}")
        out.update(url=a["url"], method=method, body=a.get("body"))
        if a.get("confirm"):
            out["confirm"] = str(a["confirm"])
    elif "action" in a:
        if not isinstance(a["action"], str) or not a["action"].strip():
            raise FindingError("an action's action is the name of a plugin's action ('poll.start')")
        params = a.get("params") or {}
        if not isinstance(params, dict):
            raise FindingError("an action's params is a dict")
        out.update(action=a["action"].strip(), params=params)
    elif "comment_id" in a:
        out["comment_id"] = int(a["comment_id"])
    elif "panel" in a:
        out["panel"] = str(a["panel"])
    elif "href" in a:
        if not isinstance(a["href"], str) or not a["href"].startswith("/") or a["href"].startswith("//"):
            raise FindingError("an action's href is a local path (/catalog?...)")
        out["href"] = a["href"]
    else:
        raise FindingError("an action has a url (an API call), an action (a plugin's named action), a comment_id (jump to it),"
                           " a panel (open it) or an href (a page)")
    return out


def clean_finding(f: Any) -> dict[str, Any]:
    """Check a finding from a rule; raise :class:`FindingError` saying what is wrong."""
    if not isinstance(f, dict):
        raise FindingError("a finding is a dict")
    kind, level, text = f.get("kind", "suggestion"), f.get("level", "info"), f.get("text")
    if kind not in KINDS:
        raise FindingError(f"kind is one of {KINDS}")
    if level not in LEVELS:
        raise FindingError(f"level is one of {LEVELS}")
    if not isinstance(text, str) or not text.strip():
        raise FindingError("text is a non-empty string")
    trigger = f.get("trigger")
    if trigger is not None and (not isinstance(trigger, dict) or "metric" not in trigger):
        raise FindingError("trigger is {metric, value, threshold, window}")
    key = str(f.get("key") or f"{kind}:{text.strip()}")[:200]
    return {"key": key, "kind": kind, "level": level, "text": text.strip()[:500],
            "trigger": {k: trigger.get(k) for k in ("metric", "value", "threshold", "window")} if trigger else None,
            "actions": [_clean_action(a) for a in f.get("actions") or []],
            "subject": f.get("subject") if isinstance(f.get("subject"), dict) else None,
            "area": f.get("area") if f.get("area") in ("stream",) else None}


def finding_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "key": row["key"], "plugin": row["plugin"], "kind": row["kind"], "level": row["level"],
            "text": row["text"], "trigger": json.loads(row["trigger"]), "actions": json.loads(row["actions"]),
            "subject": json.loads(row["subject"]), "area": row["area"], "status": row["status"], "updates": row["updates"],
            "session_id": row["session_id"], "event_id": row["event_id"], "practice": bool(row["practice"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"], "resolved_at": row["resolved_at"],
            "dismissed_at": row["dismissed_at"], "dismissed_by": row["dismissed_by"], "acted": row["acted"]}


def finding_record(f: dict[str, Any]) -> dict[str, Any]:
    """A finding in the shape of its bus record (what the console's prompter draws)."""
    return {"name": f"prompter.{f['kind']}", "session_id": f["session_id"], "event_id": f["event_id"],
            "practice": f["practice"], "at": f["updated_at"], "data": f}


async def _publish(app: web.Application, f: dict[str, Any]) -> None:
    await app[BUS].publish(f"prompter.{f['kind']}", f, event_id=f["event_id"], session_id=f["session_id"],
                           practice=f["practice"])


async def report(app: web.Application, plugin: str, finding: Any, *, session: Any = True) -> dict[str, Any] | None:
    """Store (or update in place) a finding of ``plugin`` and publish it; returns it (None when it is
    dismissed and unchanged: staff said they don't want to see it while it lasts).

    ``session``: True for the running session, an :class:`Activity` or session-like object (``id`` or
    ``session_id``, ``event_id``, ``practice``), or None (studio-wide). Raises :class:`FindingError` (a ValueError) on a bad finding.
    """
    f = clean_finding(finding)
    from .actions import find

    f["actions"] = [a for a in f["actions"] if "action" not in a or find(app, a["action"]) is not None]
    sid, eid, practice = _target(app, session)
    db, now = app[DB], time.time()
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT * FROM prompter_findings WHERE session_id IS ? AND plugin = ? AND key = ?"
                               " AND status != 'resolved' ORDER BY id DESC LIMIT 1", (sid, plugin, f["key"]))
        row = await cur.fetchone()
        values = (f["kind"], f["level"], f["text"], json.dumps(f["trigger"]), json.dumps(f["actions"]),
                  json.dumps(f["subject"]), f["area"])
        if row is None:
            cur = await tx.execute(
                "INSERT INTO prompter_findings (kind, level, text, trigger, actions, subject, area, session_id, event_id,"
                " practice, plugin, key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, sid, eid, int(practice), plugin, f["key"], now, now))
            fid = cur.lastrowid
        else:
            fid = row["id"]
            await tx.execute("UPDATE prompter_findings SET kind = ?, level = ?, text = ?, trigger = ?, actions = ?, subject = ?,"
                             " area = ?, updates = updates + 1, updated_at = ? WHERE id = ?", (*values, now, fid))
        cur = await tx.execute("SELECT * FROM prompter_findings WHERE id = ?", (fid,))
        stored = finding_json(await cur.fetchone())
    if stored["status"] == "dismissed":
        return None
    await _publish(app, stored)
    return stored


async def resolve(app: web.Application, plugin: str, key: str, *, session_id: int | None | bool = True) -> dict[str, Any] | None:
    """The condition of ``plugin``'s finding ``key`` ended: mark it resolved and publish it (None when none was open)."""
    sid = _target(app, True)[0] if session_id is True else session_id
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("SELECT id FROM prompter_findings WHERE session_id IS ? AND plugin = ? AND key = ?"
                               " AND status != 'resolved'", (sid, plugin, key))
        ids = [r["id"] for r in await cur.fetchall()]
        if not ids:
            return None
        await tx.execute(f"UPDATE prompter_findings SET status = 'resolved', resolved_at = ? WHERE id IN ({', '.join('?' * len(ids))})",
                         (now, *ids))
        cur = await tx.execute("SELECT * FROM prompter_findings WHERE id = ?", (ids[-1],))
        stored = finding_json(await cur.fetchone())
    await _publish(app, stored)
    return stored


def _target(app: web.Application, session: Any) -> tuple[int | None, int | None, bool]:
    if session is True:
        session = app[LIVE].current
    if session is None or session is False:
        return None, None, False
    if isinstance(session, Activity):
        return session.session_id, session.event_id, session.practice
    sid = getattr(session, "id", None) if not hasattr(session, "session_id") else session.session_id
    return sid, getattr(session, "event_id", None), bool(getattr(session, "practice", False))


async def session_findings(app: web.Application, session_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The findings of one session, oldest first (the console's prompter; session analytics' timeline)."""
    rows = await app[DB].fetchall("SELECT * FROM (SELECT * FROM prompter_findings WHERE session_id = ? ORDER BY id DESC LIMIT ?)"
                                  " ORDER BY id", (session_id, limit))
    return [finding_json(r) for r in rows]


async def open_findings(app: web.Application, plugin: str, session_id: int | None) -> list[dict[str, Any]]:
    """``plugin``'s findings of a session that are not resolved, oldest first."""
    rows = await app[DB].fetchall("SELECT * FROM prompter_findings WHERE session_id IS ? AND plugin = ? AND status != 'resolved'"
                                  " ORDER BY id", (session_id, plugin))
    return [finding_json(r) for r in rows]


# --------------------------------------------------------------------------------------------- routes


@routes.post("/api/prompter/findings/{id}/dismiss")
@doc("Dismiss a prompter finding (stored with who); it stays dismissed until its condition ends",
     body={"action": "string, optional: the label of the finding's action staff took (shown on the session's timeline)"},
     returns="{finding}", tags=["console"], permission="console.view")
async def api_dismiss(request: web.Request) -> web.Response:
    user = await auth.require(request, "console.view")
    fid = validate.path_int(request, "id")
    body = await _optional_body(request)
    action = validate.text(body, "action", max_len=60) if body else None
    app = request.app
    async with app[DB].transaction() as tx:
        cur = await tx.execute("SELECT * FROM prompter_findings WHERE id = ?", (fid,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no prompter finding {fid}")
        if action and action not in [a["label"] for a in json.loads(row["actions"])]:
            raise BadRequest(f"action: {action!r} is not one of this finding's actions")
        status = "dismissed" if row["status"] == "active" else row["status"]
        await tx.execute("UPDATE prompter_findings SET status = ?, dismissed_at = ?, dismissed_by = ?, acted = COALESCE(?, acted)"
                         " WHERE id = ?", (status, time.time(), user.name, action, fid))
        cur = await tx.execute("SELECT * FROM prompter_findings WHERE id = ?", (fid,))
        stored = finding_json(await cur.fetchone())
    await _publish(app, stored)
    return web.json_response({"finding": stored})


@routes.get("/api/sessions/{sid}/findings")
@doc("A session's prompter findings, oldest first: what the rules saw, when, and what staff did",
     returns="{findings: [{id, key, kind, level, text, trigger, actions, status, created_at, resolved_at, dismissed_by, acted}]}",
     tags=["console"], permission="console.view")
async def api_session_findings(request: web.Request) -> web.Response:
    await auth.require(request, "console.view")
    sid = validate.path_int(request, "sid")
    if await request.app[DB].fetchval("SELECT 1 FROM sessions WHERE id = ?", (sid,)) is None:
        raise NotFound(f"no session {sid}")
    return web.json_response({"findings": await session_findings(request.app, sid)})


async def _optional_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    from .views import json_body

    return await json_body(request)
