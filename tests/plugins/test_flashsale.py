"""Flash-sale plugin over HTTP: setting up (rules and refusals), the allocation set aside, launching, buying at the
deal price through the core order path, per-buyer limit, sold out, end early, overlap, duplicate/edit/delete,
practice, the catalog's price history, figures; and the storm of 1000 attempts for 100 units."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lmserver import api
from lmserver.appkeys import DB, LIVE
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.plugins.flashsalehelpers import API, buy, create, error, launch, make_app, ok, sale_row, start_now, stock, wait_status


@pytest.fixture
async def client(aiohttp_client: Any, make_config: Any) -> Any:
    return await aiohttp_client(make_app(make_config))


@pytest.fixture
async def staff(client: Any) -> dict[str, str]:
    return await staff_cookie(client, "assistant")


async def shop(client: Any, stock_units: int = 20, price: int = 1000) -> tuple[int, int]:
    eid = await make_event(client.app)
    pid = await make_product(client.app, title="Mug", stock=stock_units, price_cents=price, event_id=eid)
    return eid, pid


async def test_setup_refuses_bad_input_with_the_numbers(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=20, price=1000)
    url = f"{API}/events/{eid}/sales"
    base = {"product_id": pid, "allocated": 5, "deal_price_cents": 500}
    msg = await error(await client.post(url, json={**base, "deal_price_cents": 1000}, headers=staff), 400)
    assert "10.00 USD" in msg and "below the regular price" in msg
    assert "deal_price_cents" in await error(await client.post(url, json={**base, "deal_price_cents": 0}, headers=staff), 400)
    msg = await error(await client.post(url, json={**base, "allocated": 21}, headers=staff), 400)
    assert "21" in msg and "20 in stock" in msg
    assert "allocated" in await error(await client.post(url, json={**base, "allocated": 0}, headers=staff), 400)
    assert "countdown_seconds" in await error(await client.post(url, json={**base, "countdown_seconds": 5}, headers=staff), 400)
    assert "countdown_seconds" in await error(await client.post(url, json={**base, "countdown_seconds": 301}, headers=staff), 400)
    assert "duration_minutes" in await error(await client.post(url, json={**base, "duration_minutes": 61}, headers=staff), 400)
    assert "colour" in await error(await client.post(url, json={**base, "colour": 1}, headers=staff), 400)
    other = await make_product(client.app, title="Not in the bag", stock=5)
    assert "shopping bag" in await error(await client.post(url, json={**base, "product_id": other}, headers=staff), 400)
    # nothing half-written
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM flashsale_sales") == 0
    # a viewer cannot set up a sale
    viewer = await new_viewer(client.app)
    assert (await client.post(url, json=base, headers=vh(viewer))).status in (401, 403)


async def test_the_allocation_is_set_aside_from_regular_buyers(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=12)
    sale = await create(client, staff, eid, pid, allocated=10)
    assert sale["status"] == "draft" and sale["left"] == 10
    # a second sale may only allocate what is not set aside
    msg = await error(await client.post(f"{API}/events/{eid}/sales", json={"product_id": pid, "allocated": 3, "deal_price_cents": 400},
                                        headers=staff), 400)
    assert "2 in stock" in msg and "10 already set aside" in msg
    await go_live(client.app, eid)
    viewer = await new_viewer(client.app)
    msg = await error(await buy(client, viewer, eid, pid, 3), 409)
    assert "only 2 left" in msg and "10 are set aside" in msg
    await ok(await buy(client, viewer, eid, pid, 2), 201)
    assert "sold out" in await error(await buy(client, viewer, eid, pid, 1), 409)
    assert await stock(client.app, pid) == 10


async def test_launch_only_while_live_then_countdown_then_deal_price(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=30, price=1000)
    sale = await create(client, staff, eid, pid, allocated=10, deal_price_cents=600, countdown_seconds=30, duration_minutes=5)
    assert "not live" in await error(await client.post(f"{API}/sales/{sale['id']}/launch", headers=staff), 409)
    session = await go_live(client.app, eid)
    launched = await launch(client, staff, sale["id"], start=False)
    assert launched["status"] == "countdown" and launched["regular_price_cents"] == 1000 and launched["lowest_30d_cents"] == 1000
    assert launched["ends_at"] - launched["starts_at"] == 300 and 29 <= launched["starts_at"] - time.time() <= 30
    timers = {t.key: t.due_at for t in await api.pending_timers(client.app, "flashsale:")}
    assert timers == {f"flashsale:start:{sale['id']}": launched["starts_at"], f"flashsale:end:{sale['id']}": launched["ends_at"]}
    viewer = await new_viewer(client.app)
    offer = f"flashsale:{sale['id']}"
    assert "starts in" in await error(await buy(client, viewer, eid, pid, 1, offer), 409)
    # a plain buy during the countdown is a regular one
    assert (await ok(await buy(client, viewer, eid, pid, 1), 201))["order"]["unit_price_cents"] == 1000
    # the viewer page sees the countdown
    sales = (await ok(await client.get(f"{API}/e/{eid}/sales")))["sales"]
    assert [s["status"] for s in sales] == ["countdown"] and sales[0]["deal_price_cents"] == 600
    await start_now(client.app, sale["id"])
    order = (await ok(await buy(client, viewer, eid, pid, 2, offer), 201))["order"]
    assert order["unit_price_cents"] == 600 and order["amount_cents"] == 1200
    # a plain buy while the sale runs is a sale order too (the best price)
    assert (await ok(await buy(client, viewer, eid, pid, 1), 201))["order"]["unit_price_cents"] == 600
    row = await sale_row(client.app, sale["id"])
    assert row["sold"] == 3 and row["session_id"] == session.id
    names = [r["name"] for r in await client.app[DB].fetchall("SELECT name FROM activity WHERE name IN ('flashsale.launched', 'flashsale.started') ORDER BY id")]
    assert names == ["flashsale.launched", "flashsale.started"]


async def test_per_buyer_limit_holds_for_ten_requests_at_once(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=50)
    sale = await create(client, staff, eid, pid, allocated=20, per_buyer_limit=2)
    await go_live(client.app, eid)
    await launch(client, staff, sale["id"])
    viewer = await new_viewer(client.app)
    responses = await asyncio.gather(*(buy(client, viewer, eid, pid, 1, f"flashsale:{sale['id']}") for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    messages = [(await r.json())["error"]["message"] for r in responses if r.status == 409]
    assert statuses == [201, 201] + [409] * 8
    assert all("at most 2 per buyer" in m for m in messages), messages
    msg = await error(await buy(client, await new_viewer(client.app), eid, pid, 3, f"flashsale:{sale['id']}"), 409)
    assert "at most 2 per buyer" in msg and "you asked for 3" in msg
    assert (await sale_row(client.app, sale["id"]))["sold"] == 2


async def test_sold_out_then_regular_price_and_end_early_returns_units(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=10, price=1000)
    sale = await create(client, staff, eid, pid, allocated=3, deal_price_cents=700)
    await go_live(client.app, eid)
    await launch(client, staff, sale["id"])
    a, b = await new_viewer(client.app), await new_viewer(client.app)
    offer = f"flashsale:{sale['id']}"
    assert "only 3 left at the flash-sale price" in await error(await buy(client, a, eid, pid, 4, offer), 409)
    await ok(await buy(client, a, eid, pid, 3, offer), 201)
    assert "sold out" in await error(await buy(client, b, eid, pid, 1, offer), 409)
    assert (await ok(await buy(client, b, eid, pid, 1), 201))["order"]["unit_price_cents"] == 1000  # regular stock, regular price
    row = await sale_row(client.app, sale["id"])
    assert row["sold"] == 3 and row["sold_out_at"] is not None
    async with asyncio.timeout(5):
        while not await client.app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'flashsale.sold_out'"):
            await asyncio.sleep(0.02)
    ended = (await ok(await client.post(f"{API}/sales/{sale['id']}/end", headers=staff)))["sale"]
    assert ended["status"] == "ended" and ended["end_reason"] == "ended early by staff"
    assert ended["figures"] == {"units_sold": 3, "buyers": 1, "gmv_cents": 2100, "seconds_to_sell_out": ended["figures"]["seconds_to_sell_out"]}
    assert "has ended" in await error(await buy(client, b, eid, pid, 1, offer), 409)
    assert await api.pending_timers(client.app, "flashsale:") == []
    assert "not running" in await error(await client.post(f"{API}/sales/{sale['id']}/end", headers=staff), 409)


async def test_end_early_gives_unsold_units_back_at_once(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=10)
    sale = await create(client, staff, eid, pid, allocated=8)
    await go_live(client.app, eid)
    await launch(client, staff, sale["id"])
    viewer = await new_viewer(client.app)
    await ok(await buy(client, viewer, eid, pid, 2, f"flashsale:{sale['id']}"), 201)
    await ok(await client.post(f"{API}/sales/{sale['id']}/end", headers=staff))
    order = (await ok(await buy(client, viewer, eid, pid, 8), 201))["order"]  # 6 unsold + 2 never allocated
    assert order["unit_price_cents"] == 1000 and await stock(client.app, pid) == 0


async def test_overlap_duplicate_edit_delete(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=30)
    first = await create(client, staff, eid, pid, allocated=5)
    second = (await ok(await client.post(f"{API}/sales/{first['id']}/duplicate", headers=staff), 201))["sale"]
    assert second["id"] != first["id"] and second["allocated"] == 5 and second["status"] == "draft"
    edited = (await ok(await client.patch(f"{API}/sales/{second['id']}", json={"allocated": 7, "per_buyer_limit": 1}, headers=staff)))["sale"]
    assert edited["allocated"] == 7 and edited["per_buyer_limit"] == 1
    assert "below the regular price" in await error(
        await client.patch(f"{API}/sales/{second['id']}", json={"deal_price_cents": 5000}, headers=staff), 400)
    await go_live(client.app, eid)
    await launch(client, staff, first["id"], start=False)
    msg = await error(await client.post(f"{API}/sales/{second['id']}/launch", headers=staff), 409)
    assert f"flash sale {first['id']}" in msg and "cannot overlap" in msg
    assert "already launched" in await error(await client.post(f"{API}/sales/{first['id']}/launch", headers=staff), 409)
    assert "can be edited" in await error(await client.patch(f"{API}/sales/{first['id']}", json={"allocated": 2}, headers=staff), 409)
    assert "end it instead" in await error(await client.delete(f"{API}/sales/{first['id']}", headers=staff), 409)
    await ok(await client.delete(f"{API}/sales/{second['id']}", headers=staff))
    assert (await client.get(f"{API}/sales/{second['id']}", headers=staff)).status == 404
    listed = (await ok(await client.get(f"{API}/events/{eid}/sales", headers=staff)))["sales"]
    assert [s["id"] for s in listed] == [first["id"]]


async def test_practice_sale_is_labelled_and_sets_nothing_aside(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=10)
    sale = await create(client, staff, eid, pid, allocated=10)
    await go_live(client.app, eid, practice=True)
    launched = await launch(client, staff, sale["id"])
    assert launched["practice"] is True
    viewer = await new_viewer(client.app)
    order = (await ok(await buy(client, viewer, eid, pid, 2, f"flashsale:{sale['id']}"), 201))["order"]
    assert order["practice"] is True and order["unit_price_cents"] == 500
    # the whole flow runs (the sale counts its units) but nothing leaves the stock
    assert (await sale_row(client.app, sale["id"]))["sold"] == 2 and await stock(client.app, pid) == 10
    await ok(await buy(client, viewer, eid, pid, 1), 201)  # a plain practice order at the regular price: no stock either
    assert await stock(client.app, pid) == 10
    records = await client.app[DB].fetchall("SELECT practice FROM activity WHERE name LIKE 'flashsale.%' AND name != 'flashsale.changed'")
    assert records and all(r["practice"] for r in records)
    await client.app[LIVE].end("practice over")
    assert (await wait_status(client.app, sale["id"], "ended"))["end_reason"] == "the LIVE ended"


async def test_price_history_gives_the_lowest_price_of_30_days(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=10, price=1000)
    owner = await staff_cookie(client, "owner")
    await ok(await client.patch(f"/api/products/{pid}", json={"price_cents": 800}, headers=owner))
    await ok(await client.patch(f"/api/products/{pid}", json={"price_cents": 1200}, headers=owner))
    history = await api.price_history(client.app, pid, 30)
    assert [h["price_cents"] for h in history] == [1000, 800, 1200]
    async with client.app[DB].transaction() as tx:  # the 800 was 31 days ago; 1000 before it
        await tx.execute("UPDATE product_prices SET since = since - 40 * 86400 WHERE product_id = ? AND price_cents = 1000", (pid,))
        await tx.execute("UPDATE product_prices SET since = since - 31 * 86400 WHERE product_id = ? AND price_cents = 800", (pid,))
    assert [h["price_cents"] for h in await api.price_history(client.app, pid, 30)] == [800, 1200]  # 800 was in effect 30 days ago
    sale = await create(client, staff, eid, pid, allocated=2, deal_price_cents=900)
    assert sale["lowest_30d_cents"] == 800 and sale["regular_price_cents"] == 1200


async def test_session_figures_show_the_sales(client: Any, staff: dict[str, str]) -> None:
    eid, pid = await shop(client, stock_units=10)
    sale = await create(client, staff, eid, pid, allocated=4, deal_price_cents=250)
    session = await go_live(client.app, eid)
    await launch(client, staff, sale["id"])
    for _ in range(2):
        await ok(await buy(client, await new_viewer(client.app), eid, pid, 2, f"flashsale:{sale['id']}"), 201)
    stats = await api.session_figures(client.app, session.id)
    figures = {f["name"]: f["value"] for f in stats["figures"]} if isinstance(stats["figures"], list) else stats["figures"]
    assert figures["flashsale_units"] == 4 and figures["flashsale_buyers"] == 2 and figures["flashsale_gmv"] == "10.00"
    # after the LIVE: on the home page's latest-LIVE card
    await client.app[LIVE].end("host ended")
    owner = await staff_cookie(client, "owner")
    html = await (await client.get("/", headers={"Cookie": owner["Cookie"]})).text()
    assert 'data-figure="flashsale_units">4<' in html and 'data-figure="flashsale_gmv">10.00<' in html


async def test_storm_1000_attempts_200_viewers_100_units_limit_2(client: Any, staff: dict[str, str]) -> None:
    """1000 simultaneous buy attempts over HTTP: exactly 100 units sold, nobody above 2, regular stock untouched."""
    app = client.app
    eid, pid = await shop(client, stock_units=500, price=2000)
    sale = await create(client, staff, eid, pid, allocated=100, deal_price_cents=990, per_buyer_limit=2)
    await go_live(app, eid)
    await launch(client, staff, sale["id"])
    viewers = [await new_viewer(app, f"buyer{i}") for i in range(200)]
    offer = f"flashsale:{sale['id']}"
    responses = await asyncio.gather(*(buy(client, viewers[i % 200], eid, pid, 1, offer) for i in range(1000)))
    statuses = [r.status for r in responses]
    for r in responses:
        r.release()
    assert statuses.count(201) == 100 and statuses.count(409) == 900, {s: statuses.count(s) for s in set(statuses)}
    per_buyer = await app[DB].fetchall("SELECT viewer_id, SUM(quantity) AS n FROM orders WHERE product_id = ? AND status = 'placed'"
                                       " GROUP BY viewer_id", (pid,))
    assert max(r["n"] for r in per_buyer) <= 2 and sum(r["n"] for r in per_buyer) == 100
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders WHERE product_id = ? AND unit_price_cents != 990", (pid,)) == 0
    row = await sale_row(app, sale["id"])
    assert row["sold"] == 100 and row["allocated"] == 100
    assert await app[DB].fetchval("SELECT SUM(quantity) FROM flashsale_orders WHERE sale_id = ? AND cancelled = 0", (sale["id"],)) == 100
    assert await stock(app, pid) == 400  # the regular 400 untouched
    regular = await new_viewer(app)
    assert (await ok(await buy(client, regular, eid, pid, 1), 201))["order"]["unit_price_cents"] == 2000


def test_settings_are_checked_and_name_the_key() -> None:
    from lmserver.config import ConfigError
    from lmserver_plugins.flashsale.store import Settings

    assert Settings.from_table({}).hold_minutes == 5 and Settings.from_table({"hold_minutes": 10}).hold_minutes == 10
    with pytest.raises(ConfigError, match="'plugins.flashsale.hold_minute' is not a setting"):
        Settings.from_table({"hold_minute": 5})
    with pytest.raises(ConfigError, match="'plugins.flashsale.hold_minutes' must be a whole number of minutes from 1 to 60"):
        Settings.from_table({"hold_minutes": 0})
