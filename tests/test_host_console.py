"""Issue 16, items 5–7 and 10–11 over HTTP and WebSocket: the public stock figure, the comments' product
classification, the staff-only scripts, the viewer page's ended state and its sessions.

The pages themselves are tested in Chromium in ``tests/e2e/test_host_console_browser.py``."""

from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator

import aiohttp

from lmserver import orders
from lmserver.appkeys import BUS, DB, LIVE
from lmserver.busevents import PUBLIC_COMMENT
from lmserver.comments import product_of
from lmserver.validate import SCRIPT_MAX
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


@contextlib.asynccontextmanager
async def _anonymous(client: Any) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=str(client.make_url("/"))) as session:
        yield session


async def _next(ws: Any) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return dict(json.loads(msg.data))


async def _until(ws: Any, name: str, limit: int = 20) -> dict[str, Any]:
    for _ in range(limit):
        rec = await _next(ws)
        if rec["name"] == name:
            return rec
    raise AssertionError(f"no {name} in {limit} records")


async def test_the_stock_figure_reaches_every_viewer_page_of_the_product_and_nothing_else(client: Any) -> None:
    """Orders, a practice order (which moves no unit) and a release of unpaid orders send ``product.stock`` (id and stock only) to the
    viewers of every event whose bag lists the product: the live one and an upcoming one alike."""
    app = client.app
    live_event, other_event, unrelated = await make_event(app, "Now"), await make_event(app, "Next week"), await make_event(app, "Other")
    pid = await make_product(app, "Scarf", stock=10, event_id=live_event)
    await make_product(app, "Hat", stock=4, event_id=unrelated)
    async with app[DB].transaction() as tx:
        await tx.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, 0, 0)", (other_event, pid))
        await tx.execute("UPDATE products SET sku = 'SKU-SECRET', script = 'secret talking points' WHERE id = ?", (pid,))
    await go_live(app, live_event)
    viewer = await new_viewer(app, "Ann")
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={live_event}") as here, \
            anon.ws_connect(f"/ws/viewer?event={other_event}") as there, anon.ws_connect(f"/ws/viewer?event={unrelated}") as none:
        for ws in (here, there, none):
            assert (await _next(ws))["name"] == "hello"
        resp = await client.post(f"/api/e/{live_event}/orders", json={"product_id": pid, "quantity": 2}, headers=vh(viewer))
        assert resp.status == 201, await resp.text()
        order_id = (await resp.json())["order"]["id"]
        got_here = [await _until(here, "product.stock")]
        got_there = [await _next(there)]
        # an unpaid reservation released by the reconciliation: the units come back, viewers see it
        await app[DB].execute("UPDATE orders SET status = 'reserved' WHERE id = ?", (order_id,))
        assert await orders.reconcile(app, older_than=0) == [order_id]
        got_here.append(await _until(here, "product.stock"))
        got_there.append(await _next(there))
        # a practice order takes no stock (a rehearsal): the figure the other event's page sees stays the same
        await app[LIVE].end("host ended")
        await go_live(app, live_event, practice=True)
        resp = await client.post(f"/api/e/{live_event}/orders", json={"product_id": pid, "quantity": 1}, headers=vh(viewer))
        assert resp.status == 201, await resp.text()
        got_there.append(await _next(there))
        await app[LIVE].end("host ended")
        # a sentinel: the unrelated event's socket got nothing before it
        await app[BUS].publish("comment.unpinned", {"comment_id": 1}, event_id=unrelated)
        assert (await _next(none))["name"] == "comment.unpinned"
    assert [(m["data"]["product_id"], m["data"]["stock"]) for m in got_here] == [(pid, 8), (pid, 10)]
    assert [(m["name"], m["event_id"], m["data"]) for m in got_there] == [
        ("product.stock", other_event, {"product_id": pid, "stock": s}) for s in (8, 10, 10)]
    text = json.dumps(got_here + got_there)
    assert "SKU" not in text and "secret" not in text and "order_id" not in text and "viewer" not in text


def test_a_comment_is_about_the_product_it_names() -> None:
    bag = [(1, "Merino scarf, forest green"), (2, "Chunky cardigan"), (3, "Wool socks (3 pairs)"), (4, "Merino beanie")]
    assert product_of("is the chunky cardigan warm?", bag) == 2
    assert product_of("Does the CARDIGAN come in red", bag) == 2        # a distinctive word of one title
    assert product_of("how many socks in a pack?", bag) == 3
    assert product_of("love the beanies!", bag) == 4                    # a plural
    assert product_of("is merino itchy?", bag) is None                  # two products are merino
    assert product_of("merino scarf, forest green please", bag) == 1    # the whole title
    assert product_of("hello from Berlin", bag) is None
    assert product_of("cardigan or socks?", bag) is None                # two products: no single one


async def test_comments_are_classified_for_staff_only(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_rate_seconds": 0}))
    app = client.app
    eid = await make_event(app)
    scarf = await make_product(app, "Merino scarf", event_id=eid)
    mug = await make_product(app, "Enamel mug", event_id=eid)
    elsewhere = await make_product(app, "Not in the bag")
    await go_live(app, eid)
    viewer = await new_viewer(app, "Ann")
    staff = await staff_cookie(client)
    posted = []
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={eid}") as ws:
        assert (await _next(ws))["name"] == "hello"
        for body in ({"body": "how long is the scarf?"}, {"body": "is it dishwasher safe?", "product_id": mug},
                     {"body": "hello everyone"}):
            resp = await client.post(f"/api/e/{eid}/comments", json=body, headers=vh(viewer))
            assert resp.status == 201, await resp.text()
            posted.append((await resp.json())["comment"]["id"])
            msg = await _next(ws)
            assert set(msg["data"]["comment"]) <= set(PUBLIC_COMMENT) and "product_id" not in msg["data"]["comment"]
        resp = await client.post(f"/api/e/{eid}/comments", json={"body": "and this?", "product_id": elsewhere}, headers=vh(viewer))
        assert resp.status == 400 and "not in this event's shopping bag" in (await resp.json())["error"]["message"]
    listed = (await (await client.get(f"/api/events/{eid}/comments", headers=staff)).json())["comments"]
    assert [(c["id"], c["product_id"]) for c in listed] == list(zip(posted, [scarf, mug, None]))
    state = await (await client.get(f"/api/events/{eid}/console", headers=staff)).json()
    assert [c["product_id"] for c in state["comments"]] == [scarf, mug, None]
    async with _anonymous(client) as anon, anon.get(f"/api/e/{eid}/state") as resp:
        assert all("product_id" not in c for c in (await resp.json())["comments"])


async def test_scripts_are_validated_and_staff_only(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client)
    eid = await make_event(app, "Knitwear")
    pid = await make_product(app, "Scarf", event_id=eid)
    secret, show = "Say: 100% merino, TALKING-POINT-XYZ", "Open with the scarf. RUN-OF-SHOW-XYZ"
    resp = await client.patch(f"/api/products/{pid}", json={"script": "x" * (SCRIPT_MAX + 1)}, headers=staff)
    assert resp.status == 400
    assert f"at most {SCRIPT_MAX} characters (this one has {SCRIPT_MAX + 1})" in (await resp.json())["error"]["message"]
    resp = await client.patch(f"/api/products/{pid}", json={"script": ["not", "text"]}, headers=staff)
    assert resp.status == 400 and "must be text" in (await resp.json())["error"]["message"]
    resp = await client.patch(f"/api/products/{pid}", json={"script": secret}, headers=staff)
    assert resp.status == 200 and (await resp.json())["product"]["script"] == secret
    resp = await client.patch(f"/api/events/{eid}", json={"script": show}, headers=staff)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["event"]["script"] == show
    resp = await client.post("/api/events", json={"title": "Too long", "starts_at": 4102444800, "duration_minutes": 60,
                                                  "script": "y" * (SCRIPT_MAX + 1)}, headers=staff)
    assert resp.status == 400 and "'script' is too long" in (await resp.json())["error"]["message"]
    await go_live(app, eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={eid}") as ws:
        assert (await _next(ws))["name"] == "hello"
        resp = await client.post(f"/api/events/{eid}/pin", json={"product_id": pid}, headers=staff)
        assert resp.status == 200, await resp.text()
        await client.patch(f"/api/products/{pid}", json={"script": secret + " v2"}, headers=staff)
        await client.patch(f"/api/events/{eid}", json={"script": show + " v2", "title": "Knitwear!"}, headers=staff)
        viewer_records = [await _next(ws) for _ in range(3)]
        async with anon.get(f"/e/{slug}") as page, anon.get(f"/api/e/{eid}/state") as state:
            viewer_html, viewer_state = await page.text(), await state.text()
    assert [r["name"] for r in viewer_records] == ["product.pinned", "product.updated", "event.updated"]
    for leaked in (json.dumps(viewer_records), viewer_html, viewer_state):
        assert "TALKING-POINT" not in leaked and "RUN-OF-SHOW" not in leaked and '"script"' not in leaked
    console = await (await client.get(f"/api/events/{eid}/console", headers=staff)).json()
    assert console["pinned_product"] == {"id": pid, "title": "Scarf", "script": secret + " v2"}
    assert console["event_script"] == show + " v2"


async def test_the_viewer_state_names_the_current_session_and_a_published_replay(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    first = await go_live(app, eid)
    await app[LIVE].end("host ended")
    second = await go_live(app, eid)
    async with _anonymous(client) as anon:
        async with anon.get(f"/api/e/{eid}/state") as resp:
            live_state = await resp.json()
        await app[LIVE].end("host ended")
        async with anon.get(f"/api/e/{eid}/state") as resp:
            ended = await resp.json()
        # the replay feature's column (engineer replay's migration), published for the first session
        columns = {r["name"] for r in await app[DB].fetchall("PRAGMA table_info(sessions)")}
        if "replay_published" not in columns:
            await app[DB].execute("ALTER TABLE sessions ADD COLUMN replay_published INTEGER NOT NULL DEFAULT 0")
        await app[DB].execute("UPDATE sessions SET replay_published = 1 WHERE id = ?", (first.id,))
        async with anon.get(f"/api/e/{eid}/state") as resp:
            published = await resp.json()
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    assert live_state["live"] and live_state["current_session_id"] == second.id and live_state["replay_url"] is None
    assert not ended["live"] and ended["current_session_id"] == second.id and ended["replay_url"] is None
    assert published["replay_url"] == f"/e/{slug}/replay/{first.id}"
