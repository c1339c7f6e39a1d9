"""Viewer APIs: state, follow once, gifts, viewer sampling; and a viewer cookie opens no staff endpoint."""

from __future__ import annotations

import re
from typing import Any

from lmserver import console
from lmserver.appkeys import BUS, DB
from lmserver.openapi import build
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


async def test_state_gives_a_viewer_identity_and_the_bag(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, title="Scarf", stock=4, event_id=eid)
    resp = await client.get(f"/api/e/{eid}/state")
    state = await resp.json()
    assert state["live"] is False and state["session"] is None
    assert [p["title"] for p in state["bag"]] == ["Scarf"] and state["bag"][0]["stock"] == 4
    assert state["viewer"]["id"] and state["viewer"]["csrf_token"] and state["viewer"]["nickname"] is None
    assert {g["id"] for g in state["gifts"]} >= {"rose", "heart"}
    # the cookie it set works for viewer calls with the token it gave
    resp = await client.post("/api/viewer/nickname", json={"nickname": "Eve"}, headers={"X-CSRF-Token": state["viewer"]["csrf_token"]})
    assert resp.status == 200
    await go_live(app, eid)
    await app[DB].execute("UPDATE sessions SET pinned_product_id = ?", (pid,))
    state = await (await client.get(f"/api/e/{eid}/state")).json()
    assert state["live"] is True and state["pinned_product"]["id"] == pid and state["viewer"]["nickname"] == "Eve"
    assert (await client.get("/api/e/99999/state")).status == 404


async def test_follow_once_and_counted(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    await go_live(app, eid)
    follows: list[Any] = []
    app[BUS].on("viewer.followed", follows.append)
    ann, bo = await new_viewer(app, "Ann"), await new_viewer(app, "Bo")
    r1 = await (await client.post(f"/api/e/{eid}/follow", headers=vh(ann))).json()
    r2 = await (await client.post(f"/api/e/{eid}/follow", headers=vh(ann))).json()
    r3 = await (await client.post(f"/api/e/{eid}/follow", headers=vh(bo))).json()
    assert (r1["followers"], r1["already"]) == (1, False)
    assert (r2["followers"], r2["already"]) == (1, True)
    assert r3["followers"] == 2
    assert [r.data["nickname"] for r in follows] == ["Ann", "Bo"]


async def test_gifts_are_activities_not_gmv(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_rate_seconds": 0}))
    app = client.app
    eid = await make_event(app)
    viewer = await new_viewer(app, "Gil")
    assert (await client.post(f"/api/e/{eid}/gifts", json={"gift": "rose"}, headers=vh(viewer))).status == 409
    await go_live(app, eid)
    resp = await client.post(f"/api/e/{eid}/gifts", json={"gift": "rose"}, headers=vh(viewer))
    assert resp.status == 201 and (await resp.json())["gift"]["emoji"] == "🌹"
    resp = await client.post(f"/api/e/{eid}/gifts", json={"gift": "diamond"}, headers=vh(viewer))
    assert resp.status == 400 and "unknown gift" in (await resp.json())["error"]["message"]
    staff = await staff_cookie(client, "assistant")
    m = (await (await client.get(f"/api/events/{eid}/metrics", headers=staff)).json())["metrics"]
    assert m["gifts"] == 1 and m["gmv_cents"] == 0 and m["orders"] == 0
    acts = (await (await client.get(f"/api/events/{eid}/console", headers=staff)).json())["activities"]
    assert [a["name"] for a in acts if a["name"] == "gift.sent"] == ["gift.sent"]


async def test_viewer_samples_and_peak(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    for n in (1, 2, 3):
        await app[BUS].publish("viewer.joined", {"viewer_id": None, "viewers": n, "peak": n}, event_id=eid, session_id=session.id)
    await app[BUS].publish("viewer.left", {"viewer_id": None, "viewers": 2}, event_id=eid, session_id=session.id)
    await console.sample_viewers(app)
    rows = await app[DB].fetchall("SELECT viewers FROM viewer_samples WHERE session_id = ?", (session.id,))
    assert [r["viewers"] for r in rows] == [2]
    assert await app[DB].fetchval("SELECT peak_viewers FROM sessions WHERE id = ?", (session.id,)) == 3
    staff = await staff_cookie(client)
    m = (await (await client.get(f"/api/events/{eid}/metrics", headers=staff)).json())["metrics"]
    assert (m["viewers"], m["peak"]) == (2, 3)


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_a_viewer_cookie_cannot_call_any_staff_endpoint(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    await make_product(app, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Mallory")
    staff_ops = [(method.upper(), path) for path, ops in build(app)["paths"].items() for method, op in ops.items()
                 if op.get("x-permission")]
    assert len(staff_ops) > 10
    for method, path in staff_ops:
        resp = await client.request(method, _fill(path), json={}, headers=vh(viewer))
        assert resp.status in (401, 403), f"{method} {path} answered {resp.status} to a viewer: {await resp.text()}"
    for page in ("/console", f"/events/{eid}/console", f"/events/{eid}/console?session=1"):
        resp = await client.get(page, headers=vh(viewer), allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login"), page
    resp = await client.get("/ws/console", headers=vh(viewer))
    assert resp.status == 401


async def test_console_entry_points(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client, "assistant")
    resp = await client.get("/console", headers=staff)
    assert resp.status == 200 and "No event to run" in await resp.text()
    later = await make_event(app, "Later show", starts_in=7200)
    resp = await client.get("/console", headers=staff, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/events/{later}/console"
    now = await make_event(app, "Now show", starts_in=-60)
    await go_live(app, now)
    resp = await client.get("/console", headers=staff, allow_redirects=False)
    assert resp.headers["Location"] == f"/events/{now}/console"
    page = await (await client.get(f"/events/{now}/console", headers=staff)).text()
    assert 'id="program-preview"' in page and 'id="preview-stage"' in page
    # an assistant may watch but not run the show or moderate, and never sees the stream key
    assert 'id="golive-btn"' not in page and "stream-key" not in page
    owner = await staff_cookie(client, "owner")
    page = await (await client.get(f"/events/{now}/console", headers=owner)).text()
    assert 'id="golive-btn"' in page and 'id="stream-key"' in page
    assert (await client.get("/events/9999/console", headers=owner)).status == 404
    resp = await client.get(f"/events/{now}/console?session=9999", headers=owner)
    assert resp.status == 404
