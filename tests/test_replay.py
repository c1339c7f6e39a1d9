"""Replays (lmserver/replay.py): the timeline and its offsets, downloads (CSV columns and escaping), publishing,
the public replay page (404 unless published and not practice) and buying from it (apart from the LIVE's GMV)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from lmserver.appkeys import BUS, DB, LIVE
from lmserver.busevents import EventSpec
from lmserver.figures import session_figures
from lmserver.plugins.hookspecs import hookimpl
from lmserver.replay import COMMENT_COLUMNS, ORDER_COLUMNS, video_offset
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.replayhelpers import add_part


class MomentPlugin:
    """A plugin with its own activity (the timeline must find it by kind, never by name)."""

    @hookimpl
    def register_bus_events(self) -> list[EventSpec]:
        return [EventSpec("demo.moment", "A moment of the show.", {"title": "what", "secret": "staff only"}, "public",
                          activity="Moment {title}", label="Moments", icon="✨", public={"title": None})]


@pytest.fixture
async def client(aiohttp_client: Any, app_factory: Any) -> Any:
    return await aiohttp_client(app_factory(plugins=[MomentPlugin()]))


async def _show(client: Any) -> dict[str, Any]:
    """A LIVE with comments (one hidden, one reply), a pinned product, an order and a plugin's moment, then ended."""
    app = client.app
    owner = await staff_cookie(client, "owner")
    eid = await make_event(app)
    pid = await make_product(app, title="Mug", stock=5, price_cents=1250, event_id=eid)
    session = await go_live(app, eid)
    ann, bob = await new_viewer(app, "Ann"), await new_viewer(app, "Bob")
    resp = await client.post(f"/api/e/{eid}/comments", json={"body": "hello, =1+2"}, headers=vh(ann))
    assert resp.status == 201, await resp.text()
    first = (await resp.json())["comment"]["id"]
    resp = await client.post(f"/api/e/{eid}/comments", json={"body": "rude words"}, headers=vh(bob))
    rude = (await resp.json())["comment"]["id"]
    assert (await client.post(f"/api/comments/{rude}/pin", headers=owner)).status == 200  # pinned, then hidden
    assert (await client.post(f"/api/comments/{rude}/hide", headers=owner)).status == 200
    assert (await client.post(f"/api/comments/{first}/reply", json={"body": "welcome!"}, headers=owner)).status == 201
    assert (await client.post(f"/api/events/{eid}/pin", json={"product_id": pid}, headers=owner)).status == 200
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 2}, headers=vh(ann))
    assert resp.status == 201, await resp.text()
    await app[BUS].publish("demo.moment", {"title": "confetti", "secret": "s3cret"}, **app[LIVE].tags(eid))
    await app[LIVE].end("host ended")
    return {"eid": eid, "pid": pid, "sid": session.id, "started": session.started_at, "owner": owner, "first": first,
            "rude": rude, "slug": await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))}


def test_video_offset_places_moments_on_the_parts() -> None:
    parts = [{"started_at": 100.0, "duration": 10.0}, {"started_at": 200.0, "duration": 30.0}]
    assert video_offset(105.0, parts, 99.0) == 5.0
    assert video_offset(150.0, parts, 99.0) == 10.0      # the server was down: at the start of the next part
    assert video_offset(212.5, parts, 99.0) == 22.5
    assert video_offset(50.0, parts, 99.0) == 0.0        # before the first packet
    assert video_offset(107.0, [], 100.0) == 7.0         # no recording: from the session's start


async def test_timeline_for_staff_and_for_the_public(client: Any) -> None:
    app = client.app
    show = await _show(client)
    await add_part(app, show["sid"], show["started"] + 1.0, 600.0)
    url = f"/api/sessions/{show['sid']}/timeline"
    # staff see everything, each item placed on the video (1 s after the session's start)
    resp = await client.get(url, headers=show["owner"])
    assert resp.status == 200, await resp.text()
    tl = await resp.json()
    assert [p["part"] for p in tl["parts"]] == [1] and tl["parts"][0]["url"].endswith("/video.mp4")
    kinds = [(i["kind"], i.get("name")) for i in tl["items"]]
    assert ("order", None) in kinds and ("activity", "product.pinned") in kinds and ("activity", "demo.moment") in kinds
    comments = [i for i in tl["items"] if i["kind"] == "comment"]
    assert [c["body"] for c in comments] == ["hello, =1+2", "rude words", "welcome!"]
    rude = next(c for c in comments if c["id"] == show["rude"])
    assert rude["hidden"] is True and rude["hidden_reason"].startswith("hidden by")
    assert next(c for c in comments if c["body"] == "welcome!")["parent_id"] == show["first"]
    for item in tl["items"]:
        assert abs(item["offset"] - max(0.0, item["at"] - show["started"] - 1.0)) < 0.01
    assert all(i["marker"] for i in tl["items"] if i["kind"] == "order" or i.get("name") in ("product.pinned", "demo.moment"))
    assert {k["name"] for k in tl["kinds"]} >= {"demo.moment", "product.pinned"}
    # unpublished: nobody else
    assert (await client.get(url)).status == 401
    viewer = await new_viewer(app, "Cy")
    # the past-session console carries the replay (its player and timeline: tests/e2e/test_replay_browser.py)
    page = await (await client.get(f"/events/{show['eid']}/console?session={show['sid']}", headers=show["owner"])).text()
    assert 'id="replay"' in page and "replay-console.js" in page and 'id="replay-publish"' in page
    assert (await client.get(url, headers=vh(viewer))).status == 401
    # published: the public view, without hidden comments, orders or staff-only fields
    assert (await client.post(f"/api/sessions/{show['sid']}/publish", headers=show["owner"])).status == 200
    public = await (await client.get(url, headers=vh(viewer))).json()
    assert [i["body"] for i in public["items"] if i["kind"] == "comment"] == ["hello, =1+2", "welcome!"]
    assert not any(i["kind"] == "order" for i in public["items"])
    moment = next(i for i in public["items"] if i.get("name") == "demo.moment")
    assert moment["data"] == {"title": "confetti"}
    assert all("hidden_reason" not in i for i in public["items"])
    assert "rude words" not in await (await client.get(url, headers=vh(viewer))).text()  # nor its pin's activity
    assert any(i.get("name") == "comment.pinned" for i in tl["items"])  # which staff see
    assert public["session"]["published"] is True
    assert (await (await client.get(url + "?view=public", headers=show["owner"])).json())["items"] == public["items"]


async def test_comment_and_order_downloads(client: Any) -> None:
    app = client.app
    show = await _show(client)
    await app[DB].execute("UPDATE comments SET body = ? WHERE id = ?", ('=HYPERLINK("http://x") "quoted", and more', show["first"]))
    for i, body in enumerate(("+1", "-2", "@cmd", "\tx")):
        await app[DB].execute("INSERT INTO comments (event_id, session_id, nickname, body, created_at) VALUES (?, ?, ?, ?, ?)",
                              (show["eid"], show["sid"], f"=n{i}", body, show["started"] + 30 + i))
    resp = await client.get(f"/api/sessions/{show['sid']}/comments.csv", headers=show["owner"])
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert tuple(rows[0]) == COMMENT_COLUMNS
    by_text = {r[4]: dict(zip(COMMENT_COLUMNS, r)) for r in rows[1:]}
    first = by_text['\'=HYPERLINK("http://x") "quoted", and more']   # the comma and quotes survive, the formula is defused
    assert first["reply_to"] == "" and first["hidden"] == "false" and first["time"].endswith("Z")
    assert {"'+1", "'-2", "'@cmd", "'\tx"} <= set(by_text)
    assert by_text["'+1"]["nickname"] == "'=n0"
    rude = by_text["rude words"]
    assert rude["hidden"] == "true" and rude["hidden_reason"].startswith("hidden by")
    assert by_text["welcome!"]["reply_to"] == str(show["first"]) and by_text["welcome!"]["staff"] == "true"
    # JSON: the same columns
    data = await (await client.get(f"/api/sessions/{show['sid']}/comments.json", headers=show["owner"])).json()
    assert set(data["comments"][0]) == set(COMMENT_COLUMNS) and len(data["comments"]) == len(rows) - 1
    # orders
    resp = await client.get(f"/api/sessions/{show['sid']}/orders.csv", headers=show["owner"])
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert tuple(rows[0]) == ORDER_COLUMNS
    order = dict(zip(ORDER_COLUMNS, rows[1]))
    assert order["product"] == "Mug" and order["quantity"] == "2" and order["amount"] == "25.00" and order["currency"] == "USD"
    # staff only until published; then the public gets the comments (no hidden ones), never the orders
    viewer = await new_viewer(app, "Di")
    for path in ("comments.csv", "comments.json", "orders.csv"):
        assert (await client.get(f"/api/sessions/{show['sid']}/{path}", headers=vh(viewer))).status == 401
    assert (await client.post(f"/api/sessions/{show['sid']}/publish", headers=show["owner"])).status == 200
    text = (await (await client.get(f"/api/sessions/{show['sid']}/comments.csv", headers=vh(viewer))).read()).decode("utf-8-sig")
    assert "rude words" not in text and "welcome!" in text
    assert (await client.get(f"/api/sessions/{show['sid']}/orders.csv", headers=vh(viewer))).status == 401


async def test_publish_rules(client: Any) -> None:
    app = client.app
    show = await _show(client)
    url = f"/api/sessions/{show['sid']}/publish"
    assistant = await staff_cookie(client, "assistant")
    assert (await client.post(url, headers=assistant)).status == 403
    resp = await client.post(url, headers=show["owner"])
    assert resp.status == 200
    assert await resp.json() == {"session_id": show["sid"], "published": True, "url": f"/e/{show['slug']}/replay/{show['sid']}"}
    assert (await client.delete(url, headers=show["owner"])).status == 200
    assert await app[DB].fetchval("SELECT replay_published FROM sessions WHERE id = ?", (show["sid"],)) == 0
    # practice is never public; a session still live cannot be published yet
    practice = await go_live(app, show["eid"], practice=True)
    resp = await client.post(f"/api/sessions/{practice.id}/publish", headers=show["owner"])
    assert resp.status == 409 and "practice" in (await resp.json())["error"]["message"]
    await app[LIVE].end("host ended")
    live = await go_live(app, show["eid"])
    resp = await client.post(f"/api/sessions/{live.id}/publish", headers=show["owner"])
    assert resp.status == 409 and "still live" in (await resp.json())["error"]["message"]
    await app[LIVE].end("host ended")
    assert (await client.post("/api/sessions/99999/publish", headers=show["owner"])).status == 404


async def test_public_replay_page_is_404_unless_published(client: Any) -> None:
    app = client.app
    show = await _show(client)
    page = f"/e/{show['slug']}/replay/{show['sid']}"
    resp = await client.get(page)
    assert resp.status == 404 and "not available" in await resp.text()
    assert (await client.post(f"/api/sessions/{show['sid']}/publish", headers=show["owner"])).status == 200
    resp = await client.get(page)
    assert resp.status == 200
    html = await resp.text()
    assert "replay.js" in html and 'id="replay-video"' in html and "Mug" in html
    # another event's session, a practice session (even flagged by hand) and an unpublished one: 404
    other = await make_event(app, starts_in=86400)
    assert (await client.get(f"/e/{other}/replay/{show['sid']}")).status == 404
    practice = await go_live(app, show["eid"], practice=True)
    await app[LIVE].end("host ended")
    await app[DB].execute("UPDATE sessions SET replay_published = 1 WHERE id = ?", (practice.id,))
    assert (await client.get(f"/e/{show['slug']}/replay/{practice.id}")).status == 404
    assert (await client.get(f"/api/sessions/{practice.id}/timeline")).status == 401
    # the event's public page (ended) offers the published replay, not the practice one
    await app[DB].execute("UPDATE events SET starts_at = ? WHERE id = ?", (time.time() - 7200, show["eid"]))
    ended = await (await client.get(f"/e/{show['slug']}")).text()
    assert f'href="{page}"' in ended and f"/replay/{practice.id}" not in ended
    assert (await client.delete(f"/api/sessions/{show['sid']}/publish", headers=show["owner"])).status == 200
    assert (await client.get(page)).status == 404
    assert "/replay/" not in await (await client.get(f"/e/{show['slug']}")).text()


async def test_a_viewer_buys_from_a_public_replay(client: Any) -> None:
    app = client.app
    show = await _show(client)
    before = await session_figures(app[DB], show["sid"])
    viewer = await new_viewer(app, "Eve")
    url = f"/api/e/{show['eid']}/replay/{show['sid']}/orders"
    assert (await client.post(url, json={"product_id": show["pid"], "quantity": 1}, headers=vh(viewer))).status == 404
    assert (await client.post(f"/api/sessions/{show['sid']}/publish", headers=show["owner"])).status == 200
    headers = {**vh(viewer), "Idempotency-Key": "replay-buy-1"}
    resp = await client.post(url, json={"product_id": show["pid"], "quantity": 2}, headers=headers)
    assert resp.status == 201, await resp.text()
    order = (await resp.json())["order"]
    assert order["label"] == "replay" and order["session_id"] == show["sid"] and order["amount_cents"] == 2500
    assert order["practice"] is False and "viewer_id" not in order
    again = await client.post(url, json={"product_id": show["pid"], "quantity": 2}, headers=headers)  # a retry: the same order
    assert again.status == 200 and (await again.json())["order"]["id"] == order["id"]
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (show["pid"],)) == 1  # 5 - 2 (live) - 2
    resp = await client.post(url, json={"product_id": show["pid"], "quantity": 2}, headers=vh(viewer))
    assert resp.status == 409 and "only 1 left" in (await resp.json())["error"]["message"]
    # the LIVE's figures are unchanged; the replay's sale is counted apart
    after = await session_figures(app[DB], show["sid"])
    assert after["gmv_cents"] == before["gmv_cents"] == 2500 and after["orders"] == before["orders"] == 1
    assert after["replay_orders"] == 1 and after["replay_amount_cents"] == 2500
    # it is in the staff's orders download, labelled
    text = (await (await client.get(f"/api/sessions/{show['sid']}/orders.csv", headers=show["owner"])).read()).decode("utf-8-sig")
    assert text.count("\r\n") == 3 and ",replay\r\n" in text
    # a practice session's replay cannot be bought from, even flagged by hand
    practice = await go_live(app, show["eid"], practice=True)
    await app[LIVE].end("host ended")
    await app[DB].execute("UPDATE sessions SET replay_published = 1 WHERE id = ?", (practice.id,))
    resp = await client.post(f"/api/e/{show['eid']}/replay/{practice.id}/orders", json={"product_id": show["pid"]}, headers=vh(viewer))
    assert resp.status == 404
