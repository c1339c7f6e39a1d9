"""Who may call what: every route of the router × five identities, against ONE table.

The identities are real browsers over loopback, each with its own cookie jar: ``anonymous`` (no cookie),
``viewer`` (the viewer cookie a public page gives), and staff logged in as ``assistant``, ``moderator``
and ``owner``. Every write carries that identity's CSRF token, so what is measured is the permission,
not the CSRF check. Path parameters name real objects (an event, a product in its bag, a session, a
comment, a viewer, a billboard) so a handler reaches its permission check; bodies are harmless (``{}``,
a bad SDP), so a route that validates after its permission check answers 400/404/405/409/415/422 —
"allowed past auth".

An outcome is one of: ``ok`` (allowed past auth), ``login`` (401, or a redirect to /login) or ``403``.
A 5xx is always a failure. The table (:data:`TABLE`) names, for each (method, path), its policy:
``public`` (everyone), ``viewer`` (the viewer cookie; staff without one are 401 like anyone else), or a
staff permission of the app's registry (``app[lmserver.auth.PERMISSIONS]``) (anonymous and viewers: ``login``; staff: ``ok``
when their role has it, else ``403``). A route missing from the table, or a row without a route, fails
:func:`test_the_table_lists_every_route`. Static files (``/static``, plugins' ``/-/static``) are left out.

The app is built and walked once per module (:func:`walk`), in its own event loop; each table row is
then its own test.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lmserver import auth
from lmserver.app import create_app
from lmserver.appkeys import DB, LIVE
from lmserver.config import load_config

IDENTITIES = ("anonymous", "viewer", "assistant", "moderator", "owner", "token")
STAFF = ("assistant", "moderator", "owner")
#: the ``token`` identity: an API token the owner made with these scopes, sent as a bearer token without any cookie
TOKEN_SCOPES = ("console.view", "catalog.edit")

#: staff permission → the roles that hold it (the intended policy; checked against the app's permission registry,
#: the core's permissions and the installed plugins')
GRANTS: dict[str, tuple[str, ...]] = {
    "accounts.manage": ("owner",),
    "settings.manage": ("owner",),
    "show.run": ("owner", "moderator"),
    "comments.moderate": ("owner", "moderator"),
    "catalog.edit": ("owner", "moderator", "assistant"),
    "billboards.manage": ("owner", "moderator", "assistant"),
    "flashsale.manage": ("owner", "moderator", "assistant"),
    "giveaways.manage": ("owner", "moderator", "assistant"),
    "console.view": ("owner", "moderator", "assistant"),
    "orders.view": ("owner", "moderator", "assistant"),
    "orders.manage": ("owner", "moderator"),
}

PUBLIC, VIEWER = "public", "viewer"

#: (method, path as the router spells it) → policy. ONE row per route; keep it complete.
TABLE: dict[tuple[str, str], str] = {
    # --- login, logout, pages of the console
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,            # secweb: login CSRF/Origin checks (a same-origin form post stays public)
    ("POST", "/logout"): PUBLIC,           # answers 303 → /login for everyone; ends only the caller's own session
    ("GET", "/"): "console.view",
    ("GET", "/settings"): "settings.manage",
    ("GET", "/catalog"): "console.view",
    ("GET", "/events"): "console.view",
    ("GET", "/events/past"): "console.view",
    ("GET", "/events/{id}"): "console.view",
    ("GET", "/sessions/{sid}"): "console.view",
    ("GET", "/sessions/{sid}/board"): "console.view",   # analytics: the LIVE Board
    ("GET", "/events/{id}/board"): "console.view",
    ("GET", "/events/{id}/recap"): "console.view",
    ("GET", "/console"): "console.view",
    ("GET", "/events/{id}/console"): "console.view",
    ("GET", "/help"): "console.view",
    ("GET", "/help/{topic}"): "console.view",
    ("GET", "/media/publish"): PUBLIC,     # the page asks for the stream key (or uses the staff session)
    ("GET", "/media/play"): PUBLIC,
    ("GET", "/p/billboard/preview"): "billboards.manage",
    ("GET", "/p/giveaway/"): "giveaways.manage",
    ("GET", "/p/shoplink/"): "settings.manage",
    # --- public pages and files
    ("GET", "/e/{ident}"): PUBLIC,
    ("GET", "/studio"): PUBLIC,
    ("GET", "/e/{ident}/qr.{fmt}"): PUBLIC,
    ("GET", "/e/{ident}/event.ics"): PUBLIC,
    ("GET", "/uploads/{name}"): PUBLIC,    # product images, shown on the viewer page
    # --- meta
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/-/plugins"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # --- WebSockets
    ("GET", "/ws/console"): "console.view",
    ("GET", "/ws/viewer"): PUBLIC,
    # --- accounts and settings
    ("POST", "/api/login"): PUBLIC,
    ("GET", "/api/me"): "console.view",
    ("GET", "/api/users"): "accounts.manage",
    ("POST", "/api/users"): "accounts.manage",
    ("GET", "/api/settings/stream-key"): "settings.manage",
    ("POST", "/api/settings/stream-key/rotate"): "settings.manage",
    ("PUT", "/api/settings/timezone"): "settings.manage",
    ("GET", "/api/activity"): "console.view",
    # --- recordings (the video is also public once the session's replay is published)
    ("GET", "/settings/recordings"): "settings.manage",
    ("GET", "/api/recordings"): "settings.manage",
    ("DELETE", "/api/recordings/{id}"): "settings.manage",
    ("GET", "/api/sessions/{sid}/recording"): "console.view",
    ("GET", "/recordings/{id}/video.mp4"): "console.view",
    # --- webhooks (lmserver/webhooks_api.py)
    ("GET", "/settings/webhooks"): "settings.manage",
    ("GET", "/api/webhooks/events"): "settings.manage",
    ("GET", "/api/webhooks"): "settings.manage",
    ("POST", "/api/webhooks"): "settings.manage",
    ("PATCH", "/api/webhooks/{id}"): "settings.manage",
    ("DELETE", "/api/webhooks/{id}"): "settings.manage",
    ("POST", "/api/webhooks/{id}/rotate"): "settings.manage",
    ("POST", "/api/webhooks/{id}/test"): "settings.manage",
    ("GET", "/api/webhooks/{id}/deliveries"): "settings.manage",
    ("POST", "/api/webhooks/deliveries/{id}/redeliver"): "settings.manage",
    # --- API tokens (lmserver/tokens.py): a token never manages tokens, whatever its scopes
    ("GET", "/settings/tokens"): "settings.manage",
    ("GET", "/api/tokens"): "settings.manage",
    ("POST", "/api/tokens"): "settings.manage",
    ("DELETE", "/api/tokens/{id}"): "settings.manage",
    # --- catalog
    ("GET", "/api/products"): "console.view",
    ("POST", "/api/products"): "catalog.edit",
    ("GET", "/api/products/{id}"): "console.view",
    ("PATCH", "/api/products/{id}"): "catalog.edit",
    ("POST", "/api/products/{id}/archive"): "catalog.edit",
    ("POST", "/api/products/{id}/unarchive"): "catalog.edit",
    ("POST", "/api/products/{id}/image"): "catalog.edit",
    ("POST", "/api/products/import"): "catalog.edit",
    # --- events, bag, pin, sessions
    ("GET", "/api/events"): "console.view",
    ("POST", "/api/events"): "show.run",
    ("POST", "/api/events/now"): "show.run",
    ("GET", "/api/events/now"): "show.run",
    ("GET", "/api/events/suggestion"): "console.view",
    ("GET", "/api/events/{id}"): "console.view",
    ("PATCH", "/api/events/{id}"): "show.run",
    ("DELETE", "/api/events/{id}"): "show.run",
    ("POST", "/api/events/{id}/recommend"): "show.run",
    ("GET", "/api/events/{id}/golive-check"): "console.view",
    ("GET", "/api/events/{id}/sessions"): "console.view",
    ("GET", "/api/events/{id}/bag"): "console.view",
    ("POST", "/api/events/{id}/bag"): "catalog.edit",
    ("PUT", "/api/events/{id}/bag/order"): "catalog.edit",
    ("POST", "/api/events/{id}/bag/{pid}/move"): "catalog.edit",
    ("DELETE", "/api/events/{id}/bag/{pid}"): "catalog.edit",
    ("POST", "/api/events/{id}/bag/refresh"): "catalog.edit",
    ("POST", "/api/events/{id}/pin"): "show.run",
    ("DELETE", "/api/events/{id}/pin"): "show.run",
    ("GET", "/api/sessions/{sid}"): "console.view",
    ("GET", "/api/sessions/{sid}/findings"): "console.view",
    # --- replays (lmserver/replay.py): staff, or anyone when the replay is published (the walked session is practice:
    # never published, so staff-only here; test_replay.py covers the published side)
    ("GET", "/api/sessions/{sid}/timeline"): "console.view",
    ("GET", "/api/sessions/{sid}/comments.csv"): "console.view",
    ("GET", "/api/sessions/{sid}/comments.json"): "console.view",
    ("GET", "/api/sessions/{sid}/orders.csv"): "console.view",
    ("POST", "/api/sessions/{sid}/publish"): "show.run",
    ("DELETE", "/api/sessions/{sid}/publish"): "show.run",
    ("GET", "/e/{ident}/replay/{sid}"): PUBLIC,           # 404 unless published (and not practice)
    ("POST", "/api/e/{id}/replay/{sid}/orders"): VIEWER,
    ("GET", "/api/sessions/{sid}/analytics"): "console.view",
    ("GET", "/api/sessions/{sid}/analytics/minutes"): "console.view",
    ("GET", "/api/sessions/{sid}/analytics/products"): "console.view",
    ("GET", "/api/sessions/{sid}/analytics/orders"): "console.view",
    ("GET", "/api/sessions/{sid}/analytics/comments"): "console.view",
    ("POST", "/api/prompter/findings/{id}/dismiss"): "console.view",
    ("POST", "/api/actions/{name}"): "console.view",  # then the action's own permission
    ("POST", "/api/events/{id}/registrations"): PUBLIC,
    ("GET", "/api/events/{id}/registrations"): "console.view",
    ("GET", "/api/events/{id}/console"): "console.view",
    ("GET", "/api/events/{id}/metrics"): "console.view",
    # --- comments, viewers, orders (staff side)
    ("POST", "/api/comments/{id}/reply"): "comments.moderate",
    ("POST", "/api/comments/{id}/pin"): "comments.moderate",
    ("DELETE", "/api/comments/{id}/pin"): "comments.moderate",
    ("POST", "/api/comments/{id}/hide"): "comments.moderate",
    ("POST", "/api/viewers/{viewer_id}/block"): "comments.moderate",
    ("DELETE", "/api/viewers/{viewer_id}/block"): "comments.moderate",
    ("GET", "/api/events/{id}/comments"): "console.view",
    ("GET", "/api/events/{id}/orders"): "console.view",
    # --- the Orders pages (issue 18): buyers' details are staff-only
    ("GET", "/orders"): "orders.view",
    ("GET", "/orders/packing"): "orders.view",
    ("GET", "/events/{id}/orders"): "orders.view",
    ("GET", "/events/{id}/buyers"): "orders.view",
    ("GET", "/api/orders"): "orders.view",
    ("GET", "/api/orders.csv"): "orders.view",
    ("GET", "/api/orders/{id}"): "orders.view",
    ("POST", "/api/orders/{id}/status"): "orders.manage",
    ("POST", "/api/orders/status"): "orders.manage",
    ("GET", "/api/events/{id}/buyers"): "orders.view",
    ("GET", "/api/events/{id}/buyers.csv"): "orders.view",
    # --- the viewer page's APIs
    ("GET", "/api/e/{id}/state"): PUBLIC,
    ("POST", "/api/viewer/nickname"): VIEWER,
    ("POST", "/api/e/{id}/comments"): VIEWER,
    ("POST", "/api/e/{id}/follow"): VIEWER,
    ("POST", "/api/e/{id}/gifts"): VIEWER,
    ("POST", "/api/e/{id}/opens"): VIEWER,
    ("POST", "/api/e/{id}/orders"): VIEWER,
    ("GET", "/api/viewer/buyer"): VIEWER,
    ("PUT", "/api/viewer/buyer"): VIEWER,
    # --- media: WHIP ingest (stream key or a staff session with show.run), WHEP playback (public)
    ("OPTIONS", "/whip"): PUBLIC,
    ("POST", "/whip"): "show.run",         # or the stream key as a bearer token
    ("OPTIONS", "/whip/{id}"): PUBLIC,
    ("DELETE", "/whip/{id}"): "show.run",  # or the key the stream was published with (secmedia)
    ("PATCH", "/whip/{id}"): "show.run",   # or the key the stream was published with (secmedia)
    ("GET", "/hls/{event}/{name}"): PUBLIC,  # the live (never practice) event's HLS files
    ("OPTIONS", "/whep"): PUBLIC,
    ("POST", "/whep"): PUBLIC,
    ("OPTIONS", "/whep/{id}"): PUBLIC,
    ("DELETE", "/whep/{id}"): PUBLIC,      # the unguessable resource id is the capability
    ("PATCH", "/whep/{id}"): PUBLIC,
    ("GET", "/api/media/status"): "console.view",
    ("POST", "/api/media/capture"): "show.run",   # the chosen source; another source (it becomes the chosen one) needs settings.manage
    ("GET", "/api/media/capture/sources"): "show.run",
    ("PUT", "/api/media/capture/source"): "settings.manage",
    ("DELETE", "/api/media/capture"): "show.run",
    ("POST", "/api/media/end"): "show.run",
    ("GET", "/api/restream/destinations"): "settings.manage",
    ("POST", "/api/restream/destinations"): "settings.manage",
    ("PUT", "/api/restream/destinations/{id}"): "settings.manage",
    ("DELETE", "/api/restream/destinations/{id}"): "settings.manage",
    ("POST", "/api/restream/destinations/{id}/start"): "show.run",
    ("POST", "/api/restream/destinations/{id}/stop"): "show.run",
    ("GET", "/api/restream/status"): "console.view",
    ("POST", "/api/media/session"): "show.run",
    # --- the billboard plugin
    ("GET", "/api/plugins/billboard/templates"): "billboards.manage",
    ("GET", "/api/plugins/billboard/billboards"): "billboards.manage",
    ("POST", "/api/plugins/billboard/billboards"): "billboards.manage",
    ("POST", "/api/plugins/billboard/billboards/image"): "billboards.manage",
    ("GET", "/api/plugins/billboard/billboards/{id}"): "billboards.manage",
    ("PATCH", "/api/plugins/billboard/billboards/{id}"): "billboards.manage",
    ("DELETE", "/api/plugins/billboard/billboards/{id}"): "billboards.manage",
    ("GET", "/api/plugins/billboard/billboards/{id}/preview.png"): "billboards.manage",
    ("POST", "/api/plugins/billboard/billboards/{id}/show"): "billboards.manage",
    ("POST", "/api/plugins/billboard/billboards/{id}/hide"): "billboards.manage",
    ("GET", "/api/plugins/billboard/preview.png"): "billboards.manage",
    ("PUT", "/api/plugins/billboard/events/{event_id}/billboards/{id}"): "billboards.manage",
    ("DELETE", "/api/plugins/billboard/events/{event_id}/billboards/{id}"): "billboards.manage",
    # --- the flash-sale plugin
    ("GET", "/api/plugins/flashsale/events/{event_id}/sales"): "flashsale.manage",
    ("POST", "/api/plugins/flashsale/events/{event_id}/sales"): "flashsale.manage",
    ("GET", "/api/plugins/flashsale/sales/{id}"): "flashsale.manage",
    ("PATCH", "/api/plugins/flashsale/sales/{id}"): "flashsale.manage",
    ("DELETE", "/api/plugins/flashsale/sales/{id}"): "flashsale.manage",
    ("POST", "/api/plugins/flashsale/sales/{id}/duplicate"): "flashsale.manage",
    ("POST", "/api/plugins/flashsale/sales/{id}/launch"): "flashsale.manage",
    ("POST", "/api/plugins/flashsale/sales/{id}/end"): "flashsale.manage",
    ("GET", "/api/plugins/flashsale/e/{event_id}/sales"): PUBLIC,
    ("POST", "/api/plugins/flashsale/e/{event_id}/sales/{id}/waitlist"): VIEWER,
    # --- the shop-link checkout plugin
    ("GET", "/api/plugins/shoplink/products"): "console.view",
    ("PUT", "/api/plugins/shoplink/products/{id}"): "catalog.edit",
    ("DELETE", "/api/plugins/shoplink/products/{id}"): "catalog.edit",
    # --- giveaway plugin: staff API, viewer entry/claim, the public proof
    ("GET", "/api/plugins/giveaway/giveaways"): "giveaways.manage",
    ("POST", "/api/plugins/giveaway/giveaways"): "giveaways.manage",
    ("GET", "/api/plugins/giveaway/giveaways/{id}"): "giveaways.manage",
    ("PATCH", "/api/plugins/giveaway/giveaways/{id}"): "giveaways.manage",
    ("DELETE", "/api/plugins/giveaway/giveaways/{id}"): "giveaways.manage",
    ("POST", "/api/plugins/giveaway/giveaways/{id}/start"): "giveaways.manage",
    ("POST", "/api/plugins/giveaway/giveaways/{id}/redraw"): "giveaways.manage",
    ("PUT", "/api/plugins/giveaway/events/{event_id}/giveaways/{id}"): "giveaways.manage",
    ("DELETE", "/api/plugins/giveaway/events/{event_id}/giveaways/{id}"): "giveaways.manage",
    ("POST", "/api/plugins/giveaway/giveaways/{id}/enter"): VIEWER,
    ("POST", "/api/plugins/giveaway/giveaways/{id}/claim"): VIEWER,
    ("GET", "/api/plugins/giveaway/events/{event_id}/current"): PUBLIC,
    ("GET", "/api/plugins/giveaway/giveaways/{id}/proof"): PUBLIC,
    ("GET", "/e/{ident}/giveaways/{id}"): PUBLIC,
}

#: rows whose intended policy has not landed yet: (method, path) → why (strict xfail: remove the row once it passes)
PENDING: dict[tuple[str, str], str] = {
}

#: the login and logout routes: their 401 (wrong password) or redirect to /login is their answer, not a demand to log in
LOGIN_IS_SUCCESS = {("POST", "/logout"), ("POST", "/login"), ("POST", "/api/login")}


def expected(policy: str) -> dict[str, str]:
    if policy == PUBLIC:
        return dict.fromkeys(IDENTITIES, "ok")
    if policy == VIEWER:
        return {who: "ok" if who == "viewer" else "login" for who in IDENTITIES}
    roles = GRANTS[policy]
    out = {who: "login" if who not in STAFF else "ok" if who in roles else "403" for who in IDENTITIES}
    out["token"] = "ok" if policy in TOKEN_SCOPES else "403"
    return out


def router_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, path) of the router but HEAD and static files."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        out.append((route.method, str(info.get("formatter") or info.get("path"))))
    return out


def _config(data_dir: Path) -> Any:
    return load_config(None, env={}, overrides={"server": {"data_dir": str(data_dir)}, "media": {"ice_host_addresses": ["127.0.0.1"]}})


# --------------------------------------------------------------------------------------------- the walk


class Walk:
    """One app, five browsers, real objects; :meth:`outcome` of one request."""

    def __init__(self, server: TestServer):
        self.server = server
        self.app = server.app
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.csrf: dict[str, str | None] = {}
        self.ids: dict[str, Any] = {}
        self.failures: list[str] = []
        self.events = 0
        self.login_token: dict[str, str | None] = {}

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def setup(self) -> None:
        for who in IDENTITIES:
            self.sessions[who] = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            self.csrf[who] = None
            self.login_token[who] = await self.login_page_token(who)  # every browser saw the login page once
        db = self.app[DB]
        for role in STAFF:
            await auth.create_user(db, f"{role}1", role, "correct horse battery")
            resp = await self.sessions[role].post(self.url("/api/login"), json={"name": f"{role}1", "password": "correct horse battery"})
            assert resp.status == 200, await resp.text()
            self.csrf[role] = (await resp.json())["csrf_token"]
        owner = self.sessions["owner"]
        h = {auth.CSRF_HEADER: self.csrf["owner"] or ""}
        resp = await owner.post(self.url("/api/tokens"), json={"name": "walk", "scopes": list(TOKEN_SCOPES)}, headers=h)
        assert resp.status == 201, await resp.text()
        self.bearer = (await resp.json())["token"]
        resp = await owner.post(self.url("/api/products"), json={"title": "Mug", "price_cents": 900, "stock": 5, "sku": "MUG-1"}, headers=h)
        assert resp.status == 201, await resp.text()
        self.ids["product"] = (await resp.json())["product"]["id"]
        self.ids["event"], self.ids["slug"] = await self.new_event()
        resp = await owner.post(self.url(f"/api/events/{self.ids['event']}/bag"), json={"product_id": self.ids["product"]}, headers=h)
        assert resp.status in (200, 201), await resp.text()
        live = self.app[LIVE]
        session = await live.begin("test", True, None, event_id=self.ids["event"])  # a practice session: the event is upcoming
        await live.end("host ended")
        self.ids["session"] = session.id
        # the viewer: a public page gives the cookie, the state API its CSRF token
        viewer = self.sessions["viewer"]
        assert (await viewer.get(self.url(f"/e/{self.ids['slug']}"))).status == 200
        resp = await viewer.get(self.url(f"/api/e/{self.ids['event']}/state"))
        self.csrf["viewer"] = (await resp.json())["viewer"]["csrf_token"]
        assert any(c.key == auth.VIEWER_COOKIE for c in viewer.cookie_jar)
        now = time.time()
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO viewers (id, nickname, created_at) VALUES ('other-viewer', 'Other', ?)", (now,))
            cur = await tx.execute("INSERT INTO comments (event_id, session_id, viewer_id, nickname, body, created_at)"
                                   " VALUES (?, ?, 'other-viewer', 'Other', 'hello', ?)", (self.ids["event"], session.id, now))
            self.ids["comment"] = cur.lastrowid
        self.ids["billboard"] = await self.new_billboard()

    async def login_page_token(self, who: str) -> str | None:
        """The login form's own token, when the login page shows this browser a form (staff are sent on)."""
        async with self.sessions[who].get(self.url("/login"), allow_redirects=False) as page:
            found = re.search(r'name="csrf_token" value="([^"]*)"', await page.text())
        return found.group(1) if found else None

    async def new_event(self) -> tuple[int, str]:
        self.events += 1
        resp = await self.sessions["owner"].post(self.url("/api/events"), headers={auth.CSRF_HEADER: self.csrf["owner"] or ""}, json={
            "title": f"Show {self.events}", "starts_at": time.time() + 86400 * self.events, "duration_minutes": 60})
        assert resp.status == 201, await resp.text()
        event = (await resp.json())["event"]
        return int(event["id"]), str(event["slug"])

    async def new_billboard(self) -> int:
        resp = await self.sessions["owner"].post(self.url("/api/plugins/billboard/billboards"), json={"template": "sale"},
                                                 headers={auth.CSRF_HEADER: self.csrf["owner"] or ""})
        if resp.status == 400:  # the template names may change: take the first one
            templates = await (await self.sessions["owner"].get(self.url("/api/plugins/billboard/templates"))).json()
            resp = await self.sessions["owner"].post(self.url("/api/plugins/billboard/billboards"),
                                                     json={"template": templates["templates"][0]["id"]},
                                                     headers={auth.CSRF_HEADER: self.csrf["owner"] or ""})
        assert resp.status == 201, await resp.text()
        return int((await resp.json())["billboard"]["id"])

    async def path_for(self, method: str, path: str) -> str:
        """The route's path with real objects; a DELETE of the object itself gets a fresh one each time."""
        ids = dict(self.ids)
        if (method, path) == ("DELETE", "/api/events/{id}"):
            ids["event"], _ = await self.new_event()
        if (method, path) == ("DELETE", "/api/plugins/billboard/billboards/{id}"):
            ids["billboard"] = await self.new_billboard()
        if (method, path) == ("DELETE", "/api/tokens/{id}"):  # a throwaway token, never the walk's own
            resp = await self.sessions["owner"].post(self.url("/api/tokens"), json={"name": "throwaway", "scopes": ["console.view"]},
                                                     headers={auth.CSRF_HEADER: self.csrf["owner"] or ""})
            assert resp.status == 201, await resp.text()
            return path.format(id=(await resp.json())["api_token"]["id"])
        billboard = path.startswith("/api/plugins/billboard/")
        values = {
            "id": ids["billboard"] if billboard else ids["product"] if path.startswith("/api/products/")
            else ids["comment"] if path.startswith("/api/comments/") else "no-such-resource" if path.startswith(("/whip/", "/whep/"))
            else ids["event"],
            "event_id": ids["event"], "pid": ids["product"], "sid": ids["session"], "ident": ids["slug"], "fmt": "png",
            "topic": "sales-pitches", "name": "no-such-image.png", "event": ids["event"], "viewer_id": "other-viewer",
        }
        out = path.format(**values)
        if path == "/ws/viewer":
            out += f"?event={ids['event']}"
        return out

    async def outcome(self, who: str, method: str, path: str) -> str:
        url = self.url(await self.path_for(method, path))
        headers: dict[str, str] = {}
        if self.csrf[who]:
            headers[auth.CSRF_HEADER] = self.csrf[who] or ""
        if who == "token":
            headers["Authorization"] = f"Bearer {self.bearer}"
        kwargs: dict[str, Any] = {"json": {}}
        if path in ("/whip", "/whep"):
            kwargs = {"data": b"v=0\r\n"}
            headers["Content-Type"] = "application/sdp"
        if (method, path) == ("POST", "/login"):  # the form, with the token its page gave this browser
            token = await self.login_page_token(who) or self.login_token[who]
            kwargs = {"data": {"name": "", "password": "", **({"csrf_token": token} if token else {})}}
        if method in ("GET", "OPTIONS"):
            kwargs = {}
        else:  # a browser's write names its page's origin
            headers["Origin"] = self.url("/").rstrip("/")
        async with self.sessions[who].request(method, url, headers=headers, allow_redirects=False, **kwargs) as resp:
            status = resp.status
            location = resp.headers.get("Location", "")
            body = (await resp.read()).decode("utf-8", "replace")
        # an identity stays itself: the public pages hand out viewer cookies to whoever opens them
        own = {"anonymous": ("lms_login",), "viewer": (auth.VIEWER_COOKIE, "lms_login"),
               "token": ("lms_login",)}.get(who, (auth.SESSION_COOKIE, "lms_login"))
        self.sessions[who].cookie_jar.clear(lambda morsel: morsel.key not in own)
        if status >= 500:
            self.failures.append(f"{who} {method} {path}: {status} {body[:200]}")
        if (method, path) in LOGIN_IS_SUCCESS:
            return "403" if status == 403 else "ok"
        if status in (301, 302, 303, 307, 308) and location.startswith("/login"):
            return "login"
        if status == 401:
            return "login"
        if status == 403:
            return "403"
        return "ok"

    async def run(self) -> dict[tuple[str, str], dict[str, str]]:
        routes = router_routes(self.app)
        # deletions after everything else (they remove objects other rows use), logging out last of all
        routes.sort(key=lambda r: (r in LOGIN_IS_SUCCESS, r[0] == "DELETE"))
        results: dict[tuple[str, str], dict[str, str]] = {}
        for method, path in routes:
            results[(method, path)] = {who: await self.outcome(who, method, path) for who in IDENTITIES}
        return results

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()


async def _walk(data_dir: Path) -> tuple[dict[tuple[str, str], dict[str, str]], list[str], list[tuple[str, str]]]:
    app = create_app(_config(data_dir), load_entrypoints=True)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    walk = Walk(server)
    try:
        await walk.setup()
        results = await walk.run()
        return results, walk.failures, router_routes(app)
    finally:
        await walk.close()
        await server.close()


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[tuple[str, str], dict[str, str]], list[str], list[tuple[str, str]]]]:
    """Walk every route once for the module (its own event loop: the per-test loops are function-scoped)."""
    yield asyncio.run(_walk(tmp_path_factory.mktemp("perm") / "data"))


# --------------------------------------------------------------------------------------------- the tests


def test_the_grants_are_the_apps_permissions(tmp_path: Path) -> None:
    registry = create_app(_config(tmp_path), load_entrypoints=True)[auth.PERMISSIONS]  # as walked: the built-in plugins too
    assert {k: set(v) for k, v in GRANTS.items()} == {p.name: set(registry.roles(p.name)) for p in registry}


def test_the_table_lists_every_route(walk: Any) -> None:
    _, _, routes = walk
    missing = sorted(set(routes) - set(TABLE))
    stale = sorted(set(TABLE) - set(routes))
    assert not missing, f"routes without a row in tests/test_permissions.py TABLE (add one with the intended policy): {missing}"
    assert not stale, f"rows of TABLE for routes that no longer exist: {stale}"
    assert set(PENDING) <= set(TABLE)
    for policy in TABLE.values():
        assert policy in (PUBLIC, VIEWER) or policy in GRANTS, policy


def test_no_route_fails_with_a_server_error(walk: Any) -> None:
    assert walk[1] == []


@pytest.mark.parametrize("route", [
    pytest.param(key, id=f"{key[0]} {key[1]}",
                 marks=[pytest.mark.xfail(strict=True, reason=PENDING[key])] if key in PENDING else [])
    for key in TABLE
])
def test_route_access(walk: Any, route: tuple[str, str]) -> None:
    results, _, _ = walk
    if route not in results:
        pytest.fail(f"{route} is in TABLE but not in the router")
    got, want = results[route], expected(TABLE[route])
    assert got == want, f"{route[0]} {route[1]} ({TABLE[route]}): got {got}, want {want}"
