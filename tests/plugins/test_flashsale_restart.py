"""A restart during a flash sale's countdown and during the sale: launch and end happen at their wall-clock times,
and a sale whose end passed while the server was down sells nothing more (the clock decides, not the timer)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from lmserver import api
from lmserver.db import DB_FILENAME
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie
from tests.plugins.flashsalehelpers import buy, create, error, launch, make_app, ok, sale_row, wait_status


def shift(data_dir: Any, sale_id: int, starts_at: float, ends_at: float) -> None:
    """While the server is down, time passes: the sale's times and timers move as if the clock had run on."""
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("UPDATE flashsale_sales SET starts_at = ?, ends_at = ? WHERE id = ?", (starts_at, ends_at, sale_id))
        conn.execute("UPDATE timers SET due_at = ? WHERE key = ?", (starts_at, f"flashsale:start:{sale_id}"))
        conn.execute("UPDATE timers SET due_at = ? WHERE key = ?", (ends_at, f"flashsale:end:{sale_id}"))
    conn.close()


async def test_restart_during_countdown_and_during_the_sale(aiohttp_client: Any, make_config: Any, data_dir: Any) -> None:
    client = await aiohttp_client(make_app(make_config))
    staff = await staff_cookie(client, "moderator")
    eid = await make_event(client.app)
    pid = await make_product(client.app, stock=20, price_cents=1000, event_id=eid)
    sale = await create(client, staff, eid, pid, allocated=5, deal_price_cents=400, countdown_seconds=60, duration_minutes=10)
    await go_live(client.app, eid)
    launched = await launch(client, staff, sale["id"], start=False)
    await client.close()  # restart during the countdown

    # the countdown ended while the server was down; the sale has 9 minutes left
    now = time.time()
    shift(data_dir, sale["id"], now - 60, now + 540)
    client = await aiohttp_client(make_app(make_config))
    row = await wait_status(client.app, sale["id"], "live")  # the start timer fired at startup
    assert row["ends_at"] == now + 540 and row["starts_at"] == now - 60
    async with asyncio.timeout(10):  # the fired timer's row goes once its handler returned
        while [t.key for t in await api.pending_timers(client.app, "flashsale:")] != [f"flashsale:end:{sale['id']}"]:
            await asyncio.sleep(0.02)
    session = await go_live(client.app, eid)
    assert session.resumed
    viewer = await new_viewer(client.app)
    offer = f"flashsale:{sale['id']}"
    assert (await ok(await buy(client, viewer, eid, pid, 2, offer), 201))["order"]["unit_price_cents"] == 400
    await client.close()  # restart during the sale

    # the end passed while the server was down: the sale ends at startup, nothing more is sold at the deal price
    now = time.time()
    shift(data_dir, sale["id"], now - 600, now - 5)
    client = await aiohttp_client(make_app(make_config))
    row = await wait_status(client.app, sale["id"], "ended")
    assert row["end_reason"] == "time is up" and row["sold"] == 2
    async with asyncio.timeout(10):
        while await api.pending_timers(client.app, "flashsale:"):
            await asyncio.sleep(0.02)
    await go_live(client.app, eid)
    assert "has ended" in await error(await buy(client, viewer, eid, pid, 1, offer), 409)
    order = (await ok(await buy(client, viewer, eid, pid, 18), 201))["order"]  # the 3 unsold units are back in stock
    assert order["unit_price_cents"] == 1000
    assert launched["status"] == "countdown"
    assert (await sale_row(client.app, sale["id"]))["sold"] == 2


async def test_a_sale_is_not_stretched_by_a_late_end_timer(aiohttp_client: Any, make_config: Any, data_dir: Any) -> None:
    """Past ends_at, an order is no sale order even before the end timer ran (the clock decides)."""
    client = await aiohttp_client(make_app(make_config))
    staff = await staff_cookie(client, "owner")
    eid = await make_event(client.app)
    pid = await make_product(client.app, stock=10, price_cents=1000, event_id=eid)
    sale = await create(client, staff, eid, pid, allocated=5, deal_price_cents=400)
    await go_live(client.app, eid)
    await launch(client, staff, sale["id"])
    await api.cancel_timer(client.app, f"flashsale:end:{sale['id']}")  # as if the end timer were late
    async with api.db(client.app).transaction() as tx:
        await tx.execute("UPDATE flashsale_sales SET ends_at = ? WHERE id = ?", (time.time() - 1, sale["id"]))
    viewer = await new_viewer(client.app)
    assert "has ended" in await error(await buy(client, viewer, eid, pid, 1, f"flashsale:{sale['id']}"), 409)
