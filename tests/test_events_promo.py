"""Promotion over HTTP: registration page and API, QR codes, calendar file, recommending, public pages."""

from __future__ import annotations

import re
import time
from typing import Any

from lmserver import auth
from lmserver.appkeys import BUS, DB, LIVE, SECRET
from tests.conftest import login
from tests.qrread import encodes


async def make_event(app: Any, title: str, starts_in: float, minutes: int = 60, recommended: bool = False) -> dict[str, Any]:
    now = time.time()
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()) + f"-{int(now * 1000) % 100000}"
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO events (slug, title, description, starts_at, duration_minutes, recommended, created_at, updated_at)"
            " VALUES (?, ?, 'Great deals', ?, ?, ?, ?, ?)", (slug, title, now + starts_in, minutes, int(recommended), now, now))
    return {"id": cur.lastrowid, "slug": slug}


async def viewer_headers(client: Any, slug: str) -> dict[str, str]:
    """Open the public page like a browser: the viewer cookie is set, the page carries the CSRF token."""
    resp = await client.get(f"/e/{slug}")
    assert resp.status == 200
    assert auth.VIEWER_COOKIE in resp.cookies
    html = await resp.text()
    token = re.search(r'window\.LMS = \{csrf: "([^"]+)"\}', html)
    assert token, "the page must carry the viewer's CSRF token"
    vid = auth.unsign(client.app[SECRET], resp.cookies[auth.VIEWER_COOKIE].value)
    assert vid and token.group(1) == auth.viewer_csrf(client.app[SECRET], vid)
    return {"X-CSRF-Token": token.group(1)}


async def test_registration_page_and_api(client: Any) -> None:
    ev = await make_event(client.app, "Sneaker drop", 2 * 3600)
    heard: list[Any] = []
    client.app[BUS].on("registration.created", heard.append)
    h = await viewer_headers(client, ev["slug"])
    html = await (await client.get(f"/e/{ev['id']}")).text()  # by id too
    assert "Sneaker drop" in html and "Register for this LIVE" in html and 'data-countdown="' in html
    # no email is ever sent: the form says what the email is for, and the reminder is the calendar file
    assert "for the reminder" not in html and "remind you" not in html
    assert "lets the host contact you about this event; no reminder email is sent" in html
    assert f'href="/e/{ev["slug"]}/event.ics" download>add the event to your calendar</a>' in html
    assert 'id="ready-banner"' in html and 'data-ready-minutes="10"' in html  # two hours ahead: hidden until the ready window
    assert re.search(r'id="ready-banner"[^>]*\bhidden\b', html)
    url = f"/api/events/{ev['id']}/registrations"
    bad = await client.post(url, json={"nickname": "Ann", "email": "not-an-email"}, headers=h)
    assert bad.status == 400 and "email" in (await bad.json())["error"]["message"]
    assert (await client.post(url, json={"nickname": "   "}, headers=h)).status == 400
    assert (await client.post(url, json={"nickname": "Ann"})).status == 403  # CSRF
    resp = await client.post(url, json={"nickname": "Ann  <b>B</b>", "email": "ann@example.com"}, headers=h)
    assert resp.status == 201
    assert (await resp.json())["registrations"] == 1
    assert len(heard) == 1 and heard[0].data == {"nickname": "Ann <b>B</b>", "registrations": 1}
    again = await client.post(url, json={"nickname": "Annie"}, headers=h)  # the same viewer: updated, not counted twice
    assert again.status == 200 and (await again.json())["registrations"] == 1 and len(heard) == 1
    html = await (await client.get(f"/e/{ev['slug']}")).text()
    assert "You're registered as Annie" in html and "<b>B</b>" not in html
    # another browser
    client.session.cookie_jar.clear()
    h2 = await viewer_headers(client, ev["slug"])
    resp = await client.post(url, json={"nickname": "Bo"}, headers=h2)
    assert (await resp.json())["registrations"] == 2
    # staff see the list
    client.session.cookie_jar.clear()
    await login(client)
    regs = await (await client.get(url)).json()
    assert regs["count"] == 2 and [r["nickname"] for r in regs["registrations"]] == ["Annie", "Bo"]


async def test_registration_page_in_the_ready_window_says_the_live_opens_here(client: Any) -> None:
    ev = await make_event(client.app, "Soon drop", 5 * 60)  # inside events.ready_minutes (10)
    html = await (await client.get(f"/e/{ev['slug']}")).text()
    banner = re.search(r'<div class="banner banner-ready" id="ready-banner"[^>]*>', html)
    assert banner and "hidden" not in banner.group(0)
    assert "stay on this page, the LIVE opens here automatically" in html


async def test_registration_needs_the_viewer_cookie_and_closes_after_the_event(client: Any) -> None:
    ev = await make_event(client.app, "Soon", 3600)
    assert (await client.post(f"/api/events/{ev['id']}/registrations", json={"nickname": "X"})).status == 400
    old = await make_event(client.app, "Old", -86400)
    h = await viewer_headers(client, ev["slug"])
    resp = await client.post(f"/api/events/{old['id']}/registrations", json={"nickname": "X"}, headers=h)
    assert resp.status == 409 and "registrations are closed" in (await resp.json())["error"]["message"]


async def test_qr_codes_encode_the_public_url(client: Any) -> None:
    ev = await make_event(client.app, "QR show", 3600)
    base = str(client.make_url("")).rstrip("/")
    resp = await client.get(f"/e/{ev['slug']}/qr.png?download=1")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert f'filename="{ev["slug"]}-qr.png"' in resp.headers["Content-Disposition"]
    png = await resp.read()
    assert encodes(png, f"{base}/e/{ev['slug']}")
    assert not encodes(png, f"{base}/e/other")
    svg = await client.get(f"/e/{ev['id']}/qr.svg")
    assert svg.content_type == "image/svg+xml" and "<svg" in await svg.text()


async def test_qr_uses_the_configured_public_url(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(server={"public_url": "https://shop.example.com/"}))
    ev = await make_event(client.app, "Public", 3600)
    png = await (await client.get(f"/e/{ev['slug']}/qr.png")).read()
    assert encodes(png, f"https://shop.example.com/e/{ev['slug']}")


async def test_calendar_file(client: Any) -> None:
    ev = await make_event(client.app, "Calendar; show, with commas", 3600, 90)
    resp = await client.get(f"/e/{ev['slug']}/event.ics")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    text = await resp.text()
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    lines = text.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = text.replace("\r\n ", "")
    row = await client.app[DB].fetchone("SELECT starts_at FROM events WHERE id = ?", (ev["id"],))
    start = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(row["starts_at"]))
    end = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(row["starts_at"] + 90 * 60))
    assert f"DTSTART:{start}" in unfolded and f"DTEND:{end}" in unfolded
    assert "SUMMARY:Calendar\\; show\\, with commas" in unfolded
    assert f"/e/{ev['slug']}" in unfolded and "BEGIN:VALARM" in unfolded


async def test_recommended_event_is_linked_from_public_pages_until_its_end(client: Any) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    promoted = await make_event(client.app, "Promoted show", 2 * 86400)
    ended = await make_event(client.app, "Finished show", -3 * 3600)
    link = f'href="/e/{promoted["slug"]}" data-recommended'
    assert link not in await (await client.get("/studio")).text()
    resp = await client.post(f"/api/events/{promoted['id']}/recommend", json={"on": True}, headers=h)
    assert resp.status == 200 and (await resp.json())["event"]["recommended"] is True
    assert link in await (await client.get("/studio")).text()
    after = await (await client.get(f"/e/{ended['slug']}")).text()
    assert "This LIVE has ended" in after and link in after
    assert (await client.post(f"/api/events/{ended['id']}/recommend", json={"on": True}, headers=h)).status == 409
    assert (await client.post(f"/api/events/{promoted['id']}/recommend", json={"on": "yes"}, headers=h)).status == 400
    await client.post(f"/api/events/{promoted['id']}/recommend", json={"on": False}, headers=h)
    assert link not in await (await client.get("/studio")).text()
    # a recommended event whose end has passed is no longer linked
    stale = await make_event(client.app, "Stale", -2 * 3600, 60, recommended=True)
    assert f'/e/{stale["slug"]}" data-recommended' not in await (await client.get("/studio")).text()


async def test_after_page_lists_the_sessions_and_no_fake_replay(client: Any) -> None:
    app = client.app
    ev = await make_event(app, "Done", -5 * 3600, 120)
    async with app[DB].transaction() as tx:
        s = time.time() - 5 * 3600
        await tx.execute("INSERT INTO sessions (event_id, source, started_at, ended_at) VALUES (?, 'whip', ?, ?)", (ev["id"], s, s + 1800))
        await tx.execute("INSERT INTO sessions (event_id, source, started_at, ended_at) VALUES (?, 'whip', ?, ?)", (ev["id"], s + 2400, s + 4000))
        await tx.execute("INSERT INTO sessions (event_id, practice, source, started_at, ended_at) VALUES (?, 1, 'whip', ?, ?)", (ev["id"], s - 600, s - 300))
    html = await (await client.get(f"/e/{ev['slug']}")).text()
    assert "This LIVE has ended" in html
    assert html.count('class="list-row"') == 2  # practice is not shown to viewers
    assert "30:00" in html and "26:40" in html
    assert "replay" not in html.lower()


async def test_live_event_page_is_the_viewer_page(client: Any) -> None:
    app = client.app
    ev = await make_event(app, "On air", -60)
    await app[LIVE].begin("test", True, None, event_id=ev["id"])
    practice = await (await client.get(f"/e/{ev['slug']}")).text()
    assert "Register for this LIVE" in practice  # viewers can't watch practice
    await app[LIVE].end("host ended")
    await app[LIVE].begin("test", False, None, event_id=ev["id"])
    resp = await client.get(f"/e/{ev['slug']}")
    assert resp.status == 200
    html = await resp.text()
    assert "Register for this LIVE" not in html and "On air" in html
    await app[LIVE].end("host ended")
