"""/healthz, /metrics, /api/openapi.json (kept true by walking the router), and the error shapes."""

from __future__ import annotations

from typing import Any

from lmserver.openapi import api_routes, undocumented
from tests.conftest import login


async def test_healthz(client: Any) -> None:
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["version"]


async def test_every_api_route_is_documented(aiohttp_client: Any, app_factory: Any) -> None:
    # with every installed plugin loaded, so plugins' routes are held to the same rule
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    app = client.app
    assert undocumented(app) == []
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    documented = {(m.lower(), p) for p, ops in spec["paths"].items() for m in ops}
    import re

    for method, path, _ in api_routes(app):
        assert (method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)) in documented
    assert "/api/products" in spec["paths"] and "post" in spec["paths"]["/api/products"]
    assert spec["paths"]["/healthz"]["get"]["summary"].startswith("Health")
    assert "/-/plugins" in spec["paths"]


async def test_metrics(client: Any) -> None:
    await client.get("/healthz")
    csrf = await login(client)
    await client.post("/api/products", json={"title": "x", "price": "1", "stock": 1}, headers={"X-CSRF-Token": csrf})
    text = await (await client.get("/metrics")).text()
    assert 'lmserver_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "lmserver_websocket_clients" in text
    assert "lmserver_bus_events_total" in text


async def test_error_shapes(client: Any) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404 and (await resp.json()) == {"error": {"status": 404, "message": "nothing here: /api/nothing-here"}}
    resp = await client.get("/no-page-here")
    assert resp.status == 404 and "text/html" in resp.headers["Content-Type"] and "Not found" in await resp.text()
    resp = await client.delete("/api/products")
    assert resp.status == 405 and "not allowed" in (await resp.json())["error"]["message"]
