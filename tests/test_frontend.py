"""The front end's shared parts without a browser: one WebSocket client (app.js), activity texts declared on
EventSpec and checked when declared, the console page's list of activity kinds, no plugin names in core JS."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lmserver.busevents import CORE_EVENTS, EventSpec, activity_kinds
from tests.conftest import login
from tests.livehelpers import make_event

ROOT = Path(__file__).resolve().parent.parent
CORE_JS = sorted((ROOT / "web" / "static" / "js").glob("*.js"))


def test_only_app_js_opens_a_websocket() -> None:
    scripts = CORE_JS + sorted((ROOT / "plugins").glob("*/static/*.js"))
    templates = sorted((ROOT / "web" / "templates").rglob("*.html")) + sorted((ROOT / "plugins").glob("*/templates/*.html"))
    assert len(CORE_JS) >= 5
    opening = [p.relative_to(ROOT).as_posix() for p in scripts + templates if "new WebSocket(" in p.read_text()]
    assert opening == ["web/static/js/app.js"], "use LMS.bus (app.js) instead of opening a WebSocket"


def test_plugin_js_follows_the_bus_through_lms_bus() -> None:
    # LMS.bus opens the page's socket on the first on(): a script that only listens to the "lms:bus" DOM
    # events depends on another script having subscribed, and misses nothing only by luck
    scripts = sorted((ROOT / "plugins").glob("*/static/*.js"))
    listening = [p.relative_to(ROOT).as_posix() for p in scripts if "lms:bus" in p.read_text()]
    assert listening == [], "subscribe with LMS.bus.on(prefix, fn) instead of the lms:bus DOM event"


def test_core_js_names_no_plugin() -> None:
    # "prompter" is also the core's word for the console's right-hand panel (DESIGN.md glossary): for the
    # prompter plugin only its package and settings names count (as in test_plugins' name check)
    plugins = [p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists() and p.name != "prompter"]
    plugins += ["giveaway", "flashsale", r"lmserver_plugins\.prompter", r"plugins/prompter"]
    for path in CORE_JS:
        text = path.read_text()
        for name in plugins:
            assert not re.search(rf"\b{name}\b", text), f"{path.name} names the plugin {name!r}: draw it from its EventSpec"


def test_activity_template_is_checked_when_declared() -> None:
    ok = EventSpec("shoutout.sent", "x", {"nickname": "who", "order": "the order"}, activity="{nickname} paid {order.amount_cents|money}{order.first|if: (first)}")
    assert ok.activity_kind() == {"name": "shoutout.sent", "label": "shoutout.sent", "icon": "",
                                  "template": "{nickname} paid {order.amount_cents|money}{order.first|if: (first)}"}
    with pytest.raises(ValueError, match=r"uses \{nick\} but the event declares only \['nickname'\]"):
        EventSpec("shoutout.sent", "x", {"nickname": "who"}, activity="{nick} shouted")
    with pytest.raises(ValueError, match="filter 'upper' is unknown"):
        EventSpec("shoutout.sent", "x", {"nickname": "who"}, activity="{nickname|upper} shouted")
    with pytest.raises(ValueError, match="unmatched brace"):
        EventSpec("shoutout.sent", "x", {"nickname": "who"}, activity="{nickname shouted")
    with pytest.raises(ValueError, match="not a field name"):
        EventSpec("shoutout.sent", "x", {"nickname": "who"}, activity="{} shouted")
    # True: an activity without a template; None: not an activity
    assert EventSpec("a.b", "x", activity=True).activity_kind() == {"name": "a.b", "label": "a.b", "icon": "", "template": None}
    assert EventSpec("a.b", "x").activity_kind() is None


def test_every_core_activity_has_its_text_and_label() -> None:
    kinds = activity_kinds(CORE_EVENTS)
    names = [k["name"] for k in kinds]
    for name in ("comment.created", "order.created", "viewer.followed", "gift.sent", "viewer.joined", "product.pinned",
                 "stream.started"):
        assert name in names
    assert all(k["template"] and k["label"] != k["name"] for k in kinds)
    assert len(set(k["label"] for k in kinds)) == len(kinds), "each kind's label is unique in the feed filter"


async def test_console_page_carries_every_declared_kind(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    await login(client)
    eid = await make_event(client.app, "Spring sale")
    html = await (await client.get(f"/events/{eid}/console")).text()
    blob = json.loads(re.search(r'<script type="application/json" id="console-data">(.*?)</script>', html, re.S).group(1))
    kinds = {k["name"]: k for k in blob["activity_kinds"]}
    assert kinds["billboard.shown"]["label"] == "Billboards shown"  # a plugin's, declared by the plugin
    assert kinds["gift.sent"]["template"] == "{nickname} sent {gift|gift}"
    filter_html = re.search(r'<select id="feed-filter".*?</select>', html, re.S).group(0)
    for name in kinds:
        assert f'<option value="{name}">' in filter_html
    assert 'data-bus="/ws/console"' in html
