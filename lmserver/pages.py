"""Staff pages of the core: login, logout, home, settings (accounts and the stream key)."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from aiohttp import web

from .templating import page, render

from . import auth
from .appkeys import CONFIG, DB
from .errors import ApiError
from .mailer import outbox_status, sender
from .timefmt import STUDIO_TZ
from .views import public_base

routes = web.RouteTableDef()


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    nxt = auth.safe_next(request.query.get("next"))
    if await auth.staff_user(request):
        raise web.HTTPSeeOther(nxt)
    return await _login_form(request, nxt)


async def _login_form(request: web.Request, nxt: str, *, error: str | None = None, name: str = "",
                      status: int = 200) -> web.Response:
    """The login page with its own pre-session CSRF token (a viewer cookie or a stale session does not matter)."""
    token = auth.login_token(request)
    response = await render(request, "login.html", {"next": nxt, "error": error, "name": name, "login_token": token},
                            status=status)
    auth.set_login_cookie(request, response, token)
    return response


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    # the Origin is checked by auth.check_csrf (every login); the form's own token here
    form = await auth.form_data(request)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    nxt = auth.safe_next(str(form.get("next", "/")))
    if not auth.check_login_token(request, str(form.get("csrf_token", ""))):
        return await _login_form(request, nxt, name=name, status=403,
                                 error="this login form has expired or your browser blocked its cookie:"
                                       " enter your password again (cookies must be allowed for this site)")
    try:
        user, cookie = await auth.login(request, name, password)
    except ApiError as exc:
        response = await _login_form(request, nxt, error=exc.message, name=name, status=exc.status)
        response.headers.update(exc.headers)
        return response
    response = web.HTTPSeeOther(nxt)
    auth.set_session_cookie(request, response, cookie)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session; then ``next`` (a local path, form field or query) or the login page."""
    nxt = request.query.get("next")
    if nxt is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await auth.form_data(request)).get("next")
        nxt = value if isinstance(value, str) else None
    response = web.HTTPSeeOther(auth.safe_next(nxt) if nxt else "/login")
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
    mail = request.app[CONFIG].email
    return {"users": [dict(u) for u in users], "roles": auth.ROLES, "whip_url": public_base(request) + "/whip",
            "min_password": request.app[CONFIG].security.min_password_length, "permissions": request.app[auth.PERMISSIONS].table(),
            "timezone": request.app[STUDIO_TZ], "timezones": sorted(available_timezones()),
            # the [email] settings as the page shows them: never the password, only whether one is set
            "email": {"host": mail.host, "port": mail.port, "tls": mail.tls, "user": mail.user, "password_set": bool(mail.password),
                      "from": sender(mail) if mail.host else "", "outbox": await outbox_status(request.app)}}
