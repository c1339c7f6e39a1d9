"""The studio's time zone and the one time format (issue 16, item 12)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lmserver.appkeys import DB, LIVE
from lmserver.config import ConfigError, load_config
from lmserver.homepage import month_start, week_start
from lmserver.timefmt import STUDIO_TZ, fmt, machine_zone_name
from tests.conftest import login
from tests.livehelpers import make_event

PARIS = ZoneInfo("Europe/Paris")
WINTER = dt.datetime(2026, 12, 1, 13, 5, 9, tzinfo=dt.timezone.utc).timestamp()  # 14:05:09 in Paris (CET)
SUMMER = dt.datetime(2026, 7, 1, 13, 5, tzinfo=dt.timezone.utc).timestamp()  # 15:05 in Paris (CEST)


def test_one_format_in_the_studios_zone() -> None:
    assert fmt(WINTER, "datetime", PARIS) == "Tue 1 Dec 2026, 14:05 CET"
    assert fmt(SUMMER, "datetime", PARIS) == "Wed 1 Jul 2026, 15:05 CEST"
    assert fmt(WINTER, "short", PARIS) == "Tue 1 Dec, 14:05"
    assert fmt(WINTER, "date", PARIS) == "Tue 1 Dec"
    assert fmt(WINTER, "time", PARIS) == "14:05"
    assert fmt(WINTER, "seconds", PARIS) == "14:05:09"
    assert fmt(WINTER) == "Tue 1 Dec 2026, 13:05 UTC"
    assert fmt(None) == "" and fmt(float("nan")) == "invalid date" and fmt("x") == "invalid date"
    with pytest.raises(ValueError):
        fmt(WINTER, "fancy")


def test_the_config_key_names_a_real_zone(tmp_path: Any) -> None:
    cfg = load_config(env={}, overrides={"server": {"timezone": "Asia/Tokyo"}})
    assert cfg.server.timezone == "Asia/Tokyo"
    with pytest.raises(ConfigError, match=r"'server.timezone' must be an IANA time zone name"):
        load_config(env={}, overrides={"server": {"timezone": "Mars/Olympus_Mons"}})
    with pytest.raises(ConfigError, match="server.timezone"):
        load_config(env={"LMSERVER_SERVER_TIMEZONE": "../../etc/passwd"})
    assert ZoneInfo(machine_zone_name())  # the default: this machine's zone, always a real one


def test_weeks_and_months_of_live_tasks_are_the_studios() -> None:
    monday_paris = dt.datetime(2026, 11, 30, 0, 30, tzinfo=PARIS).timestamp()  # Sunday 23:30 UTC
    assert week_start(monday_paris, PARIS) == dt.datetime(2026, 11, 30, tzinfo=PARIS).timestamp()
    assert week_start(monday_paris) == dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc).timestamp()
    assert month_start(dt.datetime(2026, 12, 1, 0, 30, tzinfo=PARIS).timestamp(), PARIS) == dt.datetime(2026, 12, 1, tzinfo=PARIS).timestamp()


async def test_pages_titles_and_messages_use_the_zone_the_owner_sets(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(server={"timezone": "Europe/Paris"}))
    csrf = await login(client)
    app = client.app
    headers = {"X-CSRF-Token": csrf}
    eid = await make_event(app, "Zoned", starts_in=3 * 86400)
    starts = await app[DB].fetchval("SELECT starts_at FROM events WHERE id = ?", (eid,))
    page = await (await client.get(f"/events/{eid}")).text()
    assert fmt(starts, "datetime", PARIS) in page and " UTC" not in page
    # the owner picks another zone in Settings: every page follows at once
    resp = await client.put("/api/settings/timezone", json={"timezone": "America/New_York"}, headers=headers)
    assert resp.status == 200 and (await resp.json()) == {"timezone": "America/New_York", "configured": "Europe/Paris"}
    page = await (await client.get(f"/events/{eid}")).text()
    assert fmt(starts, "datetime", ZoneInfo("America/New_York")) in page
    assert "window.LMS.tz = \"America/New_York\"" in page  # LMS.tz for the scripts
    settings = await (await client.get("/settings")).text()
    assert '<option value="America/New_York" selected>' in settings
    # a clash message names times on the studio's clock
    resp = await client.post("/api/events", json={"title": "Clash", "starts_at": starts, "duration_minutes": 30}, headers=headers)
    assert resp.status == 409 and fmt(starts, "datetime", ZoneInfo("America/New_York")) in (await resp.json())["error"]["message"]
    # bad input: 400 naming the key; "" goes back to the configured zone
    resp = await client.put("/api/settings/timezone", json={"timezone": "Nowhere/Land"}, headers=headers)
    assert resp.status == 400 and "IANA time zone name" in (await resp.json())["error"]["message"]
    assert (await client.put("/api/settings/timezone", json={"timezone": ""}, headers=headers)).status == 200
    assert app[STUDIO_TZ].name == "Europe/Paris"
    # "Go LIVE now" names its event on the studio's clock
    session = await app[LIVE].begin("test", False, None)
    title = await app[DB].fetchval("SELECT title FROM events WHERE id = ?", (session.event_id,))
    assert title == "LIVE " + fmt(session.started_at, "short", PARIS)
    await app[LIVE].end("host ended")


async def test_the_choice_survives_a_restart(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(server={"timezone": "UTC"}))
    async with client.app[DB].transaction() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('timezone', 'Asia/Tokyo')")
    again = await aiohttp_client(app_factory(server={"timezone": "UTC"}))
    assert again.app[STUDIO_TZ].name == "Asia/Tokyo"
