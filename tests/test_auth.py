"""Accounts, roles, sessions, CSRF, login throttling and viewer cookies."""

from __future__ import annotations

import re
import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

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


async def login_form_token(client: Any) -> str:
    """Open the login page like a browser: its pre-session token (its cookie lands in the client's jar)."""
    html = await (await client.get("/login")).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def test_login_logout_pages(client: Any) -> None:
    name = await make_user(client, "moderator")
    token = await login_form_token(client)
    resp = await client.post("/login", data={"name": name, "password": "nope nope nope", "next": "/", "csrf_token": token},
                             allow_redirects=False)
    assert resp.status == 401 and "wrong user name or password" in await resp.text()
    resp = await client.post("/login", data={"name": name, "password": PASSWORD, "next": "//evil.example/", "csrf_token": token},
                             allow_redirects=False)
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


async def test_login_form_needs_its_own_token(client: Any) -> None:
    name = await make_user(client, "owner")
    resp = await client.post("/login", data={"name": name, "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403 and "login form has expired" in await resp.text()
    assert "lms_session" not in resp.cookies and "lms_login" in resp.cookies  # a fresh form and token
    resp = await client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403 and "lms_session" not in resp.cookies
    token = await login_form_token(client)
    resp = await client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and "lms_session" in resp.cookies


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


# --------------------------------------------------------------------------------------------- next: no open redirect

NASTY_NEXT = [
    "//evil.example/", "/\\evil.example/", "\\\\evil.example/", "/\\/evil.example/", "/%09/evil.example/",
    "/%0a/evil.example/", "/%0A/evil.example/", "/%0D%0A/evil.example/", "%2F%2Fevil.example", "/%2F/evil.example",
    "/%252F/evil.example", "/%5C/evil.example", "/%5c%5cevil.example", "https://evil.example/", "http:evil.example",
    "javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<script>1</script>", "/\t/evil.example/",
    "/\n/evil.example/", "/\r\n/evil.example/", "\t//evil.example/", " //evil.example/", "/\x00/evil.example",
    "/\uff0f/evil.example", "\uff0f\uff0fevil.example", "/%EF%BC%8F/evil.example", "/\u2215/evil.example",
    "/\u0085/evil.example", "/" + "a" * 5000, "//" + "a" * 5000, "", None, 42, "evil.example", "?next=//evil.example",
    "/login", "/login?next=/logout", "/logout",
]


def _stays_home(target: str) -> bool:
    """A browser following ``Location: target`` from http://studio.example/ stays on studio.example."""
    from urllib.parse import urljoin, urlsplit

    return (target.startswith("/") and not target.startswith("//") and target.isascii() and target.isprintable()
            and "\\" not in target and " " not in target and urlsplit(urljoin("http://studio.example/x", target)).netloc == "studio.example")


@pytest.mark.parametrize("value", NASTY_NEXT, ids=lambda v: repr(v)[:40])
def test_safe_next_refuses_every_way_off_the_host(value: Any) -> None:
    target = auth.safe_next(value)
    assert _stays_home(target), target
    if isinstance(value, str) and "evil.example" in value and "\\" not in value.replace("%5C", "\\").replace("%5c", "\\"):
        assert target == "/"


@pytest.mark.parametrize("value, expected", [
    ("/catalog", "/catalog"), ("/console?event=3&tab=bag", "/console?event=3&tab=bag"), ("/e/spring-sale#bag", "/e/spring-sale#bag"),
    ("/e/x?q=a%2Fb", "/e/x?q=a%2Fb"), ("/e/caf\u00e9", "/e/caf%C3%A9"), ("/search?q=two words", "/search?q=two%20words"),
    ("/\\evil.example/", "/evil.example/"),  # backslashes dropped: a local path, not a host
])
def test_safe_next_keeps_local_paths(value: str, expected: str) -> None:
    assert auth.safe_next(value) == expected


async def test_no_open_redirect_on_login_logout_and_the_401_redirect(client: Any) -> None:
    name = await make_user(client, "owner")
    # not logged in: a page sends to the login page with the whole path and query as one encoded value
    resp = await client.get("/catalog?a=1&b=2", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert location.path == "/login" and dict(location.query) == {"next": "/catalog?a=1&b=2"}
    html = await (await client.get(resp.headers["Location"])).text()
    assert 'name="next" value="/catalog?a=1&amp;b=2"' in html
    token = await login_form_token(client)
    for nasty in ("/\t/evil.example/", "/\n/evil.example/", "//evil.example", "/%09/evil.example/", "https://evil.example"):
        resp = await client.post("/login", data={"name": name, "password": PASSWORD, "next": nasty, "csrf_token": token},
                                 allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/", nasty
    # already logged in: the login page redirects at once, through the same check
    for raw in ("/%09/evil.example/", "/%0A/evil.example/", "/%0D%0A/evil.example/", "//evil.example/", "/%5C/evil.example",
                "%2F%2Fevil.example", "/%EF%BC%8F/evil.example", "/%2509/evil.example/"):
        resp = await client.get(URL(f"/login?next={raw}", encoded=True), allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/", raw
    resp = await client.get("/login?next=/catalog%3Fa%3D1%26b%3D2", allow_redirects=False)
    assert resp.headers["Location"] == "/catalog?a=1&b=2"
    csrf = (await (await client.get("/api/me")).json())["csrf_token"]
    resp = await client.post("/logout", data={"csrf_token": csrf, "next": "/\t/evil.example/"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    await client.post("/api/login", json={"name": name, "password": PASSWORD})
    csrf = (await (await client.get("/api/me")).json())["csrf_token"]
    resp = await client.post("/logout?next=/e/spring", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/e/spring"


# --------------------------------------------------------------------------------------------- Origin: login CSRF


async def test_cross_site_login_is_refused(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(server={"public_url": "https://shop.example"}))
    name = await make_user(client, "owner")
    creds = {"name": name, "password": PASSWORD}
    token = await login_form_token(client)
    own = f"http://{client.host}:{client.port}"
    cross = [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": f"http://{client.host}:{client.port + 1}"},
             {"Origin": "https://shop.example.evil.example"}, {"Origin": own.replace("http:", "https:")},
             {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]
    for headers in cross:
        resp = await client.post("/login", data={**creds, "csrf_token": token}, headers=headers, allow_redirects=False)
        assert resp.status == 403 and "cross-site request refused" in await resp.text(), headers
        assert "lms_session" not in resp.cookies
        resp = await client.post("/api/login", json=creds, headers=headers)
        assert resp.status == 403 and "lms_session" not in resp.cookies, headers
        assert "server.public_url" in (await resp.json())["error"]["message"] or "Sec-Fetch-Site" in headers
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM staff_sessions") == 0
    # same origin: the request's own scheme and host, or server.public_url (a reverse proxy changes the Host)
    for origin in (own, "https://shop.example", "https://SHOP.example:443"):
        resp = await client.post("/api/login", json=creds, headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"})
        assert resp.status == 200, origin
    resp = await client.post("/login", data={**creds, "csrf_token": token}, headers={"Origin": own}, allow_redirects=False)
    assert resp.status == 303 and "lms_session" in resp.cookies


async def test_cookie_authenticated_writes_and_websockets_must_be_same_origin(client: Any) -> None:
    csrf = await login(client, "owner")
    payload = {"title": "Mug", "price": "9.50", "stock": 3}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await client.post("/api/products", json=payload, headers={"X-CSRF-Token": csrf, **headers})
        assert resp.status == 403 and "cross-site request refused" in (await resp.json())["error"]["message"]
        resp = await client.post("/logout", data={"csrf_token": csrf}, headers=headers, allow_redirects=False)
        assert resp.status == 403
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 0
    own = f"http://{client.host}:{client.port}"
    resp = await client.post("/api/products", json=payload, headers={"X-CSRF-Token": csrf, "Origin": own})
    assert resp.status == 201
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect("/ws/console", origin="http://evil.example")
    assert caught.value.status == 403
    ws = await client.ws_connect("/ws/console", origin=own)
    assert (await ws.receive_json(timeout=10))["name"] == "hello"
    await ws.close()
    # no cookie, no ambient authority: another origin is not refused here (bearer-key clients, CORS WHIP)
    client.session.cookie_jar.clear()
    resp = await client.post("/api/products", json=payload, headers={"Origin": "http://evil.example"})
    assert resp.status == 401


# --------------------------------------------------------------------------------------------- staff login with a viewer cookie


async def test_staff_can_log_in_from_a_browser_that_opened_an_event_page(client: Any) -> None:
    from tests.livehelpers import make_event

    eid = await make_event(client.app)
    slug = await client.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    name = await make_user(client, "owner")
    token = await login_form_token(client)  # the login page is open in one tab ...
    assert (await client.get(f"/e/{slug}")).status == 200  # ... and the host checks their event page in another
    assert any(c.key == "lms_viewer" for c in client.session.cookie_jar)
    resp = await client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/" and "lms_session" in resp.cookies
    assert (await client.get("/", allow_redirects=False)).status == 200
    # the login API too, and logging in again ends this browser's previous session
    resp = await client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert resp.status == 200
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM staff_sessions") == 1
    assert (await client.get("/api/me")).status == 200


# --------------------------------------------------------------------------------------------- the CSRF check and bad bodies


@pytest.mark.parametrize("identity", ["staff", "viewer"])
async def test_csrf_check_never_500s_on_a_malformed_body(aiohttp_client: Any, app_factory: Any, identity: str) -> None:
    client = await aiohttp_client(app_factory(server={"max_body_bytes": 64 * 1024}))
    if identity == "staff":
        await login(client, "owner")
    else:
        assert (await client.get("/api/e/1/state")).status in (200, 404)
        await client.app[DB].execute("INSERT INTO viewers (id, created_at) VALUES ('v1', 0)")
        client.session.cookie_jar.update_cookies({"lms_viewer": auth.sign(client.app[SECRET], "v1")})
    part = b'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
    bad = [
        ("multipart/form-data", b"csrf_token=x"),  # no boundary
        ("multipart/form-data; boundary=XX", part + b"abc"),  # truncated
        ("multipart/form-data; boundary=XX", b"not multipart at all"),
        ("multipart/form-data; boundary=XX", b"--XX\r\nno colon in this header\r\n\r\nx\r\n--XX--\r\n"),
        ("multipart/form-data; boundary=XX", part.replace(b"\r\n\r\n", b"\r\nContent-Type: text/plain; charset=nope\r\n\r\n")
         + b"x\r\n--XX--\r\n"),
        ("application/x-www-form-urlencoded", b"csrf_token=\xff\xfe"),  # not UTF-8
        ("application/x-www-form-urlencoded; charset=nope", b"csrf_token=x"),
    ]
    for path in ("/api/products", "/logout", "/api/viewer/nickname"):
        for content_type, body in bad:
            resp = await client.post(path, data=body, headers={"Content-Type": content_type}, allow_redirects=False)
            assert resp.status == 400, (path, content_type, body, resp.status)
            assert "could not be read" in await resp.text()
        resp = await client.post(path, data=b"a=b&" * 20000, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 413
        # a form that parses but has no token, or a token that is not even ASCII: 403
        resp = await client.post(path, data={"name": "x"}, allow_redirects=False)
        assert resp.status == 403
        resp = await client.post(path, json={}, headers={"X-CSRF-Token": "t\u00f6ken"}, allow_redirects=False)
        assert resp.status == 403
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 0
