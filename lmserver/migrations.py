"""Core schema migrations, in order. Plugins add theirs through the ``register_migrations`` hook.

Add a step by appending a function decorated with ``@migration`` (never edit an applied one).
"""

from __future__ import annotations

from .db import Migration

MIGRATIONS: list[Migration] = []


def migration(sql: str, name: str) -> None:
    MIGRATIONS.append(Migration("core", name, sql))


migration(name="001_initial", sql="""
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'moderator', 'assistant')),
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE staff_sessions (
    id TEXT PRIMARY KEY,                 -- sha256 of the cookie's token
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE login_failures (
    key TEXT NOT NULL,                   -- lower(name) + '|' + remote address
    at REAL NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at);

CREATE TABLE viewers (
    id TEXT PRIMARY KEY,                 -- random id carried in the signed viewer cookie
    nickname TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    sku TEXT UNIQUE,
    image TEXT,                          -- file name under <data_dir>/uploads
    archived INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX products_title ON products(title COLLATE NOCASE);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    starts_at REAL NOT NULL,
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes BETWEEN 30 AND 780),
    recommended INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX events_starts ON events(starts_at);

CREATE TABLE event_products (
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (event_id, product_id)
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,
    practice INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,                -- whip, capture, ...
    started_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    pinned_product_id INTEGER REFERENCES products(id) ON DELETE SET NULL,
    peak_viewers INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_event ON sessions(event_id);

CREATE TABLE activity (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,                  -- bus event name, e.g. comment.created
    event_id INTEGER,
    session_id INTEGER,
    practice INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,                  -- JSON
    created_at REAL NOT NULL
);
CREATE INDEX activity_session ON activity(session_id, id);
CREATE INDEX activity_name ON activity(name, id);

CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    event_id INTEGER REFERENCES events(id) ON DELETE CASCADE,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    viewer_id TEXT REFERENCES viewers(id) ON DELETE SET NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,   -- staff author (replies)
    parent_id INTEGER REFERENCES comments(id) ON DELETE CASCADE,
    nickname TEXT NOT NULL,
    body TEXT NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0,
    practice INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX comments_event ON comments(event_id, id);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    viewer_id TEXT REFERENCES viewers(id) ON DELETE SET NULL,
    product_id INTEGER NOT NULL REFERENCES products(id),
    event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'placed',
    first_time INTEGER NOT NULL DEFAULT 0,
    practice INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX orders_session ON orders(session_id);
CREATE INDEX orders_viewer ON orders(viewer_id);

CREATE TABLE follows (
    viewer_id TEXT PRIMARY KEY REFERENCES viewers(id) ON DELETE CASCADE,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);

CREATE TABLE gifts (
    id INTEGER PRIMARY KEY,
    viewer_id TEXT REFERENCES viewers(id) ON DELETE SET NULL,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    gift TEXT NOT NULL,
    practice INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE registrations (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    viewer_id TEXT NOT NULL REFERENCES viewers(id) ON DELETE CASCADE,
    nickname TEXT NOT NULL,
    email TEXT,
    created_at REAL NOT NULL,
    UNIQUE (event_id, viewer_id)
);

CREATE TABLE viewer_samples (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    viewers INTEGER NOT NULL
);
CREATE INDEX viewer_samples_session ON viewer_samples(session_id, at);
""")


migration(name="002_event_reminders", sql="""
-- when the "event.ready" reminder was published for the event's current start time (NULL: not yet)
ALTER TABLE events ADD COLUMN reminded_at REAL;
CREATE INDEX sessions_started ON sessions(started_at);
""")


migration(name="020_comment_hidden_reason", sql="""
ALTER TABLE comments ADD COLUMN hidden_reason TEXT;
CREATE INDEX comments_pinned ON comments(event_id) WHERE pinned = 1;
CREATE INDEX orders_viewer_real ON orders(viewer_id) WHERE practice = 0;
""")


migration(name="030_order_reconcile_idempotency", sql="""
-- why an order has its status when the server set it (e.g. "checkout interrupted by a server restart")
ALTER TABLE orders ADD COLUMN status_reason TEXT;
-- the reconciliation pass looks for reservations only
CREATE INDEX orders_reserved ON orders(created_at) WHERE status = 'reserved';
-- a buyer's Idempotency-Key: a retry of the same purchase answers with the first order (see lmserver/orders.py)
CREATE TABLE order_idempotency (
    viewer_id TEXT NOT NULL REFERENCES viewers(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    response TEXT,                       -- JSON of the order as first answered; NULL while its checkout runs
    created_at REAL NOT NULL,
    PRIMARY KEY (viewer_id, key)
);
CREATE INDEX order_idempotency_created ON order_idempotency(created_at);
CREATE INDEX order_idempotency_order ON order_idempotency(order_id);
""")


migration(name="031_timers", sql="""
-- the persisted scheduler (lmserver.scheduler): one row per pending timer; a row is deleted once its handler ran
CREATE TABLE timers (
    key TEXT PRIMARY KEY,                -- unique, chosen by the plugin ("poll.close:12")
    handler TEXT NOT NULL,               -- a name registered through the register_timers hook
    payload TEXT NOT NULL DEFAULT 'null',-- JSON
    due_at REAL NOT NULL,                -- UNIX seconds (wall clock)
    token TEXT NOT NULL,                 -- changes each time the timer is (re)set: the delete after firing matches it
    created_at REAL NOT NULL
);
CREATE INDEX timers_due ON timers(due_at, key);
""")


migration(name="032_price_history", sql="""
-- the catalog's price history: one row each time a product's price is set (created, edited, imported), kept by
-- triggers so that every write path records it; read it with lmserver.api.price_history (e.g. the lowest price
-- of the previous 30 days that EU price-reduction rules ask a deal to show)
CREATE TABLE product_prices (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    price_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    since REAL NOT NULL                  -- UNIX seconds: the price applies from then until the next row's since
);
CREATE INDEX product_prices_product ON product_prices(product_id, since);
INSERT INTO product_prices (product_id, price_cents, currency, since) SELECT id, price_cents, currency, updated_at FROM products;
CREATE TRIGGER product_prices_insert AFTER INSERT ON products BEGIN
    INSERT INTO product_prices (product_id, price_cents, currency, since)
    VALUES (new.id, new.price_cents, new.currency, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER product_prices_update AFTER UPDATE OF price_cents, currency ON products
WHEN new.price_cents IS NOT old.price_cents OR new.currency IS NOT old.currency BEGIN
    INSERT INTO product_prices (product_id, price_cents, currency, since)
    VALUES (new.id, new.price_cents, new.currency, (julianday('now') - 2440587.5) * 86400.0);
END;
""")


migration(name="040_prompter_findings", sql="""
-- the prompter's findings (lmserver.prompter): one row per finding of a session, updated in place while it lasts
CREATE TABLE prompter_findings (
    id INTEGER PRIMARY KEY,
    session_id INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
    event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,
    practice INTEGER NOT NULL DEFAULT 0,
    plugin TEXT NOT NULL,                -- the plugin whose rule found it
    key TEXT NOT NULL,                   -- stable: the same condition updates the same finding
    kind TEXT NOT NULL CHECK (kind IN ('suggestion', 'violation')),
    level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'critical')),
    text TEXT NOT NULL,
    trigger TEXT NOT NULL DEFAULT 'null',-- JSON {metric, value, threshold, window}: what the rule saw
    actions TEXT NOT NULL DEFAULT '[]',  -- JSON [{label, method, url, body} | {label, comment_id} | {label, panel}]
    subject TEXT NOT NULL DEFAULT 'null',-- JSON {comment_id, product_id, viewer_id, ...}: what it is about
    area TEXT,                           -- "stream" for LIVE diagnosis (the console's health line), else NULL
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'resolved', 'dismissed')),
    updates INTEGER NOT NULL DEFAULT 1,  -- how many times the rule reported it
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    resolved_at REAL,
    dismissed_at REAL,
    dismissed_by TEXT,                   -- the staff member's name
    acted TEXT                           -- the action's label when staff dismissed it by acting
);
CREATE INDEX prompter_findings_session ON prompter_findings(session_id, key, status);
""")


migration(name="040_order_label", sql="""
-- what granted an order that was not sold (a plugin's label, e.g. "prize"); NULL for a purchase
ALTER TABLE orders ADD COLUMN label TEXT;
""")


migration(name="050_webhooks", sql="""
-- webhook endpoints the owner added (Settings -> Webhooks); lmserver.webhooks delivers to them
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL DEFAULT '[]',       -- JSON list of bus event names or patterns ("order.*", "*")
    include_practice INTEGER NOT NULL DEFAULT 0,
    secret TEXT NOT NULL,                    -- "whsec_" + base64 of 32 random bytes (Standard Webhooks)
    old_secret TEXT,                         -- the secret before the last rotation, still signing until:
    old_secret_until REAL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- the outbox: one row per (endpoint, message); survives restarts, retried until delivered or expired
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    msg_id TEXT NOT NULL,                    -- webhook-id: the same on every attempt of this message
    activity_id INTEGER,                     -- the bus record it carries (NULL: a test event)
    event TEXT NOT NULL,
    payload TEXT NOT NULL,                   -- the exact JSON body sent
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (endpoint_id, msg_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, id);
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    status INTEGER,                          -- the HTTP status, NULL when no answer came
    error TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id);
-- how far the activity log was turned into deliveries (the activity row IS the outbox record: it is written
-- in the same transaction as the change it reports, so a kill -9 can not lose an event)
CREATE TABLE webhook_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), activity_id INTEGER NOT NULL);
INSERT INTO webhook_cursor (id, activity_id) SELECT 1, COALESCE(MAX(id), 0) FROM activity;
""")


migration(name="051_api_tokens", sql="""
-- API tokens for scripts and integrations (Settings -> API tokens): "Authorization: Bearer lmst_..."
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,          -- SHA-256 of the token (the token itself is shown once, never stored)
    hint TEXT NOT NULL,                       -- the token's first characters, to recognise it in the list
    scopes TEXT NOT NULL DEFAULT '[]',        -- JSON list of permission names the token may use
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,  -- who made it: the token never exceeds their role
    created_at REAL NOT NULL,
    expires_at REAL,                          -- NULL: no expiry
    last_used_at REAL,
    revoked_at REAL
);
""")


migration(name="052_scripts_and_comment_products", sql="""
-- issue 16: staff-only talking points of a product and a run-of-show script of an event (validate.SCRIPT_MAX
-- characters at most), and the product a comment is about (named in it, or asked from its pinned card)
ALTER TABLE products ADD COLUMN script TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN script TEXT NOT NULL DEFAULT '';
ALTER TABLE comments ADD COLUMN product_id INTEGER REFERENCES products(id) ON DELETE SET NULL;
""")


migration(name="041_recordings", sql="""
-- the recordings of sessions (lmserver.recordings): one row per part (a session resumed after a restart records
-- into a new part); the file is a fragmented MP4 while recording, remuxed to a fast-start MP4 once complete
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    part INTEGER NOT NULL,               -- 1, 2, ... in the order the parts were recorded
    path TEXT,                           -- relative to the data directory; NULL once the file is deleted
    started_at REAL,                     -- wall-clock UNIX time of the first muxed packet (= video t=0 of this part)
    duration REAL,                       -- seconds of video
    size INTEGER,                        -- bytes on disk
    state TEXT NOT NULL DEFAULT 'recording' CHECK (state IN ('recording', 'complete', 'failed', 'stopped', 'deleted')),
    error TEXT,                          -- why it failed or stopped (e.g. the disk was nearly full)
    created_at REAL NOT NULL,
    UNIQUE (session_id, part)
);
CREATE INDEX recordings_state ON recordings(state);
-- whether the session's replay is public on its event page (set by lmserver.replay)
ALTER TABLE sessions ADD COLUMN replay_published INTEGER NOT NULL DEFAULT 0;
""")


migration(name="053_order_fulfilment", sql="""
-- issue 18: buyer details, order statuses and their history (lmserver.buyers, lmserver.orderstatus)
-- a viewer's contact and shipping address, asked on their first purchase, editable; staff-only
CREATE TABLE buyer_details (
    viewer_id TEXT PRIMARY KEY REFERENCES viewers(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    address TEXT NOT NULL,                -- the shipping address, several lines
    updated_at REAL NOT NULL
);
-- the buyer's details as they were when the order was placed (what the packing list prints)
ALTER TABLE orders ADD COLUMN buyer_name TEXT;
ALTER TABLE orders ADD COLUMN buyer_email TEXT;
ALTER TABLE orders ADD COLUMN ship_address TEXT;
-- every status an order went through: who (a staff name, "checkout", "system" or a plugin), when, from, to, why
CREATE TABLE order_status_history (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    from_status TEXT,                     -- NULL for the row written when the order was created
    to_status TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT
);
CREATE INDEX order_status_history_order ON order_status_history(order_id, id);
CREATE INDEX orders_event ON orders(event_id, id);
""")


migration(name="054_outbox", sql="""
-- e-mail waiting to be sent, sent, or given up (lmserver.mailer): one row per dedupe_key, so a reminder goes out once
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,     -- e.g. "reminder:ready:12:ana@example.com"
    event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    from_name TEXT NOT NULL DEFAULT '',
    attachment_name TEXT,
    attachment TEXT,
    attachment_mime TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
""")


migration(name="055_restream_destinations", sql="""
-- restream destinations (lmserver.media.restream_api): where the program is forwarded during a LIVE
CREATE TABLE restream_destinations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rtmp', 'whip')),
    preset TEXT NOT NULL DEFAULT 'custom',  -- youtube, twitch, facebook, custom, whip
    url TEXT NOT NULL,                      -- rtmp(s):// server URL, or the http(s):// WHIP endpoint
    secret TEXT NOT NULL DEFAULT '',        -- RTMP stream key or WHIP bearer token: never sent back by the API
    start_with_live INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
""")


from .analytics_schema import ROLLUPS_SQL  # noqa: E402  (the tables and their triggers, described there)

migration(name="056_analytics_rollups", sql=ROLLUPS_SQL)
