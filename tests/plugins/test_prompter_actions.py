"""Named actions (``register_actions``, ``POST /api/actions/{name}``) and the prompter's buttons that DO the thing:
"Start a giveaway" starts the event's next giveaway, "Launch a flash sale" launches the pinned product's sale;
an action whose plugin is missing is never offered; "nearly sold out" offers the next product."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import lmserver_plugins.flashsale as flashsale
import lmserver_plugins.giveaway as giveaway
import lmserver_plugins.prompter as prompter
from lmserver import api
from lmserver.api import Action, hookimpl
from lmserver.app import create_app
from lmserver.appkeys import BUS, DB
from lmserver_plugins.prompter.engine import Live, nearly_sold_out, pinned_not_selling, traffic_drop
from lmserver_plugins.prompter.settings import Settings
from tests.livehelpers import go_live, make_event, make_product, staff_cookie


class Waver:
    """A plugin offering one action (moderators and owners: comments.moderate), and a badly declared one."""

    PLUGIN_NAME = "waver"

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str]] = []

    @hookimpl
    def register_actions(self) -> list[Action]:
        async def wave(app: Any, params: dict[str, Any], user: Any) -> dict[str, Any]:
            if params.get("fail"):
                raise api.Conflict("nobody to wave to: wait for viewers")
            self.calls.append((params, user.name))
            return {"text": f"waved {params.get('times', 1)} times"}
        return [Action("waver.wave", "Wave", "comments.moderate", wave),
                Action("waver.typo", "Typo", "no.such_permission", wave)]


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_a_named_action_runs_with_its_own_permission(aiohttp_client: Any, make_config: Any, caplog: Any) -> None:
    waver = Waver()
    with caplog.at_level(logging.ERROR):
        app = create_app(make_config(), plugins=(waver,), load_entrypoints=False)
    assert "waver.typo" in caplog.text and "no.such_permission" in caplog.text  # left out, logged
    client = await aiohttp_client(app)
    assert api.has_action(app, "waver.wave") and not api.has_action(app, "waver.typo") and not api.has_action(app, "giveaway.start")
    assistant = await staff_cookie(client, "assistant")
    resp = await client.post("/api/actions/waver.wave", json={"params": {"times": 2}}, headers=assistant)
    assert resp.status == 403 and "comments.moderate" in await resp.text()
    moderator = await staff_cookie(client, "moderator")
    done = await ok(await client.post("/api/actions/waver.wave", json={"params": {"times": 2}}, headers=moderator))
    assert done == {"action": "waver.wave", "result": {"text": "waved 2 times"}}
    assert waver.calls == [({"times": 2}, waver.calls[0][1])] and waver.calls[0][1].startswith("moderator")
    # the action's own refusal, an unknown action, bad params: clear 4xx
    resp = await client.post("/api/actions/waver.wave", json={"params": {"fail": True}}, headers=moderator)
    assert resp.status == 409 and "nobody to wave to" in await resp.text()
    resp = await client.post("/api/actions/giveaway.start", json={}, headers=moderator)
    assert resp.status == 404 and "no installed plugin offers it" in await resp.text()
    assert (await client.post("/api/actions/waver.wave", json={"params": [1]}, headers=moderator)).status == 400
    assert (await client.post("/api/actions/waver.wave", json={"times": 1}, headers=moderator)).status == 400
    assert len(waver.calls) == 1
    # a finding naming an action nobody offers has that button left out
    eid = await make_event(app)
    session = await go_live(app, eid)
    f = await api.report_finding(app, "waver", {"key": "k", "text": "Quiet room", "actions": [
        {"label": "Start a giveaway", "action": "giveaway.start", "params": {"event_id": eid}},
        {"label": "Wave", "action": "waver.wave", "params": {"times": 3}}]}, session=session)
    assert f is not None and f["actions"] == [{"label": "Wave", "action": "waver.wave", "params": {"times": 3}}]


def test_rules_offer_only_the_actions_an_installed_plugin_has() -> None:
    s = Settings()
    bag = [{"id": 1, "title": "Blue mug", "stock": 3}, {"id": 2, "title": "Red mug", "stock": 20}]
    for actions in (frozenset(), frozenset({"giveaway.start", "flashsale.launch"})):
        live = Live(session_id=1, event_id=7, started_at=0.0, viewers=4, bag=bag, pinned_id=1, pinned_since=0.0, actions=actions)
        live.viewer_series.extend([(0.0, 40), (60.0, 4)])
        drop = traffic_drop(live, 60.0, s)["traffic_drop"]["actions"]
        stale = pinned_not_selling(live, 600.0, s)["pinned_not_selling:1"]["actions"]
        named = [a for a in drop + stale if "action" in a]
        if not actions:
            assert named == []
        else:
            assert {"label": "Start a giveaway", "action": "giveaway.start", "params": {"event_id": 7}} in drop
            assert {"label": "Launch a flash sale", "action": "flashsale.launch", "params": {"event_id": 7, "product_id": 1}} in stale
        # nearly sold out: the next product one click away, and the catalog for more units
        low = nearly_sold_out(live, 60.0, s)["nearly_sold_out:1"]
        assert low["actions"][0] == {"label": "Pin next: Red mug", "method": "POST", "url": "/api/events/7/pin", "body": {"product_id": 2}}
        assert low["actions"][1]["href"] == "/catalog?product=1" and "Red mug is next" in low["text"]


async def next_finding(q: asyncio.Queue[Any], key: str) -> dict[str, Any]:
    for _ in range(200):  # bounded: the tick runs once a second
        rec = await asyncio.wait_for(q.get(), 15)
        if rec.data["key"].startswith(key) and rec.data["status"] == "active" and rec.data["actions"]:
            return rec.data
    raise AssertionError(f"no finding {key}")


async def test_start_a_giveaway_and_launch_a_flash_sale_do_the_thing(aiohttp_client: Any, make_config: Any) -> None:
    settings = {"giveaway_after_seconds": 0, "pinned_no_sale_seconds": 0, "products_min_viewers": 0}
    app = create_app(make_config(plugins={"prompter": settings, "flashsale": {}, "giveaway": {}}),
                     plugins=(prompter, giveaway, flashsale), load_entrypoints=False)
    client = await aiohttp_client(app)
    staff = await staff_cookie(client, "assistant")
    eid = await make_event(app)
    mug = await make_product(app, "Blue mug", stock=30, price_cents=1000, event_id=eid)
    gid = (await ok(await client.post("/api/plugins/giveaway/giveaways", headers=staff, json={
        "products": [{"id": mug, "allocated": 2}], "winners": 1, "items_per_winner": 1, "entry_mode": "comment", "keyword": "WIN",
        "countdown_minutes": 1, "accept_terms": True, "event_id": eid}), 201))["giveaway"]["id"]
    sale = (await ok(await client.post(f"/api/plugins/flashsale/events/{eid}/sales", headers=staff, json={
        "product_id": mug, "allocated": 5, "deal_price_cents": 700}), 201))["sale"]
    q: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("prompter.suggestion", q.put_nowait)
    await go_live(app, eid)
    owner = await staff_cookie(client, "owner")
    await ok(await client.post(f"/api/events/{eid}/pin", json={"product_id": mug}, headers=owner))

    early = await next_finding(q, "early_giveaway")
    [start] = early["actions"]
    assert start == {"label": "Start a giveaway", "action": "giveaway.start", "params": {"event_id": eid}}
    done = await ok(await client.post(f"/api/actions/{start['action']}", json={"params": start["params"]}, headers=staff))
    assert "started" in done["result"]["text"]
    assert await app[DB].fetchval("SELECT status FROM giveaways WHERE id = ?", (gid,)) == "running"

    stale = await next_finding(q, f"pinned_not_selling:{mug}")
    [launch] = [a for a in stale["actions"] if a.get("action")]
    assert launch["params"] == {"event_id": eid, "product_id": mug}
    done = await ok(await client.post(f"/api/actions/{launch['action']}", json={"params": launch["params"]}, headers=staff))
    assert "Flash sale launched" in done["result"]["text"]
    assert await app[DB].fetchval("SELECT status FROM flashsale_sales WHERE id = ?", (sale["id"],)) == "countdown"
    # nothing left to launch or start: a clear 409 saying what to do
    resp = await client.post("/api/actions/giveaway.start", json={"params": {"event_id": eid}}, headers=staff)
    assert resp.status == 409 and "Giveaways panel" in await resp.text()


async def test_without_the_giveaway_plugin_its_action_is_not_offered(aiohttp_client: Any, make_config: Any) -> None:
    app = create_app(make_config(plugins={"prompter": {"pinned_no_sale_seconds": 0, "products_min_viewers": 0}, "flashsale": {}}),
                     plugins=(prompter, flashsale), load_entrypoints=False)
    client = await aiohttp_client(app)
    assert api.has_action(app, "flashsale.launch") and not api.has_action(app, "giveaway.start")
    eid = await make_event(app)
    mug = await make_product(app, "Blue mug", event_id=eid)
    q: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("prompter.suggestion", q.put_nowait)
    await go_live(app, eid)
    await ok(await client.post(f"/api/events/{eid}/pin", json={"product_id": mug}, headers=await staff_cookie(client, "owner")))
    stale = await next_finding(q, f"pinned_not_selling:{mug}")
    assert [a["action"] for a in stale["actions"] if "action" in a] == ["flashsale.launch"]
    live = prompter.state(app).live  # type: ignore[union-attr]
    assert live is not None and live.actions == frozenset({"flashsale.launch"})
