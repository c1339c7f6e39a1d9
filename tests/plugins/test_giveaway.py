"""Giveaway plugin over real HTTP and SQLite: rules and their 4xx, allocation from stock, entries by comment
and follow, the commit–reveal draw checked with hashlib independently of the plugin, redraw, claims,
practice, and a restart during the countdown."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from typing import Any

import pytest

import lmserver_plugins.giveaway as giveaway
from lmserver import api
from lmserver.api import hookimpl
from lmserver.appkeys import DB
from lmserver.db import DB_FILENAME
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh

API = "/api/plugins/giveaway"


class Watcher:
    """A plugin that queues the bus records it sees (to await a draw instead of sleeping)."""

    PLUGIN_NAME = "watcher"

    def __init__(self) -> None:
        self.records: asyncio.Queue[Any] = asyncio.Queue()

    @hookimpl
    def on_bus_event(self, app: Any, event: Any) -> None:
        self.records.put_nowait(event)

    async def wait(self, name: str) -> Any:
        while True:
            rec = await asyncio.wait_for(self.records.get(), 20)
            if rec.name == name:
                return rec


@pytest.fixture
def watcher() -> Watcher:
    return Watcher()


@pytest.fixture
def make_app(make_config: Any, watcher: Watcher) -> Any:
    from lmserver.app import create_app

    return lambda **settings: create_app(make_config(plugins={"giveaway": settings}), plugins=(giveaway, watcher),
                                         load_entrypoints=False)


@pytest.fixture
async def client(aiohttp_client: Any, make_app: Any) -> Any:
    return await aiohttp_client(make_app())


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]["message"]


async def stock(app: Any, pid: int) -> int:
    return await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,))


def body(pid: int, **over: Any) -> dict[str, Any]:
    return {"products": [{"id": pid, "allocated": 4}], "winners": 2, "items_per_winner": 2, "entry_mode": "comment",
            "keyword": "WIN", "countdown_minutes": 1, "accept_terms": True, **over}


async def end_countdown(app: Any, watcher: Watcher, gid: int) -> Any:
    """The countdown's end, now: the same timer, due now (instead of waiting a minute)."""
    await api.schedule_at(app, time.time(), f"giveaway:{gid}", "giveaway.draw", {"giveaway_id": gid})
    return await watcher.wait("giveaway.drawn")


def verify(draw: dict[str, Any]) -> list[str]:
    """The documented algorithm, written again with hashlib only (docs/giveaways.md)."""
    seed = bytes.fromhex(draw["seed"])
    assert hashlib.sha256(seed).hexdigest() == draw["commitment"]
    pool = sorted(draw["pool"])
    ehash = hashlib.sha256("\n".join(pool).encode()).digest()
    assert ehash.hex() == draw["entries_hash"]
    out = []
    for i in range(1, min(draw["picks"], len(pool)) + 1):
        n = int.from_bytes(hashlib.sha256(seed + ehash + i.to_bytes(4, "big")).digest(), "big") % len(pool)
        out.append(pool.pop(n))
    return out


# --------------------------------------------------------------------------------------------- setting up


async def test_create_allocates_from_stock_and_delete_returns_it(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client, "assistant")
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    g = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event), headers=staff), 201))["giveaway"]
    assert g["status"] == "ready" and g["products"][0]["held"] == 4 and g["event"]["id"] == event
    assert g["terms_accepted_by"].startswith("assistant") and g["title"] == "Mug"
    assert await stock(app, pid) == 6  # set aside: no one can buy them
    await go_live(app, event)
    buyer = await new_viewer(app, "bo")
    msg = await error(await client.post(f"/api/e/{event}/orders", json={"product_id": pid, "quantity": 7}, headers=vh(buyer)), 409)
    assert "6" in msg
    await ok(await client.delete(f"{API}/giveaways/{g['id']}", headers=staff))
    assert await stock(app, pid) == 10


async def test_bad_input_is_refused_with_the_numbers_and_nothing_written(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=3)
    archived = await make_product(app, stock=5)
    await app[DB].execute("UPDATE products SET archived = 1 WHERE id = ?", (archived,))
    cases = [
        (body(pid, accept_terms=False), 400, "terms"),
        (body(pid, keyword="  "), 400, "keyword"),
        (body(pid, countdown_minutes=0), 400, "1 to 10"),
        (body(pid, countdown_minutes=11), 400, "1 to 10"),
        (body(pid, winners=0), 400, "winners"),
        (body(pid, items_per_winner=0), 400, "items_per_winner"),
        (body(pid, products=[{"id": pid, "allocated": 3}], winners=2, items_per_winner=2), 400, "2 winners × 2 items per winner = 4"),
        (body(pid, products=[{"id": pid, "allocated": 4}], winners=1, items_per_winner=1), 409, "has 3 in stock: 4 cannot be allocated"),
        (body(999, winners=1, items_per_winner=1), 404, "999"),
        (body(archived, winners=1, items_per_winner=1), 400, "archived"),
        (body(pid, entry_mode="dance"), 400, "entry_mode"),
    ]
    for data, status, words in cases:
        assert words in await error(await client.post(f"{API}/giveaways", json=data, headers=staff), status), data
    assert await app[DB].fetchval("SELECT COUNT(*) FROM giveaways") == 0
    assert await stock(app, pid) == 3
    # a follow giveaway needs no keyword
    await ok(await client.post(f"{API}/giveaways", json=body(pid, entry_mode="follow", keyword="", winners=1, items_per_winner=1,
                                                                 products=[{"id": pid, "allocated": 1}], event_id=event), headers=staff), 201)


async def test_one_event_per_giveaway_and_edit_until_start(client: Any) -> None:
    app = client.app
    staff = await staff_cookie(client)
    first, second = await make_event(app, "Spring"), await make_event(app, "Autumn")
    pid = await make_product(app, stock=10)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=first), headers=staff), 201))["giveaway"]["id"]
    assert "already included in Spring" in await error(await client.put(f"{API}/events/{second}/giveaways/{gid}", headers=staff), 409)
    await ok(await client.delete(f"{API}/events/{first}/giveaways/{gid}", headers=staff))
    await ok(await client.put(f"{API}/events/{second}/giveaways/{gid}", headers=staff))
    g = (await ok(await client.patch(f"{API}/giveaways/{gid}", json={"products": [{"id": pid, "allocated": 6}], "winners": 3},
                                      headers=staff)))["giveaway"]
    assert g["winners"] == 3 and await stock(app, pid) == 4
    assert "items per winner" in await error(await client.patch(f"{API}/giveaways/{gid}", json={"winners": 4}, headers=staff), 400)
    listing = await client.get(f"/p/giveaway/", headers=staff)
    assert listing.status == 200 and "Autumn" in await listing.text()


# --------------------------------------------------------------------------------------------- running and the draw


async def test_comment_entries_then_a_draw_anyone_can_verify(client: Any, watcher: Watcher) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app, "Spring sale")
    pid = await make_product(app, stock=10, event_id=event)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event), headers=staff), 201))["giveaway"]["id"]
    assert "not live" in await error(await client.post(f"{API}/giveaways/{gid}/start", headers=staff), 409)
    session = await go_live(app, event)
    started = (await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff)))["giveaway"]
    draw = started["draws"][0]
    assert started["status"] == "running" and started["entries"] == 0 and draw["seed"] is None and len(draw["commitment"]) == 64
    assert "edited only until it starts" in await error(await client.patch(f"{API}/giveaways/{gid}", json={"winners": 1}, headers=staff), 409)
    assert "cannot be deleted" in await error(await client.delete(f"{API}/giveaways/{gid}", headers=staff), 409)
    other = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event), headers=staff), 201))["giveaway"]["id"]
    assert "one giveaway at a time" in await error(await client.post(f"{API}/giveaways/{other}/start", headers=staff), 409)

    viewers = [await new_viewer(app, f"fan{i}") for i in range(5)]
    for i, v in enumerate(viewers):
        await ok(await client.post(f"/api/e/{event}/comments", json={"body": "  win " if i % 2 else "WIN"}, headers=vh(v)), 201)
        assert (await watcher.wait("giveaway.entered")).data["entries"] == i + 1
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "I want to win"}, headers=vh(await new_viewer(app, "chat"))), 201)
    blocked = await new_viewer(app, "bad")
    await app[DB].execute("UPDATE viewers SET blocked = 1 WHERE id = ?", (blocked["id"],))
    await client.post(f"/api/e/{event}/comments", json={"body": "WIN"}, headers=vh(blocked))
    await client.post(f"/api/e/{event}/comments", json={"body": "WIN"}, headers=vh(await new_viewer(app, None)))
    await client.post(f"/api/e/{event}/follow", headers=vh(await new_viewer(app, "follower")))  # follow is not the way in here
    last = await new_viewer(app, "fan5")  # a sentinel: the refusals above were handled before its entry
    viewers.append(last)
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "Win"}, headers=vh(last)), 201)
    assert (await watcher.wait("giveaway.entered")).data["nickname"] == "fan5"
    state = await ok(await client.get(f"{API}/events/{event}/current", headers=vh(viewers[1])))
    assert state["giveaway"]["entries"] == 6 and state["you"]["entered"] is True

    drawn = (await end_countdown(app, watcher, gid)).data["giveaway"]
    assert drawn["status"] == "drawn"
    d = drawn["draws"][0]
    assert d["seed"] and d["commitment"] == draw["commitment"] and len(d["pool"]) == 6
    assert verify(d) == [w["code"] for w in d["winners"]] and len(d["winners"]) == 2
    assert await stock(app, pid) == 6 - 4 + 0  # 4 units held for two prizes of 2 (the other giveaway holds 4)
    late = await new_viewer(app, "late")
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "WIN"}, headers=vh(late)), 201)
    proof = (await ok(await client.get(f"{API}/giveaways/{gid}/proof")))["giveaway"]
    assert len(proof["entrants"]) == 6 and {e["nickname"] for e in proof["entrants"]} == {f"fan{i}" for i in range(6)}
    page = await client.get(f"/e/{session.event_id}/giveaways/{gid}")
    assert page.status == 200 and d["seed"] in await page.text()

    # claims: the winner gets a zero-price order marked giveaway; twice is refused; a loser cannot
    assert all("viewer_id" not in w for w in d["winners"])  # viewers never see viewer ids
    staff_view = (await ok(await client.get(f"{API}/giveaways/{gid}", headers=staff)))["giveaway"]
    winner_ids = {w["viewer_id"] for w in staff_view["draws"][0]["winners"]}
    win = next(v for v in viewers if v["id"] in winner_ids)
    lose = next(v for v in viewers if v["id"] not in winner_ids)
    form = {"name": "Ann Lee", "email": "ann@example.com", "address": "1 Main St, Springfield"}
    assert "email" in await error(await client.post(f"{API}/giveaways/{gid}/claim", json={**form, "email": "nope"}, headers=vh(win)), 400)
    claimed = await ok(await client.post(f"{API}/giveaways/{gid}/claim", json=form, headers=vh(win)))
    order = await api.order(app, claimed["order_ids"][0])
    assert order["amount_cents"] == 0 and order["quantity"] == 2 and order["label"] == "giveaway" and not order["practice"]
    assert "already claimed" in await error(await client.post(f"{API}/giveaways/{gid}/claim", json=form, headers=vh(win)), 409)
    assert "did not win" in await error(await client.post(f"{API}/giveaways/{gid}/claim", json=form, headers=vh(lose)), 409)
    figures = await api.session_figures(app, session.id)
    assert figures["gmv_cents"] == 0 and figures["figure_values"]["giveaways_run"] == 1
    orders = await ok(await client.get(f"/api/events/{event}/orders", headers=staff))
    assert [o["label"] for o in orders["orders"]] == ["giveaway"]

    # redraw: only once the other winner's claim window has passed; a new, verifiable draw from those who did not win
    assert "nothing to redraw" in await error(await client.post(f"{API}/giveaways/{gid}/redraw", headers=staff), 409)
    other_win = next(v for v in viewers if v["id"] in winner_ids and v is not win)
    await app[DB].execute("UPDATE giveaway_winners SET claim_until = ? WHERE viewer_id = ?", (time.time() - 1, other_win["id"]))
    assert "window closed" in await error(await client.post(f"{API}/giveaways/{gid}/claim", json=form, headers=vh(other_win)), 409)
    again = (await ok(await client.post(f"{API}/giveaways/{gid}/redraw", headers=staff)))["giveaway"]
    first, second = again["draws"]
    assert first["seed"] == d["seed"] and [w["status"] for w in first["winners"]].count("redrawn") == 1  # nothing erased
    assert len(second["pool"]) == 4 and not set(second["pool"]) & {w["code"] for w in d["winners"]}
    assert second["commitment"] != first["commitment"] and verify(second) == [w["code"] for w in second["winners"]]


async def test_both_mode_enters_by_comment_or_follow(client: Any, watcher: Watcher) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    await go_live(app, event)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event, entry_mode="both", keyword="gift"),
                                      headers=staff), 201))["giveaway"]["id"]
    await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff))
    a, b, c = [await new_viewer(app, n) for n in "abc"]
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "GIFT"}, headers=vh(a)), 201)  # by comment
    assert (await watcher.wait("giveaway.entered")).data["nickname"] == "a"
    await ok(await client.post(f"/api/e/{event}/follow", headers=vh(a)))  # and a follow: still one entry
    await ok(await client.post(f"/api/e/{event}/follow", headers=vh(b)))  # by follow
    assert (await watcher.wait("giveaway.entered")).data["nickname"] == "b"
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "gifts"}, headers=vh(c)), 201)  # not the keyword
    assert "follow to enter" in await error(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(c)), 409)
    g = (await ok(await client.get(f"{API}/giveaways/{gid}", headers=staff)))["giveaway"]
    assert g["entries"] == 2 and g["how_to_enter"] == "Comment gift or follow to enter"
    drawn = (await end_countdown(app, watcher, gid)).data["giveaway"]
    assert sorted(w["nickname"] for w in drawn["draws"][0]["winners"]) == ["a", "b"]


async def test_follow_mode_and_the_enter_button(client: Any, watcher: Watcher) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    await go_live(app, event)
    early = await new_viewer(app, "early")
    await ok(await client.post(f"/api/e/{event}/follow", headers=vh(early)))  # followed before the giveaway
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event, entry_mode="follow", keyword=""),
                                      headers=staff), 201))["giveaway"]["id"]
    await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff))
    fan = await new_viewer(app, "fan")
    assert "follow the host" in await error(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(fan)), 409)
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "WIN"}, headers=vh(fan)), 201)  # comments don't count here
    await ok(await client.post(f"/api/e/{event}/follow", headers=vh(fan)))
    assert (await watcher.wait("giveaway.entered")).data["nickname"] == "fan"
    assert (await ok(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(early))))["already"] is False
    assert "staff cannot enter" in await error(await client.post(f"{API}/giveaways/{gid}/enter", headers={"Cookie": f"{fan['Cookie']}; {staff['Cookie']}", "X-CSRF-Token": staff["X-CSRF-Token"]}), 403)
    assert (await ok(await client.get(f"{API}/giveaways/{gid}", headers=staff)))["giveaway"]["entries"] == 2


async def test_practice_takes_nothing_from_stock(client: Any, watcher: Watcher) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    await go_live(app, event, practice=True)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event, entry_mode="none", keyword="", winners=1),
                                      headers=staff), 201))["giveaway"]["id"]
    assert (await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff)))["giveaway"]["practice"] is True
    fan = await new_viewer(app, "fan")
    assert (await ok(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(fan))))["already"] is False
    assert (await ok(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(fan))))["already"] is True
    assert "nickname" in await error(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(await new_viewer(app))), 403)
    await end_countdown(app, watcher, gid)
    assert await stock(app, pid) == 10  # everything back
    claimed = await ok(await client.post(f"{API}/giveaways/{gid}/claim", json={"name": "F", "email": "f@x.io", "address": "Somewhere 1"},
                                         headers=vh(fan)))
    order = await api.order(app, claimed["order_ids"][0])
    assert order["practice"] is True and await stock(app, pid) == 10


async def test_a_restart_during_the_countdown_still_draws(aiohttp_client: Any, make_config: Any, data_dir: Any) -> None:
    from lmserver.app import create_app

    first = Watcher()
    client = await aiohttp_client(create_app(make_config(), plugins=(giveaway, first), load_entrypoints=False))
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    await go_live(app, event)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event, winners=1), headers=staff), 201))["giveaway"]["id"]
    await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff))
    fan = await new_viewer(app, "fan")
    await ok(await client.post(f"/api/e/{event}/comments", json={"body": "win"}, headers=vh(fan)), 201)
    await first.wait("giveaway.entered")
    await client.close()

    # while the server is down, the countdown's minute passes
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("UPDATE timers SET due_at = ? WHERE key = ?", (time.time() - 5, f"giveaway:{gid}"))
        conn.execute("UPDATE giveaways SET ends_at = ? WHERE id = ?", (time.time() - 5, gid))
    conn.close()

    second = Watcher()
    client = await aiohttp_client(create_app(make_config(), plugins=(giveaway, second), load_entrypoints=False))
    drawn = (await second.wait("giveaway.drawn")).data["giveaway"]
    assert drawn["status"] == "drawn" and [w["nickname"] for w in drawn["draws"][0]["winners"]] == ["fan"]
    assert verify(drawn["draws"][0]) == [drawn["draws"][0]["winners"][0]["code"]]


def test_settings_are_checked() -> None:
    from lmserver.api import ConfigError
    from lmserver_plugins.giveaway.store import Settings

    assert Settings.from_table({"claim_hours": 2}).claim_hours == 2.0
    for table, words in (({"claim_hour": 1}, "plugins.giveaway.claim_hour"), ({"claim_hours": 0}, "claim_hours"),
                         ({"terms": ""}, "terms"), ({"entry_milestone": -1}, "entry_milestone")):
        with pytest.raises(ConfigError, match=words):
            Settings.from_table(table)
