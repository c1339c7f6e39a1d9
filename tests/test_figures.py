"""One definition of a session's figures: the console, the session analytics, the events' session list and the
home page show the same GMV, orders, items, buyers, first-time buyers and comments for one session.

The session is built through the real HTTP APIs: placed orders, an order held in checkout (``reserved``)
that is then cancelled, a practice session's order, and comments including a hidden one, a held one (a
blocked viewer's) and a staff reply. What counts is documented in :mod:`lmserver.figures`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lmserver.appkeys import DB, LIVE
from lmserver.figures import FIGURES, session_figures
from lmserver.plugins import hookimpl
from lmserver.plugins.types import CheckoutResult
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh

COMPARED = ("gmv_cents", "orders", "items_sold", "buyers", "first_time_buyers", "comments", "currency")


class HeldCheckout:
    """Holds the checkout of the viewers in ``hold`` until ``release`` is set, then answers ``outcome``."""

    def __init__(self) -> None:
        self.hold: set[str] = set()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.outcome = "no-such-status"  # an answer the core refuses: the reserved order is cancelled

    @hookimpl
    async def checkout(self, app: Any, request: Any) -> CheckoutResult | None:
        if request.viewer_id not in self.hold:
            return None
        self.entered.set()
        await asyncio.wait_for(self.release.wait(), 30)
        return CheckoutResult(status=self.outcome)


async def buy(client: Any, viewer: dict[str, str], eid: int, pid: int, quantity: int = 1) -> Any:
    return await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": quantity}, headers=vh(viewer))


async def comment(client: Any, viewer: dict[str, str], eid: int, body: str) -> dict[str, Any]:
    resp = await client.post(f"/api/e/{eid}/comments", json={"body": body}, headers=vh(viewer))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["comment"]


async def every_view(client: Any, staff: dict[str, str], eid: int, sid: int) -> dict[str, dict[str, Any]]:
    """The session's figures as the console, the analytics page and the events' session list show them."""
    console = (await (await client.get(f"/api/events/{eid}/metrics?session={sid}", headers=staff)).json())["metrics"]
    analytics = (await (await client.get(f"/api/sessions/{sid}", headers=staff)).json())["session"]
    listed = next(s for s in (await (await client.get(f"/api/events/{eid}/sessions", headers=staff)).json())["sessions"]
                  if s["id"] == sid)
    return {name: {k: view[k] for k in COMPARED} for name, view in
            (("console", console), ("analytics", analytics), ("event sessions", listed))}


def assert_agree(views: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    for name, figures in views.items():
        assert figures == expected, f"{name} disagrees: {figures} != {expected}"


async def test_console_and_analytics_agree_on_one_session(aiohttp_client: Any, app_factory: Any) -> None:
    checkout = HeldCheckout()
    client = await aiohttp_client(app_factory(plugins=(checkout,), live={"comment_rate_seconds": 0}))
    app = client.app
    staff = await staff_cookie(client)
    eid = await make_event(app)
    mug = await make_product(app, title="Mug", stock=20, price_cents=1250, event_id=eid)
    scarf = await make_product(app, title="Scarf", stock=20, price_cents=3000, event_id=eid)
    session = await go_live(app, eid)
    ann, bo, cy, troll = [await new_viewer(app, n) for n in ("Ann", "Bo", "Cy", "Troll")]

    # orders: three placed (Ann twice, Bo once), then Cy's held in checkout (reserved)
    for viewer, pid, qty in ((ann, mug, 2), (bo, scarf, 1), (ann, scarf, 1)):
        resp = await buy(client, viewer, eid, pid, qty)
        assert resp.status == 201, await resp.text()
    checkout.hold.add(cy["id"])
    held = asyncio.ensure_future(buy(client, cy, eid, mug, 3))
    await asyncio.wait_for(checkout.entered.wait(), 30)
    assert await app[DB].fetchval("SELECT status FROM orders WHERE viewer_id = ?", (cy["id"],)) == "reserved"

    # comments: Ann's (visible, replied to by staff), Bo's (hidden by staff), Troll's (held: blocked viewer)
    first = await comment(client, ann, eid, "Does the mug come in blue?")
    resp = await client.post(f"/api/comments/{first['id']}/reply", json={"body": "Yes, next week!"}, headers=staff)
    assert resp.status == 201, await resp.text()
    hidden = await comment(client, bo, eid, "spam spam")
    assert (await client.post(f"/api/comments/{hidden['id']}/hide", headers=staff)).status == 200
    assert (await client.post(f"/api/viewers/{troll['id']}/block", json={}, headers=staff)).status == 200
    await comment(client, troll, eid, "buy my stuff instead")

    expected = {"gmv_cents": 2 * 1250 + 3000 + 3000, "orders": 3, "items_sold": 4, "buyers": 2, "first_time_buyers": 2,
                "comments": 3, "currency": "USD"}
    assert_agree(await every_view(client, staff, eid, session.id), expected)

    # the held checkout fails: Cy's order is cancelled (stock given back), and no figure moves
    checkout.release.set()
    assert (await held).status >= 400
    assert await app[DB].fetchval("SELECT status FROM orders WHERE viewer_id = ?", (cy["id"],)) == "cancelled"
    assert_agree(await every_view(client, staff, eid, session.id), expected)

    # the home page's "latest LIVE" is this session, with the same GMV
    home = await (await client.get("/", headers=staff)).text()
    assert 'id="snap-gmv">$85.00<' in home

    # a practice session of the same event: its order is apart, never in GMV
    await app[LIVE].end("test")
    practice = await go_live(app, eid, practice=True)
    assert (await buy(client, bo, eid, mug, 1)).status == 201
    await comment(client, bo, eid, "testing, testing")
    views = await every_view(client, staff, eid, practice.id)
    assert_agree(views, {"gmv_cents": 0, "orders": 0, "items_sold": 0, "buyers": 0, "first_time_buyers": 0, "comments": 0,
                         "currency": "USD"})
    console = (await (await client.get(f"/api/events/{eid}/metrics?session={practice.id}", headers=staff)).json())["metrics"]
    assert (console["practice_orders"], console["practice_amount_cents"]) == (1, 1250)
    assert_agree(await every_view(client, staff, eid, session.id), expected)


async def test_figures_have_every_documented_key(client: Any) -> None:
    app = client.app
    eid = await make_event(app)
    session = await go_live(app, eid)
    figures = await session_figures(app[DB], session.id, default_currency="EUR")
    assert tuple(figures) == FIGURES or set(figures) == set(FIGURES)
    assert figures == {k: 0 for k in FIGURES} | {"currency": "EUR"}
