"""Prompter rules: plugins' ``prompter_rules`` run on every bus event; their findings become
``prompter.suggestion`` / ``prompter.violation`` bus events that every console's prompter shows."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .appkeys import BUS, PM
from .bus import Activity
from .plugins.manager import await_me_maybe

log = logging.getLogger(__name__)
LEVELS = ("info", "warning", "critical")
RULES: web.AppKey[list[tuple[str, Any]]] = web.AppKey("prompter_rules")


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
            kind = f.get("kind", "suggestion")
            level = f.get("level", "info")
            if kind not in ("suggestion", "violation") or level not in LEVELS or not f.get("text"):
                log.warning("prompter rule of plugin %s returned an invalid finding %r", plugin, f)
                continue
            await app[BUS].publish(f"prompter.{kind}", {"text": str(f["text"]), "level": level, "plugin": plugin},
                                   event_id=event.event_id, session_id=event.session_id, practice=event.practice)
