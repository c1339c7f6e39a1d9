"""The billboard plugin's settings and its tables.

Settings come from the ``[plugins.billboard]`` table of ``config.toml``; every key is checked and a
bad one is refused with its full name (``plugins.billboard.max_shown must be ...``).

State lives in the database, not in memory: a billboard is *shown* while its ``shown_session_id`` is
the running session's id. That is what lets a session resumed after a restart show its billboards
again, and what every console reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Mapping

from lmserver.api import ConfigError

NAME = "billboard"


@dataclass(frozen=True)
class Settings:
    """``[plugins.billboard]``: each field is a key, with its default."""

    #: most billboards shown at once in the program
    max_shown: int = 2
    #: largest image upload, in bytes
    max_image_bytes: int = 8 * 1024 * 1024
    #: largest image, in pixels (width × height); guards against decompression bombs
    max_image_pixels: int = 40_000_000

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Settings":
        """Check the table; raises :class:`ConfigError` naming the key (``plugins.billboard.<key>``)."""
        known = {f.name: f for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ConfigError(f"'plugins.{NAME}.{key}' is not a setting of the billboard plugin; "
                                  f"known: {', '.join(known)}")
        limits = {"max_shown": (1, 20), "max_image_bytes": (1024, 1 << 30), "max_image_pixels": (480 * 360, 400_000_000)}
        values = {}
        for key, value in table.items():
            lo, hi = limits[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"'plugins.{NAME}.{key}' must be a whole number from {lo:,} to {hi:,}, got {value!r}")
            values[key] = value
        return cls(**values)


#: ``register_migrations``: ordered ``(name, sql)`` steps; never edit one that has shipped, add the next.
MIGRATIONS: list[tuple[str, str]] = [("001_billboards", """
CREATE TABLE billboards (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    template TEXT,                       -- text: a template id (render.TEMPLATES)
    text TEXT NOT NULL DEFAULT '',
    text_colour TEXT,
    background_colour TEXT,
    font_size INTEGER,
    image TEXT,                          -- image: file name under <data_dir>/uploads
    x INTEGER NOT NULL,                  -- position and size in program pixels
    y INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    shown_session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX billboards_shown ON billboards(shown_session_id);

CREATE TABLE billboard_events (
    billboard_id INTEGER NOT NULL REFERENCES billboards(id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    PRIMARY KEY (billboard_id, event_id)
);
""")]


def as_json(row: Mapping[str, Any], *, session_id: int | None, event_ids: list[int]) -> dict[str, Any]:
    """A billboard as the API shows it."""
    out = {k: row[k] for k in ("id", "name", "kind", "template", "text", "text_colour", "background_colour",
                               "font_size", "x", "y", "width", "height", "created_at", "updated_at")}
    out["shown"] = session_id is not None and row["shown_session_id"] == session_id
    out["event_ids"] = event_ids
    out["image_url"] = f"/uploads/{row['image']}" if row["image"] else None
    out["preview_url"] = f"/api/plugins/{NAME}/billboards/{row['id']}/preview.png?v={int(row['updated_at'] * 1000)}"
    return out


def now() -> float:
    return time.time()
