"""The giveaway plugin's settings (``[plugins.giveaway]``) and its tables.

Nothing is ever erased once a giveaway has run: entries, draws (with their seeds, revealed after the
pick) and winners stay, so every proof page can be checked later. A giveaway that never ran can be
deleted; its allocated units go back to stock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from lmserver.api import ConfigError

NAME = "giveaway"

DEFAULT_TERMS = ("The prize is given free of charge to the winners drawn at random among the eligible entries. "
                 "One entry per viewer; staff cannot enter. Winners must claim their prize within the claim window "
                 "or it may be drawn again. The host ships the prize at their own cost.")


@dataclass(frozen=True)
class Settings:
    """``[plugins.giveaway]``: each field is a key, with its default."""

    #: the terms the host accepts before creating a giveaway (shown in the create form)
    terms: str = DEFAULT_TERMS
    #: how long a winner has to claim their prize, in hours; after that it can be drawn again
    claim_hours: float = 48.0
    #: an activity "N entries" is published every this many entries (0: never)
    entry_milestone: int = 10

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Settings":
        """Check the table; raises :class:`ConfigError` naming the key (``plugins.giveaway.<key>``)."""
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ConfigError(f"'plugins.{NAME}.{key}' is not a setting of the giveaway plugin; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        if "terms" in table:
            terms = table["terms"]
            if not isinstance(terms, str) or not 1 <= len(terms.strip()) <= 5000:
                raise ConfigError(f"'plugins.{NAME}.terms' must be a text of 1 to 5000 characters, got {terms!r:.60}")
            values["terms"] = terms.strip()
        if "claim_hours" in table:
            hours = table["claim_hours"]
            if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0.01 <= hours <= 720:
                raise ConfigError(f"'plugins.{NAME}.claim_hours' must be a number of hours from 0.01 to 720, got {hours!r}")
            values["claim_hours"] = float(hours)
        if "entry_milestone" in table:
            step = table["entry_milestone"]
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 100_000:
                raise ConfigError(f"'plugins.{NAME}.entry_milestone' must be a whole number from 0 to 100,000, got {step!r}")
            values["entry_milestone"] = step
        return cls(**values)


#: ``register_migrations``: ordered steps; never edit one that has shipped, add the next.
MIGRATIONS: list[tuple[str, str]] = [("001_giveaways", """
CREATE TABLE giveaways (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    event_id INTEGER REFERENCES events(id) ON DELETE SET NULL,   -- at most one event
    winners INTEGER NOT NULL CHECK (winners >= 1),
    items_per_winner INTEGER NOT NULL CHECK (items_per_winner >= 1),
    entry_mode TEXT NOT NULL CHECK (entry_mode IN ('comment', 'follow', 'both', 'none')),  -- both: either way in
    keyword TEXT NOT NULL DEFAULT '',
    countdown_seconds INTEGER NOT NULL CHECK (countdown_seconds BETWEEN 60 AND 600),
    status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'running', 'drawn', 'ended')),
    practice INTEGER NOT NULL DEFAULT 0,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    started_at REAL,
    ends_at REAL,
    terms TEXT NOT NULL,
    terms_accepted_by TEXT NOT NULL,     -- the staff user's name
    terms_accepted_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX giveaways_event ON giveaways(event_id, status);

CREATE TABLE giveaway_products (
    giveaway_id INTEGER NOT NULL REFERENCES giveaways(id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products(id),
    position INTEGER NOT NULL,
    allocated INTEGER NOT NULL CHECK (allocated >= 1),
    held INTEGER NOT NULL CHECK (held >= 0),        -- units still set aside (allocated minus given or returned)
    PRIMARY KEY (giveaway_id, product_id)
);

CREATE TABLE giveaway_entries (
    id INTEGER PRIMARY KEY,
    giveaway_id INTEGER NOT NULL REFERENCES giveaways(id) ON DELETE CASCADE,
    code TEXT NOT NULL,                  -- the pseudonymous entry id the draw uses
    viewer_id TEXT NOT NULL,
    nickname TEXT NOT NULL,
    via TEXT NOT NULL,                   -- comment, follow or button
    created_at REAL NOT NULL,
    UNIQUE (giveaway_id, viewer_id),
    UNIQUE (giveaway_id, code)
);

CREATE TABLE giveaway_draws (
    id INTEGER PRIMARY KEY,
    giveaway_id INTEGER NOT NULL REFERENCES giveaways(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,             -- 1: the draw at the countdown's end; 2, ...: redraws
    seed TEXT NOT NULL,                  -- hex; shown only once revealed_at is set
    commitment TEXT NOT NULL,            -- SHA-256(seed), hex
    committed_at REAL NOT NULL,
    picks INTEGER NOT NULL,              -- how many winners this draw picks (at most the pool)
    pool TEXT,                           -- JSON: the sorted entry ids the draw picked from
    entries_hash TEXT,
    revealed_at REAL,
    UNIQUE (giveaway_id, number)
);

CREATE TABLE giveaway_winners (
    id INTEGER PRIMARY KEY,
    giveaway_id INTEGER NOT NULL REFERENCES giveaways(id) ON DELETE CASCADE,
    draw_id INTEGER NOT NULL REFERENCES giveaway_draws(id) ON DELETE CASCADE,
    pick INTEGER NOT NULL,
    code TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    nickname TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'won' CHECK (status IN ('won', 'claimed', 'redrawn')),
    claim_until REAL NOT NULL,
    claimed_at REAL,
    claim_name TEXT,
    claim_email TEXT,
    claim_address TEXT,
    order_ids TEXT                       -- JSON list of the zero-price orders of the claim
);
CREATE INDEX giveaway_winners_viewer ON giveaway_winners(viewer_id);
""")]
