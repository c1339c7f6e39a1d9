"""The prompter plugin in a real server: comments held with the reason, violations and suggestions stored
per session, their actions calling the console's APIs, dismiss with who, the tick's window rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lmserver_plugins.prompter as prompter
from lmserver.app import create_app
from lmserver.appkeys import BUS, DB
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


@pytest.fixture
def make_app(make_config: Any) -> Any:
    return lambda **settings: create_app(make_config(plugins={"prompter": settings}), plugins=(prompter,), load_entrypoints=False)


def listen(app: Any, *names: str) -> asyncio.Queue[Any]:
    q: asyncio.Queue[Any] = asyncio.Queue()
    for name in names:
        app[BUS].on(name, q.put_nowait)
    return q


async def next_finding(q: asyncio.Queue[Any], key_prefix: str, status: str = "active") -> dict[str, Any]:
    for _ in range(100):  # bounded: rules run in background tasks, the tick once a second
        rec = await asyncio.wait_for(q.get(), 15)
        if rec.data["key"].startswith(key_prefix) and rec.data["status"] == status:
            return rec.data
    raise AssertionError(f"no {status} finding {key_prefix}")


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_a_link_comment_is_held_listed_as_a_violation_and_dismissed_with_who(aiohttp_client: Any, make_app: Any) -> None:
    client = await aiohttp_client(make_app())
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    violations = listen(app, "prompter.violation")
    viewer = await new_viewer(app, "Spammer")
    c = (await ok(await client.post(f"/api/e/{eid}/comments", json={"body": "cheap mugs at https://spam.example"},
                                    headers=vh(viewer)), 201))["comment"]
    assert not c["hidden"] and "hidden_reason" not in c  # a held comment looks sent to its author
    row = await app[DB].fetchone("SELECT hidden, hidden_reason FROM comments WHERE id = ?", (c["id"],))
    assert row["hidden"] == 1 and row["hidden_reason"] == "contains a link"
    public = await ok(await client.get(f"/api/e/{eid}/state"))
    client.session.cookie_jar.clear()
    assert all(x["id"] != c["id"] for x in public["comments"]), "viewers never see a held comment"

    f = await next_finding(violations, "held:")
    assert f["kind"] == "violation" and f["subject"]["comment_id"] == c["id"] and "contains a link" in f["text"]
    assert f["trigger"]["metric"] == "contact_details" and f["session_id"] == session.id
    [block] = f["actions"]
    assert block["url"] == f"/api/viewers/{viewer['id']}/block" and block["method"] == "POST"

    staff = await staff_cookie(client, "moderator")
    # the console shows it (its state lists the session's findings) ...
    state = await ok(await client.get(f"/api/events/{eid}/console", headers=staff))
    assert [r["data"]["id"] for r in state["prompter"]] == [f["id"]]
    # ... and its action is the console's own API, with the same permission check
    await ok(await client.request(block["method"], block["url"], json=block["body"], headers=staff))
    assert await app[DB].fetchval("SELECT blocked FROM viewers WHERE id = ?", (viewer["id"],)) == 1
    done = await ok(await client.post(f"/api/prompter/findings/{f['id']}/dismiss", json={"action": block["label"]}, headers=staff))
    assert done["finding"]["status"] == "dismissed" and done["finding"]["dismissed_by"] and done["finding"]["acted"] == block["label"]
    listed = (await ok(await client.get(f"/api/sessions/{session.id}/findings", headers=staff)))["findings"]
    assert [(x["id"], x["status"]) for x in listed] == [(f["id"], "dismissed")]
    # session analytics lists it on the session's timeline, with what was done
    page = await client.get(f"/sessions/{session.id}", headers=staff)
    html = await page.text()
    assert page.status == 200 and 'data-key="held:' in html and "contains a link" in html and block["label"] in html
    assert (await ok(await client.get(f"/api/sessions/{session.id}", headers=staff)))["findings"][0]["acted"] == block["label"]
    # bad input: a clear 4xx
    assert (await client.post("/api/prompter/findings/999/dismiss", json={}, headers=staff)).status == 404
    resp = await client.post(f"/api/prompter/findings/{f['id']}/dismiss", json={"action": "Launch rockets"}, headers=staff)
    assert resp.status == 400 and "not one of this finding's actions" in await resp.text()
    client.session.cookie_jar.clear()
    assert (await client.post(f"/api/prompter/findings/{f['id']}/dismiss", json={}, headers=vh(viewer))).status in (401, 403)


async def test_staff_reply_with_a_prohibited_word_is_warned_not_blocked(aiohttp_client: Any, make_app: Any) -> None:
    client = await aiohttp_client(make_app())
    app = client.app
    eid = await make_event(app)
    await go_live(app, eid)
    violations = listen(app, "prompter.violation")
    viewer = await new_viewer(app, "Ann")
    c = (await ok(await client.post(f"/api/e/{eid}/comments", json={"body": "is it real leather?"}, headers=vh(viewer)), 201))["comment"]
    assert not c["hidden"]
    staff = await staff_cookie(client, "moderator")
    reply = (await ok(await client.post(f"/api/comments/{c['id']}/reply", json={"body": "Yes, not a replica"}, headers=staff), 201))["comment"]
    assert not reply["hidden"], "staff replies are warned, never held"
    f = await next_finding(violations, "staff:")
    assert f["level"] == "warning" and "replica" in f["text"]
    assert f["actions"] == [{"label": "Hide the reply", "url": f"/api/comments/{reply['id']}/hide", "method": "POST", "body": {}}]


async def test_window_rules_run_on_the_tick_resolve_and_flag_product_claims(aiohttp_client: Any, make_app: Any) -> None:
    client = await aiohttp_client(make_app(no_pin_seconds=0, products_min_viewers=0))
    app = client.app
    eid = await make_event(app)
    mug = await make_product(app, "Blue mug", event_id=eid)
    cream = await make_product(app, "Miracle cream, guaranteed results", event_id=eid)
    q = listen(app, "prompter.suggestion", "prompter.violation")
    await go_live(app, eid)
    claim = await next_finding(q, f"claim:{cream}")
    assert claim["kind"] == "violation" and "miracle" in claim["text"] and claim["actions"][0]["href"] == f"/catalog?product={cream}"
    f = await next_finding(q, "no_pinned_product")
    pin = f["actions"][0]
    assert pin["url"] == f"/api/events/{eid}/pin" and pin["body"]["product_id"] in (mug, cream)
    staff = await staff_cookie(client, "moderator")
    await ok(await client.request(pin["method"], pin["url"], json=pin["body"], headers=staff))
    resolved = await next_finding(q, "no_pinned_product", "resolved")
    assert resolved["id"] == f["id"] and resolved["resolved_at"]
    # a product edited to a clean title: its claim resolves
    await ok(await client.patch(f"/api/products/{cream}", json={"title": "Face cream"}, headers=staff))
    assert (await next_finding(q, f"claim:{cream}", "resolved"))["id"] == claim["id"]


async def test_after_a_restart_an_open_finding_that_no_longer_holds_resolves(aiohttp_client: Any, make_app: Any) -> None:
    client = await aiohttp_client(make_app())
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    q = listen(app, "prompter.suggestion")
    # left open by the previous run of the server (the plugin's memory is gone)
    from lmserver import api

    old = await api.report_finding(app, "prompter", {"key": "traffic_drop", "text": "Viewers fell 40 → 20 in 2 min",
                                                     "trigger": {"metric": "viewers", "value": 20}}, session=session)
    assert [f["key"] for f in await api.open_findings(app, "prompter")] == ["traffic_drop"]
    done = await next_finding(q, "traffic_drop", "resolved")
    assert done["id"] == old["id"] and await api.open_findings(app, "prompter") == []


def test_bad_settings_are_logged_naming_the_key_and_the_plugin_stays_inert(make_app: Any, caplog: Any) -> None:
    app = make_app(cooldown="5")
    assert "'plugins.prompter.cooldown' is not a setting of the prompter plugin" in caplog.text
    assert prompter.STATE not in app
    assert prompter.moderate_comment(app, {"body": "https://spam.example", "viewer_id": "v"}) is None


async def test_a_flooding_viewer_is_held_and_listed_once_updated_in_place(aiohttp_client: Any, make_config: Any) -> None:
    app = create_app(make_config(plugins={"prompter": {}}, live={"comment_rate_seconds": 0.0}), plugins=(prompter,),
                     load_entrypoints=False)
    client = await aiohttp_client(app)
    eid = await make_event(app)
    session = await go_live(app, eid)
    q = listen(app, "prompter.violation")
    viewer = await new_viewer(app, "Loud")
    for _ in range(5):
        await ok(await client.post(f"/api/e/{eid}/comments", json={"body": "FIRST!!"}, headers=vh(viewer)), 201)
    rows = await app[DB].fetchall("SELECT hidden, hidden_reason FROM comments WHERE session_id = ? ORDER BY id", (session.id,))
    assert [r["hidden"] for r in rows] == [0, 0, 1, 1, 1] and rows[-1]["hidden_reason"].startswith("flood: the same comment 5 times")
    f = await next_finding(q, f"flood:{viewer['id']}")
    for _ in range(2):
        again = await next_finding(q, f"flood:{viewer['id']}")
        assert again["id"] == f["id"]
    assert await app[DB].fetchval("SELECT COUNT(*) FROM prompter_findings WHERE session_id = ?", (session.id,)) == 1


async def test_findings_are_recorded_as_activities_with_their_time(aiohttp_client: Any, make_app: Any) -> None:
    """Session analytics draws findings as markers from the activity log: one ``prompter.suggestion`` /
    ``prompter.violation`` row per change (appeared, updated, resolved, dismissed), tagged with the session."""
    import json

    from lmserver import api

    client = await aiohttp_client(make_app())
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    f = await api.report_finding(app, "prompter", {"key": "k1", "text": "Quiet chat", "trigger": {"metric": "comments", "value": 0}},
                                 session=session)
    await api.resolve_finding(app, "prompter", "k1")
    rows = await app[DB].fetchall("SELECT name, event_id, session_id, practice, created_at, data FROM activity"
                                  " WHERE name LIKE 'prompter.%' AND session_id = ? ORDER BY id", (session.id,))
    assert [(r["name"], json.loads(r["data"])["status"]) for r in rows] == [("prompter.suggestion", "active"),
                                                                          ("prompter.suggestion", "resolved")]
    first = json.loads(rows[0]["data"])
    assert rows[0]["event_id"] == eid and first["id"] == f["id"] and first["key"] == "k1" and first["created_at"] == first["updated_at"]
    assert abs(rows[0]["created_at"] - first["created_at"]) < 5 and json.loads(rows[1]["data"])["resolved_at"] >= first["created_at"]
