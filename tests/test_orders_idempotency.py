"""Idempotency-Key on buying: a retry (sequential or concurrent) gets the first order, never a second one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lmserver.appkeys import DB, LIVE
from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh


async def buy(client: Any, viewer: dict[str, str], event_id: int, product_id: int, quantity: int = 1,
              key: str | None = None) -> Any:
    headers = vh(viewer)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(f"/api/e/{event_id}/orders", json={"product_id": product_id, "quantity": quantity}, headers=headers)


async def stock(app: Any, pid: int) -> int:
    return int(await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)))


async def orders_of(app: Any, pid: int) -> int:
    return int(await app[DB].fetchval("SELECT COUNT(*) FROM orders WHERE product_id = ?", (pid,)))


async def test_a_retry_with_the_same_key_gets_the_first_order(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=10, event_id=eid)
    await go_live(app, eid)
    ann = await new_viewer(app, "Ann")
    first = await buy(client, ann, eid, pid, 2, key="3f1c6a8e-5d2b-4f7a-9c1e-0b8d7e6f5a4c")
    assert first.status == 201, await first.text()
    assert "Idempotent-Replayed" not in first.headers
    again = await buy(client, ann, eid, pid, 2, key="3f1c6a8e-5d2b-4f7a-9c1e-0b8d7e6f5a4c")
    assert again.status == 200, await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert await stock(app, pid) == 8 and await orders_of(app, pid) == 1
    assert await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'order.created'") == 1
    # the same key for another purchase: 422 with the reason
    for other in ((pid, 3), (await make_product(app, "Cap", stock=5, event_id=eid), 2)):
        resp = await buy(client, ann, eid, other[0], other[1], key="3f1c6a8e-5d2b-4f7a-9c1e-0b8d7e6f5a4c")
        assert resp.status == 422, await resp.text()
        assert "already used for another purchase" in (await resp.json())["error"]["message"]
    # keys are per viewer: another viewer's same key is another purchase
    bo = await new_viewer(app, "Bo")
    assert (await buy(client, bo, eid, pid, 2, key="3f1c6a8e-5d2b-4f7a-9c1e-0b8d7e6f5a4c")).status == 201
    # a new key is a new purchase; no key at all buys as before, every time
    assert (await buy(client, ann, eid, pid, 2, key="another-click")).status == 201
    assert (await buy(client, ann, eid, pid, 1)).status == 201
    assert (await buy(client, ann, eid, pid, 1)).status == 201
    assert await stock(app, pid) == 2 and await orders_of(app, pid) == 5
    # the stream ended since: the lost answer is still replayed
    await app[LIVE].end("host ended")
    late = await buy(client, ann, eid, pid, 2, key="3f1c6a8e-5d2b-4f7a-9c1e-0b8d7e6f5a4c")
    assert late.status == 200 and await late.json() == await first.json()
    assert (await buy(client, ann, eid, pid, 1, key="never-used")).status == 409


async def test_concurrent_requests_with_one_key_make_one_order(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=50, event_id=eid)
    await go_live(app, eid)
    viewers = [await new_viewer(app, f"v{i}") for i in range(5)]
    # each viewer double-clicks 8 times with one key, all at once, plus 20 unkeyed buys in the same burst
    calls = [buy(client, v, eid, pid, 2, key=f"click-{i}") for i, v in enumerate(viewers) for _ in range(8)]
    calls += [buy(client, viewers[i % 5], eid, pid, 1) for i in range(20)]
    responses = await asyncio.gather(*calls)
    keyed, unkeyed = responses[:40], responses[40:]
    assert [r.status for r in unkeyed] == [201] * 20
    for i in range(5):
        group = keyed[i * 8:(i + 1) * 8]
        statuses = sorted(r.status for r in group)
        assert statuses == [200] * 7 + [201], statuses
        bodies = [await r.json() for r in group]
        assert all(b == bodies[0] for b in bodies)
    for r in responses:
        r.release()
    assert await orders_of(app, pid) == 5 + 20
    assert await stock(app, pid) == 50 - 5 * 2 - 20
    assert await app[DB].fetchval("SELECT COUNT(*) FROM order_idempotency") == 5


async def test_a_failed_attempt_stores_nothing_and_keys_expire(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"idempotency_hours": 24.0}))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=1, event_id=eid)
    await go_live(app, eid)
    cy = await new_viewer(app, "Cy")
    resp = await buy(client, cy, eid, pid, 2, key="k1")
    assert resp.status == 409 and "only 1 left" in (await resp.json())["error"]["message"]
    await app[DB].execute("UPDATE products SET stock = 5 WHERE id = ?", (pid,))
    first = await buy(client, cy, eid, pid, 2, key="k1")  # the same key works once the stock is back
    assert first.status == 201, await first.text()
    # 25 hours later the key has expired: the same key is a new purchase
    await app[DB].execute("UPDATE order_idempotency SET created_at = created_at - 25 * 3600")
    again = await buy(client, cy, eid, pid, 2, key="k1")
    assert again.status == 201 and (await again.json())["order"]["id"] != (await first.json())["order"]["id"]
    assert await stock(app, pid) == 1


async def test_bad_keys_are_refused_with_the_reason(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Di")
    for bad in ("", "k" * 129, "caf\u00e9", "tab\there"):
        resp = await buy(client, viewer, eid, pid, 1, key=bad)
        assert resp.status == 400, (bad, await resp.text())
        assert "Idempotency-Key" in (await resp.json())["error"]["message"]
    assert (await buy(client, viewer, eid, pid, 1, key="k" * 128)).status == 201
    assert (await buy(client, viewer, eid, pid, 1, key="~ !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}")).status == 201
    assert await orders_of(app, pid) == 2


async def test_a_key_whose_checkout_still_runs_elsewhere_answers_retry_later(client: Any) -> None:
    """The key is stored with the reservation, the answer only with the confirmation: a request finding the key
    without an answer (its checkout runs in another request the process does not know of) gets 409, no order."""
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, event_id=eid)
    session = await go_live(app, eid)
    viewer = await new_viewer(app, "Eve")
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE products SET stock = stock - 1 WHERE id = ?", (pid,))
        cur = await tx.execute(
            "INSERT INTO orders (viewer_id, product_id, event_id, session_id, quantity, unit_price_cents, amount_cents, currency,"
            " status, practice, created_at) VALUES (?, ?, ?, ?, 1, 1250, 1250, 'USD', 'reserved', 0, ?)",
            (viewer["id"], pid, eid, session.id, time.time()))
        await tx.execute("INSERT INTO order_idempotency (viewer_id, key, order_id, created_at) VALUES (?, 'k', ?, ?)",
                         (viewer["id"], cur.lastrowid, time.time()))
    resp = await buy(client, viewer, eid, pid, 1, key="k")
    assert resp.status == 409 and "still being checked out" in (await resp.json())["error"]["message"]
    assert await orders_of(app, pid) == 1 and await stock(app, pid) == 4
