"""The shopping bag over the API: add, the 100-product limit, order, top, remove, search, refresh, pin."""

from __future__ import annotations

import time
from typing import Any

from lmserver.appkeys import BUS, DB, LIVE
from tests.conftest import login


async def products(app: Any, n: int, prefix: str = "Item") -> list[int]:
    now = time.time()
    ids = []
    async with app[DB].transaction() as tx:
        for i in range(n):
            cur = await tx.execute(
                "INSERT INTO products (title, price_cents, currency, stock, sku, created_at, updated_at) VALUES (?, ?, 'USD', ?, ?, ?, ?)",
                (f"{prefix} {i + 1:03d}", 1000 + i, 10, f"{prefix[:3].upper()}-{i + 1:03d}", now, now))
            ids.append(cur.lastrowid)
    return ids


async def event(app: Any, starts_in: float = 3600, minutes: int = 60, title: str = "Bag show") -> int:
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                               (f"bag-{int(now * 1000)}-{starts_in}", title, now + starts_in, minutes, now, now))
        return cur.lastrowid


async def bag(client: Any, eid: int, q: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/events/{eid}/bag" + (f"?q={q}" if q else ""))
    assert resp.status == 200
    return await resp.json()


def titles(b: dict[str, Any]) -> list[str]:
    return [p["title"] for p in b["products"]]


async def test_add_reorder_top_remove_search_refresh_publish_bag_changed(client: Any) -> None:
    csrf = await login(client, "assistant")  # assistants fill bags
    h = {"X-CSRF-Token": csrf}
    app = client.app
    heard: list[Any] = []
    app[BUS].on("bag.changed", heard.append)
    a, b, c, d = await products(app, 4)
    eid = await event(app)
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_id": a}, headers=h)
    assert resp.status == 201
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_ids": [b, c, d]}, headers=h)
    got = await resp.json()
    assert titles(got) == ["Item 001", "Item 002", "Item 003", "Item 004"]
    assert [p["position"] for p in got["products"]] == [1, 2, 3, 4] and got["count"] == 4 and got["limit"] == 100
    assert heard[-1].data == {"action": "add", "product_ids": [a, b, c, d]} and heard[-1].event_id == eid

    dup = await client.post(f"/api/events/{eid}/bag", json={"product_id": b}, headers=h)
    assert dup.status == 409 and "already in the shopping bag (position 2)" in (await dup.json())["error"]["message"]
    assert (await client.post(f"/api/events/{eid}/bag", json={"product_id": 999999}, headers=h)).status == 404

    # typed position, move to top, drag-and-drop order
    got = await (await client.post(f"/api/events/{eid}/bag/{a}/move", json={"position": 3}, headers=h)).json()
    assert [p["id"] for p in got["products"]] == [b, c, a, d]
    got = await (await client.post(f"/api/events/{eid}/bag/{d}/move", json={"position": 1}, headers=h)).json()
    assert [p["id"] for p in got["products"]] == [d, b, c, a]
    assert heard[-1].data == {"action": "move", "product_ids": [d, b, c, a]}
    bad = await client.post(f"/api/events/{eid}/bag/{d}/move", json={"position": 5}, headers=h)
    assert bad.status == 400 and "from 1 to 4" in (await bad.json())["error"]["message"]
    got = await (await client.put(f"/api/events/{eid}/bag/order", json={"product_ids": [a, b, c, d]}, headers=h)).json()
    assert [p["id"] for p in got["products"]] == [a, b, c, d]
    bad = await client.put(f"/api/events/{eid}/bag/order", json={"product_ids": [a, b, c]}, headers=h)
    assert bad.status == 400

    # search in the bag (title or SKU)
    assert titles(await bag(client, eid, "003")) == ["Item 003"]
    assert titles(await bag(client, eid, "ITE-004")) == ["Item 004"]

    # remove keeps positions contiguous
    got = await (await client.delete(f"/api/events/{eid}/bag/{b}", headers=h)).json()
    assert [(p["id"], p["position"]) for p in got["products"]] == [(a, 1), (c, 2), (d, 3)]
    assert heard[-1].data["action"] == "remove"
    assert (await client.delete(f"/api/events/{eid}/bag/{b}", headers=h)).status == 404

    # refresh shows the catalog's new price and stock
    await client.patch(f"/api/products/{c}", json={"price_cents": 4242, "stock": 3}, headers=h)
    got = await (await client.post(f"/api/events/{eid}/bag/refresh", headers=h)).json()
    item = next(p for p in got["products"] if p["id"] == c)
    assert (item["price_cents"], item["stock"]) == (4242, 3)
    assert heard[-1].data == {"action": "refresh", "product_ids": [a, c, d]}


async def test_the_bag_holds_at_most_100_products(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    app = client.app
    ids = await products(app, 101)
    eid = await event(app)
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_ids": ids[:99]}, headers=h)
    assert resp.status == 201
    # a batch that would cross the limit adds nothing
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_ids": ids[99:101]}, headers=h)
    assert resp.status == 409 and "room for 1 more" in (await resp.json())["error"]["message"]
    assert (await bag(client, eid))["count"] == 99
    assert (await client.post(f"/api/events/{eid}/bag", json={"product_id": ids[99]}, headers=h)).status == 201  # the 100th
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_id": ids[100]}, headers=h)  # the 101st
    assert resp.status == 409
    err = (await resp.json())["error"]
    assert "the shopping bag is full: an event holds at most 100 products" in err["message"]
    assert err["details"] == {"count": 100, "limit": 100}
    assert (await bag(client, eid))["count"] == 100


async def test_a_past_events_bag_cannot_change(client: Any) -> None:
    csrf = await login(client)
    (pid,) = await products(client.app, 1)
    eid = await event(client.app, starts_in=-7200, minutes=60)
    resp = await client.post(f"/api/events/{eid}/bag", json={"product_id": pid}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 409 and "past event cannot be edited" in (await resp.json())["error"]["message"]


async def test_pin_only_while_live_one_at_a_time(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    app = client.app
    heard: list[Any] = []
    for name in ("product.pinned", "product.unpinned"):
        app[BUS].on(name, heard.append)
    a, b, outside = await products(app, 3)
    eid = await event(app, starts_in=-60)
    await client.post(f"/api/events/{eid}/bag", json={"product_ids": [a, b]}, headers=h)

    resp = await client.post(f"/api/events/{eid}/pin", json={"product_id": a}, headers=h)
    assert resp.status == 409 and "only while this event is live" in (await resp.json())["error"]["message"]
    assert heard == []

    session = await app[LIVE].begin("test", False, None, event_id=eid)
    got = await (await client.post(f"/api/events/{eid}/pin", json={"product_id": a}, headers=h)).json()
    assert got["pinned_product_id"] == a and got["live"] is True
    assert await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (session.id,)) == a
    assert [(r.name, r.session_id) for r in heard] == [("product.pinned", session.id)]
    assert heard[0].data["product"]["id"] == a

    # pinning another unpins the first
    got = await (await client.post(f"/api/events/{eid}/pin", json={"product_id": b}, headers=h)).json()
    assert got["pinned_product_id"] == b
    assert [r.name for r in heard[1:]] == ["product.unpinned", "product.pinned"] and heard[1].data == {"product_id": a}
    assert (await client.post(f"/api/events/{eid}/pin", json={"product_id": outside}, headers=h)).status == 404

    got = await (await client.delete(f"/api/events/{eid}/pin", headers=h)).json()
    assert got["pinned_product_id"] is None and heard[-1].name == "product.unpinned"
    assert await app[DB].fetchval("SELECT pinned_product_id FROM sessions WHERE id = ?", (session.id,)) is None

    # an assistant may edit the bag but not pin
    await client.post(f"/api/events/{eid}/pin", json={"product_id": a}, headers=h)
    client.session.cookie_jar.clear()
    other = await login(client, "assistant")
    resp = await client.post(f"/api/events/{eid}/pin", json={"product_id": b}, headers={"X-CSRF-Token": other})
    assert resp.status == 403

    # ending the LIVE clears the pin; pinning is refused again
    await app[LIVE].end("host ended")
    client.session.cookie_jar.clear()
    csrf = await login(client)
    resp = await client.post(f"/api/events/{eid}/pin", json={"product_id": a}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 409
    assert (await bag(client, eid))["pinned_product_id"] is None
    # the session's products featured come from the activity log
    sessions = (await (await client.get(f"/api/events/{eid}/sessions")).json())["sessions"]
    assert sessions[0]["products_featured"] == 2


async def test_removing_the_pinned_product_unpins_it(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    app = client.app
    (a,) = await products(app, 1)
    eid = await event(app, starts_in=-60)
    await client.post(f"/api/events/{eid}/bag", json={"product_id": a}, headers=h)
    await app[LIVE].begin("test", False, None, event_id=eid)
    await client.post(f"/api/events/{eid}/pin", json={"product_id": a}, headers=h)
    got = await (await client.delete(f"/api/events/{eid}/bag/{a}", headers=h)).json()
    assert got["pinned_product_id"] is None and got["count"] == 0
    await app[LIVE].end("host ended")


async def test_bag_changes_reach_the_viewer_socket_of_the_event(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    (a,) = await products(client.app, 1)
    eid = await event(client.app)
    ws = await client.ws_connect(f"/ws/viewer?event={eid}")
    hello = await ws.receive_json()
    assert hello["name"] == "hello"
    await client.post(f"/api/events/{eid}/bag", json={"product_id": a}, headers=h)
    msg = await ws.receive_json()
    assert msg["name"] == "bag.changed" and msg["data"]["product_ids"] == [a]
    await ws.close()
