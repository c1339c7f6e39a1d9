"""Helpers for the flash-sale tests: an app with the plugin, a sale set up, started without waiting its countdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import lmserver_plugins.flashsale as flashsale
from lmserver import api
from lmserver.app import create_app
from lmserver.appkeys import DB
from tests.livehelpers import vh

API = "/api/plugins/flashsale"


def make_app(make_config: Any, plugins: tuple[Any, ...] = (), **settings: Any) -> Any:
    return create_app(make_config(plugins={"flashsale": settings}), plugins=(flashsale, *plugins), load_entrypoints=False)


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]["message"]


async def create(client: Any, staff: dict[str, str], event_id: int, product_id: int, **settings: Any) -> dict[str, Any]:
    body = {"product_id": product_id, "allocated": 10, "deal_price_cents": 500, **settings}
    return (await ok(await client.post(f"{API}/events/{event_id}/sales", json=body, headers=staff), 201))["sale"]


async def sale_row(app: Any, sale_id: int) -> Any:
    return await app[DB].fetchone("SELECT * FROM flashsale_sales WHERE id = ?", (sale_id,))


async def wait_status(app: Any, sale_id: int, status: str, timeout: float = 10.0) -> Any:
    """Wait (bounded) until the scheduler moved the sale to ``status``."""
    async with asyncio.timeout(timeout):
        while (row := await sale_row(app, sale_id))["status"] != status:
            await asyncio.sleep(0.02)
    return row


async def start_now(app: Any, sale_id: int) -> None:
    """Skip a launched sale's countdown: its start moves to now (its end keeps its duration) and the start timer fires."""
    row = await sale_row(app, sale_id)
    now = time.time()
    async with app[DB].transaction() as tx:
        await tx.execute("UPDATE flashsale_sales SET starts_at = ?, ends_at = ? WHERE id = ?",
                         (now, now + row["duration_seconds"], sale_id))
    await api.schedule_at(app, now + row["duration_seconds"], f"flashsale:end:{sale_id}", "flashsale.end", {"sale_id": sale_id})
    await api.schedule_at(app, now, f"flashsale:start:{sale_id}", "flashsale.start", {"sale_id": sale_id})
    await wait_status(app, sale_id, "live")


async def launch(client: Any, staff: dict[str, str], sale_id: int, start: bool = True) -> dict[str, Any]:
    sale = (await ok(await client.post(f"{API}/sales/{sale_id}/launch", headers=staff)))["sale"]
    if start:
        await start_now(client.app, sale_id)
    return sale


async def buy(client: Any, viewer: dict[str, str], event_id: int, product_id: int, quantity: int = 1, offer: str | None = None) -> Any:
    body: dict[str, Any] = {"product_id": product_id, "quantity": quantity}
    if offer is not None:
        body["offer"] = offer
    return await client.post(f"/api/e/{event_id}/orders", json=body, headers=vh(viewer))


async def stock(app: Any, product_id: int) -> int:
    return await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (product_id,))
