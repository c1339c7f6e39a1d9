"""The app factory: ``create_app(config, plugins=..., load_entrypoints=True)``.

Build order: plugin manager (so plugins can add routes, templates, migrations and bus events at build
time) → Jinja → routes → ``cleanup_ctx`` that, when the app starts, runs the migrations (core, then
plugins'), opens the database, the group-commit writer, the hub, the bus and the live state, and finally
calls every plugin's ``startup`` hook; and undoes all of it in reverse on shutdown.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import secrets
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from . import __version__, auth
from .appkeys import BUS, CONFIG, DB, HUB, LIVE, PM, SECRET, WRITER
from .bus import Activity, Bus
from .config import Config
from .db import DB_FILENAME, Database, GroupCommitWriter, Migration, run_migrations
from .errors import ApiError
from .live import LiveState
from .metrics import METRICS, Metrics, metrics_middleware, metrics_view
from .migrations import MIGRATIONS
from .openapi import openapi_json
from .prompter import load_rules, run_rules
from .scheduler import SCHEDULER, Scheduler, clocks_ctx
from . import mailer, remindmail, timefmt
from .templating import BASE_CONTEXT, register_filters, render
from .plugins.manager import PluginManager, build_plugin_manager
from .plugins.types import MenuLink
from .ws import Hub

log = logging.getLogger(__name__)

def _web_dir() -> Path:
    """The core's templates and static files: the package ``lmserver.web`` (``web/`` in a checkout), found
    through ``importlib.resources`` so a wheel works as well as an editable install, whatever the cwd."""
    try:
        return Path(str(importlib.resources.files("lmserver.web")))
    except ModuleNotFoundError:
        # an editable install made before web/ was mapped to lmserver.web: its checkout still has web/
        checkout = Path(__file__).resolve().parent.parent / "web"
        if not (checkout / "__init__.py").is_file():
            raise
        log.warning("lmserver.web is not installed (an editable install older than pyproject.toml): using %s;"
                    " reinstall with `pip install -e .` (make .venv/bin/.installed)", checkout)
        return checkout


WEB_DIR = _web_dir()
API_PREFIXES = ("/api/", "/whip", "/whep", "/-/", "/ws/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path in ("/healthz",)


def load_secret(data_dir: Path) -> bytes:
    """The studio secret that signs cookies: ``<data_dir>/secret.key``, created (0600) on first start."""
    path = data_dir / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


# --------------------------------------------------------------------------------------------- middlewares


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    headers: dict[str, str] = {}
    details = None
    try:
        return await handler(request)
    except ApiError as exc:
        status, message, details, headers = exc.status, exc.message, exc.details, exc.headers
    except BadHttpMessage as exc:  # a malformed body (e.g. broken multipart headers) found while a handler reads it
        status, message = 400, f"the request body is malformed: {exc.message or 'bad syntax'}"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status = exc.status
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else (exc.reason or "error")
        if status == 413:
            message = f"the request body is too large: at most {request.app[CONFIG].server.max_body_bytes} bytes"
        elif status == 404:
            message = f"nothing here: {request.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        status, message = 500, "internal server error: the details are in the server log"
    if is_api_path(request.path):
        body: dict[str, Any] = {"status": status, "message": message}
        if details is not None:
            body["details"] = details
        return web.json_response({"error": body}, status=status, headers=headers)
    if status == 401:  # back here after login: this page, through auth.safe_next, percent-encoded as one value
        next_path = quote(auth.safe_next(request.path_qs), safe="/")
        raise web.HTTPSeeOther(f"/login?next={next_path}" if request.method == "GET" else "/login")
    response = await render(request, "error.html", {"status": status, "message": message}, status=status)
    response.headers.update(headers)
    return response


@web.middleware
async def csrf_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    await auth.check_csrf(request)
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith(("/e/", "/static/", "/uploads/")):
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


# --------------------------------------------------------------------------------------------- templates


async def template_context(request: web.Request) -> dict[str, Any]:
    user = await auth.staff_user(request)
    cfg = request.app[CONFIG]
    return {"user": user, "csrf_token": user.csrf if user else "", "studio_name": cfg.server.studio_name,
            "version": __version__, "request_path": request.path, "live": request.app[LIVE].current if LIVE in request.app else None,
            "menu_links": await menu_links(request, user) if user is not None else []}


async def menu_links(request: web.Request, user: Any) -> list[MenuLink]:
    """The plugins' ``menu_links`` for this staff user, by order (display policy: bad answers are logged and skipped)."""
    out: list[MenuLink] = []
    for plugin, answer in await request.app[PM].call_named("menu_links", request=request, user=user):
        for link in answer if isinstance(answer, (list, tuple)) else [answer]:
            if isinstance(link, MenuLink) and link.href.startswith("/") and not link.href.startswith("//"):
                out.append(link)
            else:
                log.warning("plugin %s: menu_links must answer a list of MenuLink(label, href='/local/path'), got %r", plugin, link)
    return sorted(out, key=lambda link: link.order)


def setup_templates(app: web.Application, pm: PluginManager) -> None:
    plugin_loaders: dict[str, jinja2.BaseLoader] = {}
    for name, dirs in pm.asset_dirs().items():
        if "templates" in dirs:
            plugin_loaders[name] = jinja2.FileSystemLoader(str(dirs["templates"]))
    core = jinja2.FileSystemLoader(str(WEB_DIR / "templates"))
    loader = jinja2.ChoiceLoader([core, jinja2.PrefixLoader({"default": core, **plugin_loaders})])
    env = aiohttp_jinja2.setup(app, loader=loader, autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    register_filters(env, WEB_DIR)
    timefmt.install(app, env)  # the studio's time zone and the one time format (the datetime filter)
    app[BASE_CONTEXT] = template_context


# --------------------------------------------------------------------------------------------- lifetime


def _plugin_migrations(pm: PluginManager) -> list[Migration]:
    out = []
    for plugin, item in pm.call_lists_sync("register_migrations"):
        if isinstance(item, Migration):
            out.append(Migration(plugin, item.name, item.apply))
        else:
            name, sql = item
            out.append(Migration(plugin, name, sql))
    return out


async def core_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    pm = app[PM]
    data_dir = cfg.data_dir
    path = data_dir / DB_FILENAME
    run_migrations(path, [*MIGRATIONS, *_plugin_migrations(pm)])
    db = Database(path)
    await db.open()
    writer = GroupCommitWriter(path)
    writer.start()
    hub = Hub(cfg.live.ws_queue_messages)
    bus = Bus(db, hub)
    bus.register(item for _, item in pm.call_lists_sync("register_bus_events"))
    bus.plugin_dispatch = _plugin_dispatcher(app, pm)
    live = LiveState(db, bus, resume_minutes=cfg.events.resume_minutes)
    app[DB], app[WRITER], app[HUB], app[BUS], app[LIVE] = db, writer, hub, bus, live
    app[SCHEDULER] = Scheduler(app, db, pm)  # before startup: plugins may set timers there (they fire once clocks_ctx runs)
    await auth.stream_key(db)
    await timefmt.load_zone(app)
    await pm.call("startup", app=app)
    await load_rules(app)
    log.info("lmserver %s started; data in %s", __version__, data_dir)
    try:
        yield
    finally:
        await drain_plugin_dispatch(bus)
        await pm.call("shutdown", app=app)
        await hub.close_all()
        await writer.stop()
        await db.close()


def _plugin_dispatcher(app: web.Application, pm: PluginManager) -> Callable[[Activity], None]:
    """Hand each bus record to plugins (``on_bus_event``) and prompter rules, off the publisher's path."""
    import asyncio


    has_listeners = bool(pm.impls("on_bus_event"))
    tasks: set[asyncio.Task[Any]] = set()

    def dispatch(record: Activity) -> None:
        if record.name.startswith("prompter."):
            coros = [pm.call("on_bus_event", app=app, event=record)] if has_listeners else []
        else:
            coros = [run_rules(app, record)]
            if has_listeners:
                coros.append(pm.call("on_bus_event", app=app, event=record))
        for coro in coros:
            task = asyncio.ensure_future(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    dispatch.tasks = tasks  # type: ignore[attr-defined]  # drained at shutdown (drain_plugin_dispatch)
    return dispatch


async def drain_plugin_dispatch(bus: Bus, timeout: float = 5.0) -> None:
    """Let the plugins' ``on_bus_event`` calls under way finish (at most ``timeout`` s) before the database closes:
    a record published just before shutdown still reaches its plugins, and none of them meets a closed database."""
    import asyncio

    tasks = getattr(bus.plugin_dispatch, "tasks", None)
    if tasks:
        done, pending = await asyncio.wait(set(tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# --------------------------------------------------------------------------------------------- factory


def create_app(config: Config, *, plugins: Iterable[Any] = (), load_entrypoints: bool = True) -> web.Application:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "uploads").mkdir(exist_ok=True)
    app = web.Application(middlewares=[security_headers, metrics_middleware, error_middleware, csrf_middleware],
                          client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[SECRET] = load_secret(config.data_dir)
    app[METRICS] = Metrics(app)
    pm = build_plugin_manager(config, plugins, load_entrypoints)
    app[PM] = pm
    app[auth.PERMISSIONS] = auth.PermissionRegistry(pm.call_lists_sync("register_permissions"))
    from . import actions

    app[actions.ACTIONS] = actions.collect(app)
    setup_templates(app, pm)

    from . import catalog, pages, views

    app.router.add_static("/static", WEB_DIR / "static", name="static", append_version=True)
    app.router.add_get("/uploads/{name}", catalog.serve_upload)
    for name, dirs in pm.asset_dirs().items():
        if "static" in dirs:
            app.router.add_static(f"/-/static/plugins/{name}", dirs["static"])
    app.router.add_routes(pages.routes)
    app.router.add_routes(catalog.routes)
    app.router.add_routes(views.routes)
    from . import events, helppages, promo

    app.router.add_routes(events.routes)
    app.router.add_routes(promo.routes)
    app.router.add_routes(helppages.routes)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/metrics", metrics_view)
    from .media.app import media_ctx, setup_media

    setup_media(app)
    for plugin, route in pm.call_lists_sync("register_routes", app=app):
        try:
            route.register(app.router)
        except Exception:
            log.exception("plugin %s: route %r could not be added; it is skipped", plugin, route)
    app.cleanup_ctx.append(core_ctx)
    app.cleanup_ctx.append(media_ctx)  # after the core: the media server gets its live state, bus and database
    app.cleanup_ctx.append(mailer.mail_ctx)  # the e-mail outbox (its timer handler) before anything queues e-mail
    app.cleanup_ctx.append(remindmail.remindmail_ctx)  # registrants' reminder e-mails, on event.ready and stream.started
    app.cleanup_ctx.append(events.events_ctx)  # after the core: needs the database, the bus and the live state
    app.cleanup_ctx.append(clocks_ctx)  # the scheduler's timers and the live tick (stopped before the core closes)
    from . import (analytics, analytics_routes, buyers, comments, console, orderpages, orders, prompter, recordings, replay, tokens,
                   viewer, webhooks, webhooks_api)

    for module in (console, viewer, comments, orderpages, buyers, prompter, webhooks_api, tokens, recordings, replay, analytics_routes,
                   actions):
        app.router.add_routes(module.routes)
    app.cleanup_ctx.append(analytics.analytics_ctx)
    app.cleanup_ctx.append(console.live_ctx)  # viewer sampling, after the core context
    app.cleanup_ctx.append(orders.orders_ctx)  # releases reservations left by a crash, then reconciles periodically
    app.cleanup_ctx.append(webhooks.webhooks_ctx)  # the outbox dispatcher (stopped before the core closes)
    return app
