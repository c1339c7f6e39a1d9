"""E-mail reminders (issue 16, item 15) against a real SMTP server on loopback (aiosmtpd).

- registrants with an address get "starts in 10 minutes" when the event enters its ready window and
  "is LIVE now" when its first real session starts, each once, with the event link and the .ics attached;
- an unreachable SMTP server never holds up going live: the failure is logged, the message stays in the
  persisted outbox and is sent on a later attempt (the backoff's wait is skipped by moving its due time);
- without [email] nothing is queued and the registration page keeps offering the calendar file; the
  settings page never shows the password back.
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from email import policy
from typing import Any

from aiosmtpd.controller import Controller

from lmserver import mailer
from lmserver.appkeys import DB, LIVE
from lmserver.events import publish_due_reminders
from lmserver.scheduler import SCHEDULER
from tests.conftest import login
from tests.livehelpers import make_event, new_viewer, vh


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.arrived.set()
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def register(client: Any, event_id: int, nickname: str, address: str | None) -> None:
    viewer = await new_viewer(client.app)
    resp = await client.post(f"/api/events/{event_id}/registrations", json={"nickname": nickname, "email": address}, headers=vh(viewer))
    assert resp.status == 201, await resp.text()


async def until(condition: Any, what: str) -> None:
    for _ in range(250):  # bounded: at most ~5 s
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def email_config(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "tls": "none", "from_address": "Studio <live@studio.test>", "timeout_seconds": 5.0}


async def test_registrants_are_emailed_when_ready_and_when_live_once_each(aiohttp_client: Any, app_factory: Any) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        client = await aiohttp_client(app_factory(email=email_config(smtp.port), server={"public_url": "https://shop.example",
                                                                                         "studio_name": "Ana's studio"}))
        app = client.app
        eid = await make_event(app, "Winter knits", starts_in=5 * 60)
        await register(client, eid, "Mia", "mia@example.com")
        await register(client, eid, "Noah", None)  # no address: nothing to send
        assert await publish_due_reminders(app) == [eid]

        async def sent(n: int) -> bool:
            await mailer.start_drain(app)  # awaits a send the timer started, or starts one
            return await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == n

        await until(lambda: sent(1), "the ready e-mail sent")
        assert len(inbox.messages) == 1
        msg = inbox.messages[0]
        assert msg["To"] == "mia@example.com" and "live@studio.test" in msg["From"]
        assert msg["Subject"].startswith("“Winter knits” starts in ")
        slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
        assert f"https://shop.example/e/{slug}" in msg.get_body(("plain",)).get_content()
        ics = [part for part in msg.iter_attachments() if part.get_filename() == f"{slug}.ics"]
        assert ics and "BEGIN:VEVENT" in ics[0].get_content() and ics[0].get_content_type() == "text/calendar"
        assert await publish_due_reminders(app) == []  # once

        # the first real session: "is LIVE now" (practice does not count; a second session sends nothing more)
        await app[LIVE].begin("test", True, None, event_id=eid)
        await app[LIVE].end("practice over")
        await app[LIVE].begin("test", False, None, event_id=eid)
        await until(lambda: app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE dedupe_key LIKE 'reminder:live:%'"), "the LIVE e-mail")
        await app[LIVE].end("host ended")
        await app[LIVE].begin("test", False, None, event_id=eid)
        await app[LIVE].end("host ended")
        async def both_sent() -> bool:
            await mailer.start_drain(app)  # awaits a send the timer started, or starts one
            return await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == 2

        await until(both_sent, "the LIVE e-mail sent")
        assert [m["Subject"] for m in inbox.messages] == [msg["Subject"], "“Winter knits” is LIVE now"]
        assert await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == 2
    finally:
        smtp.stop()


async def test_an_unreachable_smtp_server_is_retried_and_never_blocks_the_live(aiohttp_client: Any, app_factory: Any,
                                                                               caplog: Any) -> None:
    port = free_port()  # nothing listens here yet
    client = await aiohttp_client(app_factory(email=email_config(port)))
    app = client.app
    eid = await make_event(app, "Flash sale", starts_in=5 * 60)
    await register(client, eid, "Lena", "lena@example.com")
    await publish_due_reminders(app)
    session = await app[LIVE].begin("test", False, None, event_id=eid)  # going live does not wait for e-mail
    assert app[LIVE].current is not None and session.event_id == eid
    async def both_queued() -> bool:
        return await app[DB].fetchval("SELECT COUNT(*) FROM outbox") == 2

    async def both_tried() -> bool:
        await mailer.start_drain(app)  # the timer may have started one already: this awaits it, or starts another
        return await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE attempts = 1") == 2

    await until(both_queued, "both e-mails queued")
    await until(both_tried, "both e-mails tried")
    rows = await app[DB].fetchall("SELECT * FROM outbox ORDER BY id")
    assert [r["status"] for r in rows] == ["pending", "pending"] and all(r["attempts"] == 1 and r["last_error"] for r in rows)
    assert all(25 < r["next_attempt_at"] - time.time() <= 31 for r in rows)  # the first retry waits 30 s
    assert "Flash sale" in caplog.text and "lena@example.com failed (attempt 1 of 6)" in caplog.text
    assert "next try in 30 s" in caplog.text
    assert (await app[SCHEDULER].pending(mailer.OUTBOX_TIMER))[0].due_at > time.time() + 25  # the retry is a persisted timer
    assert app[LIVE].current is not None  # still live

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with app[DB].transaction() as tx:  # the 30 s wait has passed
            await tx.execute("UPDATE outbox SET next_attempt_at = ?", (time.time() - 1,))
        async def both_sent() -> bool:
            await mailer.start_drain(app)
            return await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sent'") == 2

        await until(both_sent, "both e-mails sent on the retry")
        assert sorted(m["Subject"] for m in inbox.messages)[0] == "“Flash sale” is LIVE now" and len(inbox.messages) == 2
        assert await app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND attempts = 2") == 2
    finally:
        smtp.stop()
    await app[LIVE].end("host ended")


async def test_without_smtp_nothing_is_queued_and_the_page_offers_the_calendar(client: Any) -> None:
    app = client.app
    eid = await make_event(app, "No mail", starts_in=5 * 60)
    await register(client, eid, "Sam", "sam@example.com")
    await publish_due_reminders(app)
    assert await app[DB].fetchval("SELECT COUNT(*) FROM outbox") == 0
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    page = await (await client.get(f"/e/{slug}")).text()
    assert "event.ics" in page and "no reminder email is sent" in page


async def test_with_smtp_the_page_promises_the_email_and_settings_never_show_the_password(aiohttp_client: Any,
                                                                                          app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(email={**email_config(free_port()), "user": "mailer", "password": "s3cret-pa55word"}))
    await login(client)
    eid = await make_event(client.app, "Mail", starts_in=60 * 60)
    slug = await client.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    page = await (await client.get(f"/e/{slug}")).text()
    assert "event.ics" in page and "we e-mail you a reminder 10 minutes before the start" in page
    settings = await (await client.get("/settings")).text()
    assert "127.0.0.1" in settings and "mailer" in settings and "s3cret-pa55word" not in settings
