"""API tokens: scoped bearer access for scripts, stored hashed, shown once, revocable, expiring; OpenAPI names
each operation's scope. (tests/test_permissions.py walks every route with a token identity as well.)"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable

import aiohttp

from lmserver.appkeys import DB
from tests.conftest import login


async def owner_client(aiohttp_client: Any, app_factory: Callable[..., Any]) -> tuple[Any, dict[str, str]]:
    client = await aiohttp_client(app_factory())
    return client, {"X-CSRF-Token": await login(client, "owner")}


async def make_token(client: Any, h: dict[str, str], scopes: list[str], **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/tokens", json={"name": "export script", "scopes": scopes, **extra}, headers=h)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def as_script(client: Any, method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
    """A request the way a script sends it: no cookie at all, only the bearer token."""
    async with aiohttp.ClientSession() as http:  # its own, empty cookie jar
        async with http.request(method, str(client.make_url(path)), headers={"Authorization": f"Bearer {token}"}, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_a_token_acts_within_its_scopes_without_csrf(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    client, h = await owner_client(aiohttp_client, app_factory)
    made = await make_token(client, h, ["console.view"])
    token = made["token"]
    assert token.startswith("lmst_") and made["api_token"]["scopes"] == ["console.view"]
    status, _ = await as_script(client, "GET", "/api/products", token)
    assert status == 200
    status, body = await as_script(client, "POST", "/api/products", token, json={"title": "Mug", "price_cents": 100, "stock": 1})
    assert status == 403 and "'catalog.edit' scope" in body["error"]["message"]
    writer = (await make_token(client, h, ["catalog.edit", "console.view"]))["token"]
    status, body = await as_script(client, "POST", "/api/products", writer, json={"title": "Mug", "price_cents": 100, "stock": 1})
    assert status == 201, body  # a write with a token needs no CSRF token: it carries no cookie
    listed = (await (await client.get("/api/tokens")).json())["tokens"]
    assert {t["hint"] for t in listed} == {token[:9], writer[:9]} and all(t["last_used_at"] for t in listed)
    # only the SHA-256 is stored
    path = client.app[DB].path
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
    assert token not in dump and writer not in dump


async def test_revoked_expired_and_foreign_tokens_are_refused(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    client, h = await owner_client(aiohttp_client, app_factory)
    made = await make_token(client, h, ["console.view"], expires_in_days=30)
    token, tid = made["token"], made["api_token"]["id"]
    assert made["api_token"]["expires_at"] > time.time() + 29 * 86400
    await client.app[DB].execute("UPDATE api_tokens SET expires_at = ? WHERE id = ?", (time.time() - 1, tid))
    status, body = await as_script(client, "GET", "/api/products", token)
    assert status == 401 and "expired" in body["error"]["message"]
    other = (await make_token(client, h, ["console.view"]))
    assert (await client.delete(f"/api/tokens/{other['api_token']['id']}", headers=h)).status == 200
    status, body = await as_script(client, "GET", "/api/products", other["token"])
    assert status == 401 and "revoked" in body["error"]["message"]
    status, body = await as_script(client, "GET", "/api/products", "lmst_" + "x" * 43)
    assert status == 401 and "unknown" in body["error"]["message"]
    # a bad token on a public page changes nothing there
    async with aiohttp.ClientSession() as http:
        async with http.get(str(client.make_url("/login")), headers={"Authorization": "Bearer lmst_nope"}) as resp:
            assert resp.status == 200


async def test_tokens_never_manage_tokens_and_never_exceed_the_role(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    client, h = await owner_client(aiohttp_client, app_factory)
    everything = (await (await client.get("/api/tokens")).json())["scopes"]
    token = (await make_token(client, h, [s["name"] for s in everything]))["token"]
    for method, path in (("GET", "/api/tokens"), ("POST", "/api/tokens"), ("DELETE", "/api/tokens/1")):
        status, body = await as_script(client, method, path, token, **({"json": {"name": "x", "scopes": ["console.view"]}} if method == "POST" else {}))
        assert status == 403 and "cannot manage API tokens" in body["error"]["message"], (method, path, body)
    status, _ = await as_script(client, "GET", "/api/webhooks", token)  # settings.manage as a scope works elsewhere
    assert status == 200
    for bad, reason in ((["console.view", "nope.nope"], "unknown ['nope.nope']"), ([], "non-empty list"), ("console.view", "non-empty list")):
        resp = await client.post("/api/tokens", json={"name": "x", "scopes": bad}, headers=h)
        assert resp.status == 400 and reason in (await resp.json())["error"]["message"]
    resp = await client.post("/api/tokens", json={"name": "x", "scopes": ["console.view"], "expires_in_days": 0}, headers=h)
    assert resp.status == 400
    # the maker's account disabled: the token stops
    await client.app[DB].execute("UPDATE users SET disabled = 1")
    status, _ = await as_script(client, "GET", "/api/webhooks", token)
    assert status == 401


async def test_openapi_declares_the_schemes_and_each_operations_scope(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    client = await aiohttp_client(app_factory())
    spec = await (await client.get("/api/openapi.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"staffSession", "apiToken"}
    assert spec["paths"]["/api/products"]["post"]["security"] == [{"staffSession": []}, {"apiToken": ["catalog.edit"]}]
    assert spec["paths"]["/api/tokens"]["post"]["security"] == [{"staffSession": []}]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "x-permission" in op:
                assert op["security"][0] == {"staffSession": []}, (method, path)
