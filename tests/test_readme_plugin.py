"""The README's "Writing a plugin" example is real code: load it as a plugin and use it."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

from lmserver.appkeys import BUS, DB
from tests.conftest import login

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_source() -> str:
    """The code of the README's plugin example."""
    m = re.search(r"```python\n# lmserver_shoutout/__init__\.py\n(.*?)```", README.read_text(), re.S)
    assert m, "the README lost its plugin example"
    return m.group(1)


def readme_plugin() -> types.ModuleType:
    module = types.ModuleType("lmserver_shoutout")
    exec(compile(readme_source(), "README.md (plugin example)", "exec"), module.__dict__)
    return module


async def test_readme_plugin_example_works(aiohttp_client: Any, app_factory: Any) -> None:
    plugin = readme_plugin()
    plugin.PLUGIN_NAME = "shoutout"
    client = await aiohttp_client(app_factory(plugins=(plugin,)))
    heard: list[Any] = []
    client.app[BUS].on("shoutout.sent", heard.append)
    h = {"X-CSRF-Token": await login(client, "moderator")}
    resp = await client.post("/api/plugins/shoutout", json={"text": "Flash sale in 5 minutes!"}, headers=h)
    assert resp.status == 200 and heard and heard[0].data == {"text": "Flash sale in 5 minutes!"}
    resp = await client.post("/api/plugins/shoutout", json={}, headers=h)
    assert resp.status == 400 and "'text' is required" in (await resp.json())["error"]["message"]
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM shoutout_log") == 0  # its migration ran
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["paths"]["/api/plugins/shoutout"]["post"]["x-permission"] == "shoutout.send"
    client.session.cookie_jar.clear()
    h = {"X-CSRF-Token": await login(client, "assistant")}  # its own permission: not an assistant's
    resp = await client.post("/api/plugins/shoutout", json={"text": "hi"}, headers=h)
    assert resp.status == 403 and "'shoutout.send' permission" in (await resp.json())["error"]["message"]
