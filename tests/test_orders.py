"""Orders: stock never below zero (1000 buyers for 100 units), quantity bounds, practice, first-time buyers, checkout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lmserver.appkeys import CONFIG, DB, LIVE, WRITER
from lmserver.plugins.hookspecs import hookimpl
from lmserver.plugins.types import CheckoutResult
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


async def buy(client: Any, viewer: dict[str, str], event_id: int, product_id: int, quantity: Any = 1) -> Any:
    return await client.post(f"/api/e/{event_id}/orders", json={"product_id": product_id, "quantity": quantity}, headers=vh(viewer))


async def test_buy_creates_order_with_price_at_purchase_and_decrements_stock(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, price_cents=1250, event_id=eid)
    session = await go_live(app, eid)
    viewer = await new_viewer(app, "Ann")
    resp = await buy(client, viewer, eid, pid, 2)
    assert resp.status == 201, await resp.text()
    order = (await resp.json())["order"]
    assert order["quantity"] == 2 and order["unit_price_cents"] == 1250 and order["amount_cents"] == 2500
    assert order["status"] == "placed" and order["first_time"] is True and order["practice"] is False
    assert order["session_id"] == session.id and order["product_title"] == "Mug" and order["nickname"] == "Ann"
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 3
    # the price changes later: the order keeps the price paid
    await app[DB].execute("UPDATE products SET price_cents = 9900 WHERE id = ?", (pid,))
    assert await app[DB].fetchval("SELECT unit_price_cents FROM orders WHERE id = ?", (order["id"],)) == 1250
    # the activity is logged with the order
    row = await app[DB].fetchone("SELECT * FROM activity WHERE name = 'order.created'")
    assert row["session_id"] == session.id


async def test_sold_out_and_only_n_left(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=2, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Bo")
    resp = await buy(client, viewer, eid, pid, 3)
    assert resp.status == 409
    assert "only 2 left" in (await resp.json())["error"]["message"]
    assert (await buy(client, viewer, eid, pid, 2)).status == 201
    resp = await buy(client, viewer, eid, pid, 1)
    assert resp.status == 409
    assert "sold out" in (await resp.json())["error"]["message"]
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 0
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders") == 1


async def test_quantity_bounds(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=500, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Cy")
    limit = app[CONFIG].live.max_order_quantity
    for bad in (0, -1, limit + 1, 1.5, "two", None, True):
        resp = await buy(client, viewer, eid, pid, bad)
        assert resp.status == 400, (bad, await resp.text())
        assert "quantity" in (await resp.json())["error"]["message"]
    assert (await buy(client, viewer, eid, pid, limit)).status == 201
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 500 - limit


async def test_buy_needs_live_event_and_product_in_bag(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    other = await make_event(app, "Other")
    pid = await make_product(app, event_id=eid)
    stray = await make_product(app, title="Not in bag")
    viewer = await new_viewer(app, "Di")
    resp = await buy(client, viewer, eid, pid)
    assert resp.status == 409 and "not live" in (await resp.json())["error"]["message"]
    await go_live(app, eid)
    assert (await buy(client, viewer, eid, stray)).status == 404
    await app[DB].execute("UPDATE products SET archived = 1 WHERE id = ?", (pid,))
    assert (await buy(client, viewer, eid, pid)).status == 404
    await app[DB].execute("UPDATE products SET archived = 0 WHERE id = ?", (pid,))
    assert (await buy(client, viewer, other, pid)).status == 409
    # no viewer cookie at all
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1})
    assert resp.status == 401
    # wrong CSRF token
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1},
                             headers={"Cookie": viewer["Cookie"], "X-CSRF-Token": "nope"})
    assert resp.status == 403


async def test_practice_orders_are_marked_and_excluded_from_gmv(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client)
    eid = await make_event(app)
    pid = await make_product(app, stock=10, price_cents=1000, event_id=eid)
    practice = await go_live(app, eid, practice=True)
    viewer = await new_viewer(app, "Ed")
    resp = await buy(client, viewer, eid, pid, 3)
    assert resp.status == 201
    order = (await resp.json())["order"]
    assert order["practice"] is True
    # a practice order takes nothing from stock (but a sold-out product stays sold out in practice)
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 10
    assert (await buy(client, viewer, eid, pid, 11)).status == 409
    metrics = await (await client.get(f"/api/events/{eid}/metrics", headers=staff)).json()
    m = metrics["metrics"]
    assert m["gmv_cents"] == 0 and m["orders"] == 0 and m["items_sold"] == 0
    assert m["practice_orders"] == 1 and m["practice_amount_cents"] == 3000
    await app[LIVE].end("practice over")
    real = await go_live(app, eid)
    assert real.id != practice.id
    resp = await buy(client, viewer, eid, pid, 2)
    order2 = (await resp.json())["order"]
    # the practice order does not make the viewer a returning buyer
    assert order2["first_time"] is True and order2["practice"] is False
    m = (await (await client.get(f"/api/events/{eid}/metrics", headers=staff)).json())["metrics"]
    assert (m["gmv_cents"], m["orders"], m["items_sold"], m["first_time_buyers"]) == (2000, 1, 2, 1)


async def test_first_time_buyer_flag(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=10, event_id=eid)
    await go_live(app, eid)
    ann, bo = await new_viewer(app, "Ann"), await new_viewer(app, "Bo")
    flags = []
    for v in (ann, ann, bo, ann):
        flags.append((await (await buy(client, v, eid, pid)).json())["order"]["first_time"])
    assert flags == [True, False, True, False]


async def test_blocked_viewer_can_buy_unless_configured(aiohttp_client: Any, app_factory: Any) -> None:
    for allowed in (True, False):
        client = await aiohttp_client(app_factory(live={"blocked_can_buy": allowed}))
        app = client.app
        eid = await make_event(app)
        pid = await make_product(app, event_id=eid)
        await go_live(app, eid)
        viewer = await new_viewer(app, "Troll")
        await app[DB].execute("UPDATE viewers SET blocked = 1 WHERE id = ?", (viewer["id"],))
        resp = await buy(client, viewer, eid, pid)
        assert resp.status == (201 if allowed else 403), await resp.text()


class PaymentPlugin:
    """A payment plugin taking over checkout."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    @hookimpl
    def checkout(self, app: Any, request: Any) -> CheckoutResult:
        self.requests.append(request)
        return CheckoutResult(status="pending_payment", redirect_url="https://pay.example/checkout/1")


class BrokenPayment:
    @hookimpl
    def checkout(self, app: Any, request: Any) -> CheckoutResult:
        raise RuntimeError("payment provider down")


async def test_checkout_hook_takes_over(aiohttp_client: Any, app_factory: Any) -> None:
    plugin = PaymentPlugin()
    client = await aiohttp_client(app_factory(plugins=(plugin,)))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=3, price_cents=700, event_id=eid)
    session = await go_live(app, eid)
    viewer = await new_viewer(app, "Fi")
    order = (await (await buy(client, viewer, eid, pid, 2)).json())["order"]
    assert order["status"] == "pending_payment" and order["redirect_url"] == "https://pay.example/checkout/1"
    req = plugin.requests[0]
    assert (req.viewer_id, req.product_id, req.quantity, req.unit_price_cents, req.session_id, req.practice) == (
        viewer["id"], pid, 2, 700, session.id, False)


async def test_failing_checkout_plugin_fails_closed(aiohttp_client: Any, app_factory: Any) -> None:
    """A checkout that raises places no order: 503 with the reason, the stock back, the order cancelled."""
    client = await aiohttp_client(app_factory(plugins=(BrokenPayment(),)))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=3, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Gus")
    resp = await buy(client, viewer, eid, pid, 1)
    assert resp.status == 503
    assert "nothing was bought or charged" in (await resp.json())["error"]["message"]
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 3
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders WHERE status IN ('placed', 'pending_payment', 'reserved')") == 0
    assert await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'order.created'") == 0


async def test_1000_simultaneous_buys_for_100_in_stock(client: Any) -> None:
    """1000 buy requests at once over HTTP, 100 units: exactly 100 orders, stock 0, never below."""
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, title="Limited drop", stock=100, price_cents=500, event_id=eid)
    await go_live(app, eid)
    viewers = [await new_viewer(app, f"buyer{i}") for i in range(200)]
    batches_before = app[WRITER].batches
    started = time.perf_counter()
    responses = await asyncio.gather(*(buy(client, viewers[i % len(viewers)], eid, pid, 1) for i in range(1000)))
    statuses = [r.status for r in responses]
    elapsed = time.perf_counter() - started
    for r in responses:
        r.release()
    assert statuses.count(201) == 100, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(409) == 900
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 0
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders WHERE product_id = ?", (pid,)) == 100
    assert await app[DB].fetchval("SELECT SUM(quantity) FROM orders WHERE product_id = ?", (pid,)) == 100
    assert await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'order.created'") == 100
    # group commit: far fewer transactions than writes
    batches = app[WRITER].batches - batches_before
    assert batches < 1000
    print(f"\n1000 buys for 100 units over HTTP: {elapsed * 1000:.0f} ms, {batches} writer batches")
