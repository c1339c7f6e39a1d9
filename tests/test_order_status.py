"""Order statuses (issue 18): the state machine, its history, stock back on cancel, bulk changes, the Orders API
and its CSV, buyer details (edge checks, staff-only), the one orders writer."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path
from typing import Any

import pytest

from lmserver import orderstatus
from lmserver.appkeys import DB
from lmserver.plugins.hookspecs import hookimpl
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = "12 Harbour Road\n4000 Basel, Switzerland"


async def buy(client: Any, viewer: dict[str, str], eid: int, pid: int, qty: int = 1) -> dict[str, Any]:
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": qty}, headers=vh(viewer))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["order"]


async def set_status(client: Any, staff: dict[str, str], oid: int, status: str, note: str | None = None) -> Any:
    return await client.post(f"/api/orders/{oid}/status", json={"status": status, "note": note}, headers=staff)


async def stock(app: Any, pid: int) -> int:
    return int(await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)))


# --------------------------------------------------------------------------------------------- the table


def test_every_status_reaches_a_final_one_and_cancel_refund_from_every_open_state() -> None:
    for status in orderstatus.STATUSES:
        if status in orderstatus.FINAL:
            assert orderstatus.NEXT[status] == () and orderstatus.allowed(status) == []
        else:
            assert {"cancelled", "refunded"} <= set(orderstatus.NEXT[status]) or status == "reserved"
    assert orderstatus.allowed("reserved") == ["cancelled"]  # placing is the checkout's job
    assert orderstatus.allowed("placed") == ["paid", "cancelled", "refunded"]
    assert orderstatus.allowed("paid") == ["shipped", "cancelled", "refunded"]
    assert orderstatus.allowed("shipped") == ["delivered", "cancelled", "refunded"]


async def test_the_whole_way_with_history_and_409_naming_the_allowed(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, event_id=eid)
    await go_live(app, eid)
    order = await buy(client, await new_viewer(app, "Ann"), eid, pid, 2)
    staff = await staff_cookie(client, "moderator")
    resp = await set_status(client, staff, order["id"], "shipped")
    assert resp.status == 409
    err = (await resp.json())["error"]
    assert "is placed and cannot become shipped: it can become paid, cancelled, refunded" in err["message"]
    assert err["details"]["allowed"] == ["paid", "cancelled", "refunded"]
    for to in ("paid", "shipped", "delivered"):
        resp = await set_status(client, staff, order["id"], to, note=f"now {to}")
        assert resp.status == 200, await resp.text()
    resp = await set_status(client, staff, order["id"], "cancelled")
    assert resp.status == 409 and "delivered is final" in (await resp.json())["error"]["message"]
    detail = await (await client.get(f"/api/orders/{order['id']}", headers=staff)).json()
    assert detail["order"]["status"] == "delivered" and detail["order"]["allowed"] == []
    steps = [(h["from_status"], h["to_status"], h["by"]) for h in detail["history"]]
    assert steps == [("reserved", "placed", "checkout"), ("placed", "paid", "moderator1"), ("paid", "shipped", "moderator1"),
                     ("shipped", "delivered", "moderator1")] or [s[:2] for s in steps] == [
        ("reserved", "placed"), ("placed", "paid"), ("paid", "shipped"), ("shipped", "delivered")]
    assert detail["history"][1]["note"] == "now paid" and detail["history"][1]["at"] > 0
    # each change is an order.status_changed activity (the seam for webhooks)
    names = [r["name"] for r in await app[DB].fetchall("SELECT name FROM activity WHERE name = 'order.status_changed'")]
    assert len(names) == 3
    assert await stock(app, pid) == 3  # delivered: nothing came back
    # still a sale in the figures
    from lmserver.figures import counted_order
    assert await app[DB].fetchval(f"SELECT COUNT(*) FROM orders WHERE {counted_order()}") == 1


async def test_cancel_puts_units_back_refund_after_shipping_does_not(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=10, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Bo")
    a, b = await buy(client, viewer, eid, pid, 3), await buy(client, viewer, eid, pid, 2)
    assert await stock(app, pid) == 5
    owner = await staff_cookie(client, "owner")
    resp = await set_status(client, owner, a["id"], "cancelled", "customer asked")
    assert resp.status == 200
    change = (await resp.json())["changes"][0]
    assert change["units_returned"] == 3 and change["stock"] == 8 and await stock(app, pid) == 8
    for to in ("paid", "shipped", "refunded"):
        assert (await set_status(client, owner, b["id"], to)).status == 200
    assert await stock(app, pid) == 8  # shipped units left the studio
    assert await app[DB].fetchval("SELECT status_reason FROM orders WHERE id = ?", (a["id"],)) == "customer asked"


async def test_bulk_is_all_or_none(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=10, event_id=eid)
    await go_live(app, eid)
    ids = [(await buy(client, await new_viewer(app, f"V{i}"), eid, pid))["id"] for i in range(3)]
    staff = await staff_cookie(client, "moderator")
    assert (await set_status(client, staff, ids[0], "paid")).status == 200
    resp = await client.post("/api/orders/status", json={"order_ids": ids, "status": "paid"}, headers=staff)
    assert resp.status == 409 and f"order {ids[0]} is already paid" in (await resp.json())["error"]["message"]
    assert [r["status"] for r in await app[DB].fetchall("SELECT status FROM orders ORDER BY id")] == ["paid", "placed", "placed"]
    resp = await client.post("/api/orders/status", json={"order_ids": ids[1:], "status": "paid", "note": "bank transfer"}, headers=staff)
    assert resp.status == 200 and len((await resp.json())["changes"]) == 2
    resp = await client.post("/api/orders/status", json={"order_ids": [], "status": "paid"}, headers=staff)
    assert resp.status == 400 and "order_ids" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/orders/status", json={"order_ids": ids, "status": "lost"}, headers=staff)
    assert resp.status == 400 and "'status' must be one of" in (await resp.json())["error"]["message"]
    assistant = await staff_cookie(client, "assistant")
    assert (await client.post("/api/orders/status", json={"order_ids": ids, "status": "shipped"}, headers=assistant)).status == 403


class TakesBack:
    """A plugin with its own allocation: the order_cancelled hook runs in the cancel's savepoint."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[dict[str, Any]] = []
        self.fail = fail

    @hookimpl
    def order_cancelled(self, conn: Any, order: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("allocation table is gone")
        assert conn.execute("SELECT status FROM orders WHERE id = ?", (order["id"],)).fetchone()[0] == order["to_status"]
        self.seen.append(order)


async def test_order_cancelled_hook_takes_back_units_and_a_failing_one_leaves_the_order(aiohttp_client: Any, app_factory: Any) -> None:
    plugin = TakesBack()
    client = await aiohttp_client(app_factory(plugins=[plugin]))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=4, event_id=eid)
    await go_live(app, eid)
    order = await buy(client, await new_viewer(app, "Cy"), eid, pid, 2)
    staff = await staff_cookie(client, "owner")
    assert (await set_status(client, staff, order["id"], "cancelled")).status == 200
    assert [(o["id"], o["quantity"], o["from_status"]) for o in plugin.seen] == [(order["id"], 2, "placed")]
    plugin.fail = True
    order = await buy(client, await new_viewer(app, "Di"), eid, pid, 1)
    resp = await set_status(client, staff, order["id"], "cancelled")
    assert resp.status == 503 and "order_cancelled" in (await resp.json())["error"]["message"]
    assert await app[DB].fetchval("SELECT status FROM orders WHERE id = ?", (order["id"],)) == "placed"
    assert await stock(app, pid) == 3


# --------------------------------------------------------------------------------------------- buyer details


async def test_buyer_details_checked_at_the_edge_copied_on_the_order_and_staff_only(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, event_id=eid)
    await go_live(app, eid)
    ann = await new_viewer(app, "Ann")
    resp = await client.get("/api/viewer/buyer", headers=vh(ann))
    assert (await resp.json()) == {"buyer": None, "ask": True}
    for body, fragment in [({"name": "Ann", "email": "ann", "address": ADDRESS}, "'email' must be an e-mail address"),
                           ({"name": "Ann", "email": "ann@example.com", "address": "Basel"}, "'address' needs at least two lines"),
                           ({"name": "", "email": "ann@example.com", "address": ADDRESS}, "'name' is required"),
                           ({"name": "Ann", "email": "ann@example.com", "address": ADDRESS, "phone": "1"}, "phone")]:
        resp = await client.put("/api/viewer/buyer", json=body, headers=vh(ann))
        assert resp.status == 400 and fragment in (await resp.json())["error"]["message"], body
    resp = await client.put("/api/viewer/buyer", json={"name": "  Ann   Lee ", "email": "Ann@Example.com", "address": ADDRESS},
                            headers=vh(ann))
    assert resp.status == 200
    assert (await resp.json())["buyer"]["name"] == "Ann Lee"
    order = await buy(client, ann, eid, pid)
    assert "buyer_email" not in order and "ship_address" not in order  # the buyer's own answer stays short
    # she moves: the order keeps the address it was placed with
    await client.put("/api/viewer/buyer", json={"name": "Ann Lee", "email": "ann@example.com", "address": "1 New St\nZurich"}, headers=vh(ann))
    staff = await staff_cookie(client, "assistant")
    listed = (await (await client.get(f"/api/orders?event={eid}", headers=staff)).json())["orders"]
    assert [(o["buyer_name"], o["buyer_email"], o["ship_address"]) for o in listed] == [("Ann Lee", "ann@example.com", ADDRESS)]
    # never on a public route, the viewer WebSocket's records, or the console's bus record
    bo = await new_viewer(app, "Bo")
    assert (await (await client.get("/api/viewer/buyer", headers=vh(bo))).json())["buyer"] is None
    public = await (await client.get(f"/api/e/{eid}/state", headers=vh(bo))).text()
    assert "Harbour" not in public and "ann@example.com" not in public
    rows = await app[DB].fetchall("SELECT data FROM activity")
    assert rows and not any("Harbour" in r["data"] or "ann@example.com" in r["data"] for r in rows)
    assert (await client.get(f"/api/orders?event={eid}")).status == 401
    assert (await client.get(f"/api/orders?event={eid}", headers=vh(bo))).status == 401


async def test_viewer_websocket_carries_no_buyer_details(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=5, event_id=eid)
    await go_live(app, eid)
    ann = await new_viewer(app, "Ann")
    await client.put("/api/viewer/buyer", json={"name": "Ann Lee", "email": "ann@example.com", "address": ADDRESS}, headers=vh(ann))
    bo = await new_viewer(app, "Bo")
    async with client.ws_connect(f"/ws/viewer?event={eid}", headers={"Cookie": bo["Cookie"]}) as ws:
        await buy(client, ann, eid, pid)
        staff = await staff_cookie(client, "owner")
        oid = await app[DB].fetchval("SELECT id FROM orders")
        assert (await set_status(client, staff, oid, "cancelled")).status == 200
        seen = []
        for _ in range(20):
            msg = await ws.receive(timeout=5)
            seen.append(msg.data)
            if '"product.stock"' in msg.data and '"stock": 5' in msg.data.replace('"stock":5', '"stock": 5'):
                break
    text = "\n".join(str(s) for s in seen)
    assert "product.stock" in text
    assert "Ann Lee" not in text and "ann@example.com" not in text and "Harbour" not in text


# --------------------------------------------------------------------------------------------- lists and CSV


async def test_filters_csv_escaping_and_buyer_list(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    mug = await make_product(app, "Mug", stock=10, event_id=eid)
    cap = await make_product(app, "Cap", stock=10, event_id=eid)
    await go_live(app, eid)
    evil = await new_viewer(app, "=HYPERLINK(\"x\")")
    await client.put("/api/viewer/buyer", json={"name": "+Mallory", "email": "m@example.com", "address": "@home 1\n-Town"}, headers=vh(evil))
    await buy(client, evil, eid, mug, 2)
    await buy(client, evil, eid, cap)
    other = await new_viewer(app, "Zoe")
    await buy(client, other, eid, cap)
    staff = await staff_cookie(client, "assistant")

    async def ids(query: str) -> list[int]:
        resp = await client.get(f"/api/orders?{query}", headers=staff)
        assert resp.status == 200, await resp.text()
        return [o["product_id"] for o in (await resp.json())["orders"]]

    assert await ids(f"event={eid}&product={cap}") == [cap, cap]
    assert await ids(f"event={eid}&buyer=mallory") == [cap, mug]
    assert await ids("buyer=zoe") == [cap]
    assert await ids("status=shipped") == []
    assert (await client.get("/api/orders?status=lost", headers=staff)).status == 400
    resp = await client.get(f"/api/orders.csv?event={eid}&buyer=Mallory", headers=staff)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await resp.text()).lstrip("\ufeff"))))
    assert len(rows) == 2
    assert rows[0]["nickname"] == "'=HYPERLINK(\"x\")" and rows[0]["buyer_name"] == "'+Mallory"
    assert rows[0]["ship_address"] == "'@home 1\n-Town" and rows[1]["quantity"] == "2"
    buyers = (await (await client.get(f"/api/events/{eid}/buyers", headers=staff)).json())["buyers"]
    assert [(b["nickname"], b["orders"], b["first_time"]) for b in buyers] == [("=HYPERLINK(\"x\")", 2, True), ("Zoe", 1, True)]
    text = await (await client.get(f"/api/events/{eid}/buyers.csv", headers=staff)).text()
    assert "'=HYPERLINK" in text and "'+Mallory" in text
    for page in (f"/orders?event={eid}", f"/events/{eid}/orders?status=sold", f"/events/{eid}/buyers", f"/orders/packing?event={eid}"):
        resp = await client.get(page, headers=staff)
        assert resp.status == 200, page
        html = await resp.text()
        assert "&#43;Mallory" in html or "+Mallory" in html
        assert "=HYPERLINK(\"x\")" not in html  # escaped: &#34;
    packing = await (await client.get(f"/orders/packing?event={eid}", headers=staff)).text()
    assert packing.count('class="packing-slip"') == 3 and "@home 1" in packing


# --------------------------------------------------------------------------------------------- one writer


def test_only_orders_py_inserts_orders() -> None:
    writers = []
    for path in sorted((ROOT / "lmserver").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "INSERT INTO orders " in node.value:
                writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["lmserver/orders.py"]


@pytest.mark.parametrize("status", ["placed", "pending_payment"])
async def test_record_order_goes_through_the_one_writer(client: Any, status: str) -> None:
    from lmserver import api

    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, stock=3, event_id=eid)
    viewer = await new_viewer(app, "Ed")
    await client.put("/api/viewer/buyer", json={"name": "Ed Wu", "email": "ed@example.com", "address": ADDRESS}, headers=vh(viewer))
    vid = await app[DB].fetchval("SELECT id FROM viewers WHERE nickname = 'Ed'")
    async with api.db(app).transaction() as tx:
        oid = await api.record_order(tx, viewer_id=vid, product_id=pid, quantity=1, event_id=eid, session_id=None, practice=False,
                                     label="prize")
    row = await app[DB].fetchone("SELECT status, label, buyer_name FROM orders WHERE id = ?", (oid,))
    assert (row["status"], row["label"], row["buyer_name"]) == ("placed", "prize", "Ed Wu")
    hist = await app[DB].fetchall("SELECT from_status, to_status, by FROM order_status_history WHERE order_id = ?", (oid,))
    assert [tuple(h) for h in hist] == [(None, "placed", "prize")]
    if status == "pending_payment":
        with pytest.raises(api.Conflict):
            await api.set_order_status(app, oid, "reserved", by="x")  # not a status one can set
