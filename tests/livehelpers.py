"""Helpers for the console / viewer / orders tests: an event with a shopping bag, going live, viewers."""

from __future__ import annotations

import itertools
import time
from typing import Any

from lmserver import auth
from lmserver.appkeys import DB, LIVE, SECRET

_n = itertools.count(1)


async def make_event(app: Any, title: str = "Spring sale", starts_in: float = -60.0) -> int:
    now = time.time()
    n = next(_n)
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES (?, ?, ?, 60, ?, ?)",
            (f"show-{n}-{int(now)}", title, now + starts_in, now, now))
        return cur.lastrowid


async def make_product(app: Any, title: str = "Mug", stock: int = 10, price_cents: int = 1250, event_id: int | None = None) -> int:
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at) VALUES (?, ?, 'USD', ?, ?, ?)",
            (title, price_cents, stock, now, now))
        pid = cur.lastrowid
        if event_id is not None:
            pos = await (await tx.execute("SELECT COUNT(*) FROM event_products WHERE event_id = ?", (event_id,))).fetchone()
            await tx.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                             (event_id, pid, pos[0], now))
    return pid


async def go_live(app: Any, event_id: int, practice: bool = False) -> Any:
    return await app[LIVE].begin("test", practice, None, event_id=event_id)


async def new_viewer(app: Any, nickname: str | None = None) -> dict[str, str]:
    """A viewer row and the headers that carry its cookie and CSRF token."""
    vid = f"v{next(_n)}x{int(time.time() * 1000)}"
    await app[DB].execute("INSERT INTO viewers (id, nickname, created_at) VALUES (?, ?, ?)", (vid, nickname, time.time()))
    return {"id": vid, "Cookie": f"{auth.VIEWER_COOKIE}={auth.sign(app[SECRET], vid)}",
            "X-CSRF-Token": auth.viewer_csrf(app[SECRET], vid)}


def vh(viewer: dict[str, str]) -> dict[str, str]:
    return {"Cookie": viewer["Cookie"], "X-CSRF-Token": viewer["X-CSRF-Token"]}


async def staff_cookie(client: Any, role: str = "owner") -> dict[str, str]:
    """Log a staff user in and return headers carrying their session (the client's cookie jar stays empty,
    so the same client can act as viewers too)."""
    from tests.conftest import login

    client.session.cookie_jar.clear()
    csrf = await login(client, role)
    cookie = next(c for c in client.session.cookie_jar if c.key == auth.SESSION_COOKIE)
    client.session.cookie_jar.clear()
    return {"Cookie": f"{auth.SESSION_COOKIE}={cookie.value}", "X-CSRF-Token": csrf}
