"""The giveaway and flash-sale console panels and viewer widgets on a phone (375×812), light and dark
(prefers-color-scheme): nothing overflows the screen, and every text reads against what is behind it."""

from __future__ import annotations

from typing import Any

import pytest
import lmserver_plugins.flashsale as flashsale
import lmserver_plugins.giveaway as giveaway
from lmserver.app import create_app
from lmserver.appkeys import DB
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user
from tests.livehelpers import go_live, make_event, make_product, staff_cookie
from tests.plugins.flashsalehelpers import start_now

PHONE = {"width": 375, "height": 812}

#: for each element with its own text inside ``root``: how it sits in the screen, and its text's contrast
#: against the first opaque background behind it (WCAG's ratio)
CHECK = """(root) => {
  const lum = (c) => { const m = c.match(/[\\d.]+/g).map(Number); const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return { l: 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]), a: m.length > 3 ? m[3] : 1 }; };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
      if (c && lum(c).a > 0.5) return c; } return getComputedStyle(document.body).backgroundColor || "rgb(255,255,255)"; };
  const out = [];
  for (const el of root.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (!r.width || getComputedStyle(el).visibility === "hidden") continue;
    if (r.right > innerWidth + 1 || r.left < -1) out.push(`overflows the screen: <${el.tagName.toLowerCase()} class="${el.className}"> ${Math.round(r.left)}..${Math.round(r.right)}`);
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("option, select")) continue;
    const a = lum(getComputedStyle(el).color).l, b = lum(bg(el)).l;
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 3) out.push(`low contrast ${ratio.toFixed(2)}: <${el.tagName.toLowerCase()} class="${el.className}"> "${el.textContent.trim().slice(0, 30)}"`);
  }
  return out;
}"""


class AppHolder:
    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_panels_and_widgets_on_a_phone(aiohttp_client: Any, make_config: Any, browser: Any, scheme: str) -> None:
    app = create_app(make_config(plugins={"flashsale": {}, "giveaway": {}}), plugins=(flashsale, giveaway), load_entrypoints=False)
    client = await aiohttp_client(app)
    base = str(client.make_url("/")).rstrip("/")
    eid = await make_event(app, "Friday flash")
    pid = await make_product(app, "Ceramic mug, ocean blue, hand-glazed in Porto", stock=40, price_cents=2000, event_id=eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    owner = await make_user(AppHolder(app), "owner")
    if True:
        staff = await staff_cookie(client, "owner")
        resp = await client.post("/api/plugins/giveaway/giveaways", headers=staff, json={
            "products": [{"id": pid, "allocated": 2}], "winners": 2, "items_per_winner": 1, "entry_mode": "comment",
            "keyword": "WIN", "countdown_minutes": 1, "accept_terms": True, "event_id": eid, "title": "Two mugs to win tonight"})
        assert resp.status == 201, await resp.text()
        gid = (await resp.json())["giveaway"]["id"]
        resp = await client.post(f"/api/plugins/flashsale/events/{eid}/sales", headers=staff, json={
            "product_id": pid, "allocated": 20, "deal_price_cents": 1290, "per_buyer_limit": 2})
        assert resp.status == 201, await resp.text()
        sale_id = (await resp.json())["sale"]["id"]
        await go_live(app, eid)
        assert (await client.post(f"/api/plugins/flashsale/sales/{sale_id}/launch", headers=staff)).status == 200
        await start_now(app, sale_id)
        assert (await client.post(f"/api/plugins/giveaway/giveaways/{gid}/start", headers=staff)).status == 200

        problems: list[str] = []
        ctx = await browser.new_context(viewport=PHONE, color_scheme=scheme, device_scale_factor=1)
        console = await login_page(ctx, base, owner, PASSWORD)
        await console.goto(f"{base}/events/{eid}/console")
        for sel, name in (("[data-flashsale-panel]", "flashsale-panel"), ("[data-giveaway-panel]", "giveaway-panel")):
            panel = console.locator(sel)
            await panel.wait_for()
            await console.wait_for_timeout(300)  # its script has drawn the list
            box = await panel.evaluate("e => { const r = e.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY,"
                                       " width: r.width, height: r.height}; }")
            # the whole page, clipped to the panel: the sticky header does not cover it
            check_screenshot(await console.screenshot(full_page=True, clip=box), f"phone-{scheme}-{name}")
            problems += [f"{name}: {p}" for p in await panel.evaluate(CHECK)]

        viewer_ctx = await browser.new_context(viewport=PHONE, color_scheme=scheme, device_scale_factor=1)
        viewer = await viewer_ctx.new_page()
        await viewer.goto(f"{base}/e/{slug}")
        for sel, name in (("[data-flash-card]", "flash-card"), ("[data-giveaway-card]", "giveaway-card")):
            card = viewer.locator(sel)
            await card.wait_for()
            await card.scroll_into_view_if_needed()
            check_screenshot(await card.screenshot(), f"phone-{scheme}-{name}")
            problems += [f"{name}: {p}" for p in await card.evaluate(CHECK)]
        check_screenshot(await viewer.screenshot(full_page=True), f"phone-{scheme}-viewer")
        await ctx.close()
        await viewer_ctx.close()
        assert problems == [], "\n".join(problems)
