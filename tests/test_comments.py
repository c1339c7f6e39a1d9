"""Comments: length and rate limits, escaping-safe storage, moderation hook, reply threading, one pinned, hide, block."""

from __future__ import annotations

from typing import Any

from lmserver.appkeys import BUS, DB, LIVE
from lmserver.plugins.hookspecs import hookimpl
from tests.livehelpers import go_live, make_event, new_viewer, staff_cookie, vh


async def comment(client: Any, viewer: dict[str, str], event_id: int, body: Any) -> Any:
    return await client.post(f"/api/e/{event_id}/comments", json={"body": body}, headers=vh(viewer))


async def public_comments(client: Any, event_id: int) -> list[dict[str, Any]]:
    state = await (await client.get(f"/api/e/{event_id}/state")).json()
    client.session.cookie_jar.clear()  # this client also plays other viewers with explicit cookies
    return state["comments"]


async def test_comment_is_published_and_listed(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    seen: list[Any] = []
    app[BUS].on("comment.created", seen.append)
    viewer = await new_viewer(app, "Ann")
    body = "<script>alert(1)</script> love it"
    resp = await comment(client, viewer, eid, "  " + body + "\x00 ")
    assert resp.status == 201, await resp.text()
    c = (await resp.json())["comment"]
    assert c["body"] == body and c["nickname"] == "Ann" and c["session_id"] == session.id
    assert [r.data["comment"]["id"] for r in seen] == [c["id"]]
    assert "hidden_reason" not in seen[0].data["comment"]
    assert [x["body"] for x in await public_comments(client, eid)] == [body]


async def test_length_rate_and_nickname_rules(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_max_length": 20, "comment_rate_seconds": 60.0}))
    app = client.app
    eid = await make_event(app)
    anonymous = await new_viewer(app)
    viewer = await new_viewer(app, "Bo")
    resp = await comment(client, viewer, eid, "hi")
    assert resp.status == 409 and "not live" in (await resp.json())["error"]["message"]
    await go_live(app, eid)
    resp = await comment(client, anonymous, eid, "hi")
    assert resp.status == 400 and "nickname" in (await resp.json())["error"]["message"]
    resp = await comment(client, viewer, eid, "x" * 21)
    assert resp.status == 400 and "at most 20 characters" in (await resp.json())["error"]["message"]
    resp = await comment(client, viewer, eid, "   ")
    assert resp.status == 400 and "empty" in (await resp.json())["error"]["message"]
    assert (await comment(client, viewer, eid, "first")).status == 201
    resp = await comment(client, viewer, eid, "second")
    assert resp.status == 429
    error = (await resp.json())["error"]["message"]
    assert "too fast" in error and "wait" in error
    assert int(resp.headers["Retry-After"]) >= 1
    # another viewer is not slowed down by the first
    other = await new_viewer(app, "Cy")
    assert (await comment(client, other, eid, "me too")).status == 201


async def test_nickname_is_chosen_once(client: Any) -> None:
    app = client.app
    viewer = await new_viewer(app)
    resp = await client.post("/api/viewer/nickname", json={"nickname": "  Dee  "}, headers=vh(viewer))
    assert resp.status == 200 and (await resp.json())["viewer"]["nickname"] == "Dee"
    resp = await client.post("/api/viewer/nickname", json={"nickname": "Other"}, headers=vh(viewer))
    assert resp.status == 409 and "already chose" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/viewer/nickname", json={"nickname": "x" * 25}, headers=vh(await new_viewer(app)))
    assert resp.status == 400


class NoShouting:
    @hookimpl
    def moderate_comment(self, app: Any, comment: dict[str, Any]) -> str | None:
        return "shouting" if comment["body"].isupper() else None


async def test_moderation_hook_holds_comments_back(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=(NoShouting(),), live={"comment_rate_seconds": 0}))
    app = client.app
    eid = await make_event(app)
    await go_live(app, eid)
    held: list[Any] = []
    app[BUS].on("comment.held", held.append)
    viewer = await new_viewer(app, "Loud")
    resp = await comment(client, viewer, eid, "BUY NOW")
    assert resp.status == 201  # looks sent to its author
    assert await comment(client, viewer, eid, "nice colour") is not None
    assert [c["body"] for c in await public_comments(client, eid)] == ["nice colour"]
    assert held and held[0].data["comment"]["hidden_reason"] == "shouting"
    staff = await staff_cookie(client, "moderator")
    listed = (await (await client.get(f"/api/events/{eid}/comments", headers=staff)).json())["comments"]
    assert [(c["body"], c["hidden"], c["hidden_reason"]) for c in listed] == [("BUY NOW", True, "shouting"), ("nice colour", False, None)]


async def test_reply_pin_hide_block(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(live={"comment_rate_seconds": 0}))
    app = client.app
    eid = await make_event(app)
    await go_live(app, eid)
    staff = await staff_cookie(client, "moderator")
    ann, troll = await new_viewer(app, "Ann"), await new_viewer(app, "Troll")
    first = (await (await comment(client, ann, eid, "does it come in blue?")).json())["comment"]
    second = (await (await comment(client, ann, eid, "and red?")).json())["comment"]
    bad = (await (await comment(client, troll, eid, "spam spam")).json())["comment"]

    # reply: threaded under the root, shown to viewers
    resp = await client.post(f"/api/comments/{first['id']}/reply", json={"body": "Yes, blue too!"}, headers=staff)
    assert resp.status == 201, await resp.text()
    reply = (await resp.json())["comment"]
    assert reply["parent_id"] == first["id"] and reply["staff"] is True
    resp = await client.post(f"/api/comments/{reply['id']}/reply", json={"body": "and green"}, headers=staff)
    assert (await resp.json())["comment"]["parent_id"] == first["id"]
    assert any(c["id"] == reply["id"] and c["parent_id"] == first["id"] for c in await public_comments(client, eid))

    # pin: one at a time
    assert (await client.post(f"/api/comments/{first['id']}/pin", headers=staff)).status == 200
    assert (await client.post(f"/api/comments/{second['id']}/pin", headers=staff)).status == 200
    state = await (await client.get(f"/api/e/{eid}/state")).json()
    assert state["pinned_comment"]["id"] == second["id"]
    assert await app[DB].fetchval("SELECT COUNT(*) FROM comments WHERE pinned = 1") == 1
    assert (await client.delete(f"/api/comments/{second['id']}/pin", headers=staff)).status == 200
    assert (await (await client.get(f"/api/e/{eid}/state")).json())["pinned_comment"] is None

    # hide
    hidden: list[Any] = []
    app[BUS].on("comment.hidden", hidden.append)
    assert (await client.post(f"/api/comments/{second['id']}/hide", headers=staff)).status == 200
    assert second["id"] not in [c["id"] for c in await public_comments(client, eid)]
    assert (await client.post(f"/api/comments/{second['id']}/pin", headers=staff)).status == 409

    # block: the troll's comments disappear, later ones are held back; buying is a separate switch
    resp = await client.post(f"/api/viewers/{troll['id']}/block", json={"event_id": eid}, headers=staff)
    assert resp.status == 200 and (await resp.json())["hidden"] == [bad["id"]]
    assert (await comment(client, troll, eid, "still here")).status == 201
    visible = [c["body"] for c in await public_comments(client, eid)]
    assert "spam spam" not in visible and "still here" not in visible
    assert {r.data["comment_id"] for r in hidden} == {second["id"], bad["id"]}
    assert (await client.delete(f"/api/viewers/{troll['id']}/block", headers=staff)).status == 200
    assert (await comment(client, troll, eid, "sorry")).status == 201
    assert "sorry" in [c["body"] for c in await public_comments(client, eid)]


async def test_assistant_cannot_moderate(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Ann")
    c = (await (await comment(client, viewer, eid, "hello")).json())["comment"]
    staff = await staff_cookie(client, "assistant")
    for method, url in (("POST", f"/api/comments/{c['id']}/pin"), ("POST", f"/api/comments/{c['id']}/hide"),
                        ("POST", f"/api/viewers/{viewer['id']}/block")):
        resp = await client.request(method, url, json={}, headers=staff)
        assert resp.status == 403, url
    assert app[LIVE].current is not None
