"""Webhooks: bus events delivered to the owner's endpoints, signed the Standard Webhooks way, from an outbox.

**The outbox.** Every persisted bus record is already a row of the ``activity`` table, written in the same
transaction as the change it reports (the group-commit order path included). That row is the outbox record:
the dispatcher keeps a cursor (``webhook_cursor``) over the activity log and, in one transaction per batch,
turns the new rows into ``webhook_deliveries`` (one per matching endpoint) and moves the cursor. So a
``kill -9`` loses nothing (after a restart the dispatcher carries on from the cursor, and pending
deliveries are retried), and the order path pays nothing but a listener that wakes the dispatcher.

**A delivery** is a POST of ``{"type", "timestamp", "data", "event_id", "session_id", "practice"}`` with the
headers of the Standard Webhooks specification (https://www.standardwebhooks.com/):

* ``webhook-id``: ``msg_<activity id>``, the same on every attempt (receivers de-duplicate on it);
* ``webhook-timestamp``: UNIX seconds of *this* attempt;
* ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key, ``"{id}.{timestamp}.{body}"``)) where ``key`` is the
  base64-decoded part of the endpoint's ``whsec_...`` secret; during the day after a rotation the old
  secret signs too (space-separated: ``v1,new v1,old``). Re-signed on every attempt.

2xx: delivered. 410 Gone: the endpoint is disabled (the owner re-enables it). Anything else (another status,
a timeout after ``[webhooks] timeout_seconds``, a refused connection): retried after
``retry_base_seconds`` × 1, 6, 24, 120, 360, 720, 1440, 2880, 5760, 8640 (then every 8640 × base, at
most 12 hours), each ±20 % jitter, or after the receiver's ``Retry-After`` (seconds or an HTTP date, at
most 12 hours), until ``retry_hours`` after the event: then it is ``failed``. Each endpoint has at most
``concurrency`` attempts in flight; a slow or dead endpoint never holds up another, the bus or the LIVE.

**SSRF guard.** An endpoint whose address is private, loopback, link-local, multicast, reserved or
unspecified is refused, when it is added and at every connection (the resolver checks the addresses
actually connected to, so a DNS answer that changes later does not get around it), unless the address is
in ``[webhooks] allow_networks``. Redirects are not followed.

Which events: any persisted bus event (the list is ``GET /api/webhooks/events``: the core's and the
plugins'), by name or pattern (``order.*``, ``*``). Practice sessions' records only for endpoints that ask
(``include_practice``). The routes and the Settings page are in :mod:`lmserver.webhooks_api`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import sqlite3
import time
from typing import Any, Iterable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from . import __version__
from .appkeys import BUS, CONFIG, DB
from .bus import Activity
from .config import WebhooksConfig
from .errors import BadRequest

log = logging.getLogger(__name__)

#: retry delays in units of ``retry_base_seconds`` (base 5 s: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h)
BACKOFF = (1, 6, 24, 120, 360, 720, 1440, 2880, 5760, 8640)
MAX_DELAY = 12 * 3600.0
#: how long the secret before a rotation keeps signing
ROTATION_OVERLAP = 24 * 3600.0
#: the test message's type (not a bus event)
TEST_EVENT = "webhook.test"
FANOUT_BATCH = 500


# --------------------------------------------------------------------------------------------- signing


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``{msg_id}.{timestamp}.{body}`` with a ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def active_secrets(endpoint: Any, now: float) -> list[str]:
    out = [endpoint["secret"]]
    if endpoint["old_secret"] and (endpoint["old_secret_until"] or 0) > now:
        out.append(endpoint["old_secret"])
    return out


# --------------------------------------------------------------------------------------------- SSRF guard


class AddressRefused(Exception):
    """The endpoint resolves to an address the SSRF guard refuses."""


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed: list[Any]) -> str | None:
    """Why ``ip`` may not be reached (None: it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return None
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return (f"{ip} is a {kind.replace('_', '-')} address; webhooks go to public addresses unless"
                    f" [webhooks] allow_networks lists its network")
    return None


def allowed_networks(cfg: WebhooksConfig) -> list[Any]:
    return [ipaddress.ip_network(n, strict=False) for n in cfg.allow_networks]


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing any answer the SSRF guard forbids (checked at every connection)."""

    def __init__(self, allowed: list[Any]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            problem = address_problem(ipaddress.ip_address(info["host"]), self._allowed)
            if problem:
                raise AddressRefused(f"{host} resolves to {problem}")
        return infos

    async def close(self) -> None:
        await self._inner.close()


def check_url_syntax(url: str) -> str:
    """The endpoint URL, or BadRequest naming what is wrong (the address is checked by :func:`check_url`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise BadRequest(f"'url' is not a valid URL ({exc}): send e.g. https://shop.example.com/hooks/lmserver") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"'url' must be an http:// or https:// URL with a host, got {url[:200]!r}")
    if parts.username or parts.password:
        raise BadRequest("'url' must not carry a user name or password: the signature authenticates the sender")
    return url


async def check_url(url: str, cfg: WebhooksConfig) -> str:
    """Syntax and SSRF guard for a new or changed endpoint URL (resolves the host once)."""
    host = urlsplit(check_url_syntax(url)).hostname or ""
    allowed = allowed_networks(cfg)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), 5)
        except (OSError, asyncio.TimeoutError) as exc:
            raise BadRequest(f"'url': the host {host!r} could not be resolved ({exc}); check the spelling") from None
        for info in infos:
            problem = address_problem(ipaddress.ip_address(info[4][0]), allowed)
            if problem:
                raise BadRequest(f"'url': {host} resolves to {problem}")
    else:
        problem = address_problem(ip, allowed)
        if problem:
            raise BadRequest(f"'url': {problem}")
    return url


# --------------------------------------------------------------------------------------------- matching


def parse_events(value: Any, known: Iterable[str]) -> list[str]:
    """A list of bus event names or patterns (``order.*``, ``*``), each matching at least one known event."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest("'events' must be a non-empty list of event names such as [\"order.created\", \"stream.*\"]"
                         " (GET /api/webhooks/events lists them)")
    known = sorted(known)
    out: list[str] = []
    for name in value:
        name = name.strip()
        if not fnmatch.filter(known, name):
            raise BadRequest(f"'events': {name[:80]!r} names no event; known events: {', '.join(known)}")
        if name not in out:
            out.append(name)
    if len(out) > 200:
        raise BadRequest("'events' lists more than 200 names: use patterns such as \"order.*\"")
    return out


def matches(patterns: list[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def payload(name: str, at: float, data: Any, event_id: int | None, session_id: int | None, practice: bool) -> str:
    stamp = dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"type": name, "timestamp": stamp, "data": data, "event_id": event_id,
                       "session_id": session_id, "practice": practice}, separators=(",", ":"), default=str)


def retry_delay(attempts: int, base: float, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones (Retry-After wins when given)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_DELAY)
    step = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)] * base
    return min(step * (rng or random).uniform(0.8, 1.2), MAX_DELAY)


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


# --------------------------------------------------------------------------------------------- the dispatcher


class Webhooks:
    """Turns the activity log into deliveries and delivers them (one per app: ``app[WEBHOOKS]``)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.db = app[DB]
        self.cfg: WebhooksConfig = app[CONFIG].webhooks
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[int, int] = {}          # endpoint id -> attempts running
        self._running: set[int] = set()              # delivery ids being attempted
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._has_endpoints = False
        self.delivered = 0
        self.attempts = 0

    # lifetime
    async def start(self) -> None:
        self._has_endpoints = bool(await self.db.fetchval("SELECT COUNT(*) FROM webhook_endpoints WHERE enabled = 1"))
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowed_networks(self.cfg)), limit=64, ttl_dns_cache=0)
        self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_seconds),
                                           headers={"User-Agent": f"lmserver-webhooks/{__version__}"})
        self.app[BUS].on("*", self._on_record)
        try:
            await self.prune()
        except sqlite3.OperationalError:  # housekeeping: the next pass prunes; it must not stop the server starting
            log.exception("webhooks: pruning old deliveries failed; trying again on the next pass")
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        self.app[BUS].remove_listener("*", self._on_record)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def _on_record(self, record: Activity) -> None:
        if self._has_endpoints and record.id is not None:
            self._wake.set()

    def wake(self) -> None:
        """Look at the outbox now (after endpoints changed or a redelivery was asked for)."""
        self._wake.set()

    async def endpoints_changed(self) -> None:
        self._has_endpoints = bool(await self.db.fetchval("SELECT COUNT(*) FROM webhook_endpoints WHERE enabled = 1"))
        self.wake()

    async def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            try:
                await self.fan_out()
                timeout = await self._deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the dispatcher must outlive any one bad row
                log.exception("webhooks: the dispatcher failed; trying again in 5 s")
                timeout = 5.0
            if time.monotonic() - last_prune > 3600:
                last_prune = time.monotonic()
                await self.prune()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await asyncio.sleep(0.05)  # gather a burst of records into one batch

    async def fan_out(self) -> int:
        """New activity rows → deliveries for every enabled endpoint that wants them; the cursor moves in
        the same transaction. Returns the deliveries made.

        The rows are read and the payloads built before the write lock is taken (WAL reads never block the
        order writer); the transaction is one compare-and-set of the cursor and one ``executemany``, so it
        holds SQLite's write lock for a few statements whatever the batch (the group-commit writer waits at
        most ``busy_timeout`` for it: a lock held across hundreds of event-loop round trips under load made
        orders fail with "database is locked")."""
        made = 0
        while True:
            cursor = await self.db.fetchval("SELECT activity_id FROM webhook_cursor WHERE id = 1")
            rows = await self.db.fetchall(
                "SELECT id, name, event_id, session_id, practice, data, created_at FROM activity WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, FANOUT_BATCH))
            if not rows:
                return made
            endpoints = await self.db.fetchall("SELECT id, events, include_practice, created_at FROM webhook_endpoints WHERE enabled = 1")
            wanted = [(e["id"], json.loads(e["events"]), bool(e["include_practice"]), e["created_at"]) for e in endpoints]
            now = time.time()
            inserts: list[tuple[Any, ...]] = []
            for row in rows:
                if row["name"].startswith("webhook."):
                    continue
                body = None
                for eid, patterns, practice_ok, since in wanted:
                    if row["created_at"] < since or (row["practice"] and not practice_ok) or not matches(patterns, row["name"]):
                        continue
                    if body is None:
                        body = payload(row["name"], row["created_at"], json.loads(row["data"]), row["event_id"],
                                       row["session_id"], bool(row["practice"]))
                    inserts.append((eid, f"msg_{row['id']}", row["id"], row["name"], body, now, row["created_at"]))
            async with self.db.transaction() as tx:
                cur = await tx.execute("UPDATE webhook_cursor SET activity_id = ? WHERE id = 1 AND activity_id = ?",
                                       (rows[-1]["id"], cursor))
                if cur.rowcount != 1:  # another fan-out moved the cursor meanwhile: read again from where it is
                    continue
                if inserts:
                    await tx.executemany(
                        "INSERT OR IGNORE INTO webhook_deliveries (endpoint_id, msg_id, activity_id, event, payload, next_at, created_at)"
                        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = ?1 AND enabled = 1)",
                        inserts)  # an endpoint deleted or disabled since it was read gets nothing
            made += len(inserts)

    async def enqueue_test(self, endpoint_id: int) -> int:
        """A ``webhook.test`` message to one endpoint, delivered now; returns the delivery id."""
        now = time.time()
        msg_id = f"msg_test_{secrets.token_hex(8)}"
        body = payload(TEST_EVENT, now, {"message": "a test event from lmserver Settings"}, None, None, False)
        delivery_id = await self.db.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, msg_id, activity_id, event, payload, next_at, created_at)"
            " VALUES (?, ?, NULL, ?, ?, ?, ?)", (endpoint_id, msg_id, TEST_EVENT, body, now, now))
        self.wake()
        return delivery_id

    async def _deliver_due(self) -> float:
        """Start the due attempts the endpoints have room for; returns seconds until the next due one (≤ 5)."""
        now = time.time()
        due = await self.db.fetchall(
            "SELECT d.id, d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
            " WHERE d.state = 'pending' AND d.next_at <= ? AND e.enabled = 1 ORDER BY d.next_at, d.id LIMIT 200", (now,))
        for row in due:
            if row["id"] in self._running or self._inflight.get(row["endpoint_id"], 0) >= self.cfg.concurrency:
                continue
            self._running.add(row["id"])
            self._inflight[row["endpoint_id"]] = self._inflight.get(row["endpoint_id"], 0) + 1
            task = asyncio.create_task(self._attempt(row["id"], row["endpoint_id"]), name=f"webhook-{row['id']}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        nxt = await self.db.fetchval("SELECT MIN(next_at) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                                     " WHERE d.state = 'pending' AND e.enabled = 1")
        return 5.0 if nxt is None else min(5.0, max(0.05, nxt - time.time()))

    async def _attempt(self, delivery_id: int, endpoint_id: int) -> None:
        try:
            await self._attempt_once(delivery_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks: delivery %s failed unexpectedly", delivery_id)
        finally:
            self._running.discard(delivery_id)
            self._inflight[endpoint_id] -= 1
            self.wake()

    async def _attempt_once(self, delivery_id: int) -> None:
        row = await self.db.fetchone(
            "SELECT d.*, e.url, e.secret, e.old_secret, e.old_secret_until, e.enabled FROM webhook_deliveries d"
            " JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ?", (delivery_id,))
        if row is None or row["state"] != "pending" or not row["enabled"]:
            return
        assert self._http is not None
        started = time.time()
        body = row["payload"].encode()
        stamp = int(started)
        headers = {"content-type": "application/json", "webhook-id": row["msg_id"], "webhook-timestamp": str(stamp),
                   "webhook-signature": signature_header(active_secrets(row, started), row["msg_id"], stamp, body)}
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            host = urlsplit(row["url"]).hostname or ""
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                literal = None
            if literal is not None:  # aiohttp connects to IP literals without asking the resolver
                problem = address_problem(literal, allowed_networks(self.cfg))
                if problem:
                    raise AddressRefused(problem)
            async with self._http.post(row["url"], data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.content.read(4096)
                if not 200 <= status < 300:
                    error = f"the endpoint answered {status} {resp.reason or ''}".strip()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
        except asyncio.TimeoutError:
            error = f"no answer within {self.cfg.timeout_seconds:g} s (timeout)"
        except AddressRefused as exc:
            error = f"refused by the SSRF guard: {exc}"
        except aiohttp.ClientConnectorDNSError as exc:
            error = f"DNS: the host could not be resolved ({exc.os_error})"
        except aiohttp.ClientConnectorCertificateError as exc:
            error = f"TLS: the certificate was not accepted ({exc.certificate_error})"
        except aiohttp.ClientSSLError as exc:
            error = f"TLS: {exc}"
        except aiohttp.ClientConnectorError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, AddressRefused) else None
            error = f"refused by the SSRF guard: {cause}" if cause else f"connection failed: {exc.os_error or exc}"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        await self._record(row, started, status, error, retry_after)

    async def _record(self, row: Any, started: float, status: int | None, error: str | None, retry_after: float | None) -> None:
        now = time.time()
        attempts = row["attempts"] + 1
        self.attempts += 1
        disable = status == 410
        if status is not None and 200 <= status < 300:
            state, next_at, finished = "delivered", row["next_at"], now
            self.delivered += 1
        elif disable or now + retry_delay(attempts, self.cfg.retry_base_seconds) > row["created_at"] + self.cfg.retry_hours * 3600:
            state, next_at, finished = "failed", row["next_at"], now
        else:
            state, next_at, finished = "pending", now + retry_delay(attempts, self.cfg.retry_base_seconds, retry_after), None
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO webhook_attempts (delivery_id, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?)",
                             (row["id"], started, status, error, round((now - started) * 1000, 1)))
            await tx.execute("UPDATE webhook_deliveries SET state = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?,"
                             " finished_at = ? WHERE id = ?", (state, attempts, next_at, status, error, finished, row["id"]))
            if disable:
                await tx.execute("UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
                                 ("the endpoint answered 410 Gone: it asked not to be sent webhooks any more", now, row["endpoint_id"]))
        if disable:
            log.warning("webhooks: endpoint %s answered 410 Gone; it is disabled", row["endpoint_id"])
            await self.endpoints_changed()
        elif error and attempts in (1, 5) or state == "failed":
            log.warning("webhooks: delivery %s (%s) to endpoint %s, attempt %d: %s%s", row["id"], row["event"], row["endpoint_id"],
                        attempts, error, "; given up" if state == "failed" else "")

    async def prune(self) -> None:
        """Forget finished deliveries older than ``keep_days``."""
        cutoff = time.time() - self.cfg.keep_days * 86400
        await self.db.execute("DELETE FROM webhook_deliveries WHERE state != 'pending' AND finished_at < ?", (cutoff,))


async def webhooks_ctx(app: web.Application) -> Any:
    """Starts the dispatcher once the core is up; stops it first on shutdown."""
    from .appkeys import WEBHOOKS

    hooks = Webhooks(app)
    app[WEBHOOKS] = hooks
    await hooks.start()
    try:
        yield
    finally:
        await hooks.stop()
