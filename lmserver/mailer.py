"""E-mail through the studio's SMTP server (``[email]``), from a persisted outbox.

Nothing sends an e-mail directly: :func:`enqueue` writes a message to the ``outbox`` table (one per
``dedupe_key``: a message already queued or sent is not queued again) and sets the persisted
scheduler's ``email.outbox`` timer. The timer's handler starts one background task that sends what is
due; a message that fails waits 30 s, then twice as long after each failure, and is given up after
``email.max_attempts`` (each failure is logged with the server's answer, and kept in ``last_error``).
So a slow or unreachable SMTP server never blocks the LIVE, the page, or other timers, and a restart
loses nothing (at startup, anything still pending is scheduled again).

Without ``[email] host`` nothing is queued (:func:`enabled` is False) and the registration page keeps
offering the calendar file as the reminder.

Sending uses the standard library's :mod:`smtplib` in a worker thread: STARTTLS (``tls = "starttls"``),
TLS from the start (``"tls"``) or none, with a login when ``user`` is set. The password is only ever
read from the configuration; no page or API shows it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import TYPE_CHECKING, Any, AsyncIterator

from aiohttp import web

from .appkeys import CONFIG, DB

if TYPE_CHECKING:
    from .config import EmailConfig
    from .plugins.types import Timer

log = logging.getLogger(__name__)

__all__ = ["Attachment", "enqueue", "enabled", "drain", "send_now", "mail_ctx", "OUTBOX_TIMER", "outbox_status"]

#: the scheduler timer (key and handler name) that drains the outbox
OUTBOX_TIMER = "email.outbox"
#: the first retry waits this long; each later one twice as long as the one before
FIRST_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str
    mime: str = "text/calendar"


def enabled(app: web.Application) -> bool:
    """Whether an SMTP server is configured (``[email] host``)."""
    return bool(app[CONFIG].email.host)


def sender(cfg: "EmailConfig") -> str:
    if cfg.from_address:
        return cfg.from_address
    if "@" in cfg.user:
        return cfg.user
    return f"lmserver@{cfg.host}"


async def enqueue(app: web.Application, *, to: str, subject: str, body: str, dedupe_key: str, event_id: int | None = None,
                  attachment: Attachment | None = None, studio: str = "") -> bool:
    """Queue one message (False: e-mail is off, or ``dedupe_key`` was queued before) and wake the outbox."""
    if not enabled(app):
        return False
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT OR IGNORE INTO outbox (dedupe_key, event_id, to_addr, subject, body, from_name, attachment_name, attachment,"
            " attachment_mime, status, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
            (dedupe_key, event_id, to, subject, body, studio, attachment.filename if attachment else None,
             attachment.content if attachment else None, attachment.mime if attachment else None, now, now))
        added = cur.rowcount == 1
    if added:
        await _schedule(app, now)
    return added


async def _schedule(app: web.Application, when: float) -> None:
    from .scheduler import SCHEDULER

    pending = await app[SCHEDULER].pending(OUTBOX_TIMER)
    if pending and pending[0].due_at <= when:
        return
    await app[SCHEDULER].at(when, OUTBOX_TIMER, OUTBOX_TIMER, {})


def build_message(cfg: "EmailConfig", row: Any) -> EmailMessage:
    msg = EmailMessage()
    address = sender(cfg)
    msg["From"] = formataddr((row["from_name"], address)) if row["from_name"] and "<" not in address else address
    msg["To"] = row["to_addr"]
    msg["Subject"] = row["subject"]
    msg["Message-ID"] = make_msgid(domain=cfg.host or "lmserver")
    msg.set_content(row["body"])
    if row["attachment"] is not None:
        maintype, _, subtype = (row["attachment_mime"] or "application/octet-stream").partition("/")
        msg.add_attachment(row["attachment"].encode(), maintype=maintype, subtype=subtype, filename=row["attachment_name"])
    return msg


def send_now(cfg: "EmailConfig", msg: EmailMessage) -> None:
    """Send one message, blocking (run it in a worker thread); raises on any failure."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if cfg.tls == "tls":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
    with smtp:
        smtp.ehlo()
        if cfg.tls == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.user:
            smtp.login(cfg.user, cfg.password)
        smtp.send_message(msg)


class Outbox:
    """One sending task at a time per app (``app[OUTBOX]``)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0


OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox", Outbox)


async def drain(app: web.Application) -> None:
    """Send every due message; reschedule the timer for the next retry."""
    cfg = app[CONFIG].email
    db = app[DB]
    outbox = app[OUTBOX]
    loop = asyncio.get_running_loop()
    now = time.time()
    rows = await db.fetchall("SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT 200", (now,))
    for row in rows:
        attempts = row["attempts"] + 1
        try:
            await loop.run_in_executor(None, send_now, cfg, build_message(cfg, row))
        except Exception as exc:  # the server refused or was unreachable: retry later, with backoff
            error = f"{type(exc).__name__}: {exc}"[:500]
            given_up = attempts >= cfg.max_attempts
            wait = FIRST_RETRY_SECONDS * 2 ** (attempts - 1)
            log.warning("mailer: sending %r to %s failed (attempt %d of %d): %s%s", row["subject"], row["to_addr"], attempts,
                        cfg.max_attempts, error, "; given up" if given_up else f"; next try in {wait:.0f} s")
            async with db.transaction() as tx:
                await tx.execute("UPDATE outbox SET attempts = ?, last_error = ?, status = ?, next_attempt_at = ? WHERE id = ?",
                                 (attempts, error, "failed" if given_up else "pending", time.time() + wait, row["id"]))
            outbox.failed += 1
            continue
        async with db.transaction() as tx:
            await tx.execute("UPDATE outbox SET attempts = ?, status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
                             (attempts, time.time(), row["id"]))
        outbox.sent += 1
        log.info("mailer: sent %r to %s", row["subject"], row["to_addr"])
    nxt = await db.fetchval("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
    if nxt is not None:
        await _schedule(app, nxt)


def start_drain(app: web.Application) -> asyncio.Task[None]:
    """Start sending (unless a sending task already runs); the task logs its own failures."""
    outbox = app[OUTBOX]
    if outbox.task is not None and not outbox.task.done():
        return outbox.task

    async def run() -> None:
        try:
            await drain(app)
        except Exception:
            log.exception("mailer: draining the outbox failed; it is tried again at the next start or message")

    outbox.task = asyncio.create_task(run(), name="lmserver-mailer")
    return outbox.task


async def on_outbox_timer(app: web.Application, timer: "Timer") -> None:
    """The ``email.outbox`` timer: start the sending task and return at once (the scheduler is never held up)."""
    start_drain(app)


async def outbox_status(app: web.Application) -> dict[str, Any]:
    """Counts by status and the last error (for the settings page)."""
    rows = await app[DB].fetchall("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
    last = await app[DB].fetchone("SELECT last_error, to_addr FROM outbox WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 1")
    return {"counts": {r["status"]: r["n"] for r in rows}, "last_error": last["last_error"] if last else None}


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox for the app's lifetime: schedule what a restart left pending; wait for a running send on stop."""
    from .scheduler import SCHEDULER

    app[OUTBOX] = Outbox()
    # the core's own timer handler (plugins name theirs through register_timers)
    app[SCHEDULER].handlers.setdefault(OUTBOX_TIMER, ("lmserver", on_outbox_timer))
    if enabled(app):
        nxt = await app[DB].fetchval("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
        if nxt is not None:
            await _schedule(app, nxt)
    try:
        yield
    finally:
        task = app[OUTBOX].task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
