"""The studio's time zone, and the one way every page, message, title and e-mail writes a time.

The zone is ``[server] timezone`` (an IANA name such as ``Europe/Paris``; empty: this machine's zone),
unless the owner picked another in **Settings** (kept in the ``settings`` table under ``timezone``; an
empty choice goes back to the configured one). ``app[STUDIO_TZ]`` holds the zone in force.

One format, 24-hour clock, built here and nowhere else (:func:`fmt`):

==========  ==============================
kind        example
==========  ==============================
datetime    ``Tue 1 Dec 2026, 14:05 CET``
short       ``Tue 1 Dec, 14:05``
date        ``Tue 1 Dec``
time        ``14:05``
seconds     ``14:05:09``
month       ``Dec``
day         ``1``
==========  ==============================

Templates use the ``datetime`` filter (``{{ ts|datetime("time") }}``); scripts use ``LMS.time(ts, kind)``
(``web/static/js/app.js``), which writes the same format in the same zone (``window.LMS.tz``).
Week and month boundaries (LIVE tasks) and hours of the week (the best-time suggestion) are taken in
this zone too (:func:`local`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from aiohttp import web

__all__ = ["STUDIO_TZ", "StudioZone", "fmt", "local", "machine_zone_name", "zone_problem", "studio_zone", "load_zone", "set_zone",
           "KINDS"]

KINDS = ("datetime", "short", "date", "time", "seconds", "month", "day")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zone_problem(name: str) -> str | None:
    """None when ``name`` is empty (this machine's zone) or an IANA time zone, else what it must be (config check)."""
    if name == "":
        return None
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return "an IANA time zone name such as \"Europe/Paris\", \"America/New_York\" or \"UTC\" (empty: this machine's zone)"


def machine_zone_name() -> str:
    """This machine's IANA zone: ``$TZ``, ``/etc/timezone``, the ``/etc/localtime`` link; else ``UTC``."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name and zone_problem(name) is None:
            return name
    return "UTC"


@dataclass
class StudioZone:
    """The zone in force (``app[STUDIO_TZ]``): ``name`` (IANA) and ``zone``; ``configured`` is the config's."""

    name: str
    configured: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.name)


STUDIO_TZ: web.AppKey[StudioZone] = web.AppKey("studio_tz", StudioZone)


def studio_zone(app: Any) -> ZoneInfo:
    """The studio's zone of ``app`` (UTC for an app built without one)."""
    try:
        return app[STUDIO_TZ].zone
    except KeyError:
        return ZoneInfo("UTC")


def local(ts: Any, zone: ZoneInfo | None = None) -> dt.datetime | None:
    """UNIX seconds → an aware datetime in ``zone`` (UTC by default); None for a value no calendar holds."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    try:
        return dt.datetime.fromtimestamp(ts, zone or dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def fmt(ts: Any, kind: str = "datetime", zone: ZoneInfo | None = None) -> str:
    """``ts`` (UNIX seconds) written in ``zone`` as ``kind`` (see the table above); "" for None,
    "invalid date" for a value no calendar holds (a bad value in the database must not fail a page)."""
    if ts is None:
        return ""
    d = local(ts, zone)
    if d is None:
        return "invalid date"
    hm = f"{d.hour:02d}:{d.minute:02d}"
    date = f"{_WEEKDAYS[d.weekday()]} {d.day} {_MONTHS[d.month - 1]}"
    if kind == "datetime":
        return f"{date} {d.year}, {hm} {d.tzname()}"
    if kind == "short":
        return f"{date}, {hm}"
    if kind == "date":
        return date
    if kind == "time":
        return hm
    if kind == "seconds":
        return f"{hm}:{d.second:02d}"
    if kind == "month":
        return _MONTHS[d.month - 1]
    if kind == "day":
        return str(d.day)
    if kind.startswith("%"):  # a strftime pattern (older templates): the zone's wall clock, its name with %Z
        return d.strftime(kind)
    raise ValueError(f"unknown time format {kind!r}: one of {', '.join(KINDS)}")


async def load_zone(app: web.Application) -> StudioZone:
    """Read the owner's choice from the settings table into ``app[STUDIO_TZ]`` (at startup)."""
    from .appkeys import DB

    holder = app[STUDIO_TZ]
    chosen = await app[DB].fetchval("SELECT value FROM settings WHERE key = 'timezone'")
    if chosen and zone_problem(chosen) is None:
        holder.name = chosen
    return holder


async def set_zone(app: web.Application, name: str) -> StudioZone:
    """The owner's choice (already checked with :func:`zone_problem`); "" goes back to the configured zone."""
    from .appkeys import DB

    holder = app[STUDIO_TZ]
    async with app[DB].transaction() as tx:
        if name:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('timezone', ?)"
                             " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (name,))
        else:
            await tx.execute("DELETE FROM settings WHERE key = 'timezone'")
    holder.name = name or holder.configured
    return holder


def install(app: web.Application, env: Any) -> None:
    """Put the studio's zone on ``app`` (from the config) and the ``datetime`` filter / ``studio_tz()`` global on ``env``."""
    from .appkeys import CONFIG

    configured = app[CONFIG].server.timezone or machine_zone_name()
    app[STUDIO_TZ] = StudioZone(configured, configured)

    def datetime_filter(ts: Any, kind: str = "datetime") -> str:
        return fmt(ts, kind, app[STUDIO_TZ].zone)

    env.filters["datetime"] = datetime_filter
    env.globals["studio_tz"] = lambda: app[STUDIO_TZ].name
