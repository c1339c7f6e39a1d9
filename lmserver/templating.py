"""Jinja filters shared by every page."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩", "BRL": "R$"}
ZERO_DECIMAL = {"JPY", "KRW"}


def money(cents: int | None, currency: str = "USD") -> str:
    """Integer cents → "$12.50" (ISO code suffix for currencies without a symbol)."""
    if cents is None:
        return ""
    if currency in ZERO_DECIMAL:
        amount = f"{cents:,}"
    else:
        amount = f"{cents / 100:,.2f}"
    sym = SYMBOLS.get(currency)
    return f"{sym}{amount}" if sym else f"{amount} {currency}"


def utc(ts: Any) -> dt.datetime | None:
    """UNIX seconds → an aware UTC datetime; None for a value no calendar holds (NaN, 1e20, text).

    Pages format times already in the database: a bad value there (written before the edge checked it)
    shows as "invalid date" instead of failing the whole page.
    """
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    try:
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def datetime_utc(ts: float | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    if ts is None:
        return ""
    when = utc(ts)
    return "invalid date" if when is None else when.strftime(fmt) + " UTC"


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    when = utc(ts)
    return "" if when is None else when.isoformat()


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    try:
        s = int(seconds)
    except (OverflowError, TypeError, ValueError):
        return 
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def static_url(web_dir: Path) -> Any:
    """``static('css/app.css')`` → ``/static/css/app.css?v=<mtime>`` (cache-busting without a build step)."""
    cache: dict[str, str] = {}

    def static(path: str) -> str:
        if path not in cache:
            try:
                cache[path] = f"/static/{path}?v={int((web_dir / 'static' / path).stat().st_mtime)}"
            except OSError:
                cache[path] = f"/static/{path}"
        return cache[path]

    return static


def register_filters(env: jinja2.Environment, web_dir: Path) -> None:
    env.filters.update(money=money, datetime=datetime_utc, iso=iso, duration=duration)
    env.globals.update(now=lambda: dt.datetime.now(dt.timezone.utc).timestamp(), static=static_url(web_dir))


def as_dict(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in row.keys()}


# --------------------------------------------------------------------------------------------- rendering

#: app-level hook that computes the context every page shares (set by the app factory)
BASE_CONTEXT: web.AppKey[Callable[[web.Request], Awaitable[dict[str, Any]]]] = web.AppKey("base_context")


async def render(request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> web.Response:
    """Render a page: the shared context (user, CSRF token, studio name, ...) plus ``context``."""
    env = aiohttp_jinja2.get_env(request.app)
    base = await request.app[BASE_CONTEXT](request)
    html = env.get_template(template).render({**base, **(context or {})})
    return web.Response(text=html, status=status, content_type="text/html")


def page(template: str) -> Callable[[Callable[[web.Request], Awaitable[dict[str, Any]]]], Callable[[web.Request], Awaitable[web.Response]]]:
    """Decorate a handler that returns a context dict: ``@page("home.html")``."""

    def wrap(fn: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.Response:
            return await render(request, template, await fn(request))

        return handler

    return wrap
