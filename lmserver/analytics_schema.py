"""The analytics rollups' schema (migration ``056_analytics_rollups``, applied from :mod:`lmserver.migrations`).

Three tables, kept by SQLite triggers in the same transaction as the row that changes them (see
:mod:`lmserver.analytics` for what reads them): ``session_minutes``, ``session_products`` and
``session_viewers``. A trigger that changes must come as a new migration, never as an edit of this one.
"""

ROLLUPS_SQL = """
-- analytics rollups (lmserver/analytics.py): kept up to date by the triggers below, in the same transaction as
-- the order, comment, gift, follow, viewer sample or activity row that changes them, so the LIVE Board and the
-- LIVE Recap read a few hundred rows instead of the raw log. Practice sessions are never rolled up. "minute" is
-- whole minutes since sessions.started_at (0 = the first minute of the session).
CREATE TABLE session_minutes (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    minute INTEGER NOT NULL,
    viewer_sum INTEGER NOT NULL DEFAULT 0,   -- sum of the viewer samples of the minute (average = viewer_sum / viewer_n)
    viewer_n INTEGER NOT NULL DEFAULT 0,     -- number of viewer samples
    peak_viewers INTEGER NOT NULL DEFAULT 0, -- the most viewers watching at once (samples and joins)
    new_viewers INTEGER NOT NULL DEFAULT 0,  -- viewers who joined the session for the first time (their sum: unique viewers)
    followers INTEGER NOT NULL DEFAULT 0,    -- new followers
    comments INTEGER NOT NULL DEFAULT 0,     -- viewers' comments (lmserver.figures.counted_comment)
    gifts INTEGER NOT NULL DEFAULT 0,
    opens INTEGER NOT NULL DEFAULT 0,        -- product-card opens (POST /api/e/{id}/opens)
    orders INTEGER NOT NULL DEFAULT 0,       -- counted orders (lmserver.figures.counted_order), by their creation minute
    items INTEGER NOT NULL DEFAULT 0,
    gmv_cents INTEGER NOT NULL DEFAULT 0,
    first_time_buyers INTEGER NOT NULL DEFAULT 0,
    returning_viewers INTEGER NOT NULL DEFAULT 0, -- of the new viewers, those who had watched an earlier session
    openers INTEGER NOT NULL DEFAULT 0,      -- viewers who opened their first product card of the session
    watch_seconds REAL NOT NULL DEFAULT 0,   -- watching time that ended in this minute (a leave, or the session's end)
    PRIMARY KEY (session_id, minute)
) WITHOUT ROWID;

-- per product per session: card opens, counted orders, units, GMV, time pinned
CREATE TABLE session_products (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL,
    opens INTEGER NOT NULL DEFAULT 0,
    orders INTEGER NOT NULL DEFAULT 0,
    units INTEGER NOT NULL DEFAULT 0,
    gmv_cents INTEGER NOT NULL DEFAULT 0,
    pins INTEGER NOT NULL DEFAULT 0,             -- times pinned
    pinned_seconds REAL NOT NULL DEFAULT 0,      -- closed pins' time
    pinned_since REAL,                           -- the running pin's start (NULL: not pinned now)
    PRIMARY KEY (session_id, product_id)
) WITHOUT ROWID;

-- per viewer per session: watch time from WHEP joins and leaves (several tabs count once), comments, opens
CREATE TABLE session_viewers (
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    viewer_id TEXT NOT NULL,
    joined_at REAL,                              -- first WHEP join (NULL: commented or opened without watching)
    open INTEGER NOT NULL DEFAULT 0,             -- players open now
    since REAL,                                  -- when the first of the open players joined
    watch_seconds REAL NOT NULL DEFAULT 0,       -- closed watching time
    comments INTEGER NOT NULL DEFAULT 0,
    opens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, viewer_id)
) WITHOUT ROWID;
CREATE INDEX session_viewers_viewer ON session_viewers(viewer_id, session_id) WHERE joined_at IS NOT NULL;
CREATE INDEX session_viewers_commenters ON session_viewers(session_id, comments) WHERE comments > 0;
CREATE INDEX session_viewers_open ON session_viewers(session_id) WHERE open > 0;
-- the one-session comment count of lmserver.figures without reading the comments of every session
CREATE INDEX comments_session ON comments(session_id, practice, user_id);
-- the recap's markers and products featured: one session's records of a few names, not its whole log
CREATE INDEX activity_session_name ON activity(session_id, name);

CREATE TRIGGER analytics_order_insert AFTER INSERT ON orders
WHEN NEW.practice = 0 AND NEW.status IN ('placed', 'pending_payment') AND NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, orders, items, gmv_cents, first_time_buyers)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), 1, NEW.quantity, NEW.amount_cents, NEW.first_time
    FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET orders = orders + 1, items = items + excluded.items,
        gmv_cents = gmv_cents + excluded.gmv_cents, first_time_buyers = first_time_buyers + excluded.first_time_buyers;
    INSERT INTO session_products (session_id, product_id, orders, units, gmv_cents)
    SELECT s.id, NEW.product_id, 1, NEW.quantity, NEW.amount_cents FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, product_id) DO UPDATE SET orders = orders + 1, units = units + excluded.units,
        gmv_cents = gmv_cents + excluded.gmv_cents;
END;

-- a status change (reserved -> placed, placed -> cancelled, ...) takes the old row out and puts the new one in
CREATE TRIGGER analytics_order_update AFTER UPDATE OF status, quantity, amount_cents, session_id, practice, first_time ON orders
WHEN (OLD.practice = 0 AND OLD.status IN ('placed', 'pending_payment') AND OLD.session_id IS NOT NULL)
  OR (NEW.practice = 0 AND NEW.status IN ('placed', 'pending_payment') AND NEW.session_id IS NOT NULL) BEGIN
    UPDATE session_minutes SET orders = orders - 1, items = items - OLD.quantity, gmv_cents = gmv_cents - OLD.amount_cents,
        first_time_buyers = first_time_buyers - OLD.first_time
    WHERE OLD.practice = 0 AND OLD.status IN ('placed', 'pending_payment') AND session_id = OLD.session_id
      AND minute = (SELECT MAX(0, CAST((OLD.created_at - s.started_at) / 60 AS INTEGER)) FROM sessions s WHERE s.id = OLD.session_id);
    UPDATE session_products SET orders = orders - 1, units = units - OLD.quantity, gmv_cents = gmv_cents - OLD.amount_cents
    WHERE OLD.practice = 0 AND OLD.status IN ('placed', 'pending_payment') AND session_id = OLD.session_id AND product_id = OLD.product_id;
    INSERT INTO session_minutes (session_id, minute, orders, items, gmv_cents, first_time_buyers)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), 1, NEW.quantity, NEW.amount_cents, NEW.first_time
    FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0 AND NEW.practice = 0 AND NEW.status IN ('placed', 'pending_payment')
    ON CONFLICT (session_id, minute) DO UPDATE SET orders = orders + 1, items = items + excluded.items,
        gmv_cents = gmv_cents + excluded.gmv_cents, first_time_buyers = first_time_buyers + excluded.first_time_buyers;
    INSERT INTO session_products (session_id, product_id, orders, units, gmv_cents)
    SELECT s.id, NEW.product_id, 1, NEW.quantity, NEW.amount_cents FROM sessions s
    WHERE s.id = NEW.session_id AND s.practice = 0 AND NEW.practice = 0 AND NEW.status IN ('placed', 'pending_payment')
    ON CONFLICT (session_id, product_id) DO UPDATE SET orders = orders + 1, units = units + excluded.units,
        gmv_cents = gmv_cents + excluded.gmv_cents;
END;

CREATE TRIGGER analytics_comment AFTER INSERT ON comments
WHEN NEW.practice = 0 AND NEW.user_id IS NULL AND NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, comments)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), 1 FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET comments = comments + 1;
    INSERT INTO session_viewers (session_id, viewer_id, comments)
    SELECT s.id, NEW.viewer_id, 1 FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0 AND NEW.viewer_id IS NOT NULL
    ON CONFLICT (session_id, viewer_id) DO UPDATE SET comments = comments + 1;
END;

CREATE TRIGGER analytics_gift AFTER INSERT ON gifts WHEN NEW.practice = 0 AND NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, gifts)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), 1 FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET gifts = gifts + 1;
END;

CREATE TRIGGER analytics_follow AFTER INSERT ON follows WHEN NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, followers)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), 1 FROM sessions s WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET followers = followers + 1;
END;

CREATE TRIGGER analytics_viewer_sample AFTER INSERT ON viewer_samples BEGIN
    INSERT INTO session_minutes (session_id, minute, viewer_sum, viewer_n, peak_viewers)
    SELECT s.id, MAX(0, CAST((NEW.at - s.started_at) / 60 AS INTEGER)), NEW.viewers, 1, NEW.viewers FROM sessions s
    WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET viewer_sum = viewer_sum + excluded.viewer_sum, viewer_n = viewer_n + 1,
        peak_viewers = MAX(peak_viewers, excluded.peak_viewers);
END;

CREATE TRIGGER analytics_viewer_joined AFTER INSERT ON activity
WHEN NEW.name = 'viewer.joined' AND NEW.practice = 0 AND NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, peak_viewers, new_viewers, returning_viewers)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), COALESCE(json_extract(NEW.data, '$.viewers'), 0),
        n.new, n.new AND EXISTS (SELECT 1 FROM session_viewers o WHERE o.viewer_id = json_extract(NEW.data, '$.viewer_id')
            AND o.joined_at IS NOT NULL AND o.session_id < s.id)
    FROM sessions s, (SELECT json_extract(NEW.data, '$.viewer_id') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM session_viewers sv
            WHERE sv.session_id = NEW.session_id AND sv.viewer_id = json_extract(NEW.data, '$.viewer_id') AND sv.joined_at IS NOT NULL) AS new) n
    WHERE s.id = NEW.session_id AND s.practice = 0
    ON CONFLICT (session_id, minute) DO UPDATE SET peak_viewers = MAX(peak_viewers, excluded.peak_viewers),
        new_viewers = new_viewers + excluded.new_viewers, returning_viewers = returning_viewers + excluded.returning_viewers;
    INSERT INTO session_viewers (session_id, viewer_id, joined_at, open, since)
    SELECT s.id, json_extract(NEW.data, '$.viewer_id'), NEW.created_at, 1, NEW.created_at FROM sessions s
    WHERE s.id = NEW.session_id AND s.practice = 0 AND json_extract(NEW.data, '$.viewer_id') IS NOT NULL
    ON CONFLICT (session_id, viewer_id) DO UPDATE SET joined_at = COALESCE(joined_at, excluded.joined_at),
        since = CASE WHEN open = 0 THEN excluded.since ELSE since END, open = open + 1;
END;

CREATE TRIGGER analytics_viewer_left AFTER INSERT ON activity
WHEN NEW.name = 'viewer.left' AND NEW.practice = 0 AND NEW.session_id IS NOT NULL BEGIN
    INSERT INTO session_minutes (session_id, minute, watch_seconds)
    SELECT s.id, MAX(0, CAST((NEW.created_at - s.started_at) / 60 AS INTEGER)), MAX(0, NEW.created_at - sv.since)
    FROM sessions s JOIN session_viewers sv ON sv.session_id = s.id AND sv.viewer_id = json_extract(NEW.data, '$.viewer_id')
    WHERE s.id = NEW.session_id AND sv.open = 1
    ON CONFLICT (session_id, minute) DO UPDATE SET watch_seconds = watch_seconds + excluded.watch_seconds;
    UPDATE session_viewers SET watch_seconds = watch_seconds + CASE WHEN open = 1 THEN MAX(0, NEW.created_at - since) ELSE 0 END,
        since = CASE WHEN open = 1 THEN NULL ELSE since END, open = open - 1
    WHERE session_id = NEW.session_id AND viewer_id = json_extract(NEW.data, '$.viewer_id') AND open > 0;
END;

CREATE TRIGGER analytics_product_pinned AFTER INSERT ON activity
WHEN NEW.name = 'product.pinned' AND NEW.practice = 0 AND NEW.session_id IS NOT NULL BEGIN
    UPDATE session_products SET pinned_seconds = pinned_seconds + MAX(0, NEW.created_at - pinned_since), pinned_since = NULL
    WHERE session_id = NEW.session_id AND pinned_since IS NOT NULL;
    INSERT INTO session_products (session_id, product_id, pins, pinned_since)
    SELECT s.id, json_extract(NEW.data, '$.product.id'), 1, NEW.created_at FROM sessions s
    WHERE s.id = NEW.session_id AND s.practice = 0 AND json_extract(NEW.data, '$.product.id') IS NOT NULL
    ON CONFLICT (session_id, product_id) DO UPDATE SET pins = pins + 1, pinned_since = excluded.pinned_since;
END;

CREATE TRIGGER analytics_product_unpinned AFTER INSERT ON activity
WHEN NEW.name = 'product.unpinned' AND NEW.session_id IS NOT NULL BEGIN
    UPDATE session_products SET pinned_seconds = pinned_seconds + MAX(0, NEW.created_at - pinned_since), pinned_since = NULL
    WHERE session_id = NEW.session_id AND pinned_since IS NOT NULL;
END;

-- the end of a session closes its running pin and every open player
CREATE TRIGGER analytics_session_ended AFTER UPDATE OF ended_at ON sessions
WHEN NEW.ended_at IS NOT NULL AND OLD.ended_at IS NULL BEGIN
    UPDATE session_products SET pinned_seconds = pinned_seconds + MAX(0, NEW.ended_at - pinned_since), pinned_since = NULL
    WHERE session_id = NEW.id AND pinned_since IS NOT NULL;
    INSERT INTO session_minutes (session_id, minute, watch_seconds)
    SELECT NEW.id, MAX(0, CAST((NEW.ended_at - NEW.started_at) / 60 AS INTEGER)), SUM(MAX(0, NEW.ended_at - since))
    FROM session_viewers WHERE session_id = NEW.id AND open > 0 AND NEW.practice = 0 HAVING COUNT(*) > 0
    ON CONFLICT (session_id, minute) DO UPDATE SET watch_seconds = watch_seconds + excluded.watch_seconds;
    UPDATE session_viewers SET watch_seconds = watch_seconds + MAX(0, NEW.ended_at - since), since = NULL, open = 0
    WHERE session_id = NEW.id AND open > 0;
END;
"""
