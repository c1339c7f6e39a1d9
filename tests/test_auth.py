"""Accounts, roles, sessions, CSRF, login throttling and viewer cookies."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lmserver import auth
from lmserver.appkeys import DB, SECRET
from lmserver.errors import BadRequest, Conflict
from tests.conftest import PASSWORD, login, make_user


async def test_password_is_hashed_with_argon2(client: Any) -> None:
    name = await make_user(client, "owner")
    row = await client.app[DB].fetchone("SELECT password_hash FROM users WHERE name = ?", (name,))
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]


async def test_duplicate_and_weak_accounts_are_refused_and_nothing_is_written(client: Any) -> None:
    db = client.app[DB]
    await auth.create_user(db, "alice", "owner", PASSWORD)
    with pytest.raises(Conflict, match="already exists"):
        await auth.create_user(db, "ALICE", "moderator", PASSWORD)
    with pytest.raises(BadRequest, match="at least 10 characters"):
        await auth.create_user(db, "bob", "moderator", "short")
    with pytest.raises(BadRequest, match="role must be one of"):
        await auth.create_user(db, "bob", "admin", PASSWORD)
    with pytest.raises(BadRequest, match="user name"):
        await auth.create_user(db, "<script>", "owner", PASSWORD)
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 1


async def test_login_logout_pages(client: Any) -> None:
    name = await make_user(client, "moderator")
    resp = await client.post("/login", data={"name": name, "password": "nope nope nope", "next": "/"}, allow_redirects=False)
    assert resp.status == 401 and "wrong user name or password" in await resp.text()
    resp = await client.post("/login", data={"name": name, "password": PASSWORD, "next": "//evil.example/"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"  # never an open redirect
    cookie = resp.cookies["lms_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert (await client.get("/", allow_redirects=False)).status == 200
    # logout without the CSRF token is refused
    assert (await client.post("/logout", allow_redirects=False)).status == 403
    me = await (await client.get("/api/me")).json()
    resp = await client.post("/logout", data={"csrf_token": me["csrf_token"]}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/", allow_redirects=False)).headers["Location"].startswith("/login")


async def test_login_throttling(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(security={"login_max_failures": 3, "login_lockout_seconds": 60}))
    name = await make_user(client, "owner")
    for _ in range(3):
        assert (await client.post("/api/login", json={"name": name, "password": "wrong password"})).status == 401
    resp = await client.post("/api/login", json={"name": name, "password": PASSWORD})  # even the right one, now
    assert resp.status == 429
    body = await resp.json()
    assert "too many failed logins" in body["error"]["message"] and int(resp.headers["Retry-After"]) > 0


async def test_csrf_required_on_state_changing_api_calls(client: Any) -> None:
    csrf = await login(client, "owner")
    payload = {"title": "Mug", "price": "9.50", "stock": 3}
    resp = await client.post("/api/products", json=payload)
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/products", json=payload, headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403
    # a made-up Authorization header does not switch the check off for a cookie-carrying request
    resp = await client.post("/api/products", json=payload, headers={"Authorization": "Bearer whatever"})
    assert resp.status == 403
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 0
    resp = await client.post("/api/products", json=payload, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201


@pytest.mark.parametrize("role, allowed", [("owner", True), ("moderator", False), ("assistant", False)])
async def test_only_the_owner_manages_accounts_and_settings(client: Any, role: str, allowed: bool) -> None:
    csrf = await login(client, role)
    h = {"X-CSRF-Token": csrf}
    resp = await client.post("/api/users", json={"name": "newbie", "role": "assistant", "password": PASSWORD}, headers=h)
    assert resp.status == (201 if allowed else 403)
    assert (await client.get("/api/settings/stream-key")).status == (200 if allowed else 403)
    assert (await client.get("/settings", allow_redirects=False)).status == (200 if allowed else 403)
    # every staff role may edit the catalog
    assert (await client.post("/api/products", json={"title": "T", "price": "1", "stock": 1}, headers=h)).status == 201


async def test_expired_session_is_refused_with_a_clear_message(client: Any) -> None:
    await login(client, "owner")
    await client.app[DB].execute("UPDATE staff_sessions SET expires_at = ?", (time.time() - 1,))
    resp = await client.get("/api/me")
    assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]
    assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/login?next=/"


async def test_tampered_session_cookie_is_ignored(client: Any) -> None:
    await login(client, "owner")
    good = next(c.value for c in client.session.cookie_jar if c.key == "lms_session")
    token = good.rsplit(".", 1)[0]
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"lms_session": token + ".0123456789abcdef0123456789abcdef"})
    assert (await client.get("/api/me")).status == 401


async def test_viewer_cookie_is_signed_and_grants_nothing_staff(client: Any) -> None:
    from aiohttp import web

    resp = web.Response()
    vid = auth.sign(client.app[SECRET], "viewer123")
    assert auth.unsign(client.app[SECRET], vid) == "viewer123"
    assert auth.unsign(client.app[SECRET], "viewer124." + vid.split(".")[1]) is None
    await client.app[DB].execute("INSERT INTO viewers (id, created_at) VALUES ('viewer123', 0)")
    client.session.cookie_jar.update_cookies({"lms_viewer": vid})
    h = {"X-CSRF-Token": auth.viewer_csrf(client.app[SECRET], "viewer123")}
    assert (await client.get("/api/products")).status == 401
    assert (await client.post("/api/products", json={"title": "x", "price": "1", "stock": 1}, headers=h)).status == 401
    assert (await client.get("/api/users")).status == 401
    del resp


async def test_stream_key_rotation(client: Any) -> None:
    csrf = await login(client, "owner")
    first = (await (await client.get("/api/settings/stream-key")).json())["stream_key"]
    assert await auth.check_stream_key(client.app, first)
    resp = await client.post("/api/settings/stream-key/rotate", headers={"X-CSRF-Token": csrf})
    second = (await resp.json())["stream_key"]
    assert second != first
    assert not await auth.check_stream_key(client.app, first)
    assert await auth.check_stream_key(client.app, second)
