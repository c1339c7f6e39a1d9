"""The viewer page's Buy in Chromium: the answer to the first request is lost (the order was placed), the page
retries with the same Idempotency-Key and shows the one order; the next Buy click is a new purchase."""

from __future__ import annotations

import time
from typing import Any

from lmserver.appkeys import DB, LIVE


async def test_lost_answer_is_retried_with_the_same_key(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory(live={"ask_buyer_details": False})  # the details form has its own test (test_orders_browser)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    now = time.time()
    async with app[DB].transaction() as tx:
        eid = (await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                                " VALUES ('drop', 'Sneaker drop', ?, 60, ?, ?)", (now - 60, now, now))).lastrowid
        pid = (await tx.execute("INSERT INTO products (title, price_cents, currency, stock, created_at, updated_at)"
                                " VALUES ('Runner', 8900, 'USD', 10, ?, ?)", (now, now))).lastrowid
        await tx.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, 0, ?)", (eid, pid, now))
    await app[LIVE].begin("test", False, None, event_id=eid)
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await ctx.new_page()
    seen: list[tuple[str | None, int | None]] = []  # (Idempotency-Key, status the page got; None: answer lost)

    async def lose_first_answer(route: Any) -> None:
        key = route.request.headers.get("idempotency-key")
        if not seen:
            response = await route.fetch()  # the server places the order...
            assert response.status == 201, await response.text()
            seen.append((key, None))
            await route.abort("connectionreset")  # ...but the answer never reaches the page
            return
        response = await route.fetch()
        seen.append((key, response.status))
        await route.fulfill(response=response)

    await page.route("**/api/e/*/orders", lose_first_answer)
    await page.goto(f"{base}/e/drop")
    await page.locator("#bag [data-product] button", has_text="Buy").first.click()
    await page.fill("#buy-qty", "2")
    await page.click("#buy-confirm")
    await page.locator("#buy-result", has_text="Order placed: 2 × Runner").wait_for(timeout=15000)
    assert len(seen) == 2 and seen[0][0] and seen[0][0] == seen[1][0], seen
    assert seen[1][1] == 200  # the retry is answered with the first order
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders") == 1
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 8
    # a new Buy click is a new purchase, with a new key
    await page.click("#buy-cancel")
    await page.locator("#bag [data-product] button", has_text="Buy").first.click()
    await page.click("#buy-confirm")
    await page.locator("#buy-result", has_text="Order placed: 1 × Runner").wait_for(timeout=15000)
    assert len(seen) == 3 and seen[2][1] == 201 and seen[2][0] != seen[0][0], seen
    assert await app[DB].fetchval("SELECT COUNT(*) FROM orders") == 2
    await app[LIVE].end("host ended")
    await ctx.close()
