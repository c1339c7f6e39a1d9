"""Typed application state: every shared object hangs off the app under one of these keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # only for the type checker: the keys are created below at runtime either way
    from .bus import Bus
    from .config import Config
    from .db import Database, GroupCommitWriter
    from .live import LiveState
    from .plugins.manager import PluginManager
    from .webhooks import Webhooks
    from .ws import Hub

CONFIG: web.AppKey["Config"] = web.AppKey("config")
DB: web.AppKey["Database"] = web.AppKey("db")
WRITER: web.AppKey["GroupCommitWriter"] = web.AppKey("writer")
BUS: web.AppKey["Bus"] = web.AppKey("bus")
HUB: web.AppKey["Hub"] = web.AppKey("hub")
PM: web.AppKey["PluginManager"] = web.AppKey("plugin_manager")
LIVE: web.AppKey["LiveState"] = web.AppKey("live")
SECRET: web.AppKey[bytes] = web.AppKey("secret")
WEBHOOKS: web.AppKey["Webhooks"] = web.AppKey("webhooks")

# request-local state
USER_KEY: web.RequestKey[object] = web.RequestKey("lms_user")
SESSION_EXPIRED_KEY: web.RequestKey[bool] = web.RequestKey("lms_session_expired")
NEW_VIEWER_KEY: web.RequestKey[str] = web.RequestKey("lms_new_viewer")
