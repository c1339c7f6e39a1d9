"""Staff pages of the core: login, logout, home, settings (accounts and the stream key)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .templating import page, render

from . import auth
from .appkeys import CONFIG, DB
from .errors import ApiError
from .views import public_base

routes = web.RouteTableDef()


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never redirect a login to another host."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    if await auth.staff_user(request):
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return await render(request, "login.html", {"next": _safe_next(request.query.get("next")), "error": None, "name": ""})


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    try:
        user, cookie = await auth.login(request, name, password)
    except ApiError as exc:
        response = await render(request, "login.html", {"next": nxt, "error": exc.message, "name": name},
                                                  status=exc.status)
        response.headers.update(exc.headers)
        return response
    response = web.HTTPSeeOther(nxt)
    auth.set_session_cookie(request, response, cookie)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    await auth.logout(request, response)
    raise response


@routes.get("/")
@page("home.html")
async def home(request: web.Request) -> dict[str, Any]:
    """Home: checklist for success, upcoming events, the latest LIVE, LIVE tasks, help (``lmserver.homepage``)."""
    await auth.require(request)
    from .homepage import home_context

    return await home_context(request)


@routes.get("/settings")
@page("settings.html")
async def settings_page(request: web.Request) -> dict[str, Any]:
    await auth.require(request, "settings.manage")
    db = request.app[DB]
    users = await db.fetchall("SELECT id, name, role, created_at FROM users ORDER BY id")
    return {"users": [dict(u) for u in users], "roles": auth.ROLES, "whip_url": public_base(request) + "/whip",
            "min_password": request.app[CONFIG].security.min_password_length, "permissions": request.app[auth.PERMISSIONS].table()}
