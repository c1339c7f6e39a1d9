"""docs/plugins.md is real code: each worked example is loaded as a plugin into one server and used."""

from __future__ import annotations

import asyncio
import re
import time
import types
from pathlib import Path
from typing import Any

import pytest

from lmserver import api
from lmserver.appkeys import BUS, DB
from tests.conftest import login
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh
from tests.test_plugins import _lmserver_imports

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
FAMILIES = ["notes", "cheers", "happyhour", "countdown", "corner", "wave"]


def examples() -> dict[str, str]:
    found = dict(re.findall(r"```python\n# docs example: (\w+)\n(.*?)```", DOC.read_text(), re.S))
    assert list(found) == FAMILIES, "docs/plugins.md lost an example"
    return found


def load(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(f"lmserver_{name}")
    exec(compile(source, f"docs/plugins.md ({name})", "exec"), module.__dict__)
    module.PLUGIN_NAME = name  # type: ignore[attr-defined]
    return module


@pytest.fixture
def plugins() -> dict[str, types.ModuleType]:
    return {name: load(name, source) for name, source in examples().items()}


def test_examples_use_only_the_public_api() -> None:
    assert {name: _lmserver_imports(source, name) for name, source in examples().items()} == {n: [] for n in FAMILIES}


async def test_routes_and_pages(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    moderator = await staff_cookie(client, "moderator")
    resp = await client.post("/api/plugins/notes", json={"text": "Smile!"}, headers=moderator)
    assert resp.status == 201 and (await resp.json())["note"]["text"] == "Smile!"
    resp = await client.post("/api/plugins/notes", json={"text": "x"}, headers=await staff_cookie(client, "assistant"))
    assert resp.status == 403
    home = await (await client.get("/", headers=moderator)).text()
    assert 'data-check="notes" data-done="1"' in home and ">Notes</a>" in home


async def test_bus_and_activity(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    app = client.app
    suggestions: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("prompter.suggestion", suggestions.put_nowait)
    eid = await make_event(app)
    session = await go_live(app, eid)
    for i in range(10):
        await app[BUS].publish("comment.created", {"comment": {"body": f"Cheers {i}!"}}, event_id=eid, session_id=session.id)
    assert (await asyncio.wait_for(suggestions.get(), 10)).data["text"] == "10 cheers: thank the chat!"
    figures = (await api.session_figures(app, session.id))["figures"]
    assert {"name": "cheers", "label": "Cheers", "value": 10, "plugin": "cheers"} in figures


async def test_orders(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, price_cents=2000, event_id=eid)
    await app[DB].execute("INSERT INTO happyhour_deals (product_id, price_cents, ends_at) VALUES (?, 999, ?)", (pid, time.time() + 600))
    await go_live(app, eid)
    viewer = await new_viewer(app)

    async def buy() -> Any:
        return await client.post(f"/api/e/{eid}/orders", json={"product_id": pid}, headers=vh(viewer))

    resp = await buy()
    assert resp.status == 201 and (await resp.json())["order"]["unit_price_cents"] == 999
    resp = await buy()
    assert resp.status == 409 and "you already bought one" in (await resp.json())["error"]["message"]


async def test_timers(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    ended: asyncio.Queue[Any] = asyncio.Queue()
    client.app[BUS].on("countdown.ended", ended.put_nowait)
    await plugins["countdown"].start(client.app, 0)
    assert (await asyncio.wait_for(ended.get(), 10)).data["seconds"] == 0


async def test_overlays(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    app = client.app
    await login(client)
    session = await go_live(app, await make_event(app))
    await plugins["corner"].register_overlays(app, session)
    layers = {layer.name: layer for layer in api.compositor(app).layers()}
    assert layers["corner:badge"].z == api.Z_BANNER + 1 and layers["corner:badge"].width == 240


async def test_named_actions(plugins: Any, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=tuple(plugins.values())))
    app = client.app
    assert api.has_action(app, "wave.send")
    suggestions: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("prompter.suggestion", suggestions.put_nowait)
    eid = await make_event(app)
    session = await go_live(app, eid)
    await app[BUS].publish("viewer.joined", {"viewer_id": None, "viewers": 1, "peak": 1}, event_id=eid, session_id=session.id)
    finding = (await asyncio.wait_for(suggestions.get(), 10)).data
    [button] = finding["actions"]
    assert button == {"label": "Wave", "action": "wave.send", "params": {"times": 2}}
    resp = await client.post(f"/api/actions/{button['action']}", json={"params": button["params"]},
                             headers=await staff_cookie(client, "assistant"))
    assert resp.status == 403  # the action's own permission (comments.moderate)
    resp = await client.post(f"/api/actions/{button['action']}", json={"params": button["params"]},
                             headers=await staff_cookie(client, "moderator"))
    assert resp.status == 200 and (await resp.json())["result"] == {"text": "waved 2 times"}
    assert await app[DB].fetchval("SELECT COUNT(*) FROM activity WHERE name = 'wave.waved'") == 1
