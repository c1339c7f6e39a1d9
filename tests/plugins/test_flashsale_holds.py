"""Holds and the waitlist: a checkout plugin that answers ``pending_payment`` (an external payment step). An expired
hold gives its units back to the viewers of the waitlist first (one held for each), then to the sale."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lmserver import api
from lmserver.api import CheckoutResult, hookimpl
from lmserver.appkeys import DB
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.plugins.flashsalehelpers import API, buy, create, error, launch, make_app, ok, sale_row, stock


class PayLater:
    """A payment plugin: every order waits for an external payment."""

    @hookimpl(tryfirst=True)
    def checkout(self, app: Any, request: Any) -> CheckoutResult:
        return CheckoutResult("pending_payment", "https://pay.example/checkout")


async def fire_now(app: Any, key: str) -> None:
    """Let a pending timer fire now (as if its time had come) and wait until it ran."""
    [timer] = await api.pending_timers(app, key)
    await api.schedule_at(app, time.time(), key, timer.handler, timer.payload)
    async with asyncio.timeout(10):
        while await api.pending_timers(app, key):
            await asyncio.sleep(0.02)


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_an_expired_hold_goes_to_the_waitlist_then_to_the_sale(aiohttp_client: Any, make_config: Any) -> None:
    client = await aiohttp_client(make_app(make_config, plugins=(PayLater(),), hold_minutes=2))
    app = client.app
    staff = await staff_cookie(client, "owner")
    eid = await make_event(app)
    pid = await make_product(app, stock=10, price_cents=1000, event_id=eid)
    sale = await create(client, staff, eid, pid, allocated=2, deal_price_cents=600)
    await go_live(app, eid)
    await launch(client, staff, sale["id"])
    offer = f"flashsale:{sale['id']}"
    holder, first, second, late = [await new_viewer(app) for _ in range(4)]
    waitlist = f"{API}/e/{eid}/sales/{sale['id']}/waitlist"

    assert "not sold out" in await error(await client.post(waitlist, headers=vh(first)), 409)
    order = (await ok(await buy(client, holder, eid, pid, 2, offer), 201))["order"]
    assert order["status"] == "pending_payment" and order["unit_price_cents"] == 600
    key = f"flashsale:hold:{order['id']}"
    await wait_for(lambda: _pending(app, key))
    [timer] = await api.pending_timers(app, key)
    assert abs(timer.due_at - (order["created_at"] + 120)) < 0.01  # held for hold_minutes
    assert "sold out" in await error(await buy(client, first, eid, pid, 1, offer), 409)
    assert (await ok(await client.post(waitlist, headers=vh(first)), 201))["waitlist"] == {"sale_id": sale["id"], "status": "waiting", "position": 1}
    assert (await ok(await client.post(waitlist, headers=vh(second)), 201))["waitlist"]["position"] == 2

    # the payment never comes: the hold expires, one unit is held for each waiting viewer
    await fire_now(app, key)
    assert await app[DB].fetchval("SELECT status FROM orders WHERE id = ?", (order["id"],)) == "cancelled"
    row = await sale_row(app, sale["id"])
    assert (row["sold"], row["offered"]) == (0, 2)
    statuses = await app[DB].fetchall("SELECT viewer_id, status, units FROM flashsale_waitlist ORDER BY joined_at")
    assert [(r["viewer_id"], r["status"], r["units"]) for r in statuses] == [(first["id"], "offered", 1), (second["id"], "offered", 1)]
    assert "sold out" in await error(await buy(client, late, eid, pid, 1, offer), 409)  # not for someone who did not wait
    assert (await ok(await client.post(waitlist, headers=vh(late)), 201))["waitlist"]["position"] == 1  # still sold out: may wait
    mine = (await ok(await buy(client, first, eid, pid, 1, offer), 201))["order"]
    assert mine["unit_price_cents"] == 600
    assert (await sale_row(app, sale["id"]))["offered"] == 1

    # the second viewer lets the hold lapse: it goes to the next in line (the late viewer joined meanwhile)
    await fire_now(app, f"flashsale:offer:{sale['id']}:{second['id']}")
    assert await app[DB].fetchval("SELECT status FROM flashsale_waitlist WHERE viewer_id = ?", (late["id"],)) == "offered"
    assert (await sale_row(app, sale["id"]))["offered"] == 1
    await fire_now(app, f"flashsale:offer:{sale['id']}:{late['id']}")
    # nobody waits any more: the unit is back in the sale for anyone
    row = await sale_row(app, sale["id"])
    assert (row["sold"], row["offered"]) == (1, 0)
    outsider = await new_viewer(app)
    assert (await ok(await buy(client, outsider, eid, pid, 1, offer), 201))["order"]["unit_price_cents"] == 600
    assert await stock(app, pid) == 8  # two units out (both pending payment), the regular 8 untouched
    activity = await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'flashsale.offered'")
    assert activity >= 2


async def _pending(app: Any, key: str) -> bool:
    return bool(await api.pending_timers(app, key))
