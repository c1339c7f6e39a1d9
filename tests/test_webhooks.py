"""Webhooks: signed deliveries to a real HTTP receiver on loopback, retries, 410, the SSRF guard, bad input.

The receiver (``tests/webhookreceiver.py``, shared with ``bench/orders.py``) verifies every request with the
Standard Webhooks algorithm written out there, independently of lmserver's code, and counts the messages it
accepted (by ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any, Callable

import pytest

from lmserver import webhooks
from lmserver.appkeys import DB, LIVE, WEBHOOKS
from tests.conftest import login
from tests.webhookreceiver import Receiver, verify

LOOPBACK = {"allow_networks": ["127.0.0.0/8"], "retry_base_seconds": 0.05}


async def until(check: Callable[[], Any], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


async def make_client(aiohttp_client: Any, app_factory: Callable[..., Any], **webhook_cfg: Any) -> tuple[Any, dict[str, str]]:
    client = await aiohttp_client(app_factory(webhooks=webhook_cfg or LOOPBACK))
    csrf = await login(client, "owner")
    return client, {"X-CSRF-Token": csrf}


async def add_endpoint(client: Any, h: dict[str, str], rx: Receiver, events: list[str], **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/webhooks", json={"url": rx.url, "events": events, **extra}, headers=h)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["secret"].startswith("whsec_")
    rx.secrets.append(data["secret"])
    return data


async def add_product(client: Any, h: dict[str, str], title: str) -> int:
    resp = await client.post("/api/products", json={"title": title, "price_cents": 900, "stock": 3}, headers=h)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["product"]["id"]


# --------------------------------------------------------------------------------------------- units


def test_signature_matches_the_specification_test_vector() -> None:
    # the example of the Standard Webhooks specification (and of its reference libraries)
    secret, msg_id, ts = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    assert webhooks.sign(secret, msg_id, ts, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    header = webhooks.signature_header([webhooks.new_secret(), secret], msg_id, ts, body)
    assert verify(secret, {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": header}, body)


def test_the_ssrf_guard_refuses_private_addresses_unless_allowed() -> None:
    import ipaddress as ip

    for addr in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):
        assert webhooks.address_problem(ip.ip_address(addr), []), addr
    assert webhooks.address_problem(ip.ip_address("93.184.216.34"), []) is None
    assert webhooks.address_problem(ip.ip_address("127.0.0.1"), [ip.ip_network("127.0.0.0/8")]) is None
    assert webhooks.address_problem(ip.ip_address("::ffff:127.0.0.1"), [ip.ip_network("127.0.0.0/8")]) is None
    assert "link-local" in (webhooks.address_problem(ip.ip_address("169.254.169.254"), [ip.ip_network("127.0.0.0/8")]) or "")


def test_backoff_grows_with_jitter_and_retry_after_wins() -> None:
    rng = random.Random(1)
    delays = [webhooks.retry_delay(n, 5.0, rng=rng) for n in range(1, 13)]
    assert 4 <= delays[0] <= 6 and 24 <= delays[1] <= 36 and all(d <= webhooks.MAX_DELAY for d in delays)
    assert delays[-1] >= 0.8 * webhooks.MAX_DELAY
    assert webhooks.retry_delay(3, 5.0, retry_after=7) == 7
    assert webhooks.parse_retry_after("120", 0) == 120
    assert webhooks.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == pytest.approx(10)
    assert webhooks.parse_retry_after("soon", 0) is None


# --------------------------------------------------------------------------------------------- over loopback


async def test_signed_delivery_retried_until_accepted_exactly_once(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    # 500 three times, then 200: one accepted delivery per event, four attempts in the log
    rx = await Receiver(lambda n: (500, {}) if n < 3 else (200, {})).start()
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        endpoint = (await add_endpoint(client, h, rx, ["product.*"]))["endpoint"]
        pid = await add_product(client, h, "Teapot")
        await until(lambda: rx.accepted)
        await add_product(client, h, "Cup")
        await until(lambda: len(rx.accepted) == 2)
        await asyncio.sleep(0.3)  # nothing more arrives
        assert all(n == 1 for n in rx.accepted.values()) and all(r["verified"] for r in rx.requests)
        first = rx.requests[0]
        assert first["body"]["type"] == "product.created" and first["body"]["data"]["product"]["id"] == pid
        assert [r["id"] for r in rx.requests[:4]] == [first["id"]] * 4  # the same webhook-id on every attempt
        log = await (await client.get(f"/api/webhooks/{endpoint['id']}/deliveries", headers=h)).json()
        by_msg = {d["msg_id"]: d for d in log["deliveries"]}
        assert by_msg[first["id"]]["state"] == "delivered" and by_msg[first["id"]]["attempts"] == 4
        assert [t["status"] for t in by_msg[first["id"]]["tries"]] == [500, 500, 500, 200]
        listed = (await (await client.get("/api/webhooks", headers=h)).json())["endpoints"][0]
        assert listed["delivered"] == 2 and listed["last_status"] == 200 and "secret" not in listed
    finally:
        await rx.stop()


async def test_gone_disables_the_endpoint_and_retry_after_is_honoured(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    slow = await Receiver(lambda n: (503, {"Retry-After": "2"}) if n == 0 else (200, {})).start()
    gone = await Receiver(lambda n: (410, {})).start()
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        await add_endpoint(client, h, slow, ["product.created"])
        gone_ep = (await add_endpoint(client, h, gone, ["product.created"]))["endpoint"]
        await add_product(client, h, "Vase")
        await until(lambda: len(slow.requests) == 2, 30)
        assert slow.requests[1]["at"] - slow.requests[0]["at"] >= 1.8  # not the 0.05 s backoff: Retry-After
        await until(lambda: gone.requests)
        rows = (await (await client.get("/api/webhooks", headers=h)).json())["endpoints"]
        gone_row = next(r for r in rows if r["id"] == gone_ep["id"])
        assert not gone_row["enabled"] and "410" in gone_row["disabled_reason"]
        await add_product(client, h, "Bowl")
        await until(lambda: len(slow.accepted) == 2)
        assert len(gone.requests) == 1  # a disabled endpoint gets nothing more
        # re-enabled by the owner: new events flow again (not the ones from while it was off)
        resp = await client.patch(f"/api/webhooks/{gone_ep['id']}", json={"enabled": True}, headers=h)
        assert resp.status == 200 and (await resp.json())["endpoint"]["enabled"]
    finally:
        await slow.stop()
        await gone.stop()


async def test_test_event_redeliver_rotation_and_a_dead_endpoint_does_not_hold_others(aiohttp_client: Any,
                                                                                     app_factory: Callable[..., Any]) -> None:
    rx = await Receiver().start()
    dead = Receiver()
    dead.url = "http://127.0.0.1:9/hook"  # the discard port: refused
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        ep = (await add_endpoint(client, h, rx, ["product.created"]))["endpoint"]
        dead_ep = (await add_endpoint(client, h, dead, ["product.created"]))["endpoint"]
        resp = await client.post(f"/api/webhooks/{ep['id']}/test", headers=h)
        assert resp.status == 202
        await until(lambda: rx.accepted)
        assert rx.requests[0]["body"]["type"] == "webhook.test"
        await add_product(client, h, "Jug")
        await until(lambda: len(rx.accepted) == 2)
        log = (await (await client.get(f"/api/webhooks/{dead_ep['id']}/deliveries", headers=h)).json())["deliveries"]
        assert log and log[0]["state"] == "pending"
        # rotation: both secrets sign for a day; a receiver that knows only the old one still verifies
        old = rx.secrets[0]
        rotated = await (await client.post(f"/api/webhooks/{ep['id']}/rotate", headers=h)).json()
        rx.secrets = [old]
        delivery = next(d for d in (await (await client.get(f"/api/webhooks/{ep['id']}/deliveries", headers=h)).json())["deliveries"]
                        if d["event"] == "product.created")
        assert (await client.post(f"/api/webhooks/deliveries/{delivery['id']}/redeliver", headers=h)).status == 202
        await until(lambda: len(rx.requests) == 3)
        assert rx.requests[2]["verified"] and len(rx.requests[2]["sig"].split()) == 2
        assert rx.requests[2]["id"] == delivery["msg_id"]
        assert verify(rotated["secret"], {"webhook-id": rx.requests[2]["id"], "webhook-timestamp": rx.requests[2]["ts"],
                                          "webhook-signature": rx.requests[2]["sig"]}, json.dumps(rx.requests[2]["body"],
                                                                                                  separators=(",", ":")).encode())
        row = await client.app[DB].fetchone("SELECT attempts, last_error FROM webhook_deliveries WHERE endpoint_id = ?", (dead_ep["id"],))
        assert row["attempts"] >= 1 and "connection failed" in row["last_error"]
    finally:
        await rx.stop()


async def test_practice_events_only_for_endpoints_that_ask(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    from tests.livehelpers import go_live, make_event

    plain, rehearsal = await Receiver().start(), await Receiver().start()
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        await add_endpoint(client, h, plain, ["stream.*"])
        await add_endpoint(client, h, rehearsal, ["stream.*"], include_practice=True)
        event_id = await make_event(client.app)
        await go_live(client.app, event_id, practice=True)
        await until(lambda: rehearsal.accepted)
        body = rehearsal.requests[0]["body"]
        assert body["type"] == "stream.started" and body["practice"] is True and body["event_id"] == event_id
        await asyncio.sleep(0.3)
        assert not plain.requests
    finally:
        await plain.stop()
        await rehearsal.stop()


@pytest.mark.parametrize("body, reason", [
    ({"url": "http://127.0.0.1:8/x", "events": ["order.created"]}, "loopback address"),
    ({"url": "http://169.254.169.254/latest/meta-data", "events": ["order.created"]}, "link-local"),
    ({"url": "http://localhost:8/x", "events": ["order.created"]}, "loopback"),
    ({"url": "http://[::ffff:10.0.0.1]/x", "events": ["order.created"]}, "private"),
    ({"url": "ftp://93.184.216.34/x", "events": ["order.created"]}, "http:// or https://"),
    ({"url": "https://user:pw@93.184.216.34/x", "events": ["order.created"]}, "password"),
    ({"url": "https://93.184.216.34/x", "events": []}, "non-empty list"),
    ({"url": "https://93.184.216.34/x", "events": ["order.exploded"]}, "names no event"),
    ({"url": "https://93.184.216.34/x", "events": ["order.created"], "secret": "x"}, "unknown webhook endpoint fields"),
])
async def test_bad_endpoints_are_refused_with_the_reason(aiohttp_client: Any, app_factory: Callable[..., Any],
                                                         body: dict[str, Any], reason: str) -> None:
    client = await aiohttp_client(app_factory())  # the default: no private network allowed
    h = {"X-CSRF-Token": await login(client, "owner")}
    resp = await client.post("/api/webhooks", json=body, headers=h)
    assert resp.status == 400, await resp.text()
    assert reason in (await resp.json())["error"]["message"]
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM webhook_endpoints") == 0


async def test_the_guard_also_holds_at_delivery_time(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    # an endpoint added while loopback was allowed, delivered by a server where it no longer is
    rx = await Receiver().start()
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        ep = (await add_endpoint(client, h, rx, ["product.created"]))["endpoint"]
        client.app[WEBHOOKS].cfg = type(client.app[WEBHOOKS].cfg)(retry_base_seconds=0.05)  # allow_networks = []
        await client.app[WEBHOOKS].enqueue_test(ep["id"])
        await until(lambda: client.app[DB].fetchval("SELECT attempts FROM webhook_deliveries"), 10)
        row = await client.app[DB].fetchone("SELECT attempts, last_error FROM webhook_deliveries")
        assert "SSRF guard" in row["last_error"] and not rx.requests
    finally:
        await rx.stop()


async def test_settings_page_lists_endpoints_for_the_owner_only(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    client = await aiohttp_client(app_factory())
    await login(client, "owner")
    page = await client.get("/settings/webhooks")
    assert page.status == 200 and "Add an endpoint" in await page.text() and "order.created" in await page.text()
    client.session.cookie_jar.clear()
    await login(client, "moderator")
    assert (await client.get("/api/webhooks")).status == 403


async def test_replay_published_and_unpublished_reach_subscribers_once(aiohttp_client: Any, app_factory: Callable[..., Any]) -> None:
    from tests.livehelpers import go_live, make_event

    rx = await Receiver().start()
    try:
        client, h = await make_client(aiohttp_client, app_factory)
        await add_endpoint(client, h, rx, ["replay.*"])
        eid = await make_event(client.app)
        session = await go_live(client.app, eid)
        await client.app[LIVE].end("host ended")
        for method in ("post", "post", "delete", "delete"):  # a repeat changes nothing and says nothing
            resp = await getattr(client, method)(f"/api/sessions/{session.id}/publish", headers=h)
            assert resp.status == 200, await resp.text()
        await until(lambda: len(rx.accepted) == 2)
        bodies = [r["body"] for r in rx.requests]
        assert [b["type"] for b in bodies] == ["replay.published", "replay.unpublished"]
        slug = await client.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
        assert bodies[0]["data"] == {"session_id": session.id, "url": f"/e/{slug}/replay/{session.id}", "by": bodies[0]["data"]["by"]}
        assert bodies[0]["data"]["by"].startswith("owner") and bodies[0]["session_id"] == session.id and bodies[0]["event_id"] == eid
        names = [r["name"] for r in await client.app[DB].fetchall("SELECT name FROM activity WHERE name LIKE 'replay.%' ORDER BY id")]
        assert names == ["replay.published", "replay.unpublished"]  # activities too (the console's feed)
        events = {e["name"] for e in (await (await client.get("/api/webhooks/events", headers=h)).json())["events"]}
        assert {"replay.published", "replay.unpublished"} <= events
    finally:
        await rx.stop()
