"""The session bus (typed, logged, dispatched) and the WebSocket hub (serialize once, drop slow clients)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, AsyncIterator

import aiohttp
import pytest

from lmserver.appkeys import BUS, CONFIG, DB, HUB, LIVE
from lmserver.busevents import CORE_EVENTS, PUBLIC_COMMENT, PUBLIC_PRODUCT, EventSpec
from lmserver.ws import CLOSE_TOO_SLOW
from tests.conftest import login


async def test_publish_logs_emits_and_pushes(client: Any) -> None:
    bus = client.app[BUS]
    heard: list[Any] = []
    bus.on("comment.created", heard.append)
    await login(client)
    async with client.ws_connect("/ws/console") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["name"] == "hello"
        record = await bus.publish("comment.created", {"comment": {"body": "hi"}}, event_id=3, session_id=None)
        msg = await ws.receive_json(timeout=5)
    assert msg["name"] == "comment.created" and msg["data"] == {"comment": {"body": "hi"}} and msg["id"] == record.id
    assert heard and heard[0].id == record.id
    row = await client.app[DB].fetchone("SELECT name, event_id, data FROM activity WHERE id = ?", (record.id,))
    assert (row["name"], row["event_id"], json.loads(row["data"])) == ("comment.created", 3, {"comment": {"body": "hi"}})


async def test_undeclared_events_and_fields_are_refused(client: Any) -> None:
    bus = client.app[BUS]
    with pytest.raises(KeyError, match="not declared"):
        await bus.publish("made.up", {})
    with pytest.raises(ValueError, match="undeclared fields"):
        await bus.publish("comment.created", {"comment": {}, "extra": 1})


async def test_non_persistent_events_are_pushed_not_logged(client: Any) -> None:
    rec = await client.app[BUS].publish("stream.health", {"fps": 30})
    assert rec.id is None
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'stream.health'") == 0


async def _event(app: Any, title: str) -> int:
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES (?, ?, ?, 60, ?, ?)", (f"ws-{title.lower()}-{now}", title, now + 3600, now, now))
        return cur.lastrowid or 0


async def _next(ws: Any) -> dict[str, Any]:
    """The next record on a socket (every test read is bounded by a timeout)."""
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return dict(json.loads(msg.data))


@contextlib.asynccontextmanager
async def _anonymous(client: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser: no staff cookie, no viewer cookie."""
    async with aiohttp.ClientSession(base_url=str(client.make_url("/"))) as session:
        yield session


async def test_viewer_socket_gets_public_events_of_its_event_only(client: Any) -> None:
    bus = client.app[BUS]
    a, b = await _event(client.app, "A"), await _event(client.app, "B")
    secret = {"id": 3, "event_id": a, "viewer_id": "v-secret", "user_id": 9, "hidden_reason": "spam", "nickname": "Ann",
              "body": "hi", "staff": False, "parent_id": None, "pinned": False, "created_at": 1.0, "practice": False}
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={a}") as ws:
        assert (await _next(ws))["name"] == "hello"
        await bus.publish("order.created", {"order": {"id": 1}}, event_id=a)           # staff only
        await bus.publish("viewer.blocked", {"viewer_id": "v1", "nickname": "Bo"}, event_id=a)  # staff only
        await bus.publish("comment.held", {"comment": {"id": 4}}, event_id=a)          # held by moderation: staff only
        await bus.publish("comment.created", {"comment": {"id": 2}}, event_id=b)       # another event
        await bus.publish("comment.created", {"comment": {"id": 5}})                   # no event: no viewer
        await bus.publish("comment.created", {"comment": {"id": 6}}, event_id=a, practice=True)  # practice
        await bus.publish("gift.sent", {"viewer_id": "v2", "nickname": "Cy", "gift": "rose"}, event_id=a, practice=True)
        await bus.publish("comment.created", {"comment": secret}, event_id=a, session_id=None)
        msg = await _next(ws)
        await bus.publish("viewer.followed", {"viewer_id": "v3", "nickname": "Di", "followers": 4}, event_id=a)
        followed = await _next(ws)
    assert msg["name"] == "comment.created" and msg["event_id"] == a
    assert msg["data"] == {"comment": {k: v for k, v in secret.items() if k in PUBLIC_COMMENT}}
    assert not {"viewer_id", "user_id", "hidden_reason"} & set(msg["data"]["comment"])
    assert followed["name"] == "viewer.followed" and followed["data"] == {"nickname": "Di", "followers": 4}


async def test_viewer_socket_sees_only_public_fields_of_its_bags_products(client: Any) -> None:
    """Catalog edits over HTTP reach a viewer of event A only for A's bag, with only the page's fields."""
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}

    async def product(title: str, sku: str) -> int:
        resp = await client.post("/api/products", json={"title": title, "price_cents": 1000, "stock": 5, "sku": sku}, headers=h)
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["product"]["id"])

    in_a, in_b, in_none, archived = (await product("In A", "SKU-A"), await product("In B", "SKU-B"),
                                     await product("No bag", "SKU-NONE"), await product("Old", "SKU-OLD"))
    a, b = await _event(client.app, "A"), await _event(client.app, "B")
    for eid, pid in ((a, in_a), (a, archived), (b, in_b)):
        assert (await client.post(f"/api/events/{eid}/bag", json={"product_id": pid}, headers=h)).status in (200, 201)
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={a}") as va, \
            anon.ws_connect(f"/ws/viewer?event={b}") as vb, client.ws_connect("/ws/console") as console:
        for ws in (va, vb, console):
            assert (await _next(ws))["name"] == "hello"
        texts: list[str] = []
        for pid in (in_none, in_b):
            assert (await client.patch(f"/api/products/{pid}", json={"price_cents": 1500}, headers=h)).status == 200
        assert (await client.post(f"/api/products/{archived}/archive", headers=h)).status == 200
        assert (await client.patch(f"/api/products/{archived}", json={"sku": "SKU-OLD-2", "price_cents": 1}, headers=h)).status == 200
        assert (await client.patch(f"/api/products/{in_a}", json={"price_cents": 1250, "sku": "SKU-A-2"}, headers=h)).status == 200
        # a sentinel on each socket: everything queued before it has arrived
        await client.app[BUS].publish("bag.changed", {"action": "refresh", "product_ids": []}, event_id=a)
        await client.app[BUS].publish("bag.changed", {"action": "refresh", "product_ids": []}, event_id=b)
        got_a = [await _next(va), await _next(va)]
        got_b = [await _next(vb), await _next(vb)]
        console_names = []
        for _ in range(8):
            rec = await _next(console)
            texts.append(json.dumps(rec))
            console_names.append((rec["name"], (rec["data"].get("product") or {}).get("sku")))
            if rec["name"] == "bag.changed":
                break
    # viewer A: the price change of its bag's product, public fields only; nothing of the others
    assert [m["name"] for m in got_a] == ["product.updated", "bag.changed"]
    upd = got_a[0]
    assert upd["event_id"] == a and set(upd["data"]) == {"product"}
    assert set(upd["data"]["product"]) == set(PUBLIC_PRODUCT)
    assert upd["data"]["product"]["id"] == in_a and upd["data"]["product"]["price_cents"] == 1250
    assert "SKU" not in json.dumps(got_a) and "archived" not in json.dumps(got_a)
    # viewer B: its own product only
    assert [m["name"] for m in got_b] == ["product.updated", "bag.changed"]
    assert got_b[0]["data"]["product"]["id"] == in_b and "SKU" not in json.dumps(got_b)
    # staff still get everything, whole
    assert console_names[:6] == [("product.updated", "SKU-NONE"), ("product.updated", "SKU-B"), ("product.updated", "SKU-OLD"),
                                 ("product.archived", None), ("product.updated", "SKU-OLD-2"), ("product.updated", "SKU-A-2")]


async def test_practice_reaches_no_viewer_but_the_bag_still_does(client: Any) -> None:
    csrf = await login(client)
    a = await _event(client.app, "A")
    resp = await client.post("/api/products", json={"title": "P", "price_cents": 100, "stock": 1}, headers={"X-CSRF-Token": csrf})
    pid = (await resp.json())["product"]["id"]
    live = client.app[LIVE]
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={a}") as ws:
        assert (await _next(ws))["name"] == "hello"
        await live.begin("test", True, None, event_id=a)      # practice: stream.started stays with staff
        try:
            assert (await client.post(f"/api/events/{a}/bag", json={"product_id": pid}, headers={"X-CSRF-Token": csrf})).status in (200, 201)
            msg = await _next(ws)
        finally:
            await live.end("host ended")
        await client.app[BUS].publish("comment.unpinned", {"comment_id": 1}, event_id=a)
        after = await _next(ws)
    assert msg["name"] == "bag.changed" and msg["data"]["product_ids"] == [pid]
    assert after["name"] == "comment.unpinned"  # stream.ended of the practice session was not sent either


async def test_the_viewer_pages_state_shows_comments_without_viewer_ids(client: Any) -> None:
    a = await _event(client.app, "A")
    async with client.app[DB].transaction() as tx:
        await tx.execute("INSERT INTO viewers (id, nickname, created_at) VALUES ('v-secret', 'Ann', 1)")
        await tx.execute("INSERT INTO comments (event_id, viewer_id, nickname, body, pinned, created_at) VALUES (?, 'v-secret', 'Ann', 'hi', 1, 1)", (a,))
    async with _anonymous(client) as anon, anon.get(f"/api/e/{a}/state") as resp:
        state = await resp.json()
    assert [c["body"] for c in state["comments"]] == ["hi"] and state["pinned_comment"]["body"] == "hi"
    assert set(state["comments"][0]) == set(PUBLIC_COMMENT) and set(state["pinned_comment"]) == set(PUBLIC_COMMENT)


async def test_a_staff_reply_reaches_viewers_under_the_studio_name(client: Any) -> None:
    csrf = await login(client, "moderator", "mod.alice")
    a = await _event(client.app, "A")
    async with client.app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO comments (event_id, nickname, body, created_at) VALUES (?, 'Ann', 'size?', 1)", (a,))
        parent = cur.lastrowid
    async with _anonymous(client) as anon, anon.ws_connect(f"/ws/viewer?event={a}") as ws:
        assert (await _next(ws))["name"] == "hello"
        resp = await client.post(f"/api/comments/{parent}/reply", json={"body": "M and L"}, headers={"X-CSRF-Token": csrf})
        assert resp.status == 201, await resp.text()
        msg = await _next(ws)
    assert msg["data"]["comment"]["nickname"] == client.app[CONFIG].server.studio_name and msg["data"]["comment"]["staff"] is True
    assert "alice" not in json.dumps(msg)


async def test_the_viewer_pages_state_shows_nothing_of_a_practice_session(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    a = await _event(client.app, "A")
    pid = (await (await client.post("/api/products", json={"title": "P", "price_cents": 100, "stock": 3}, headers=h)).json())["product"]["id"]
    assert (await client.post(f"/api/events/{a}/bag", json={"product_id": pid}, headers=h)).status in (200, 201)
    live = client.app[LIVE]
    session = await live.begin("test", True, None, event_id=a)
    try:
        assert (await client.post(f"/api/events/{a}/pin", json={"product_id": pid}, headers=h)).status == 200
        async with client.app[DB].transaction() as tx:
            await tx.execute("INSERT INTO comments (event_id, session_id, nickname, body, pinned, practice, created_at)"
                             " VALUES (?, ?, 'Staff', 'rehearsal', 1, 1, 1)", (a, session.id))
        async with _anonymous(client) as anon, anon.get(f"/api/e/{a}/state") as resp:
            state = await resp.json()
    finally:
        await live.end("host ended")
    assert state["live"] is False and state["session"] is None and state["pinned_product"] is None
    assert state["comments"] == [] and state["pinned_comment"] is None and "practice" not in state


async def test_viewer_socket_needs_an_existing_event(client: Any) -> None:
    assert (await client.get("/ws/viewer")).status == 400
    assert (await client.get("/ws/viewer?event=x1")).status == 400
    assert (await client.get("/ws/viewer?event=999")).status == 404


def test_a_public_event_must_declare_its_public_fields() -> None:
    with pytest.raises(ValueError, match="declare the fields viewers see"):
        EventSpec("x.public", "doc", {"a": "a"}, "public")
    with pytest.raises(ValueError, match="not among its fields"):
        EventSpec("x.public", "doc", {"a": "a"}, "public", public={"b": None})
    with pytest.raises(ValueError, match="staff-only"):
        EventSpec("x.staff", "doc", {"a": "a"}, public={"a": None})
    for spec in CORE_EVENTS:
        if spec.audience == "public":
            assert spec.public is not None and "sku" not in json.dumps(spec.public), spec.name


async def test_console_socket_needs_staff(client: Any) -> None:
    resp = await client.get("/ws/console")
    assert resp.status == 401


async def test_slow_client_is_dropped_and_others_keep_receiving(aiohttp_client: Any, app_factory: Any) -> None:
    """A client that stops reading fills its socket, then its queue, and is dropped; the other gets every message."""
    client = await aiohttp_client(app_factory(live={"ws_queue_messages": 8}))
    hub = client.app[HUB]
    eid = await _event(client.app, "Slow")
    fast = await client.ws_connect(f"/ws/viewer?event={eid}", max_msg_size=1 << 20)
    await fast.receive_json(timeout=5)
    fast_entry = next(iter(hub.clients))
    slow = await client.ws_connect(f"/ws/viewer?event={eid}")  # never read from again
    await slow.receive_json(timeout=5)
    slow_entry = next(c for c in hub.clients if c is not fast_entry)
    got: asyncio.Queue[int] = asyncio.Queue()

    async def read_fast() -> None:
        async for msg in fast:
            if msg.type == aiohttp.WSMsgType.TEXT:
                got.put_nowait(json.loads(msg.data)["n"])

    reader = asyncio.create_task(read_fast())
    pad = "x" * 60_000
    sent = 0
    for i in range(1500):  # bounded: ~90 MB at most, far beyond loopback socket buffers
        hub.broadcast({"n": i, "pad": pad}, "public", eid)
        sent += 1
        assert await asyncio.wait_for(got.get(), 5) == i  # the fast client keeps pace, in order
        if slow_entry.dropped and i > 20:
            break
    assert slow_entry.dropped and slow_entry not in hub.clients
    assert fast_entry in hub.clients and not fast_entry.dropped
    assert hub.dropped == 1
    # after the drop the fast client still gets everything
    for j in range(sent, sent + 5):
        hub.broadcast({"n": j, "pad": "y"}, "public", eid)
        assert await asyncio.wait_for(got.get(), 5) == j
    reader.cancel()
    await fast.close()
    # the slow client, once it reads again, finds fewer messages than were sent and then the close code
    data_messages = 0
    for _ in range(sent + 10):
        msg = await slow.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        data_messages += 1
    assert data_messages < sent
    assert slow.close_code == CLOSE_TOO_SLOW
