"""docs/checkout.md is real code: its payment plugin is loaded into a server and bought through."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import types
from pathlib import Path
from typing import Any

from lmserver.app import create_app
from lmserver.appkeys import DB
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.test_plugins import _lmserver_imports

DOC = Path(__file__).resolve().parent.parent / "docs" / "checkout.md"
SECRET = "s3cret"


def example() -> str:
    found = dict(re.findall(r"```python\n# docs example: (\w+)\n(.*?)```", DOC.read_text(), re.S))
    assert list(found) == ["payhost"], "docs/checkout.md lost its example"
    return found["payhost"]


def load() -> types.ModuleType:
    module = types.ModuleType("lmserver_payhost")
    exec(compile(example(), "docs/checkout.md (payhost)", "exec"), module.__dict__)
    module.PLUGIN_NAME = "payhost"  # type: ignore[attr-defined]
    return module


def test_the_example_uses_only_the_public_api() -> None:
    assert _lmserver_imports(example(), "payhost") == []


async def call_back(client: Any, body: dict[str, Any], secret: str = SECRET) -> Any:
    raw = json.dumps(body).encode()
    sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return await client.post("/api/plugins/payhost/callback", data=raw,
                             headers={"Content-Type": "application/json", "X-PayHost-Signature": sig})


async def test_pay_through_the_hosted_checkout(aiohttp_client: Any, make_config: Any) -> None:
    plugin = load()
    client = await aiohttp_client(create_app(make_config(plugins={"payhost": {"pay_url": "https://pay.example/checkout",
                                                                              "secret": SECRET}}), plugins=(plugin,)))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, price_cents=1500, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Ann")
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 2}, headers=vh(viewer))
    assert resp.status == 201, await resp.text()
    order = (await resp.json())["order"]
    assert order["status"] == "pending_payment"
    assert order["redirect_url"] == f"https://pay.example/checkout?order={order['id']}&amount=3000&currency=USD&return=%2F"
    # a forged callback changes nothing
    resp = await call_back(client, {"order_id": order["id"], "status": "paid", "payment_id": "p1"}, secret="guess")
    assert resp.status == 401
    assert await app[DB].fetchval("SELECT status FROM orders WHERE id = ?", (order["id"],)) == "pending_payment"
    # paid; delivered twice: still one change
    for _ in range(2):
        resp = await call_back(client, {"order_id": order["id"], "status": "paid", "payment_id": "p1"})
        assert resp.status == 200, await resp.text()
    hist = await app[DB].fetchall("SELECT from_status, to_status, by, note FROM order_status_history WHERE order_id = ? ORDER BY id",
                                  (order["id"],))
    assert [tuple(h) for h in hist] == [("reserved", "pending_payment", "checkout", None), ("pending_payment", "paid", "payhost", "payment p1")]
    # a failed payment: cancelled, units back
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1}, headers=vh(viewer))
    second = (await resp.json())["order"]
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 2
    resp = await call_back(client, {"order_id": second["id"], "status": "failed", "payment_id": "p2"})
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 3
    # staff see both on the Orders page's API
    staff = await staff_cookie(client, "owner")
    listed = (await (await client.get(f"/api/orders?event={eid}", headers=staff)).json())["orders"]
    assert [o["status"] for o in listed] == ["cancelled", "paid"]
