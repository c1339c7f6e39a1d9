"""The session bus (typed, logged, dispatched) and the WebSocket hub (serialize once, drop slow clients)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from lmserver.appkeys import BUS, DB, HUB
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


async def test_viewer_socket_gets_public_events_of_its_event_only(client: Any) -> None:
    bus = client.app[BUS]
    async with client.ws_connect("/ws/viewer?event=7") as ws:
        await ws.receive_json(timeout=5)
        await bus.publish("order.created", {"order": {"id": 1}}, event_id=7)       # staff only
        await bus.publish("comment.created", {"comment": {"id": 2}}, event_id=8)   # another event
        await bus.publish("comment.created", {"comment": {"id": 3}}, event_id=7)
        msg = await ws.receive_json(timeout=5)
    assert msg["data"] == {"comment": {"id": 3}}


async def test_console_socket_needs_staff(client: Any) -> None:
    resp = await client.get("/ws/console")
    assert resp.status == 401


async def test_slow_client_is_dropped_and_others_keep_receiving(aiohttp_client: Any, app_factory: Any) -> None:
    """A client that stops reading fills its socket, then its queue, and is dropped; the other gets every message."""
    client = await aiohttp_client(app_factory(live={"ws_queue_messages": 8}))
    hub = client.app[HUB]
    fast = await client.ws_connect("/ws/viewer", max_msg_size=1 << 20)
    await fast.receive_json(timeout=5)
    fast_entry = next(iter(hub.clients))
    slow = await client.ws_connect("/ws/viewer")  # never read from again
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
        hub.broadcast({"n": i, "pad": pad}, "public")
        sent += 1
        assert await asyncio.wait_for(got.get(), 5) == i  # the fast client keeps pace, in order
        if slow_entry.dropped and i > 20:
            break
    assert slow_entry.dropped and slow_entry not in hub.clients
    assert fast_entry in hub.clients and not fast_entry.dropped
    assert hub.dropped == 1
    # after the drop the fast client still gets everything
    for j in range(sent, sent + 5):
        hub.broadcast({"n": j, "pad": "y"}, "public")
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
