"""Staff cancel a flash-sale order on the Orders page while the sale runs: the unit goes back to the sale's
allocation (the core's ``order_cancelled`` hook), so the next buyer gets it at the deal price."""

from __future__ import annotations

from typing import Any

from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie
from tests.plugins.flashsalehelpers import buy, create, launch, make_app, ok, sale_row, stock


async def test_cancelled_order_returns_its_unit_to_the_running_sale(aiohttp_client: Any, make_config: Any) -> None:
    client = await aiohttp_client(make_app(make_config))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, price_cents=2000, event_id=eid)
    await go_live(app, eid)
    staff = await staff_cookie(client, "owner")
    sale = await create(client, staff, eid, pid, allocated=1, deal_price_cents=900)
    await launch(client, staff, sale["id"])
    first = (await ok(await buy(client, await new_viewer(app, "Ann"), eid, pid, offer=f"flashsale:{sale['id']}"), 201))["order"]
    assert first["unit_price_cents"] == 900 and (await sale_row(app, sale["id"]))["sold"] == 1
    resp = await client.post(f"/api/orders/{first['id']}/status", json={"status": "cancelled"}, headers=staff)
    assert resp.status == 200, await resp.text()
    assert (await sale_row(app, sale["id"]))["sold"] == 0 and await stock(app, pid) == 5
    second = (await ok(await buy(client, await new_viewer(app, "Bo"), eid, pid, offer=f"flashsale:{sale['id']}"), 201))["order"]
    assert second["unit_price_cents"] == 900 and (await sale_row(app, sale["id"]))["sold"] == 1
