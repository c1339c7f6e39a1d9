"""Staff accounts, roles, sessions, CSRF, login throttling, viewer cookies and the stream key.

- Passwords: argon2id (argon2-cffi). At least ``security.min_password_length`` characters.
- Staff session cookie ``lms_session``: ``<token>.<hmac>`` (signed with the studio secret, HttpOnly,
  SameSite=Lax); the database keeps only the token's SHA-256, its CSRF token and its expiry (sliding).
- CSRF: every state-changing request that carries a staff session or viewer cookie must carry that
  cookie's token in the ``X-CSRF-Token`` header (API) or a ``csrf_token`` form field (pages), whatever
  other credentials it has. Requests without such cookies (OBS or FFmpeg with the stream key) need none.
- Origin: such a request (and a WebSocket handshake carrying those cookies, and every login) must also
  come from this server's own origin: ``Origin`` equal to the request's scheme and host or to
  ``server.public_url`` (:func:`check_same_origin`). Logins carry no session or viewer token; the login
  form carries a pre-session token of its own instead (double submit: the signed ``lms_login`` cookie).
- ``next`` after login/logout: only a local path, through :func:`safe_next`.
- Viewers are anonymous: the signed ``lms_viewer`` cookie carries a random viewer id; their CSRF token is
  an HMAC of that id (``viewer_csrf``), handed to the viewer page.
- Roles and permissions: :class:`PermissionRegistry` (``app[PERMISSIONS]``, from the ``register_permissions``
  hook); ``await require(request, "catalog.edit")``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from multidict import MultiDictProxy
from yarl import URL

from .appkeys import CONFIG, DB, NEW_VIEWER_KEY, SECRET, SESSION_EXPIRED_KEY, USER_KEY
from .errors import BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized

if TYPE_CHECKING:
    from .db import Database

from .permissions import CORE_OWNER, PERMISSIONS, ROLES, PermissionRegistry, core_permissions  # re-exported

SESSION_COOKIE = "lms_session"
VIEWER_COOKIE = "lms_viewer"
LOGIN_COOKIE = "lms_login"  # pre-session CSRF token of the login form (double submit), path /login
LOGIN_PATHS = frozenset({"/login", "/api/login"})
CSRF_HEADER = "X-CSRF-Token"
#: API tokens (``Authorization: Bearer lmst_...``) start with this; the stream key starts with ``lms_``
TOKEN_PREFIX = "lmst_"
#: why this request's API token was refused (unknown, revoked, expired): :func:`require` says so in its 401
TOKEN_PROBLEM: web.RequestKey[str] = web.RequestKey("lms_token_problem")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,31}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    csrf: str = ""
    #: the app's permission registry (None: the core's permissions only)
    registry: PermissionRegistry | None = field(default=None, compare=False, repr=False)
    #: for a request made with an API token: the token's id and scopes (permission names); None for a login
    token_id: int | None = None
    scopes: frozenset[str] | None = None

    def can(self, permission: str) -> bool:
        """Whether this user's role holds ``permission`` (and, with an API token, the token's scopes name it);
        KeyError when no one declared that permission."""
        allowed = (self.registry or core_permissions()).allows(self.role, permission)
        return allowed and (self.scopes is None or permission in self.scopes)


# --------------------------------------------------------------------------------------------- signing


def sign(secret: bytes, value: str) -> str:
    mac = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def unsign(secret: bytes, signed: str | None) -> str | None:
    if not signed or "." not in signed:
        return None
    value, mac = signed.rsplit(".", 1)
    good = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:32]
    return value if hmac.compare_digest(mac, good) else None


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------------------------- accounts


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise BadRequest(f"the password is too short: use at least {min_length} characters")
    if len(password) > 1024:
        raise BadRequest("the password is too long: use at most 1024 characters")


async def create_user(db: "Database", name: str, role: str, password: str, *, min_password_length: int = 10) -> int:
    """Create a staff account; raises BadRequest (invalid name/role/password) or Conflict (name taken)."""
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise BadRequest("the user name must be 2–32 characters: letters, digits, '_', '.', '-', starting with a letter or digit")
    if role not in ROLES:
        raise BadRequest(f"the role must be one of {', '.join(ROLES)}, got {role!r}")
    check_new_password(password, min_password_length)
    if await db.fetchone("SELECT 1 FROM users WHERE name = ?", (name,)):
        raise Conflict(f"a user named {name!r} already exists: pick another name")
    hashed = hash_password(password)
    async with db.transaction() as tx:
        cur = await tx.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                               (name, role, hashed, time.time()))
        return cur.lastrowid or 0


# --------------------------------------------------------------------------------------------- sessions


async def login(request: web.Request, name: str, password: str) -> tuple[User, str]:
    """Check the credentials (with throttling); return the user and the signed cookie value."""
    app = request.app
    db, cfg = app[DB], app[CONFIG].security
    key = f"{(name or '').strip().lower()}|{request.remote}"
    now = time.time()
    window_start = now - cfg.login_lockout_seconds
    failures = await db.fetchall("SELECT at FROM login_failures WHERE key = ? AND at > ? ORDER BY at", (key, window_start))
    if len(failures) >= cfg.login_max_failures:
        wait = int(failures[-cfg.login_max_failures]["at"] + cfg.login_lockout_seconds - now) + 1
        raise TooManyRequests(f"too many failed logins: try again in {wait} s", headers={"Retry-After": str(wait)})
    row = await db.fetchone("SELECT * FROM users WHERE name = ? AND disabled = 0", ((name or "").strip(),))
    ok = False
    if row is not None:
        try:
            ok = _hasher.verify(row["password_hash"], password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash("timing-equaliser")  # same cost whether or not the user exists
    if not ok:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, now))
            await tx.execute("DELETE FROM login_failures WHERE at < ?", (now - 86400,))
        raise Unauthorized("wrong user name or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    previous = unsign(app[SECRET], request.cookies.get(SESSION_COOKIE))
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM login_failures WHERE key = ?", (key,))
        if previous:  # this browser's earlier session (if any) ends: one session per login
            await tx.execute("DELETE FROM staff_sessions WHERE id = ?", (_sha(previous),))
        await tx.execute("DELETE FROM staff_sessions WHERE expires_at < ?", (now,))
        await tx.execute("INSERT INTO staff_sessions (id, user_id, csrf, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (_sha(token), row["id"], csrf, now, now, now + cfg.session_hours * 3600))
    return User(row["id"], row["name"], row["role"], csrf, app.get(PERMISSIONS)), sign(app[SECRET], token)


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    cfg = request.app[CONFIG].security
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="Lax", secure=cfg.cookie_secure,
                        max_age=int(cfg.session_hours * 3600), path="/")


async def logout(request: web.Request, response: web.StreamResponse) -> None:
    token = unsign(request.app[SECRET], request.cookies.get(SESSION_COOKIE))
    if token:
        await request.app[DB].execute("DELETE FROM staff_sessions WHERE id = ?", (_sha(token),))
    response.del_cookie(SESSION_COOKIE, path="/")


async def staff_user(request: web.Request) -> User | None:
    """The logged-in staff user of this request, or None (no cookie, bad signature, expired)."""
    if USER_KEY in request:
        return request[USER_KEY]  # type: ignore[return-value]
    user = None
    token = unsign(request.app[SECRET], request.cookies.get(SESSION_COOKIE))
    if token:
        db = request.app[DB]
        now = time.time()
        row = await db.fetchone(
            "SELECT s.id AS sid, s.csrf, s.last_seen, s.expires_at, u.id, u.name, u.role FROM staff_sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.id = ? AND u.disabled = 0", (_sha(token),))
        if row is not None and row["expires_at"] > now:
            user = User(row["id"], row["name"], row["role"], row["csrf"], request.app.get(PERMISSIONS))
            if now - row["last_seen"] > 60:  # sliding expiry, written at most once a minute
                hours = request.app[CONFIG].security.session_hours
                await db.execute("UPDATE staff_sessions SET last_seen = ?, expires_at = ? WHERE id = ?",
                                 (now, now + hours * 3600, row["sid"]))
        request[SESSION_EXPIRED_KEY] = token is not None and user is None
    if user is None:
        bearer = bearer_token(request)
        if bearer is not None and bearer.startswith(TOKEN_PREFIX):
            user = await token_user(request, bearer)
    request[USER_KEY] = user
    return user


async def token_user(request: web.Request, token: str) -> User | None:
    """The staff identity of an API token: its maker's name and role, limited to the token's scopes.
    None for an unknown, revoked or expired token (or one whose maker's account is disabled); the reason
    is kept for :func:`require`'s 401."""
    db = request.app[DB]
    now = time.time()
    row = await db.fetchone("SELECT t.id AS tid, t.name AS token_name, t.scopes, t.expires_at, t.revoked_at, t.last_used_at,"
                            " u.id, u.name, u.role, u.disabled FROM api_tokens t JOIN users u ON u.id = t.user_id"
                            " WHERE t.token_hash = ?", (_sha(token),))
    if row is None or row["revoked_at"] is not None or row["disabled"]:
        request[TOKEN_PROBLEM] = "the API token is unknown or revoked: the owner makes a new one in Settings -> API tokens"
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        request[TOKEN_PROBLEM] = f"the API token {row['token_name']!r} has expired: the owner makes a new one in Settings -> API tokens"
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > 60:  # written at most once a minute
        await db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row["tid"]))
    return User(row["id"], f"{row['name']} (token {row['token_name']})", row["role"], "", request.app.get(PERMISSIONS),
                token_id=row["tid"], scopes=frozenset(json.loads(row["scopes"])))


async def require(request: web.Request, permission: str = "console.view") -> User:
    """The staff user, who must hold ``permission``; raises 401 (not logged in) or 403 (role)."""
    user = await staff_user(request)
    if user is None:
        if TOKEN_PROBLEM in request:
            raise Unauthorized(request[TOKEN_PROBLEM])
        if request.get(SESSION_EXPIRED_KEY):
            raise Unauthorized("your session has expired: log in again")
        raise Unauthorized("log in as staff first")
    if not user.can(permission):
        if user.scopes is not None and (user.registry or core_permissions()).allows(user.role, permission):
            raise Forbidden(f"this API token may not do this: it needs the '{permission}' scope"
                            f" (its scopes: {', '.join(sorted(user.scopes)) or 'none'})")
        raise Forbidden(f"your role ({user.role}) may not do this: it needs the '{permission}' permission")
    return user


# --------------------------------------------------------------------------------------------- viewers


def viewer_id(request: web.Request) -> str | None:
    return unsign(request.app[SECRET], request.cookies.get(VIEWER_COOKIE))


def viewer_csrf(secret: bytes, vid: str) -> str:
    return hmac.new(secret, f"viewer-csrf:{vid}".encode(), hashlib.sha256).hexdigest()[:32]


async def ensure_viewer(request: web.Request, response: web.StreamResponse) -> str:
    """Return this browser's viewer id, creating the viewer (row and cookie) on first visit."""
    vid = viewer_id(request)
    db = request.app[DB]
    if vid and await db.fetchone("SELECT 1 FROM viewers WHERE id = ?", (vid,)):
        return vid
    vid = secrets.token_urlsafe(12)
    await db.execute("INSERT INTO viewers (id, created_at) VALUES (?, ?)", (vid, time.time()))
    response.set_cookie(VIEWER_COOKIE, sign(request.app[SECRET], vid), httponly=True, samesite="Lax",
                        secure=request.app[CONFIG].security.cookie_secure, max_age=365 * 86400, path="/")
    request[NEW_VIEWER_KEY] = vid
    return vid


# --------------------------------------------------------------------------------------------- CSRF


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def form_data(request: web.Request) -> MultiDictProxy[Any]:
    """The request's form fields; a body that cannot be parsed is a 400 that says so (never a 500)."""
    try:
        return await request.post()
    except (ValueError, LookupError, HttpProcessingError) as exc:  # no boundary, truncated, bad bytes or charset
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise BadRequest(f"the form body could not be read ({request.content_type}): {reason}. Send a complete,"
                         " UTF-8 form (multipart with its boundary), or JSON with the X-CSRF-Token header") from None


def _origin_key(url: str) -> str | None:
    """``scheme://host:port`` of an origin or URL (default port filled in), or None if it is not one."""
    try:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return None
        return f"{parsed.scheme}://{parsed.host.lower()}:{parsed.port}"
    except (ValueError, TypeError):
        return None


def same_origins(request: web.Request) -> set[str]:
    """The origins this server answers for: the request's own scheme and host, and ``server.public_url``."""
    keys = {_origin_key(f"{request.scheme}://{request.host}"), _origin_key(request.app[CONFIG].server.public_url)}
    return {k for k in keys if k}


def check_same_origin(request: web.Request) -> None:
    """Refuse (403) a request that a browser sent from another origin.

    Same origin: ``Origin`` equals the request's own scheme and host, or ``server.public_url`` (set it when
    a reverse proxy changes the Host or the scheme). Without ``Origin``, ``Sec-Fetch-Site: cross-site`` or
    ``same-site`` is another origin too; a request with neither header (curl, OBS, FFmpeg) passes.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        site = request.headers.get("Sec-Fetch-Site", "").lower()
        if site in ("cross-site", "same-site"):
            raise Forbidden(f"cross-site request refused: the browser says this {request.method} came from another"
                            f" site (Sec-Fetch-Site: {site}); open the page from this server's own address and try again")
        return
    if _origin_key(origin) in same_origins(request):
        return
    own = request.app[CONFIG].server.public_url or f"{request.scheme}://{request.host}"
    raise Forbidden(f"cross-site request refused: this {request.method} came from {origin[:200]!r}, not from this server"
                    f" ({own}). Open the page from the server's own address; behind a reverse proxy, set"
                    " server.public_url to the address the browser uses")


async def check_csrf(request: web.Request) -> None:
    """Refuse a state-changing, cookie-authenticated request from another origin or without the right token (403).

    Logins (:data:`LOGIN_PATHS`) are always Origin-checked and carry no session or viewer token (the
    login form checks its own, :func:`check_login_token`). A WebSocket handshake that carries a staff or
    viewer cookie is Origin-checked. The body is read only when the token is needed and not in the header;
    a body that cannot be parsed is a 400.
    """
    websocket = request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
    if request.method in SAFE_METHODS and not websocket:
        return
    has_session, has_viewer = bool(request.cookies.get(SESSION_COOKIE)), bool(request.cookies.get(VIEWER_COOKIE))
    is_login = request.path in LOGIN_PATHS
    if has_session or has_viewer or is_login:
        check_same_origin(request)
    if websocket or is_login or not (has_session or has_viewer):
        return
    # An Authorization header changes nothing here: whatever else the request carries, a cookie that
    # grants authority (staff session, viewer) must come with its token. OBS/FFmpeg send no cookie.
    user = await staff_user(request) if has_session else None
    vid = viewer_id(request) if user is None else None
    if user is None and vid is None:
        return  # stale or forged cookies grant nothing, so there is nothing to protect
    expected = user.csrf if user is not None else viewer_csrf(request.app[SECRET], vid or "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in _FORM_TYPES:
        value = (await form_data(request)).get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")


def login_token(request: web.Request) -> str:
    """The login form's pre-session CSRF token: this browser's (from its ``lms_login`` cookie) or a new one."""
    return unsign(request.app[SECRET], request.cookies.get(LOGIN_COOKIE)) or secrets.token_urlsafe(24)


def set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Hand the browser the login form's token as a signed cookie (sent back only to ``/login``)."""
    response.set_cookie(LOGIN_COOKIE, sign(request.app[SECRET], token), httponly=True, samesite="Lax",
                        secure=request.app[CONFIG].security.cookie_secure, path="/login")


def check_login_token(request: web.Request, sent: str | None) -> bool:
    """Whether the login form's ``csrf_token`` matches this browser's ``lms_login`` cookie (double submit)."""
    expected = unsign(request.app[SECRET], request.cookies.get(LOGIN_COOKIE))
    return bool(expected and sent) and hmac.compare_digest(str(sent).encode(), str(expected).encode())


# --------------------------------------------------------------------------------------------- next


MAX_NEXT_LENGTH = 2048
_CONTROL_OR_BACKSLASH = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
# printable ASCII a path and query may keep as they are; everything else is percent-encoded
_NEXT_SAFE_CHARS = "/?&=%#:;@!$'()*+,-._~[]"


# slash look-alikes NFKC leaves alone (division and fraction slash, big solidus, reverse ones): read as "/"
_SLASH_LIKE = str.maketrans(dict.fromkeys("\u2044\u2215\u29f8\u29f5\u29f9\u2216", "/"))


def _local_path(value: str) -> str | None:
    cleaned = _CONTROL_OR_BACKSLASH.sub("", unicodedata.normalize("NFKC", value)).strip()
    if not cleaned.startswith("/") or cleaned.translate(_SLASH_LIKE).startswith("//"):
        return None
    return cleaned


def safe_next(value: object) -> str:
    """Where to send the browser after login or logout: a local path, else ``/``. Never another host.

    Control characters (tab, newline, ...) and backslashes are removed, since browsers drop or read them as
    ``/``; what is left must start with exactly one ``/``, and so must every percent-decoding of it
    (``/%09/evil`` decodes to ``//evil``) and its Unicode normal form (a fullwidth ``／`` is a slash).
    The login and logout pages themselves become ``/``. The answer is ASCII, percent-encoded.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return "/"
    path = _local_path(value)
    if path is None:
        return "/"
    decoded = path
    for _ in range(3):  # every decoding must still be a local path
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
        if _local_path(decoded) is None:
            return "/"
    else:
        return "/"  # still changing after three decodings: nobody links like that
    if decoded.split("?", 1)[0].split("#", 1)[0].rstrip("/") in ("/login", "/logout"):
        return "/"
    return quote(path, safe=_NEXT_SAFE_CHARS)


# --------------------------------------------------------------------------------------------- stream key


async def stream_key(db: "Database") -> str:
    """The studio's stream key (created on first use)."""
    key = await db.fetchval("SELECT value FROM settings WHERE key = 'stream_key'")
    if key:
        return key
    key = "lms_" + secrets.token_urlsafe(24)
    async with db.transaction() as tx:
        await tx.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('stream_key', ?)", (key,))
    return await db.fetchval("SELECT value FROM settings WHERE key = 'stream_key'")


async def rotate_stream_key(db: "Database") -> str:
    key = "lms_" + secrets.token_urlsafe(24)
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('stream_key', ?)"
                         " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key,))
    return key


async def check_stream_key(app: web.Application, token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token.encode(), (await stream_key(app[DB])).encode())


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
